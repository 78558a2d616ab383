using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// The LeNet-style instance encoder of Ilse, Tomczak &amp; Welling (ICML 2018) for MNIST-bags, trained end to end with
/// the attention: <c>Conv2d(C→20, 5×5) → ReLU → MaxPool 2 → Conv2d(20→50, 5×5) → ReLU → MaxPool 2 → flatten →
/// Linear(F→L) → ReLU</c>, where the flattened size <c>F = 50·⌊(⌊(H−4)/2⌋−4)/2⌋·⌊(⌊(W−4)/2⌋−4)/2⌋</c> follows from the
/// image size (800 for 28×28) and L is the output width (500 in the paper). Valid (unpadded) convolutions and floor
/// pooling as in the paper, so an image must be at least 16×16. PyTorch's default initialisation.
/// </summary>
public sealed class LeNetInstanceEncoder : nn.Module<Tensor, Tensor>
{
    /// <summary>The smallest image side the two valid 5×5 convolutions and 2×2 poolings accept.</summary>
    public const int MinimumImageSize = 16;

    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Linear fc;

    /// <param name="channels">Channels C of an instance image (1 for grey).</param>
    /// <param name="height">Image height H (at least <see cref="MinimumImageSize"/>).</param>
    /// <param name="width">Image width W (at least <see cref="MinimumImageSize"/>).</param>
    /// <param name="outputSize">Output width L (500 in the paper).</param>
    public LeNetInstanceEncoder(int channels, int height, int width, int outputSize = 500) : base(nameof(LeNetInstanceEncoder))
    {
        if (channels < 1)
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "An instance image needs at least one channel.");
        if (height < MinimumImageSize)
            throw new ArgumentOutOfRangeException(nameof(height), height, $"The LeNet encoder needs images at least " +
                $"{MinimumImageSize} pixels high (two 5×5 convolutions and two 2×2 poolings); got {height}.");
        if (width < MinimumImageSize)
            throw new ArgumentOutOfRangeException(nameof(width), width, $"The LeNet encoder needs images at least " +
                $"{MinimumImageSize} pixels wide (two 5×5 convolutions and two 2×2 poolings); got {width}.");
        if (outputSize < 1)
            throw new ArgumentOutOfRangeException(nameof(outputSize), outputSize, "The output width must be at least 1 (500 in the paper).");
        Channels = channels;
        Height = height;
        Width = width;
        OutputSize = outputSize;
        FlattenedSize = 50 * Side(height) * Side(width);
        conv1 = nn.Conv2d(channels, 20, 5);
        conv2 = nn.Conv2d(20, 50, 5);
        fc = nn.Linear(FlattenedSize, outputSize);
        RegisterComponents();
    }

    /// <summary>Channels C of an instance image.</summary>
    public int Channels { get; }

    /// <summary>Image height H.</summary>
    public int Height { get; }

    /// <summary>Image width W.</summary>
    public int Width { get; }

    /// <summary>Values per instance, C·H·W.</summary>
    public int InputSize => Channels * Height * Width;

    /// <summary>Width F of the flattened second pooling (800 for 28×28).</summary>
    public int FlattenedSize { get; }

    /// <summary>Output width L.</summary>
    public int OutputSize { get; }

    /// <summary>Trainable parameters: <c>(25C·20 + 20) + (500·50 + 50) + (F·L + L)</c>.</summary>
    public long ParameterCount => 25L * Channels * 20 + 20 + 25L * 20 * 50 + 50 + (long)FlattenedSize * OutputSize + OutputSize;

    /// <summary>Spatial size after conv 5 → pool 2 → conv 5 → pool 2.</summary>
    private static int Side(int size) => ((size - 4) / 2 - 4) / 2;

    /// <summary>Images <c>[M, C, H, W]</c> → features <c>[M, L]</c>.</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.max_pool2d(nn.functional.relu(conv1.call(images)), 2);
        x = nn.functional.max_pool2d(nn.functional.relu(conv2.call(x)), 2);
        return nn.functional.relu(fc.call(x.flatten(1))).MoveToOuterDisposeScope();
    }

    /// <summary>Padded bags <c>[B, N, C·H·W]</c> (each instance an image, channel-major then row-major) → instance
    /// features <c>[B, N, L]</c>: all B·N images in one encoder pass.</summary>
    public Tensor EncodeBags(Tensor bags)
    {
        ArgumentNullException.ThrowIfNull(bags);
        if (bags.dim() != 3 || bags.shape[2] != InputSize)
            throw new ArgumentException($"Expected padded bags [B, N, {InputSize}] ({Channels}×{Height}×{Width} images); got " +
                $"[{string.Join(", ", bags.shape)}].", nameof(bags));
        using var scope = NewDisposeScope();
        long b = bags.shape[0], n = bags.shape[1];
        var features = forward(bags.reshape(b * n, Channels, Height, Width));
        return features.reshape(b, n, OutputSize).MoveToOuterDisposeScope();
    }
}
