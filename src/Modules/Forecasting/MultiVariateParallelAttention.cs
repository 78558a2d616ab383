using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Multi-variate parallel attention (MVPA; Carzaniga et al., "A foundation model with multi-variate parallel attention
/// to generate neuronal activity", ICLR 2026): self-attention over a (time segment × channel) token grid whose logit
/// is the sum of a windowed content term, a relative-time term and a relative-channel term (Transformer-XL-style
/// learned relative keys with biases u, v, w), causal in time and bidirectional across channels. This is the
/// reference's PyTorch path (<c>MVPFormerGQAAttention</c>) with grouped-query heads.
/// </summary>
/// <remarks>
/// <para>For query token (t, c) and key token (t′, c′) of head h (kv head g = h / (H / H_kv)), with
/// <c>R_time = position_net(E_pos)</c> and <c>R_chan = channel_net(E_chan)</c>:
/// <c>s = [ m(t,t′)·(q + u_g)·k + (q + v_g)·R_time[T−1−(t−t′)] + (q + w_g)·R_chan[C−1−|c−c′|] ] / √d_h</c>,
/// <c>s = dtype-min</c> where t′ &gt; t, softmax over all T·C keys, then ·V, merge heads and <c>c_proj</c>.</para>
/// <para>Reference quirks reproduced: outside the content window (|t − t′| ≤ <c>window</c>, plus every query of the last
/// segment) the content term is <b>zeroed, not masked</b> — the key keeps its time and
/// channel terms and still receives probability; relative rows are anchored at the current T and C (row T−1−Δt and
/// C−1−|Δc|), so a learned row means a different distance when T or C changes. Tokens are flattened time-major
/// (r = t·C + c). The time term is gathered directly instead of the reference's Transformer-XL reshape ("rel-shift")
/// trick; both agree on every causal entry, and the others are masked.</para>
/// <para>Deviations: the softmax runs in the input dtype (the reference switches to bfloat16 for float16 inputs);
/// the reference's unused constant buffers <c>time_bias</c> and <c>masked_bias</c> are not registered (skip them when
/// loading a reference state dict); only the PyTorch path's element-wise attention dropout is implemented (the Flash
/// kernel's per-key dropout is not). Parameter names equal the reference keys: <c>attn_bias</c> (u | v | w, 3·kv),
/// <c>q_attn</c>, <c>c_attn</c> (rows 0..kv−1 key, then value), <c>position_net</c>, <c>channel_net</c>, <c>c_proj</c>;
/// all bias-free. Initialisation follows the reference model: every weight and <c>attn_bias</c> ~ N(0, 0.02²) (seed
/// with <c>torch.manual_seed</c> / <c>TorchRuntime.Seed</c> for reproducible weights).</para>
/// </remarks>
public sealed class MultiVariateParallelAttention : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    // Field names are the reference state-dict keys (attn.attn_bias, attn.q_attn.weight, ...).
    private readonly Parameter attn_bias;
    private readonly Linear q_attn, c_attn, position_net, channel_net, c_proj;
    private readonly Dropout attn_dropout, resid_dropout;
    private readonly int _width, _heads, _kvHeads, _headWidth, _kvWidth, _window;
    private readonly bool _globalAttention;

    /// <param name="modelWidth">Token width d (n_embd).</param>
    /// <param name="heads">Query heads H; must divide d (head width d_h = d / H).</param>
    /// <param name="kvHeads">Key/value heads H_kv (grouped-query attention); must divide H. Defaults to H (no grouping).</param>
    /// <param name="window">Content window in segments: the content term is kept where |t − t′| ≤ window (10 in the reference).</param>
    /// <param name="globalAttention">The reference's <c>global_att</c>. true (reference default): the windowed content term
    /// (q + u)·k is included, and every query of the last segment sees the content of all earlier keys. false: as the
    /// reference, the content term is left out entirely (logits = time + channel terms only); <c>u</c> is then unused.</param>
    /// <param name="attentionDropout">Dropout on the attention probabilities (attn_pdrop, training only).</param>
    /// <param name="residualDropout">Dropout on the output projection (resid_pdrop, training only).</param>
    public MultiVariateParallelAttention(int modelWidth, int heads, int? kvHeads = null, int window = 10, bool globalAttention = true,
        double attentionDropout = 0.1, double residualDropout = 0.1) : base(nameof(MultiVariateParallelAttention))
    {
        int hkv = kvHeads ?? heads;
        Validate(modelWidth, heads, hkv);
        if (window < 0) throw new ArgumentOutOfRangeException(nameof(window), window, "The content window must be 0 or more segments (the reference uses 10).");
        if (attentionDropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(attentionDropout), attentionDropout, "Dropout must be in [0, 1).");
        if (residualDropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(residualDropout), residualDropout, "Dropout must be in [0, 1).");
        _width = modelWidth;
        _heads = heads;
        _kvHeads = hkv;
        _headWidth = modelWidth / heads;
        _kvWidth = _headWidth * hkv;
        _window = window;
        _globalAttention = globalAttention;
        attn_bias = new Parameter(zeros(3 * _kvWidth));
        q_attn = nn.Linear(modelWidth, modelWidth, hasBias: false);
        c_attn = nn.Linear(modelWidth, 2 * _kvWidth, hasBias: false);
        position_net = nn.Linear(modelWidth, _kvWidth, hasBias: false);
        channel_net = nn.Linear(modelWidth, _kvWidth, hasBias: false);
        c_proj = nn.Linear(modelWidth, modelWidth, hasBias: false);
        attn_dropout = nn.Dropout(attentionDropout);
        resid_dropout = nn.Dropout(residualDropout);
        RegisterComponents();
        using (no_grad())
            foreach (var p in parameters()) nn.init.normal_(p, 0.0, 0.02);
    }

    internal static void Validate(int modelWidth, int heads, int kvHeads)
    {
        if (modelWidth < 1) throw new ArgumentOutOfRangeException(nameof(modelWidth), modelWidth, "The model width must be positive.");
        if (heads < 1 || modelWidth % heads != 0)
            throw new ArgumentException($"heads = {heads} must be positive and divide the model width {modelWidth} (head width = width / heads). Choose heads among the divisors of {modelWidth} or change the width.", nameof(heads));
        if (kvHeads < 1 || heads % kvHeads != 0)
            throw new ArgumentException($"kvHeads = {kvHeads} must be positive and divide heads = {heads} (each key/value head serves heads / kvHeads query heads). Choose kvHeads among the divisors of {heads}.", nameof(kvHeads));
    }

    /// <summary>Token width d.</summary>
    public int ModelWidth => _width;
    /// <summary>Query heads H.</summary>
    public int Heads => _heads;
    /// <summary>Key/value heads H_kv.</summary>
    public int KeyValueHeads => _kvHeads;
    /// <summary>Content window in segments.</summary>
    public int Window => _window;
    /// <summary>Whether the content term is used (the reference's <c>global_att</c>).</summary>
    public bool GlobalAttention => _globalAttention;

    /// <summary>Number of parameters: 2d² + 4·d·kv + 3·kv with kv = (d / H)·H_kv.</summary>
    public static long ParameterCount(int modelWidth, int heads, int kvHeads)
    {
        Validate(modelWidth, heads, kvHeads);
        long d = modelWidth, kv = (long)(modelWidth / heads) * kvHeads;
        return 2 * d * d + 4 * d * kv + 3 * kv;
    }

    /// <summary>
    /// x: [B, T (segments), C (channels), d]; positions: rows 0..T−1 of the positional table, [T, d] or [1 or B, T, d];
    /// channels: rows 0..C−1 of the channel table, [C, d] or [1 or B, C, d]. Returns [B, T, C, d].
    /// </summary>
    public override Tensor forward(Tensor x, Tensor positions, Tensor channels) => Run(x, positions, channels, wantProbabilities: false).Output;

    /// <summary>
    /// As <see cref="forward"/>, and also returns the attention probabilities [B, H, T·C, T·C] (query r = t·C + c
    /// against key r′ = t′·C + c′; the weights applied to V, i.e. after dropout in training mode).
    /// </summary>
    public (Tensor Output, Tensor Probabilities) ForwardWithProbabilities(Tensor x, Tensor positions, Tensor channels)
    {
        var (output, probabilities) = Run(x, positions, channels, wantProbabilities: true);
        return (output, probabilities!);
    }

    private (Tensor Output, Tensor? Probabilities) Run(Tensor x, Tensor positions, Tensor channels, bool wantProbabilities)
    {
        CheckShapes(x, positions, channels);
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1], c = x.shape[2], n = t * c;
        long hkv = _kvHeads, g = _heads / _kvHeads, dh = _headWidth;
        var flat = x.reshape(b, n, _width);
        var q = q_attn.call(flat).view(b, n, hkv, g, dh).permute(0, 2, 3, 1, 4);         // [B, Hkv, G, N, dh]
        var kvPair = c_attn.call(flat).split(_kvWidth, -1);
        var k = kvPair[0].view(b, n, hkv, dh).permute(0, 2, 3, 1).unsqueeze(2);          // [B, Hkv, 1, dh, N]
        var v = kvPair[1].view(b, n, hkv, dh).permute(0, 2, 1, 3).unsqueeze(2);          // [B, Hkv, 1, N, dh]
        var biases = attn_bias.split(_kvWidth);
        Tensor Bias(int i) => biases[i].view(1, hkv, 1, 1, dh);
        var rTime = RelativeKeys(position_net, positions, t);                                // [1|B, Hkv, 1, dh, T]
        var rChan = RelativeKeys(channel_net, channels, c);                                  // [1|B, Hkv, 1, dh, C]

        var time = matmul(q.add(Bias(1), One), rTime);                                              // [B, Hkv, G, N, T]
        var chan = matmul(q.add(Bias(2), One), rChan);                                              // [B, Hkv, G, N, C]

        // Relative indices: query token r = (tq, cq); time row T−1−(tq−t′) (clamped where t′ > tq: masked below),
        // channel row C−1−|cq−c′|.
        var dev = x.device;
        var tAxis = arange(Zero, Of(t), One, dtype: ScalarType.Int64, device: dev);
        var cAxis = arange(Zero, Of(c), One, dtype: ScalarType.Int64, device: dev);
        var tOfToken = tAxis.repeat_interleave(c);                                           // [N]
        var cOfToken = cAxis.repeat(t);                                                      // [N]
        var timeIndex = (tOfToken.unsqueeze(1) - tAxis.unsqueeze(0)).negative().add(Of(t - 1), One).clamp(Zero, Of(t - 1));   // [N, T]
        var chanIndex = (cOfToken.unsqueeze(1) - cAxis.unsqueeze(0)).abs().negative().add(Of(c - 1), One);         // [N, C]
        time = time.gather(-1, timeIndex.expand(time.shape));
        chan = chan.gather(-1, chanIndex.expand(chan.shape));

        // Content window (multiplicative: zero outside) and causal mask, per segment pair, expanded to tokens.
        // The reference's global_att = false drops the content term altogether.
        var dt = tAxis.unsqueeze(1) - tAxis.unsqueeze(0);                                    // [T, T] tq − t′
        var future = dt.lt(Zero);
        var futureTokens = future.index_select(0, tOfToken).index_select(1, tOfToken);
        var scores = time.unsqueeze(-1).add(chan.unsqueeze(-2), One).reshape(b, hkv, g, n, n);   // [B, Hkv, G, N, N]
        if (_globalAttention)
        {
            var content = matmul(q.add(Bias(0), One), k);                                           // [B, Hkv, G, N, N]
            var window = dt.abs().le(Of(_window)).logical_or(tAxis.eq(Of(t - 1)).unsqueeze(1));    // last segment: global
            var windowTokens = window.index_select(0, tOfToken).index_select(1, tOfToken).to(x.dtype);
            scores = scores.add(content * windowTokens, One);
        }
        scores = scores.div(Of(Math.Sqrt(dh)));
        scores = scores.masked_fill(futureTokens, Of(MinValue(x.dtype)));
        var probabilities = attn_dropout.call(softmax(scores, -1));
        var merged = matmul(probabilities, v).permute(0, 3, 1, 2, 4).reshape(b, t, c, _width);
        var output = resid_dropout.call(c_proj.call(merged)).MoveToOuterDisposeScope();
        var probs = wantProbabilities ? probabilities.reshape(b, _heads, n, n).MoveToOuterDisposeScope() : null;
        return (output, probs);
    }

    /// <summary>Projects embedding rows [T, d] or [1|B, T, d] to per-kv-head relative keys [1|B, Hkv, 1, dh, T].</summary>
    private Tensor RelativeKeys(Linear projection, Tensor rows, long count)
    {
        var r = rows.dim() == 2 ? rows.unsqueeze(0) : rows;
        return projection.call(r).view(r.shape[0], count, _kvHeads, _headWidth).permute(0, 2, 3, 1).unsqueeze(2);
    }

    private static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => double.MinValue,
        ScalarType.Float32 => float.MinValue,
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        _ => throw new ArgumentException($"MVPA needs a floating-point input; got {dtype}. Convert the input with .to(float32)."),
    };

    private void CheckShapes(Tensor x, Tensor positions, Tensor channels)
    {
        if (x.dim() != 4 || x.shape[3] != _width)
            throw new ArgumentException($"The input must have shape [batch, segments T, channels C, {_width} (model width)]; got [{string.Join(", ", x.shape)}]. Reshape the token grid to rank 4 with the model width last.", nameof(x));
        CheckRows(positions, x, x.shape[1], "positions", "segments T", "positional");
        CheckRows(channels, x, x.shape[2], "channels", "channels C", "channel");
    }

    private void CheckRows(Tensor rows, Tensor x, long expected, string name, string what, string table)
    {
        bool rankOk = rows.dim() == 2 || (rows.dim() == 3 && (rows.shape[0] == 1 || rows.shape[0] == x.shape[0]));
        if (!rankOk || rows.shape[^1] != _width)
            throw new ArgumentException($"The {table} embedding rows must have shape [{expected}, {_width}] or [1 or {x.shape[0]} (batch), {expected}, {_width}]; got [{string.Join(", ", rows.shape)}].", name);
        if (rows.shape[^2] != expected)
            throw new ArgumentException($"The {table} embedding has {rows.shape[^2]} rows but the input has {what} = {expected}. Pass rows 0..{expected - 1} of the {table} table (one row per {(table == "positional" ? "segment" : "channel")}).", name);
    }
}
