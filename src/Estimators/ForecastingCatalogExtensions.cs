using Microsoft.ML;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Interop;

namespace MLNet.Attention;

/// <summary>Forecasting trainers on <c>mlContext.Forecasting.Trainers</c>.</summary>
public static class ForecastingCatalogExtensions
{
    /// <summary>
    /// iTransformer multivariate forecaster (Liu et al., ICLR 2024). Trains on a series with one row per timestamp:
    /// name its numeric columns, the lookback and the horizon.
    /// </summary>
    /// <param name="catalog">mlContext.Forecasting.Trainers.</param>
    /// <param name="variateColumnNames">Numeric scalar columns holding the series (all are forecast).</param>
    /// <param name="lookback">Rows of history per forecast.</param>
    /// <param name="horizon">Steps forecast at once.</param>
    /// <param name="timestampColumnName">Optional timestamp column; enables calendar covariates and dated forecasts.</param>
    /// <param name="maxEpochs">Upper bound on epochs (early stopping on the last 20% of rows usually ends sooner).</param>
    /// <param name="batchSize">Windows per step.</param>
    /// <param name="learningRate">Initial learning rate (halved every epoch from the third).</param>
    /// <param name="validationSet">Optional validation series; otherwise the last 20% of the rows validate.</param>
    /// <param name="modelWidth">Token width D (d_model): 256 is the paper's ETTh1 setting, 128 ETTh2/ETTm/Exchange,
    /// 512 Weather/ECL/Traffic (see <see cref="InvertedTransformerOptions.PaperRecipe"/>).</param>
    /// <param name="layers">Encoder layers E (2 for ETT, 3 Weather/ECL, 4 Traffic).</param>
    /// <param name="feedForwardWidth">Feed-forward width d_ff; null: equal to <paramref name="modelWidth"/>, as in the
    /// paper's scripts.</param>
    public static InvertedTransformerTrainer InvertedTransformer(this ForecastingCatalog.Forecasters catalog,
        string[] variateColumnNames, int lookback = 96, int horizon = 96, string? timestampColumnName = null,
        int maxEpochs = 10, int batchSize = 32, double learningRate = 1e-4, IDataView? validationSet = null,
        int modelWidth = 256, int layers = 2, int? feedForwardWidth = null)
        => InvertedTransformer(catalog, new InvertedTransformerOptions
        {
            VariateColumnNames = variateColumnNames,
            Lookback = lookback,
            Horizon = horizon,
            TimestampColumnName = timestampColumnName,
            MaxEpochs = maxEpochs,
            BatchSize = batchSize,
            LearningRate = learningRate,
            ValidationSet = validationSet,
            ModelWidth = modelWidth,
            Layers = layers,
            FeedForwardWidth = feedForwardWidth,
        });

    /// <summary>
    /// CRIB forecaster for series with missing values (Yang et al., arXiv 2509.23494): trains, evaluates and forecasts
    /// straight from a series whose numeric columns may hold NaN (missing), without imputing them. Defaults are the
    /// reference's ETTh1 setting (24 → 24, patch 8, D 32, 3 layers, Adam lr 1e-3, batch 32, 10 epochs).
    /// </summary>
    /// <param name="catalog">mlContext.Forecasting.Trainers.</param>
    /// <param name="variateColumnNames">Numeric scalar columns holding the series (all are forecast; NaN = missing).</param>
    /// <param name="lookback">Rows of history per forecast; a multiple of <paramref name="patchLength"/>.</param>
    /// <param name="horizon">Steps forecast at once.</param>
    /// <param name="timestampColumnName">Optional timestamp column (checked for order, gaps and duplicates).</param>
    /// <param name="maxEpochs">Epochs (the last one is kept, as in the reference).</param>
    /// <param name="batchSize">Windows per step.</param>
    /// <param name="learningRate">Adam learning rate.</param>
    /// <param name="validationSet">Optional validation series; otherwise the last 20% of the rows validate.</param>
    /// <param name="patchLength">Patch length L.</param>
    /// <param name="modelWidth">Token width D (even).</param>
    /// <param name="layers">Encoder layers E.</param>
    public static CribTrainer Crib(this ForecastingCatalog.Forecasters catalog, string[] variateColumnNames,
        int lookback = 24, int horizon = 24, string? timestampColumnName = null, int maxEpochs = 10, int batchSize = 32,
        double learningRate = 1e-3, IDataView? validationSet = null, int patchLength = 8, int modelWidth = 32,
        int layers = 3)
        => Crib(catalog, new CribOptions
        {
            VariateColumnNames = variateColumnNames,
            Lookback = lookback,
            Horizon = horizon,
            TimestampColumnName = timestampColumnName,
            MaxEpochs = maxEpochs,
            BatchSize = batchSize,
            LearningRate = learningRate,
            ValidationSet = validationSet,
            PatchLength = patchLength,
            ModelWidth = modelWidth,
            Layers = layers,
        });

    /// <summary>CRIB forecaster with all options.</summary>
    public static CribTrainer Crib(this ForecastingCatalog.Forecasters catalog, CribOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new CribTrainer(HostSettings.EnvironmentOf(catalog), options);
    }

    /// <summary>iTransformer multivariate forecaster with all options.</summary>
    public static InvertedTransformerTrainer InvertedTransformer(this ForecastingCatalog.Forecasters catalog, InvertedTransformerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new InvertedTransformerTrainer(HostSettings.EnvironmentOf(catalog), options);
    }

    /// <summary>
    /// MVPA-inspired forecaster ("multi-variate parallel attention", Carzaniga et al., ICLR 2026, adapted to
    /// forecasting): tokens are (time segment, variable) patches, attention is causal in time and full across variables
    /// with MVPA's relative time and channel terms, and each variable has its own linear head. Accepts missing values
    /// (NaN) in the series by default.
    /// </summary>
    /// <param name="catalog">mlContext.Forecasting.Trainers.</param>
    /// <param name="variateColumnNames">Numeric scalar columns holding the series (all are forecast; NaN = missing).</param>
    /// <param name="lookback">Rows of history per forecast; a multiple of <paramref name="patchLength"/>.</param>
    /// <param name="horizon">Steps forecast at once.</param>
    /// <param name="timestampColumnName">Optional timestamp column; enables calendar covariates (extra channels).</param>
    /// <param name="maxEpochs">Upper bound on epochs (early stopping on the validation rows usually ends sooner).</param>
    /// <param name="batchSize">Windows per step.</param>
    /// <param name="learningRate">Initial learning rate (halved every epoch from the third).</param>
    /// <param name="validationSet">Optional validation series; otherwise the last 20% of the rows validate.</param>
    /// <param name="patchLength">Time steps per segment.</param>
    /// <param name="modelWidth">Token width d.</param>
    /// <param name="layers">Blocks.</param>
    /// <param name="heads">Query heads (divides the width).</param>
    /// <param name="keyValueHeads">Key/value heads (divides the heads).</param>
    public static MultiVariateParallelTransformerTrainer MultiVariateParallelTransformer(
        this ForecastingCatalog.Forecasters catalog, string[] variateColumnNames, int lookback = 96, int horizon = 96,
        string? timestampColumnName = null, int maxEpochs = 10, int batchSize = 32, double learningRate = 5e-4,
        IDataView? validationSet = null, int patchLength = 16, int modelWidth = 128, int layers = 2, int heads = 8,
        int keyValueHeads = 4)
        => MultiVariateParallelTransformer(catalog, new MultiVariateParallelTransformerOptions
        {
            VariateColumnNames = variateColumnNames,
            Lookback = lookback,
            Horizon = horizon,
            TimestampColumnName = timestampColumnName,
            MaxEpochs = maxEpochs,
            BatchSize = batchSize,
            LearningRate = learningRate,
            ValidationSet = validationSet,
            PatchLength = patchLength,
            ModelWidth = modelWidth,
            Layers = layers,
            Heads = heads,
            KeyValueHeads = keyValueHeads,
        });

    /// <summary>MVPA-inspired forecaster with all options.</summary>
    public static MultiVariateParallelTransformerTrainer MultiVariateParallelTransformer(
        this ForecastingCatalog.Forecasters catalog, MultiVariateParallelTransformerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new MultiVariateParallelTransformerTrainer(HostSettings.EnvironmentOf(catalog), options);
    }
}
