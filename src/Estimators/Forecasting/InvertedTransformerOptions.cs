using Microsoft.ML.SearchSpace;
using MLNet.Attention.Engine;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Options of the iTransformer forecaster. Defaults are the paper's ETTh1 setting (lookback 96, D = d_ff = 256,
/// 2 layers, 8 heads, dropout 0.1, lr 1e-4 halved every epoch, batch 32, 10 epochs, patience 3).
/// </summary>
public sealed class InvertedTransformerOptions : ForecasterOptions
{
    /// <summary>Token width D (d_model).</summary>
    [Choice(new object[] { 64, 128, 256, 512 })]
    public int ModelWidth { get; set; } = 256;

    /// <summary>Attention heads; must divide <see cref="ModelWidth"/>.</summary>
    public int Heads { get; set; } = 8;

    /// <summary>Encoder layers (e_layers).</summary>
    [Range(1, 4)]
    public int Layers { get; set; } = 2;

    /// <summary>Feed-forward width (d_ff); null (the default) follows <see cref="ModelWidth"/>, as in every one of the
    /// paper's scripts (D = d_ff), so setting only the width does not leave d_ff behind.</summary>
    public int? FeedForwardWidth { get; set; }

    /// <summary>Dropout probability.</summary>
    [Range(0.0, 0.3)]
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
        new(Lookback, Horizon, ModelWidth, Heads, Layers, FeedForwardWidth ?? ModelWidth, Dropout, UseNorm);

    /// <summary>Datasets with a recipe in <see cref="PaperRecipe"/>.</summary>
    public static IReadOnlyList<string> PaperRecipeDatasets { get; } = new[]
    {
        "ETTh1", "ETTh2", "ETTm1", "ETTm2", "Exchange", "Weather", "ECL", "Traffic", "Solar",
        "PEMS03", "PEMS04", "PEMS07", "PEMS08",
    };

    /// <summary>
    /// The iTransformer authors' per-dataset script settings (lookback 96, 8 heads, dropout 0.1, lr halved every epoch,
    /// 10 epochs, patience 3) with that dataset's layers E, width D = d_ff, learning rate, batch size and use_norm;
    /// calendar covariates (hourly, the scripts' freq 'h') when a timestamp column is named, none for Solar. Set the
    /// variate and timestamp columns (and anything else) on the result.
    /// </summary>
    /// <param name="dataset">One of <see cref="PaperRecipeDatasets"/> (case-insensitive).</param>
    /// <param name="horizon">The forecast length S (96, 192, 336, 720; PEMS 12, 24, 48, 96).</param>
    public static InvertedTransformerOptions PaperRecipe(string dataset, int horizon)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        if (horizon < 1) throw new ArgumentOutOfRangeException(nameof(horizon), horizon, "The horizon must be at least 1.");
        string name = PaperRecipeDatasets.FirstOrDefault(d => string.Equals(d, dataset, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"No paper recipe for '{dataset}'; recipes exist for " +
                $"{string.Join(", ", PaperRecipeDatasets)}. For another series start from new InvertedTransformerOptions() " +
                "(the ETTh1 setting) and set ModelWidth, Layers and LearningRate.", nameof(dataset));
        bool longPems = horizon > 24;
        (int layers, int width, double lr, int batch, bool useNorm) = name switch
        {
            "ETTh1" => (2, horizon <= 192 ? 256 : 512, 1e-4, 32, true),
            "ETTh2" or "ETTm1" or "ETTm2" or "Exchange" => (2, 128, 1e-4, 32, true),
            "Weather" => (3, 512, 1e-4, 32, true),
            "ECL" => (3, 512, 5e-4, 16, true),
            "Traffic" => (4, 512, 1e-3, 16, true),
            "Solar" => (2, 512, 5e-4, 32, true),
            "PEMS03" => (4, 512, 1e-3, 32, true),
            "PEMS04" => (4, 1024, 5e-4, 32, false),
            "PEMS07" => (longPems ? 4 : 2, 512, 1e-3, longPems ? 16 : 32, false),
            _ /* PEMS08 */ => (longPems ? 4 : 2, 512, longPems ? 1e-3 : 1e-4, longPems ? 16 : 32, !longPems),
        };
        return new InvertedTransformerOptions
        {
            Lookback = 96,
            Horizon = horizon,
            Layers = layers,
            ModelWidth = width,
            Heads = 8,
            Dropout = 0.1,
            UseNorm = useNorm,
            LearningRate = lr,
            BatchSize = batch,
            MaxEpochs = name == "Exchange" && horizon == 336 ? 1 : 10,
            EarlyStoppingPatience = 3,
            CalendarFeatures = name == "Solar" ? Forecasting.CalendarFeatures.None : null,
        };
    }
}
