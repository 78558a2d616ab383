using TorchSharp;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// ACMIL's training losses (paper Eq. 8, reference training script), each a scalar averaged over the bags of the batch;
/// disposing the record disposes the four tensors.
/// </summary>
/// <param name="Branch">L_p: mean over branches of the softmax cross-entropy of each branch's logits with the bag label (0 when M = 1).</param>
/// <param name="Slide">L_b: softmax cross-entropy of the bag (slide) logits.</param>
/// <param name="Diversity">L_d: mean over branch pairs i &lt; j of the cosine similarity of the branch attention maps softmax(A_out) (masked maps in training; 0 when M = 1).</param>
/// <param name="Total">L = w_b·L_b + w_p·L_p + w_d·L_d (all weights 1 by default, as in the paper and the code).</param>
public sealed record AcmilLosses(Tensor Branch, Tensor Slide, Tensor Diversity, Tensor Total) : IDisposable
{
    /// <summary>Cosine-similarity epsilon of the reference (<c>F.cosine_similarity</c> default).</summary>
    public const double CosineEpsilon = 1e-8;

    /// <summary>
    /// Computes the losses of <paramref name="output"/> for class-index <paramref name="labels"/> (Int64 <c>[B]</c>, or a
    /// scalar / <c>[1]</c> for one bag). Padded slots have zero attention and do not change any term.
    /// </summary>
    public static AcmilLosses Compute(AcmilOutput output, Tensor labels, double branchWeight = 1.0, double slideWeight = 1.0, double diversityWeight = 1.0)
    {
        ArgumentNullException.ThrowIfNull(output);
        using var scope = NewDisposeScope();
        var branch = output.BranchLogits;                                      // [B, M, C]
        long batch = branch.shape[0], m = branch.shape[1], classes = branch.shape[2];
        var y = MilInputs.Labels(labels, batch, (int)classes).to(branch.device);
        Tensor Zero() => zeros(Array.Empty<long>(), branch.dtype, branch.device);
        var lp = m > 1 ? nn.functional.cross_entropy(branch.reshape(batch * m, classes), y.repeat_interleave(m)) : Zero();
        var lb = nn.functional.cross_entropy(output.SlideLogits, y);
        Tensor ld;
        if (m > 1)
        {
            var att = output.BranchAttention;                                   // [B, M, N]
            var pairs = new List<Tensor>();
            for (long i = 0; i < m; i++)
                for (long j = i + 1; j < m; j++)
                    pairs.Add(nn.functional.cosine_similarity(att.select(1, i), att.select(1, j), dim: -1, eps: CosineEpsilon));
            ld = stack(pairs, 0).sum(0L).mean().div(Of(m * (m - 1) / 2.0));
        }
        else
        {
            ld = Zero();
        }
        var total = lb.mul(Of(slideWeight)).add(lp.mul(Of(branchWeight)), One).add(ld.mul(Of(diversityWeight)), One);
        return new AcmilLosses(lp.MoveToOuterDisposeScope(), lb.MoveToOuterDisposeScope(), ld.MoveToOuterDisposeScope(), total.MoveToOuterDisposeScope());
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Branch.Dispose();
        Slide.Dispose();
        Diversity.Dispose();
        Total.Dispose();
    }
}
