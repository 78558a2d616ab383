using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Layers;

/// <summary>
/// Root-mean-square layer normalisation (Zhang &amp; Sennrich 2019) over the last dimension:
/// <c>y = x · (mean(x²) + eps)^{−1/2} · weight</c>, no centring and no bias. Same formula as PyTorch's
/// <c>torch.nn.RMSNorm(width, eps)</c> with elementwise affine; the parameter is named <c>weight</c> so checkpoints map.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    /// <param name="width">Size of the normalised (last) dimension.</param>
    /// <param name="eps">Added to the mean square before the inverse square root.</param>
    public RmsNorm(int width, double eps = 1e-5) : base(nameof(RmsNorm))
    {
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "The normalised width must be positive.");
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be a non-negative number (1e-5 is usual).");
        _eps = eps;
        weight = new Parameter(ones(width));
        RegisterComponents();
    }

    /// <summary>The learned per-feature scale (initialised to ones).</summary>
    public Parameter Weight => weight;

    /// <summary>The ε added to the mean square (for the ONNX exporter).</summary>
    internal double Eps => _eps;

    /// <summary>x: [..., width] → same shape.</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() < 1 || x.shape[^1] != weight.shape[0])
            throw new ArgumentException($"RmsNorm expects the last dimension to be {weight.shape[0]}; got shape [{string.Join(", ", x.shape)}]. Build the norm with the input's feature width.", nameof(x));
        using var scope = NewDisposeScope();
        var y = x * x.pow(Of(2L)).mean(new long[] { -1 }, keepdim: true).add(Of(_eps), One).rsqrt() * weight;
        return y.MoveToOuterDisposeScope();
    }
}
