using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Gaussian;

/// <summary>
/// One head of the library's Gaussian adaptive attention (variant (A): <c>gaussian-adaptive-attention</c> 0.1.5,
/// Ioannides et al., arXiv 2401.11143, appendix "mixture of densities"). Along <see cref="NormAxis"/> it computes the
/// mean μ and the unbiased variance v = var + eps; for each of N Gaussians y_i = (x − (μ + δ_i)) / √v and
/// g_i = exp(−y_i²/(2c_i²)) / √(2πc_i²); the weights are P = Π g_i divided by max(Σ_axis P, eps), and the output is
/// x ⊙ w. Padding (a padding value and/or an explicit mask): padded entries count as zeros in μ and v (the count still
/// includes them), keep their raw value in y_i, are included in the normalising sum and are passed through unchanged.
/// Parameters <c>mean_offsets</c> [N] (init 0) and <c>c</c> [N] (init exp(z), z ~ N(0, 1)). No residual here
/// (<see cref="GaussianBlock"/> adds it). The computation follows the input's dtype.
/// </summary>
public sealed class GaussianAdaptiveAttention : nn.Module<Tensor, Tensor>
{
    // Reference state-dict names and order: mean_offsets, c.
    private readonly Parameter mean_offsets;
    private readonly Parameter c;

    /// <summary>The axis the statistics and the normalisation run along (negative counts from the end).</summary>
    public int NormAxis { get; }

    /// <summary>Number of Gaussians N multiplied together.</summary>
    public int Gaussians { get; }

    /// <summary>Entries equal to this value are padding (null: no padding value).</summary>
    public double? PaddingValue { get; }

    /// <summary>Added to the variance and the lower clamp of the normalising sum (library 1e-8).</summary>
    public double Eps { get; }

    /// <param name="normAxis">Axis of the statistics and of the normalisation; negative values count from the end.</param>
    /// <param name="gaussians">Number of Gaussians N (positive).</param>
    /// <param name="paddingValue">Entries equal to this value are treated as padding (null: none).</param>
    /// <param name="eps">Variance eps and clamp of the normalising sum (library 1e-8).</param>
    /// <param name="generator">Random source of the initial c = exp(N(0, 1)) (null: the global generator).</param>
    public GaussianAdaptiveAttention(int normAxis, int gaussians, double? paddingValue = null, double eps = 1e-8, Generator? generator = null)
        : base(nameof(GaussianAdaptiveAttention))
    {
        if (gaussians < 1) throw new ArgumentOutOfRangeException(nameof(gaussians), gaussians, "The number of Gaussians per head must be a positive integer (the library's README uses 5).");
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be non-negative (the library uses 1e-8).");
        NormAxis = normAxis;
        Gaussians = gaussians;
        PaddingValue = paddingValue;
        Eps = eps;
        mean_offsets = new Parameter(zeros(gaussians, dtype: float32));
        using (var z = randn(gaussians, dtype: float32, generator: generator)) c = new Parameter(z.exp());
        RegisterComponents();
    }

    /// <summary>x (rank ≥ 2) → same shape.</summary>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>
    /// x (rank ≥ 2) → same shape. <paramref name="paddingMask"/>: optional bool tensor, <c>true</c> = padding, of x's
    /// rank with every axis equal to x's or 1; combined (or) with the padding value.
    /// </summary>
    public Tensor forward(Tensor x, Tensor? paddingMask)
    {
        using var scope = NewDisposeScope();
        var (y, _) = Apply(x, GaussianPadding.Mask(x, paddingMask, PaddingValue, NormAxis));
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Output and the (detached) normalised weights w, both of x's shape.</summary>
    public (Tensor Output, Tensor Weights) ForwardWithWeights(Tensor x, Tensor? paddingMask = null)
    {
        using var scope = NewDisposeScope();
        var (y, w) = Apply(x, GaussianPadding.Mask(x, paddingMask, PaddingValue, NormAxis));
        return (y.MoveToOuterDisposeScope(), w.detach().MoveToOuterDisposeScope());
    }

    /// <summary>The head on an already validated input; <paramref name="pad"/> is null or a bool mask of x's shape (true = pad).</summary>
    internal (Tensor Output, Tensor Weights) Apply(Tensor x, Tensor? pad)
    {
        long axis = NormAxis < 0 ? NormAxis + x.dim() : NormAxis;
        return Mixture(x, pad, axis, mean_offsets, c, Eps, Array.Empty<long>());
    }

    /// <summary>The parameters as [N] tensors (the multi-head module stacks them to run all heads at once).</summary>
    internal Tensor MeanOffsets => mean_offsets;
    internal Tensor Scales => c;

    /// <summary>
    /// The straightforward form, one Gaussian after the other exactly as the library writes it (kept as the
    /// specification the fused <see cref="Mixture"/> is tested against).
    /// </summary>
    internal (Tensor Output, Tensor Weights) ApplyLoop(Tensor x, Tensor? pad)
    {
        long axis = NormAxis;
        var masked = pad is null ? x : where(pad, zeros_like(x), x);
        var mean = masked.mean(new[] { axis }, keepdim: true);
        var std = masked.var(axis, unbiased: true, keepdim: true).add(Of(Eps), One).sqrt();
        Tensor? product = null;
        for (int i = 0; i < Gaussians; i++)
        {
            var y = (x - mean.add(mean_offsets[i], One)) / std;
            var c2 = c[i] * c[i];
            var g = (-(y * y) / c2.mul(Of(2.0))).exp() / c2.mul(Of(2 * Math.PI)).sqrt();
            product = product is null ? g : product * g;
        }
        var w = product! / product!.sum(axis, keepdim: true).clamp_min(Of(Eps));
        var output = pad is null ? x * w : where(pad, x, x * w);
        return (output, w);
    }

    /// <summary>
    /// The product of N Gaussians in closed form. With z = x − μ, k_i = 1/(2c_i²) and v = var + eps,
    /// Π_i exp(−k_i (z − δ_i)²/v) / √(2πc_i²) = exp(−[K (z − m)² + D]/v − L), where K = Σk_i, m = Σk_iδ_i / K,
    /// D = Σk_i(δ_i − m)² and L = ½Σ log(2πc_i²) depend on the parameters only. So the whole product costs ~4
    /// full-size ops ((x − μ) − m, ·√(K/v), −t² − (D/v + L), exp) instead of ~8 per Gaussian; the result equals the
    /// Gaussian-by-Gaussian product up to float rounding of the exponent (relative differences of a few ulp × the
    /// exponent). An underflowing product still yields 0 (or a denormal where the loop's intermediate product already
    /// flushed to 0 — both negligible against the eps-clamped normaliser).
    /// </summary>
    /// <param name="x">Input; statistics and normalisation run along <paramref name="axis"/> (non-negative).</param>
    /// <param name="pad">Null or a bool mask of x's shape (true = pad).</param>
    /// <param name="axis">The (non-negative) axis of the statistics and of the normalising sum.</param>
    /// <param name="offsets">δ, [heads..., N] (no leading axis for a single head).</param>
    /// <param name="scales">c, same shape as <paramref name="offsets"/>.</param>
    /// <param name="eps">Variance eps and clamp of the normalising sum.</param>
    /// <param name="headShape">Shape the per-head quantities [heads...] are viewed as to broadcast against the statistics (empty for one head).</param>
    internal static (Tensor Output, Tensor Weights) Mixture(Tensor x, Tensor? pad, long axis, Tensor offsets, Tensor scales, double eps, long[] headShape)
    {
        var masked = pad is null ? x : where(pad, zeros_like(x), x);
        var mean = masked.mean(new[] { axis }, keepdim: true);
        // Two-pass unbiased variance Σ(x − μ)²/(n − 1): libtorch's var/var_mean (Welford) is ~10× slower than these
        // two vectorised passes on short rows, and x − μ is needed below anyway.
        var centred = masked - mean;
        var v = (centred * centred).sum(axis, keepdim: true).div(Of(x.shape[axis] - 1)).add(Of(eps), One);
        var z = pad is null ? centred : x - mean;    // padded entries keep their raw value in the Gaussians

        var c2 = (scales * scales).to(x.dtype);
        var delta = offsets.to(x.dtype);
        var k = c2.reciprocal().mul(Of(0.5));
        var kSum = k.sum(-1);
        var m = (k * delta).sum(-1) / kSum;
        var spread = (k * (delta - m.unsqueeze(-1)).pow(Of(2L))).sum(-1);
        var logNorm = c2.mul(Of(2 * Math.PI)).log().sum(-1).mul(Of(0.5));
        if (headShape.Length > 0) { kSum = kSum.view(headShape); m = m.view(headShape); spread = spread.view(headShape); logNorm = logNorm.view(headShape); }

        var t = (z - m) * (kSum / v).sqrt();
        var product = addcmul(-(spread / v).add(logNorm, One), t, t, MinusOne).exp_();    // exp(−D/v − L − t²); in place on a fresh temporary (autograd-safe)
        var w = product / product.sum(axis, keepdim: true).clamp_min(Of(eps));
        var output = pad is null ? x * w : where(pad, x, x * w);
        return (output, w);
    }
}

/// <summary>Validation and padding-mask construction shared by the (A) modules.</summary>
internal static class GaussianPadding
{
    /// <summary>Checks rank and axis, and returns the combined padding mask (true = pad) of x's shape, or null.</summary>
    public static Tensor? Mask(Tensor x, Tensor? paddingMask, double? paddingValue, int normAxis)
    {
        CheckInput(x, normAxis);
        Tensor? pad = null;
        if (paddingMask is not null)
        {
            bool broadcastable = paddingMask.dim() == x.dim()
                && Enumerable.Range(0, (int)x.dim()).All(i => paddingMask.shape[i] == x.shape[i] || paddingMask.shape[i] == 1);
            if (!broadcastable)
                throw new ArgumentException($"The padding mask has shape [{string.Join(", ", paddingMask.shape)}] but the input has shape [{string.Join(", ", x.shape)}]; give the mask the input's rank with every axis equal to the input's or 1.", nameof(paddingMask));
            if (paddingMask.dtype != ScalarType.Bool)
                throw new ArgumentException($"The padding mask must be a bool tensor (true = padding); got {paddingMask.dtype}. Convert it with mask.to(ScalarType.Bool) or compare, e.g. lengths-based mask == 0.", nameof(paddingMask));
            pad = paddingMask.to(x.device).expand(x.shape);
        }
        if (paddingValue is { } p)
        {
            var byValue = x.eq(Of(p));
            pad = pad is null ? byValue : pad.logical_or(byValue);
        }
        return pad;
    }

    public static void CheckInput(Tensor x, int normAxis)
    {
        if (x.dim() < 2)
            throw new ArgumentException($"Gaussian adaptive attention needs an input of rank 2 or more; got rank {x.dim()} [{string.Join(", ", x.shape)}]. Add a batch axis.", nameof(x));
        if (normAxis >= x.dim() || normAxis < -x.dim())
            throw new ArgumentOutOfRangeException(nameof(normAxis), normAxis, $"norm axis {normAxis} is out of range for an input of rank {x.dim()} [{string.Join(", ", x.shape)}]; use an axis in [{-x.dim()}, {x.dim() - 1}].");
        long n = x.shape[normAxis < 0 ? normAxis + x.dim() : normAxis];
        if (n < 2)
            throw new ArgumentException($"The input has {n} entry along norm axis {normAxis}; the unbiased variance needs at least 2 (the reference returns NaN). Use another norm axis or a longer input.", nameof(x));
    }
}
