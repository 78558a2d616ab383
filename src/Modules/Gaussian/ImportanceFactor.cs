using TorchSharp;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Gaussian;

/// <summary>
/// The DAAM paper's explainability score (arXiv 2401.11143, "Importance Factor"): the density-attention map DA
/// [L, D] (DAAM weights averaged over the batch, and over the validation batches) is min–max normalised,
/// IF = (DA − min DA) / (max DA − min DA) ∈ [0, 1], with min and max global over the map. Rows are encoder layers,
/// columns features. The reference has no guard for max = min; here a constant map gives IF = 0 everywhere.
/// </summary>
public static class ImportanceFactor
{
    /// <summary>Averages one batch of density weights [B, L, D] (or [B, L, T, D], also averaged over T) over the batch → [L, D].</summary>
    public static Tensor BatchMap(Tensor weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.dim() is not (3 or 4) || weights.numel() == 0)
            throw new ArgumentException($"Density weights must be a non-empty [batch, layers, features] or [batch, layers, time, features] tensor; got [{string.Join(", ", weights.shape)}]. Pass AttentionWeights(x) of a DAAM module.", nameof(weights));
        using var scope = NewDisposeScope();
        var w = weights.dim() == 4 ? weights.mean(new long[] { 2 }) : weights;
        return w.mean(new long[] { 0 }).MoveToOuterDisposeScope();
    }

    /// <summary>Importance factor of a density-attention map (any non-empty shape, typically [L, D]): same shape, in [0, 1].</summary>
    public static Tensor Compute(Tensor densityMap)
    {
        ArgumentNullException.ThrowIfNull(densityMap);
        if (densityMap.numel() == 0)
            throw new ArgumentException("The density-attention map is empty; average at least one batch of DAAM weights first.", nameof(densityMap));
        using var scope = NewDisposeScope();
        var low = densityMap.min();
        var span = densityMap.max() - low;
        var safe = where(span.gt(Zero), span, ones_like(span));
        var result = where(span.gt(Zero), (densityMap - low) / safe, zeros_like(densityMap));
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Importance factor from the density weights of several (validation) batches, each [B, L, D]: every batch is
    /// averaged over its samples (<see cref="BatchMap"/>), the batch maps are averaged, and the result normalised → [L, D].
    /// </summary>
    public static Tensor Compute(IEnumerable<Tensor> batchWeights)
    {
        ArgumentNullException.ThrowIfNull(batchWeights);
        using var scope = NewDisposeScope();
        var maps = batchWeights.Select(BatchMap).ToArray();
        if (maps.Length == 0) throw new ArgumentException("No batches of density weights were given; pass at least one.", nameof(batchWeights));
        return Compute(stack(maps).mean(new long[] { 0 })).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Per-layer importance: the importance factor [L, D] averaged over the features → [L]. (The paper's per-layer
    /// bar plots state no formula; this is the mean of each heat-map row.)
    /// </summary>
    public static Tensor PerLayer(Tensor importance)
    {
        ArgumentNullException.ThrowIfNull(importance);
        if (importance.dim() != 2)
            throw new ArgumentException($"Per-layer importance needs an [layers, features] map; got [{string.Join(", ", importance.shape)}]. Use Compute(...) on a [L, D] map first.", nameof(importance));
        return importance.mean(new long[] { 1 });
    }
}
