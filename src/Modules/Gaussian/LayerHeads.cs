using MLNet.Attention.Layers;
using MLNet.Attention.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Gaussian;

/// <summary>
/// The linear baseline of the DAAM classifier head: per-layer pooled features X [B, L, D] flattened to L·D →
/// Linear(L·D → classes) (a multinomial logistic regression on the stacked features; no attention, no decoder). Field
/// <c>fc</c>, Xavier-uniform weight as in <see cref="DaamClassifier"/>.
/// </summary>
public sealed class LinearLayerClassifier : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc;
    private readonly int _layers, _features;

    /// <param name="layers">Encoder layers L (axis 1 of the input).</param>
    /// <param name="features">Feature size D of each layer.</param>
    /// <param name="classes">Number of output classes.</param>
    /// <param name="generator">Random source of the weights and biases (null: the global generator).</param>
    public LinearLayerClassifier(int layers, int features, int classes, Generator? generator = null)
        : base(nameof(LinearLayerClassifier))
    {
        LayerHeadChecks.Validate(layers, features, classes);
        _layers = layers;
        _features = features;
        fc = nn.Linear((long)layers * features, classes);
        LayerHeadChecks.XavierUniform(fc, generator);
        RegisterComponents();
    }

    /// <summary>x: [B, L, D] or [B, L, T, D] (averaged over T first) → logits [B, classes].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var features = LayerHeadChecks.Pool(x, _layers, _features, nameof(LinearLayerClassifier));
        return fc.call(features.flatten(1)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The multi-head-attention baseline of the DAAM classifier head (the paper's "MHA" rows, spec gaam.md §4.3/§8):
/// per-layer pooled features X [B, L, D] are L tokens of width D; a learned layer embedding is added (self-attention
/// alone cannot tell the layers apart), standard multi-head self-attention runs over the L tokens
/// (<see cref="MultiHeadSelfAttention"/>, softmax(QKᵀ/√d_h)V, residual), the tokens are mean-pooled and
/// Linear(D → classes) classifies. Fields <c>layer_embedding</c> [L, D] (zeros), <c>attention</c>, <c>fc</c>.
/// </summary>
/// <remarks>Deviation from the paper's code: its <c>nn.MultiheadAttention</c> used the sequence-first layout on
/// [B, L, E] input, so attention ran across the batch (spec §4.3); here it runs across the layers of each row, as
/// intended.</remarks>
public sealed class AttentionLayerClassifier : nn.Module<Tensor, Tensor>
{
    private readonly Parameter layer_embedding;
    private readonly MultiHeadSelfAttention attention;
    private readonly Linear fc;
    private readonly int _layers, _features;

    /// <param name="layers">Encoder layers L (tokens).</param>
    /// <param name="features">Feature size D (token width).</param>
    /// <param name="classes">Number of output classes.</param>
    /// <param name="heads">Attention heads; must divide D (the paper's baseline: 8).</param>
    /// <param name="generator">Random source of the classifier's weights and biases (null: the global generator).</param>
    public AttentionLayerClassifier(int layers, int features, int classes, int heads = 8, Generator? generator = null)
        : base(nameof(AttentionLayerClassifier))
    {
        LayerHeadChecks.Validate(layers, features, classes);
        if (heads < 1 || features % heads != 0)
            throw new ArgumentException($"heads = {heads} must be positive and divide the feature size D = {features} " +
                "(head width = D / heads); choose one of its divisors.", nameof(heads));
        _layers = layers;
        _features = features;
        layer_embedding = nn.Parameter(zeros(layers, features));
        attention = new MultiHeadSelfAttention(features, heads);
        fc = nn.Linear(features, classes);
        LayerHeadChecks.XavierUniform(fc, generator);
        RegisterComponents();
    }

    /// <summary>x: [B, L, D] or [B, L, T, D] (averaged over T first) → logits [B, classes].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var tokens = LayerHeadChecks.Pool(x, _layers, _features, nameof(AttentionLayerClassifier))
            .add(layer_embedding.to(x.dtype), TorchScalars.One);
        var h = tokens.add(attention.call(tokens), TorchScalars.One);
        return fc.call(h.mean(new long[] { 1 })).MoveToOuterDisposeScope();
    }
}

internal static class LayerHeadChecks
{
    public static void Validate(int layers, int features, int classes)
    {
        if (layers < 1) throw new ArgumentOutOfRangeException(nameof(layers), layers, "The number of layers must be positive.");
        if (features < 1) throw new ArgumentOutOfRangeException(nameof(features), features, "The feature size must be positive.");
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "The number of classes must be positive.");
    }

    public static void XavierUniform(Linear fc, Generator? generator)
    {
        using (no_grad())
        {
            long fanIn = fc.weight!.shape[1], fanOut = fc.weight.shape[0];
            double xavier = Math.Sqrt(6.0 / (fanIn + fanOut));
            fc.weight.uniform_(-xavier, xavier, generator);
            if (generator is not null)
            {
                double bound = 1.0 / Math.Sqrt(fanIn);
                fc.bias!.uniform_(-bound, bound, generator);
            }
        }
    }

    public static Tensor Pool(Tensor x, int layers, int features, string name)
    {
        if (x.dim() is not (3 or 4) || x.shape[1] != layers || x.shape[^1] != features)
            throw new ArgumentException($"{name} expects [batch, {layers} (layers), {features} (features)] or " +
                $"[batch, {layers}, time, {features}]; got [{string.Join(", ", x.shape)}].", nameof(x));
        return x.dim() == 4 ? x.mean(new long[] { 2 }) : x;
    }
}
