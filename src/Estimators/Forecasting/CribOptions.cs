using Microsoft.ML.SearchSpace;
namespace MLNet.Attention.Forecasting;

/// <summary>
/// Options of the CRIB forecaster (forecasting from incomplete series). Defaults are the reference's ETTh1 setting:
/// lookback 24, horizon 24, patch 8, D 32, 4 heads, 3 layers, dropout 0.1, Adam lr 1e-3, batch 32, 10 epochs, the last
/// epoch kept (no early stopping), loss L1 + consistency + 1e-6·KL, and <see cref="MissingValuePolicy.ZeroFill"/>:
/// NaN in the series is a missing value that the network reads with its observed mask.
/// </summary>
public sealed class CribOptions : ForecasterOptions
{
    /// <summary>Patch length L (patch_len); must divide <see cref="ForecasterOptions.Lookback"/>.</summary>
    public int PatchLength { get; set; } = 8;

    /// <summary>Token width D (model_dim); even.</summary>
    [Choice(new object[] { 16, 32, 64 })]
    public int ModelWidth { get; set; } = 32;

    /// <summary>Attention heads H; must divide <see cref="ModelWidth"/>.</summary>
    public int Heads { get; set; } = 4;

    /// <summary>Encoder layers E.</summary>
    [Range(1, 4)]
    public int Layers { get; set; } = 3;

    /// <summary>Dropout in the TCN, on attention weights, residual branches and the feed-forward network.</summary>
    [Range(0.0, 0.3)]
    public double Dropout { get; set; } = 0.1;

    /// <summary>Weight of the L1 forecast loss (over observed targets).</summary>
    public double PredictionWeight { get; set; } = 1.0;

    /// <summary>Weight of the consistency loss between the clean and the noise-perturbed view.</summary>
    public double ConsistencyWeight { get; set; } = 1.0;

    /// <summary>Weight of the information-bottleneck KL term (a sum over batch and variates).</summary>
    public double KlWeight { get; set; } = 1e-6;

    /// <summary>Scale of the second view's additive noise, x₂ = x₁ + scale·(m + s·ε).</summary>
    public double SecondViewNoiseScale { get; set; } = 0.01;

    /// <summary>false (the reference): queries, keys and values share the query projection; true: standard
    /// attention with separate key and value projections.</summary>
    public bool SeparateKeyValueProjections { get; set; }

    public CribOptions()
    {
        Lookback = 24;
        Horizon = 24;
        LearningRate = 1e-3;
        BatchSize = 32;
        MaxEpochs = 10;
        EarlyStoppingPatience = null;
        RestoreBestWeights = false;
        MissingValues = MissingValuePolicy.ZeroFill;
        CalendarFeatures = Forecasting.CalendarFeatures.None;
    }

    public override void Validate()
    {
        base.Validate();
        if (ResolvedCalendar != Forecasting.CalendarFeatures.None)
            throw new ArgumentException($"CRIB takes no calendar covariates (CalendarFeatures = " +
                $"{CalendarFeatures?.ToString() ?? "null, which picks Hourly with a timestamp column"}); set " +
                "CalendarFeatures = CalendarFeatures.None.", nameof(CalendarFeatures));
        ToConfig().Validate();
    }

    internal CribConfig ToConfig() => new(Lookback, Horizon, PatchLength, ModelWidth, Heads, Layers, Dropout,
        SeparateKeyValueProjections: SeparateKeyValueProjections, PredictionWeight: PredictionWeight,
        ConsistencyWeight: ConsistencyWeight, KlWeight: KlWeight, SecondViewNoiseScale: SecondViewNoiseScale);
}
