using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Runtime;
using static MLNet.Attention.Benchmarks.Bench;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// `crib-speed`: training and scoring speed and peak memory of our CRIB forecaster next to the PyTorch reference
/// (bench/reference/crib_reference.py around bench/reference/modules/crib.py) in the same run, on ETTh1 with 20 %
/// point-missing values under the CRIB protocol. Both sides run as fresh child processes, one after the other, on
/// the same windows: ours trains through <c>mlContext.Forecasting.Trainers.Crib</c> and writes the series exactly as
/// its model scales them, which the reference then reads. The issue's goals: training ≤ 0.8× the reference's time,
/// scoring ≥ 1.5× its throughput.
/// </summary>
public static class CribSpeedBenchmark
{
    private const int WarmupBatches32 = 5, WarmupCalls1 = 50, Batch1Windows = 1000; // as crib_reference.py
    private const double TrainingGoal = 0.8, ScoringGoal = 1.5;

    /// <summary>What our child process measured (seconds, windows/s, milliseconds, MB).</summary>
    private sealed record OursResult(double[] EpochSeconds, int WindowsPerEpoch, int TrainWindows, int TrainRows,
        int TestRows, int ScoringWindows, double TransformPerSecond, double RawBatch32PerSecond, double EngineLatencyMs,
        double EnginePerSecond, double RawBatch1PerSecond, int Batch1Count, double RawVersusEngine, double CoresBusy,
        double PeakAfterTrainingMb, double PeakMb, long Parameters);

    /// <summary>A CRIB scoring window: the lookback rows (time-major, NaN = missing); CRIB reads no timestamp.</summary>
    public sealed class CribWindow
    {
        public float[] Lookback { get; set; } = Array.Empty<float>();
    }

    public static int Run(CommandLine options)
    {
        int lookback = options.Int("lookback", 24), horizon = options.Int("horizon", 24);
        int epochs = options.Int("epochs", 2);
        int threads = options.Int("threads", 2), seed = options.Int("seed", 1);
        int? windows = options.Int("windows");
        string dataDir = DataDir(options), python = options.Get("python", "/usr/bin/python3");
        if (epochs < 1 || windows is < 1) throw new UsageException("--epochs and --windows must be at least 1.");
        string file = DataFile(dataDir, "ETTh1");
        if (!File.Exists(file))
        {
            Console.WriteLine($"CRIB speed benchmark skipped: {file} not found " +
                              "(pass --data-dir DIR holding ETTh1.csv.gz).");
            return 0;
        }
        var cribOptions = Options(lookback, horizon, epochs, threads, seed);
        if (options.Get("part") == "ours")
            return RunOurs(cribOptions, file, windows, options.Get("result-out")!, options.Get("series-out")!);

        string outPath = OutPath(options), section = options.Get("section", "crib-speed");
        string command = $"crib-speed --lookback {lookback} --horizon {horizon} --epochs {epochs}" +
            (windows is { } w ? $" --windows {w}" : "") + $" --threads {threads} --seed {seed}";
        Console.WriteLine($"{command}: ETTh1, point-missing 20 %, CRIB protocol; batch 32, {threads} libtorch threads");

        // (a) ours, in a child process: a fresh process's peak RSS counts this training and scoring only.
        string temp = Path.Combine(Path.GetTempPath(), $"mlnet-attention-crib-speed-{Environment.ProcessId}");
        string resultFile = temp + ".json", seriesFile = temp + ".f32";
        string loadOurs = SpeedBenchmark.LoadAverage();
        int exitCode = RunSelf("crib-speed", options, new[] { "part", "result-out", "series-out", "out", "section" },
            "--part", "ours", "--result-out", resultFile, "--series-out", seriesFile);
        if (exitCode != 0 || !File.Exists(resultFile))
            throw new InvalidOperationException($"Our CRIB side failed in its child process (exit code {exitCode}).");
        var ours = JsonSerializer.Deserialize<OursResult>(File.ReadAllText(resultFile))!;
        File.Delete(resultFile);

        // (b) the PyTorch reference on the very windows ours trained and scored, after ours (never concurrently).
        string loadReference = SpeedBenchmark.LoadAverage();
        var (reference, why) = RunReference(python, cribOptions, seriesFile, ours, threads, seed);
        File.Delete(seriesFile);
        Console.WriteLine(reference is null ? $"(b) PyTorch reference skipped: {why}" : "(b) PyTorch reference: done");

        var md = Markdown(command, ours, reference, why, threads, loadOurs, loadReference);
        WriteSection(outPath, section, md);
        Console.WriteLine();
        Console.WriteLine(md);
        Console.WriteLine($"Wrote section '{section}' of {outPath}");
        CleanUp();
        return 0;
    }

    /// <summary>The reference's ETTh1 setting (CribOptions' defaults) at this run's sizes; no validation, since
    /// only the training loop is timed.</summary>
    private static CribOptions Options(int lookback, int horizon, int epochs, int threads, int seed) => new()
    {
        VariateColumnNames = EttRow.Variates, Lookback = lookback, Horizon = horizon, MaxEpochs = epochs,
        ValidationFraction = 0, NumberOfThreads = threads, Seed = seed,
        ScoringBatchSize = 32, // Transform scores 32 windows per forward pass, like the reference's batch-32 timing
    };

    /// <summary>Our side (the child process): trains, times Transform, the PredictionEngine and the raw network, and
    /// writes its result and the scaled series for the reference.</summary>
    private static int RunOurs(CribOptions options, string file, int? windows, string resultFile, string seriesFile)
    {
        TorchRuntime.SetThreads(options.NumberOfThreads);
        var ml = new MLContext(options.Seed);
        var series = Load(ml, Decompress(file));
        var split = CribProtocol.Apply(series, EttRow.Variates, options.Lookback, options.Horizon, MissingPattern.Point,
            0.2, options.Seed!.Value, nameof(EttRow.Date));
        int span = options.Lookback + options.Horizon - 1;
        int trainWindows = Math.Min(windows ?? int.MaxValue, split.TrainWindows);
        var train = ml.Data.TakeRows(split.Train, trainWindows + span);
        int n = EttRow.Variates.Length, batch = options.BatchSize;
        int windowsPerEpoch = trainWindows > batch ? trainWindows / batch * batch : trainWindows; // the loop's drop-last
        options.EpochCallback = e => Console.WriteLine($"  ours: {e}");

        // (a) training: the epoch reports time the training loop only (batch gathering included).
        using var self = Process.GetCurrentProcess();
        var (cpu0, wall0) = (self.TotalProcessorTime, Stopwatch.StartNew());
        using var model = ml.Forecasting.Trainers.Crib(options).Fit(train);
        self.Refresh();
        double coresBusy = (self.TotalProcessorTime - cpu0).TotalSeconds / wall0.Elapsed.TotalSeconds;
        double peakAfterTrainingMb = self.PeakWorkingSet64 / 1048576.0;
        var epochSeconds = model.TrainingSummary!.Epochs.Select(e => windowsPerEpoch / e.TrainRowsPerSecond).ToArray();
        Console.WriteLine($"(a) ours, training: {trainWindows} windows ({windowsPerEpoch} per epoch), " +
                          $"{string.Join(", ", epochSeconds.Select(s => F(s, "F2")))} s/epoch, " +
                          $"{F(coresBusy, "F2")} cores busy");

        // (b) Transform over the test series' window rows (no targets), every Forecast value read, after a warm-up pass.
        var scoringWindows = model.CreateWindows(ml, split.Test, includeTargets: false);
        SpeedBenchmark.Consume(model.Transform(scoringWindows));
        var clock = Stopwatch.StartNew();
        int scored = SpeedBenchmark.Consume(model.Transform(scoringWindows));
        double transformRate = scored / clock.Elapsed.TotalSeconds;
        Console.WriteLine($"(b) ours, Transform batch 32: {scored} windows, {F(transformRate, "F0")} windows/s");

        // (c) PredictionEngine, one window at a time (windows built in advance), median latency.
        float[] trainValues = Values(train, n), testValues = Values(split.Test, n);
        int testRows = testValues.Length / n, count = Math.Min(Batch1Windows, testRows - options.Lookback + 1);
        var inputs = Enumerable.Range(0, count)
            .Select(s => new CribWindow { Lookback = testValues.AsSpan(s * n, options.Lookback * n).ToArray() })
            .ToArray();
        var inputDefinition = SchemaDefinition.Create(typeof(CribWindow));
        inputDefinition[nameof(CribWindow.Lookback)].ColumnType =
            new VectorDataViewType(NumberDataViewType.Single, options.Lookback, n);
        var outputDefinition = SchemaDefinition.Create(typeof(SpeedBenchmark.WindowOutput),
            SchemaDefinition.Direction.Write);
        outputDefinition[nameof(SpeedBenchmark.WindowOutput.Forecast)].ColumnType =
            new VectorDataViewType(NumberDataViewType.Single, options.Horizon, n);
        using var engine = ml.Model.CreatePredictionEngine<CribWindow, SpeedBenchmark.WindowOutput>(model,
            inputSchemaDefinition: inputDefinition, outputSchemaDefinition: outputDefinition);
        foreach (var input in inputs.Take(WarmupCalls1)) engine.Predict(input);
        var latencies = new double[inputs.Length];
        clock.Restart();
        for (int i = 0; i < inputs.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            engine.Predict(inputs[i]);
            latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        double engineRate = inputs.Length / clock.Elapsed.TotalSeconds, latency = Median(latencies);
        Console.WriteLine($"(c) ours, PredictionEngine batch 1: median {F(latency, "F3")} ms, " +
                          $"{F(engineRate, "F0")} windows/s");

        // (d) the bare network on scaled windows built in advance: the reference's measurement, so the gap between
        // (b)/(c) and (d) is our ML.NET data path.
        var scaledTest = model.Scaler.Transform(testValues);
        var (raw32, raw1, firstForecast) = RawNetwork(model, scaledTest, n, testRows, count);
        var engineFirst = engine.Predict(inputs[0]).Forecast;
        double disagreement = engineFirst.Zip(firstForecast, (a, b) => Math.Abs(a - b)).Max();
        Console.WriteLine($"(d) ours, raw network: batch 32 {F(raw32, "F0")} windows/s, " +
                          $"batch 1 {F(raw1, "F0")} windows/s; " +
                          $"first forecast within {disagreement:G2} of the PredictionEngine's");

        self.Refresh();
        double peakMb = self.PeakWorkingSet64 / 1048576.0;
        WriteSeries(seriesFile, model.Scaler.Transform(trainValues), scaledTest);
        var result = new OursResult(epochSeconds, windowsPerEpoch, trainWindows, trainValues.Length / n, testRows,
            scored, transformRate, raw32, latency, engineRate, raw1, count, disagreement, coresBusy,
            peakAfterTrainingMb, peakMb, model.Network.parameters().Sum(p => p.numel()));
        File.WriteAllText(resultFile, JsonSerializer.Serialize(result));
        CleanUp();
        return 0;
    }

    /// <summary>The variates of a series view, row-major [rows × N], NaN where the protocol removed a value.</summary>
    private static float[] Values(IDataView view, int n)
    {
        var columns = EttRow.Variates.Select(v => view.GetColumn<float>(v).ToArray()).ToArray();
        var values = new float[columns[0].Length * n];
        for (int t = 0; t < columns[0].Length; t++)
            for (int k = 0; k < n; k++) values[t * n + k] = columns[k][t];
        return values;
    }

    /// <summary>The reference's input: the training rows then the test rows, float32 little-endian,
    /// NaN = missing.</summary>
    private static void WriteSeries(string path, float[] train, float[] test)
    {
        using var writer = new BinaryWriter(File.Create(path));
        foreach (var v in train.Concat(test)) writer.Write(v);
    }

    private static double Median(double[] values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>Windows/s of the bare network (eval, inference_mode) at batch 32 over every scoring window and at
    /// batch 1 over the first <paramref name="batch1Count"/>, and its forecast of the first window in the series'
    /// units.</summary>
    private static (double Batch32, double Batch1, float[] FirstForecast) RawNetwork(CribModel model, float[] scaled,
        int n, int rows, int batch1Count)
    {
        int lookback = model.Lookback, count = rows - lookback + 1;
        (Tensor X, Tensor Mask)[] Batches(int windows, int batchSize) =>
            Enumerable.Range(0, (windows + batchSize - 1) / batchSize).Select(b =>
            {
                int first = b * batchSize, size = Math.Min(batchSize, windows - first);
                var x = new float[size * lookback * n];
                var mask = new float[x.Length];
                for (int w = 0; w < size; w++) // windows overlap: window s reads rows s … s + L − 1
                    Array.Copy(scaled, (first + w) * n, x, w * lookback * n, lookback * n);
                for (int i = 0; i < x.Length; i++)
                {
                    bool missing = float.IsNaN(x[i]);
                    mask[i] = missing ? 0 : 1;
                    if (missing) x[i] = 0;
                }
                var shape = new long[] { size, lookback, n };
                return (tensor(x, shape), tensor(mask, shape));
            }).ToArray();

        var network = model.Network;
        network.eval();
        double Time((Tensor X, Tensor Mask)[] batches, int warmup) => NetworkThroughput(batches, warmup, network.call);

        var b32 = Batches(count, 32);
        var b1 = Batches(batch1Count, 1);
        try
        {
            var (rate32, rate1) = (Time(b32, WarmupBatches32), Time(b1, WarmupCalls1));
            using var inference = inference_mode();
            using var y = network.call(b1[0].X, b1[0].Mask);
            var first = y.data<float>().ToArray();
            model.Scaler.InverseTransformInPlace(first);
            return (rate32, rate1, first);
        }
        finally
        {
            foreach (var (x, mask) in b32.Concat(b1)) { x.Dispose(); mask.Dispose(); }
        }
    }

    /// <summary>Runs crib_reference.py on the series our child wrote and returns its RESULT JSON, or null and why
    /// not.</summary>
    private static (JsonElement? Result, string? Why) RunReference(string python, CribOptions options, string seriesFile,
        OursResult ours, int threads, int seed)
    {
        string script = Path.Combine(RepoRoot(), "bench", "reference", "crib_reference.py");
        var args = new[]
        {
            "--series", seriesFile, "--train-rows", ours.TrainRows.ToString(), "--test-rows", ours.TestRows.ToString(),
            "--variates", EttRow.Variates.Length.ToString(), "--lookback", options.Lookback.ToString(),
            "--horizon", options.Horizon.ToString(), "--patch-length", options.PatchLength.ToString(),
            "--model-width", options.ModelWidth.ToString(), "--heads", options.Heads.ToString(),
            "--layers", options.Layers.ToString(), "--dropout", F(options.Dropout, "R"),
            "--prediction-weight", F(options.PredictionWeight, "R"),
            "--consistency-weight", F(options.ConsistencyWeight, "R"),
            "--kl-weight", F(options.KlWeight, "R"), "--lr", F(options.LearningRate, "R"),
            "--batch-size", options.BatchSize.ToString(), "--epochs", options.MaxEpochs.ToString(),
            "--b1-windows", Batch1Windows.ToString(), "--threads", threads.ToString(), "--seed", seed.ToString(),
        };
        return PythonReference.Run(python, script, args, TimeSpan.FromMinutes(60));
    }

    private static string Markdown(string command, OursResult ours, JsonElement? reference, string? why, int threads,
        string loadOurs, string loadReference)
    {
        double? Ref(string key) =>
            reference is { } r && r.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number
                ? v.GetDouble() : null;
        double oursEpoch = ours.EpochSeconds.Average();
        // (metric, ours, reference, higher is better, goal on ours/reference or null for context rows)
        var rows = new (string Metric, double Ours, double? Reference, bool HigherIsBetter, double? Goal)[]
        {
            ("Training, s/epoch (training loop only)", oursEpoch, Ref("seconds_per_epoch"), false, TrainingGoal),
            ("Training, windows/s", ours.WindowsPerEpoch / oursEpoch, Ref("train_windows_per_s"), true, null),
            ("Scoring, `Transform` batch 32, windows/s (vs raw batch 32)", ours.TransformPerSecond,
                Ref("score_windows_per_s_b32"), true, ScoringGoal),
            ("Scoring, raw network batch 32, windows/s", ours.RawBatch32PerSecond, Ref("score_windows_per_s_b32"),
                true, null),
            ("Scoring, `PredictionEngine` batch 1, median ms (vs raw batch 1)", ours.EngineLatencyMs,
                Ref("latency_ms_b1_median"), false, null),
            ("Scoring, `PredictionEngine` batch 1, windows/s (vs raw batch 1)", ours.EnginePerSecond,
                Ref("score_windows_per_s_b1"), true, null),
            ("Scoring, raw network batch 1, windows/s", ours.RawBatch1PerSecond, Ref("score_windows_per_s_b1"),
                true, null),
            ("Peak RSS, MB (each side's own process)", ours.PeakMb, Ref("peak_rss_mb"), false, null),
        };
        string torchVersion = reference is { } json && json.TryGetProperty("torch", out var t)
            ? t.GetString() ?? "?" : "?";

        var md = new StringBuilder();
        md.AppendLine($"## CRIB speed: ours vs the PyTorch reference, ETTh1 point-missing 20 %, " +
                      $"{ours.TrainWindows} training windows, batch 32, {threads} threads (CPU)");
        md.AppendLine();
        md.AppendLine($"`dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- {command}`, " +
                      $"{DateTime.Now:yyyy-MM-dd HH:mm}; {Machine()}. " +
                      (reference is null ? $"PyTorch reference skipped: {why}." :
                          "Reference: `bench/reference/crib_reference.py` (module `bench/reference/modules/crib.py`) " +
                          $"in the same run, torch {torchVersion}, OPENBLAS_NUM_THREADS=1."));
        md.AppendLine();
        md.AppendLine("| Metric | Ours | PyTorch reference (same run) | Ratio ours/reference | Goal | Result |");
        md.AppendLine("|---|---:|---:|---:|---|---|");
        foreach (var (metric, value, other, higher, goal) in rows)
        {
            string format = value < 10 ? "F3" : value < 100 ? "F2" : "F0";
            double? ratio = other is { } o && o > 0 ? value / o : null;
            string goalText = goal is { } g ? (higher ? $"≥ {F(g, "F1")}×" : $"≤ {F(g, "F1")}×") : "—";
            string verdict = goal is { } g2 && ratio is { } q
                ? ((higher ? q >= g2 : q <= g2) ? "**pass**" : "**miss**") : "—";
            md.AppendLine($"| {metric} | {F(value, format)} | {(other is { } r ? F(r, format) : "—")} | " +
                          $"{(ratio is { } x ? F(x, "F2") + "×" : "—")} | {goalText} | {verdict} |");
        }
        md.AppendLine();
        md.AppendLine("Ratios are ours / reference: for s/epoch, milliseconds and MB lower is better, for windows/s " +
            "higher. Both sides: the CRIB protocol's windows (one 20 % point mask, seed of the run, one global " +
            "scaler) with the model's per-variate z-score on top, exactly as our model scales them (our child process " +
            "writes them, the reference reads them); CribOptions' defaults (patch 8, D 32, 4 heads, 3 layers, dropout " +
            "0.1), Adam 1e-3, batch 32, shuffled, last partial batch dropped; loss = masked L1 + consistency + " +
            "1e-6·KL, two encoder passes per step. Training counts the training loop only " +
            $"({ours.WindowsPerEpoch} windows per epoch, mean of {ours.EpochSeconds.Length} epoch(s)). `Transform` " +
            $"scores the {ours.ScoringWindows} window rows of `CreateWindows(test, includeTargets: false)` " +
            "(ScoringBatchSize 32, every `Forecast` read, after a warm-up pass); the reference times its bare module " +
            $"over the same windows after {WarmupBatches32} warm-up batches. Batch 1: the first {ours.Batch1Count} " +
            $"test windows after {WarmupCalls1} warm-up calls; the median is of per-call times, windows/s of the " +
            "whole loop (so it shows stalls the median hides). The `Transform` and `PredictionEngine` rows include " +
            "the ML.NET data path (reading, scaling, masks, copying in and out); the raw rows time our bare network " +
            "on tensors built in advance, as the reference does (their first forecast agrees with the " +
            $"PredictionEngine's within {ours.RawVersusEngine:G2}). Peak RSS: `Process.PeakWorkingSet64` (VmHWM) of " +
            "our child process vs the reference's `ru_maxrss` (started through `/bin/sh`, so it does not inherit " +
            "this process's peak).");
        md.AppendLine();
        md.AppendLine($"Our epochs: {string.Join(", ", ours.EpochSeconds.Select(s => F(s, "F2") + " s"))}" +
            (reference is { } r2 && r2.TryGetProperty("epoch_seconds", out var epochs)
                ? "; reference epochs: " +
                  string.Join(", ", epochs.EnumerateArray().Select(e => F(e.GetDouble(), "F2") + " s"))
                : "") +
            $". Parameters: ours {ours.Parameters}" + (Ref("params") is { } p ? $", reference {p:F0}" : "") +
            $". Our peak RSS after training {F(ours.PeakAfterTrainingMb, "F0")} MB. Contention check (timings mean " +
            $"something only on an otherwise idle machine): 1/5/15-min load average {loadOurs} before ours and " +
            $"{loadReference} before the reference; our training kept {F(ours.CoresBusy, "F2")} cores busy " +
            $"(about {threads} when nothing else competes).");
        return md.ToString();
    }
}
