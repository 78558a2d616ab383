using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// Shape checks shared by the multiple-instance modules: a single bag <c>[N, D]</c> (or <c>[1, N, D]</c>) or a padded
/// batch <c>[B, N_max, D]</c> with an optional boolean mask <c>[B, N_max]</c> (true = real instance).
/// </summary>
internal static class MilInputs
{
    /// <summary>
    /// Returns the input as <c>[B, N, D]</c> and the mask as <c>[B, N]</c> (null when none was given: every instance is
    /// real), or throws an <see cref="ArgumentException"/> saying what is wrong and what to change.
    /// </summary>
    public static (Tensor Bags, Tensor? Mask) Prepare(Tensor x, Tensor? mask, long featureSize, string what = "bags")
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() is not (2 or 3))
            throw new ArgumentException($"The {what} must be one bag [N, {featureSize}] or a batch of padded bags [B, N_max, {featureSize}] (with a bool mask [B, N_max]); got rank {x.dim()} [{Shape(x)}]. Reshape the input to one of these layouts.", nameof(x));
        if (x.shape[^1] != featureSize)
            throw new ArgumentException($"The {what} have {x.shape[^1]} features per instance, but the module was built for {featureSize} ([{Shape(x)}]). Build the module with the input's feature size or project the features first.", nameof(x));
        var bags = x.dim() == 2 ? x.unsqueeze(0) : x;
        if (bags.shape[0] == 0)
            throw new ArgumentException($"The batch holds no bag ([{Shape(x)}]). Pass at least one bag.", nameof(x));
        if (bags.shape[1] == 0)
            throw new ArgumentException($"Empty bag: the input has no instance ([{Shape(x)}]); attention over zero instances is undefined. Remove empty bags before the forward pass.", nameof(x));
        if (mask is null) return (bags, null);

        if (mask.dtype != ScalarType.Bool)
            throw new ArgumentException($"The padding mask must be a bool tensor (true = real instance); got {mask.dtype}. Convert it, e.g. mask.to(ScalarType.Bool) or arange(N_max) < lengths.unsqueeze(1).", nameof(mask));
        var m = x.dim() == 2 && mask.dim() == 1 ? mask.unsqueeze(0) : mask;
        if (m.dim() != 2 || m.shape[0] != bags.shape[0] || m.shape[1] != bags.shape[1])
            throw new ArgumentException($"The padding mask has shape [{Shape(mask)}], but the {what} [{Shape(x)}] need [B, N_max] = [{bags.shape[0]}, {bags.shape[1]}] (one flag per instance slot). Build the mask with the input's batch and instance dimensions.", nameof(mask));
        // No padding (a one-bag batch, bags of equal size): the same as no mask, and the masked fills would each cost
        // a copy of the bag's activations.
        using (var all = m.all())
            if (all.item<bool>()) return (bags, null);
        using (var empty = m.logical_not().all(1))
        {
            if (empty.any().item<bool>())
            {
                using var idx = empty.nonzero().reshape(-1).cpu();
                var list = string.Join(", ", idx.data<long>().ToArray());
                throw new ArgumentException($"Empty bag: bag(s) {list} of the batch have no real instance (mask all false); attention over zero instances is undefined. Remove empty bags from the batch.", nameof(mask));
            }
        }
        return (bags, m.device == bags.device ? m : m.to(bags.device));
    }

    /// <summary>Number of real instances per bag (host copy; <paramref name="instances"/> for every bag when unmasked).</summary>
    public static long[] Counts(Tensor? mask, long batch, long instances)
    {
        if (mask is null) return Enumerable.Repeat(instances, (int)batch).ToArray();
        using var counts = mask.sum(1, type: ScalarType.Int64).cpu();
        return counts.data<long>().ToArray();
    }

    /// <summary>Checks class-index labels <c>[B]</c> (a scalar or <c>[1]</c> for one bag) and returns them as <c>[B]</c>.</summary>
    public static Tensor Labels(Tensor labels, long batch, int classes)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.dtype != ScalarType.Int64)
            throw new ArgumentException($"The labels must be class indices of type Int64; got {labels.dtype}. Convert them with labels.to(ScalarType.Int64).", nameof(labels));
        if (labels.numel() != batch || labels.dim() > 1)
            throw new ArgumentException($"Expected one label per bag, [{batch}]; got [{Shape(labels)}]. Pass a 1-D tensor with one class index per bag.", nameof(labels));
        var flat = labels.reshape(batch);
        long min = flat.min().item<long>(), max = flat.max().item<long>();
        if (min < 0 || max >= classes)
            throw new ArgumentException($"Labels must be class indices in [0, {classes - 1}]; got values in [{min}, {max}]. Map the labels to 0..{classes - 1} or build the module with more classes.", nameof(labels));
        return flat;
    }

    public static string Shape(Tensor t) => string.Join(", ", t.shape);
}
