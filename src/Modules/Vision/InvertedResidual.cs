using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;
using BatchNorm2d = MLNet.Attention.Layers.BatchNorm2d;

namespace MLNet.Attention.Vision;

/// <summary>
/// MobileNetV2 inverted-residual block (Sandler et al., CVPR 2018) with an optional attention module at the
/// official ELA/CA position: 1×1 expansion conv → BN → ReLU6 → depthwise 3×3 conv (stride s) → BN → ReLU6 →
/// <b>attention</b> → 1×1 linear projection → BN, plus the identity when stride = 1 and input = output channels.
/// Blocks with expansion 1 have no expansion conv and no attention.
/// </summary>
/// <remarks>
/// The layers live in one <c>nn.Sequential</c> named <c>conv</c> with the reference's numbering, so state-dict keys
/// match <c>InvertedResidual</c> of <c>Xuwei86/ELA_Code</c> <c>MbV2/models/mbv2_ela72.py</c> (and of the plain
/// flat-layout MobileNetV2 when no attention is given):
/// expansion ≠ 1 with attention: <c>conv.0</c> expansion conv, <c>conv.1</c> BN, <c>conv.2</c> ReLU6, <c>conv.3</c>
/// depthwise conv, <c>conv.4</c> BN, <c>conv.5</c> ReLU6, <c>conv.6</c> attention (e.g. <c>conv.6.gn.weight</c>),
/// <c>conv.7</c> projection conv, <c>conv.8</c> BN; without attention the projection is <c>conv.6</c>/<c>conv.7</c>;
/// expansion 1: <c>conv.0</c> depthwise conv, <c>conv.1</c> BN, <c>conv.2</c> ReLU6, <c>conv.3</c> projection, <c>conv.4</c> BN.
/// All convolutions have no bias; BatchNorm eps 1e-5, momentum 0.1. Initialisation is PyTorch's default
/// (<see cref="MobileNetV2"/> re-initialises its own layers).
/// </remarks>
public sealed class InvertedResidual : nn.Module<Tensor, Tensor>
{
    private readonly Sequential conv;
    private readonly nn.Module<Tensor, Tensor>[] _layers;
    private readonly int _attentionIndex;

    /// <summary>Input channels.</summary>
    public int InputChannels { get; }

    /// <summary>Output channels.</summary>
    public int OutputChannels { get; }

    /// <summary>Depthwise stride (1 or 2).</summary>
    public int Stride { get; }

    /// <summary>Expansion ratio t.</summary>
    public int ExpandRatio { get; }

    /// <summary>Expanded (hidden) width E = input channels · t: the channel count the attention module sees.</summary>
    public int HiddenChannels { get; }

    /// <summary>Whether the block adds its input (stride 1 and equal input/output channels).</summary>
    public bool HasIdentity { get; }

    /// <summary>The attention module (after the depthwise conv's ReLU6), or null.</summary>
    public nn.Module<Tensor, Tensor>? Attention => _attentionIndex >= 0 ? _layers[_attentionIndex] : null;

    /// <param name="inputChannels">Input channels (inp).</param>
    /// <param name="outputChannels">Output channels (oup).</param>
    /// <param name="stride">Depthwise stride, 1 or 2.</param>
    /// <param name="expandRatio">Expansion ratio t ≥ 1; the hidden width is inp·t.</param>
    /// <param name="attention">
    /// Optional factory: hidden width E → attention module mapping [B, E, h, w] to the same shape (e.g.
    /// <c>c =&gt; new EfficientLocalAttention(c, ElaVariant.L)</c>); called only when <paramref name="expandRatio"/> ≠ 1.
    /// Returning null leaves the block without attention.
    /// </param>
    public InvertedResidual(int inputChannels, int outputChannels, int stride, int expandRatio,
        Func<int, nn.Module<Tensor, Tensor>?>? attention = null) : base(nameof(InvertedResidual))
    {
        if (inputChannels < 1) throw new ArgumentOutOfRangeException(nameof(inputChannels), inputChannels, "The input channel count must be positive.");
        if (outputChannels < 1) throw new ArgumentOutOfRangeException(nameof(outputChannels), outputChannels, "The output channel count must be positive.");
        if (stride is not (1 or 2))
            throw new ArgumentException($"stride = {stride} is not supported: an inverted-residual block has stride 1 or 2. Use 1 (keep the size) or 2 (halve it).", nameof(stride));
        if (expandRatio < 1)
            throw new ArgumentOutOfRangeException(nameof(expandRatio), expandRatio, "The expansion ratio must be at least 1 (MobileNetV2 uses 1 for the first block and 6 elsewhere).");
        InputChannels = inputChannels;
        OutputChannels = outputChannels;
        Stride = stride;
        ExpandRatio = expandRatio;
        HiddenChannels = checked(inputChannels * expandRatio);
        HasIdentity = stride == 1 && inputChannels == outputChannels;
        int e = HiddenChannels;

        var layers = new List<nn.Module<Tensor, Tensor>>();
        if (expandRatio != 1)
        {
            layers.Add(nn.Conv2d(inputChannels, e, 1, bias: false));
            layers.Add(new BatchNorm2d(e, eps: 1e-5, momentum: 0.1));
            layers.Add(nn.ReLU6());
        }
        layers.Add(nn.Conv2d(e, e, 3, stride: stride, padding: 1, groups: e, bias: false));
        layers.Add(new BatchNorm2d(e, eps: 1e-5, momentum: 0.1));
        layers.Add(nn.ReLU6());
        _attentionIndex = -1;
        if (expandRatio != 1 && attention is not null)
        {
            nn.Module<Tensor, Tensor>? module;
            try
            {
                module = attention(e);
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException(
                    $"The attention module for the inverted-residual block (inp {inputChannels}, oup {outputChannels}, t {expandRatio}, hidden width {e}) " +
                    $"could not be built: {ex.Message}", nameof(attention), ex);
            }
            if (module is not null)
            {
                _attentionIndex = layers.Count;
                layers.Add(module);
            }
        }
        layers.Add(nn.Conv2d(e, outputChannels, 1, bias: false));
        layers.Add(new BatchNorm2d(outputChannels, eps: 1e-5, momentum: 0.1));
        _layers = layers.ToArray();
        conv = nn.Sequential(_layers);
        RegisterComponents();
    }

    /// <summary>x: [B, inp, H, W] → [B, oup, ⌈H/s⌉, ⌈W/s⌉].</summary>
    public override Tensor forward(Tensor x) => Run(x, null);

    /// <summary>Forward pass that hands the attention's input and output to <paramref name="observe"/> (for parity tests).</summary>
    internal Tensor Run(Tensor x, Action<string, Tensor>? observe)
    {
        if (x.dim() != 4 || x.shape[1] != InputChannels)
            throw new ArgumentException(
                $"InvertedResidual expects an input of shape [batch, {InputChannels} (channels), height, width]; got [{string.Join(", ", x.shape)}].", nameof(x));
        using var scope = NewDisposeScope();
        var y = x;
        for (int i = 0; i < _layers.Length; i++)
        {
            if (i == _attentionIndex) observe?.Invoke("attention input", y);
            y = _layers[i].call(y);
            if (i == _attentionIndex) observe?.Invoke("attention output", y);
        }
        if (HasIdentity) y = x.add(y, One);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The block's own layers (everything except the attention module), for backbone initialisers.</summary>
    internal IEnumerable<nn.Module> OwnLayers => _layers.Where((_, i) => i != _attentionIndex);
}
