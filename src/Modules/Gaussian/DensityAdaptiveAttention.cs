using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Gaussian;

/// <summary>How <see cref="DensityAdaptiveAttention"/> reduces a time axis T &gt; 1 before computing its statistics.</summary>
public enum DaamTimePooling
{
    /// <summary>
    /// Reference behaviour (default, matches the golden values): the input [B, L, T, D] is reinterpreted in memory as
    /// [B, L·D, T] and averaged over its last axis, so pooled element m is the mean of T consecutive memory elements.
    /// This mixes time steps and features and equals a mean over time only for T = 1 (the only case the paper uses).
    /// </summary>
    ReferenceReshape,

    /// <summary>A true mean over the time axis (the spec's recommendation outside parity mode). Equal to
    /// <see cref="ReferenceReshape"/> for T = 1.</summary>
    Mean,
}

/// <summary>
/// One head of the Density Adaptive Attention Mechanism (DAAM, variant (B) of Ioannides, Chadha &amp; Elkins,
/// arXiv 2401.11143, the single-Gaussian-per-feature head behind the paper's results). Over the encoder-layer axis L
/// and per feature d it computes the mean μ and the biased variance |E[y²] − μ²| + 1e-8, the z-score
/// ŷ = (y − (μ + δ_d)) / √(var + eps) and the weight w = exp(−ŷ² / (2·c_d)) ∈ (0, 1]; the output is x ⊙ w (no
/// residual, no normalisation across positions). Parameters <c>c</c> and <c>mean_offset</c> have shape [1, D]
/// (reference state-dict names). Like the reference, <c>c</c> is unconstrained: training it to c ≤ 0 gives inf/NaN.
/// </summary>
public sealed class DensityAdaptiveAttention : nn.Module<Tensor, Tensor>
{
    // Reference state-dict names and order: c, mean_offset.
    private readonly Parameter c;
    private readonly Parameter mean_offset;

    /// <summary>Feature size D (last input axis).</summary>
    public int Features { get; }

    /// <summary>The eps added to the variance under the square root (reference default 1e-5).</summary>
    public double Eps { get; }

    /// <summary>How a time axis T &gt; 1 of a 4-D input is pooled before the statistics.</summary>
    public DaamTimePooling TimePooling { get; }

    /// <param name="features">Feature size D (last input axis).</param>
    /// <param name="initialC">Initial value of every c (the Gaussian's variance); the paper uses 2. Must be positive.</param>
    /// <param name="eps">Added to the variance under the square root (reference 1e-5).</param>
    /// <param name="timePooling">Reduction of a time axis T &gt; 1 (4-D input); the default reproduces the reference.</param>
    public DensityAdaptiveAttention(int features, double initialC = 2.0, double eps = 1e-5,
        DaamTimePooling timePooling = DaamTimePooling.ReferenceReshape) : base(nameof(DensityAdaptiveAttention))
    {
        if (features < 1) throw new ArgumentOutOfRangeException(nameof(features), features, "The feature size D must be positive; pass the size of the input's last axis.");
        CheckInitialC(initialC);
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be non-negative (the reference uses 1e-5).");
        Features = features;
        Eps = eps;
        TimePooling = timePooling;
        c = new Parameter(full(1, features, Of(initialC), dtype: float32));
        mean_offset = new Parameter(zeros(1, features, dtype: float32));
        RegisterComponents();
    }

    internal Parameter C => c;
    internal Parameter MeanOffset => mean_offset;

    internal static void CheckInitialC(double initialC)
    {
        if (!(initialC > 0))
            throw new ArgumentOutOfRangeException(nameof(initialC), initialC, "initialC is the Gaussian's variance and must be positive (the paper uses 2).");
    }

    /// <summary>
    /// x: [B, L, D] (L encoder layers) → [B, L, D], or [B, L, T, D] → [B, L, T, D] with the weights broadcast over T.
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var w = Weights(x);
        var y = x.dim() == 4 ? x * w.unsqueeze(2) : x * w;
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The density weights w ∈ (0, 1], shape [B, L, D] (one per layer and feature, shared by all time steps).</summary>
    public Tensor AttentionWeights(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Weights(x).MoveToOuterDisposeScope();
    }

    private Tensor Weights(Tensor x)
    {
        if (x.dim() is not (3 or 4) || x.shape[^1] != Features)
            throw new ArgumentException($"DensityAdaptiveAttention expects [batch, layers, {Features} (features)] or [batch, layers, time, {Features}]; got [{string.Join(", ", x.shape)}]. Put the encoder layers on axis 1 and the features last.", nameof(x));
        Tensor y = x;
        if (x.dim() == 4)
        {
            long b = x.shape[0], l = x.shape[1], t = x.shape[2], d = x.shape[3];
            y = TimePooling == DaamTimePooling.ReferenceReshape
                ? x.reshape(b, l * d, t).mean(new long[] { -1 }).reshape(b, l, d)
                : x.mean(new long[] { 2 });
        }
        return Density(y, c, mean_offset, Eps);
    }

    /// <summary>exp(−ŷ²/(2c)) with statistics over axis −2 of <paramref name="y"/> (the layers); c and δ broadcast.</summary>
    internal static Tensor Density(Tensor y, Tensor c, Tensor meanOffset, double eps)
    {
        var mean = y.mean(new long[] { -2 }, keepdim: true);
        var variance = ((y * y).mean(new long[] { -2 }, keepdim: true) - mean * mean).abs().add(Of(1e-8), One);
        var z = (y - mean.add(meanOffset, One)) / variance.add(Of(eps), One).sqrt();
        return (-(z * z) / c.mul(Of(2L))).exp();
    }
}
