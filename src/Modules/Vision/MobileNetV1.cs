using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using BatchNorm2d = MLNet.Attention.Layers.BatchNorm2d;

namespace MLNet.Attention.Vision;

/// <summary>How a <see cref="UltraLightSubspaceAttention"/> block enters <see cref="MobileNetV1"/>.</summary>
public enum UlsamPlacementKind
{
    /// <summary>ULSAM is inserted after the depthwise-separable layer (the network gains 5·C + 3·g parameters).</summary>
    AddedAfter,

    /// <summary>ULSAM takes the place of the depthwise-separable layer (which must keep its channels and resolution).</summary>
    Replacing,
}

/// <summary>
/// Where ULSAM goes in <see cref="MobileNetV1"/>: <paramref name="Layer"/> is the 0-based index of one of the 13
/// depthwise-separable layers (see <see cref="MobileNetV1.LayerTable"/>), <paramref name="Subspaces"/> is ULSAM's g.
/// </summary>
/// <param name="Kind">Added after the layer, or replacing it.</param>
/// <param name="Layer">Depthwise-separable layer index 0…12. The ULSAM paper's slides imply (spec §5): added after a
/// 512-channel 14×14 layer (5…10) or a 1024-channel 7×7 layer (11, 12); replacing one of the five repeated
/// 512→512 layers at 14×14 (6…10).</param>
/// <param name="Subspaces">ULSAM's number of subspaces g; must divide the layer's output channels.</param>
public sealed record UlsamPlacement(UlsamPlacementKind Kind, int Layer, int Subspaces = 4)
{
    /// <summary>ULSAM inserted after depthwise-separable layer <paramref name="layer"/>.</summary>
    public static UlsamPlacement AddedAfter(int layer, int subspaces = 4) => new(UlsamPlacementKind.AddedAfter, layer, subspaces);

    /// <summary>ULSAM in place of depthwise-separable layer <paramref name="layer"/> (stride 1, same channels in and out).</summary>
    public static UlsamPlacement Replacing(int layer, int subspaces = 4) => new(UlsamPlacementKind.Replacing, layer, subspaces);

    /// <summary>The slides' "MV1 + ULSAM 3.9M / 517M" setting: the last of the five repeated 512→512 layers at 14×14 (layer 10) replaced.</summary>
    public static UlsamPlacement ReplacingRepeated512(int subspaces = 4) => Replacing(10, subspaces);

    /// <summary>The slides' "569.2M" setting: added after a 512-channel 14×14 layer (here the last one, layer 10).</summary>
    public static UlsamPlacement AddedAt14x14(int subspaces = 4) => AddedAfter(10, subspaces);

    /// <summary>The slides' "569.1M" setting: added after the last 1024-channel 7×7 layer (layer 12).</summary>
    public static UlsamPlacement AddedAt7x7(int subspaces = 4) => AddedAfter(12, subspaces);
}

/// <summary>
/// MobileNet-V1 (Howard et al., 2017, arXiv 1704.04861) with a width multiplier and an optional ULSAM block
/// (<see cref="UlsamPlacement"/>), the backbone of the ULSAM paper. Stem: 3×3 conv stride 2 → BN → ReLU; then 13
/// depthwise-separable layers (3×3 depthwise conv → BN → ReLU → 1×1 conv → BN → ReLU, convs without bias); global
/// average pooling and a linear classifier. Channels are <c>⌊c·α⌋</c> for the width multiplier α.
/// </summary>
/// <remarks>
/// Module names: <c>features.0</c> = stem (<c>.0</c> conv, <c>.1</c> BN), <c>features.{1+i}</c> = layer i (<c>.0</c>
/// depthwise conv, <c>.1</c> BN, <c>.3</c> pointwise conv, <c>.4</c> BN), with the ULSAM block as its own
/// <c>features</c> entry: an added block shifts the later entries by one; a replacing block takes the layer's entry.
/// <c>classifier</c> = the Linear head. The ULSAM paper publishes no network code, so these names are this library's.
/// BatchNorms use PyTorch defaults (eps 1e-5, momentum 0.1) outside ULSAM. There is no dropout before the classifier.
/// </remarks>
public sealed class MobileNetV1 : nn.Module<Tensor, Tensor>
{
    /// <summary>(output channels at α = 1, stride) of the 13 depthwise-separable layers, in order (MobileNet paper, Table 1).</summary>
    public static IReadOnlyList<(int Channels, int Stride)> LayerTable { get; } = new[]
    {
        (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),   // layers 6…10: the five repeated 512→512 at 14×14
        (1024, 2), (1024, 1),
    };

    private const int StemChannels = 32;

    private readonly Sequential features;
    private readonly Linear classifier;
    private readonly int[] _channels;      // output channels of each of the 13 layers after the width multiplier
    private readonly int _stemChannels;

    /// <summary>Width multiplier α.</summary>
    public double WidthMultiplier { get; }

    /// <summary>Number of classes of the classifier.</summary>
    public int NumClasses { get; }

    /// <summary>Input image channels.</summary>
    public int InputChannels { get; }

    /// <summary>The ULSAM placement, or null for the vanilla network.</summary>
    public UlsamPlacement? Ulsam { get; }

    /// <summary>Channels of the final feature map (1024·α).</summary>
    public int FeatureChannels => _channels[^1];

    /// <param name="numClasses">Classifier outputs (1000 for ImageNet).</param>
    /// <param name="widthMultiplier">α: 1.0, 0.75, 0.5 (0.25) in the papers; every layer has ⌊c·α⌋ channels.</param>
    /// <param name="ulsam">Where to put ULSAM; null for the vanilla network.</param>
    /// <param name="inputChannels">Image channels (3 for RGB, 1 for grey scale).</param>
    public MobileNetV1(int numClasses = 1000, double widthMultiplier = 1.0, UlsamPlacement? ulsam = null, int inputChannels = 3)
        : base(nameof(MobileNetV1))
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "numClasses must be at least 1.");
        if (inputChannels < 1) throw new ArgumentOutOfRangeException(nameof(inputChannels), inputChannels, "inputChannels must be at least 1 (3 for RGB images).");
        if (!(widthMultiplier > 0) || (int)(StemChannels * widthMultiplier) < 1)
            throw new ArgumentOutOfRangeException(nameof(widthMultiplier), widthMultiplier, $"The width multiplier must be positive and at least 1/{StemChannels} so that every layer keeps a channel; the papers use 1.0, 0.75 or 0.5.");
        WidthMultiplier = widthMultiplier;
        NumClasses = numClasses;
        InputChannels = inputChannels;
        Ulsam = ulsam;
        _stemChannels = Scale(StemChannels);
        _channels = LayerTable.Select(l => Scale(l.Channels)).ToArray();
        if (ulsam is not null) Validate(ulsam);

        var modules = new List<(string, nn.Module<Tensor, Tensor>)> { ("0", ConvBnRelu(inputChannels, _stemChannels, 3, 2, 1)) };
        int cin = _stemChannels;
        for (int i = 0; i < LayerTable.Count; i++)
        {
            int cout = _channels[i];
            if (ulsam is { Kind: UlsamPlacementKind.Replacing } && ulsam.Layer == i)
                modules.Add((modules.Count.ToString(), new UltraLightSubspaceAttention(cout, ulsam.Subspaces)));
            else
                modules.Add((modules.Count.ToString(), DepthwiseSeparable(cin, cout, LayerTable[i].Stride)));
            if (ulsam is { Kind: UlsamPlacementKind.AddedAfter } && ulsam.Layer == i)
                modules.Add((modules.Count.ToString(), new UltraLightSubspaceAttention(cout, ulsam.Subspaces)));
            cin = cout;
        }
        features = nn.Sequential(modules.ToArray());
        classifier = nn.Linear(cin, numClasses);
        RegisterComponents();
    }

    /// <summary>Images [B, C_in, H, W] → logits [B, numClasses].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var pooled = Features(x).mean(new long[] { 2, 3 });
        return classifier.call(pooled).MoveToOuterDisposeScope();
    }

    /// <summary>Images [B, C_in, H, W] → final feature map [B, 1024·α, ⌈H/32⌉, ⌈W/32⌉] (before pooling).</summary>
    public Tensor Features(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != InputChannels)
            throw new ArgumentException($"MobileNetV1 expects images [batch, {InputChannels} (channels), height, width]; got shape [{string.Join(", ", x.shape)}]. Feed 4-D images with {InputChannels} channels or build the network with inputChannels = the image channel count.", nameof(x));
        using var scope = NewDisposeScope();
        return features.call(x).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Multiply-adds of one forward at <paramref name="height"/>×<paramref name="width"/> as the papers count them:
    /// convolutions and the classifier (no BN, ReLU, pooling), ULSAM as 2·C·H·W (its 1×1 convs). At 224×224:
    /// 568.7M (α 1), 325.4M (0.75), 149.5M (0.5) for the vanilla network, the papers' 569M / 325M / 149M.
    /// </summary>
    public long MultiplyAdds(int height = 224, int width = 224)
    {
        static int Out(int s, int stride) => (s - 1) / stride + 1;   // 3×3 conv, padding 1
        long h = Out(height, 2), w = Out(width, 2);
        long total = (long)InputChannels * _stemChannels * 9 * h * w;
        long cin = _stemChannels;
        for (int i = 0; i < LayerTable.Count; i++)
        {
            long cout = _channels[i];
            if (Ulsam is { Kind: UlsamPlacementKind.Replacing } && Ulsam.Layer == i)
                total += UltraLightSubspaceAttention.MultiplyAdds((int)cout, (int)h, (int)w);
            else
            {
                h = Out((int)h, LayerTable[i].Stride);
                w = Out((int)w, LayerTable[i].Stride);
                total += cin * 9 * h * w + cin * cout * h * w;
            }
            if (Ulsam is { Kind: UlsamPlacementKind.AddedAfter } && Ulsam.Layer == i)
                total += UltraLightSubspaceAttention.MultiplyAdds((int)cout, (int)h, (int)w);
            cin = cout;
        }
        return total + cin * NumClasses;
    }

    private int Scale(int channels) => (int)(channels * WidthMultiplier);

    private void Validate(UlsamPlacement p)
    {
        if (p.Layer < 0 || p.Layer >= LayerTable.Count)
            throw new ArgumentOutOfRangeException(nameof(p.Layer), p.Layer, $"The ULSAM layer index must be a depthwise-separable layer 0…{LayerTable.Count - 1}; the spec's placements are 5…12 (added) and 6…10 (replacing).");
        int cout = _channels[p.Layer];
        int cin = p.Layer == 0 ? _stemChannels : _channels[p.Layer - 1];
        if (p.Kind == UlsamPlacementKind.Replacing && (cin != cout || LayerTable[p.Layer].Stride != 1))
            throw new ArgumentException($"ULSAM cannot replace layer {p.Layer} ({cin}→{cout} channels, stride {LayerTable[p.Layer].Stride}): ULSAM keeps channels and resolution. Replace a stride-1 layer with equal channels (2, 4, 6…10, 12; the spec's choice is one of 6…10) or use UlsamPlacementKind.AddedAfter.", nameof(p));
        if (p.Subspaces < 1 || cout % p.Subspaces != 0)
            throw new ArgumentException($"ULSAM subspaces g = {p.Subspaces} must be positive and divide the {cout} channels of layer {p.Layer} (width multiplier {WidthMultiplier}). Choose g among 1, 2, 4, 8, 16 (or another divisor of {cout}).", nameof(p));
    }

    private static Sequential ConvBnRelu(int cin, int cout, int kernel, int stride, int padding)
        => nn.Sequential(nn.Conv2d(cin, cout, kernel, stride: stride, padding: padding, bias: false), new BatchNorm2d(cout), nn.ReLU());

    private static Sequential DepthwiseSeparable(int cin, int cout, int stride)
        => nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride: stride, padding: 1, groups: cin, bias: false), new BatchNorm2d(cin), nn.ReLU(),
            nn.Conv2d(cin, cout, 1, bias: false), new BatchNorm2d(cout), nn.ReLU());
}
