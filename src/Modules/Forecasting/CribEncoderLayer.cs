using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// CRIB encoder layer with the reference's norm placement: <c>h = x + Drop(Attn(x))</c>; <c>y = LN₁(h)</c> (h is
/// <b>not</b> replaced by the normalised value); <c>y = Drop(conv2(Drop(act(conv1(y)))))</c>; <c>out = LN₂(h + y)</c>.
/// The feed-forward width is 4·D; conv1/conv2 are kernel-1 Conv1d layers (weights [out, in, 1], as the reference's
/// state dict) applied per token as Linear layers.
/// </summary>
public sealed class CribEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly CribAttention attention;
    private readonly Conv1d conv1, conv2;
    private readonly LayerNorm norm1, norm2;
    private readonly Dropout dropout;
    private readonly bool _relu;
    // Inference copies only (SqueezeWeights): the kernel-1 weights as [out, in] views, made once.
    private Tensor? _linear1, _linear2;

    /// <param name="modelWidth">Token width D.</param>
    /// <param name="heads">Heads; must divide D.</param>
    /// <param name="dropout">Dropout on attention weights, the residual branch and the feed-forward network.</param>
    /// <param name="activation">"relu" (reference) or "gelu".</param>
    /// <param name="separateKeyValueProjections">See <see cref="CribAttention"/>.</param>
    /// <param name="standardHeadMerge">See <see cref="CribAttention"/>.</param>
    public CribEncoderLayer(int modelWidth, int heads, double dropout = 0.1, string activation = "relu",
        bool separateKeyValueProjections = false, bool standardHeadMerge = false) : base(nameof(CribEncoderLayer))
    {
        _relu = activation switch
        {
            "relu" => true,
            "gelu" => false,
            _ => throw new ArgumentException($"Unknown activation '{activation}'; use \"relu\" or \"gelu\".", nameof(activation)),
        };
        attention = new CribAttention(modelWidth, heads, dropout, separateKeyValueProjections, standardHeadMerge);
        conv1 = nn.Conv1d(modelWidth, 4 * modelWidth, 1);
        conv2 = nn.Conv1d(4 * modelWidth, modelWidth, 1);
        norm1 = nn.LayerNorm(modelWidth, eps: 1e-5);
        norm2 = nn.LayerNorm(modelWidth, eps: 1e-5);
        this.dropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>Whether the feed-forward activation is ReLU rather than GELU (for the ONNX exporter).</summary>
    internal bool UsesRelu => _relu;

    /// <summary>Keeps the feed-forward weights as [out, in] views for an evaluation-only copy (two squeezes less per
    /// forward).</summary>
    internal void SqueezeWeights()
    {
        _linear1?.Dispose();
        _linear2?.Dispose();
        _linear1 = conv1.weight!.squeeze(-1).DetachFromDisposeScope();
        _linear2 = conv2.weight!.squeeze(-1).DetachFromDisposeScope();
    }

    /// <summary>x: [B, T, D] → [B, T, D].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x.add(Drop(attention.call(x)), One);
        var y = norm1.call(h);
        y = nn.functional.linear(y, _linear1 ?? conv1.weight!.squeeze(-1), conv1.bias);
        y = Drop(_relu ? nn.functional.relu(y) : nn.functional.gelu(y));
        y = Drop(nn.functional.linear(y, _linear2 ?? conv2.weight!.squeeze(-1), conv2.bias));
        return norm2.call(h.add(y, One)).MoveToOuterDisposeScope();
    }

    // Dropout is the identity in evaluation: skipping the call saves a dispatched op per use when scoring.
    private Tensor Drop(Tensor x) => training ? dropout.call(x) : x;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) { _linear1?.Dispose(); _linear2?.Dispose(); }
        base.Dispose(disposing);
    }
}

/// <summary>Stack of <see cref="CribEncoderLayer"/>s (<c>attn_layers.i</c>) followed by a final LayerNorm (<c>norm_layer</c>).</summary>
public sealed class CribTokenEncoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<CribEncoderLayer> attn_layers;
    private readonly LayerNorm norm_layer;

    /// <param name="config">Network hyper-parameters (width, heads, layers, dropout, activation, attention options).</param>
    public CribTokenEncoder(CribConfig config) : base(nameof(CribTokenEncoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        attn_layers = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(_ => new CribEncoderLayer(config.ModelWidth, config.Heads,
            config.Dropout, config.Activation, config.SeparateKeyValueProjections, config.StandardHeadMerge)).ToArray());
        norm_layer = nn.LayerNorm(config.ModelWidth, eps: 1e-5);
        RegisterComponents();
    }

    /// <summary>x: [B, T, D] → [B, T, D].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var layer in attn_layers) x = layer.call(x);
        return norm_layer.call(x).MoveToOuterDisposeScope();
    }
}
