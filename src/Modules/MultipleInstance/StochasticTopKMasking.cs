using TorchSharp;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// Supplies the uniform draws U(0,1) of shape <c>[rows, columns]</c> that stochastic top-K masking sorts: called once
/// per bag and forward pass with <c>rows</c> = branches M and <c>columns</c> = kk = min(K, N). Inject one to make the
/// masking exact in tests (the reference draws <c>torch.rand(M, kk)</c>).
/// </summary>
public delegate Tensor UniformDraws(long rows, long columns, Device device);

/// <summary>How stochastic top-K instance masking chooses the masked instances among each branch's top kk.</summary>
public enum StkimMode
{
    /// <summary>The reference code: exactly ⌊kk·p⌋ of the top kk, chosen uniformly (the first ⌊kk·p⌋ of argsort(U)).</summary>
    ExactCount,

    /// <summary>The paper's Eq. 9: each top-kk instance independently with probability p (masked where U &lt; p).</summary>
    Bernoulli,
}

/// <summary>
/// Stochastic top-K instance masking (STKIM, ACMIL §3): per branch, some of the kk = min(K, N) instances with the
/// largest attention logits get logit −1e9 before the softmax, so the model cannot rely on a few instances only.
/// </summary>
public static class StochasticTopKMasking
{
    /// <summary>The logit given to masked instances (the reference's <c>masked_fill(…, -1e9)</c>).</summary>
    public const double MaskedLogit = -1e9;

    /// <summary>Number of instances masked per branch in <see cref="StkimMode.ExactCount"/>: ⌊min(K, N)·p⌋ (truncating the double product, as the reference's int()).</summary>
    public static long MaskedCount(long instances, int topK, double ratio) => (long)(Math.Min(topK, instances) * ratio);

    /// <summary>
    /// Chooses the masked instances of one bag. <paramref name="logits"/> <c>[M, N]</c> (padded slots at −∞ are never
    /// chosen while kk ≤ <paramref name="realCount"/>), <paramref name="draws"/> <c>[M, kk]</c> with
    /// kk = min(<paramref name="topK"/>, <paramref name="realCount"/>). Returns a bool mask <c>[M, N]</c>, true = masked.
    /// </summary>
    public static Tensor Select(Tensor logits, long realCount, int topK, double ratio, Tensor draws, StkimMode mode = StkimMode.ExactCount)
    {
        using var scope = NewDisposeScope();
        long branches = logits.shape[0], kk = Math.Min(topK, realCount);
        if (draws.dim() != 2 || draws.shape[0] != branches || draws.shape[1] != kk)
            throw new ArgumentException($"The uniform draws have shape [{MilInputs.Shape(draws)}] but STKIM needs [M, kk] = [{branches}, {kk}] (kk = min(K = {topK}, N = {realCount})). Make the draw source return a tensor of the requested [rows, columns].", nameof(draws));
        var chosen = zeros(logits.shape, ScalarType.Bool, logits.device);
        if (kk == 0) return chosen.MoveToOuterDisposeScope();
        var top = logits.topk((int)kk, dim: -1, largest: true, sorted: true).indexes;      // [M, kk], descending logits
        var u = draws.to(logits.device);
        if (mode == StkimMode.ExactCount)
        {
            long count = MaskedCount(realCount, topK, ratio);
            if (count == 0) return chosen.MoveToOuterDisposeScope();
            var positions = u.argsort(-1)[.., ..(int)count];                                // [M, ⌊kk·p⌋]
            chosen = chosen.scatter(-1, top.gather(-1, positions), ones(branches, count, ScalarType.Bool, logits.device));
        }
        else
        {
            chosen = chosen.scatter(-1, top, u.lt(Of(ratio)));
        }
        return chosen.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Applies STKIM to a batch of logits <c>[B, M, N]</c>: one call of <paramref name="draw"/> per bag (even when
    /// nothing ends up masked, as the reference always draws), masked logits set to <see cref="MaskedLogit"/>.
    /// </summary>
    public static Tensor Apply(Tensor logits, long[] realCounts, int topK, double ratio, UniformDraws draw, StkimMode mode = StkimMode.ExactCount)
    {
        using var scope = NewDisposeScope();
        long batch = logits.shape[0], branches = logits.shape[1];
        var masks = new Tensor[batch];
        using (no_grad())
        {
            for (long b = 0; b < batch; b++)
            {
                long kk = Math.Min(topK, realCounts[b]);
                var u = draw(branches, kk, logits.device);
                masks[b] = Select(logits[b].detach(), realCounts[b], topK, ratio, u, mode);
            }
        }
        return logits.masked_fill(stack(masks), Of(MaskedLogit)).MoveToOuterDisposeScope();
    }
}
