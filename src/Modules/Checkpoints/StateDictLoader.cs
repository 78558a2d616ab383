using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Checkpoints;

/// <summary>How checkpoint names map to a module's state-dict names (see <see cref="StateDictLoader.Load"/>).</summary>
public sealed record StateDictLoadOptions
{
    /// <summary>Prepended to every checkpoint key to get the module's name (e.g. <c>"backbone."</c> when the module
    /// wraps the checkpoint's network in a field named <c>backbone</c>); only module tensors under it are expected.</summary>
    public string TargetPrefix { get; init; } = "";

    /// <summary>Checkpoint keys starting with one of these are skipped on purpose (e.g. a classifier head:
    /// <c>"classifier."</c>, <c>"fc."</c>) and reported in <see cref="StateDictLoadResult.Ignored"/>.</summary>
    public IReadOnlyList<string> IgnoreKeyPrefixes { get; init; } = Array.Empty<string>();

    /// <summary>Module names starting with one of these (after <see cref="TargetPrefix"/>) are not expected in the
    /// checkpoint and keep their current values (e.g. the module's own head).</summary>
    public IReadOnlyList<string> KeepModulePrefixes { get; init; } = Array.Empty<string>();

    /// <summary>True (default): every module tensor must be in the checkpoint and every checkpoint key in the module;
    /// false: missing and unexpected keys are only reported in the result. Shapes must always agree.</summary>
    public bool Strict { get; init; } = true;
}

/// <summary>What <see cref="StateDictLoader.Load"/> did.</summary>
/// <param name="Loaded">Module names that received a tensor.</param>
/// <param name="Ignored">Checkpoint keys skipped by <see cref="StateDictLoadOptions.IgnoreKeyPrefixes"/>.</param>
/// <param name="Missing">Expected keys (module names without <see cref="StateDictLoadOptions.TargetPrefix"/>) the
/// checkpoint lacks (empty when strict).</param>
/// <param name="Unexpected">Checkpoint keys with no module tensor (empty when strict).</param>
public sealed record StateDictLoadResult(IReadOnlyList<string> Loaded, IReadOnlyList<string> Ignored,
    IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected);

/// <summary>One tensor whose shape differs between the module and the checkpoint.</summary>
/// <param name="Name">The checkpoint key.</param>
/// <param name="Expected">The module's shape.</param>
/// <param name="Found">The checkpoint's shape.</param>
public sealed record StateDictShapeMismatch(string Name, long[] Expected, long[] Found)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Name}: expected [{string.Join(", ", Expected)}], file has [{string.Join(", ", Found)}]";
}

/// <summary>The checkpoint does not fit the module: lists every missing, unexpected and mis-shaped key.</summary>
public sealed class StateDictMismatchException : Exception
{
    internal StateDictMismatchException(string message, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected,
        IReadOnlyList<StateDictShapeMismatch> misShaped) : base(message)
    {
        Missing = missing;
        Unexpected = unexpected;
        MisShaped = misShaped;
    }

    /// <summary>Expected keys (module names without the target prefix) the checkpoint lacks.</summary>
    public IReadOnlyList<string> Missing { get; }

    /// <summary>Checkpoint keys the module lacks.</summary>
    public IReadOnlyList<string> Unexpected { get; }

    /// <summary>Tensors present in both with different shapes.</summary>
    public IReadOnlyList<StateDictShapeMismatch> MisShaped { get; }
}

/// <summary>Copies a <see cref="StateDict"/> into a TorchSharp module by name, like PyTorch's <c>load_state_dict</c>.</summary>
public static class StateDictLoader
{
    /// <summary>
    /// Copies the tensors of <paramref name="weights"/> into the parameters and buffers of <paramref name="module"/>
    /// (converted to the module tensor's element type and device). Nothing is copied unless everything fits: on a
    /// mismatch a <see cref="StateDictMismatchException"/> lists the missing, unexpected and mis-shaped keys.
    /// </summary>
    public static StateDictLoadResult Load(nn.Module module, StateDict weights, StateDictLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(weights);
        options ??= new StateDictLoadOptions();
        var target = module.state_dict();
        string prefix = options.TargetPrefix ?? "";
        var expected = target.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal) &&
                                         !options.KeepModulePrefixes.Any(k => p.Key.StartsWith(k, StringComparison.Ordinal)))
            .ToDictionary(p => p.Key, p => p.Value);

        var ignored = new List<string>();
        var pairs = new List<(string Name, Tensor Source, Tensor Target)>();
        var unexpected = new List<string>();
        var misShaped = new List<StateDictShapeMismatch>();
        var seen = new HashSet<string>();
        foreach (var (key, source) in weights)
        {
            if (options.IgnoreKeyPrefixes.Any(p => key.StartsWith(p, StringComparison.Ordinal)))
            {
                ignored.Add(key);
                continue;
            }
            string name = prefix + key;
            if (!expected.TryGetValue(name, out var dest))
            {
                unexpected.Add(key);
                continue;
            }
            seen.Add(name);
            if (!source.shape.SequenceEqual(dest.shape))
                misShaped.Add(new StateDictShapeMismatch(key, dest.shape, source.shape));
            else
                pairs.Add((name, source, dest));
        }
        // Reported in the checkpoint's naming (without TargetPrefix), as the file's keys are.
        var missing = expected.Keys.Where(k => !seen.Contains(k)).Select(k => k[prefix.Length..]).ToList();

        if (misShaped.Count > 0 || (options.Strict && (missing.Count > 0 || unexpected.Count > 0)))
        {
            var lines = new List<string>();
            if (missing.Count > 0) lines.Add($"missing from the file ({missing.Count}): {List(missing)}");
            if (unexpected.Count > 0) lines.Add($"unexpected in the file ({unexpected.Count}): {List(unexpected)}");
            if (misShaped.Count > 0) lines.Add($"different shape ({misShaped.Count}): {List(misShaped.Select(m => m.ToString()))}");
            string hint = misShaped.Count > 0 || missing.Count > 0
                ? "The checkpoint was saved from a different architecture or configuration (backbone, attention, width, " +
                  "input channels): build the module with the checkpoint's configuration."
                : "Skip extra keys on purpose with IgnoreKeyPrefixes, or load with Strict = false.";
            throw new StateDictMismatchException(
                $"'{weights.Source}' does not fit {module.GetName()}: {string.Join("; ", lines)}. {hint}",
                missing, unexpected, misShaped);
        }

        using (no_grad())
            foreach (var (_, source, dest) in pairs)
                dest.copy_(source);
        return new StateDictLoadResult(pairs.Select(p => p.Name).ToList(), ignored,
            options.Strict ? Array.Empty<string>() : missing, options.Strict ? Array.Empty<string>() : unexpected);
    }

    private static string List(IEnumerable<string> items)
    {
        var all = items.ToList();
        return string.Join(", ", all.Take(20)) + (all.Count > 20 ? $", … ({all.Count - 20} more)" : "");
    }
}
