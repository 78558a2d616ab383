using MLNet.Attention.Forecasting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.OnnxExport.OnnxExportContext;

namespace MLNet.Attention.OnnxExport;

/// <summary>Exporters of the CRIB forecaster (src/Modules/Forecasting/Crib*): its causal temporal convolutions with
/// weight normalisation, its encoder layers and attention, its prediction head, and the network's forecast path
/// (RevIN, patches with the sinusoidal positions, the token encoder, the head). The information-bottleneck head and
/// the second view feed only the training loss and are not part of the graph, as they are not of the forecast.</summary>
internal static class CribExporters
{
    public static void Register(OnnxModuleRegistry registry)
    {
        registry
            .Register<WeightNormConv2d>(ExportWeightNormConv)
            .Register<CribTemporalBlock>(ExportTemporalBlock)
            .Register<CribTemporalConvNet>((c, m, x, p) => c.Export(Child<Sequential>(m, "net", p), x, Join(p, "net")))
            .Register<CribAttention>(ExportAttention)
            .Register<CribEncoderLayer>(ExportEncoderLayer)
            .Register<CribTokenEncoder>(ExportTokenEncoder)
            .Register<CribPredictor>(ExportPredictor);
    }

    /// <summary>Conv2d (1 × k) with the effective weight g·V/‖V‖, the time axis padded on the left by (k − 1)·dilation
    /// (causal).</summary>
    private static OnnxValue ExportWeightNormConv(OnnxExportContext context, WeightNormConv2d conv, OnnxValue x,
        string path)
    {
        string hint = Hint(path);
        OnnxValue weight, bias;
        using (NewDisposeScope())
        {
            weight = context.Graph.Initializer(hint + ".weight", conv.EffectiveWeight().detach());
            bias = context.Parameter(OwnParameter(conv, "bias"), hint + ".bias");
        }
        return context.Graph.Conv(x, weight, bias, new long[] { 1, 1 }, new long[] { 0, conv.Padding, 0, 0 },
            new long[] { 1, conv.Dilation }, 1, hint);
    }

    /// <summary>relu(conv2(relu(conv1(x)))) + (downsample(x) or x); dropout is the identity in evaluation.</summary>
    private static OnnxValue ExportTemporalBlock(OnnxExportContext context, CribTemporalBlock block, OnnxValue x,
        string path)
    {
        RequireEval(block, path);
        var g = context.Graph;
        string hint = Hint(path);
        var h = g.Relu(context.Export(Child<WeightNormConv2d>(block, "conv1", path), x, Join(path, "conv1")),
            hint + ".relu1");
        h = g.Relu(context.Export(Child<WeightNormConv2d>(block, "conv2", path), h, Join(path, "conv2")),
            hint + ".relu2");
        var residual = OptionalChild(block, "downsample") is { } downsample
            ? context.Export(downsample, x, Join(path, "downsample")) : x;
        return g.Add(h, residual, hint);
    }

    /// <summary>softmax(Q Kᵀ / √E) V per head (K = V = Q unless the layer has separate projections), merged as the
    /// reference does (its flat [B, H, T, E] read as [B, T, D]) or per token, then the output projection.</summary>
    private static OnnxValue ExportAttention(OnnxExportContext context, CribAttention attention, OnnxValue x,
        string path)
    {
        RequireEval(attention, path);
        var g = context.Graph;
        string hint = Hint(path);
        long t = x.Shape[1], d = x.Shape[2], heads = attention.Heads, e = d / heads;
        OnnxValue Heads(string name) => g.Reshape(context.Export(Child<Linear>(attention, name, path), x,
            Join(path, name)), new long[] { 0, t, heads, e }, Hint(Join(path, name)) + ".heads");  // [B, T, H, E]
        var q = Heads("query_projection");
        var k = attention.SeparateKeyValue ? Heads("key_projection") : q;
        var v = attention.SeparateKeyValue ? Heads("value_projection") : q;
        var scores = g.Mul(g.MatMul(g.Transpose(q, new long[] { 0, 2, 1, 3 }, hint + ".q"),
                g.Transpose(k, new long[] { 0, 2, 3, 1 }, hint + ".k"), hint + ".qk"),
            g.Scalar(hint + ".scale", (float)(1 / Math.Sqrt(e))), hint + ".scores");
        var o = g.MatMul(g.Softmax(scores, -1, hint + ".softmax"), g.Transpose(v, new long[] { 0, 2, 1, 3 }, hint + ".v"),
            hint + ".attend");                                                                     // [B, H, T, E]
        var merged = attention.StandardMerge
            ? g.Reshape(g.Transpose(o, new long[] { 0, 2, 1, 3 }, hint + ".merge_t"), new long[] { 0, t, d },
                hint + ".merge")
            : g.Reshape(o, new long[] { 0, t, d }, hint + ".merge");
        return context.Export(Child<Linear>(attention, "out_projection", path), merged, Join(path, "out_projection"));
    }

    /// <summary>h = x + Attn(x); out = LN₂(h + W₂ act(W₁ LN₁(h))), the 1 × 1 convolutions as per-token linear
    /// maps.</summary>
    private static OnnxValue ExportEncoderLayer(OnnxExportContext context, CribEncoderLayer layer, OnnxValue x,
        string path)
    {
        RequireEval(layer, path);
        var g = context.Graph;
        string hint = Hint(path);
        var h = g.Add(x, context.Export(Child<CribAttention>(layer, "attention", path), x, Join(path, "attention")),
            hint + ".residual1");
        var y = context.Export(Child<LayerNorm>(layer, "norm1", path), h, Join(path, "norm1"));
        y = PointwiseConv(context, Child<Conv1d>(layer, "conv1", path), y, Join(path, "conv1"));
        y = layer.UsesRelu ? g.Relu(y, hint + ".relu") : g.Gelu(y, hint + ".gelu");
        y = PointwiseConv(context, Child<Conv1d>(layer, "conv2", path), y, Join(path, "conv2"));
        return context.Export(Child<LayerNorm>(layer, "norm2", path), g.Add(h, y, hint + ".residual2"),
            Join(path, "norm2"));
    }

    /// <summary>A kernel-1 Conv1d applied as the layer does: linear(x, W.squeeze(−1), b) on [B, T, D].</summary>
    private static OnnxValue PointwiseConv(OnnxExportContext context, Conv1d conv, OnnxValue x, string path)
    {
        var g = context.Graph;
        string hint = Hint(path);
        OnnxValue weight;
        using (NewDisposeScope()) weight = g.Initializer(hint + ".weight_t", conv.weight!.detach().squeeze(-1).t());
        var y = g.MatMul(x, weight, hint + ".matmul");
        return conv.bias is null ? y : g.Add(y, context.Parameter(conv.bias, hint + ".bias"), hint);
    }

    private static OnnxValue ExportTokenEncoder(OnnxExportContext context, CribTokenEncoder encoder, OnnxValue x,
        string path)
    {
        foreach (var (name, layer) in Child<nn.Module>(encoder, "attn_layers", path).named_children())
            x = context.Export(layer, x, Join(Join(path, "attn_layers"), name));
        return context.Export(Child<LayerNorm>(encoder, "norm_layer", path), x, Join(path, "norm_layer"));
    }

    /// <summary>Tokens [B, P·N, D] regrouped per variate [B, N, P·D] → Linear → ReLU → Linear → [B, S, N].</summary>
    private static OnnxValue ExportPredictor(OnnxExportContext context, CribPredictor predictor, OnnxValue tokens,
        string path)
    {
        var g = context.Graph;
        string hint = Hint(path);
        var first = Child<Linear>(predictor, "prediction_1", path);
        long d = tokens.Shape[2], patches = first.in_features / d, n = tokens.Shape[1] / patches;
        var grouped = g.Reshape(g.Transpose(g.Reshape(tokens, new long[] { 0, patches, n, d }, hint + ".grid"),
            new long[] { 0, 2, 1, 3 }, hint + ".by_variate"), new long[] { 0, n, patches * d }, hint + ".grouped");
        var h = g.Relu(context.Export(first, grouped, Join(path, "prediction_1")), hint + ".relu");
        var y = context.Export(Child<Linear>(predictor, "prediction_2", path), h, Join(path, "prediction_2"));
        return g.Transpose(y, new long[] { 0, 2, 1 }, hint);
    }

    /// <summary>
    /// The CRIB forecast on a scaled, zero-filled window [B, L, N], as <see cref="CribNetwork"/>'s forward: RevIN
    /// (μ and the biased σ over the lookback, the scalar affine), non-overlapping patches [B, P, N, l] plus the
    /// sinusoidal positions of tokens r = p·N + n, the causal TCN embedding along the patches, the token encoder, the
    /// head, and RevIN's inverse ((y − β)/(γ + 1e-10)·σ + μ).
    /// </summary>
    public static OnnxValue Network(OnnxExportContext context, CribNetwork net, OnnxValue window)
    {
        RequireEval(net, "");
        var g = context.Graph;
        var c = net.Config;
        long n = window.Shape[2], p = c.Patches, l = c.PatchLength;
        var revin = Child<CribRevIN>(net, "revinlayer", "");
        var gamma = context.Parameter(OwnParameter(revin, "affine_weight"), "revinlayer.affine_weight");
        var beta = context.Parameter(OwnParameter(revin, "affine_bias"), "revinlayer.affine_bias");
        var mean = g.ReduceMean(window, new long[] { 1 }, keepDims: true, "revin.mean");
        var centred = g.Sub(window, mean, "revin.centred");
        var variance = g.ReduceMean(g.Mul(centred, centred, "revin.square"), new long[] { 1 }, keepDims: true,
            "revin.variance");
        var std = g.Sqrt(g.Add(variance, g.Scalar("revin.eps", 1e-5f), "revin.variance_eps"), "revin.std");
        var normalised = g.Add(g.Mul(g.Div(centred, std, "revin.scaled"), gamma, "revin.affine"), beta, "revin");

        var tokens = g.Reshape(g.Transpose(g.Reshape(normalised, new long[] { 0, p, l, n }, "patches.split"),
            new long[] { 0, 1, 3, 2 }, "patches.grid"), new long[] { 0, p * n, l }, "patches");      // [B, P·N, l]
        OnnxValue positions;
        using (NewDisposeScope())
            positions = g.Initializer("enc_pos_emded.pe",
                Child<CribPositionalTable>(net, "enc_pos_emded", "").Slice(p * n, l).contiguous());
        var x1 = g.Reshape(g.Add(tokens, positions, "patches.positioned"), new long[] { 0, p, n, l }, "x1");

        var encoder = Child<CribEncoder>(net, "encoder", "");
        var embedded = context.Export(Child<CribTemporalConvNet>(encoder, "enc_embedding_2", "encoder"),
            g.Transpose(x1, new long[] { 0, 3, 2, 1 }, "tcn.input"), "encoder.enc_embedding_2");     // [B, D, N, P]
        long d = embedded.Shape[1];
        var encoded = g.Reshape(g.Transpose(embedded, new long[] { 0, 3, 2, 1 }, "tokens.grid"),
            new long[] { 0, p * n, d }, "tokens");                                                     // [B, P·N, D]
        encoded = context.Export(Child<CribTokenEncoder>(encoder, "encoder", "encoder"), encoded, "encoder.encoder");
        var y = context.Export(Child<CribPredictor>(net, "predictor", ""), encoded, "predictor");       // [B, S, N]
        var unscaled = g.Div(g.Sub(y, beta, "revin_inverse.shift"),
            g.Add(gamma, g.Scalar("revin_inverse.eps", 1e-10f), "revin_inverse.gamma_eps"), "revin_inverse.scaled");
        return g.Add(g.Mul(unscaled, std, "revin_inverse.std"), mean, "revin_inverse");
    }

    /// <summary>The module's own parameter <paramref name="name"/> (not a child's).</summary>
    private static Tensor OwnParameter(nn.Module module, string name)
        => module.named_parameters(recurse: false).Where(p => p.name == name).Select(p => p.parameter).FirstOrDefault()
           ?? throw new NotSupportedException($"ONNX export: the {module.GetType().Name} has no parameter '{name}'; " +
               "this exporter does not match the module's version.");
}
