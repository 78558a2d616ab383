using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// CRIB's information-bottleneck head: encoder tokens <c>[B, P·N, D]</c> are regrouped per variate to
/// <c>[B, N, P·D]</c> (variate-major, then patches), mapped by <c>Linear(P·D→D) → ReLU → Linear(D→2D)</c>, and define a
/// diagonal Gaussian posterior q(z|x) per (b, n): <c>mean = u[..., :D]</c>, <c>variance = softplus(u[..., D:]) + 1e-9</c>
/// (the softplus output is the <b>variance</b>, as in the reference). Submodules are registered as <c>0</c>, <c>1</c>,
/// <c>2</c> (the reference's nn.Sequential keys <c>projector.0</c> / <c>projector.2</c>).
/// </summary>
public sealed class CribInformationBottleneck : nn.Module<Tensor, (Tensor Mean, Tensor Variance)>
{
    private readonly Linear _first, _second;
    private readonly int _patches, _width;

    /// <param name="patches">Number of patches P.</param>
    /// <param name="modelWidth">Token width D (also the latent width).</param>
    public CribInformationBottleneck(int patches, int modelWidth) : base(nameof(CribInformationBottleneck))
    {
        if (patches < 1) throw new ArgumentOutOfRangeException(nameof(patches), patches, "patches must be positive.");
        if (modelWidth < 1) throw new ArgumentOutOfRangeException(nameof(modelWidth), modelWidth, "modelWidth must be positive.");
        _patches = patches;
        _width = modelWidth;
        _first = nn.Linear((long)patches * modelWidth, modelWidth);
        _second = nn.Linear(modelWidth, 2L * modelWidth);
        // Registered by hand (instead of RegisterComponents) so the keys are "0" and "2" as in the reference.
        register_module("0", _first);
        register_module("1", nn.ReLU());
        register_module("2", _second);
    }

    /// <summary>tokens [B, P·N, D] → (mean [B, N, D], variance [B, N, D]).</summary>
    public override (Tensor Mean, Tensor Variance) forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var grouped = RegroupByVariate(tokens, _patches);
        var u = _second.call(nn.functional.relu(_first.call(grouped)));
        var mean = u[.., .., .._width];
        // softplus with PyTorch's defaults (β = 1, threshold 20) written out: TorchSharp's softplus converts β and the
        // threshold to Scalars implicitly (see TorchScalars).
        var raw = u[.., .., _width..];
        var variance = where(raw.gt(Of(20L)), raw, raw.exp().log1p()).add(Of(1e-9), One);
        return (mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Σ_{b,n} KL(N(mean, diag(variance)) ‖ N(0, I)) = Σ_{b,n} ½ Σ_d (variance + mean² − 1 − ln variance), with non-finite
    /// per-(b, n) terms set to 0 (as the reference); a sum, not a mean.
    /// </summary>
    public static Tensor KlToStandardNormal(Tensor mean, Tensor variance)
    {
        using var scope = NewDisposeScope();
        var perRow = variance.add(mean.pow(Of(2L)), One).sub(Of(1.0)).sub(variance.log()).sum(-1).mul(Of(0.5));
        var kl = where(perRow.isfinite(), perRow, zeros_like(perRow)).sum();
        return kl.MoveToOuterDisposeScope();
    }

    /// <summary>[B, P·N, D] (token r = p·N + n) → [B, N, P·D] with column p·D + d.</summary>
    public static Tensor RegroupByVariate(Tensor tokens, int patches)
    {
        long b = tokens.shape[0], t = tokens.shape[1], d = tokens.shape[2], n = t / patches;
        return tokens.reshape(b, patches, n, d).permute(0, 2, 1, 3).reshape(b, n, patches * d);
    }
}
