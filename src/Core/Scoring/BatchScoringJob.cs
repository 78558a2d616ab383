using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace MLNet.Attention.Scoring;

/// <summary>Options of a <see cref="BatchScoringJob"/>.</summary>
public sealed class BatchScoringOptions
{
    /// <summary>The shard this process scores (default: all inputs).</summary>
    public ShardSpec Shard { get; init; } = ShardSpec.All;

    /// <summary>Extension of each output file, replacing the input's (default <c>.csv</c>); a <c>.csv.gz</c> input
    /// loses both parts.</summary>
    public string OutputExtension { get; init; } = ".csv";

    /// <summary>
    /// Take a <c>OUTPUT.lock</c> file while an input is scored, so that workers whose shards overlap (two runs of one
    /// shard, a rerun while a straggler still works) do not score the same input twice. Outputs are correct without
    /// locks (write-then-rename): locks only save duplicated work. Default false.
    /// </summary>
    public bool UseLockFiles { get; init; }

    /// <summary>A lock not refreshed for this long belongs to a dead worker and is taken over (default 10 minutes).
    /// A live worker refreshes its lock every quarter of this age, however long the input takes.</summary>
    public TimeSpan StaleLockAge { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Stop at the first input that fails instead of recording it and going on (default false).</summary>
    public bool StopOnFirstFailure { get; init; }

    /// <summary>Write <c>OUTPUT.error.txt</c> with the exception when an input fails; removed once it is scored
    /// (default true).</summary>
    public bool WriteErrorFiles { get; init; } = true;
}

/// <summary>One input of a batch-scoring job and where its result goes.</summary>
/// <param name="InputPath">The input file.</param>
/// <param name="Key">The input's path relative to the input root, '/'-separated: what decides its shard.</param>
/// <param name="OutputPath">The output file (written only complete, by rename).</param>
/// <param name="Shard">The shard the input belongs to.</param>
public sealed record BatchScoringItem(string InputPath, string Key, string OutputPath, int Shard);

/// <summary>What happened to one input.</summary>
public enum BatchItemOutcome
{
    /// <summary>Scored and its output written.</summary>
    Scored,
    /// <summary>Its output existed already (an earlier run, or another worker): skipped.</summary>
    AlreadyDone,
    /// <summary>Another live worker holds its lock: skipped.</summary>
    LockedByAnotherWorker,
    /// <summary>The scorer threw: no output was written; a rerun tries it again.</summary>
    Failed,
}

/// <summary>Progress of a running job, reported after each input of the shard.</summary>
/// <param name="Shard">The shard.</param>
/// <param name="Total">Inputs in the shard.</param>
/// <param name="Scored">Inputs scored so far.</param>
/// <param name="AlreadyDone">Inputs skipped because their output existed.</param>
/// <param name="Locked">Inputs skipped because another worker held their lock.</param>
/// <param name="Failed">Inputs that failed.</param>
/// <param name="Elapsed">Time since the run started.</param>
/// <param name="Last">The input just finished.</param>
/// <param name="LastOutcome">What happened to it.</param>
public sealed record BatchScoringProgress(ShardSpec Shard, int Total, int Scored, int AlreadyDone, int Locked,
    int Failed, TimeSpan Elapsed, BatchScoringItem Last, BatchItemOutcome LastOutcome)
{
    /// <summary>Inputs finished in any way.</summary>
    public int Completed => Scored + AlreadyDone + Locked + Failed;

    /// <summary>Scored inputs per second of this run (skips cost next to nothing and are not counted).</summary>
    public double ScoredPerSecond => Elapsed.TotalSeconds > 0 ? Scored / Elapsed.TotalSeconds : 0;

    /// <summary>Time left at this run's rate, assuming the remaining inputs all need scoring; null before the first
    /// scored input.</summary>
    public TimeSpan? EstimatedRemaining => Scored == 0 ? null
        : TimeSpan.FromSeconds((Total - Completed) * Elapsed.TotalSeconds / Scored);

    /// <summary>One console line:
    /// <c>[shard 1/4] 37/120 · scored 30, done 5, locked 0, failed 2 · 3.1/s · ETA 27s</c>.</summary>
    public override string ToString() =>
        $"[shard {Shard}] {Completed}/{Total} · scored {Scored}, done {AlreadyDone}, locked {Locked}, failed {Failed}" +
        $" · {ScoredPerSecond:F1}/s" + (EstimatedRemaining is { } eta ? $" · ETA {eta.TotalSeconds:F0}s" : "");
}

/// <summary>An input that failed, with the exception the scorer threw.</summary>
public sealed record BatchScoringFailure(BatchScoringItem Item, Exception Exception);

/// <summary>The outcome of <see cref="BatchScoringJob.Run"/> on one shard.</summary>
public sealed class BatchScoringSummary
{
    internal BatchScoringSummary(ShardSpec shard, int inputs, int assigned, int scored, int alreadyDone, int locked,
        IReadOnlyList<BatchScoringFailure> failures, bool cancelled, TimeSpan elapsed)
    {
        (Shard, Inputs, Assigned, Scored, AlreadyDone, Locked, Failures, Cancelled, Elapsed) =
            (shard, inputs, assigned, scored, alreadyDone, locked, failures, cancelled, elapsed);
    }

    /// <summary>The shard that ran.</summary>
    public ShardSpec Shard { get; }
    /// <summary>Inputs of the whole job (every shard).</summary>
    public int Inputs { get; }
    /// <summary>Inputs of this shard.</summary>
    public int Assigned { get; }
    /// <summary>Inputs scored by this run.</summary>
    public int Scored { get; }
    /// <summary>Inputs skipped because their output existed.</summary>
    public int AlreadyDone { get; }
    /// <summary>Inputs skipped because another worker held their lock.</summary>
    public int Locked { get; }
    /// <summary>Inputs that failed (none of them has an output).</summary>
    public IReadOnlyList<BatchScoringFailure> Failures { get; }
    /// <summary>Whether the run stopped early on cancellation (the inputs not reached have no output).</summary>
    public bool Cancelled { get; }
    /// <summary>Wall time of the run.</summary>
    public TimeSpan Elapsed { get; }
    /// <summary>Inputs of this shard not finished by this run (cancelled before them, or stopped at a failure).</summary>
    public int NotReached => Assigned - Scored - AlreadyDone - Locked - Failures.Count;
    /// <summary>Every input of the shard has its output (or a live worker is scoring it).</summary>
    public bool Succeeded => Failures.Count == 0 && NotReached == 0;

    /// <summary>One line for logs.</summary>
    public override string ToString() =>
        $"shard {Shard}: {Assigned} of {Inputs} inputs · scored {Scored}, already done {AlreadyDone}, locked {Locked}, " +
        $"failed {Failures.Count}" + (NotReached > 0 ? $", not reached {NotReached}" : "") +
        (Cancelled ? " (cancelled)" : "") + $" · {Elapsed.TotalSeconds:F1} s";
}

/// <summary>
/// A resumable, shardable batch-scoring job: one output file per input file, for jobs that outgrow one process
/// (many slides, many series). Every worker runs the same job with its own <see cref="BatchScoringOptions.Shard"/>;
/// the partition is computed from the inputs' relative paths, so workers need no coordinator and run unchanged under
/// Kubernetes Indexed Jobs, Slurm arrays or <c>xargs -P</c>.
/// </summary>
/// <remarks>
/// <para><b>Resumable.</b> Each output is written to a temporary file beside it, flushed to disk and renamed into
/// place (never overwriting), so an output that exists is complete. An input whose output exists is skipped: rerun a
/// killed or partly failed shard with the same command and it does only what is left.</para>
/// <para><b>Failures</b> are recorded (and written to <c>OUTPUT.error.txt</c>) and the job goes on; the failed inputs
/// have no output, so the next run retries them.</para>
/// <para>A worker scores its inputs one after another: run several workers (processes) for parallelism, since a
/// TorchSharp model is not meant to be called from several threads.</para>
/// </remarks>
public sealed class BatchScoringJob
{
    private const string TemporaryMarker = ".partial-";

    /// <summary>Every input of the job (all shards), ordered by key.</summary>
    public IReadOnlyList<BatchScoringItem> AllItems { get; }

    /// <summary>The inputs of this job's shard, ordered by key.</summary>
    public IReadOnlyList<BatchScoringItem> ShardItems { get; }

    /// <summary>The options.</summary>
    public BatchScoringOptions Options { get; }

    /// <summary>The folder outputs are written under (the inputs' folder structure below the input root is
    /// kept).</summary>
    public string OutputDirectory { get; }

    /// <summary>A job over explicit input files.</summary>
    /// <param name="inputRoot">The folder the inputs' keys are relative to (every input must be under it).</param>
    /// <param name="inputPaths">The input files.</param>
    /// <param name="outputDirectory">Where outputs go: <c>outputDirectory/KEY</c> with
    /// <see cref="BatchScoringOptions.OutputExtension"/>.</param>
    /// <param name="options">Shard, locks, failure handling.</param>
    /// <exception cref="ArgumentException">An input outside the root, two inputs with one output path, or an output
    /// path equal to an input's.</exception>
    public BatchScoringJob(string inputRoot, IEnumerable<string> inputPaths, string outputDirectory,
        BatchScoringOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(inputRoot);
        ArgumentNullException.ThrowIfNull(inputPaths);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputDirectory);
        Options = options ?? new BatchScoringOptions();
        Options.Shard.Validate();
        if (string.IsNullOrEmpty(Options.OutputExtension) || Options.OutputExtension[0] != '.')
            throw new ArgumentException($"OutputExtension '{Options.OutputExtension}' must start with a dot, e.g. " +
                "\".csv\".", nameof(options));
        if (Options.StaleLockAge <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), Options.StaleLockAge, "StaleLockAge must be positive.");

        string root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(inputRoot));
        OutputDirectory = Path.GetFullPath(outputDirectory);
        var items = new List<BatchScoringItem>();
        var byOutput = new Dictionary<string, string>(StringComparer.Ordinal);
        var inputs = new HashSet<string>(StringComparer.Ordinal);
        foreach (string input in inputPaths)
        {
            string full = Path.GetFullPath(input);
            string relative = Path.GetRelativePath(root, full);
            if (relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative))
                throw new ArgumentException($"The input '{full}' is not under the input root '{root}'; every input " +
                    "needs a path relative to the root, since that is what decides its shard and its output path.",
                    nameof(inputPaths));
            if (!inputs.Add(full)) continue;
            string key = relative.Replace(Path.DirectorySeparatorChar, '/');
            string output = Path.Combine(OutputDirectory, StripExtensions(relative) + Options.OutputExtension);
            if (byOutput.TryGetValue(output, out string? other))
                throw new ArgumentException($"The inputs '{other}' and '{key}' would both write '{output}'; rename one, " +
                    "or keep them in different folders.", nameof(inputPaths));
            byOutput[output] = key;
            items.Add(new BatchScoringItem(full, key, output, ShardSpec.IndexOf(key, Options.Shard.Count)));
        }
        foreach (var item in items)
            if (inputs.Contains(item.OutputPath))
                throw new ArgumentException($"The output of '{item.Key}' would be the input '{item.OutputPath}'; " +
                    "choose another output folder or OutputExtension.", nameof(outputDirectory));
        items.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        AllItems = items;
        ShardItems = items.Where(i => i.Shard == Options.Shard.Index).ToArray();
    }

    /// <summary>
    /// A job over the files matching <paramref name="inputPattern"/>: a path whose last parts may hold <c>*</c>,
    /// <c>?</c> and <c>**</c> (any folders), e.g. <c>slides/**/*.svs</c> or <c>series/*.csv.gz</c>. The input root is
    /// the pattern's folder before its first wildcard. Files under <paramref name="outputDirectory"/> and temporary
    /// files of a running job are never inputs.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The pattern's folder does not exist.</exception>
    public static BatchScoringJob FromPattern(string inputPattern, string outputDirectory,
        BatchScoringOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(inputPattern);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputDirectory);
        var (root, files) = Glob(inputPattern);
        string output = Path.TrimEndingDirectorySeparator(Path.GetFullPath(outputDirectory)) + Path.DirectorySeparatorChar;
        return new BatchScoringJob(root, files.Where(f => !f.StartsWith(output, StringComparison.Ordinal) &&
            !Path.GetFileName(f).Contains(TemporaryMarker, StringComparison.Ordinal)), outputDirectory, options);
    }

    /// <summary>
    /// Scores every input of the shard whose output does not exist yet: <paramref name="score"/> writes the result of
    /// one input to the stream it is given (a temporary file, renamed to the output once the call returns).
    /// </summary>
    /// <param name="score">Scores one input; an exception marks the input failed and leaves no output.</param>
    /// <param name="progress">Called after each input (on the job's thread when it is not a
    /// <see cref="Progress{T}"/>).</param>
    /// <param name="cancellationToken">Checked between inputs: the input being scored finishes, the rest wait for
    /// the next run.</param>
    public BatchScoringSummary Run(Action<BatchScoringItem, Stream> score,
        IProgress<BatchScoringProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(score);
        var clock = Stopwatch.StartNew();
        int scored = 0, done = 0, locked = 0;
        var failures = new List<BatchScoringFailure>();
        bool cancelled = false;
        foreach (var item in ShardItems)
        {
            if (cancellationToken.IsCancellationRequested) { cancelled = true; break; }
            var outcome = ScoreOne(item, score, out var failure);
            switch (outcome)
            {
                case BatchItemOutcome.Scored: scored++; break;
                case BatchItemOutcome.AlreadyDone: done++; break;
                case BatchItemOutcome.LockedByAnotherWorker: locked++; break;
                default: failures.Add(failure!); break;
            }
            progress?.Report(new BatchScoringProgress(Options.Shard, ShardItems.Count, scored, done, locked,
                failures.Count, clock.Elapsed, item, outcome));
            if (outcome == BatchItemOutcome.Failed && Options.StopOnFirstFailure) break;
        }
        return new BatchScoringSummary(Options.Shard, AllItems.Count, ShardItems.Count, scored, done, locked, failures,
            cancelled, clock.Elapsed);
    }

    private BatchItemOutcome ScoreOne(BatchScoringItem item, Action<BatchScoringItem, Stream> score,
        out BatchScoringFailure? failure)
    {
        failure = null;
        if (File.Exists(item.OutputPath)) return BatchItemOutcome.AlreadyDone;
        Directory.CreateDirectory(Path.GetDirectoryName(item.OutputPath)!);
        using var itemLock = Options.UseLockFiles ? OutputLock.TryAcquire(item.OutputPath, Options.StaleLockAge) : null;
        if (Options.UseLockFiles && itemLock is null) return BatchItemOutcome.LockedByAnotherWorker;
        // Another worker may have finished between the first check and the lock.
        if (File.Exists(item.OutputPath)) return BatchItemOutcome.AlreadyDone;

        string temporary = item.OutputPath + TemporaryMarker + $"{Environment.MachineName}-{Environment.ProcessId}-" +
            Guid.NewGuid().ToString("N")[..8];
        string errorFile = item.OutputPath + ".error.txt";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                score(item, stream);
                stream.Flush(flushToDisk: true);
            }
            try
            {
                File.Move(temporary, item.OutputPath, overwrite: false);
            }
            catch (IOException) when (File.Exists(item.OutputPath))
            {
                // A worker without the lock (or with a stale one taken over) finished first: its output stands.
                File.Delete(temporary);
                return BatchItemOutcome.AlreadyDone;
            }
            if (Options.WriteErrorFiles && File.Exists(errorFile)) File.Delete(errorFile);
            return BatchItemOutcome.Scored;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            TryDelete(temporary);
            if (Options.WriteErrorFiles)
                TryWrite(errorFile, $"{DateTime.UtcNow:O} {Environment.MachineName} pid {Environment.ProcessId} " +
                    $"shard {Options.Shard}\ninput: {item.InputPath}\n\n{e}\n");
            failure = new BatchScoringFailure(item, e);
            return BatchItemOutcome.Failed;
        }
    }

    private static string StripExtensions(string relative)
    {
        string withoutGz = relative.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? relative[..^3] : relative;
        string directory = Path.GetDirectoryName(withoutGz) ?? "";
        return Path.Combine(directory, Path.GetFileNameWithoutExtension(withoutGz));
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static void TryWrite(string path, string text)
    {
        try { File.WriteAllText(path, text, Encoding.UTF8); }
        catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    internal static (string Root, IReadOnlyList<string> Files) Glob(string pattern)
    {
        string full = Path.GetFullPath(pattern.Replace('\\', '/'));
        var parts = full.Split('/');
        int firstWild = Array.FindIndex(parts, p => p.IndexOfAny(new[] { '*', '?' }) >= 0);
        if (firstWild < 0)
        {
            if (Directory.Exists(full))
                return (full, Directory.EnumerateFiles(full, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                    .ToArray());
            if (!File.Exists(full))
                throw new FileNotFoundException($"No input matches '{pattern}': the file does not exist.", full);
            return (Path.GetDirectoryName(full)!, new[] { full });
        }
        string root = string.Join('/', parts[..firstWild]);
        if (root.Length == 0) root = "/";
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"No input matches '{pattern}': the folder '{root}' does not exist.");
        var regex = GlobRegex(string.Join('/', parts[firstWild..]));
        bool recursive = parts.Length - firstWild > 1 || parts[firstWild].Contains("**", StringComparison.Ordinal);
        var search = recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly;
        var files = Directory.EnumerateFiles(root, "*", search)
            .Where(f => regex.IsMatch(Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/')))
            .Order(StringComparer.Ordinal).ToArray();
        return (root, files);
    }

    // "**/" matches any number of folders, a final "**" anything; "*" and "?" stay within one name.
    private static Regex GlobRegex(string relativePattern)
    {
        var regex = new StringBuilder("^");
        for (int i = 0; i < relativePattern.Length; i++)
        {
            char c = relativePattern[i];
            if (c == '*' && i + 1 < relativePattern.Length && relativePattern[i + 1] == '*')
            {
                bool slash = i + 2 < relativePattern.Length && relativePattern[i + 2] == '/';
                regex.Append(slash ? "(?:.*/)?" : ".*");
                i += slash ? 2 : 1;
            }
            else if (c == '*') regex.Append("[^/]*");
            else if (c == '?') regex.Append("[^/]");
            else regex.Append(Regex.Escape(c.ToString()));
        }
        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}

/// <summary>An exclusive <c>OUTPUT.lock</c> file, refreshed while held so that others can tell a live worker from a
/// dead one.</summary>
internal sealed class OutputLock : IDisposable
{
    private readonly string _path;
    private readonly Timer _heartbeat;

    private OutputLock(string path, TimeSpan staleAge)
    {
        _path = path;
        var period = TimeSpan.FromTicks(Math.Max(staleAge.Ticks / 4, TimeSpan.FromMilliseconds(200).Ticks));
        _heartbeat = new Timer(_ => Touch(), null, period, period);
    }

    public static OutputLock? TryAcquire(string outputPath, TimeSpan staleAge)
    {
        string path = outputPath + ".lock";
        for (int attempt = 0; attempt < 2; attempt++)
        {
            try
            {
                using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                using (var writer = new StreamWriter(stream))
                    writer.Write($"{Environment.MachineName} pid {Environment.ProcessId} since {DateTime.UtcNow:O}\n");
                return new OutputLock(path, staleAge);
            }
            catch (IOException) when (File.Exists(path))
            {
                if (DateTime.UtcNow - File.GetLastWriteTimeUtc(path) < staleAge) return null;
                // Its worker stopped refreshing it: take it over once.
                try { File.Delete(path); } catch (IOException) { return null; }
            }
        }
        return null;
    }

    private void Touch()
    {
        try { File.SetLastWriteTimeUtc(_path, DateTime.UtcNow); }
        catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public void Dispose()
    {
        _heartbeat.Dispose();
        try { File.Delete(_path); } catch (IOException) { }
    }
}
