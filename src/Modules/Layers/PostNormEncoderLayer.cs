using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Layers;

/// <summary>
/// Post-norm Transformer encoder layer as used by iTransformer: <c>h = LN₁(x + Drop(Attn(x)))</c>, then
/// <c>out = LN₂(h + Drop(W₂ Drop(act(W₁ h))))</c>. The reference's 1×1 Conv1d feed-forward is a per-token Linear;
/// the weights are the same numbers with the trailing kernel dimension dropped.
/// </summary>
public sealed class PostNormEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly MultiHeadSelfAttention attention;
    private readonly Linear conv1, conv2;
    private readonly LayerNorm norm1, norm2;
    private readonly Dropout dropout;
    private readonly bool _relu;

    /// <param name="modelWidth">Token width D.</param>
    /// <param name="heads">Attention heads; must divide D.</param>
    /// <param name="feedForwardWidth">Hidden width of the feed-forward network (d_ff).</param>
    /// <param name="dropout">Dropout on attention weights, residual branches and the feed-forward network.</param>
    /// <param name="activation">"gelu" (exact erf form) or "relu".</param>
    public PostNormEncoderLayer(int modelWidth, int heads, int feedForwardWidth, double dropout = 0.1, string activation = "gelu")
        : base(nameof(PostNormEncoderLayer))
    {
        if (feedForwardWidth < 1) throw new ArgumentOutOfRangeException(nameof(feedForwardWidth), feedForwardWidth, "The feed-forward width must be positive.");
        _relu = activation switch
        {
            "gelu" => false,
            "relu" => true,
            _ => throw new ArgumentException($"Unknown activation '{activation}'; use \"gelu\" or \"relu\".", nameof(activation)),
        };
        attention = new MultiHeadSelfAttention(modelWidth, heads, dropout);
        conv1 = nn.Linear(modelWidth, feedForwardWidth);
        conv2 = nn.Linear(feedForwardWidth, modelWidth);
        norm1 = nn.LayerNorm(modelWidth, eps: 1e-5);
        norm2 = nn.LayerNorm(modelWidth, eps: 1e-5);
        this.dropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>Whether the feed-forward activation is ReLU rather than GELU (for the ONNX exporter).</summary>
    internal bool UsesRelu => _relu;

    /// <summary>x: [B, T, D] → [B, T, D].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = norm1.call(x.add(Drop(attention.call(x)), One));
        var hidden = conv1.call(h);
        hidden = _relu ? nn.functional.relu(hidden) : nn.functional.gelu(hidden);
        var y = Drop(conv2.call(Drop(hidden)));
        return norm2.call(h.add(y, One)).MoveToOuterDisposeScope();
    }

    // Dropout is the identity in evaluation: skipping the call saves a tensor (and its managed wrapper) per use when scoring.
    private Tensor Drop(Tensor x) => training ? dropout.call(x) : x;
}
