using Microsoft.ML;
using MLNet.Attention.Engine;

namespace MLNet.Attention.WholeSlide;

/// <summary>The pretrained ResNet-18 tile featurizer on <c>mlContext.Transforms</c>.</summary>
public static class ResNet18TileFeaturizerCatalog
{
    /// <summary>
    /// The pretrained ImageNet ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18 as a tile featurizer:
    /// <paramref name="inputColumnName"/> (an Image column, encoded bytes, or CHW RGB 0–255 pixels of 224 × 224
    /// tiles from <c>ResizeImages(224, 224) → ExtractPixels()</c>) → <paramref name="outputColumnName"/>,
    /// <c>Vector&lt;Single, 512&gt;</c>, scored by ONNX Runtime <paramref name="batchSize"/> tiles at a time. The
    /// features equal those of <c>DnnFeaturizeImage(ResNet18)</c> on the same pixels.
    /// </summary>
    /// <param name="catalog">mlContext.Transforms.</param>
    /// <param name="outputColumnName">The feature column.</param>
    /// <param name="inputColumnName">The tile column.</param>
    /// <param name="batchSize">Tiles per ONNX Runtime call.</param>
    /// <param name="intraOpNumThreads">ONNX Runtime intra-op threads (0: ONNX Runtime's choice).</param>
    public static ResNet18TileFeaturizerEstimator ResNet18TileFeaturizer(this TransformsCatalog catalog,
        string outputColumnName = "Features", string inputColumnName = "Pixels", int batchSize = 32,
        int intraOpNumThreads = 0)
        => ResNet18TileFeaturizer(catalog, new ResNet18TileFeaturizerOptions
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            BatchSize = batchSize,
            IntraOpNumThreads = intraOpNumThreads,
        });

    /// <summary>The ResNet-18 tile featurizer with all options (GPU, model folder).</summary>
    /// <param name="catalog">mlContext.Transforms.</param>
    /// <param name="options">The options.</param>
    public static ResNet18TileFeaturizerEstimator ResNet18TileFeaturizer(this TransformsCatalog catalog,
        ResNet18TileFeaturizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ResNet18TileFeaturizerEstimator(TrainerCatalog.EnvironmentOf(catalog), options);
    }
}
