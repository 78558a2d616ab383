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
/// on the same shapes. Every phase runs in a fresh process on both sides, so each peak RSS (VmHWM / ru_maxrss) counts
/// that phase only: training bags/s on a cohort of 1024-d bags held in memory and on the same cohort as one .h5 file
/// per bag (one bag per step, AdamW), the eval forward of one bag of 10k / 50k / 100k instances through the public API
/// (<c>model.Transform</c> on a one-bag view), and a 100k-instance bag read from an .h5 file + the forward.
/// <c>MIL_SPEED_TRACE=1</c> prints each phase's RSS, GC heap and allocations per stage to stderr.
/// </summary>
internal static class MilSpeedBenchmark
{
    private sealed class BagRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public bool Label { get; set; }
    }

    private sealed record Phase(string Name, string Title, int Instances = 0);

    public static int Run(CommandLine options)
    {
        if (options.Get("phase") is { } phase) return RunPhase(phase, options);
        int features = options.Int("features", 1024), inner = options.Int("inner", 256), bags = options.Int("bags", 100);
        int epochs = options.Int("epochs", 2), threads = options.Int("threads", 2);
        var forwardSizes = options.Ints("forward", "10000,50000,100000");
        string python = options.Get("python", "/usr/bin/python3");
        var sizes = CohortSizes(bags);

        // The cohort as CLAM-style files (one .h5 per bag, written bag by bag) and a slide's bag of the largest forward
        // size (written in chunks), so no phase starts with a cohort already in memory.
        string work = Path.Combine(Path.GetTempPath(), $"mil-speed-{Environment.ProcessId}");
        Directory.CreateDirectory(work);
        try
        {
            var random = new Random(2);
            var csv = new List<string> { "case_id,slide_id,label" };
            var files = new List<string>();
            for (int b = 0; b < bags; b++)
            {
                string file = Path.Combine(work, $"slide{b}.h5");
                FeatureFile.Write(file, Normal(sizes[b] * features, random), features);
                csv.Add($"case{b},slide{b},{(b % 2 == 0 ? "positive" : "negative")}");
                files.Add(file);
            }
            File.WriteAllLines(Path.Combine(work, "cohort.csv"), csv);
            File.WriteAllLines(Path.Combine(work, "files.txt"), files);
            int h5Instances = forwardSizes.Max();
            string h5Path = Path.Combine(work, "slide.h5");
            using (var writer = new FeatureFileWriter(h5Path, features, withCoordinates: false))
            {
                for (int start = 0; start < h5Instances; start += 1000)
                    writer.Append(Normal(Math.Min(1000, h5Instances - start) * features, random), ReadOnlySpan<long>.Empty);
                writer.Complete();
            }

            var phases = new List<Phase>
            {
                new("train-memory", "training from memory (LoadFromEnumerable vs a list of tensors)"),
                new("train-files", $"training from {bags} .h5 files, read at each step (LoadFeatureBags vs h5py)"),
            };
            phases.AddRange(forwardSizes.Select(n => new Phase("forward", $"forward of one {n:N0}-instance bag ({features}-d)", n)));
            phases.Add(new("h5", $"read a {h5Instances:N0}-instance .h5 bag + forward (LoadFeatureBags vs h5py → from_numpy)", h5Instances));

            if (options.Get("phases") is { } only)   // e.g. --phases train-files,h5
            {
                var names = only.Split(',', StringSplitOptions.TrimEntries).ToList();
                // The forward phases score the model that train-memory saves.
                if (names.Any(n => n is "forward" or "h5")) names.Add("train-memory");
                phases = phases.Where(p => names.Contains(p.Name)).ToList();
            }
            string model = Path.Combine(work, "model.zip");
            var ours = new List<JsonElement>();
            var reference = new List<JsonElement?>();
            string? why = null;
            foreach (var p in phases)
            {
                // Ours first: the forward phases load the model the memory-training phase saved.
                string result = Path.Combine(work, $"{p.Name}-{p.Instances}.json");
                int exit = RunSelf("mil-speed", options, new[] { "phase", "phases", "out", "write", "result-out", "n", "work", "model" },
                    "--phase", p.Name, "--n", p.Instances.ToString(), "--work", work, "--model", model, "--result-out", result);
                if (exit != 0 || !File.Exists(result))
                    throw new InvalidOperationException($"mil-speed phase {p.Name} failed in its child process (exit code {exit}).");
                ours.Add(JsonDocument.Parse(File.ReadAllText(result)).RootElement.Clone());

                var args = new List<string>
                {
                    "--phase", p.Name, "--features", features.ToString(), "--inner", inner.ToString(),
                    "--epochs", epochs.ToString(), "--threads", threads.ToString(),
                };
                if (p.Name == "train-memory") args.AddRange(new[] { "--sizes", string.Join(",", sizes) });
                if (p.Name == "train-files") args.AddRange(new[] { "--files", Path.Combine(work, "files.txt") });
                if (p.Name == "forward") args.AddRange(new[] { "--n", p.Instances.ToString() });
                if (p.Name == "h5") args.AddRange(new[] { "--h5", h5Path });
                var (r, w) = why is null
                    ? PythonReference.Run(python, Path.Combine(RepoRoot(), "bench", "reference", "mil_speed.py"), args.ToArray(),
                        TimeSpan.FromMinutes(30))
                    : (null, why);
                if (r is null && why is null) Console.WriteLine($"PyTorch reference skipped: {why = w}");
                reference.Add(r);
            }

            string content = Markdown(phases, ours, reference, features, inner, bags, threads, epochs);
            Console.WriteLine(content);
            if (options.Get("out") is not null || options.Get("write") is not null) WriteSection(OutPath(options), "mil-speed", content);
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static string Markdown(List<Phase> phases, List<JsonElement> ours, List<JsonElement?> reference, int features,
        int inner, int bags, int threads, int epochs)
    {
        var table = new StringBuilder();
        table.AppendLine("| phase (each in a fresh process) | measure | MLNet.Attention | PyTorch | ratio |");
        table.AppendLine("|---|---|---|---|---|");
        string? torchVersion = null;
        for (int i = 0; i < phases.Count; i++)
        {
            var (o, r) = (ours[i], reference[i]);
            torchVersion ??= r?.GetProperty("torch").GetString();
            double? Ref(string name) => r?.GetProperty(name).GetDouble();
            if (phases[i].Name.StartsWith("train", StringComparison.Ordinal))
            {
                double bps = o.GetProperty("bags_per_second").GetDouble();
                table.AppendLine($"| {phases[i].Title} | bags/s (epoch {epochs}) | {F(bps, "F2")} | {Opt(Ref("bags_per_second"), "F2")} | " +
                                 $"{(Ref("bags_per_second") is { } rb ? F(bps / rb, "F2") + "× PyTorch's throughput" : "—")} |");
            }
            else
            {
                double s = o.GetProperty("seconds").GetDouble();
                table.AppendLine($"| {phases[i].Title} | seconds | {F(s, "F3")} | {Opt(Ref("seconds"), "F3")} | " +
                                 $"{(Ref("seconds") is { } rs ? F(rs / s, "F2") + "× PyTorch's speed" : "—")} |");
                if (o.TryGetProperty("network_seconds", out var net))
                    table.AppendLine($"| | of which the network alone (a ready tensor), s | {F(net.GetDouble(), "F3")} | | |");
            }
            double peak = o.GetProperty("peak_rss_mb").GetDouble();
            table.AppendLine($"| | peak RSS, MB | {F(peak, "F0")} | {Opt(Ref("peak_rss_mb"), "F0")} | " +
                             $"{(Ref("peak_rss_mb") is { } rp ? F(peak / rp, "F2") + "×" : "—")} |");
        }
        return "## Whole-slide MIL: speed and memory against PyTorch\n\n" +
               $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Machine()}, {threads} threads; gated-attention MIL " +
               $"{features} → {inner} → attention 128 → 2 classes; {bags} training bags of 500–1,500 instances, one bag per " +
               "step, AdamW; ours through the public API (LoadFromEnumerable or LoadFeatureBags → AttentionMil → " +
               "Model.Save; the forward phases Model.Load → Transform). Each phase on each side runs in its own process, so " +
               $"its peak RSS counts that phase only. PyTorch {torchVersion ?? "(skipped)"}, {PythonReference.RunEnvironment}. " +
               "Command: `dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- mil-speed`.\n\n" + table +
               "\nWhere the memory goes (`MIL_SPEED_TRACE=1` prints RSS, GC heap and allocations per stage of each phase):\n" +
               "- *Training from .h5 files* is the whole-slide route (CLAM trains from feature files too): `LoadFeatureBags` " +
               "shuffles the cohort by its own cursor (a full permutation, reproducible from the seed), so one bag is in " +
               "memory at a time and no shuffle pool is needed.\n" +
               "- *Training from memory* also holds the shuffle pool: `LoadFromEnumerable` cannot be read in a random order, " +
               "so the trainer shuffles through a pool of `ShufflePoolSize` bags (64 for MIL), a second copy of up to 64 " +
               "bags, and its reads leave bag-sized garbage that the GC collects late. Lower `ShufflePoolSize` to trade " +
               "shuffle quality for memory, or write the bags to .h5 files (`FeatureFileWriter`) and train from those.\n" +
               "- *The forward of an in-memory bag* holds the caller's array and the copy that ML.NET's `LoadFromEnumerable` " +
               "getter makes of it (the IDataView contract copies a row into the reader's buffer); the network then reads " +
               "that buffer in place (`torch.frombuffer`) and frees each activation as soon as it is used. From an .h5 file " +
               "the bag is read once, straight into that buffer, as h5py reads it into a NumPy array.\n";
    }

    private static string Opt(double? value, string format) => value is { } v ? F(v, format) : "—";

    // One phase of our side, in this (fresh) process; writes its result JSON to --result-out.
    private static int RunPhase(string phase, CommandLine options)
    {
        int features = options.Int("features", 1024), inner = options.Int("inner", 256), bags = options.Int("bags", 100);
        int epochs = options.Int("epochs", 2), threads = options.Int("threads", 2), n = options.Int("n", 0);
        string work = options.Get("work")!, modelPath = options.Get("model")!;
        var result = new Dictionary<string, double>();
        var ml = new MLContext(seed: 1);
        if (phase.StartsWith("train", StringComparison.Ordinal))
        {
            var epochSeconds = new List<double>();
            var clock = Stopwatch.StartNew();
            var trainerOptions = new AttentionMilOptions
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
                EpochCallback = _ => { epochSeconds.Add(clock.Elapsed.TotalSeconds); Trace("epoch"); clock.Restart(); },
            };
            if (phase == "train-memory")
            {
                var random = new Random(1);
                var rows = CohortSizes(bags).Select((size, i) => new BagRow { Features = Normal(size * features, random), Label = i % 2 == 0 })
                    .ToArray();
                var cohort = ml.Data.LoadFromEnumerable(rows);
                clock.Restart();
                using var model = ml.BinaryClassification.Trainers.AttentionMil(trainerOptions).Fit(cohort);
                result["peak_rss_mb"] = PeakMb();
                ml.Model.Save(model, cohort.Schema, modelPath);
            }
            else
            {
                var cohort = ml.Data.LoadFeatureBags(Path.Combine(work, "cohort.csv"), work);
                var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(cohort).Transform(cohort);
                clock.Restart();
                using var model = ml.MulticlassClassification.Trainers.AttentionMil(trainerOptions).Fit(keyed);
                result["peak_rss_mb"] = PeakMb();
            }
            result["bags_per_second"] = bags / epochSeconds[^1];
        }
        else
        {
            Trace("start");
            var loaded = ml.Model.Load(modelPath, out _);
            var model = (AttentionMilModel)loaded;
            Trace("loaded");
            IDataView one = phase == "h5"
                ? ml.Data.LoadFeatureBags(new[] { Path.Combine(work, "slide.h5") })
                : ml.Data.LoadFromEnumerable(new[] { new BagRow { Features = Normal(n * features, new Random(3)) } });
            double Time()
            {
                // The previous call's staging buffer (400 MB at 100k instances) is garbage until the next GC: collect
                // it, so the peak is one call's (as PyTorch frees its tensors on return), not four calls' garbage.
                GC.Collect();
                var start = Stopwatch.StartNew();
                float score = model.Transform(one).GetColumn<float>("Score").First();
                if (!float.IsFinite(score)) throw new InvalidOperationException("non-finite score");
                return start.Elapsed.TotalSeconds;
            }
            Trace("view");
            Time();   // warm-up
            Trace("warm");
            result["seconds"] = Enumerable.Range(0, 3).Min(_ => Time());
            result["peak_rss_mb"] = PeakMb();
            if (phase == "forward")
            {
                // Where the time goes: the network alone on a ready tensor (no IDataView, no staging); after the peak.
                one = null!;
                GC.Collect();
                using var scope = TorchSharp.torch.NewDisposeScope();
                using var inference = TorchSharp.torch.inference_mode();
                var x = TorchSharp.torch.randn(1, n, features);
                var mask = TorchSharp.torch.ones(new long[] { 1, n }, TorchSharp.torch.ScalarType.Bool);
                model.Network.eval();
                model.Network.Run(x, mask);
                var start = Stopwatch.StartNew();
                for (int i = 0; i < 3; i++) model.Network.Run(x, mask);
                result["network_seconds"] = start.Elapsed.TotalSeconds / 3;
            }
            model.Dispose();
        }
        File.WriteAllText(options.Get("result-out")!, JsonSerializer.Serialize(result));
        return 0;
    }

    private static void Trace(string stage)
    {
        if (Environment.GetEnvironmentVariable("MIL_SPEED_TRACE") is null) return;
        var status = File.ReadAllLines("/proc/self/status");
        string Get(string key) => status.First(l => l.StartsWith(key, StringComparison.Ordinal)).Split(':')[1].Trim();
        Console.Error.WriteLine($"{stage}: RSS {Get("VmRSS")} anon {Get("RssAnon")} file {Get("RssFile")} HWM {Get("VmHWM")} managed {GC.GetTotalMemory(false) >> 20} MB, committed {GC.GetGCMemoryInfo().TotalCommittedBytes >> 20} MB, gen2 GCs {GC.CollectionCount(2)}, allocated {GC.GetTotalAllocatedBytes() >> 20} MB, pinned {GC.GetGCMemoryInfo().PinnedObjectsCount}");
    }

    private static double PeakMb() => Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;

    private static int[] CohortSizes(int bags)
    {
        var random = new Random(1);
        return Enumerable.Range(0, bags).Select(_ => random.Next(500, 1500)).ToArray();
    }

    private static float[] Normal(int count, Random random)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }
}
