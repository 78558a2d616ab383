using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Gaussian;

/// <summary>
/// The library's <c>GaussianBlock</c> (variant (A), <c>gaussian-adaptive-attention</c> 0.1.5, arXiv 2401.11143 appendix
/// "mixture of densities"): a stack of <see cref="MultiHeadGaussianAdaptiveAttention"/> layers, each with its own norm
/// axis, head count and Gaussians per head, applied in turn with a residual x ← layer(x) + x. Parameters
/// <c>layers.{l}.attention_heads.{i}.mean_offsets</c> / <c>.c</c> (the library's state-dict keys), Σ_l 2·H_l·N_l.
/// With a padding value, padded entries pass through each layer unchanged and the residual doubles them (p → 2p after
/// one layer), as in the library. The heads' eps is <c>headEps</c> (the library's block eps never reaches its heads,
/// which always use 1e-8).
/// </summary>
public sealed class GaussianBlock : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<MultiHeadGaussianAdaptiveAttention> layers;

    /// <param name="normAxes">Norm axis of each layer (negative counts from the end).</param>
    /// <param name="heads">Heads of each layer.</param>
    /// <param name="gaussians">Gaussians per head of each layer.</param>
    /// <param name="numLayers">Number of layers; every list must have this length.</param>
    /// <param name="paddingValue">Entries equal to this value are padding in every layer (null: none).</param>
    /// <param name="headEps">eps of every head (library: always 1e-8).</param>
    /// <param name="generator">Random source of the initial c of every head (null: the global generator).</param>
    public GaussianBlock(IReadOnlyList<int> normAxes, IReadOnlyList<int> heads, IReadOnlyList<int> gaussians, int numLayers,
        double? paddingValue = null, double headEps = 1e-8, Generator? generator = null) : base(nameof(GaussianBlock))
    {
        ArgumentNullException.ThrowIfNull(normAxes);
        ArgumentNullException.ThrowIfNull(heads);
        ArgumentNullException.ThrowIfNull(gaussians);
        if (numLayers < 1) throw new ArgumentOutOfRangeException(nameof(numLayers), numLayers, "A GaussianBlock needs at least one layer.");
        if (normAxes.Count != numLayers || heads.Count != numLayers || gaussians.Count != numLayers)
            throw new ArgumentException($"normAxes ({normAxes.Count}), heads ({heads.Count}) and gaussians ({gaussians.Count}) must each have numLayers = {numLayers} entries, one per layer.", nameof(numLayers));
        layers = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(l => new MultiHeadGaussianAdaptiveAttention(normAxes[l], heads[l], gaussians[l], paddingValue, headEps, generator)).ToArray());
        RegisterComponents();
    }

    /// <summary>The layers, in application order.</summary>
    public IReadOnlyList<MultiHeadGaussianAdaptiveAttention> Layers => layers.ToArray();

    /// <summary>x (rank ≥ 2) → same shape.</summary>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>
    /// x (rank ≥ 2) → same shape. <paramref name="paddingMask"/>: optional bool tensor (true = padding) of x's rank,
    /// each axis equal to x's or 1, used by every layer (combined with the padding value).
    /// </summary>
    public Tensor forward(Tensor x, Tensor? paddingMask)
    {
        using var scope = NewDisposeScope();
        return Run(x, paddingMask, null).MoveToOuterDisposeScope();
    }

    /// <summary>Output and, per layer, the (detached) mixture weights of x's shape (the library's attention details).</summary>
    public (Tensor Output, Tensor[] Weights) ForwardWithWeights(Tensor x, Tensor? paddingMask = null)
    {
        using var scope = NewDisposeScope();
        var weights = new List<Tensor>();
        var y = Run(x, paddingMask, weights);
        return (y.MoveToOuterDisposeScope(), weights.Select(w => w.detach().MoveToOuterDisposeScope()).ToArray());
    }

    private Tensor Run(Tensor x, Tensor? paddingMask, List<Tensor>? weights)
    {
        foreach (var layer in layers)
        {
            var (y, w) = layer.Apply(x, paddingMask);
            weights?.Add(w);
            x = y.add(x, One);
        }
        return x;
    }
}
