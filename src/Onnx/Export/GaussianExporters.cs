using MLNet.Attention.Gaussian;
using MLNet.Attention.Layers;
using MLNet.Attention.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.OnnxExport.OnnxExportContext;

namespace MLNet.Attention.OnnxExport;

/// <summary>Exporters of the GAAM/DAAM classifier heads (src/Modules/Gaussian) on [B, L, D] layer features: DAAM, the
/// linear baseline and the multi-head-attention baseline (its attention block through the
/// <see cref="MultiHeadSelfAttention"/> exporter).</summary>
internal static class GaussianExporters
{
    public static void Register(OnnxModuleRegistry registry)
    {
        registry
            .Register<DaamClassifier>(ExportDaamClassifier)
            .Register<MultiHeadDensityAdaptiveAttention>(ExportMultiHeadDaam)
            .Register<LinearLayerClassifier>(ExportLinearLayerClassifier)
            .Register<AttentionLayerClassifier>(ExportAttentionLayerClassifier);
    }

    /// <summary>tokens = x + layer_embedding; h = tokens + MHA(tokens); Linear(mean over the layers of h), as the
    /// module's forward.</summary>
    private static OnnxValue ExportAttentionLayerClassifier(OnnxExportContext context, AttentionLayerClassifier net,
        OnnxValue x, string path)
    {
        var embedding = Parameter(net, "layer_embedding", path);
        RequireLayerFeatures(net, x, embedding.shape[0], embedding.shape[1], path);
        var g = context.Graph;
        string hint = Hint(path);
        var tokens = g.Add(x, context.Parameter(embedding, hint + ".layer_embedding"), hint + ".tokens");
        var attended = context.Export(Child<MultiHeadSelfAttention>(net, "attention", path), tokens,
            Join(path, "attention"));
        var h = g.Add(tokens, attended, hint + ".residual");
        var pooled = g.ReduceMean(h, new long[] { 1 }, keepDims: false, hint + ".pool");
        return context.Export(Child<Linear>(net, "fc", path), pooled, Join(path, "fc"));
    }

    /// <summary>DAAM over the layers, the h × w view, conv → ReLU → conv → ReLU, flatten, Linear.</summary>
    private static OnnxValue ExportDaamClassifier(OnnxExportContext context, DaamClassifier net, OnnxValue x, string path)
    {
        RequireLayerFeatures(net, x, net.Attention.Layers, net.Attention.Features, path);
        var g = context.Graph;
        var h = context.Export(net.Attention, x, Join(path, "daam"));
        h = g.Reshape(h, new long[] { 0, net.Attention.Layers, net.Height, net.Width }, Hint(Join(path, "view")));
        h = g.Relu(context.Export(Child<Conv2d>(net, "conv1", path), h, Join(path, "conv1")), Hint(Join(path, "relu1")));
        h = g.Relu(context.Export(Child<Conv2d>(net, "conv2", path), h, Join(path, "conv2")), Hint(Join(path, "relu2")));
        h = g.Flatten(h, 1, Hint(Join(path, "flatten")));
        return context.Export(Child<Linear>(net, "fc", path), h, Join(path, "fc"));
    }

    /// <summary>
    /// x ⊙ w with the density weights of all heads at once, as the module's forward: per head, over the head's L/H
    /// layers, μ = mean(y), σ² = |mean(y²) − μ²| + 1e-8, z = (y − (μ + δ)) / √(σ² + ε), w = exp(−z² / (2c)).
    /// </summary>
    private static OnnxValue ExportMultiHeadDaam(OnnxExportContext context, MultiHeadDensityAdaptiveAttention daam,
        OnnxValue x, string path)
    {
        RequireLayerFeatures(daam, x, daam.Layers, daam.Features, path);
        var g = context.Graph;
        string hint = Hint(path);
        var heads = daam.HeadModules;
        if (heads.Any(h => h.Eps != heads[0].Eps))
            throw new NotSupportedException($"ONNX export: the heads of the DAAM at '{path}' have different ε; the " +
                "module's own forward uses the first head's.");
        OnnxValue twoC, offset;
        using (NewDisposeScope())
        {
            Tensor Stacked(string name)
                => stack(heads.Select((h, i) => Parameter(h, name, Join(path, $"gcts.{i}"))).ToArray());
            twoC = g.Initializer(hint + ".two_c", Stacked("c").mul(TorchScalars.Of(2L)));                     // [H, 1, D]; ×2 is exact
            offset = g.Initializer(hint + ".mean_offset", Stacked("mean_offset"));     // [H, 1, D]
        }
        var y = g.Reshape(x, new long[] { 0, daam.Heads, daam.Layers / daam.Heads, daam.Features }, hint + ".heads");
        var mean = g.ReduceMean(y, new long[] { 2 }, keepDims: true, hint + ".mean");
        var meanSquare = g.ReduceMean(g.Mul(y, y, hint + ".square"), new long[] { 2 }, keepDims: true,
            hint + ".mean_square");
        var spread = g.Abs(g.Sub(meanSquare, g.Mul(mean, mean, hint + ".mean2"), hint + ".var_raw"), hint + ".var_abs");
        var variance = g.Add(spread, g.Scalar(hint + ".var_floor", 1e-8f), hint + ".variance");
        var std = g.Sqrt(g.Add(variance, g.Scalar(hint + ".eps", (float)heads[0].Eps), hint + ".var_eps"), hint + ".std");
        var z = g.Div(g.Sub(y, g.Add(mean, offset, hint + ".centre"), hint + ".centred"), std, hint + ".z");
        var w = g.Exp(g.Div(g.Neg(g.Mul(z, z, hint + ".z2"), hint + ".neg"), twoC, hint + ".exponent"), hint + ".weights");
        w = g.Reshape(w, new long[] { 0, daam.Layers, daam.Features }, hint + ".weights_layers");
        return g.Mul(x, w, hint);
    }

    private static OnnxValue ExportLinearLayerClassifier(OnnxExportContext context, LinearLayerClassifier net, OnnxValue x,
        string path)
    {
        if (x.Rank != 3)
            throw new NotSupportedException($"ONNX export: the LinearLayerClassifier at '{path}' is exported for [batch, " +
                $"layers, features] inputs; got {x}.");
        var flat = context.Graph.Flatten(x, 1, Hint(Join(path, "flatten")));
        return context.Export(Child<Linear>(net, "fc", path), flat, Join(path, "fc"));
    }

    private static Tensor Parameter(nn.Module module, string name, string path)
        => module.named_parameters().Where(p => p.name == name).Select(p => (Tensor)p.parameter.detach()).FirstOrDefault()
            ?? throw new NotSupportedException($"ONNX export: '{path}' has no parameter '{name}'.");

    // The 4-D [B, L, T, D] inputs these modules also take (time pooled inside) are not what the classifier feeds.
    private static void RequireLayerFeatures(nn.Module module, OnnxValue x, long layers, long features, string path)
    {
        if (x.Rank != 3 || x.Shape[1] != layers || x.Shape[2] != features)
            throw new NotSupportedException($"ONNX export: the {module.GetType().Name} at '{path}' is exported for " +
                $"[batch, {layers}, {features}] inputs; got {x}.");
    }
}
