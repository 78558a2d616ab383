using System.Globalization;
using System.Text;

namespace MLNet.Attention.Scoring;

/// <summary>
/// One shard of a batch-scoring job: worker <see cref="Index"/> (0-based) of <see cref="Count"/>. An input belongs to
/// the shard <c>hash(key) mod Count</c>, where the key is the input's path relative to the job's input root and the
/// hash is a fixed 64-bit FNV-1a, so every worker computes the same partition without talking to the others, on any
/// machine and mount point, and adding inputs never moves an existing input to another shard.
/// </summary>
/// <param name="Index">0-based shard index, as Kubernetes' <c>JOB_COMPLETION_INDEX</c> and <c>xargs</c> loops
/// count.</param>
/// <param name="Count">Number of shards (≥ 1).</param>
public readonly record struct ShardSpec(int Index, int Count)
{
    /// <summary>The whole job in one shard.</summary>
    public static ShardSpec All => new(0, 1);

    /// <summary>Checks the index and count.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Count &lt; 1 or Index outside [0, Count).</exception>
    public ShardSpec Validate()
    {
        if (Count < 1)
            throw new ArgumentOutOfRangeException(nameof(Count), Count, "A job needs at least one shard (Count ≥ 1).");
        if (Index < 0 || Index >= Count)
            throw new ArgumentOutOfRangeException(nameof(Index), Index,
                $"Shard indices are 0-based: with {Count} shards the index is 0 … {Count - 1}. A 1-based scheduler " +
                "index (Slurm's --array=1-N) needs −1; ShardSpec.FromEnvironment() does that for Slurm.");
        return this;
    }

    /// <summary>Parses <c>"i/n"</c> (0-based i), as the <c>--shard</c> option of a scoring command takes it.</summary>
    /// <exception cref="FormatException">Not of the form i/n with integers.</exception>
    /// <exception cref="ArgumentOutOfRangeException">As <see cref="Validate"/>.</exception>
    public static ShardSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('/');
        if (parts.Length != 2 ||
            !int.TryParse(parts[0].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int index) ||
            !int.TryParse(parts[1].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int count))
            throw new FormatException($"'{text}' is not a shard: write i/n with a 0-based index i and a count n, " +
                "e.g. 0/4 for the first of four workers.");
        return new ShardSpec(index, count).Validate();
    }

    /// <summary>
    /// The shard a scheduler gave this process: Kubernetes Indexed Jobs (<c>JOB_COMPLETION_INDEX</c>, with
    /// <paramref name="count"/> = the Job's <c>completions</c>), Slurm job arrays (<c>SLURM_ARRAY_TASK_ID</c> −
    /// <c>SLURM_ARRAY_TASK_MIN</c> of <c>SLURM_ARRAY_TASK_COUNT</c>), or <c>MLNET_ATTENTION_SHARD</c> (<c>i/n</c>);
    /// null when none is set.
    /// </summary>
    /// <param name="count">The shard count when the scheduler does not publish it (Kubernetes).</param>
    /// <param name="environment">The variables to read (for tests); null: the process environment.</param>
    public static ShardSpec? FromEnvironment(int? count = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        string? Get(string name) => environment is null
            ? Environment.GetEnvironmentVariable(name)
            : environment.TryGetValue(name, out var v) ? v : null;
        int Int(string name, string value) => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture,
            out int n) ? n : throw new FormatException($"{name}='{value}' is not an integer.");

        if (Get("MLNET_ATTENTION_SHARD") is { Length: > 0 } explicitShard) return Parse(explicitShard);
        if (Get("SLURM_ARRAY_TASK_ID") is { Length: > 0 } slurmId)
        {
            int id = Int("SLURM_ARRAY_TASK_ID", slurmId);
            int min = Get("SLURM_ARRAY_TASK_MIN") is { Length: > 0 } m ? Int("SLURM_ARRAY_TASK_MIN", m) : 0;
            int n = Get("SLURM_ARRAY_TASK_COUNT") is { Length: > 0 } c ? Int("SLURM_ARRAY_TASK_COUNT", c)
                : count ?? throw new InvalidOperationException("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT " +
                    "is not; pass the shard count (--shards N) or --shard i/n.");
            return new ShardSpec(id - min, n).Validate();
        }
        if (Get("JOB_COMPLETION_INDEX") is { Length: > 0 } k8sIndex)
            return new ShardSpec(Int("JOB_COMPLETION_INDEX", k8sIndex), count ?? throw new InvalidOperationException(
                "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but the shard count is not known; pass the " +
                "Job's completions as the count (--shards N), or --shard i/n.")).Validate();
        return null;
    }

    /// <summary>Whether the input with this key (its path relative to the input root, '/'-separated) is in this
    /// shard.</summary>
    public bool Contains(string key) => IndexOf(key, Count) == Index;

    /// <summary>The shard of a key among <paramref name="count"/> shards: FNV-1a-64 of the key mod count.</summary>
    internal static int IndexOf(string key, int count) => count == 1 ? 0 : (int)(StableHash(key) % (ulong)count);

    /// <summary>64-bit FNV-1a of the key's UTF-8 bytes: stable across processes, machines and .NET versions (unlike
    /// <see cref="string.GetHashCode()"/>).</summary>
    internal static ulong StableHash(string key)
    {
        ulong hash = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(key))
            hash = (hash ^ b) * 1099511628211UL;
        return hash;
    }

    /// <summary>"i/n".</summary>
    public override string ToString() => $"{Index}/{Count}";
}
