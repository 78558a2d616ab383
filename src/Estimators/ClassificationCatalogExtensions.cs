using Microsoft.ML;
using MLNet.Attention.Classification;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;

namespace MLNet.Attention;

/// <summary>Classifiers on <c>mlContext.MulticlassClassification.Trainers</c> and <c>mlContext.BinaryClassification.Trainers</c>.</summary>
public static class ClassificationCatalogExtensions
{
    /// <summary>
    /// DAAM classifier (density-adaptive attention head of the GAAM paper) over a feature vector, or over stacked
    /// per-layer embeddings (<paramref name="layers"/> × D values). The label must be a Key (MapValueToKey).
    /// </summary>
    /// <param name="catalog">mlContext.MulticlassClassification.Trainers.</param>
    /// <param name="labelColumnName">The Key label column.</param>
    /// <param name="featureColumnName">The feature vector column (known size, L × D).</param>
    /// <param name="layers">Layers L stacked in the feature vector (1 for a plain feature vector).</param>
    /// <param name="maxEpochs">Upper bound on epochs (early stopping on a stratified 10 % of the rows usually ends sooner).</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static DensityAdaptiveAttentionClassifierTrainer DensityAdaptiveAttention(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, string labelColumnName = "Label",
        string featureColumnName = "Features", int layers = 1, int maxEpochs = 20, int batchSize = 32, double learningRate = 1e-3)
        => DensityAdaptiveAttention(catalog, new DensityAdaptiveAttentionClassifierOptions
        {
            LabelColumnName = labelColumnName,
            FeatureColumnName = featureColumnName,
            Layers = layers,
            MaxEpochs = maxEpochs,
            BatchSize = batchSize,
            LearningRate = learningRate,
        });

    /// <summary>
    /// Binary DAAM classifier over a feature vector or stacked per-layer embeddings; the label is a Boolean (or a Key of
    /// two values). Outputs ML.NET's binary columns: <c>Score</c>, <c>Probability</c>, <c>PredictedLabel</c>.
    /// </summary>
    /// <param name="catalog">mlContext.BinaryClassification.Trainers.</param>
    /// <param name="labelColumnName">The Boolean label column.</param>
    /// <param name="featureColumnName">The feature vector column (known size, L × D).</param>
    /// <param name="layers">Layers L stacked in the feature vector (1 for a plain feature vector).</param>
    /// <param name="maxEpochs">Upper bound on epochs.</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static DensityAdaptiveAttentionClassifierTrainer DensityAdaptiveAttention(
        this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, string labelColumnName = "Label",
        string featureColumnName = "Features", int layers = 1, int maxEpochs = 20, int batchSize = 32, double learningRate = 1e-3)
        => DensityAdaptiveAttention(catalog, new DensityAdaptiveAttentionClassifierOptions
        {
            LabelColumnName = labelColumnName,
            FeatureColumnName = featureColumnName,
            Layers = layers,
            MaxEpochs = maxEpochs,
            BatchSize = batchSize,
            LearningRate = learningRate,
        });

    /// <summary>Binary DAAM classifier with all options.</summary>
    public static DensityAdaptiveAttentionClassifierTrainer DensityAdaptiveAttention(
        this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, DensityAdaptiveAttentionClassifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new DensityAdaptiveAttentionClassifierTrainer(HostSettings.EnvironmentOf(catalog), options, binary: true);
    }

    /// <summary>
    /// Image classifier: MobileNetV2 (CIFAR stem for small images), ResNet-18 or MobileNet V1 with ELA, ULSAM or no
    /// attention, trained on encoded image bytes (<c>LoadRawImageBytes</c>, as ML.NET's <c>ImageClassificationTrainer</c>),
    /// ML.NET images (<c>LoadImages</c>) or the CHW pixel vectors of <c>ExtractPixels</c>; the label must be a Key
    /// (MapValueToKey).
    /// </summary>
    /// <param name="catalog">mlContext.MulticlassClassification.Trainers.</param>
    /// <param name="labelColumnName">The Key label column.</param>
    /// <param name="featureColumnName">The image column: bytes, Image or pixel vector.</param>
    /// <param name="validationSet">Data scored after each epoch for early stopping; null: a stratified 10 % of the
    /// training rows.</param>
    /// <param name="imageHeight">Image height the network sees (images are resized to it).</param>
    /// <param name="imageWidth">Image width the network sees.</param>
    /// <param name="attention">The attention inside the backbone.</param>
    /// <param name="maxEpochs">Upper bound on epochs.</param>
    /// <param name="batchSize">Images per step.</param>
    public static ImageClassifierTrainer ImageClassifier(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", IDataView? validationSet = null,
        int imageHeight = 32, int imageWidth = 32, ImageAttention attention = ImageAttention.ElaL, int maxEpochs = 20,
        int batchSize = 64)
        => ImageClassifier(catalog, new ImageClassifierOptions
        {
            ValidationSet = validationSet,
            LabelColumnName = labelColumnName,
            FeatureColumnName = featureColumnName,
            ImageHeight = imageHeight,
            ImageWidth = imageWidth,
            Attention = attention,
            MaxEpochs = maxEpochs,
            BatchSize = batchSize,
        });

    /// <summary>Image classifier with all options.</summary>
    public static ImageClassifierTrainer ImageClassifier(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        ImageClassifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new ImageClassifierTrainer(HostSettings.EnvironmentOf(catalog), options);
    }

    /// <summary>DAAM classifier with all options.</summary>
    public static DensityAdaptiveAttentionClassifierTrainer DensityAdaptiveAttention(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, DensityAdaptiveAttentionClassifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new DensityAdaptiveAttentionClassifierTrainer(HostSettings.EnvironmentOf(catalog), options);
    }
}
