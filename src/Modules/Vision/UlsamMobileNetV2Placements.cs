namespace MLNet.Attention.Vision;

/// <summary>
/// The ULSAM paper's MobileNetV2 rows as <see cref="MobileNetV2.WithUlsam"/> choices (torchvision <c>features.N</c>
/// indices at width 1). The paper does not say which block of a stage was replaced; parameter and FLOP counts are the
/// same for any block of the stage, so the first block with the identity shortcut is used. Parameter counts at g = 4
/// with 1000 classes: the paper's values are these minus BatchNorm parameters, rounded (see UltraLightSubspaceAttention.md).
/// </summary>
public static class UlsamMobileNetV2Placements
{
    /// <summary>One 96-channel block at 14×14 (paper row 3.28M / 277.34M FLOPs): 3,387,092 parameters.</summary>
    public static IReadOnlyCollection<int> OneAt14x14 { get; } = [12];

    /// <summary>One 160-channel block at 7×7 (paper row 3.08M / 284.54M): 3,185,684 parameters.</summary>
    public static IReadOnlyCollection<int> OneAt7x7 { get; } = [15];

    /// <summary>One 96-channel and one 160-channel block (paper row 2.96–2.97M / 261.88M): 3,067,904 parameters.</summary>
    public static IReadOnlyCollection<int> OneEach { get; } = [12, 15];

    /// <summary>Two 160-channel blocks (paper row 2.77M / 269.07M): 2,866,496 parameters.</summary>
    public static IReadOnlyCollection<int> TwoAt7x7 { get; } = [15, 16];

    /// <summary>Two 96-channel and two 160-channel blocks (paper row 2.54M / 223.77M, the ImageNet model): 2,630,936 parameters.</summary>
    public static IReadOnlyCollection<int> TwoEach { get; } = [12, 13, 15, 16];

    /// <summary>One 96-channel and one 64-channel block at 14×14 (paper row 3.23M / 267.06M, Birds): 3,333,152 parameters.</summary>
    public static IReadOnlyCollection<int> OneAt14x14AndOne64 { get; } = [12, 8];
}
