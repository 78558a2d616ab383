namespace MLNet.Attention.Classification;

/// <summary>
/// The network part of an image component's options: backbone, attention, input size and pixel normalisation. Shared
/// by <see cref="ImageClassifierOptions"/> and the image featurizer's options, so that both accept and refuse exactly
/// the same networks and build them the same way.
/// </summary>
public interface IImageNetworkOptions
{
    /// <summary>Image height the network sees.</summary>
    int ImageHeight { get; }

    /// <summary>Image width the network sees.</summary>
    int ImageWidth { get; }

    /// <summary>Channels: 3 for RGB, 1 for grey-scale.</summary>
    int Channels { get; }

    /// <summary>The backbone.</summary>
    ImageBackbone Backbone { get; }

    /// <summary>The attention in the backbone (official placements).</summary>
    ImageAttention Attention { get; }

    /// <summary>ULSAM subspaces g.</summary>
    int UlsamSubspaces { get; }

    /// <summary>Width multiplier α (MobileNets).</summary>
    double WidthMultiplier { get; }

    /// <summary>The CIFAR adaptation of the stem; null: on for images of at most 64 pixels a side.</summary>
    bool? CifarStem { get; }

    /// <summary>Factor applied to the pixel values first.</summary>
    float PixelScale { get; }

    /// <summary>Per-channel mean subtracted after scaling.</summary>
    float[] Mean { get; }

    /// <summary>Per-channel standard deviation divided by after the mean.</summary>
    float[] Std { get; }
}

/// <summary>Validation and network configuration written once for every <see cref="IImageNetworkOptions"/>.</summary>
internal static class ImageNetworkOptions
{
    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the option and the fix.</summary>
    internal static void Validate(IImageNetworkOptions o)
    {
        if (o.ImageHeight < 8 || o.ImageWidth < 8)
            throw new ArgumentOutOfRangeException(nameof(o.ImageHeight), $"{o.ImageHeight} × {o.ImageWidth}",
                "Images must be at least 8 × 8 pixels.");
        if (o.Channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(o.Channels), o.Channels, "Channels must be 3 (RGB) or 1 (grey-scale).");
        if (o.Mean is null || o.Std is null || o.Mean.Length != o.Channels || o.Std.Length != o.Channels)
            throw new ArgumentOutOfRangeException(nameof(o.Mean), $"Mean and Std need one value per channel " +
                $"({o.Channels}); for grey-scale use e.g. Mean = {{ 0.5f }}, Std = {{ 0.5f }}.");
        if (o.Std.Any(s => !(s > 0))) throw new ArgumentOutOfRangeException(nameof(o.Std), "Every Std value must be positive.");
        if (o.Mean.Any(m => !float.IsFinite(m)))
            throw new ArgumentOutOfRangeException(nameof(o.Mean), "Every Mean value must be a finite number.");
        if (!(o.PixelScale > 0) || !float.IsFinite(o.PixelScale))
            throw new ArgumentOutOfRangeException(nameof(o.PixelScale), o.PixelScale,
                "PixelScale must be positive (1/255 for 0–255 pixels).");
        if (!(o.WidthMultiplier > 0) || !double.IsFinite(o.WidthMultiplier))
            throw new ArgumentOutOfRangeException(nameof(o.WidthMultiplier), o.WidthMultiplier, "WidthMultiplier must be positive.");
        if (!Enum.IsDefined(o.Backbone)) throw new ArgumentOutOfRangeException(nameof(o.Backbone), o.Backbone, "Unknown backbone.");
        if (!Enum.IsDefined(o.Attention))
            throw new ArgumentOutOfRangeException(nameof(o.Attention), o.Attention, "Unknown attention.");
        if (o.Attention == ImageAttention.Ulsam && o.UlsamSubspaces < 1)
            throw new ArgumentOutOfRangeException(nameof(o.UlsamSubspaces), o.UlsamSubspaces,
                "ULSAM needs at least one subspace (the paper uses 1, 2, 4, 8 or 16; 4 by default).");
        if (o.Attention == ImageAttention.Ulsam && o.Backbone == ImageBackbone.ResNet18)
            throw new ArgumentOutOfRangeException(nameof(o.Attention), o.Attention, "ULSAM is placed in MobileNetV2 or " +
                "MobileNet V1; choose one of them, or an ELA variant for ResNet-18.");
        if (o.Backbone == ImageBackbone.MobileNetV1 && o.Attention is not (ImageAttention.None or ImageAttention.Ulsam))
            throw new ArgumentOutOfRangeException(nameof(o.Attention), o.Attention, "MobileNet V1 takes Attention = None " +
                "or Ulsam (ELA has no official MobileNet V1 placement); use MobileNetV2 or ResNet18 for ELA.");
    }

    /// <summary>The persisted network configuration of these options.</summary>
    internal static ImageClassifierConfig ToConfig(IImageNetworkOptions o, double dropout, int classes) => new(
        o.Backbone, o.Attention, o.UlsamSubspaces, o.WidthMultiplier, dropout,
        o.CifarStem ?? Math.Max(o.ImageHeight, o.ImageWidth) <= 64, o.Channels, o.ImageHeight, o.ImageWidth,
        o.PixelScale, o.Mean.ToArray(), o.Std.ToArray(), classes);
}
