using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Causal, weight-normalised Conv2d with kernel (1, k) and dilation (1, d), as in a TCN temporal block:
/// <c>W = g · V / ‖V‖</c> (norm per output channel over all other dims, <c>g ∈ R^{out×1×1×1}</c>), applied along the last
/// (width) axis with <c>(k − 1)·d</c> zeros on the left. This equals the reference's symmetric padding followed by the
/// "chomp" of the last <c>(k − 1)·d</c> columns, without computing the discarded columns.
/// </summary>
/// <remarks>
/// Parameters are named <c>bias</c>, <c>weight_g</c>, <c>weight_v</c> (PyTorch <c>weight_norm</c>'s state-dict keys, in its
/// <c>named_parameters</c> order). Initialisation as PyTorch: V and bias take Conv2d's default init and g = ‖V‖.
/// </remarks>
public sealed class WeightNormConv2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter bias, weight_g, weight_v;
    private readonly long _padding, _dilation;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernelSize">Kernel width k (height is 1).</param>
    /// <param name="dilation">Dilation d along the width.</param>
    public WeightNormConv2d(int inChannels, int outChannels, int kernelSize, int dilation) : base(nameof(WeightNormConv2d))
    {
        if (inChannels < 1) throw new ArgumentOutOfRangeException(nameof(inChannels), inChannels, "inChannels must be positive.");
        if (outChannels < 1) throw new ArgumentOutOfRangeException(nameof(outChannels), outChannels, "outChannels must be positive.");
        if (kernelSize < 1) throw new ArgumentOutOfRangeException(nameof(kernelSize), kernelSize, "kernelSize must be positive.");
        if (dilation < 1) throw new ArgumentOutOfRangeException(nameof(dilation), dilation, "dilation must be positive.");
        _padding = (long)(kernelSize - 1) * dilation;
        _dilation = dilation;
        using (no_grad())
        using (var conv = nn.Conv2d(inChannels, outChannels, (1, kernelSize)))
        {
            bias = new Parameter(conv.bias!.detach().clone());
            weight_v = new Parameter(conv.weight!.detach().clone());
            weight_g = new Parameter(weight_v.detach().pow(Of(2L)).sum(new long[] { 1, 2, 3 }, keepdim: true).sqrt());
        }
        RegisterComponents();
    }

    /// <summary>Left (causal) padding of the time axis (for the ONNX exporter).</summary>
    internal long Padding => _padding;

    /// <summary>Dilation of the time axis (for the ONNX exporter).</summary>
    internal long Dilation => _dilation;

    /// <summary>The effective weight g·V/‖V‖ [out, in, 1, k].</summary>
    public Tensor EffectiveWeight()
    {
        using var scope = NewDisposeScope();
        var norm = weight_v.pow(Of(2L)).sum(new long[] { 1, 2, 3 }, keepdim: true).sqrt();
        return (weight_g * weight_v / norm).MoveToOuterDisposeScope();
    }

    /// <summary>x: [B, C_in, H, W] → [B, C_out, H, W] (causal along W).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var padded = _padding > 0 ? nn.functional.pad(x, new long[] { _padding, 0 }) : x;
        var y = nn.functional.conv2d(padded, EffectiveWeight(), bias, dilation: new long[] { 1, _dilation });
        return y.MoveToOuterDisposeScope();
    }
}
