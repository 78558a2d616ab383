using Microsoft.ML.SearchSpace;
using MLNet.Attention.Engine;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Options of the MVPA-inspired forecaster (<see cref="MultiVariateParallelTransformerNetwork"/>). Defaults: lookback
/// 96, patch 16 (6 segments), d 128, 8 heads with 4 key/value heads, 2 layers, SwiGLU width 256, content window 10,
/// dropout 0.1; training as the iTransformer's (Adam, lr 5e-4 halved every epoch, batch 32, 10 epochs, patience 3).
/// Missing values are accepted by default (<see cref="MissingValuePolicy.ZeroFill"/>; the network reads the mask).
/// </summary>
public sealed class MultiVariateParallelTransformerOptions : ForecasterOptions
{
    /// <summary>Time steps per segment P; must divide <see cref="ForecasterOptions.Lookback"/>.</summary>
    public int PatchLength { get; set; } = 16;

    /// <summary>Token width d.</summary>
    [Choice(new object[] { 64, 128, 256 })]
    public int ModelWidth { get; set; } = 128;

    /// <summary>Query heads H; must divide <see cref="ModelWidth"/>.</summary>
    public int Heads { get; set; } = 8;

    /// <summary>Key/value heads H_kv (grouped-query attention); must divide <see cref="Heads"/>.</summary>
    public int KeyValueHeads { get; set; } = 4;

    /// <summary>MVPFormer blocks.</summary>
    [Range(1, 4)]
    public int Layers { get; set; } = 2;

    /// <summary>SwiGLU inner width; null: twice <see cref="ModelWidth"/>.</summary>
    public int? InnerWidth { get; set; }

    /// <summary>Content window in segments (10 in the reference; ≥ T − 1 makes the content term global).</summary>
    public int Window { get; set; } = 10;

    /// <summary>Rows of the positional table T_max (110 in the reference); Lookback / PatchLength must not exceed it.</summary>
    public int MaxSegments { get; set; } = 110;

    /// <summary>Rows of the channel table C_max (128 in the reference); variates + calendar covariates must not exceed it.</summary>
    public int MaxChannels { get; set; } = 128;

    /// <summary>Dropout probability.</summary>
    [Range(0.0, 0.3)]
    public double Dropout { get; set; } = 0.1;

    /// <summary>Per-window normalisation over each variate's observed values (as iTransformer's use_norm).</summary>
    public bool UseNorm { get; set; } = true;

    public MultiVariateParallelTransformerOptions()
    {
        LearningRate = 5e-4;
        LearningRateSchedule = LearningRateSchedule.HalveEveryEpoch;
        MissingValues = MissingValuePolicy.ZeroFill;
    }

    public override void Validate()
    {
        base.Validate();
        if ((FutureCovariateColumnNames?.Length ?? 0) > 0)
            throw new ArgumentException("The MultiVariateParallelTransformer does not read known-future covariates " +
                "(FutureCovariateColumnNames); use the InvertedTransformer for them, or name them in PastCovariateColumnNames " +
                "(their lookback values are then read).", nameof(FutureCovariateColumnNames));
        ToConfig(new ForecastingShape(VariateColumnNames.Length, Lookback, Horizon,
            Forecasting.CalendarFeatureEncoder.Count(ResolvedCalendar), PastCovariateColumnNames?.Length ?? 0)).Validate();
    }

    internal MultiVariateParallelTransformerConfig ToConfig(ForecastingShape shape) => new(
        // Past covariates are extra variables (channels) of the token grid; their forecasts are dropped.
        shape.Lookback, shape.Horizon, shape.Variates + shape.PastCovariates, shape.Covariates, PatchLength, ModelWidth, Heads, KeyValueHeads,
        Layers, InnerWidth ?? 2 * ModelWidth, Window, MaxSegments, MaxChannels, Dropout, UseNorm);
}
