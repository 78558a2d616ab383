using MLNet.Attention.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.OnnxExport.OnnxExportContext;
using OurBatchNorm2d = MLNet.Attention.Layers.BatchNorm2d;

namespace MLNet.Attention.OnnxExport;

/// <summary>Exporters of the generic layers: convolutions (with an eval BatchNorm folded into a preceding conv),
/// BatchNorm, GroupNorm, activations, pooling, Linear, Dropout/Identity and Sequential.</summary>
internal static class LayerExporters
{
    public static void Register(OnnxModuleRegistry registry)
    {
        registry
            .Register<Sequential>(ExportSequential)
            .Register<Conv1d>((c, m, x, p) => ConvBn(c, m, null, x, p, ""))
            .Register<Conv2d>((c, m, x, p) => ConvBn(c, m, null, x, p, ""))
            .Register<OurBatchNorm2d>(ExportBatchNorm)
            .Register<BatchNorm1d>(ExportBatchNorm)
            .Register<BatchNorm2d>(ExportBatchNorm)
            .Register<GroupNorm>(ExportGroupNorm)
            .Register<ReLU>((c, _, x, p) => c.Graph.Relu(x, Hint(p)))
            .Register<ReLU6>((c, _, x, p) => c.Graph.Clip(x, 0f, 6f, Hint(p)))
            .Register<Hardtanh>((c, m, x, p) => c.Graph.Clip(x, (float)m.min_val, (float)m.max_val, Hint(p)))
            .Register<Sigmoid>((c, _, x, p) => c.Graph.Sigmoid(x, Hint(p)))
            .Register<Identity>((_, _, x, _) => x)
            .Register<Dropout>((_, m, x, p) => { RequireEval(m, p); return x; })
            .Register<MaxPool2d>(ExportMaxPool)
            .Register<Linear>(ExportLinear);
    }

    private static OnnxValue ExportSequential(OnnxExportContext context, Sequential sequential, OnnxValue x, string path)
    {
        var children = sequential.named_children().ToArray();
        for (int i = 0; i < children.Length; i++)
        {
            var (name, module) = children[i];
            string childPath = Join(path, name);
            // Conv → BatchNorm (eval): one Conv with the normalisation folded into its weights and bias.
            if (module is Conv1d or Conv2d && i + 1 < children.Length && IsFoldable(children[i + 1].module, out var bn))
            {
                x = ConvBn(context, (Convolution)module, bn, x, childPath, Join(path, children[i + 1].name));
                i++;
                continue;
            }
            x = context.Export(module, x, childPath);
        }
        return x;
    }

    /// <summary>Whether <paramref name="module"/> is an exportable eval-mode BatchNorm with running statistics.</summary>
    internal static bool IsFoldable(nn.Module module, out BatchNorm bn)
    {
        bn = (module as BatchNorm)!;
        return module is OurBatchNorm2d or BatchNorm2d or BatchNorm1d && !module.training
            && bn.running_mean is not null && bn.running_var is not null;
    }

    /// <summary>A Conv1d/Conv2d, optionally followed by an eval BatchNorm folded in (computed in float64):
    /// W' = W·γ/√(σ²+ε) per output channel, b' = (b − μ)·γ/√(σ²+ε) + β.</summary>
    internal static OnnxValue ConvBn(OnnxExportContext context, Convolution conv, BatchNorm? bn, OnnxValue x,
        string path, string bnPath)
    {
        if (bn is not null && !context.FoldBatchNorm)
            return ExportBatchNorm(context, bn, ConvBn(context, conv, null, x, path, ""), bnPath);
        CheckConv(conv, path);
        int spatial = conv.kernel_size.Length;
        if (x.Rank != spatial + 2)
            throw new NotSupportedException($"ONNX export: the {conv.GetType().Name} at '{path}' gets a rank-{x.Rank} " +
                $"input {x}; it takes [batch, channels, {(spatial == 1 ? "length" : "height, width")}].");
        OnnxValue weight;
        OnnxValue? bias;
        if (bn is null)
        {
            weight = context.Parameter(conv.weight!, Hint(path) + ".weight");
            bias = conv.bias is null ? null : context.Parameter(conv.bias, Hint(path) + ".bias");
        }
        else
        {
            CheckBatchNorm(bn, bnPath);
            using var scope = NewDisposeScope();
            var (scale, shift) = BatchNormAffine(bn);
            var w = conv.weight!.detach().to_type(ScalarType.Float64);
            var b = conv.bias is null ? zeros_like(scale) : conv.bias.detach().to_type(ScalarType.Float64);
            var shape = new long[w.dim()];
            Array.Fill(shape, 1L);
            shape[0] = -1;
            weight = context.Graph.Initializer(Hint(path) + ".weight_bn", w * scale.view(shape));
            bias = context.Graph.Initializer(Hint(path) + ".bias_bn", (b * scale).add(shift, TorchScalars.One));
        }
        var pads = conv.padding!.Concat(conv.padding!).ToArray();
        return context.Graph.Conv(x, weight, bias, conv.stride, pads, conv.dilation, conv.groups, Hint(path));
    }

    private static void CheckConv(Convolution conv, string path)
    {
        string? problem = conv.transposed ? "is a transposed convolution"
            : conv.padding_mode != PaddingModes.Zeros ? $"pads with {conv.padding_mode} (only zero padding is exported)"
            : conv.padding_type is { } type && type != Padding.Valid
                ? $"uses padding '{type}' (only explicit padding is exported)"
            : conv.padding is null || conv.padding.Length != conv.kernel_size.Length ? "has no explicit padding per axis"
            : null;
        if (problem is not null)
            throw new NotSupportedException($"ONNX export: the {conv.GetType().Name} at '{path}' {problem}.");
    }

    private static void CheckBatchNorm(BatchNorm bn, string path)
    {
        RequireEval(bn, path);
        if (bn.running_mean is null || bn.running_var is null)
            throw new NotSupportedException($"ONNX export: the {bn.GetType().Name} at '{path}' has no running " +
                "statistics, so its evaluation forward normalises by batch statistics, which this exporter does not write.");
    }

    /// <summary>The eval BatchNorm as a per-channel float64 affine map y = x·scale + shift.</summary>
    internal static (Tensor Scale, Tensor Shift) BatchNormAffine(BatchNorm bn)
    {
        var mean = bn.running_mean!.detach().to_type(ScalarType.Float64);
        var variance = bn.running_var!.detach().to_type(ScalarType.Float64);
        var gamma = bn.weight is null ? ones_like(mean) : bn.weight.detach().to_type(ScalarType.Float64);
        var beta = bn.bias is null ? zeros_like(mean) : bn.bias.detach().to_type(ScalarType.Float64);
        using var eps = bn.eps.ToScalar();   // explicit Scalars only (see TorchScalars)
        var scale = gamma / variance.add(eps, TorchScalars.One).sqrt();
        return (scale, beta - mean * scale);
    }

    private static OnnxValue ExportBatchNorm(OnnxExportContext context, BatchNorm bn, OnnxValue x, string path)
    {
        CheckBatchNorm(bn, path);
        var g = context.Graph;
        string hint = Hint(path);
        long c = bn.num_features;
        var scale = bn.weight is null ? g.Initializer(hint + ".weight", Enumerable.Repeat(1f, (int)c).ToArray(), c)
            : context.Parameter(bn.weight, hint + ".weight");
        var bias = bn.bias is null ? g.Initializer(hint + ".bias", new float[c], c)
            : context.Parameter(bn.bias, hint + ".bias");
        return g.BatchNormalization(x, scale, bias, context.Parameter(bn.running_mean!, hint + ".running_mean"),
            context.Parameter(bn.running_var!, hint + ".running_var"), bn.eps, hint);
    }

    private static OnnxValue ExportGroupNorm(OnnxExportContext context, GroupNorm gn, OnnxValue x, string path)
    {
        if (x.Rank < 2 || x.Shape[1] < 0)
            throw new NotSupportedException($"ONNX export: the GroupNorm at '{path}' needs an input [batch, channels, …] " +
                $"with a known channel count; got {x}.");
        var channelShape = new long[x.Rank - 1];
        Array.Fill(channelShape, 1L);
        channelShape[0] = x.Shape[1];
        string hint = Hint(path);
        OnnxValue? weight = gn.affine && gn.weight is not null
            ? context.Parameter(gn.weight, hint + ".weight", channelShape) : null;
        OnnxValue? bias = gn.affine && gn.bias is not null
            ? context.Parameter(gn.bias, hint + ".bias", channelShape) : null;
        return context.Graph.GroupNormalization(x, gn.num_groups, weight, bias, gn.eps, hint);
    }

    private static OnnxValue ExportMaxPool(OnnxExportContext context, MaxPool2d pool, OnnxValue x, string path)
    {
        if (pool.ceil_mode || pool.dilation is { } d && d.Any(v => v != 1))
            throw new NotSupportedException($"ONNX export: the MaxPool2d at '{path}' uses ceil_mode or dilation, " +
                "which this exporter does not write.");
        long[] Pair(long[]? v, long fallback) => v is null || v.Length == 0 ? new[] { fallback, fallback }
            : v.Length == 1 ? new[] { v[0], v[0] } : v;
        var kernel = Pair(pool.kernel_size, 1);
        var strides = Pair(pool.stride, kernel[0]);
        var pads = Pair(pool.padding, 0);
        return context.Graph.MaxPool(x, kernel, strides, pads.Concat(pads).ToArray(), Hint(path));
    }

    /// <summary>Linear: Gemm on [B, in]; MatMul with Wᵀ + b on higher ranks (as nn.Linear broadcasts).</summary>
    private static OnnxValue ExportLinear(OnnxExportContext context, Linear linear, OnnxValue x, string path)
    {
        string hint = Hint(path);
        var g = context.Graph;
        var bias = linear.bias is null ? (OnnxValue?)null : context.Parameter(linear.bias, hint + ".bias");
        if (x.Rank == 2) return g.Gemm(x, context.Parameter(linear.weight!, hint + ".weight"), bias, transB: true, hint);
        OnnxValue transposed;
        using (NewDisposeScope()) transposed = g.Initializer(hint + ".weight_t", linear.weight!.detach().t());
        var y = g.MatMul(x, transposed, hint + ".matmul");
        return bias is { } b ? g.Add(y, b, hint) : y;
    }
}
