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

    /// <summary>x: [B, C_in, H, W] → [B, C_out, H, W].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = dropout.call(nn.functional.relu(conv1.call(x)));
        h = dropout.call(nn.functional.relu(conv2.call(h)));
        var residual = downsample is null ? x : downsample.call(x);
        return h.add(residual, One).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Temporal convolution network: temporal blocks with channels <c>[c₀, c₁, …]</c>, kernel k and dilations 1, 2, 4, …
/// (block i has dilation 2ⁱ), stored as <c>net.0</c>, <c>net.1</c>, … as in the reference.
/// </summary>
public sealed class CribTemporalConvNet : nn.Module<Tensor, Tensor>
{
    private readonly Sequential net;

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
        RegisterComponents();
    }

    /// <summary>x: [B, C_in, H, W] → [B, C_last, H, W] (causal along W).</summary>
    public override Tensor forward(Tensor x) => net.call(x);
}
