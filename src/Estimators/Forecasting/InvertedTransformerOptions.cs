using MLNet.Attention.Engine;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Options of the iTransformer forecaster. Defaults are the paper's ETTh1 setting (lookback 96, D = d_ff = 256,
/// 2 layers, 8 heads, dropout 0.1, lr 1e-4 halved every epoch, batch 32, 10 epochs, patience 3).
/// </summary>
public sealed class InvertedTransformerOptions : ForecasterOptions
{
    /// <summary>Token width D (d_model).</summary>
    public int ModelWidth { get; set; } = 256;

    /// <summary>Attention heads; must divide <see cref="ModelWidth"/>.</summary>
    public int Heads { get; set; } = 8;

    /// <summary>Encoder layers (e_layers).</summary>
    public int Layers { get; set; } = 2;

    /// <summary>Feed-forward width (d_ff).</summary>
    public int FeedForwardWidth { get; set; } = 256;

    /// <summary>Dropout probability.</summary>
    public double Dropout { get; set; } = 0.1;

    /// <summary>Per-window normalisation inside the network (the paper's use_norm; off only for a few PEMS settings).</summary>
    public bool UseNorm { get; set; } = true;

    public InvertedTransformerOptions() => LearningRateSchedule = LearningRateSchedule.HalveEveryEpoch;

    public override void Validate()
    {
        base.Validate();
        ToConfig().Validate();
    }

    internal InvertedTransformerConfig ToConfig() =>
        new(Lookback, Horizon, ModelWidth, Heads, Layers, FeedForwardWidth, Dropout, UseNorm);
}
