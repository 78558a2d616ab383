using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// TCN temporal block of CRIB's token embedding: <c>out = Drop(ReLU(conv2(Drop(ReLU(conv1(x)))))) + res(x)</c> with
/// weight-normed causal convolutions (kernel (1, k), dilation d) and <c>res</c> = identity or a 1×1 Conv2d
/// (<c>downsample</c>) when the channel counts differ. No ReLU after the residual add (as the reference).
/// </summary>
public sealed class CribTemporalBlock : nn.Module<Tensor, Tensor>
{
    // Reference keys: conv1.{bias,weight_g,weight_v}, conv2.{...}, downsample.{weight,bias} (the reference's
    // duplicate net.0 / net.4 aliases of conv1 / conv2 are not repeated; they hold the same tensors).
    private readonly WeightNormConv2d conv1, conv2;
    private readonly Conv2d? downsample;
    private readonly Dropout dropout;
    // Inference copies only (UseDenseForm): the block on [rows, W·C] activations as GEMMs (see DenseForm).
    private Tensor? _dense1, _bias1, _dense2, _bias2, _denseResidual, _residualBias;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernelSize">Kernel width along the sequence axis.</param>
    /// <param name="dilation">Dilation of both convolutions.</param>
    /// <param name="dropout">Dropout after each ReLU.</param>
    public CribTemporalBlock(int inChannels, int outChannels, int kernelSize, int dilation, double dropout) : base(nameof(CribTemporalBlock))
    {
        conv1 = new WeightNormConv2d(inChannels, outChannels, kernelSize, dilation);
        conv2 = new WeightNormConv2d(outChannels, outChannels, kernelSize, dilation);
        downsample = inChannels != outChannels ? nn.Conv2d(inChannels, outChannels, 1) : null;
        this.dropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>Switches an evaluation-only copy to the dense form over <paramref name="width"/> positions: forward
    /// then maps [rows, W·C_in] to [rows, W·C_out] (position-major) with three GEMMs; the 1×1 downsample becomes
    /// block-diagonal.</summary>
    internal void UseDenseForm(long width)
    {
        (_dense1, _bias1) = conv1.DenseForm(width);
        (_dense2, _bias2) = conv2.DenseForm(width);
        foreach (var t in new[] { _dense1, _bias1, _dense2, _bias2 }) t.DetachFromDisposeScope();
        if (downsample is null) return;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var weight = downsample.weight!.detach().flatten(1);                   // [out, in]
        _denseResidual = kron(eye(width, dtype: weight.dtype, device: weight.device), weight).MoveToOuterDisposeScope();
        _residualBias = downsample.bias!.detach().repeat(width).MoveToOuterDisposeScope();
        _denseResidual.DetachFromDisposeScope();
        _residualBias.DetachFromDisposeScope();
    }

    /// <summary>x: [B, C_in, H, W] → [B, C_out, H, W]; in the dense form (<see cref="UseDenseForm"/>) [rows, W·C_in]
    /// → [rows, W·C_out].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (_dense1 is not null)
        {
            if (training)
                throw new InvalidOperationException("This block is an inference copy; train the original network.");
            var hd = nn.functional.relu(nn.functional.linear(x, _dense1, _bias1));
            hd = nn.functional.relu(nn.functional.linear(hd, _dense2!, _bias2));
            var skip = _denseResidual is null ? x : nn.functional.linear(x, _denseResidual, _residualBias);
            return hd.add(skip, One).MoveToOuterDisposeScope();
        }
        var h = Drop(nn.functional.relu(conv1.call(x)));
        h = Drop(nn.functional.relu(conv2.call(h)));
        var residual = downsample is null ? x : downsample.call(x);
        return h.add(residual, One).MoveToOuterDisposeScope();
    }

    // Dropout is the identity in evaluation: skipping the call saves a dispatched op per use when scoring.
    private Tensor Drop(Tensor x) => training ? dropout.call(x) : x;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
            foreach (var t in new[] { _dense1, _bias1, _dense2, _bias2, _denseResidual, _residualBias }) t?.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// Temporal convolution network: temporal blocks with channels <c>[c₀, c₁, …]</c>, kernel k and dilations 1, 2, 4, …
/// (block i has dilation 2ⁱ), stored as <c>net.0</c>, <c>net.1</c>, … as in the reference.
/// </summary>
public sealed class CribTemporalConvNet : nn.Module<Tensor, Tensor>
{
    private readonly Sequential net;
    private readonly int _kernelSize;

    /// <param name="inChannels">Input channels of the first block.</param>
    /// <param name="channels">Output channels of each block.</param>
    /// <param name="kernelSize">Kernel width (3 in CRIB).</param>
    /// <param name="dropout">Dropout inside the blocks.</param>
    public CribTemporalConvNet(int inChannels, IReadOnlyList<int> channels, int kernelSize, double dropout) : base(nameof(CribTemporalConvNet))
    {
        ArgumentNullException.ThrowIfNull(channels);
        if (channels.Count == 0) throw new ArgumentException("At least one temporal block is needed; pass a non-empty channel list.", nameof(channels));
        var blocks = new nn.Module<Tensor, Tensor>[channels.Count];
        for (int i = 0; i < channels.Count; i++)
            blocks[i] = new CribTemporalBlock(i == 0 ? inChannels : channels[i - 1], channels[i], kernelSize, 1 << i, dropout);
        net = nn.Sequential(blocks);
        _kernelSize = kernelSize;
        RegisterComponents();
    }

    /// <summary>Whether an inference copy runs the dense form (<see cref="UseDenseForm"/>).</summary>
    internal bool IsDense { get; private set; }

    /// <summary>For an evaluation-only copy over a fixed width W: every block as GEMMs on [rows, W·C] activations
    /// (position-major), when W ≤ 2k, so the dense matrices cost at most about twice the convolutions' arithmetic;
    /// returns whether it switched. Wider inputs keep the (frozen-weight) convolutions.</summary>
    internal bool UseDenseForm(long width)
    {
        if (width > 2L * _kernelSize) return false;
        foreach (var block in net.children().Cast<CribTemporalBlock>()) block.UseDenseForm(width);
        IsDense = true;
        return true;
    }

    /// <summary>x: [B, C_in, H, W] → [B, C_last, H, W] (causal along W).</summary>
    public override Tensor forward(Tensor x) => net.call(x);
}
