using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Gaussian;

/// <summary>
/// Multi-head DAAM (variant (B) of arXiv 2401.11143, "MultiHeadDAAM" of the paper's experiment code): the L encoder
/// layers of the input [B, L, D] are split into H contiguous groups of L/H layers; each group gets its own
/// <see cref="DensityAdaptiveAttention"/> head (statistics over the layers of the group, per feature) and the outputs
/// are concatenated back along the layer axis. 2·H·D parameters (<c>gcts.{i}.c</c>, <c>gcts.{i}.mean_offset</c>).
/// Deviation: the reference <c>squeeze()</c>s its input (which also drops a size-1 feature axis); here only a size-1
/// time axis of a [B, L, 1, D] input is removed, and a batch of one needs no special case.
/// </summary>
public sealed class MultiHeadDensityAdaptiveAttention : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<DensityAdaptiveAttention> gcts;

    /// <summary>Number of encoder layers L (axis 1 of the input).</summary>
    public int Layers { get; }

    /// <summary>Feature size D.</summary>
    public int Features { get; }

    /// <summary>Number of heads H (groups of L/H layers).</summary>
    public int Heads { get; }

    /// <param name="layers">Number of encoder layers L (axis 1 of the input).</param>
    /// <param name="features">Feature size D (last axis).</param>
    /// <param name="heads">Number of heads H; must divide L (paper: 8 for "DAAMv1", 1 for "DAAMv2").</param>
    /// <param name="initialC">Initial Gaussian variance c of every head and feature (paper: 2).</param>
    /// <param name="eps">Added to the variance under the square root (reference 1e-5).</param>
    public MultiHeadDensityAdaptiveAttention(int layers, int features, int heads = 8, double initialC = 2.0, double eps = 1e-5)
        : base(nameof(MultiHeadDensityAdaptiveAttention))
    {
        if (layers < 1) throw new ArgumentOutOfRangeException(nameof(layers), layers, "The number of encoder layers L must be positive.");
        if (heads < 1 || layers % heads != 0)
            throw new ArgumentException($"heads = {heads} must be positive and divide the number of layers {layers} (each head owns layers / heads consecutive layers). Choose heads among the divisors of {layers}.", nameof(heads));
        Layers = layers;
        Features = features;
        Heads = heads;
        gcts = nn.ModuleList(Enumerable.Range(0, heads).Select(_ => new DensityAdaptiveAttention(features, initialC, eps)).ToArray());
        RegisterComponents();
    }

    /// <summary>The per-group heads (head i owns layers i·L/H … (i+1)·L/H − 1).</summary>
    public IReadOnlyList<DensityAdaptiveAttention> HeadModules => gcts.ToArray();

    /// <summary>x: [B, L, D] or [B, L, 1, D] → [B, L, D].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x3 = AsLayers(x);
        return (x3 * Weights(x3)).MoveToOuterDisposeScope();
    }

    /// <summary>The density weights w ∈ (0, 1], shape [B, L, D] (heads concatenated along the layer axis), e.g. for
    /// <see cref="ImportanceFactor"/>.</summary>
    public Tensor AttentionWeights(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Weights(AsLayers(x)).MoveToOuterDisposeScope();
    }

    private Tensor AsLayers(Tensor x)
    {
        bool ok = (x.dim() == 3 || (x.dim() == 4 && x.shape[2] == 1)) && x.shape[1] == Layers && x.shape[^1] == Features;
        if (!ok)
            throw new ArgumentException($"MultiHeadDensityAdaptiveAttention expects [batch, {Layers} (layers), {Features} (features)] or [batch, {Layers}, 1, {Features}]; got [{string.Join(", ", x.shape)}]. Pool each layer's hidden states over time first.", nameof(x));
        return x.dim() == 4 ? x.squeeze(2) : x;
    }

    private Tensor Weights(Tensor x)
    {
        // All heads at once: [B, H, L/H, D] with per-head c, δ of shape [H, 1, D] (same arithmetic as head by head).
        long b = x.shape[0];
        var grouped = x.reshape(b, Heads, Layers / Heads, Features);
        var c = stack(gcts.Select(h => (Tensor)h.C).ToArray());            // [H, 1, D]
        var offset = stack(gcts.Select(h => (Tensor)h.MeanOffset).ToArray());
        var eps = gcts[0].Eps;
        return DensityAdaptiveAttention.Density(grouped, c, offset, eps).reshape(b, Layers, Features);
    }
}
