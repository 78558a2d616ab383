using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// Output of <see cref="GatedAttentionPooling"/>: for each bag and each of the K attention heads (branches) the pooled
/// vector, the attention weights and the pre-softmax logits. Disposing it disposes the three tensors.
/// </summary>
/// <param name="Pooled">Attention-weighted sum of the instances, <c>[B, K, L]</c>.</param>
/// <param name="Weights">Attention weights (softmax over the instances), <c>[B, K, N]</c>; exactly 0 at padded slots.</param>
/// <param name="Logits">Pre-softmax attention logits, <c>[B, K, N]</c>; −∞ at padded slots.</param>
public sealed record MilPoolingOutput(Tensor Pooled, Tensor Weights, Tensor Logits) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Pooled.Dispose();
        Weights.Dispose();
        Logits.Dispose();
    }
}

/// <summary>
/// Gated attention pooling (Ilse, Tomczak &amp; Welling, "Attention-based Deep Multiple Instance Learning", ICML 2018):
/// logits <c>a = W_w (tanh(V h + b_V) ⊙ sigmoid(U h + b_U)) + b_w</c>, one per head, softmax over the instances of a
/// bag, bag vector <c>z = Σ_n a_n h_n</c>. Field names are the reference state-dict keys (<c>attention_V.0</c>,
/// <c>attention_U.0</c>, <c>attention_weights</c>, as ACMIL's <c>Attention_Gated</c>). Padded instances (mask false)
/// get logit −∞, hence exactly zero weight, so a padded batch gives each bag's own result.
/// </summary>
public sealed class GatedAttentionPooling : nn.Module<Tensor, Tensor?, MilPoolingOutput>
{
    private readonly Sequential attention_V, attention_U;
    private readonly Linear attention_weights;

    /// <summary>Instance width L.</summary>
    public int InputSize { get; }

    /// <summary>Hidden width D of the tanh and sigmoid branches.</summary>
    public int AttentionSize { get; }

    /// <summary>Number of attention heads K (ACMIL's branches M).</summary>
    public int Heads { get; }

    /// <param name="inputSize">Instance width L.</param>
    /// <param name="attentionSize">Hidden width D of the gated branches (128 in ABMIL and ACMIL).</param>
    /// <param name="heads">Number of independent attention maps K (1 for ABMIL, M branches for ACMIL).</param>
    public GatedAttentionPooling(int inputSize, int attentionSize = 128, int heads = 1) : base(nameof(GatedAttentionPooling))
    {
        if (inputSize < 1)
            throw new ArgumentOutOfRangeException(nameof(inputSize), inputSize, "The instance width must be at least 1; pass the feature size of the instances.");
        if (attentionSize < 1)
            throw new ArgumentOutOfRangeException(nameof(attentionSize), attentionSize, "The attention hidden width must be at least 1 (the papers use 128).");
        if (heads < 1)
            throw new ArgumentOutOfRangeException(nameof(heads), heads, "At least one attention head (branch) is needed; use 1 for ABMIL.");
        InputSize = inputSize;
        AttentionSize = attentionSize;
        Heads = heads;
        attention_V = nn.Sequential(nn.Linear(inputSize, attentionSize), nn.Tanh());
        attention_U = nn.Sequential(nn.Linear(inputSize, attentionSize), nn.Sigmoid());
        attention_weights = nn.Linear(attentionSize, heads);
        RegisterComponents();
    }

    /// <summary>Parameter count: <c>2·(D·L + D) + (D·K + K)</c>.</summary>
    public static long CountParameters(int inputSize, int attentionSize, int heads)
        => 2L * ((long)attentionSize * inputSize + attentionSize) + ((long)attentionSize * heads + heads);

    /// <summary>
    /// Attention logits of already-checked bags <paramref name="h"/> <c>[B, N, L]</c> → <c>[B, K, N]</c>, with −∞ where
    /// <paramref name="mask"/> <c>[B, N]</c> is false.
    /// </summary>
    public Tensor Logits(Tensor h, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        // Each [B, N, D] branch is released as soon as it is used (autograd keeps what backward needs), so a large bag
        // holds at most the two branches and their product at once, as in PyTorch's reference counting.
        Tensor gated;
        using (var v = attention_V.call(h))
        using (var u = attention_U.call(h))
            gated = v * u;
        var logits = attention_weights.call(gated).transpose(1, 2);
        gated.Dispose();
        if (mask is not null) logits = logits.masked_fill(mask.logical_not().unsqueeze(1), Of(double.NegativeInfinity));
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Pools one bag <c>[N, L]</c> or a padded batch <c>[B, N_max, L]</c> with optional mask <c>[B, N_max]</c>
    /// (true = real instance). Throws <see cref="ArgumentException"/> on a wrong rank or width, a mask of the wrong shape
    /// or type, or an empty bag.
    /// </summary>
    public override MilPoolingOutput forward(Tensor h, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var (bags, m) = MilInputs.Prepare(h, mask, InputSize, "instances");
        if (m is not null) bags = bags.masked_fill(m.logical_not().unsqueeze(-1), Of(0.0));
        var logits = Logits(bags, m);
        var weights = logits.softmax(-1);
        var pooled = weights.bmm(bags);
        return new MilPoolingOutput(pooled.MoveToOuterDisposeScope(), weights.MoveToOuterDisposeScope(), logits.MoveToOuterDisposeScope());
    }

    /// <summary>Pools one bag or an unpadded batch.</summary>
    public MilPoolingOutput forward(Tensor h) => forward(h, null);
}
