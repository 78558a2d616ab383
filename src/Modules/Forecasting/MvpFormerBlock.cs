using MLNet.Attention.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// One MVPFormer layer (Carzaniga et al., ICLR 2026): a GPT-J / PaLM-style <b>parallel</b> block
/// <c>y = x + MLP(ln_1(x)) + MVPA(ln_1(x), E_pos, E_chan)</c>, with RMSNorm <c>ln_1</c>, a bias-free SwiGLU MLP
/// (<see cref="SwiGluMlp"/>) and <see cref="MultiVariateParallelAttention"/>. Input and output [B, T, C, d].
/// </summary>
/// <remarks>
/// <para>Reference quirk kept on purpose: the block owns a second RMSNorm <c>ln_2</c> that is in every reference
/// checkpoint but is <b>never used</b> by the forward pass; it is registered (so state dicts map 1:1 and parameter counts
/// agree) and receives no gradient. Parameter names equal the reference keys: <c>ln_1.weight</c>, <c>attn.*</c>,
/// <c>ln_2.weight</c>, <c>mlp.gate_proj.weight</c>, <c>mlp.up_proj.weight</c>, <c>mlp.down_proj.weight</c>.</para>
/// <para>Initialisation as the reference model: weights and the attention bias ~ N(0, 0.02²), norm weights 1.
/// The positional and channel rows are inputs (shared by all layers); build them with <see cref="MvpFormerEmbeddings"/>.</para>
/// </remarks>
public sealed class MvpFormerBlock : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    // Registration order = the reference state-dict order (ln_1, attn, ln_2, mlp).
    private readonly RmsNorm ln_1;
    private readonly MultiVariateParallelAttention attn;
    private readonly RmsNorm ln_2;
    private readonly SwiGluMlp mlp;

    /// <param name="modelWidth">Token width d (n_embd).</param>
    /// <param name="heads">Query heads H; must divide d.</param>
    /// <param name="kvHeads">Key/value heads H_kv; must divide H (MVPFormer-S: 12 / 4, -M: 16 / 8). Defaults to H.</param>
    /// <param name="innerWidth">MLP hidden width n_inner (MVPFormer-S: 1728 for d 768; -M: 5632 for d 2048).</param>
    /// <param name="window">MVPA content window in segments (10 in the reference).</param>
    /// <param name="globalAttention">The reference's <c>global_att</c>: true = windowed content term with a global last
    /// segment (reference default); false = no content term (see <see cref="MultiVariateParallelAttention"/>).</param>
    /// <param name="attentionDropout">Dropout on the attention probabilities (training only).</param>
    /// <param name="residualDropout">Dropout on the attention output projection (training only).</param>
    /// <param name="eps">RMSNorm epsilon (layer_norm_epsilon).</param>
    public MvpFormerBlock(int modelWidth, int heads, int? kvHeads = null, int? innerWidth = null, int window = 10, bool globalAttention = true,
        double attentionDropout = 0.1, double residualDropout = 0.1, double eps = 1e-5) : base(nameof(MvpFormerBlock))
    {
        int inner = innerWidth ?? 4 * modelWidth;
        MultiVariateParallelAttention.Validate(modelWidth, heads, kvHeads ?? heads);
        if (inner < 1) throw new ArgumentOutOfRangeException(nameof(innerWidth), innerWidth, "The MLP inner width must be positive (MVPFormer-S uses 1728 for width 768).");
        ln_1 = new RmsNorm(modelWidth, eps);
        attn = new MultiVariateParallelAttention(modelWidth, heads, kvHeads, window, globalAttention, attentionDropout, residualDropout);
        ln_2 = new RmsNorm(modelWidth, eps);
        mlp = new SwiGluMlp(modelWidth, inner);
        RegisterComponents();
        using (no_grad())
            foreach (var p in mlp.parameters()) nn.init.normal_(p, 0.0, 0.02);
    }

    /// <summary>The block's attention layer.</summary>
    public MultiVariateParallelAttention Attention => attn;

    /// <summary>Number of parameters: 2d (ln_1, ln_2) + MVPA + 3·d·n_inner (5,949,696 for MVPFormer-S, 51,387,392 for -M).</summary>
    public static long ParameterCount(int modelWidth, int heads, int kvHeads, int innerWidth)
        => 2L * modelWidth + MultiVariateParallelAttention.ParameterCount(modelWidth, heads, kvHeads) + SwiGluMlp.ParameterCount(modelWidth, innerWidth);

    /// <summary>
    /// x: [B, T, C, d]; positions: rows 0..T−1 of the positional table ([T, d] or [1|B, T, d]); channels: rows 0..C−1 of
    /// the channel table ([C, d] or [1|B, C, d]). Returns [B, T, C, d].
    /// </summary>
    public override Tensor forward(Tensor x, Tensor positions, Tensor channels)
    {
        using var scope = NewDisposeScope();
        var a = ln_1.call(x);
        // ln_2 is intentionally unused (reference quirk, see remarks).
        var y = x.add(mlp.call(a), One).add(attn.call(a, positions, channels), One);
        return y.MoveToOuterDisposeScope();
    }
}
