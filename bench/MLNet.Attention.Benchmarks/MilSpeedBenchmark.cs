using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.MultipleInstance;
using static MLNet.Attention.Benchmarks.Bench;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// `mil-speed`: gated-attention MIL speed and memory against PyTorch (bench/reference/mil_speed.py) in the same run,
/// on the same shapes: training bags/s on a cohort of 1024-d bags (one bag per step, AdamW), then the eval forward of
/// one bag of 10k / 50k / 100k instances through the public API (<c>model.Transform</c> on a one-bag view), peak RSS
/// (VmHWM) after each phase.
/// </summary>
internal static class MilSpeedBenchmark
{
    private sealed class BagRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public bool Label { get; set; }
    }

    public static int Run(CommandLine options)
    {
        int features = options.Int("features", 1024), inner = options.Int("inner", 256), bags = options.Int("bags", 100);
        int epochs = options.Int("epochs", 2), threads = options.Int("threads", 2);
        var forwardSizes = options.Ints("forward", "10000,50000,100000");
        var random = new Random(1);
        var sizes = Enumerable.Range(0, bags).Select(_ => random.Next(500, 1500)).ToArray();
        string python = options.Get("python", "/usr/bin/python3");

        // A slide's bag as a CLAM-style .h5 file (the largest forward size), read by both sides: ours through
        // LoadFeatureBags → Transform, PyTorch through h5py → torch.from_numpy → the model.
        int h5Instances = forwardSizes.Max();
        string h5Path = Path.Combine(Path.GetTempPath(), $"mil-speed-{Environment.ProcessId}.h5");
        FeatureFile.Write(h5Path, Normal(h5Instances * features, random), features);

        // The reference first (its own process), so our peak memory is not mixed into its numbers.
        var (reference, why) = PythonReference.Run(python, Path.Combine(RepoRoot(), "bench", "reference", "mil_speed.py"), new[]
        {
            "--sizes", string.Join(",", sizes), "--features", features.ToString(), "--inner", inner.ToString(),
            "--epochs", epochs.ToString(), "--threads", threads.ToString(), "--forward", string.Join(",", forwardSizes),
            "--h5", h5Path,
        }, TimeSpan.FromMinutes(30));
        if (reference is null) Console.WriteLine($"PyTorch reference skipped: {why}");

        var ml = new MLContext(seed: 1);
        var rows = sizes.Select((n, i) => new BagRow { Features = Normal(n * features, random), Label = i % 2 == 0 }).ToArray();
        var cohort = ml.Data.LoadFromEnumerable(rows);
        var epochSeconds = new List<double>();
        var clock = Stopwatch.StartNew();
        var trainer = ml.BinaryClassification.Trainers.AttentionMil(new AttentionMilOptions
        {
            InstanceSize = features,
            InnerSize = inner,
            MaxEpochs = epochs,
            LearningRate = 2e-4,
            ValidationFraction = 0,
            EarlyStoppingPatience = null,
            StandardizeFeatures = false,   // the reference has none
            NumberOfThreads = threads,
            Seed = 1,
            EpochCallback = _ => { epochSeconds.Add(clock.Elapsed.TotalSeconds); clock.Restart(); },
        });
        using var model = trainer.Fit(cohort);
        double trainPeak = Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;
        double oursBagsPerSecond = bags / epochSeconds[^1];
        rows = Array.Empty<BagRow>();
        cohort = null!;
        GC.Collect();

        var forward = new List<(int N, double Seconds, double PeakMb)>();
        var networkOnly = new List<double>();
        foreach (int n in forwardSizes)
        {
            var one = ml.Data.LoadFromEnumerable(new[] { new BagRow { Features = Normal(n * features, random) } });
            double Time()
            {
                GC.Collect();   // the previous call's 400 MB staging is garbage: measure one call's peak, not four
                var start = Stopwatch.StartNew();
                float score = model.Transform(one).GetColumn<float>("Score").First();
                if (!float.IsFinite(score)) throw new InvalidOperationException("non-finite score");
                return start.Elapsed.TotalSeconds;
            }
            Time();   // warm-up
            double best = Enumerable.Range(0, 3).Min(_ => Time());
            forward.Add((n, best, Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0));
            // Where the time goes: the network alone on a ready tensor (no IDataView, no staging).
            using (var scope = TorchSharp.torch.NewDisposeScope())
            using (TorchSharp.torch.inference_mode())
            {
                var x = TorchSharp.torch.randn(1, n, features);
                var mask = TorchSharp.torch.ones(new long[] { 1, n }, TorchSharp.torch.ScalarType.Bool);
                model.Network.eval();
                model.Network.Run(x, mask);
                var start = Stopwatch.StartNew();
                for (int i = 0; i < 3; i++) model.Network.Run(x, mask);
                networkOnly.Add(start.Elapsed.TotalSeconds / 3);
            }
            one = null!;
            GC.Collect();
        }

        // The .h5 route: file → the getter's buffer (one copy, as h5py's read) → the network reads it in place.
        var slide = ml.Data.LoadFeatureBags(new[] { h5Path });
        double H5Time()
        {
            GC.Collect();
            var start = Stopwatch.StartNew();
            float score = model.Transform(slide).GetColumn<float>("Score").First();
            if (!float.IsFinite(score)) throw new InvalidOperationException("non-finite score");
            return start.Elapsed.TotalSeconds;
        }
        H5Time();
        double h5Seconds = Enumerable.Range(0, 3).Min(_ => H5Time());
        double h5Peak = Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;
        File.Delete(h5Path);

        var table = new StringBuilder();
        table.AppendLine("| measure | MLNet.Attention | PyTorch | ratio |");
        table.AppendLine("|---|---|---|---|");
        double? refBags = reference?.GetProperty("bags_per_second").GetDouble();
        table.AppendLine($"| training, bags/s (epoch {epochs}) | {F(oursBagsPerSecond, "F2")} | {(refBags is { } b ? F(b, "F2") : "—")} | " +
                         $"{(refBags is { } rb ? F(oursBagsPerSecond / rb, "F2") + "× PyTorch's throughput" : "—")} |");
        double? refTrainRss = reference?.GetProperty("train_peak_rss_mb").GetDouble();
        table.AppendLine($"| peak RSS after training, MB | {F(trainPeak, "F0")} | {(refTrainRss is { } r ? F(r, "F0") : "—")} | " +
                         $"{(refTrainRss is { } rr ? F(trainPeak / rr, "F2") + "×" : "—")} |");
        for (int f = 0; f < forward.Count; f++)
        {
            var (n, seconds, peak) = forward[f];
            JsonElement? entry = reference?.GetProperty("forward").TryGetProperty(n.ToString(), out var e) == true ? e : null;
            double? refSeconds = entry?.GetProperty("seconds").GetDouble();
            double? refPeak = entry?.GetProperty("peak_rss_mb").GetDouble();
            table.AppendLine($"| forward of one {n:N0}-instance bag ({features}-d), s | {F(seconds, "F3")} | " +
                             $"{(refSeconds is { } s ? F(s, "F3") : "—")} | {(refSeconds is { } rs ? F(rs / seconds, "F2") + "× PyTorch's speed" : "—")} |");
            table.AppendLine($"| of which the network alone (a ready tensor), s | {F(networkOnly[f], "F3")} | | " +
                             $"{(refSeconds is { } rn ? F(rn / networkOnly[f], "F2") + "×" : "—")} |");
            table.AppendLine($"| peak RSS after the {n:N0} forward, MB | {F(peak, "F0")} | {(refPeak is { } p ? F(p, "F0") : "—")} | " +
                             $"{(refPeak is { } rp ? F(peak / rp, "F2") + "×" : "—")} |");
        }
        JsonElement? h5Entry = reference?.TryGetProperty("h5", out var h5e) == true && h5e.ValueKind == JsonValueKind.Object
            ? h5e : null;
        double? refH5 = h5Entry?.GetProperty("seconds").GetDouble();
        double? refH5Peak = h5Entry?.GetProperty("peak_rss_mb").GetDouble();
        table.AppendLine($"| read a {h5Instances:N0}-instance .h5 bag + forward, s | {F(h5Seconds, "F3")} | " +
                         $"{(refH5 is { } h ? F(h, "F3") : "—")} | {(refH5 is { } rh ? F(rh / h5Seconds, "F2") + "× PyTorch's speed" : "—")} |");
        table.AppendLine($"| peak RSS after the .h5 route, MB | {F(h5Peak, "F0")} | {(refH5Peak is { } hp ? F(hp, "F0") : "—")} | " +
                         $"{(refH5Peak is { } rhp ? F(h5Peak / rhp, "F2") + "×" : "—")} |");
        string content = $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Machine()}, {threads} threads; gated-attention MIL " +
                         $"{features} → {inner} → attention 128 → 2 classes; {bags} training bags of 500–1,500 instances, one bag per " +
                         $"step, AdamW; ours through the public API (LoadFromEnumerable → AttentionMil → Transform; the .h5 row: LoadFeatureBags → " +
                         "Transform vs h5py → torch.from_numpy → model). PyTorch " +
                         $"{reference?.GetProperty("torch").GetString() ?? "(skipped)"}, {PythonReference.RunEnvironment}. Command: " +
                         "`dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- mil-speed`.\n\n" + table;
        Console.WriteLine(content);
        if (options.Get("out") is not null || options.Get("write") is not null) WriteSection(OutPath(options), "mil-speed", content);
        return 0;
    }

    private static float[] Normal(int count, Random random)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }
}
