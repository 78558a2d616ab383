using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using BatchNorm2d = MLNet.Attention.Layers.BatchNorm2d;

namespace MLNet.Attention.Vision;

/// <summary>Where one inverted-residual block sits in a <see cref="MobileNetV2"/>; handed to the attention and replacement factories.</summary>
/// <param name="BlockIndex">0-based index among the 17 inverted-residual blocks.</param>
/// <param name="FeatureIndex">Position in <see cref="MobileNetV2.Features"/> (the stem is 0, so BlockIndex + 1): the state-dict prefix <c>features.{FeatureIndex}.</c>.</param>
/// <param name="InputChannels">Input channels of the block.</param>
/// <param name="OutputChannels">Output channels of the block.</param>
/// <param name="Stride">Depthwise stride (1 or 2).</param>
/// <param name="ExpandRatio">Expansion ratio t (1 for the first block, 6 elsewhere).</param>
/// <param name="HiddenChannels">Expanded width E = InputChannels · t (the width an attention module sees).</param>
/// <param name="Stage">Row of the (t, c, n, s) table, 0…6 (output widths 16, 24, 32, 64, 96, 160, 320 at width 1).</param>
/// <param name="IndexInStage">0-based index of the block inside its stage (the first one carries the stage's stride).</param>
/// <param name="OutputStride">Total down-sampling of the block's output relative to the input image (2, 4, 8, 16 or 32): 16 means 14×14 at 224×224.</param>
public sealed record InvertedResidualSpec(
    int BlockIndex, int FeatureIndex, int InputChannels, int OutputChannels, int Stride, int ExpandRatio,
    int HiddenChannels, int Stage, int IndexInStage, int OutputStride)
{
    /// <summary>Whether the block has the identity shortcut (stride 1, equal channels): a replacement must then map [B, C, H, W] to the same shape.</summary>
    public bool HasIdentity => Stride == 1 && InputChannels == OutputChannels;
}

/// <summary>
/// MobileNetV2 (Sandler et al., CVPR 2018), the torchvision architecture (3,504,872 parameters at width 1 with 1000
/// classes) with plug-in points for attention: an attention factory placed inside every inverted-residual block with
/// expansion ≠ 1 after the depthwise conv → BN → ReLU6 and before the projection (the official ELA/CA position, e.g.
/// <c>mbv2_ela72</c> = <see cref="WithEla"/>(ElaVariant.L)), and a replacement factory that substitutes whole blocks
/// (the ULSAM placement, which replaces chosen t = 6 blocks by an attention module).
/// </summary>
/// <remarks>
/// State-dict keys follow the flat layout of the official ELA/CA MobileNetV2 models: <c>features.0</c> stem
/// (3×3 conv stride 2, BN, ReLU6), <c>features.1…17</c> inverted-residual blocks (<c>features.N.conv.K…</c>, see
/// <see cref="InvertedResidual"/>), <c>conv</c> the final 1×1 conv (→ 1280) + BN + ReLU6, global average pooling, and
/// <c>classifier</c> = Dropout + Linear(1280, classes) (<c>classifier.1.weight</c>). Torchvision's own checkpoint
/// differs only in names (nested <c>features.N.conv.0.0</c>, final conv as <c>features.18</c>); MobileNetV2.md lists the mapping.
/// Initialisation as the reference: Conv2d ~ N(0, √(2 / (k·k·out))), BatchNorm (1, 0), Linear N(0, 0.01) with bias 0 —
/// applied to the backbone's own layers only, so attention and replacement modules keep their own initialisation
/// (the ELA Conv1d stays kaiming-uniform, its GroupNorm (1, 0)).
/// Channel widths are rounded with <c>_make_divisible</c> to multiples of 8 (4 at width 0.1), as in the reference.
/// </remarks>
public sealed class MobileNetV2 : nn.Module<Tensor, Tensor>
{
    // Field names are the reference state-dict prefixes (features.*, conv.*, classifier.*).
    private readonly Sequential features;
    private readonly Sequential conv;
    private readonly Sequential classifier;

    private static readonly (int T, int C, int N, int S)[] Table =
    {
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    };

    /// <summary>The 17 inverted-residual block positions (replaced ones included).</summary>
    public IReadOnlyList<InvertedResidualSpec> Blocks { get; }

    /// <summary>Input image channels.</summary>
    public int InputChannels { get; }

    /// <summary>Width of the pooled feature vector (1280 for width ≤ 1).</summary>
    public int FeatureWidth { get; }

    /// <summary>Number of classes of the classifier.</summary>
    public int NumClasses { get; }

    /// <summary>Stem + inverted-residual blocks (<c>features.*</c>): [B, 3, H, W] → [B, 320·width, H/32, W/32].</summary>
    public Sequential Features => features;

    /// <summary>The final 1×1 conv + BN + ReLU6 (<c>conv.*</c>): → [B, <see cref="FeatureWidth"/>, h, w].</summary>
    public Sequential FinalConv => conv;

    /// <summary>Dropout + Linear (<c>classifier.*</c>): [B, <see cref="FeatureWidth"/>] → [B, classes].</summary>
    public Sequential Classifier => classifier;

    /// <param name="numClasses">Classifier outputs (1000 for ImageNet).</param>
    /// <param name="widthMultiplier">Width multiplier α (&gt; 0; 1.0, 0.75, 0.5 … as in the paper).</param>
    /// <param name="dropout">Dropout before the classifier: 0.2 in torchvision, 0.1 in the official ELA/CA models.</param>
    /// <param name="attention">
    /// Optional attention factory, called for every kept block with expansion ≠ 1 (16 of the 17 blocks) with the block's
    /// <see cref="InvertedResidualSpec"/>; build the module on <see cref="InvertedResidualSpec.HiddenChannels"/> channels,
    /// or return null to leave that block without attention.
    /// </param>
    /// <param name="replaceBlock">
    /// Optional replacement factory: when it returns a module for a block, that module stands in <c>features</c> in place
    /// of the whole block. It must map [B, InputChannels, H, W] to [B, OutputChannels, ⌈H/Stride⌉, ⌈W/Stride⌉]
    /// (for ULSAM: only blocks with <see cref="InvertedResidualSpec.HasIdentity"/>).
    /// </param>
    /// <param name="inputChannels">Image channels (3 for RGB, 1 for grey-scale).</param>
    /// <param name="cifarStem">For small images (CIFAR's 32 × 32): stride 1 in the stem and in the first 24-channel stage
    /// (the usual CIFAR adaptation), so the network downsamples 8× instead of 32×. Same parameters, same state dict.</param>
    public MobileNetV2(int numClasses = 1000, double widthMultiplier = 1.0, double dropout = 0.2,
        Func<InvertedResidualSpec, nn.Module<Tensor, Tensor>?>? attention = null,
        Func<InvertedResidualSpec, nn.Module<Tensor, Tensor>?>? replaceBlock = null,
        int inputChannels = 3, bool cifarStem = false) : base(nameof(MobileNetV2))
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "At least one class is needed; use ForwardFeatures for a headless backbone.");
        if (!(widthMultiplier > 0) || double.IsInfinity(widthMultiplier))
            throw new ArgumentOutOfRangeException(nameof(widthMultiplier), widthMultiplier, "The width multiplier must be a positive number (e.g. 1.0, 0.75, 0.5).");
        if (dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "Dropout must be in [0, 1).");
        if (inputChannels < 1) throw new ArgumentOutOfRangeException(nameof(inputChannels), inputChannels, "The image must have at least one channel.");
        InputChannels = inputChannels;
        NumClasses = numClasses;

        int divisor = widthMultiplier == 0.1 ? 4 : 8;
        int channels = MakeDivisible(32 * widthMultiplier, divisor);
        var own = new List<nn.Module>();
        int stemStride = cifarStem ? 1 : 2;
        var layers = new List<nn.Module<Tensor, Tensor>> { ConvBnReLU6(inputChannels, channels, 3, stemStride, own) };
        var specs = new List<InvertedResidualSpec>();
        int outputStride = stemStride;
        for (int stage = 0; stage < Table.Length; stage++)
        {
            var (t, c, n, s) = Table[stage];
            if (cifarStem && stage == 1) s = 1;
            int outChannels = MakeDivisible(c * widthMultiplier, divisor);
            for (int i = 0; i < n; i++)
            {
                int stride = i == 0 ? s : 1;
                outputStride *= stride;
                var spec = new InvertedResidualSpec(specs.Count, specs.Count + 1, channels, outChannels, stride, t,
                    checked(channels * t), stage, i, outputStride);
                specs.Add(spec);
                var replacement = replaceBlock?.Invoke(spec);
                if (replacement is not null)
                {
                    layers.Add(replacement);
                }
                else
                {
                    var block = new InvertedResidual(channels, outChannels, stride, t,
                        attention is null ? null : _ => attention(spec));
                    own.AddRange(block.OwnLayers);
                    layers.Add(block);
                }
                channels = outChannels;
            }
        }
        Blocks = specs;
        FeatureWidth = widthMultiplier > 1.0 ? MakeDivisible(1280 * widthMultiplier, divisor) : 1280;
        features = nn.Sequential(layers.ToArray());
        conv = ConvBnReLU6(channels, FeatureWidth, 1, 1, own);
        var linear = nn.Linear(FeatureWidth, numClasses);
        own.Add(linear);
        classifier = nn.Sequential(nn.Dropout(dropout), linear);
        RegisterComponents();
        InitialiseOwnLayers(own);
    }

    /// <summary>
    /// MobileNetV2 with ELA in every block with expansion ≠ 1. The defaults reproduce the official ImageNet model
    /// <c>mbv2_ela72</c> (ELA-L, dropout 0.1, 3,916,904 parameters with 1000 classes).
    /// </summary>
    public static MobileNetV2 WithEla(ElaVariant variant = ElaVariant.L, int numClasses = 1000, double widthMultiplier = 1.0,
        double dropout = 0.1, int inputChannels = 3, bool cifarStem = false)
        => new(numClasses, widthMultiplier, dropout, spec => new EfficientLocalAttention(spec.HiddenChannels, variant), null,
            inputChannels, cifarStem);

    /// <summary>
    /// MobileNetV2 with ULSAM replacing the chosen stride-1, equal-width inverted-residual blocks (the ULSAM paper's
    /// MobileNetV2 rows; named choices in <see cref="UlsamMobileNetV2Placements"/>), each by
    /// <c>UltraLightSubspaceAttention(channels, subspaces)</c> on the block's width.
    /// </summary>
    /// <param name="replacedFeatureIndices">Positions in <see cref="Features"/> (torchvision's <c>features.N</c>) to replace; each must be a block with the identity shortcut.</param>
    /// <param name="subspaces">ULSAM subspaces g (4 in the paper's ImageNet runs); must divide the replaced blocks' widths.</param>
    /// <param name="numClasses">Classifier outputs.</param>
    /// <param name="widthMultiplier">Width multiplier α.</param>
    /// <param name="dropout">Dropout before the classifier.</param>
    /// <param name="inputChannels">Image channels.</param>
    /// <param name="cifarStem">Stride 1 in the stem and the first 24-channel stage (for 32 × 32 images).</param>
    public static MobileNetV2 WithUlsam(IReadOnlyCollection<int> replacedFeatureIndices, int subspaces = 4, int numClasses = 1000,
        double widthMultiplier = 1.0, double dropout = 0.2, int inputChannels = 3, bool cifarStem = false)
    {
        ArgumentNullException.ThrowIfNull(replacedFeatureIndices);
        if (replacedFeatureIndices.Count == 0)
            throw new ArgumentException("Name at least one block to replace, e.g. UlsamMobileNetV2Placements.OneAt14x14 ([12]).", nameof(replacedFeatureIndices));
        var pending = new HashSet<int>(replacedFeatureIndices);
        var net = new MobileNetV2(numClasses, widthMultiplier, dropout, null, spec =>
        {
            if (!pending.Remove(spec.FeatureIndex)) return null;
            if (!spec.HasIdentity)
                throw new ArgumentException($"features.{spec.FeatureIndex} ({spec.InputChannels}→{spec.OutputChannels} channels, stride {spec.Stride}) changes the shape, so ULSAM cannot replace it; " +
                    "choose a block with the identity shortcut (at width 1: features 3, 5, 6, 8, 9, 10, 12, 13, 15, 16).", nameof(replacedFeatureIndices));
            return new UltraLightSubspaceAttention(spec.OutputChannels, subspaces);
        }, inputChannels, cifarStem);
        if (pending.Count > 0)
        {
            net.Dispose();
            throw new ArgumentOutOfRangeException(nameof(replacedFeatureIndices), $"No inverted-residual block at features.{string.Join(", features.", pending.Order())}; blocks are features.1 … features.17.");
        }
        return net;
    }

    /// <summary>Reference channel rounding: nearest multiple of <paramref name="divisor"/>, at least the divisor, never more than 10 % below.</summary>
    internal static int MakeDivisible(double v, int divisor)
    {
        int rounded = Math.Max(divisor, (int)(v + divisor / 2.0) / divisor * divisor);
        if (rounded < 0.9 * v) rounded += divisor;
        return rounded;
    }

    private static Sequential ConvBnReLU6(int input, int output, int kernel, int stride, List<nn.Module> own)
    {
        var c = nn.Conv2d(input, output, kernel, stride: stride, padding: kernel / 2, bias: false);
        var bn = new BatchNorm2d(output, eps: 1e-5, momentum: 0.1);
        own.Add(c);
        own.Add(bn);
        return nn.Sequential(c, bn, nn.ReLU6());
    }

    private static void InitialiseOwnLayers(IEnumerable<nn.Module> own)
    {
        using var noGrad = no_grad();
        foreach (var m in own)
        {
            switch (m)
            {
                case Conv2d c:
                    long n = c.weight!.shape[2] * c.weight.shape[3] * c.weight.shape[0];
                    nn.init.normal_(c.weight, 0, Math.Sqrt(2.0 / n));
                    if (c.bias is not null) nn.init.zeros_(c.bias);
                    break;
                case BatchNorm2d bn:
                    nn.init.ones_(bn.weight!);
                    nn.init.zeros_(bn.bias!);
                    break;
                case Linear l:
                    nn.init.normal_(l.weight!, 0, 0.01);
                    if (l.bias is not null) nn.init.zeros_(l.bias);
                    break;
            }
        }
    }

    /// <summary>Class scores: [B, C_in, H, W] → [B, classes].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return classifier.call(ForwardFeatures(x)).MoveToOuterDisposeScope();
    }

    /// <summary>The pooled feature vector (input of the classifier): [B, C_in, H, W] → [B, <see cref="FeatureWidth"/>].</summary>
    public Tensor ForwardFeatures(Tensor x)
    {
        using var scope = NewDisposeScope();
        return ForwardFeatureMap(x).mean(new long[] { 2, 3 }).MoveToOuterDisposeScope();
    }

    /// <summary>The last feature map (after the final 1×1 conv): [B, C_in, H, W] → [B, <see cref="FeatureWidth"/>, ⌈H/32⌉, ⌈W/32⌉].</summary>
    public Tensor ForwardFeatureMap(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != InputChannels)
            throw new ArgumentException(
                $"MobileNetV2 expects images of shape [batch, {InputChannels} (channels), height, width]; got [{string.Join(", ", x.shape)}]. " +
                "Pass inputChannels to the constructor to change the channel count.", nameof(x));
        using var scope = NewDisposeScope();
        return conv.call(features.call(x)).MoveToOuterDisposeScope();
    }
}
