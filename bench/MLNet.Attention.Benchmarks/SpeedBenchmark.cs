using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Runtime;
using TorchSharp;
using static MLNet.Attention.Benchmarks.Bench;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// Training and scoring throughput and peak memory in one process, next to the PyTorch reference
/// (bench/reference/itransformer_reference.py) run right after as a child process on the same machine.
/// </summary>
public static class SpeedBenchmark
{
    private const int WarmupBatches32 = 5, WarmupBatches1 = 50, Batch1Windows = 1000; // as the reference

    public sealed class WindowInput
    {
        public float[] Lookback { get; set; } = Array.Empty<float>();
        public DateTime Timestamp { get; set; }
    }

    public sealed class WindowOutput
    {
        public float[] Forecast { get; set; } = Array.Empty<float>();
    }

    public static int Run(CommandLine options)
    {
        string dataset = options.Get("dataset", "ETTh1");
        int horizon = options.Int("horizon", 96), threads = options.Int("threads", 2), seed = options.Int("seed", 2023);
        string dataDir = DataDir(options), outPath = OutPath(options), python = options.Get("python", "/usr/bin/python3");
        if (!new[] { "ETTh1", "ETTh2", "ETTm1" }.Contains(dataset)) throw new UsageException($"Unknown dataset '{dataset}'.");
        if (!File.Exists(DataFile(dataDir, dataset)))
        {
            Console.WriteLine($"Speed benchmark skipped: {DataFile(dataDir, dataset)} not found (pass --data-dir DIR holding {dataset}.csv.gz).");
            return 0;
        }
        int width = ModelWidth(dataset, horizon);
        string command = $"speed --dataset {dataset} --horizon {horizon} --threads {threads}";
        Console.WriteLine($"{command}: lookback {Lookback}, D = d_ff = {width}, batch 32, {threads} libtorch threads");
        TorchRuntime.SetThreads(threads);

        var ml = new MLContext(seed);
        string csv = Decompress(DataFile(dataDir, dataset));
        var data = Load(ml, csv);
        var split = ForecastSplit.Ett(rowsPerHour: RowsPerHour(dataset));
        var (train, validation, test) = split.Apply(ml, data, Lookback);

        // (a) training: 2 full epochs, no early stopping; the epoch reports time the training loop only (no validation).
        var trainerOptions = PaperOptions(dataset, horizon, seed, validation);
        trainerOptions.MaxEpochs = 2;
        trainerOptions.EarlyStoppingPatience = null;
        trainerOptions.NumberOfThreads = threads;
        trainerOptions.ScoringBatchSize = 32; // Transform scores 32 windows per forward pass, like the reference's batch-32 timing
        trainerOptions.EpochCallback = e => Console.WriteLine($"  {e}");
        string loadBefore = LoadAverage();
        using var self = Process.GetCurrentProcess();
        var (cpu0, wall0) = (self.TotalProcessorTime, Stopwatch.StartNew());
        using var model = ml.Forecasting.Trainers.InvertedTransformer(trainerOptions).Fit(train);
        self.Refresh();
        double coresBusy = (self.TotalProcessorTime - cpu0).TotalSeconds / wall0.Elapsed.TotalSeconds;
        double peakAfterTrainingMb = self.PeakWorkingSet64 / (1024.0 * 1024.0);
        int trainWindows = split.TrainEnd - Lookback - horizon + 1, windowsPerEpoch = trainWindows / 32 * 32; // drop_last
        var secondsPerEpoch = model.TrainingSummary!.Epochs.Select(e => windowsPerEpoch / e.TrainRowsPerSecond).ToArray();
        double trainSeconds = secondsPerEpoch.Average(), trainRate = windowsPerEpoch / trainSeconds;
        Console.WriteLine($"(a) training: {F(trainRate, "F0")} windows/s, {F(trainSeconds, "F2")} s/epoch (epochs: {string.Join(", ", secondsPerEpoch.Select(s => F(s, "F2")))} s), {F(coresBusy, "F2")} cores busy, load average {loadBefore}, peak working set {F(peakAfterTrainingMb, "F0")} MB");

        // (b) Transform over the test windows (no targets), every Forecast value read.
        var windows = model.CreateWindows(ml, test, includeTargets: false);
        Consume(model.Transform(windows)); // warm-up pass
        var clock = Stopwatch.StartNew();
        int transformed = Consume(model.Transform(windows));
        double transformRate = transformed / clock.Elapsed.TotalSeconds;
        Console.WriteLine($"(b) Transform, batch 32: {transformed} windows, {F(transformRate, "F0")} windows/s");

        // The test series itself, for (c) and (d): original values, timestamps, scaled values and calendar covariates.
        var rows = ml.Data.CreateEnumerable<EttRow>(data, reuseRowObject: false).Take(split.TestEnd).ToArray();
        int n = EttRow.Variates.Length;
        var values = rows.SelectMany(r => new[] { r.HUFL, r.HULL, r.MUFL, r.MULL, r.LUFL, r.LULL, r.OT }).ToArray();
        var dates = rows.Select(r => ParseDate(r.Date)).ToArray();
        int firstStart = split.ValidationEnd - Lookback, testWindows = split.TestEnd - firstStart - Lookback - horizon + 1;

        // (c) PredictionEngine, one window at a time (windows built in advance).
        var inputs = Enumerable.Range(firstStart, Math.Min(Batch1Windows, testWindows)).Select(s => new WindowInput
        {
            Lookback = values.AsSpan(s * n, Lookback * n).ToArray(),
            Timestamp = dates[s + Lookback - 1],
        }).ToArray();
        var inputDefinition = SchemaDefinition.Create(typeof(WindowInput));
        inputDefinition[nameof(WindowInput.Lookback)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, Lookback, n);
        var outputDefinition = SchemaDefinition.Create(typeof(WindowOutput), SchemaDefinition.Direction.Write);
        outputDefinition[nameof(WindowOutput.Forecast)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, horizon, n);
        var engine = ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(model, inputSchemaDefinition: inputDefinition, outputSchemaDefinition: outputDefinition);
        foreach (var input in inputs.Take(WarmupBatches1)) engine.Predict(input);
        clock.Restart();
        float checksum = 0;
        foreach (var input in inputs) checksum += engine.Predict(input).Forecast[^1];
        double engineRate = inputs.Length / clock.Elapsed.TotalSeconds;
        Console.WriteLine($"(c) PredictionEngine, batch 1: {inputs.Length} windows, {F(engineRate, "F0")} windows/s");

        // (d) the raw TorchSharp module: eval + inference_mode on scaled windows and covariates prepared in advance.
        var (raw32, raw1, firstForecast) = RawModule(model, values, dates, split.TrainEnd, firstStart, testWindows);
        double disagreement = engine.Predict(inputs[0]).Forecast.Zip(firstForecast, (a, b) => Math.Abs(a - b)).Max();
        Console.WriteLine($"(d) raw module: batch 32 {F(raw32, "F0")} windows/s ({testWindows} windows), batch 1 {F(raw1, "F0")} windows/s ({Math.Min(Batch1Windows, testWindows)} windows); " +
                          $"first forecast differs from the PredictionEngine's by at most {disagreement:G2} (original units)");

        // (e) peak memory of this process so far.
        self.Refresh();
        double peakMb = self.PeakWorkingSet64 / (1024.0 * 1024.0);
        Console.WriteLine($"(e) peak working set: {F(peakMb, "F0")} MB");
        engine.Dispose();

        // (f) the PyTorch reference, same machine, same run, after ours (never concurrently).
        string loadReference = LoadAverage();
        var (reference, why) = RunReference(python, dataset, horizon, width, threads, dataDir);
        if (reference is null) Console.WriteLine($"(f) PyTorch reference skipped: {why}");
        else Console.WriteLine($"(f) PyTorch reference (torch {reference.Value.GetProperty("torch").GetString()}): done");

        double? Ref(string key) => reference is { } r && r.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
        double engineMs = 1000 / engineRate;
        double? referenceMs = Ref("score_windows_per_s_b1") is { } b1 ? 1000 / b1 : null;
        // Issue 9 §4 goals: training ≤ 0.6× PyTorch's time (0.8× at the least), Transform ≥ 1.5× its batch-32
        // throughput, a single-window PredictionEngine call ≤ 0.4 ms, peak memory ≤ PyTorch's.
        var table = new (string Metric, double Ours, double? Reference, bool HigherIsBetter, string Goal, bool? Met)[]
        {
            ("Training, s/epoch (training loop only)", trainSeconds, Ref("seconds_per_epoch"), false, "≤ 0.6× (0.8× at least)",
                Ref("seconds_per_epoch") is { } e ? trainSeconds <= 0.6 * e : null),
            ("Training, windows/s (2 epochs; reference 1 epoch)", trainRate, Ref("train_windows_per_s"), true, "", null),
            ("Scoring, `Transform` batch 32, windows/s", transformRate, Ref("score_windows_per_s_b32"), true, "≥ 1.5×",
                Ref("score_windows_per_s_b32") is { } t ? transformRate >= 1.5 * t : null),
            ("Scoring, raw module batch 32, windows/s", raw32, Ref("score_windows_per_s_b32"), true, "", null),
            ("Scoring, `PredictionEngine` batch 1, ms per window", engineMs, referenceMs, false, "≤ 0.4 ms", engineMs <= 0.4),
            ("Scoring, raw module batch 1, windows/s", raw1, Ref("score_windows_per_s_b1"), true, "", null),
            ("Peak memory, MB (working set / max RSS)", peakMb, Ref("peak_rss_mb"), false, "≤ 1×",
                Ref("peak_rss_mb") is { } p ? peakMb <= p : null),
        };

        var md = new StringBuilder();
        md.AppendLine($"## Speed: {dataset} {Lookback}→{horizon}, D = d_ff = {width}, batch 32, {threads} threads (CPU)");
        md.AppendLine();
        md.AppendLine($"`dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- {command}`, {DateTime.Now:yyyy-MM-dd HH:mm}; {Machine()}. " +
                      (reference is null ? $"PyTorch reference skipped: {why}." :
                          $"Reference: `bench/reference/itransformer_reference.py --speed-only` in the same run (torch {reference.Value.GetProperty("torch").GetString()}, {PythonReference.RunEnvironment})."));
        md.AppendLine();
        md.AppendLine("| Metric | Ours | PyTorch reference (same run) | Ratio ours/reference | Goal | Met |");
        md.AppendLine("|---|---:|---:|---:|---|:---:|");
        foreach (var (metric, ours, reference_, higher, goal, met) in table)
        {
            string format = ours < 10 ? "F3" : ours < 100 ? "F2" : "F0";
            md.AppendLine($"| {metric} | {F(ours, format)} | {(reference_ is { } r ? F(r, format) : "—")} | {Ratio(ours, reference_, higher)} | " +
                          $"{goal} | {(met is null ? "" : met.Value ? "yes" : "no")} |");
        }
        md.AppendLine();
        md.AppendLine("Ratios are ours / other: for throughput (windows/s) > 1 means we are faster; for s/epoch and memory < 1 means we are " +
                      "faster / smaller. Training counts the training loop only (batch gathering included, validation excluded), " +
                      $"{windowsPerEpoch} windows per epoch; ours is the mean of 2 epochs, the reference's one epoch. " +
                      $"`Transform` scores the {transformed} test windows of `CreateWindows(test, includeTargets: false)` (model scoring batch 32, " +
                      $"every `Forecast` read, after a warm-up pass); the `PredictionEngine` and raw batch-1 rows time the first {inputs.Length} test windows " +
                      $"after {WarmupBatches1} warm-up calls; raw batch 32 times all {testWindows} test windows after {WarmupBatches32} warm-up batches " +
                      "(as the reference). The `Transform`/`PredictionEngine` rows include the ML.NET data path (scaling, calendar features, " +
                      "copying in and out) and are compared with the reference's raw module. Peak memory: `Process.PeakWorkingSet64` of the whole " +
                      "benchmark process (training and scoring) vs the reference's `ru_maxrss` (the reference is started through `/bin/sh`, " +
                      "because Linux carries the parent's peak RSS into a directly started child's `ru_maxrss`).");
        md.AppendLine();
        md.AppendLine($"Our peak working set was {F(peakAfterTrainingMb, "F0")} MB after training. Our epochs: {string.Join(", ", secondsPerEpoch.Select(s => F(s, "F2") + " s"))}" +
                      (reference is { } json && json.TryGetProperty("epoch_seconds", out var epochs) ? $"; reference epoch: {string.Join(", ", epochs.EnumerateArray().Select(e => F(e.GetDouble(), "F2") + " s"))}" : "") +
                      $". Contention check (timings are only meaningful on an otherwise idle machine): 1/5/15-min load average {loadBefore} before our " +
                      $"training and {loadReference} before the reference; our process kept {F(coresBusy, "F2")} cores busy during training " +
                      $"(about {threads} when nothing else competes for the CPU).");
        WriteSection(outPath, "speed", md.ToString());
        Console.WriteLine();
        Console.WriteLine(md.ToString());
        Console.WriteLine($"Wrote {outPath} (checksum {checksum:G4})");
        CleanUp();
        return 0;
    }

    private static string Ratio(double ours, double? other, bool higherIsBetter) =>
        other is { } o && o > 0 ? F(ours / o, "F2") + (higherIsBetter ? (ours >= o ? " (faster)" : " (slower)") : (ours <= o ? " (better)" : " (worse)")) : "—";

    /// <summary>The 1/5/15-minute load average, as a contention check next to timings.</summary>
    internal static string LoadAverage()
    {
        try { return string.Join(" / ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "n/a"; }
    }

    /// <summary>Reads every Forecast of a scored view (so lazy scoring really runs) and returns the row count.</summary>
    internal static int Consume(IDataView scored) => scored.GetColumn<float[]>("Forecast").Count();

    /// <summary>Windows/s of the bare network at batch 32 and 1, and its forecast of the first window in original units (a consistency check).</summary>
    private static (double Batch32, double Batch1, float[] FirstForecast) RawModule(InvertedTransformerModel model, float[] values, DateTime[] dates,
        int trainEnd, int firstStart, int windowCount)
    {
        int n = EttRow.Variates.Length, m = 4;
        // Train-only z-score (population std), as the model's scaler, and the hourly calendar features (timeF, freq 'h').
        var mean = new double[n];
        var std = new double[n];
        for (int v = 0; v < n; v++)
        {
            for (int t = 0; t < trainEnd; t++) mean[v] += values[t * n + v];
            mean[v] /= trainEnd;
            for (int t = 0; t < trainEnd; t++) std[v] += Math.Pow(values[t * n + v] - mean[v], 2);
            std[v] = Math.Sqrt(std[v] / trainEnd);
        }
        var scaled = values.Select((x, i) => (float)((x - mean[i % n]) / std[i % n])).ToArray();
        var marks = dates.SelectMany(d => new[]
        {
            (float)(d.Hour / 23.0 - 0.5), (float)(((int)d.DayOfWeek + 6) % 7 / 6.0 - 0.5),
            (float)((d.Day - 1) / 30.0 - 0.5), (float)((d.DayOfYear - 1) / 365.0 - 0.5),
        }).ToArray();

        (Tensor X, Tensor C)[] Batches(int count, int batchSize) => Enumerable.Range(0, (count + batchSize - 1) / batchSize).Select(b =>
        {
            int start = firstStart + b * batchSize, size = Math.Min(batchSize, count - b * batchSize);
            var x = new float[size * Lookback * n];
            var c = new float[size * Lookback * m];
            for (int w = 0; w < size; w++)
            {
                Array.Copy(scaled, (start + w) * n, x, w * Lookback * n, Lookback * n);
                Array.Copy(marks, (start + w) * m, c, w * Lookback * m, Lookback * m);
            }
            return (tensor(x, new long[] { size, Lookback, n }), tensor(c, new long[] { size, Lookback, m }));
        }).ToArray();

        var network = model.Network;
        network.eval();
        double Time((Tensor X, Tensor C)[] batches, int warmup) => NetworkThroughput(batches, warmup, network.call);

        var b32 = Batches(windowCount, 32);
        var b1 = Batches(Math.Min(Batch1Windows, windowCount), 1);
        try
        {
            var (rate32, rate1) = (Time(b32, WarmupBatches32), Time(b1, WarmupBatches1));
            using var inference = inference_mode();
            using var y = network.call(b1[0].X, b1[0].C);
            var first = y.data<float>().ToArray().Select((v, i) => (float)(v * std[i % n] + mean[i % n])).ToArray();
            return (rate32, rate1, first);
        }
        finally
        {
            foreach (var (x, c) in b32.Concat(b1)) { x.Dispose(); c.Dispose(); }
        }
    }

    /// <summary>Runs the reference with --speed-only and returns its RESULT JSON, or null and the reason it was skipped.</summary>
    private static (JsonElement? Result, string? Why) RunReference(string python, string dataset, int horizon, int width, int threads, string dataDir)
    {
        string script = Path.Combine(RepoRoot(), "bench", "reference", "itransformer_reference.py");
        var args = new[] { "--speed-only", "--data", dataset, "--horizon", horizon.ToString(), "--d-model", width.ToString(),
            "--d-ff", width.ToString(), "--threads", threads.ToString(), "--data-dir", dataDir };
        return PythonReference.Run(python, script, args, TimeSpan.FromMinutes(30));
    }
}
