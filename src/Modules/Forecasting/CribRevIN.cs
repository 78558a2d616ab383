using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// CRIB's RevIN with one feature: statistics per (batch, variate) over time of the zero-filled window (missing entries
/// count as zeros), biased variance, σ = √(var + 1e-5), both detached (constants); scalar affine
/// <c>affine_weight</c> (γ, init 1) and <c>affine_bias</c> (β, init 0). The inverse divides by γ + 1e-10.
/// </summary>
public sealed class CribRevIN : nn.Module
{
    private readonly Parameter affine_weight, affine_bias;
    // Inference copies only (PrepareForInference): 1 / (γ + 1e-10), so the inverse is 3 ops instead of 5.
    private Tensor? _inverseWeight;

    /// <summary>Creates γ = 1, β = 0.</summary>
    public CribRevIN() : base(nameof(CribRevIN))
    {
        affine_weight = new Parameter(ones(1));
        affine_bias = new Parameter(zeros(1));
        RegisterComponents();
    }

    /// <summary>series [B, T, N] → (normalised [B, T, N], mean [B, 1, N], std [B, 1, N]); mean and std are detached.</summary>
    public (Tensor Normalised, Tensor Mean, Tensor Std) Normalise(Tensor series)
    {
        using var scope = NewDisposeScope();
        if (_inverseWeight is not null)
        {
            // No gradient in a copy: one var_mean instead of mean and var (equal within rounding).
            var (variance, mu) = series.var_mean(1, unbiased: false, keepdim: true);
            var sigma = variance.add(Of(1e-5), One).sqrt();
            var z = series.sub(mu).div(sigma).mul(affine_weight).add(affine_bias, One);
            return (z.MoveToOuterDisposeScope(), mu.MoveToOuterDisposeScope(), sigma.MoveToOuterDisposeScope());
        }
        var mean = series.mean(new long[] { 1 }, keepdim: true).detach();
        var std = series.var(1, unbiased: false, keepdim: true).add(Of(1e-5), One).sqrt().detach();
        var y = ((series - mean) / std * affine_weight).add(affine_bias, One);
        return (y.MoveToOuterDisposeScope(), mean.MoveToOuterDisposeScope(), std.MoveToOuterDisposeScope());
    }

    /// <summary>y [B, S, N] → (y − β) / (γ + 1e-10) · std + mean.</summary>
    public Tensor Denormalise(Tensor y, Tensor mean, Tensor std)
    {
        using var scope = NewDisposeScope();
        if (_inverseWeight is not null)
            return mean.addcmul(y.sub(affine_bias).mul(_inverseWeight), std, One).MoveToOuterDisposeScope();
        return ((y - affine_bias) / affine_weight.add(Of(1e-10), One) * std).add(mean, One).MoveToOuterDisposeScope();
    }

    /// <summary>Precomputes the inverse's divisor for an evaluation-only copy whose weights no longer change.</summary>
    internal void PrepareForInference()
    {
        using var noGrad = no_grad();
        _inverseWeight?.Dispose();
        _inverseWeight = affine_weight.add(Of(1e-10), One).reciprocal().detach().DetachFromDisposeScope();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _inverseWeight?.Dispose();
        base.Dispose(disposing);
    }
}
