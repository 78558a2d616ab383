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
            .Register<PostNormEncoderLayer>(ExportPostNormEncoderLayer)
            .Register<RmsNorm>(ExportRmsNorm)
            .Register<SwiGluMlp>(ExportSwiGlu);
        CribExporters.Register(registry);
    }

    /// <summary>RMSNorm: x / √(mean(x²) + ε) · w over the last axis.</summary>
    private static OnnxValue ExportRmsNorm(OnnxExportContext context, RmsNorm norm, OnnxValue x, string path)
    {
        var g = context.Graph;
        string hint = Hint(path);
        var meanSquare = g.ReduceMean(g.Mul(x, x, hint + ".square"), new long[] { -1 }, keepDims: true, hint + ".ms");
        var rms = g.Sqrt(g.Add(meanSquare, g.Scalar(hint + ".eps", (float)norm.Eps), hint + ".ms_eps"), hint + ".rms");
        return g.Mul(g.Div(x, rms, hint + ".normalised"), context.Parameter(norm.Weight, hint + ".weight"), hint);
    }

    /// <summary>SwiGLU: down(silu(gate(x)) · up(x)), bias-free.</summary>
    private static OnnxValue ExportSwiGlu(OnnxExportContext context, SwiGluMlp mlp, OnnxValue x, string path)
    {
        var g = context.Graph;
        string hint = Hint(path);
        OnnxValue Project(string name, OnnxValue input)
            => context.Export(Child<Linear>(mlp, name, path), input, Join(path, name));
        var gate = Project("gate_proj", x);
        var silu = g.Mul(gate, g.Sigmoid(gate, hint + ".sigmoid"), hint + ".silu");
        return Project("down_proj", g.Mul(silu, Project("up_proj", x), hint + ".gated"));
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
        var scale = norm.weight is null
            ? g.Initializer(hint + ".weight", Enumerable.Repeat(1f, (int)width).ToArray(), width)
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
            throw new NotSupportedException($"ONNX export: the iTransformer reads {f} known-future covariates, the " +
                $"model {(future.HasValue ? "gives some" : "none")}.");
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
        if (f > 0) tokens = Range(g, tokens, 1, 0, variates, "tokens.variates");
        if (calendar is { } marks)
            tokens = g.Concat(new[] { tokens, g.Transpose(marks, new long[] { 0, 2, 1 }, "tokens.calendar") }, 1,
                "tokens.all");
        var embedded = Embed(context, net, "enc_embedding", tokens);                              // [B, N', D]
        if (f > 0)
        {
            var lookback = Range(g, x, 2, variates, channels, "future.lookback");
            var futureTokens = g.Transpose(g.Concat(new[] { lookback, ahead }, 1, "future.series"), new long[] { 0, 2, 1 },
                "future.tokens");                                                                // [B, F, L + S]
            var futureEmbedded = Embed(context, net, "future_embedding", futureTokens);
            long all = embedded.Shape[1];
            var parts = new List<OnnxValue>
            {
                Range(g, embedded, 1, 0, variates, "embedded.variates"),
                futureEmbedded,
            };
            if (all > variates)
                parts.Add(Range(g, embedded, 1, variates, all, "embedded.calendar"));
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
        y = Range(g, y, 2, 0, variates, "forecast.variates");                                   // [B, S, C − F]
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
        => Range(g, x, 2, start, start + count, hint);

    /// <summary>Indices [start, end) of one axis.</summary>
    private static OnnxValue Range(OnnxGraphBuilder g, OnnxValue x, long axis, long start, long end, string hint)
        => g.Slice(x, new long[] { start }, new long[] { end }, new long[] { axis }, hint);

    /// <summary>
    /// The MVPA forecaster's forward on scaled, zero-filled inputs, as
    /// <see cref="MultiVariateParallelTransformerNetwork"/>'s: the per-window normalisation over observed entries,
    /// calendar covariates as extra (observed) channels, the (segment × channel) patches with their observed mask, the
    /// MVPFormer blocks, the final RMSNorm, and one linear head per variate on its last-segment token.
    /// </summary>
    /// <param name="context">The export.</param>
    /// <param name="net">The network (eval mode).</param>
    /// <param name="window">[B, L, N] scaled window, missing entries 0.</param>
    /// <param name="observed">[B, L, N] 1 = observed.</param>
    /// <param name="calendar">[B, L, M] calendar covariates, or null.</param>
    /// <returns>[B, S, N] in scaled space.</returns>
    public static OnnxValue MultiVariateParallelTransformer(OnnxExportContext context,
        MultiVariateParallelTransformerNetwork net, OnnxValue window, OnnxValue observed, OnnxValue? calendar)
    {
        RequireEval(net, "");
        var g = context.Graph;
        var c = net.Config;
        long l = c.Lookback, n = c.Variates, p = c.PatchLength, t = c.Segments, m = c.Covariates;
        if ((m > 0) != calendar.HasValue || window.Shape[2] != n)
            throw new NotSupportedException($"ONNX export: the MVPA network reads {n} channels and {m} covariates; the " +
                $"model gives {window} and {(calendar.HasValue ? "calendar covariates" : "none")}.");
        OnnxValue x = window, mask = observed, mean = default, std = default;
        if (c.UseNorm)
        {
            // Statistics over observed entries only (the window is already zero where missing).
            var count = g.Max(g.ReduceSum(mask, new long[] { 1 }, keepDims: true, "norm.count"), g.Scalar("norm.one", 1f),
                "norm.count_min1");
            mean = g.Div(g.ReduceSum(x, new long[] { 1 }, keepDims: true, "norm.sum"), count, "norm.mean");
            var centred = g.Mul(g.Sub(x, mean, "norm.centred_raw"), mask, "norm.centred");
            var variance = g.Div(g.ReduceSum(g.Mul(centred, centred, "norm.square"), new long[] { 1 }, keepDims: true,
                "norm.square_sum"), count, "norm.variance");
            std = g.Sqrt(g.Add(variance, g.Scalar("norm.eps", 1e-5f), "norm.variance_eps"), "norm.std");
            x = g.Div(centred, std, "norm.scaled");
        }
        if (calendar is { } marks)
        {
            x = g.Concat(new[] { x, marks }, 2, "channels");
            // Calendar features are always observed: ones of their shape (they are finite: computed from timestamps).
            var ones = g.Add(g.Mul(marks, g.Scalar("calendar.zero", 0f), "calendar.zeros"), g.Scalar("calendar.one", 1f),
                "calendar.ones");
            mask = g.Concat(new[] { mask, ones }, 2, "channels.observed");
        }
        long channels = n + m;
        // [B, L, C] → [B, T, C, P]: segment t holds steps t·P … t·P + P − 1 of each channel.
        OnnxValue Patches(OnnxValue v, string hint) => g.Transpose(g.Reshape(v, new long[] { 0, t, p, channels },
            hint + ".segments"), new long[] { 0, 1, 3, 2 }, hint);
        var patches = g.Concat(new[] { Patches(x, "patches.values"), Patches(mask, "patches.observed") }, 3, "patches");
        var h = context.Export(Child<Linear>(net, "patch_embedding", ""), patches, "patch_embedding");  // [B, T, C, d]
        RequireEval(Child<Dropout>(net, "token_dropout", ""), "token_dropout");
        var embeddings = Child<MvpFormerEmbeddings>(net, "embeddings", "");
        foreach (var (name, block) in Child<nn.Module>(net, "blocks", "").named_children())
            h = MvpFormerBlock(context, (MvpFormerBlock)block, embeddings, h, Join("blocks", name));
        h = context.Export(Child<RmsNorm>(net, "ln_f", ""), h, "ln_f");
        var last = g.Squeeze(g.Slice(h, new long[] { t - 1 }, new long[] { t }, new long[] { 1 }, "head.last_segment"),
            new long[] { 1 }, "head.last");
        last = Range(g, last, 1, 0, n, "head.variates");                                                      // [B, N, d]
        OnnxValue weight, bias;
        using (NewDisposeScope())
        {
            weight = g.Initializer("head.weight_t", Parameter(net, "head_weight").detach().transpose(1, 2)); // [N, d, S]
            bias = g.Initializer("head.bias_t", Parameter(net, "head_bias").detach().t());                  // [S, N]
        }
        var perVariate = g.Squeeze(g.MatMul(g.Unsqueeze(last, new long[] { 2 }, "head.rows"), weight, "head.matmul"),
            new long[] { 2 }, "head.per_variate");                                                       // [B, N, S]
        var y = g.Add(g.Transpose(perVariate, new long[] { 0, 2, 1 }, "head.t"), bias, "head");          // [B, S, N]
        return c.UseNorm ? g.Add(g.Mul(y, std, "denorm.scaled"), mean, "denorm") : y;
    }

    /// <summary>y = x + MLP(ln_1(x)) + MVPA(ln_1(x), E_pos, E_chan) (ln_2 is unused, as in the module).</summary>
    private static OnnxValue MvpFormerBlock(OnnxExportContext context, MvpFormerBlock block,
        MvpFormerEmbeddings embeddings, OnnxValue x, string path)
    {
        RequireEval(block, path);
        var g = context.Graph;
        var a = context.Export(Child<RmsNorm>(block, "ln_1", path), x, Join(path, "ln_1"));
        var mlp = context.Export(Child<SwiGluMlp>(block, "mlp", path), a, Join(path, "mlp"));
        var attention = Mvpa(context, Child<MultiVariateParallelAttention>(block, "attn", path), embeddings, a,
            Join(path, "attn"));
        return g.Add(g.Add(x, mlp, Hint(path) + ".mlp_residual"), attention, Hint(path));
    }

    /// <summary>
    /// MVPA on a [B, T, C, d] grid whose T and C are known at export time, so that the relative keys are constants:
    /// the time and channel keys R[T−1−Δt] and R[C−1−|Δc|] of every (query token, key segment or channel) pair are
    /// gathered once here (the module gathers the products, the same numbers), and the content window and the causal
    /// mask become constant tensors. Dropout is the identity in evaluation.
    /// </summary>
    private static OnnxValue Mvpa(OnnxExportContext context, MultiVariateParallelAttention attention,
        MvpFormerEmbeddings embeddings, OnnxValue x, string path)
    {
        RequireEval(attention, path);
        var g = context.Graph;
        string hint = Hint(path);
        long t = x.Shape[1], c = x.Shape[2], d = attention.ModelWidth, tokens = t * c;
        long hkv = attention.KeyValueHeads, group = attention.Heads / hkv, dh = d / attention.Heads, kv = dh * hkv;
        OnnxValue Project(string name, OnnxValue input)
            => context.Export(Child<Linear>(attention, name, path), input, Join(path, name));
        var flat = g.Reshape(x, new long[] { 0, tokens, d }, hint + ".flat");
        var q = g.Transpose(g.Reshape(Project("q_attn", flat), new long[] { 0, tokens, hkv, group, dh },
            hint + ".q_heads"), new long[] { 0, 2, 3, 1, 4 }, hint + ".q");                   // [B, Hkv, G, N, dh]
        var kvPair = g.Split(Project("c_attn", flat), 2, new[] { kv, kv }, hint + ".kv");
        var k = g.Unsqueeze(g.Transpose(g.Reshape(kvPair[0], new long[] { 0, tokens, hkv, dh }, hint + ".k_heads"),
            new long[] { 0, 2, 3, 1 }, hint + ".k_t"), new long[] { 2 }, hint + ".k");       // [B, Hkv, 1, dh, N]
        var v = g.Unsqueeze(g.Transpose(g.Reshape(kvPair[1], new long[] { 0, tokens, hkv, dh }, hint + ".v_heads"),
            new long[] { 0, 2, 1, 3 }, hint + ".v_t"), new long[] { 2 }, hint + ".v");       // [B, Hkv, 1, N, dh]

        // Relative indices of query token r = (tq, cq): time row T−1−(tq − t′) clamped (t′ > tq is masked below),
        // channel row C−1−|cq − c′|; window and causal masks per token pair.
        var timeIndex = new long[tokens * t];
        var channelIndex = new long[tokens * c];
        var future = new bool[tokens * tokens];
        var window = new float[tokens * tokens];
        for (long r = 0; r < tokens; r++)
        {
            long tq = r / c, cq = r % c;
            for (long s = 0; s < t; s++) timeIndex[r * t + s] = Math.Clamp(t - 1 - (tq - s), 0, t - 1);
            for (long s = 0; s < c; s++) channelIndex[r * c + s] = c - 1 - Math.Abs(cq - s);
            for (long key = 0; key < tokens; key++)
            {
                long tk = key / c;
                future[r * tokens + key] = tk > tq;
                window[r * tokens + key] = Math.Abs(tq - tk) <= attention.Window || tq == t - 1 ? 1f : 0f;
            }
        }
        OnnxValue timeKeys, channelKeys, uBias, vBias, wBias;
        using (NewDisposeScope())
        {
            timeKeys = g.Initializer(hint + ".time_keys",
                RelativeKeys(attention, "position_net", embeddings.Positions(t), t, timeIndex, tokens, hkv, dh, path));
            channelKeys = g.Initializer(hint + ".channel_keys",
                RelativeKeys(attention, "channel_net", embeddings.Channels(c), c, channelIndex, tokens, hkv, dh, path));
            var biases = Parameter(attention, "attn_bias").detach();
            Tensor Bias(int i) => biases.narrow(0, i * kv, kv).reshape(1, hkv, 1, 1, dh);
            uBias = g.Initializer(hint + ".u", Bias(0));
            vBias = g.Initializer(hint + ".v_bias", Bias(1));
            wBias = g.Initializer(hint + ".w", Bias(2));
        }
        // (q + v)·R_time and (q + w)·R_chan against the pre-gathered keys: [B, Hkv, G, N, 1, dh] · [1, Hkv, 1, N, dh, K].
        OnnxValue Relative(OnnxValue bias, OnnxValue keys, string name) => g.Squeeze(g.MatMul(
            g.Unsqueeze(g.Add(q, bias, hint + "." + name + "_q"), new long[] { 4 }, hint + "." + name + "_rows"), keys,
            hint + "." + name + "_matmul"), new long[] { 4 }, hint + "." + name);
        var time = Relative(vBias, timeKeys, "time");                                               // [B, Hkv, G, N, T]
        var channel = Relative(wBias, channelKeys, "channel");                                      // [B, Hkv, G, N, C]
        var scores = g.Reshape(g.Add(g.Unsqueeze(time, new long[] { 5 }, hint + ".time_grid"),
            g.Unsqueeze(channel, new long[] { 4 }, hint + ".channel_grid"), hint + ".relative"),
            new long[] { 0, hkv, group, tokens, tokens }, hint + ".relative_tokens");               // [B, Hkv, G, N, N]
        if (attention.GlobalAttention)
        {
            var content = g.MatMul(g.Add(q, uBias, hint + ".content_q"), k, hint + ".content");
            scores = g.Add(scores, g.Mul(content, g.Initializer(hint + ".window", window, tokens, tokens),
                hint + ".content_windowed"), hint + ".scores_content");
        }
        scores = g.Div(scores, g.Scalar(hint + ".sqrt_dh", (float)Math.Sqrt(dh)), hint + ".scores");
        scores = g.Where(g.Bools(hint + ".future", future, tokens, tokens), g.Scalar(hint + ".min", float.MinValue),
            scores, hint + ".causal");
        var o = g.MatMul(g.Softmax(scores, -1, hint + ".softmax"), v, hint + ".attend");           // [B, Hkv, G, N, dh]
        var merged = g.Reshape(g.Transpose(o, new long[] { 0, 3, 1, 2, 4 }, hint + ".merge_t"),
            new long[] { 0, t, c, d }, hint + ".merge");
        return Project("c_proj", merged);
    }

    /// <summary>The relative keys of every (query token, key row) pair: the projection of the embedding rows
    /// [1, K, d] → [1, Hkv, dh, K], gathered at <paramref name="index"/> [N, K] → [1, Hkv, 1, N, dh, K].</summary>
    private static Tensor RelativeKeys(MultiVariateParallelAttention attention, string projection, Tensor rows,
        long count, long[] index, long tokens, long hkv, long dh, string path)
    {
        var keys = Child<Linear>(attention, projection, path).call(rows).view(1, count, hkv, dh).permute(0, 2, 3, 1);
        var gathered = keys.index_select(3, tensor(index, device: keys.device));                    // [1, Hkv, dh, N·K]
        return gathered.reshape(1, hkv, dh, tokens, count).permute(0, 1, 3, 2, 4).unsqueeze(2);
    }

    /// <summary>The module's own parameter <paramref name="name"/> (not a child's).</summary>
    private static Tensor Parameter(nn.Module module, string name)
        => module.named_parameters(recurse: false).Where(p => p.name == name).Select(p => p.parameter).FirstOrDefault()
           ?? throw new NotSupportedException($"ONNX export: the {module.GetType().Name} has no parameter '{name}'; " +
               "this exporter does not match the module's version.");
}
