// Batch-scoring sample: a resumable, sharded scorer for many series files (the same job runs unchanged as a
// Kubernetes Indexed Job, a Slurm array or `xargs -P`; docs/batch-scoring.md).
//   prepare --out DIR [--series N] [--epochs E]   train a small iTransformer on the shipped ETTh1 (DIR/model.zip) and
//                                                 cut N series files from its test months (DIR/series/*.csv)
//   score --model ZIP --input PATTERN --output DIR [--shard i/n | --shards n] [--locks] [--stale-lock-minutes M]
//         [--threads T]                           forecast every input of the shard whose output does not exist yet
//                                                 (T: libtorch threads per worker; keep workers × T ≤ cores)
// Exit codes of score: 0 every input of the shard has its output, 1 some failed or were not reached, 2 bad arguments.
using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;
using Microsoft.ML;
using MLNet.Attention;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Scoring;

try
{
    return args.FirstOrDefault() switch
    {
        "prepare" => Prepare(Options(args[1..])),
        "score" => Score(Options(args[1..])),
        _ => Usage("the first argument is the command: prepare or score"),
    };
}
catch (ArgumentException e) when (e is not ArgumentNullException)
{
    return Usage(e.Message);
}
catch (Exception e) when (e is FormatException or IOException)
{
    return Usage(e.Message);
}

static int Usage(string problem)
{
    Console.Error.WriteLine($"error: {problem}\n" +
        "usage: prepare --out DIR [--series N] [--epochs E]\n" +
        "       score --model ZIP --input PATTERN --output DIR [--shard i/n | --shards n] [--locks] " +
        "[--stale-lock-minutes M] [--threads T]");
    return 2;
}

static Dictionary<string, string> Options(string[] args)
{
    var options = new Dictionary<string, string>(StringComparer.Ordinal);
    for (int i = 0; i < args.Length; i++)
    {
        if (!args[i].StartsWith("--", StringComparison.Ordinal))
            throw new ArgumentException($"'{args[i]}' is not an option (options start with --)");
        bool flag = i + 1 == args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal);
        options[args[i][2..]] = flag ? "true" : args[++i];
    }
    return options;
}

static string Required(Dictionary<string, string> options, string name) =>
    options.TryGetValue(name, out var value) ? value : throw new ArgumentException($"--{name} is required");

static int Int(Dictionary<string, string> options, string name, int fallback) =>
    options.TryGetValue(name, out var value) ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;

static int Prepare(Dictionary<string, string> options)
{
    string dir = Path.GetFullPath(Required(options, "out"));
    int seriesCount = Int(options, "series", 2000), epochs = Int(options, "epochs", 2);
    Directory.CreateDirectory(Path.Combine(dir, "series"));
    string csv = Path.Combine(dir, "ETTh1.csv");
    using (var gz = new GZipStream(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "data", "ETTh1.csv.gz")),
        CompressionMode.Decompress))
    using (var file = File.Create(csv)) gz.CopyTo(file);

    var ml = new MLContext(seed: 1);
    var series = SeriesCsv.Load(ml, csv);
    const int Lookback = 96, Horizon = 24;
    var (train, validation, _) = ForecastSplit.Ett().Apply(ml, series.Data, Lookback);
    Console.WriteLine($"Training an iTransformer {Lookback} → {Horizon} on ETTh1's training months ({epochs} epochs)…");
    using var model = ml.Forecasting.Trainers.InvertedTransformer(new InvertedTransformerOptions
    {
        VariateColumnNames = series.VariateColumnNames.ToArray(), TimestampColumnName = series.TimestampColumnName,
        Lookback = Lookback, Horizon = Horizon, MaxEpochs = epochs, ValidationSet = validation, ModelWidth = 128,
    }).Fit(train);
    ml.Model.Save(model, series.Data.Schema, Path.Combine(dir, "model.zip"));

    // The series files: histories of the test months (the last 4 months of 20), each ending at another origin.
    var lines = File.ReadAllLines(csv);
    int testStart = 1 + 16 * 30 * 24, last = lines.Length - 1;
    int step = Math.Max(1, (last - testStart - Lookback) / seriesCount);
    for (int k = 0; k < seriesCount; k++)
    {
        int end = testStart + Lookback + k * step;
        File.WriteAllLines(Path.Combine(dir, "series", $"origin-{end:D5}.csv"),
            lines.Take(1).Concat(lines[(end - 2 * Lookback)..end]));
    }
    Console.WriteLine($"Wrote {Path.Combine(dir, "model.zip")} and {seriesCount} series files in " +
        $"{Path.Combine(dir, "series")}.");
    return 0;
}

static int Score(Dictionary<string, string> options)
{
    var shard = options.TryGetValue("shard", out var text) ? ShardSpec.Parse(text)
        : ShardSpec.FromEnvironment(options.ContainsKey("shards") ? Int(options, "shards", 1) : null) ?? ShardSpec.All;
    var job = BatchScoringJob.FromPattern(Required(options, "input"), Required(options, "output"), new BatchScoringOptions
    {
        Shard = shard,
        UseLockFiles = options.ContainsKey("locks"),
        StaleLockAge = TimeSpan.FromMinutes(Int(options, "stale-lock-minutes", 10)),
    });
    Console.WriteLine($"[shard {shard}] {job.ShardItems.Count} of {job.AllItems.Count} inputs → {job.OutputDirectory}");
    if (job.ShardItems.Count == 0) return 0;

    // Several workers on one machine: each gets its share of the cores instead of one libtorch thread per core.
    if (options.ContainsKey("threads")) MLNet.Attention.Runtime.TorchRuntime.SetThreads(Int(options, "threads", 1));
    var ml = new MLContext(seed: 1);
    string modelPath = Required(options, "model");
    if (!File.Exists(modelPath))
        throw new ArgumentException($"the model file '{Path.GetFullPath(modelPath)}' does not exist");
    var loaded = ml.Model.Load(modelPath, out _);
    var model = loaded as ForecastingModel ?? (loaded as IEnumerable<ITransformer>)?.OfType<ForecastingModel>().Single()
        ?? throw new ArgumentException($"{modelPath} holds no MLNet.Attention forecaster");
    using var disposeModel = model;

    // Ctrl+C, and SIGTERM from Kubernetes or Slurm on pre-emption: finish the current input, leave the rest for the
    // next run (its outputs do not exist, so the rerun picks them up).
    using var cancel = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
    using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cancel.Cancel(); });
    var lastPrint = DateTime.MinValue;
    var progress = new ConsoleProgress(p =>
    {
        if (p.LastOutcome == BatchItemOutcome.Failed)
            Console.Error.WriteLine($"[shard {shard}] failed: {p.Last.Key}: see {p.Last.OutputPath}.error.txt");
        if (DateTime.UtcNow - lastPrint < TimeSpan.FromSeconds(2) && p.Completed < p.Total) return;
        lastPrint = DateTime.UtcNow;
        Console.WriteLine(p);
    });
    var summary = job.Run(ForecastBatchScoring.SeriesCsvToForecastCsv(ml, model), progress, cancel.Token);
    Console.WriteLine(summary);
    foreach (var failure in summary.Failures)
        Console.Error.WriteLine($"  {failure.Item.Key}: {failure.Exception.Message}");
    return summary.Succeeded ? 0 : 1;
}

internal sealed class ConsoleProgress(Action<BatchScoringProgress> report) : IProgress<BatchScoringProgress>
{
    public void Report(BatchScoringProgress value) => report(value);
}
