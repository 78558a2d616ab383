using System.Reflection;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Classification;
using MLNet.Attention.OnnxExport;
using MLNet.Attention.Transforms;
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
/// <para>A DAAM classifier's graph takes its feature column <c>[batch, L·D]</c> and gives <c>Score</c> (and
/// <c>Probability</c> for a binary model), see
/// <see cref="ExportToOnnx(DensityAdaptiveAttentionClassifierModel, string)"/>. An attention-MIL classifier's graph
/// takes bags <c>[bags, instances, D]</c>, both dimensions dynamic, and gives <c>Score</c> (and <c>Probability</c>)
/// with the per-instance <c>Attention</c>, see <see cref="ExportToOnnx(MultipleInstance.AttentionMilModel, string)"/>.
/// </para>
/// <para>Every module of the network is exported by an exporter written for its type; a module without one (a custom
/// attention block, say) fails with <see cref="NotSupportedException"/> naming its type and its path in the network,
/// and nothing is written.</para>
/// </remarks>
public static partial class OnnxExportExtensions
{
    /// <summary>The name of the graph's score output (ML.NET's column: a multiclass model's probabilities).</summary>
    public const string ScoreOutputName = TorchClassifierModel.ScoreColumnName;

    /// <summary>The name of a binary classifier's probability output (ML.NET's column).</summary>
    public const string ProbabilityOutputName = TorchClassifierModel.ProbabilityColumnName;

    /// <summary>Writes the model as an ONNX file at <paramref name="path"/> (created or overwritten once the graph is
    /// complete).</summary>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="NotSupportedException">A module of the network cannot be exported (the message names
    /// it).</exception>
    public static void ExportToOnnx(this ImageClassifierModel model, string path)
        => Write(() => OnnxModelExport.ImageClassifier(Check(model)), path);

    /// <summary>Writes the model's ONNX graph to <paramref name="stream"/> (left open, positioned after it).</summary>
    /// <exception cref="ArgumentException">The stream is not writable.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="NotSupportedException">A module of the network cannot be exported (the message names
    /// it).</exception>
    public static void ExportToOnnx(this ImageClassifierModel model, Stream stream)
        => Write(() => OnnxModelExport.ImageClassifier(Check(model)), stream);

    /// <summary>
    /// Writes a DAAM classifier (any head: <see cref="ClassifierHead.Daam"/>, <see cref="ClassifierHead.Linear"/> or
    /// the <see cref="ClassifierHead.MultiHeadAttention"/> baseline) as an ONNX file: input named after its feature
    /// column, float <c>[batch, L·D]</c> (layer-major, as the column holds it); outputs <c>Score</c>
    /// <c>[batch, classes]</c> (softmax) for a multiclass model, or <c>Score</c> (the margin) and <c>Probability</c>
    /// <c>[batch]</c> for a binary one.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public static void ExportToOnnx(this DensityAdaptiveAttentionClassifierModel model, string path)
        => Write(() => OnnxModelExport.DaamClassifier(Check(model)), path);

    /// <summary>As <see cref="ExportToOnnx(DensityAdaptiveAttentionClassifierModel, string)"/>, to a stream (left
    /// open).</summary>
    /// <exception cref="ArgumentException">The stream is not writable.</exception>
    public static void ExportToOnnx(this DensityAdaptiveAttentionClassifierModel model, Stream stream)
        => Write(() => OnnxModelExport.DaamClassifier(Check(model)), stream);

    /// <summary>
    /// Writes an image featurizer as an ONNX file: input named after its input column, float <c>[batch, C·H·W]</c>
    /// raw CHW pixels (as for the image classifier: an Image or bytes featurizer takes <c>ExtractPixels</c>' output);
    /// output named after its output column, float <c>[batch, FeatureWidth]</c>, the backbone's pooled features. An
    /// ONNX graph cannot give an output its input's name, so when both columns have one name (a classifier's
    /// <c>Features</c> column and <c>CreateFeaturizer()</c>'s default output) the output is <c>NAME_out</c>.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The featurizer was disposed.</exception>
    public static void ExportToOnnx(this AttentionImageFeaturizerTransformer featurizer, string path)
        => Write(() => OnnxModelExport.ImageFeaturizer(Check(featurizer)), path);

    /// <summary>As <see cref="ExportToOnnx(AttentionImageFeaturizerTransformer, string)"/>, to a stream (left
    /// open).</summary>
    /// <exception cref="ArgumentException">The stream is not writable.</exception>
    public static void ExportToOnnx(this AttentionImageFeaturizerTransformer featurizer, Stream stream)
        => Write(() => OnnxModelExport.ImageFeaturizer(Check(featurizer)), stream);

    /// <summary>
    /// Writes a trained model of this pack as ONNX: <paramref name="model"/> is the model itself (an
    /// <see cref="ImageClassifierModel"/>, a <see cref="DensityAdaptiveAttentionClassifierModel"/>, an
    /// <see cref="AttentionImageFeaturizerTransformer"/>, an <see cref="MultipleInstance.AttentionMilModel"/> or a
    /// forecaster, see <see cref="ForecastingOnnxExportExtensions"/>) or a fitted pipeline
    /// (<see cref="TransformerChain{TLastTransformer}"/>) holding exactly one such model. Only that model is exported;
    /// the pipeline's other transforms (<c>ExtractPixels</c> in front, <c>MapKeyToValue</c> behind) stay in the
    /// scoring pipeline.
    /// </summary>
    /// <param name="catalog">mlContext.Model.</param>
    /// <param name="model">The model or the pipeline holding it.</param>
    /// <param name="stream">A writable stream; left open.</param>
    /// <exception cref="ArgumentException">No exportable model in <paramref name="model"/>, more than one, or the stream
    /// is not writable.</exception>
    public static void ExportToOnnx(this ModelOperationsCatalog catalog, ITransformer model, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        Write(Exportable(model), stream);
    }

    /// <summary>As <see cref="ExportToOnnx(ModelOperationsCatalog, ITransformer, Stream)"/>, to a file.</summary>
    public static void ExportToOnnx(this ModelOperationsCatalog catalog, ITransformer model, string path)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        Write(Exportable(model), path);
    }

    private static T Check<T>(T model) where T : class => model ?? throw new ArgumentNullException(nameof(model));

    // The graph is complete before anything is written: a failed export leaves no partial file.
    private static void Write(Func<global::Onnx.ModelProto> build, string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        File.WriteAllBytes(path, build().ToByteArray());
    }

    private static void Write(Func<global::Onnx.ModelProto> build, Stream stream)
    {
        CheckWritable(stream);
        build().WriteTo(stream);
        stream.Flush();
    }

    private static Func<global::Onnx.ModelProto> Exportable(ITransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var found = model is IEnumerable<ITransformer> chain ? Flatten(chain).ToArray() : new[] { model };
        var exportable = found.Where(t => t is ImageClassifierModel or DensityAdaptiveAttentionClassifierModel
            or AttentionImageFeaturizerTransformer or MultipleInstance.AttentionMilModel ||
            ForecastingModelExport.For(t) is not null).ToArray();
        if (exportable.Length == 1)
            return exportable[0] switch
            {
                ImageClassifierModel image => () => OnnxModelExport.ImageClassifier(image),
                AttentionImageFeaturizerTransformer featurizer => () => OnnxModelExport.ImageFeaturizer(featurizer),
                DensityAdaptiveAttentionClassifierModel daam => () => OnnxModelExport.DaamClassifier(daam),
                MultipleInstance.AttentionMilModel mil => () => OnnxModelExport.AttentionMil(mil),
                var forecaster => ForecastingModelExport.For(forecaster)!,
            };
        throw new ArgumentException(exportable.Length > 1
            ? $"The pipeline holds {exportable.Length} exportable models; export each with model.ExportToOnnx(...)."
            : $"{model.GetType().Name} is not an MLNet.Attention model that can be exported to ONNX, nor a pipeline " +
              "holding one (exportable: ImageClassifierModel, DensityAdaptiveAttentionClassifierModel, " +
              "AttentionImageFeaturizerTransformer, AttentionMilModel, InvertedTransformerModel, " +
              "MultiVariateParallelTransformerModel, CribModel).", nameof(model));
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
internal static partial class OnnxModelExport
{
    private static string ProducerVersion => typeof(OnnxModelExport).Assembly
        .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";

    /// <summary>The image classifier: feature column [batch, C·H·W] → Score [batch, classes].</summary>
    public static global::Onnx.ModelProto ImageClassifier(ImageClassifierModel model, OnnxModuleRegistry? registry = null,
        bool foldBatchNorm = true)
    {
        CheckUsable(model, "image classifier");
        var c = model.Config;
        var graph = new OnnxGraphBuilder("ImageClassifier");
        var input = graph.Input(model.InputColumns[0].Name, -1, (long)c.Channels * c.Height * c.Width);
        var logits = Trace(graph, registry, model.Network, input, foldBatchNorm);
        ClassifierOutputs(graph, logits, model.IsBinary);
        return graph.Build(ProducerVersion, Metadata(model, new()
        {
            ["input_kind"] = model.InputKind.ToString(),
            ["image"] = $"{c.Channels}x{c.Height}x{c.Width}",
            ["backbone"] = c.Backbone.ToString(),
            ["attention"] = c.Attention.ToString(),
        }));
    }

    /// <summary>The DAAM classifier: feature column [batch, L·D] → [batch, L, D] → the head → Score (and Probability
    /// for a binary model).</summary>
    public static global::Onnx.ModelProto DaamClassifier(DensityAdaptiveAttentionClassifierModel model,
        OnnxModuleRegistry? registry = null)
    {
        CheckUsable(model, "DAAM classifier");
        var c = model.Config;
        var graph = new OnnxGraphBuilder("DensityAdaptiveAttentionClassifier");
        var input = graph.Input(model.InputColumns[0].Name, -1, (long)c.Layers * c.Features);
        var layers = graph.Reshape(input, new long[] { 0, c.Layers, c.Features }, "layers");
        var logits = Trace(graph, registry, model.Network, layers, foldBatchNorm: true);
        ClassifierOutputs(graph, logits, model.IsBinary);
        return graph.Build(ProducerVersion, Metadata(model, new()
        {
            ["head"] = c.Head.ToString(),
            ["layers"] = $"{c.Layers}x{c.Features}",
        }));
    }

    /// <summary>The image featurizer: input column [batch, C·H·W] → output column [batch, FeatureWidth].</summary>
    public static global::Onnx.ModelProto ImageFeaturizer(AttentionImageFeaturizerTransformer featurizer)
    {
        CheckUsable(featurizer, "image featurizer");
        var c = featurizer.Config;
        var graph = new OnnxGraphBuilder("AttentionImageFeaturizer");
        var input = graph.Input(featurizer.InputColumns[0].Name, -1, (long)c.Channels * c.Height * c.Width);
        OnnxValue features;
        using (no_grad())
        using (NewDisposeScope())
            features = VisionExporters.ExportImageFeatures(new OnnxExportContext(graph), featurizer.Network, input, "");
        string output = featurizer.OutputColumns[0].Name;
        graph.Output(features, output == input.Name ? output + "_out" : output);
        return graph.Build(ProducerVersion, new Dictionary<string, string>
        {
            ["input_kind"] = featurizer.InputKind.ToString(),
            ["image"] = $"{c.Channels}x{c.Height}x{c.Width}",
            ["backbone"] = c.Backbone.ToString(),
            ["attention"] = c.Attention.ToString(),
            ["weights"] = featurizer.WeightsSource,
        });
    }

    private static void CheckUsable(Data.TorchTransformerBase model, string what)
    {
        if (model.IsDisposed)
            throw new ObjectDisposedException(model.GetType().Name, $"The {what} was disposed, so its weights are gone; " +
                "export it before disposing it, or load it again (mlContext.Model.Load) and export that.");
    }

    /// <summary>The model's Score columns from its logits, as <see cref="TorchClassifierModel"/> computes them:
    /// multiclass Score = softmax; binary Score = z₁ − z₀ and Probability = σ(Score).</summary>
    /// <remarks><paramref name="rows"/> names the symbolic first dimension (default <c>batch</c>).</remarks>
    private static void ClassifierOutputs(OnnxGraphBuilder graph, OnnxValue logits, bool binary, string? rows = null)
    {
        var dims = new[] { rows };
        if (!binary)
        {
            graph.Output(graph.Softmax(logits, 1, "score"), OnnxExportExtensions.ScoreOutputName, dims);
            return;
        }
        var z1 = graph.Slice(logits, new long[] { 1 }, new long[] { 2 }, new long[] { 1 }, "logit1");
        var z0 = graph.Slice(logits, new long[] { 0 }, new long[] { 1 }, new long[] { 1 }, "logit0");
        var margin = graph.Squeeze(graph.Sub(z1, z0, "margin2"), new long[] { 1 }, "margin");
        graph.Output(margin, OnnxExportExtensions.ScoreOutputName, dims);
        graph.Output(graph.Sigmoid(margin, "probability"), OnnxExportExtensions.ProbabilityOutputName, dims);
    }

    private static Dictionary<string, string> Metadata(TorchClassifierModel model, Dictionary<string, string> extra)
    {
        extra["labels"] = JsonSerializer.Serialize(model.Labels.Names);
        return extra;
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
