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
    // Inference copies only (FreezeWeight): g·V/‖V‖ computed once instead of in 5 ops on every forward.
    private Tensor? _frozenWeight;

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

    /// <summary>Computes the effective weight once, for an evaluation-only copy whose weights no longer change; the
    /// module must not be trained afterwards (forward refuses training mode).</summary>
    internal void FreezeWeight()
    {
        using var noGrad = no_grad();
        _frozenWeight?.Dispose();
        _frozenWeight = EffectiveWeight().detach().DetachFromDisposeScope();
    }

    /// <summary>Kernel width k.</summary>
    internal long KernelSize => weight_v.size(3);

    /// <summary>The convolution over a fixed width <paramref name="width"/> as one dense matrix [W·C_out, W·C_in] and
    /// bias [W·C_out] on (position, channel) rows, position-major:
    /// <c>M[(p, o), (p − (k−1−j)·d, i)] = W[o, i, 0, j]</c> (taps left of the window read the zero padding, so they
    /// are left out). For inference copies: a GEMM instead of pad + conv2d, which for a few positions (CRIB's
    /// patches) costs far less than the convolution's set-up.</summary>
    internal (Tensor Matrix, Tensor Bias) DenseForm(long width)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var weight = _frozenWeight ?? EffectiveWeight();                       // [out, in, 1, k]
        long outChannels = weight.size(0), inChannels = weight.size(1), k = weight.size(3);
        var matrix = zeros(new long[] { width, outChannels, width, inChannels }, weight.dtype, weight.device);
        for (long p = 0; p < width; p++)
            for (long j = 0; j < k; j++)
            {
                long source = p - (k - 1 - j) * _dilation;
                if (source >= 0)
                    matrix[p, TensorIndex.Colon, source, TensorIndex.Colon].add_(weight[.., .., 0, j], One);
            }
        var dense = matrix.reshape(width * outChannels, width * inChannels);
        return (dense.MoveToOuterDisposeScope(), bias.detach().repeat(width).MoveToOuterDisposeScope());
    }

    /// <summary>x: [B, C_in, H, W] → [B, C_out, H, W] (causal along W).</summary>
    public override Tensor forward(Tensor x)
    {
        if (_frozenWeight is not null && training)
            throw new InvalidOperationException("This convolution is an inference copy with a frozen weight; it " +
                "cannot be trained. Train the original network.");
        using var scope = NewDisposeScope();
        var padded = _padding > 0 ? nn.functional.pad(x, new long[] { _padding, 0 }) : x;
        var weight = _frozenWeight ?? EffectiveWeight();
        var y = nn.functional.conv2d(padded, weight, bias, dilation: new long[] { 1, _dilation });
        return y.MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _frozenWeight?.Dispose();
        base.Dispose(disposing);
    }
}
