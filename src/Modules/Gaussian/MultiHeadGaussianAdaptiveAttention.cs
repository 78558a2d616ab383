using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Gaussian;

/// <summary>
/// Multi-head Gaussian adaptive attention (variant (A), library 0.1.5): the norm axis of size n is cut into H chunks
/// of ⌊n/H⌋ entries, the last head taking the remainder; each chunk goes through its own
/// <see cref="GaussianAdaptiveAttention"/> head (own δ, c) and the outputs are concatenated back along the axis.
/// 2·H·N parameters (<c>attention_heads.{i}.mean_offsets</c>, <c>attention_heads.{i}.c</c>).
/// The library passes its own eps into an unused argument of the heads, so its heads always use 1e-8; here the heads'
/// eps is the explicit <c>headEps</c> argument (default 1e-8, identical to the library whatever eps it was given).
/// Deliberate deviation: a chunk of a single entry (NaN in the reference) is rejected with an exception.
/// </summary>
public sealed class MultiHeadGaussianAdaptiveAttention : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<GaussianAdaptiveAttention> attention_heads;

    /// <summary>The axis the heads split and normalise along.</summary>
    public int NormAxis { get; }

    /// <summary>Number of heads H.</summary>
    public int Heads { get; }

    /// <summary>Padding value shared by all heads (null: none).</summary>
    public double? PaddingValue { get; }

    /// <param name="normAxis">Axis of the statistics, of the normalisation and of the head split (negative counts from the end).</param>
    /// <param name="heads">Number of heads H (positive; at most half the axis length, so every chunk has ≥ 2 entries).</param>
    /// <param name="gaussians">Gaussians per head N (positive).</param>
    /// <param name="paddingValue">Entries equal to this value are padding (null: none).</param>
    /// <param name="headEps">eps of every head (library: always 1e-8).</param>
    /// <param name="generator">Random source of the heads' initial c (null: the global generator).</param>
    public MultiHeadGaussianAdaptiveAttention(int normAxis, int heads, int gaussians, double? paddingValue = null,
        double headEps = 1e-8, Generator? generator = null) : base(nameof(MultiHeadGaussianAdaptiveAttention))
    {
        if (heads < 1) throw new ArgumentOutOfRangeException(nameof(heads), heads, "The number of heads must be a positive integer (use 1 for a single head over the whole axis).");
        NormAxis = normAxis;
        Heads = heads;
        PaddingValue = paddingValue;
        attention_heads = nn.ModuleList(Enumerable.Range(0, heads)
            .Select(_ => new GaussianAdaptiveAttention(normAxis, gaussians, paddingValue, headEps, generator)).ToArray());
        RegisterComponents();
    }

    /// <summary>The heads, in chunk order.</summary>
    public IReadOnlyList<GaussianAdaptiveAttention> HeadModules => attention_heads.ToArray();

    /// <summary>x (rank ≥ 2) → same shape.</summary>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>x (rank ≥ 2) → same shape; <paramref name="paddingMask"/> as in <see cref="GaussianAdaptiveAttention.forward(Tensor, Tensor?)"/>.</summary>
    public Tensor forward(Tensor x, Tensor? paddingMask)
    {
        using var scope = NewDisposeScope();
        return Apply(x, paddingMask).Output.MoveToOuterDisposeScope();
    }

    /// <summary>Output and the (detached) weights of all heads concatenated along the norm axis, both of x's shape.</summary>
    public (Tensor Output, Tensor Weights) ForwardWithWeights(Tensor x, Tensor? paddingMask = null)
    {
        using var scope = NewDisposeScope();
        var (y, w) = Apply(x, paddingMask);
        return (y.MoveToOuterDisposeScope(), w.detach().MoveToOuterDisposeScope());
    }

    internal (Tensor Output, Tensor Weights) Apply(Tensor x, Tensor? paddingMask)
    {
        var pad = GaussianPadding.Mask(x, paddingMask, PaddingValue, NormAxis);
        long axis = NormAxis < 0 ? NormAxis + x.dim() : NormAxis;
        long n = x.shape[axis], chunk = n / Heads;
        if (chunk < 2)
            throw new ArgumentException($"The norm axis {NormAxis} has {n} entries, too few for {Heads} heads: each head needs at least 2 (chunk = {n} / {Heads} = {chunk}; the reference fails for 0 and returns NaN for 1). Use at most {n / 2} heads or a longer axis.", nameof(x));
        if (Heads > 1 && n % Heads == 0) return ApplyFused(x, pad, axis, chunk);
        return ApplyLoop(x, pad, axis, chunk);
    }

    /// <summary>Head by head on narrowed chunks (always correct; needed when the last head takes a remainder).</summary>
    internal (Tensor Output, Tensor Weights) ApplyLoop(Tensor x, Tensor? pad, long axis, long chunk)
    {
        long n = x.shape[axis];
        var outputs = new Tensor[Heads];
        var weights = new Tensor[Heads];
        for (int i = 0; i < Heads; i++)
        {
            long start = i * chunk, length = i == Heads - 1 ? n - start : chunk;
            (outputs[i], weights[i]) = attention_heads[i].Apply(x.narrow(axis, start, length), pad?.narrow(axis, start, length));
        }
        return Heads == 1 ? (outputs[0], weights[0]) : (cat(outputs, axis), cat(weights, axis));
    }

    /// <summary>
    /// All heads at once when the axis splits evenly: x is viewed as [..., H, n/H, ...] (the axis split in two), the
    /// statistics run along the chunk axis and the heads' stacked δ, c [H, N] broadcast over the head axis. Same result as
    /// <see cref="ApplyLoop"/> up to float rounding, without H narrowed (strided) chunks, H sets of small ops and two
    /// concatenations.
    /// </summary>
    internal (Tensor Output, Tensor Weights) ApplyFused(Tensor x, Tensor? pad, long axis, long chunk)
    {
        var split = x.shape.Take((int)axis).Append(Heads).Append(chunk).Concat(x.shape.Skip((int)axis + 1)).ToArray();
        var headShape = new long[x.dim() - axis + 1];               // [H, 1, 1 per axis after the norm axis]
        Array.Fill(headShape, 1L);
        headShape[0] = Heads;
        var heads = attention_heads.ToArray();
        var offsets = stack(heads.Select(h => h.MeanOffsets).ToArray());
        var scales = stack(heads.Select(h => h.Scales).ToArray());
        var (y, w) = GaussianAdaptiveAttention.Mixture(x.reshape(split), pad?.reshape(split), axis + 1, offsets, scales, heads[0].Eps, headShape);
        return (y.reshape(x.shape), w.reshape(x.shape));
    }
}
