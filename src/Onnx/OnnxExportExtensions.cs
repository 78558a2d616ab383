using System.Reflection;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Classification;
using MLNet.Attention.OnnxExport;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention;

/// <summary>
/// ONNX export of trained MLNet.Attention models: an opset-17 graph with a dynamic <c>batch</c> dimension that ONNX
/// Runtime, or ML.NET's <c>mlContext.Transforms.ApplyOnnxModel</c>, scores without TorchSharp or libtorch.
/// </summary>
/// <remarks>
/// <para>An image classifier's graph has one input named after the model's feature column: float
/// <c>[batch, C·H·W]</c>, the raw CHW pixel vector <c>ExtractPixels</c> writes (0–255 unless the model was trained
/// with another <see cref="ImageClassifierOptions.PixelScale"/>); the pixel normalisation is inside the graph. Its
/// output <c>Score</c> is float <c>[batch, classes]</c>, the softmax probabilities of the model's <c>Score</c> column,
/// classes in key order (also in the model metadata <c>labels</c>, a JSON array). A model trained on an Image or
/// encoded-bytes column exports with the same pixel-vector input: the scoring pipeline must
/// <c>ResizeImages</c> to the model's size and <c>ExtractPixels</c> (planar RGB, no offset or scale) into a column of
/// that name first. <c>PredictedLabel</c> (the arg-max) and an attention-map column are not part of the graph.</para>
/// <para>Every module of the network is exported by an exporter written for its type; a module without one (a custom
/// attention block, say) fails with <see cref="NotSupportedException"/> naming its type and its path in the network,
/// and nothing is written.</para>
/// </remarks>
public static class OnnxExportExtensions
{
    /// <summary>The name of the graph's probability output (ML.NET's score column).</summary>
    public const string ScoreOutputName = TorchClassifierModel.ScoreColumnName;

    /// <summary>Writes the model as an ONNX file at <paramref name="path"/> (created or overwritten once the graph is
    /// complete).</summary>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="NotSupportedException">A module of the network cannot be exported (the message names it).</exception>
    public static void ExportToOnnx(this ImageClassifierModel model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var bytes = OnnxModelExport.ImageClassifier(model).ToByteArray();
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>Writes the model's ONNX graph to <paramref name="stream"/> (left open, positioned after it).</summary>
    /// <exception cref="ArgumentException">The stream is not writable.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="NotSupportedException">A module of the network cannot be exported (the message names it).</exception>
    public static void ExportToOnnx(this ImageClassifierModel model, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckWritable(stream);
        var proto = OnnxModelExport.ImageClassifier(model);
        proto.WriteTo(stream);
        stream.Flush();
    }

    /// <summary>
    /// Writes a trained model of this pack as ONNX: <paramref name="model"/> is the model itself (e.g. an
    /// <see cref="ImageClassifierModel"/>) or a fitted pipeline (<see cref="TransformerChain{TLastTransformer}"/>)
    /// holding exactly one such model. Only that model is exported; the pipeline's other transforms
    /// (<c>ExtractPixels</c> in front, <c>MapKeyToValue</c> behind) stay in the scoring pipeline.
    /// </summary>
    /// <param name="catalog">mlContext.Model.</param>
    /// <param name="model">The model or the pipeline holding it.</param>
    /// <param name="stream">A writable stream; left open.</param>
    /// <exception cref="ArgumentException">No exportable model in <paramref name="model"/>, more than one, or the stream
    /// is not writable.</exception>
    public static void ExportToOnnx(this ModelOperationsCatalog catalog, ITransformer model, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        Exportable(model).ExportToOnnx(stream);
    }

    /// <summary>As <see cref="ExportToOnnx(ModelOperationsCatalog, ITransformer, Stream)"/>, to a file.</summary>
    public static void ExportToOnnx(this ModelOperationsCatalog catalog, ITransformer model, string path)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        Exportable(model).ExportToOnnx(path);
    }

    private static ImageClassifierModel Exportable(ITransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model is ImageClassifierModel classifier) return classifier;
        var found = model is IEnumerable<ITransformer> chain ? Flatten(chain).ToArray() : Array.Empty<ITransformer>();
        var exportable = found.OfType<ImageClassifierModel>().ToArray();
        if (exportable.Length == 1) return exportable[0];
        throw new ArgumentException(exportable.Length > 1
            ? $"The pipeline holds {exportable.Length} image classifiers; export each with model.ExportToOnnx(...)."
            : $"{model.GetType().Name} is not an MLNet.Attention model that can be exported to ONNX, nor a pipeline " +
              "holding one (exportable: ImageClassifierModel).", nameof(model));
    }

    private static IEnumerable<ITransformer> Flatten(IEnumerable<ITransformer> chain)
        => chain.SelectMany(t => t is IEnumerable<ITransformer> inner ? Flatten(inner) : new[] { t });

    internal static void CheckWritable(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite)
            throw new ArgumentException($"The stream ({stream.GetType().Name}) is not writable; pass a stream opened " +
                "for writing (File.Create(path), a writable MemoryStream) or use ExportToOnnx(path).", nameof(stream));
    }
}

/// <summary>Builds the ONNX models of this pack's model types.</summary>
internal static class OnnxModelExport
{
    private static string ProducerVersion => typeof(OnnxModelExport).Assembly
        .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";

    /// <summary>The image classifier: feature column [batch, C·H·W] → Score [batch, classes].</summary>
    public static global::Onnx.ModelProto ImageClassifier(ImageClassifierModel model, OnnxModuleRegistry? registry = null,
        bool foldBatchNorm = true)
    {
        if (model.IsDisposed)
            throw new ObjectDisposedException(nameof(ImageClassifierModel), "The image classifier was disposed, so its " +
                "weights are gone; export it before disposing it, or load it again (mlContext.Model.Load) and export that.");
        if (model.IsBinary)
            throw new NotSupportedException("ONNX export of a binary image classifier (margin Score) is not supported.");
        var c = model.Config;
        var graph = new OnnxGraphBuilder("ImageClassifier");
        var input = graph.Input(model.InputColumns[0].Name, -1, (long)c.Channels * c.Height * c.Width);
        var logits = Trace(graph, registry, model.Network, input, foldBatchNorm);
        var score = graph.Softmax(logits, 1, "score");
        graph.Output(score, OnnxExportExtensions.ScoreOutputName);
        var metadata = new Dictionary<string, string>
        {
            ["labels"] = JsonSerializer.Serialize(model.Labels.Names),
            ["input_kind"] = model.InputKind.ToString(),
            ["image"] = $"{c.Channels}x{c.Height}x{c.Width}",
            ["backbone"] = c.Backbone.ToString(),
            ["attention"] = c.Attention.ToString(),
        };
        return graph.Build(ProducerVersion, metadata);
    }

    /// <summary>Any exportable module on one float input of <paramref name="inputShape"/> (−1 first dimension: the
    /// batch) → output <c>output</c>; for tests and for exporters of other model types.</summary>
    public static global::Onnx.ModelProto Module(nn.Module module, long[] inputShape, OnnxModuleRegistry? registry = null,
        string inputName = "input", string outputName = "output", bool foldBatchNorm = true)
    {
        var graph = new OnnxGraphBuilder(module.GetType().Name);
        var input = graph.Input(inputName, inputShape);
        graph.Output(Trace(graph, registry, module, input, foldBatchNorm), outputName);
        return graph.Build(ProducerVersion);
    }

    private static OnnxValue Trace(OnnxGraphBuilder graph, OnnxModuleRegistry? registry, nn.Module module, OnnxValue input,
        bool foldBatchNorm)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        return new OnnxExportContext(graph, registry) { FoldBatchNorm = foldBatchNorm }.Export(module, input, "");
    }
}
