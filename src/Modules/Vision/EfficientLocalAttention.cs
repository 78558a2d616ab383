using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Vision;

/// <summary>The four named ELA presets of the paper (kernel k, Conv1d groups G, GroupNorm groups NG).</summary>
public enum ElaVariant
{
    /// <summary>ELA-T: k = 5, depthwise conv (G = C), GroupNorm(32); 5C + 2C parameters; needs C % 32 == 0.</summary>
    T,
    /// <summary>ELA-B: k = 7, depthwise conv (G = C), GroupNorm(16); 7C + 2C parameters; needs C % 16 == 0. The default.</summary>
    B,
    /// <summary>ELA-S: k = 5, G = C/8 (8 channels per group), GroupNorm(16); 40C + 2C parameters; needs C % 16 == 0.</summary>
    S,
    /// <summary>ELA-L: k = 7, G = C/8, GroupNorm(16); 56C + 2C parameters. The official MobileNetV2 (<c>mbv2_ela72</c>) and YOLOX setting.</summary>
    L,
}

/// <summary>Resolved hyper-parameters of one <see cref="EfficientLocalAttention"/> block.</summary>
/// <param name="KernelSize">Odd Conv1d kernel size k.</param>
/// <param name="ConvGroups">Conv1d groups G (C = depthwise, C/8 = eight channels per group, 1 = full conv).</param>
/// <param name="NormGroups">GroupNorm groups NG.</param>
public sealed record ElaSettings(int KernelSize, int ConvGroups, int NormGroups)
{
    /// <summary>
    /// The settings of <paramref name="variant"/> for <paramref name="channels"/> channels (T/B: G = C; S/L: G = C/8).
    /// Throws <see cref="ArgumentException"/> when <paramref name="channels"/> does not fit the preset.
    /// </summary>
    public static ElaSettings For(ElaVariant variant, int channels)
    {
        if (channels < 1) throw new ArgumentOutOfRangeException(nameof(channels), channels, "The channel count must be positive.");
        if (variant is ElaVariant.S or ElaVariant.L && channels % 8 != 0)
            throw new ArgumentException(
                $"ELA-{variant} uses Conv1d groups = C/8 (8 channels per group), so the channel count must be divisible by 8; got C = {channels}. " +
                $"Use a channel count that is a multiple of 16 (GroupNorm(16) needs it too), or a depthwise preset (ELA-B needs C % 16, ELA-T C % 32), " +
                "or pass an explicit kernel size / conv groups / GroupNorm groups.", nameof(channels));
        return variant switch
        {
            ElaVariant.T => new ElaSettings(5, channels, 32),
            ElaVariant.B => new ElaSettings(7, channels, 16),
            ElaVariant.S => new ElaSettings(5, channels / 8, 16),
            ElaVariant.L => new ElaSettings(7, channels / 8, 16),
            _ => throw new ArgumentOutOfRangeException(nameof(variant), variant, "Unknown ELA variant; use T, B, S or L."),
        };
    }

    /// <summary>Trainable parameters of one block: Conv1d <c>C·(C/G)·k</c> plus GroupNorm γ, β (<c>2C</c>).</summary>
    public long ParameterCount(int channels) => (long)channels * (channels / ConvGroups) * KernelSize + 2L * channels;
}

/// <summary>
/// ELA — Efficient Local Attention (Xu &amp; Wan, arXiv 2403.01123): strip-pools the map along each spatial axis
/// (<c>z_h</c> = mean over W → [B, C, H], <c>z_w</c> = mean over H → [B, C, W]), runs ONE shared grouped Conv1d (zero
/// padding ⌊k/2⌋, no bias) and ONE shared GroupNorm (separate statistics per branch) and a sigmoid over each strip, and
/// rescales the input: <c>y = x ⊙ σ(GN(conv(z_h)))[:, :, :, None] ⊙ σ(GN(conv(z_w)))[:, :, None, :]</c>.
/// Output shape = input shape; no dropout or BatchNorm, so train and eval forward are identical.
/// </summary>
/// <remarks>
/// Reproduces the official <c>custom_att</c>/<c>ELA72</c> classes of <c>Xuwei86/ELA_Code</c> (state-dict keys
/// <c>conv.weight</c>, <c>gn.weight</c>, <c>gn.bias</c>). With <c>extraResidual</c> the block returns
/// <c>x + ELA(x)</c>, the form the reference's ResNet/YOLOF integrations use; the module itself has no residual by default.
/// Initialisation is PyTorch's default (Conv1d kaiming-uniform a = √5, GroupNorm γ = 1, β = 0).
/// </remarks>
public sealed class EfficientLocalAttention : nn.Module<Tensor, Tensor>
{
    // Field names are the reference state-dict keys (conv.weight, gn.weight, gn.bias).
    private readonly Conv1d conv;
    private readonly GroupNorm gn;

    /// <summary>Channel count C of the input.</summary>
    public int Channels { get; }

    /// <summary>Kernel size, conv groups and GroupNorm groups in use.</summary>
    public ElaSettings Settings { get; }

    /// <summary>Whether the block returns <c>x + ELA(x)</c> instead of <c>ELA(x)</c>.</summary>
    public bool ExtraResidual { get; }

    /// <summary>Builds a named preset (default ELA-B, the depthwise k = 7 / GroupNorm(16) listing).</summary>
    /// <param name="channels">Input channels C.</param>
    /// <param name="variant">Preset T, B, S or L (see <see cref="ElaVariant"/>).</param>
    /// <param name="extraResidual">Return <c>x + ELA(x)</c> (ResNet-style integration) instead of <c>ELA(x)</c>.</param>
    public EfficientLocalAttention(int channels, ElaVariant variant = ElaVariant.B, bool extraResidual = false)
        : this(channels, ElaSettings.For(variant, channels), extraResidual, $"ELA-{variant}")
    {
    }

    /// <summary>Builds a block with explicit hyper-parameters.</summary>
    /// <param name="channels">Input channels C.</param>
    /// <param name="kernelSize">Odd Conv1d kernel size k (padding ⌊k/2⌋ keeps the strip length).</param>
    /// <param name="convGroups">Conv1d groups G; must divide C (C = depthwise, C/8 = eight channels per group, 1 = full conv).</param>
    /// <param name="normGroups">GroupNorm groups NG; must divide C.</param>
    /// <param name="extraResidual">Return <c>x + ELA(x)</c> instead of <c>ELA(x)</c>.</param>
    public EfficientLocalAttention(int channels, int kernelSize, int convGroups, int normGroups, bool extraResidual = false)
        : this(channels, new ElaSettings(kernelSize, convGroups, normGroups), extraResidual, "ELA")
    {
    }

    private EfficientLocalAttention(int channels, ElaSettings settings, bool extraResidual, string label)
        : base(nameof(EfficientLocalAttention))
    {
        Validate(channels, settings, label);
        Channels = channels;
        Settings = settings;
        ExtraResidual = extraResidual;
        conv = nn.Conv1d(channels, channels, settings.KernelSize, stride: 1, padding: settings.KernelSize / 2,
            groups: settings.ConvGroups, bias: false);
        gn = nn.GroupNorm(settings.NormGroups, channels, eps: 1e-5, affine: true);
        // TorchSharp 0.107 leaves GroupNorm's affine parameters uninitialised; PyTorch's default is γ = 1, β = 0.
        using (no_grad())
        {
            gn.weight!.fill_(Of(1.0));
            gn.bias!.zero_();
        }
        RegisterComponents();
    }

    /// <summary>A factory (channels → block) for backbones that take an attention factory, e.g. <see cref="MobileNetV2"/>.</summary>
    public static Func<int, nn.Module<Tensor, Tensor>> Factory(ElaVariant variant = ElaVariant.B, bool extraResidual = false)
        => channels => new EfficientLocalAttention(channels, variant, extraResidual);

    /// <summary>Trainable parameters of a <paramref name="variant"/> block on <paramref name="channels"/> channels.</summary>
    public static long ParameterCount(int channels, ElaVariant variant) => ElaSettings.For(variant, channels).ParameterCount(channels);

    private static void Validate(int channels, ElaSettings s, string label)
    {
        if (channels < 1) throw new ArgumentOutOfRangeException(nameof(channels), channels, "The channel count must be positive.");
        if (s.KernelSize < 1 || s.KernelSize % 2 == 0)
            throw new ArgumentException(
                $"{label}: kernelSize = {s.KernelSize} must be a positive odd number (padding ⌊k/2⌋ keeps the strip length only for odd k); use 3, 5 or 7.",
                "kernelSize");
        if (s.ConvGroups < 1 || channels % s.ConvGroups != 0)
            throw new ArgumentException(
                $"{label}: Conv1d groups = {s.ConvGroups} must be positive and divide the channel count C = {channels}. " +
                $"Use convGroups = C (depthwise), C/8 (when C % 8 == 0) or another divisor of {channels}.", "convGroups");
        if (s.NormGroups < 1 || channels % s.NormGroups != 0)
            throw new ArgumentException(
                $"{label}: GroupNorm({s.NormGroups}) needs the channel count to be divisible by {s.NormGroups}; got C = {channels}. " +
                $"Use a channel count that is a multiple of {s.NormGroups}, or pass normGroups = a divisor of {channels} " +
                $"(e.g. {LargestDivisorAtMost(channels, s.NormGroups)}).", "normGroups");
    }

    private static int LargestDivisorAtMost(int n, int limit)
    {
        for (int d = Math.Min(n, limit); d > 1; d--) if (n % d == 0) return d;
        return 1;
    }

    /// <summary>x: [B, C, H, W] → [B, C, H, W]. Records <c>a_h</c>, <c>a_w</c> into an open
    /// <see cref="AttentionMapCapture"/> that asks for this block.</summary>
    public override Tensor forward(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        var y = IsChannelsLast(x) ? ForwardChannelsLast(x) : ForwardContiguous(x);
        if (ExtraResidual) y = x.add(y, One);
        return y.MoveToOuterDisposeScope();
    }

    private Tensor ForwardContiguous(Tensor x)
    {
        var (ah, aw) = Maps(x);
        AttentionMapCapture.For(this)?.RecordEla(this, ah, aw);
        return Rescale(x, ah, aw);
    }

    // Channels-last input (NHWC strides, as the image classifier runs): pool, convolve and rescale in the [B, H, W, C]
    // view so that every reduction and broadcast runs along contiguous channels. Same values as ForwardContiguous (to
    // float rounding of the means); measured on MobileNetV2-0.35 + ELA-L, batch 64, 2 cores: eval 110 → 75 ms.
    private Tensor ForwardChannelsLast(Tensor x)
    {
        var nhwc = x.permute(0, 2, 3, 1);
        var ah = Strip(nhwc.mean(new long[] { 2 }));               // [B, H, C]
        var aw = Strip(nhwc.mean(new long[] { 1 }));               // [B, W, C]
        AttentionMapCapture.For(this)?
            .RecordEla(this, ah.permute(0, 2, 1).unsqueeze(3), aw.permute(0, 2, 1).unsqueeze(2));
        return Rescale(nhwc, ah.unsqueeze(2), aw.unsqueeze(1)).permute(0, 3, 1, 2);
    }

    // [B, L, C] strip means → σ(GN(conv)) as [B, L, C] contiguous.
    private Tensor Strip(Tensor means)
        => gn.call(conv.call(means.permute(0, 2, 1).contiguous())).sigmoid().permute(0, 2, 1).contiguous();

    // x ⊙ a_h ⊙ a_w; without autograd the second product is in place (one full-size tensor instead of two).
    private static Tensor Rescale(Tensor x, Tensor ah, Tensor aw)
    {
        if (is_grad_enabled()) return x.mul(ah).mul(aw);
        var y = x.mul(ah);
        y.mul_(aw);
        return y;
    }

    private static bool IsChannelsLast(Tensor x)
        => x.size(1) > 1 && x.stride(1) == 1 && x.permute(0, 2, 3, 1).is_contiguous();

    /// <summary>
    /// The two strip attentions the block multiplies its input by: <c>a_h = σ(GN(conv(mean over W)))</c> [B, C, H, 1]
    /// and <c>a_w = σ(GN(conv(mean over H)))</c> [B, C, 1, W], values in (0, 1); the block's output is
    /// <c>x ⊙ a_h ⊙ a_w</c>, so <c>a_h ⊗ a_w</c> is the factor applied at each position of each channel.
    /// </summary>
    public (Tensor Height, Tensor Width) AttentionMaps(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        var (ah, aw) = Maps(x);
        return (ah.MoveToOuterDisposeScope(), aw.MoveToOuterDisposeScope());
    }

    private (Tensor Height, Tensor Width) Maps(Tensor x)
    {
        var zh = x.mean(new long[] { 3 });                          // [B, C, H]: one value per row (mean over the width)
        var zw = x.mean(new long[] { 2 });                          // [B, C, W]: one value per column (mean over the height)
        var ah = gn.call(conv.call(zh)).sigmoid().unsqueeze(3);     // [B, C, H, 1]
        var aw = gn.call(conv.call(zw)).sigmoid().unsqueeze(2);     // [B, C, 1, W]
        return (ah, aw);
    }

    private void CheckInput(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != Channels)
            throw new ArgumentException(
                $"EfficientLocalAttention expects an input of shape [batch, {Channels} (channels), height, width]; got [{string.Join(", ", x.shape)}]. " +
                $"Build the block with channels = the input's channel count.", nameof(x));
    }
}
