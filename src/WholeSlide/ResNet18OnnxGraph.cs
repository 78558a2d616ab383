using System.Collections.Concurrent;
using Google.Protobuf;
using Onnx;

namespace MLNet.Attention.WholeSlide;

/// <summary>
/// The ONNX graphs of Microsoft.ML.DnnImageFeaturizer.ResNet18 (a CNTK export of the ImageNet ResNet-18 and its
/// preprocess graph), made batchable: the export fixes the batch at 1 in its input and output shapes only (no
/// Reshape/Flatten/Gemm nodes: Conv, BatchNormalization, Relu, MaxPool, Add, AveragePool), so a symbolic first
/// dimension lets ONNX Runtime run any batch with the same weights. The rewritten bytes are cached in memory per source
/// file (path, length, write time); nothing is written next to the package's files.
/// </summary>
internal static class ResNet18OnnxGraph
{
    /// <summary>The ResNet-18 graph's image input, float [batch, 3, 224, 224] (the preprocess graph's
    /// output).</summary>
    public const string ResNetInput = "Input247";

    /// <summary>The ResNet-18 graph's pooled output, float [batch, 512, 1, 1].</summary>
    public const string ResNetOutput = "Pooling395_Output_0";

    /// <summary>The package's folders and files under the <c>DnnImageModels</c> folder its props file copies.</summary>
    public const string ModelsFolder = "DnnImageModels";
    public static readonly string ResNetFile = Path.Combine("ResNet18Onnx", "ResNet18.onnx");
    public static readonly string PreprocessFile = Path.Combine("ResNetPrepOnnx", "ResNetPreprocess.onnx");

    private static readonly ConcurrentDictionary<(string Path, long Length, DateTime Written, string Extra),
        Lazy<byte[]>> Cache = new();

    /// <summary>The default models folder: <c>DnnImageModels</c> beside the application (the package's props file
    /// copies it into every consuming project's output).</summary>
    public static string DefaultModelDirectory => Path.Combine(AppContext.BaseDirectory, ModelsFolder);

    /// <summary>The batchable bytes of <paramref name="path"/>, rewritten once per process and file version.</summary>
    /// <param name="path">An ONNX file of the package.</param>
    /// <param name="pooledOutputs">Extra outputs: a GlobalAveragePool of each named tensor, as
    /// <c>NAME_pooled</c>.</param>
    public static byte[] BatchableBytes(string path, IReadOnlyList<string>? pooledOutputs = null)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new FileNotFoundException($"The ONNX model '{path}' was not found.", path);
        string extra = string.Join("|", pooledOutputs ?? Array.Empty<string>());
        var key = (info.FullName, info.Length, info.LastWriteTimeUtc, extra);
        return Cache.GetOrAdd(key, k =>
                new Lazy<byte[]>(() =>
                {
                    // Parsed from the stream: no 64 MB copy of the original bytes next to the parsed graph.
                    using var stream = File.OpenRead(k.Path);
                    return MakeBatchable(ModelProto.Parser.ParseFrom(stream), k.Path, pooledOutputs);
                }))
            .Value;
    }

    private static readonly ConcurrentDictionary<(string Path, long Length, DateTime Written), Lazy<string>> Hashes =
        new();

    /// <summary>The SHA-256 (hex) of <paramref name="path"/>, computed once per process and file version.</summary>
    public static string Sha256(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new FileNotFoundException($"The ONNX model '{path}' was not found.", path);
        return Hashes.GetOrAdd((info.FullName, info.Length, info.LastWriteTimeUtc), k => new Lazy<string>(() =>
        {
            using var stream = File.OpenRead(k.Path);
            return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(stream));
        })).Value;
    }

    /// <summary>Drops the cached rewritten graphs (about 64 MB for the ResNet-18).</summary>
    public static void ClearCache() => Cache.Clear();

    /// <summary>
    /// Rewrites a model whose batch is fixed at 1 in its graph inputs and outputs to a symbolic <c>batch</c> first
    /// dimension (and drops the intermediate shapes, which carry the fixed batch too); with
    /// <paramref name="pooledOutputs"/> a GlobalAveragePool output <c>NAME_pooled</c> is added for each named tensor.
    /// </summary>
    /// <exception cref="InvalidDataException">The graph has nodes that bake a shape (Reshape, Flatten, Gemm), or a
    /// named tensor is written by no node.</exception>
    public static byte[] MakeBatchable(byte[] model, string source, IReadOnlyList<string>? pooledOutputs = null) =>
        MakeBatchable(ModelProto.Parser.ParseFrom(model), source, pooledOutputs);

    private static byte[] MakeBatchable(ModelProto proto, string source, IReadOnlyList<string>? pooledOutputs)
    {
        var graph = proto.Graph;
        if (graph.Node.FirstOrDefault(n => n.OpType is "Reshape" or "Flatten" or "Gemm") is { } baked)
            throw new InvalidDataException($"{source}: node '{baked.Name}' ({baked.OpType}) bakes a shape; the batch " +
                "dimension cannot simply be made symbolic. Expected the CNTK ResNet-18 export of " +
                "Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1.");
        var initializers = graph.Initializer.Select(t => t.Name).ToHashSet();
        foreach (var value in graph.Input.Where(v => !initializers.Contains(v.Name)).Concat(graph.Output))
        {
            var shape = value.Type?.TensorType?.Shape;
            if (shape is null || shape.Dim.Count == 0)
                throw new InvalidDataException($"{source}: graph input/output '{value.Name}' has no shape; " +
                    "expected a tensor whose first dimension is the batch.");
            shape.Dim[0] = new TensorShapeProto.Types.Dimension { DimParam = "batch" };
        }
        graph.ValueInfo.Clear();
        foreach (var name in pooledOutputs ?? Array.Empty<string>())
        {
            if (!graph.Node.Any(n => n.Output.Contains(name)))
                throw new InvalidDataException($"{source}: no node writes '{name}'; name a tensor of the graph.");
            var pool = new NodeProto { OpType = "GlobalAveragePool", Name = name + "_gap" };
            pool.Input.Add(name);
            pool.Output.Add(name + "_pooled");
            graph.Node.Add(pool);
            graph.Output.Add(new ValueInfoProto
            {
                Name = name + "_pooled",
                Type = new TypeProto
                {
                    TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float },
                },
            });
        }
        return proto.ToByteArray();
    }
}
