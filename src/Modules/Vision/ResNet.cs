using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;
using BatchNorm2d = MLNet.Attention.Layers.BatchNorm2d;

namespace MLNet.Attention.Vision;

/// <summary>
/// ResNet basic block (He et al., CVPR 2016): 3×3 conv (stride s) → BN → ReLU → 3×3 conv → BN → <b>attention</b> →
/// + shortcut → ReLU. The optional attention sits after <c>bn2</c> and before the residual add, as in the ELA
/// reference's ResNet (<c>semantic/network/backbone/resnet.py</c>), and by default is applied with an extra identity:
/// <c>out ← out + A(out)</c> (for ELA: <c>out ⊙ (1 + a_h ⊙ a_w)</c>).
/// </summary>
/// <remarks>
/// State-dict keys: <c>conv1</c>, <c>bn1</c>, <c>conv2</c>, <c>bn2</c>, <c>feat0</c> (the attention, the reference's
/// name), <c>downsample.0</c> (1×1 conv, stride s) / <c>downsample.1</c> (BN) when the shape changes — torchvision's names.
/// </remarks>
public sealed class BasicBlock : nn.Module<Tensor, Tensor>, Layers.IConvBatchNormPairs
{
    // Declaration order = registration order = the reference's parameter order (torchvision BasicBlock: conv1, bn1,
    // conv2, bn2, downsample; ELA_Code assigns feat0 after downsample).
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Sequential? downsample;
    private readonly nn.Module<Tensor, Tensor>? feat0;

    /// <summary>Input channels.</summary>
    public int InputChannels { get; }

    /// <summary>Output channels.</summary>
    public int OutputChannels { get; }

    /// <summary>Stride of the first conv (and of the shortcut).</summary>
    public int Stride { get; }

    /// <summary>Whether the attention output is added to its input (<c>out + A(out)</c>) rather than replacing it.</summary>
    public bool AttentionResidual { get; }

    /// <summary>The attention module after <c>bn2</c>, or null.</summary>
    public nn.Module<Tensor, Tensor>? Attention => feat0;

    /// <param name="inputChannels">Input channels.</param>
    /// <param name="outputChannels">Output channels (both convs).</param>
    /// <param name="stride">Stride of the first 3×3 conv (1 or 2); a 1×1 conv + BN shortcut is added when the shape changes.</param>
    /// <param name="attention">Optional factory: channels → attention module keeping the shape (e.g. <c>c =&gt; new EfficientLocalAttention(c)</c>).</param>
    /// <param name="attentionResidual">Apply the attention as <c>out + A(out)</c> (reference behaviour, default) or as <c>A(out)</c>.</param>
    public BasicBlock(int inputChannels, int outputChannels, int stride = 1,
        Func<int, nn.Module<Tensor, Tensor>?>? attention = null, bool attentionResidual = true) : base(nameof(BasicBlock))
    {
        if (inputChannels < 1) throw new ArgumentOutOfRangeException(nameof(inputChannels), inputChannels, "The input channel count must be positive.");
        if (outputChannels < 1) throw new ArgumentOutOfRangeException(nameof(outputChannels), outputChannels, "The output channel count must be positive.");
        if (stride < 1) throw new ArgumentOutOfRangeException(nameof(stride), stride, "The stride must be at least 1 (1 keeps the size, 2 halves it).");
        InputChannels = inputChannels;
        OutputChannels = outputChannels;
        Stride = stride;
        AttentionResidual = attentionResidual;
        conv1 = nn.Conv2d(inputChannels, outputChannels, 3, stride: stride, padding: 1, bias: false);
        bn1 = new BatchNorm2d(outputChannels);
        conv2 = nn.Conv2d(outputChannels, outputChannels, 3, stride: 1, padding: 1, bias: false);
        bn2 = new BatchNorm2d(outputChannels);
        if (attention is not null)
        {
            try
            {
                feat0 = attention(outputChannels);
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException(
                    $"The attention module for the basic block ({inputChannels} → {outputChannels} channels) could not be built: {ex.Message}",
                    nameof(attention), ex);
            }
        }
        if (stride != 1 || inputChannels != outputChannels)
            downsample = nn.Sequential(nn.Conv2d(inputChannels, outputChannels, 1, stride: stride, bias: false), new BatchNorm2d(outputChannels));
        RegisterComponents();
    }

    /// <summary>x: [B, inp, H, W] → [B, out, ⌈H/s⌉, ⌈W/s⌉].</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != InputChannels)
            throw new ArgumentException(
                $"BasicBlock expects an input of shape [batch, {InputChannels} (channels), height, width]; got [{string.Join(", ", x.shape)}].", nameof(x));
        using var scope = NewDisposeScope();
        var o = bn1.call(conv1.call(x)).relu();
        o = bn2.call(conv2.call(o));
        if (feat0 is not null) o = AttentionResidual ? o.add(feat0.call(o), One) : feat0.call(o);
        var identity = downsample is null ? x : downsample.call(x);
        return o.add(identity, One).relu().MoveToOuterDisposeScope();
    }

    /// <summary>The block's own layers (everything except the attention module), for backbone initialisers.</summary>
    internal IEnumerable<nn.Module> OwnLayers
    {
        get
        {
            yield return conv1; yield return bn1; yield return conv2; yield return bn2;
            if (downsample is not null) foreach (var m in downsample.children()) yield return m;
        }
    }

    // forward: bn1(conv1(x)), bn2(conv2(o)); the downsample Sequential (conv, bn) is found as a Sequential.
    IEnumerable<(Conv2d, BatchNorm2d)> Layers.IConvBatchNormPairs.ConvBatchNormPairs => new[] { (conv1, bn1), (conv2, bn2) };
}

/// <summary>
/// ResNet with basic blocks and a CIFAR stem (He et al., CVPR 2016; the common CIFAR variant): 3×3 conv (stride 1)
/// → BN → ReLU, no max-pool, four stages of <see cref="BasicBlock"/> (64, 128, 256, 512 channels, strides 1, 2, 2, 2),
/// global average pooling and a Linear head. The default <c>[2, 2, 2, 2]</c> is ResNet-18 (11,173,962 parameters
/// with 10 classes). Each block can carry an attention module after <c>bn2</c> (see <see cref="BasicBlock"/>).
/// </summary>
/// <remarks>
/// State-dict keys follow torchvision: <c>conv1</c>, <c>bn1</c>, <c>layer1…layer4</c> (<c>layerS.I.conv1.weight</c>, …),
/// <c>fc</c>. Initialisation as torchvision: Conv2d kaiming-normal (fan_out, ReLU), BatchNorm (1, 0), Linear PyTorch
/// default — applied to the backbone's own layers, so attention modules keep their own initialisation.
/// </remarks>
public sealed class ResNet : nn.Module<Tensor, Tensor>, Layers.IConvBatchNormPairs
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential layer1, layer2, layer3, layer4;
    private readonly Linear fc;

    // ForwardFeatures: bn1(conv1(x)).
    IEnumerable<(Conv2d, BatchNorm2d)> Layers.IConvBatchNormPairs.ConvBatchNormPairs => new[] { (conv1, bn1) };

    /// <summary>Input image channels.</summary>
    public int InputChannels { get; }

    /// <summary>Width of the pooled feature vector (8 · base width = 512 by default).</summary>
    public int FeatureWidth { get; }

    /// <summary>Number of classes of the head.</summary>
    public int NumClasses { get; }

    /// <summary>The head (<c>fc</c>): [B, <see cref="FeatureWidth"/>] → [B, classes].</summary>
    public Linear Classifier => fc;

    /// <param name="numClasses">Head outputs (10 for CIFAR-10).</param>
    /// <param name="attention">Optional factory: channels → attention module, placed in every basic block after <c>bn2</c>.</param>
    /// <param name="attentionResidual">Apply the attention as <c>out + A(out)</c> (the ELA reference's ResNet integration, default) or as <c>A(out)</c>.</param>
    /// <param name="blocksPerStage">Blocks in each of the four stages; <c>[2, 2, 2, 2]</c> (default) is ResNet-18, <c>[3, 4, 6, 3]</c> ResNet-34.</param>
    /// <param name="inputChannels">Image channels (3 for RGB, 1 for grey-scale).</param>
    /// <param name="baseWidth">Channels of the stem and the first stage (64); stages use 1, 2, 4, 8 × this.</param>
    public ResNet(int numClasses = 10, Func<int, nn.Module<Tensor, Tensor>?>? attention = null, bool attentionResidual = true,
        int[]? blocksPerStage = null, int inputChannels = 3, int baseWidth = 64) : base(nameof(ResNet))
    {
        blocksPerStage ??= new[] { 2, 2, 2, 2 };
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "At least one class is needed; use ForwardFeatures for a headless backbone.");
        if (blocksPerStage.Length != 4 || blocksPerStage.Any(n => n < 1))
            throw new ArgumentException(
                $"blocksPerStage must list four positive block counts (one per stage); got [{string.Join(", ", blocksPerStage)}]. Use [2, 2, 2, 2] for ResNet-18 or [3, 4, 6, 3] for ResNet-34.",
                nameof(blocksPerStage));
        if (inputChannels < 1) throw new ArgumentOutOfRangeException(nameof(inputChannels), inputChannels, "The image must have at least one channel.");
        if (baseWidth < 1) throw new ArgumentOutOfRangeException(nameof(baseWidth), baseWidth, "The base width must be positive (64 for ResNet-18).");
        InputChannels = inputChannels;
        NumClasses = numClasses;
        FeatureWidth = 8 * baseWidth;

        conv1 = nn.Conv2d(inputChannels, baseWidth, 3, stride: 1, padding: 1, bias: false);
        bn1 = new BatchNorm2d(baseWidth);
        var own = new List<nn.Module> { conv1, bn1 };
        int channels = baseWidth;
        Sequential Stage(int stage)
        {
            int width = baseWidth << stage;
            var blocks = new List<nn.Module<Tensor, Tensor>>();
            for (int i = 0; i < blocksPerStage[stage]; i++)
            {
                var block = new BasicBlock(channels, width, i == 0 && stage > 0 ? 2 : 1, attention, attentionResidual);
                own.AddRange(block.OwnLayers);
                blocks.Add(block);
                channels = width;
            }
            return nn.Sequential(blocks.ToArray());
        }
        layer1 = Stage(0);
        layer2 = Stage(1);
        layer3 = Stage(2);
        layer4 = Stage(3);
        fc = nn.Linear(FeatureWidth, numClasses);
        RegisterComponents();

        using var noGrad = no_grad();
        foreach (var m in own)
        {
            switch (m)
            {
                case Conv2d c:
                    nn.init.kaiming_normal_(c.weight!, mode: nn.init.FanInOut.FanOut, nonlinearity: nn.init.NonlinearityType.ReLU);
                    break;
                case BatchNorm2d bn:
                    nn.init.ones_(bn.weight!);
                    nn.init.zeros_(bn.bias!);
                    break;
            }
        }
    }

    /// <summary>ResNet-18 (CIFAR stem) with ELA after <c>bn2</c> of every block, applied as <c>out + ELA(out)</c>.</summary>
    public static ResNet ResNet18WithEla(ElaVariant variant = ElaVariant.B, int numClasses = 10, int inputChannels = 3)
        => new(numClasses, c => new EfficientLocalAttention(c, variant), attentionResidual: true, inputChannels: inputChannels);

    /// <summary>Class scores: [B, C_in, H, W] → [B, classes].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc.call(ForwardFeatures(x)).MoveToOuterDisposeScope();
    }

    /// <summary>The pooled feature vector (input of <c>fc</c>): [B, C_in, H, W] → [B, <see cref="FeatureWidth"/>].</summary>
    public Tensor ForwardFeatures(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != InputChannels)
            throw new ArgumentException(
                $"ResNet expects images of shape [batch, {InputChannels} (channels), height, width]; got [{string.Join(", ", x.shape)}]. " +
                "Pass inputChannels to the constructor to change the channel count.", nameof(x));
        using var scope = NewDisposeScope();
        var h = bn1.call(conv1.call(x)).relu();
        h = layer4.call(layer3.call(layer2.call(layer1.call(h))));
        return h.mean(new long[] { 2, 3 }).MoveToOuterDisposeScope();
    }
}
