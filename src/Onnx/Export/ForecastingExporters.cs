using MLNet.Attention.Forecasting;
using MLNet.Attention.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.OnnxExport.OnnxExportContext;

namespace MLNet.Attention.OnnxExport;

/// <summary>Exporters of the forecasting networks' layers (LayerNorm, the post-norm encoder layer and its multi-head
/// self-attention) and the forecasting networks themselves, which take several inputs (the scaled window, calendar
/// covariates, known-future covariates) and so are written by a call of their own, not through the registry.</summary>
internal static class ForecastingExporters
{
    public static void Register(OnnxModuleRegistry registry)
    {
        registry
            .Register<LayerNorm>(ExportLayerNorm)
            .Register<MultiHeadSelfAttention>(ExportSelfAttention)
            .Register<PostNormEncoderLayer>(ExportPostNormEncoderLayer);
    }

    /// <summary>LayerNorm over the last axis (LayerNormalization, opset 17).</summary>
    private static OnnxValue ExportLayerNorm(OnnxExportContext context, LayerNorm norm, OnnxValue x, string path)
    {
        long width = x.Shape[^1];
        if (norm.normalized_shape.Length != 1 || norm.normalized_shape[0] != width)
            throw new NotSupportedException($"ONNX export: the LayerNorm at '{path}' normalises over " +
                $"[{string.Join(", ", norm.normalized_shape)}]; the exporter writes a LayerNorm over the last axis of " +
                $"{x} only.");
        var g = context.Graph;
        string hint = Hint(path);
        var scale = norm.weight is null ? g.Initializer(hint + ".weight", Enumerable.Repeat(1f, (int)width).ToArray(), width)
            : context.Parameter(norm.weight, hint + ".weight");
        var bias = norm.bias is null ? g.Initializer(hint + ".bias", new float[width], width)
            : context.Parameter(norm.bias, hint + ".bias");
        return g.LayerNormalization(x, scale, bias, norm.eps, hint);
    }

    /// <summary>softmax(Q Kᵀ / √d_h) V per head on [B, T, D] (heads own contiguous channel blocks), then the output
    /// projection; dropout on the weights is the identity in evaluation.</summary>
    private static OnnxValue ExportSelfAttention(OnnxExportContext context, MultiHeadSelfAttention attention,
        OnnxValue x, string path)
    {
        RequireEval(attention, path);
        if (x.Rank != 3 || x.Shape[2] < 0)
            throw new NotSupportedException($"ONNX export: the MultiHeadSelfAttention at '{path}' takes [batch, tokens, " +
                $"width]; got {x}.");
        var g = context.Graph;
        string hint = Hint(path);
        long d = x.Shape[2], heads = attention.Heads, dh = d / heads;
        OnnxValue Project(string name, long[] perm)
        {
            var y = context.Export(Child<Linear>(attention, name, path), x, Join(path, name));
            y = g.Reshape(y, new long[] { 0, 0, heads, dh }, Hint(Join(path, name)) + ".heads");
            return g.Transpose(y, perm, Hint(Join(path, name)) + ".t");
        }
        var q = Project("query_projection", new long[] { 0, 2, 1, 3 });   // [B, H, T, dh]
        var k = Project("key_projection", new long[] { 0, 2, 3, 1 });     // [B, H, dh, T]
        var v = Project("value_projection", new long[] { 0, 2, 1, 3 });   // [B, H, T, dh]
        var scores = g.Mul(g.MatMul(q, k, hint + ".qk"), g.Scalar(hint + ".scale", (float)(1 / Math.Sqrt(dh))),
            hint + ".scores");
        var o = g.MatMul(g.Softmax(scores, -1, hint + ".softmax"), v, hint + ".attend");
        var merged = g.Reshape(g.Transpose(o, new long[] { 0, 2, 1, 3 }, hint + ".merge_t"), new long[] { 0, 0, d },
            hint + ".merge");
        return context.Export(Child<Linear>(attention, "out_projection", path), merged, Join(path, "out_projection"));
    }

    /// <summary>h = LN₁(x + Attn(x)); out = LN₂(h + W₂ act(W₁ h)) (dropout is the identity in evaluation).</summary>
    private static OnnxValue ExportPostNormEncoderLayer(OnnxExportContext context, PostNormEncoderLayer layer,
        OnnxValue x, string path)
    {
        RequireEval(layer, path);
        var g = context.Graph;
        string hint = Hint(path);
        OnnxValue Sub(string name, OnnxValue input) => context.Export(Child<nn.Module>(layer, name, path), input,
            Join(path, name));
        var h = Sub("norm1", g.Add(x, Sub("attention", x), hint + ".residual1"));
        var hidden = Sub("conv1", h);
        hidden = layer.UsesRelu ? g.Relu(hidden, hint + ".relu") : g.Gelu(hidden, hint + ".gelu");
        return Sub("norm2", g.Add(h, Sub("conv2", hidden), hint + ".residual2"));
    }

    /// <summary>
    /// The iTransformer's forward on scaled, zero-filled inputs, as <see cref="InvertedTransformerNetwork"/>'s: the
    /// per-window normalisation (μ and the biased σ over the lookback, σ = √(var + 1e-5)), variate tokens [B, C, L]
    /// (the future covariates' channels left out), calendar tokens appended un-normalised, known-future tokens embedded
    /// from their lookback and horizon values, the encoder, the projector, and the inverse normalisation.
    /// </summary>
    /// <param name="context">The export.</param>
    /// <param name="net">The network (eval mode).</param>
    /// <param name="window">[B, L, C] scaled window.</param>
    /// <param name="calendar">[B, L, M] calendar covariates, or null.</param>
    /// <param name="future">[B, S, F] scaled future covariates, or null.</param>
    /// <returns>[B, S, C − F] in scaled space.</returns>
    public static OnnxValue InvertedTransformer(OnnxExportContext context, InvertedTransformerNetwork net,
        OnnxValue window, OnnxValue? calendar, OnnxValue? future)
    {
        RequireEval(net, "");
        var g = context.Graph;
        var c = net.Config;
        long channels = window.Shape[2], f = c.FutureCovariates, variates = channels - f;
        if ((f > 0) != future.HasValue)
            throw new NotSupportedException($"ONNX export: the iTransformer reads {f} known-future covariates, the model " +
                $"{(future.HasValue ? "gives some" : "none")}.");
        OnnxValue x = window, mean = default, std = default, ahead = future.GetValueOrDefault();
        if (c.UseNorm)
        {
            mean = g.ReduceMean(window, new long[] { 1 }, keepDims: true, "norm.mean");           // [B, 1, C]
            var centred = g.Sub(window, mean, "norm.centred");
            var variance = g.ReduceMean(g.Mul(centred, centred, "norm.square"), new long[] { 1 }, keepDims: true,
                "norm.variance");
            std = g.Sqrt(g.Add(variance, g.Scalar("norm.eps", 1e-5f), "norm.variance_eps"), "norm.std");
            x = g.Div(centred, std, "norm.scaled");
            if (f > 0)
                ahead = g.Div(g.Sub(ahead, Channels(g, mean, variates, f, "norm.future_mean"), "norm.future_centred"),
                    Channels(g, std, variates, f, "norm.future_std"), "norm.future");
        }
        var tokens = g.Transpose(x, new long[] { 0, 2, 1 }, "tokens");                           // [B, C, L]
        if (f > 0) tokens = g.Slice(tokens, new long[] { 0 }, new long[] { variates }, new long[] { 1 }, "tokens.variates");
        if (calendar is { } marks)
            tokens = g.Concat(new[] { tokens, g.Transpose(marks, new long[] { 0, 2, 1 }, "tokens.calendar") }, 1,
                "tokens.all");
        var embedded = Embed(context, net, "enc_embedding", tokens);                              // [B, N', D]
        if (f > 0)
        {
            var lookback = g.Slice(x, new long[] { variates }, new long[] { channels }, new long[] { 2 }, "future.lookback");
            var futureTokens = g.Transpose(g.Concat(new[] { lookback, ahead }, 1, "future.series"), new long[] { 0, 2, 1 },
                "future.tokens");                                                                // [B, F, L + S]
            var futureEmbedded = Embed(context, net, "future_embedding", futureTokens);
            long all = embedded.Shape[1];
            var parts = new List<OnnxValue>
            {
                g.Slice(embedded, new long[] { 0 }, new long[] { variates }, new long[] { 1 }, "embedded.variates"),
                futureEmbedded,
            };
            if (all > variates)
                parts.Add(g.Slice(embedded, new long[] { variates }, new long[] { all }, new long[] { 1 }, "embedded.calendar"));
            embedded = g.Concat(parts, 1, "embedded");
        }
        var encoder = Child<nn.Module>(net, "encoder", "");
        RequireEval(encoder, "encoder");
        var h = embedded;
        var layers = Child<nn.Module>(encoder, "attn_layers", "encoder");
        foreach (var (name, layer) in layers.named_children())
            h = context.Export(layer, h, Join("encoder.attn_layers", name));
        h = context.Export(Child<LayerNorm>(encoder, "norm", "encoder"), h, "encoder.norm");
        var projected = context.Export(Child<Linear>(net, "projector", ""), h, "projector");     // [B, N', S]
        var y = g.Transpose(projected, new long[] { 0, 2, 1 }, "forecast.t");
        y = g.Slice(y, new long[] { 0 }, new long[] { variates }, new long[] { 2 }, "forecast.variates"); // [B, S, C − F]
        if (!c.UseNorm) return y;
        var scale = f > 0 ? Channels(g, std, 0, variates, "denorm.std") : std;
        var shift = f > 0 ? Channels(g, mean, 0, variates, "denorm.mean") : mean;
        return g.Add(g.Mul(y, scale, "denorm.scaled"), shift, "denorm");
    }

    /// <summary>The inverted embedding (Linear L → D on each token; its dropout is the identity in evaluation).</summary>
    private static OnnxValue Embed(OnnxExportContext context, nn.Module net, string name, OnnxValue tokens)
    {
        var embedding = Child<nn.Module>(net, name, "");
        RequireEval(embedding, name);
        return context.Export(Child<Linear>(embedding, "value_embedding", name), tokens, Join(name, "value_embedding"));
    }

    /// <summary>Channels [start, start + count) of a [B, ·, C] value.</summary>
    private static OnnxValue Channels(OnnxGraphBuilder g, OnnxValue x, long start, long count, string hint)
        => g.Slice(x, new long[] { start }, new long[] { start + count }, new long[] { 2 }, hint);
}
