using Microsoft.ML;
using MLNet.Attention.Classification;
using MLNet.Attention.Interop;
using MLNet.Attention.Transforms;

namespace MLNet.Attention;

/// <summary>MLNet.Attention transforms on <c>mlContext.Transforms</c>.</summary>
public static class TransformsCatalogExtensions
{
    /// <summary>
    /// Image featurizer with the weights of a PyTorch checkpoint (<c>.pth</c>): the backbone's pooled features before
    /// the classifier head as <paramref name="outputColumnName"/>. The checkpoint must hold the named network (its
    /// state-dict names are the reference's; the head is ignored).
    /// </summary>
    /// <param name="catalog">mlContext.Transforms.</param>
    /// <param name="checkpointPath">The file written by <c>torch.save(model.state_dict(), path)</c>.</param>
    /// <param name="backbone">The checkpoint's backbone.</param>
    /// <param name="attention">The checkpoint's attention.</param>
    /// <param name="outputColumnName">The feature column.</param>
    /// <param name="inputColumnName">The CHW pixel column (ExtractPixels).</param>
    /// <param name="imageHeight">Image height.</param>
    /// <param name="imageWidth">Image width.</param>
    public static AttentionImageFeaturizerEstimator AttentionImageFeaturizer(this TransformsCatalog catalog, string checkpointPath,
        ImageBackbone backbone = ImageBackbone.MobileNetV2, ImageAttention attention = ImageAttention.ElaL,
        string outputColumnName = "Features", string inputColumnName = "Pixels", int imageHeight = 32, int imageWidth = 32)
        => AttentionImageFeaturizer(catalog, new AttentionImageFeaturizerOptions
        {
            CheckpointPath = checkpointPath,
            Backbone = backbone,
            Attention = attention,
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            ImageHeight = imageHeight,
            ImageWidth = imageWidth,
        });

    /// <summary>Image featurizer from a PyTorch checkpoint, with all options.</summary>
    public static AttentionImageFeaturizerEstimator AttentionImageFeaturizer(this TransformsCatalog catalog,
        AttentionImageFeaturizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new AttentionImageFeaturizerEstimator(HostSettings.EnvironmentOf(catalog), options);
    }

    /// <summary>
    /// Image featurizer with the backbone of a trained image classifier: its pooled features before the head as
    /// <paramref name="outputColumnName"/>. <c>Fit</c> copies the weights, so the featurizer and the classifier can be
    /// used and disposed independently.
    /// </summary>
    /// <param name="catalog">mlContext.Transforms.</param>
    /// <param name="classifier">The trained (or loaded) classifier; not disposed before <c>Fit</c>.</param>
    /// <param name="outputColumnName">The feature column.</param>
    /// <param name="inputColumnName">The pixel column; null: the classifier's.</param>
    /// <param name="batchSize">Rows per forward pass.</param>
    public static AttentionImageFeaturizerEstimator AttentionImageFeaturizer(this TransformsCatalog catalog,
        ImageClassifierModel classifier, string outputColumnName = "Features", string? inputColumnName = null, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new AttentionImageFeaturizerEstimator(HostSettings.EnvironmentOf(catalog), classifier, outputColumnName,
            inputColumnName, batchSize);
    }

    /// <summary>
    /// The featurizer of a trained image classifier, ready to use: its own copy of the backbone (without the head), so
    /// disposing either leaves the other working. Dispose it when done.
    /// </summary>
    /// <param name="classifier">The trained (or loaded) classifier.</param>
    /// <param name="outputColumnName">The feature column.</param>
    /// <param name="inputColumnName">The pixel column; null: the classifier's.</param>
    /// <param name="batchSize">Rows per forward pass.</param>
    public static AttentionImageFeaturizerTransformer CreateFeaturizer(this ImageClassifierModel classifier,
        string outputColumnName = "Features", string? inputColumnName = null, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        ObjectDisposedException.ThrowIf(classifier.IsDisposed, classifier);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return AttentionImageFeaturizerTransformer.FromClassifier(classifier.Environment, classifier, outputColumnName,
            inputColumnName, batchSize);
    }

    /// <summary>
    /// Series → windows: one row per window of <paramref name="lookback"/> rows (sliding by one), with the next
    /// <paramref name="horizon"/> rows as <c>Target</c> when the horizon is positive. The output feeds a trained
    /// forecaster's <c>Transform</c> or prediction engine, or any ML.NET trainer that takes vectors.
    /// </summary>
    /// <param name="catalog">mlContext.Transforms.</param>
    /// <param name="variateColumnNames">Numeric scalar columns holding the series, one row per timestamp.</param>
    /// <param name="lookback">Rows of history per window.</param>
    /// <param name="horizon">Rows of target per window; 0 for none.</param>
    /// <param name="timestampColumnName">Optional timestamp column (each window gets its last lookback timestamp).</param>
    public static ForecastWindowsEstimator CreateForecastWindows(this TransformsCatalog catalog, string[] variateColumnNames,
        int lookback, int horizon = 0, string? timestampColumnName = null)
        => CreateForecastWindows(catalog, new ForecastWindowsOptions
        {
            VariateColumnNames = variateColumnNames,
            Lookback = lookback,
            Horizon = horizon,
            TimestampColumnName = timestampColumnName,
        });

    /// <summary>Series → windows with all options.</summary>
    public static ForecastWindowsEstimator CreateForecastWindows(this TransformsCatalog catalog, ForecastWindowsOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new ForecastWindowsEstimator(HostSettings.EnvironmentOf(catalog), options);
    }

    /// <summary>
    /// Groups instance rows into bag rows for the attention-MIL trainers: one row per distinct
    /// <paramref name="bagIdColumnName"/>, its instances' features concatenated (N × D, Vector&lt;Single&gt; with the
    /// InstanceSize annotation), the bag's label and the instance count. Musk (<c>bag_label, bag_id, f1..f166</c>):
    /// <c>GroupIntoBags("BagId", new[] { "Features" }, labelColumnName: "Label")</c>.
    /// </summary>
    /// <param name="catalog">mlContext.Transforms.</param>
    /// <param name="bagIdColumnName">The bag id of each instance row.</param>
    /// <param name="featureColumnNames">Instance feature columns (Single or known-size Single vectors).</param>
    /// <param name="labelColumnName">Optional bag label (the same on every instance of a bag).</param>
    /// <param name="outputFeatureColumnName">The bag features output column.</param>
    public static GroupIntoBagsEstimator GroupIntoBags(this TransformsCatalog catalog, string bagIdColumnName,
        string[] featureColumnNames, string? labelColumnName = null, string outputFeatureColumnName = "Features")
        => GroupIntoBags(catalog, new GroupIntoBagsOptions
        {
            BagIdColumnName = bagIdColumnName,
            FeatureColumnNames = featureColumnNames,
            LabelColumnName = labelColumnName,
            OutputFeatureColumnName = outputFeatureColumnName,
        });

    /// <summary>Groups instance rows into bag rows, with all options (coordinates, output names).</summary>
    public static GroupIntoBagsEstimator GroupIntoBags(this TransformsCatalog catalog, GroupIntoBagsOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new GroupIntoBagsEstimator(HostSettings.EnvironmentOf(catalog), options);
    }
}
