using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.OnnxExport;

/// <summary>Writes the eval-mode forward of one module into the graph: its input value in, its output value out.
/// <paramref name="path"/> is the module's state-dict path (names the graph's tensors and the error messages).</summary>
internal delegate OnnxValue OnnxModuleExporter(OnnxExportContext context, nn.Module module, OnnxValue input, string path);

/// <summary>
/// Which TorchSharp module types can be exported, each with its export function. Lookup is by the exact runtime type:
/// a subclass may override <c>forward</c>, so it is never exported as its base (that would be a wrong graph).
/// </summary>
internal sealed class OnnxModuleRegistry
{
    private readonly Dictionary<Type, OnnxModuleExporter> _exporters = new();

    /// <summary>Every module of this pack's exported models (layers, vision blocks, DAAM heads, MIL networks).</summary>
    public static OnnxModuleRegistry Default { get; } = CreateDefault();

    private static OnnxModuleRegistry CreateDefault()
    {
        var registry = new OnnxModuleRegistry();
        LayerExporters.Register(registry);
        VisionExporters.Register(registry);
        GaussianExporters.Register(registry);
        ForecastingExporters.Register(registry);
        MilExporters.Register(registry);
        return registry;
    }

    /// <summary>Adds or replaces the exporter of <typeparamref name="TModule"/>.</summary>
    public OnnxModuleRegistry Register<TModule>(Func<OnnxExportContext, TModule, OnnxValue, string, OnnxValue> export)
        where TModule : nn.Module
    {
        _exporters[typeof(TModule)] = (context, module, input, path) => export(context, (TModule)module, input, path);
        return this;
    }

    /// <summary>Whether modules of exactly this type can be exported.</summary>
    public bool CanExport(Type moduleType) => _exporters.ContainsKey(moduleType);

    /// <summary>The exportable module types, by name (for error messages).</summary>
    public IEnumerable<string> TypeNames => _exporters.Keys.Select(t => t.Name).Order(StringComparer.Ordinal);

    /// <summary>A copy that can be extended without changing <see cref="Default"/>.</summary>
    public OnnxModuleRegistry Clone()
    {
        var copy = new OnnxModuleRegistry();
        foreach (var (type, exporter) in _exporters) copy._exporters[type] = exporter;
        return copy;
    }

    internal bool TryGet(Type moduleType, out OnnxModuleExporter exporter) => _exporters.TryGetValue(moduleType, out exporter!);
}

/// <summary>One export in progress: the graph, the registry, and the module parameters already written (a module
/// used twice, like ELA's shared conv, writes its weights once).</summary>
internal sealed class OnnxExportContext
{
    private readonly OnnxModuleRegistry _registry;
    private readonly Dictionary<(IntPtr Handle, string Shape), OnnxValue> _parameters = new();

    public OnnxExportContext(OnnxGraphBuilder graph, OnnxModuleRegistry? registry = null)
    {
        Graph = graph;
        _registry = registry ?? OnnxModuleRegistry.Default;
    }

    public OnnxGraphBuilder Graph { get; }

    /// <summary>Fold an eval BatchNorm into the convolution before it (default); false writes BatchNormalization
    /// nodes (ONNX Runtime fuses them itself when it optimises the graph).</summary>
    public bool FoldBatchNorm { get; init; } = true;

    /// <summary>Exports <paramref name="module"/> applied to <paramref name="input"/>.</summary>
    /// <exception cref="NotSupportedException">No exporter knows the module's type; the message names the type and
    /// its path in the network.</exception>
    public OnnxValue Export(nn.Module module, OnnxValue input, string path)
    {
        var type = module.GetType();
        if (!_registry.TryGet(type, out var exporter))
            throw new NotSupportedException($"ONNX export: the module at '{Describe(path)}' is a {type.FullName}, which " +
                $"has no ONNX exporter, so this model cannot be exported (no graph was written). Exportable modules: " +
                $"{string.Join(", ", _registry.TypeNames)}.");
        return exporter(this, module, input, path);
    }

    /// <summary>A float32 initializer for a module's parameter or buffer, optionally viewed as
    /// <paramref name="shape"/>; the same tensor in the same shape is written once.</summary>
    public OnnxValue Parameter(Tensor tensor, string name, params long[] shape)
    {
        var key = (tensor.Handle, string.Join(",", shape));
        if (_parameters.TryGetValue(key, out var value)) return value;
        using var scope = NewDisposeScope();
        value = Graph.Initializer(name, shape.Length == 0 ? tensor : tensor.reshape(shape));
        _parameters[key] = value;
        return value;
    }

    /// <summary>The child module <paramref name="name"/> of <paramref name="parent"/>, as <typeparamref name="T"/>.</summary>
    public static T Child<T>(nn.Module parent, string name, string path) where T : nn.Module
    {
        foreach (var (childName, child) in parent.named_children())
            if (childName == name)
                return child as T ?? throw new NotSupportedException($"ONNX export: '{Describe(Join(path, name))}' is a " +
                    $"{child.GetType().FullName}; the {parent.GetType().Name} exporter expects a {typeof(T).Name}.");
        throw new NotSupportedException($"ONNX export: the {parent.GetType().Name} at '{Describe(path)}' has no child " +
            $"'{name}'; this exporter does not match the module's version.");
    }

    /// <summary>The child <paramref name="name"/>, or null when the parent does not have it.</summary>
    public static nn.Module? OptionalChild(nn.Module parent, string name)
        => parent.named_children().Where(c => c.name == name).Select(c => c.module).FirstOrDefault();

    /// <summary>Refuses a module in training mode, whose forward (batch statistics, dropout) is not the eval graph.</summary>
    public static void RequireEval(nn.Module module, string path)
    {
        if (module.training)
            throw new InvalidOperationException($"ONNX export: the {module.GetType().Name} at '{Describe(path)}' is in " +
                "training mode; the graph is the evaluation forward. Call eval() on the network before exporting.");
    }

    /// <summary>The state-dict path of a child.</summary>
    public static string Join(string path, string child) => path.Length == 0 ? child : path + "." + child;

    /// <summary>A tensor name hint for a path ("network" at the root).</summary>
    public static string Hint(string path) => path.Length == 0 ? "network" : path;

    private static string Describe(string path) => path.Length == 0 ? "(the network itself)" : path;
}
