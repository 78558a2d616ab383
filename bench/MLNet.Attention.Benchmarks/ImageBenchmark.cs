using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Classification;
using MLNet.Attention.Engine;
using static MLNet.Attention.Benchmarks.Bench;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// `images`: the image classifier (MobileNetV2 baseline / +ELA-L / +ULSAM, ResNet-18 (+ELA-B)) on CIFAR-10 or
/// Fashion-MNIST, next to our independent PyTorch implementation (bench/reference/models/cifar_cnn.py) trained with the
/// same recipe on the same pixels in the same run: test accuracy (mean ± std over seeds), training images/s, peak RSS.
/// </summary>
public static class ImageBenchmark
{
    private static readonly Dictionary<string, (ImageBackbone Backbone, ImageAttention Attention)> Models = new()
    {
        ["mbv2"] = (ImageBackbone.MobileNetV2, ImageAttention.None),
        ["mbv2-ela"] = (ImageBackbone.MobileNetV2, ImageAttention.ElaL),
        ["mbv2-ulsam"] = (ImageBackbone.MobileNetV2, ImageAttention.Ulsam),
        ["resnet18"] = (ImageBackbone.ResNet18, ImageAttention.None),
        ["resnet18-ela"] = (ImageBackbone.ResNet18, ImageAttention.ElaB),
    };

    private sealed record Trial(string Model, string Side, int Seed, double Accuracy, double TrainSeconds, double TrainImagesPerSecond,
        double ScoreImagesPerSecond, double LatencyMs, double PeakRssMb);

    /// <summary>Pixels (uint8, CHW) and 0-based labels of one split.</summary>
    private sealed record Split(byte[] Pixels, byte[] Labels, int Channels, int Size)
    {
        public int Count => Labels.Length;
    }

    public sealed class PixelRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public string Label { get; set; } = "";
    }

    public static int Run(CommandLine options)
    {
        string dataset = options.Get("dataset", "cifar10");
        var models = options.List("models", "mbv2,mbv2-ela,mbv2-ulsam");
        var seeds = options.Ints("seeds", "1,2,3");
        int trainPerClass = options.Int("train-per-class", 500), testPerClass = options.Int("test-per-class", 100);
        int epochs = options.Int("epochs", 10), batch = options.Int("batch", 64), threads = options.Int("threads", 2);
        double width = double.Parse(options.Get("width", "0.5"), System.Globalization.CultureInfo.InvariantCulture);
        double lr = double.Parse(options.Get("lr", "0.05"), System.Globalization.CultureInfo.InvariantCulture);
        string python = options.Get("python", "/usr/bin/python3"), outPath = OutPath(options);
        bool reference = options.Get("reference", "on") != "off";
        foreach (var m in models)
            if (!Models.ContainsKey(m)) throw new UsageException($"Unknown model '{m}'; use {string.Join(", ", Models.Keys)}.");

        string work = Path.Combine(Path.GetTempPath(), "mlnet-attention-images");
        Directory.CreateDirectory(work);
        var prepared = dataset switch
        {
            "cifar10" => PrepareCifar(options, work, trainPerClass, testPerClass),
            "fashion-mnist" => PrepareFashionMnist(options, work, trainPerClass, testPerClass),
            _ => throw new UsageException($"Unknown dataset '{dataset}'; use cifar10 or fashion-mnist."),
        };
        if (prepared is null) return 0;
        var (train, test, classes, dataDir) = prepared.Value;
        string command = $"images --dataset {dataset} --models {string.Join(',', models)} --seeds {string.Join(',', seeds)} " +
            $"--train-per-class {trainPerClass} --test-per-class {testPerClass} --epochs {epochs} --width {width} --batch {batch} " +
            $"--lr {lr} --threads {threads}" + (options.Get("section") is { } section ? $" --section {section}" : "");
        Console.WriteLine($"{command}\n  {train.Count} train / {test.Count} test images of {train.Channels}×{train.Size}², {classes} classes; out {outPath}");

        // Each of our trials runs in a fresh child process (this command with --trial), as each PyTorch trial does,
        // so that peak RSS compares one training with one training.
        string? trialOnly = options.Get("trial");
        if (trialOnly is null && options.Get("in-process", "off") != "on")
        {
            return RunTrialsInChildren(options, models, seeds, dataDir, classes, train, test, command, dataset, outPath,
                python, reference, width, epochs, batch, lr, threads);
        }
        var ml = new MLContext(seed: 1);
        // Keys in class order (class00 … class09) through the usual MapValueToKey.
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue)
            .Fit(ml.Data.LoadFromEnumerable(Rows(train), Schema(train, classes)));
        var trainView = ml.Data.Cache(keys.Transform(ml.Data.LoadFromEnumerable(Rows(train), Schema(train, classes))));
        var testView = ml.Data.Cache(keys.Transform(ml.Data.LoadFromEnumerable(Rows(test), Schema(test, classes))));
        if (trialOnly is not null)
        {
            var parts = trialOnly.Split(':');
            var one = TrainOurs(ml, trainView, testView, parts[0], int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture),
                train, epochs, batch, width, lr, threads);
            File.WriteAllText(options.Get("trial-out")!, JsonSerializer.Serialize(one));
            return 0;
        }
        var trials = new List<Trial>();
        string? skipped = null;
        var started = DateTime.Now;
        foreach (var model in models)
            foreach (var seed in seeds)
            {
                trials.Add(TrainOurs(ml, trainView, testView, model, seed, train, epochs, batch, width, lr, threads));
                Console.WriteLine($"  {trials[^1]}");
                if (!reference || skipped is not null) continue;
                var (r, why) = TrainReference(python, dataDir, model, classes, width, epochs, batch, lr, seed, threads, train);
                if (r is null) { skipped = why; Console.WriteLine($"  PyTorch reference skipped: {why}"); continue; }
                trials.Add(r);
                Console.WriteLine($"  {trials[^1]}");
            }
        var md = Markdown(trials, command, dataset, train, test, classes, started, skipped, childProcesses: false);
        Console.WriteLine(md);
        WriteSection(outPath, options.Get("section", $"images-{dataset}"), md);
        return 0;
    }

    private static int RunTrialsInChildren(CommandLine options, string[] models, int[] seeds, string dataDir, int classes,
        Split train, Split test, string command, string dataset, string outPath, string python, bool reference, double width,
        int epochs, int batch, double lr, int threads)
    {
        var trials = new List<Trial>();
        string? skipped = null;
        var started = DateTime.Now;
        foreach (var model in models)
            foreach (var seed in seeds)
            {
                trials.Add(TrainOursInChild(options, model, seed));
                Console.WriteLine($"  {trials[^1]}");
                if (!reference || skipped is not null) continue;
                var (r, why) = TrainReference(python, dataDir, model, classes, width, epochs, batch, lr, seed, threads, train);
                if (r is null) { skipped = why; Console.WriteLine($"  PyTorch reference skipped: {why}"); continue; }
                trials.Add(r);
                Console.WriteLine($"  {trials[^1]}");
            }
        var md = Markdown(trials, command, dataset, train, test, classes, started, skipped, childProcesses: true);
        Console.WriteLine(md);
        WriteSection(outPath, options.Get("section", $"images-{dataset}"), md);
        return 0;
    }

    /// <summary>Re-runs this program for one (model, seed) with the same options; the child writes its trial as JSON.</summary>
    private static Trial TrainOursInChild(CommandLine options, string model, int seed)
    {
        string resultFile = Path.Combine(Path.GetTempPath(), $"mlnet-attention-trial-{Environment.ProcessId}-{model}-{seed}.json");
        int exitCode = RunSelf("images", options, new[] { "trial", "trial-out", "out" },
            "--trial", $"{model}:{seed}", "--trial-out", resultFile, "--out", "/dev/null");
        if (exitCode != 0 || !File.Exists(resultFile))
            throw new InvalidOperationException($"Our trial {model} seed {seed} failed in its child process (exit {exitCode}).");
        var trial = JsonSerializer.Deserialize<Trial>(File.ReadAllText(resultFile))!;
        File.Delete(resultFile);
        return trial;
    }

    private static (Trial?, string?) TrainReference(string python, string dataDir, string model, int classes, double width,
        int epochs, int batch, double lr, int seed, int threads, Split train)
    {
        var args = new[] { "--data", dataDir, "--model", model, "--classes", classes.ToString(), "--width", Str(width),
            "--epochs", epochs.ToString(), "--batch", batch.ToString(), "--lr", Str(lr), "--seed", seed.ToString(),
            "--threads", threads.ToString(), "--channels", train.Channels.ToString(), "--size", train.Size.ToString() };
        var (result, why) = PythonReference.Run(python, Path.Combine(RepoRoot(), "bench/reference/models/cifar_cnn.py"), args,
            TimeSpan.FromHours(2));
        if (result is not { } r) return (null, why);
        return (new Trial(model, "PyTorch", seed, r.GetProperty("accuracy").GetDouble(), r.GetProperty("train_seconds").GetDouble(),
            r.GetProperty("train_images_per_second").GetDouble(), r.GetProperty("score_images_per_second").GetDouble(),
            r.GetProperty("latency_ms").GetDouble(), r.GetProperty("peak_rss_mb").GetDouble()), null);
    }

    private static string Str(double v) => v.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static Trial TrainOurs(MLContext ml, IDataView train, IDataView test, string model, int seed, Split shape, int epochs,
        int batch, double width, double lr, int threads)
    {
        var (backbone, attention) = Models[model];
        var options = new ImageClassifierOptions
        {
            Backbone = backbone, Attention = attention, WidthMultiplier = width, Channels = shape.Channels,
            ImageHeight = shape.Size, ImageWidth = shape.Size, CifarStem = true, Dropout = 0.1,
            Mean = shape.Channels == 3 ? new[] { 0.485f, 0.456f, 0.406f } : new[] { 0.5f },
            Std = shape.Channels == 3 ? new[] { 0.229f, 0.224f, 0.225f } : new[] { 0.5f },
            RandomCropPadding = 4, RandomHorizontalFlip = true,
            Optimizer = OptimizerKind.Sgd, Momentum = 0.9, Nesterov = true, LearningRate = lr, WeightDecay = 5e-4,
            NoWeightDecayOnNormsAndBiases = true, WarmupEpochs = Math.Min(1, epochs - 1), LearningRateSchedule = LearningRateSchedule.Cosine,
            BatchSize = batch, MaxEpochs = epochs, ValidationFraction = 0, EarlyStoppingPatience = null, NumberOfThreads = threads,
            Seed = seed, ShufflePoolSize = 1_000_000, ScoringBatchSize = 64,
            EpochCallback = e => Console.WriteLine($"    ours {model} seed {seed}: {e}"),
        };
        // Fill both caches before any clock starts (the reference's pixels are tensors before its timing too): the first
        // pass over a cached view converts every image from bytes, which is data preparation, not training or scoring.
        foreach (var view in new[] { train, test })
            _ = view.GetColumn<float[]>("Features").Zip(view.GetColumn<uint>("Label")).Count();
        long rssBefore = Process.GetCurrentProcess().PeakWorkingSet64;
        var clock = Stopwatch.StartNew();
        using var fitted = ml.MulticlassClassification.Trainers.ImageClassifier(options).Fit(train);
        double trainSeconds = clock.Elapsed.TotalSeconds;
        int steps = shape.Count > batch ? shape.Count / batch : 1;
        clock.Restart();
        var metrics = ml.MulticlassClassification.Evaluate(fitted.Transform(test));
        double scoreSeconds = clock.Elapsed.TotalSeconds;
        // Single-image latency through a PredictionEngine: median of 200 predictions after 20 warm-up calls.
        var labelsAsText = ml.Transforms.Conversion.MapKeyToValue("Label").Fit(test).Transform(test);
        var images = ml.Data.CreateEnumerable<PixelRow>(labelsAsText, reuseRowObject: false).Take(220).ToArray();
        using var engine = ml.Model.CreatePredictionEngine<PixelRow, ScoreOut>(fitted, inputSchemaDefinition: Schema(shape, 0));
        var output = new ScoreOut();
        var times = new List<double>();
        for (int k = 0; k < 220; k++)
        {
            long t0 = Stopwatch.GetTimestamp();
            engine.Predict(images[k % images.Length], ref output);
            if (k >= 20) times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        Process.GetCurrentProcess().Refresh();
        return new Trial(model, "ours", seed, metrics.MicroAccuracy, trainSeconds, steps * batch * (double)epochs / trainSeconds,
            CountRows(test) / scoreSeconds, times[times.Count / 2],
            Math.Max(rssBefore, Process.GetCurrentProcess().PeakWorkingSet64) / 1048576.0);
    }

    private static long CountRows(IDataView view) => view.GetRowCount() ?? view.GetColumn<uint>("Label").LongCount();

    private static IEnumerable<PixelRow> Rows(Split split)
    {
        int n = split.Channels * split.Size * split.Size;
        for (int i = 0; i < split.Count; i++)
        {
            var x = new float[n];
            for (int k = 0; k < n; k++) x[k] = split.Pixels[(long)i * n + k];
            yield return new PixelRow { Features = x, Label = $"class{split.Labels[i]:D2}" };
        }
    }

    private static SchemaDefinition Schema(Split split, int classes)
    {
        var schema = SchemaDefinition.Create(typeof(PixelRow));
        schema[nameof(PixelRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, split.Channels * split.Size * split.Size);
        return schema;
    }

    /// <summary>CIFAR-10 JPEGs (../shared/data/images/cifar10_jpeg_all.tar): the first N per class of each split, decoded
    /// with ML.NET's LoadImages → ResizeImages(32) → ExtractPixels and written as uint8 for the reference.</summary>
    private static (Split, Split, int, string)? PrepareCifar(CommandLine options, string work, int trainPerClass, int testPerClass)
    {
        string tar = Path.GetFullPath(options.Get("data", Path.Combine(RepoRoot(), "..", "shared", "data", "images", "cifar10_jpeg_all.tar")));
        if (!File.Exists(tar)) { Console.WriteLine($"Image benchmark skipped: {tar} not found (pass --data PATH)."); return null; }
        string root = Path.Combine(work, "cifar10");
        if (!Directory.Exists(Path.Combine(root, "test")))
        {
            Directory.CreateDirectory(root);
            System.Formats.Tar.TarFile.ExtractToDirectory(tar, root, overwriteFiles: true);
        }
        var classes = Directory.GetDirectories(Path.Combine(root, "train")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        string dir = Path.Combine(work, $"cifar10-{trainPerClass}-{testPerClass}");
        Directory.CreateDirectory(dir);
        var train = DecodeCifar(root, "train", classes!, trainPerClass, dir);
        var test = DecodeCifar(root, "test", classes!, testPerClass, dir);
        return (train, test, classes.Length, dir);
    }

    public sealed class ScoreOut
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    public sealed class ImageFile
    {
        public string Path { get; set; } = "";
        public uint Label { get; set; }
    }

    private sealed class PixelsOut
    {
        public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    private static Split DecodeCifar(string root, string split, string?[] classes, int perClass, string dir)
    {
        string pixelsFile = Path.Combine(dir, $"{split}.u8"), labelsFile = Path.Combine(dir, $"{split}.labels");
        if (File.Exists(pixelsFile) && File.Exists(labelsFile))
            return new Split(File.ReadAllBytes(pixelsFile), File.ReadAllBytes(labelsFile), 3, 32);
        var files = new List<ImageFile>();
        for (int c = 0; c < classes.Length; c++)
            files.AddRange(Directory.GetFiles(Path.Combine(root, split, classes[c]!), "*.jpg").Order(StringComparer.Ordinal).Take(perClass)
                .Select(f => new ImageFile { Path = f, Label = (uint)c }));
        var ml = new MLContext();
        var view = ml.Data.LoadFromEnumerable(files);
        var pipeline = ml.Transforms.LoadImages("Image", null, nameof(ImageFile.Path))
            .Append(ml.Transforms.ResizeImages("Image", 32, 32))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image"));
        var pixels = pipeline.Fit(view).Transform(view).GetColumn<float[]>("Pixels").SelectMany(p => p.Select(v => (byte)Math.Clamp(MathF.Round(v), 0, 255))).ToArray();
        var labels = files.Select(f => (byte)f.Label).ToArray();
        File.WriteAllBytes(pixelsFile, pixels);
        File.WriteAllBytes(labelsFile, labels);
        return new Split(pixels, labels, 3, 32);
    }

    /// <summary>Fashion-MNIST from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, IDX gz).</summary>
    private static (Split, Split, int, string)? PrepareFashionMnist(CommandLine options, string work, int trainPerClass, int testPerClass)
    {
        string src = options.Get("data", "/usr/share/datasets/fashion-mnist");
        if (!File.Exists(Path.Combine(src, "train-images-idx3-ubyte.gz")))
        {
            Console.WriteLine($"Image benchmark skipped: no Fashion-MNIST in {src} (apt-get install dataset-fashion-mnist).");
            return null;
        }
        string dir = Path.Combine(work, $"fashion-{trainPerClass}-{testPerClass}");
        Directory.CreateDirectory(dir);
        Split Read(string prefix, string split, int perClass)
        {
            // Written once: every trial's child process reads these few MB, not the 30 MB IDX archives (whose
            // decompression copies would otherwise count in our side's peak RSS, and not in the reference's).
            string pixelsFile = Path.Combine(dir, $"{split}.u8"), labelsFile = Path.Combine(dir, $"{split}.labels");
            if (File.Exists(pixelsFile) && File.Exists(labelsFile))
                return new Split(File.ReadAllBytes(pixelsFile), File.ReadAllBytes(labelsFile), 1, 28);
            var images = Idx(Path.Combine(src, $"{prefix}-images-idx3-ubyte.gz"), 16);
            var labels = Idx(Path.Combine(src, $"{prefix}-labels-idx1-ubyte.gz"), 8);
            var taken = new int[10];
            var px = new List<byte>();
            var lb = new List<byte>();
            for (int i = 0; i < labels.Length; i++)
                if (taken[labels[i]]++ < perClass)
                {
                    px.AddRange(new ArraySegment<byte>(images, i * 784, 784));
                    lb.Add(labels[i]);
                }
            File.WriteAllBytes(Path.Combine(dir, $"{split}.u8"), px.ToArray());
            File.WriteAllBytes(Path.Combine(dir, $"{split}.labels"), lb.ToArray());
            return new Split(px.ToArray(), lb.ToArray(), 1, 28);
        }
        return (Read("train", "train", trainPerClass), Read("t10k", "test", testPerClass), 10, dir);
    }

    private static byte[] Idx(string path, int header)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var memory = new MemoryStream();
        gz.CopyTo(memory);
        return memory.ToArray()[header..];
    }

    private static string Markdown(List<Trial> trials, string command, string dataset, Split train, Split test, int classes,
        DateTime started, string? skipped, bool childProcesses)
    {
        var md = new StringBuilder();
        md.AppendLine($"## Image classifiers on {(dataset == "cifar10" ? "CIFAR-10" : "Fashion-MNIST")} vs our PyTorch implementation (same recipe, same run)\n");
        md.AppendLine($"`dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- {command}`  ");
        md.AppendLine($"{started:yyyy-MM-dd HH:mm}, {Machine()}; PyTorch {PyTorchVersion()} (bench/reference/models/cifar_cnn.py).  ");
        md.AppendLine($"Data: {train.Count} training / {test.Count} test images ({train.Channels}×{train.Size}×{train.Size}, {classes} " +
            "classes, the first images of each class in file order), " + (dataset == "cifar10"
                ? "decoded once with ML.NET's LoadImages → ResizeImages → ExtractPixels" : "Debian's IDX files as they are") +
            "; both sides train on these pixels. Recipe: SGD + Nesterov 0.9, warm-up 1 epoch then cosine per step, " +
            "L2 5e-4 except norms and biases, random crop (pad 4) + horizontal flip, cross-entropy, no validation split.");
        if (skipped is not null) md.AppendLine($"\nPyTorch reference skipped: {skipped}");
        md.AppendLine();
        md.AppendLine("| Model | Side | Test accuracy (mean ± std) | Seeds | Train images/s | Scoring images/s (batch 64) | Batch-1 latency ms | Peak RSS MB |");
        md.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var group in trials.GroupBy(t => (t.Model, t.Side)))
        {
            var acc = group.Select(t => t.Accuracy).ToArray();
            double mean = acc.Average(), std = acc.Length > 1 ? Math.Sqrt(acc.Sum(a => (a - mean) * (a - mean)) / (acc.Length - 1)) : 0;
            md.AppendLine($"| {group.Key.Model} | {group.Key.Side} | {mean:P2} ± {std:P2} | {string.Join(", ", group.Select(t => $"{t.Accuracy:P1}"))} | " +
                $"{group.Average(t => t.TrainImagesPerSecond):F0} | {group.Average(t => t.ScoreImagesPerSecond):F0} | " +
                $"{Median(group.Select(t => t.LatencyMs)):F2} | {group.Max(t => t.PeakRssMb):F0} |");
        }
        md.AppendLine();
        md.AppendLine("Ratios (ours / PyTorch, same run):\n");
        md.AppendLine("| Model | Δ accuracy (points) | Train speed | Scoring speed | Latency (PyTorch / ours) | Peak RSS |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (var model in trials.Select(t => t.Model).Distinct())
        {
            var ours = trials.Where(t => t.Model == model && t.Side == "ours").ToArray();
            var torch = trials.Where(t => t.Model == model && t.Side == "PyTorch").ToArray();
            if (ours.Length == 0 || torch.Length == 0) continue;
            md.AppendLine($"| {model} | {100 * (ours.Average(t => t.Accuracy) - torch.Average(t => t.Accuracy)):+0.00;-0.00} | " +
                $"{ours.Average(t => t.TrainImagesPerSecond) / torch.Average(t => t.TrainImagesPerSecond):F2}× | " +
                $"{ours.Average(t => t.ScoreImagesPerSecond) / torch.Average(t => t.ScoreImagesPerSecond):F2}× | " +
                $"{Median(torch.Select(t => t.LatencyMs)) / Median(ours.Select(t => t.LatencyMs)):F2}× | " +
                $"{ours.Max(t => t.PeakRssMb) / torch.Max(t => t.PeakRssMb):F2}× |");
        }
        md.AppendLine(childProcesses
            ? "\nPeak RSS: each trial on either side is one fresh child process (its data, pipeline or script, training, " +
              "scoring and the latency loop); the table gives the largest over seeds."
            : "\nPeak RSS of ours is the benchmark process's (--in-process on: data, pipeline and every trial so far); " +
              "PyTorch's is one child process per trial.");
        return md.ToString();
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }

    private static string PyTorchVersion()
    {
        try
        {
            var start = new ProcessStartInfo("/usr/bin/python3", "-c \"import torch; print(torch.__version__)\"") { RedirectStandardOutput = true };
            using var p = Process.Start(start)!;
            return p.StandardOutput.ReadToEnd().Trim();
        }
        catch (Exception) { return "?"; }
    }
}
