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
        var mean = series.mean(new long[] { 1 }, keepdim: true).detach();
        var std = series.var(1, unbiased: false, keepdim: true).add(Of(1e-5), One).sqrt().detach();
        var y = ((series - mean) / std * affine_weight).add(affine_bias, One);
        return (y.MoveToOuterDisposeScope(), mean.MoveToOuterDisposeScope(), std.MoveToOuterDisposeScope());
    }

    /// <summary>y [B, S, N] → (y − β) / (γ + 1e-10) · std + mean.</summary>
    public Tensor Denormalise(Tensor y, Tensor mean, Tensor std)
    {
        using var scope = NewDisposeScope();
        return ((y - affine_bias) / affine_weight.add(Of(1e-10), One) * std).add(mean, One).MoveToOuterDisposeScope();
    }
}
