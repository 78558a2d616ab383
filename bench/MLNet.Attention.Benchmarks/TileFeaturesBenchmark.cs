using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Attention.Classification;
using MLNet.Attention.Transforms;
using MLNet.Attention.WholeSlide;
using Onnx;
using static MLNet.Attention.Benchmarks.Bench;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// Tiles/s of the ResNet-18 tile featurizer (<c>mlContext.Transforms.ResNet18TileFeaturizer</c>, ONNX Runtime on the
/// batch-rewritten graphs) vs its baselines, same run, each in a fresh process for its own peak RSS: (a) ours at
/// <c>--batch</c>, (b) ONNX Runtime directly on the packaged graphs at their fixed batch 1, (c) ML.NET's
/// <c>DnnFeaturizeImage(ResNet18)</c> (per-row OnnxTransformer), (d) PyTorch (bench/reference/wsi/resnet18_tiles.py,
/// random weights, batch 32), and the ELA / ULSAM backbones of the classification work as tile featurizers on the same
/// tiles: (e) MobileNetV2 + ELA-L and (f) MobileNetV2 + ULSAM (<c>mlContext.Transforms.AttentionImageFeaturizer</c>,
/// TorchSharp, at <c>--batch</c>; weights of a classifier trained one step, speed does not depend on them). Tiles:
/// 224 × 224 crops of skimage's ihc.png (the image of the ihc slide fixture) as CHW float pixels, built before timing.
/// </summary>
public static class TileFeaturesBenchmark
{
    private const int Side = 224, PixelCount = 3 * Side * Side, Width = 512;
    private const string DefaultImage = "/usr/lib/python3/dist-packages/skimage/data/ihc.png";

    public sealed class PixelRow
    {
        [VectorType(3, Side, Side)] public float[] Pixels { get; set; } = new float[PixelCount];
    }

    private sealed record PartResult(string Part, int Tiles, double TilesPerSecond, double PeakRssMb, float[] First);

    public static int Run(CommandLine options)
    {
        int tiles = options.Int("tiles", 128), batch = options.Int("batch", 32), threads = options.Int("threads", 2);
        string image = options.Get("image", DefaultImage), python = options.Get("python", "/usr/bin/python3");
        string section = options.Get("section", "tile-featurizer");
        if (!File.Exists(image))
        {
            Console.WriteLine($"Tile featurizer benchmark skipped: {image} not found (install python3-skimage or pass " +
                              "--image PATH to an RGB image of at least 224 × 224).");
            return 0;
        }
        if (options.Get("part") is { } part)
            return RunPart(part, image, tiles, batch, threads, options.Get("result-out")!);

        int repeats = options.Int("repeats", 3);
        string command = $"tile-features --tiles {tiles} --batch {batch} --threads {threads} --repeats {repeats}";
        Console.WriteLine(command);
        var started = DateTime.Now;
        string temp = Path.Combine(Path.GetTempPath(), $"mlnet-attention-tile-features-{Environment.ProcessId}.json");
        // The parts take turns, --repeats rounds: on a shared machine the best round of each is the least disturbed.
        var runs = new Dictionary<string, List<double>>();
        var results = new Dictionary<string, PartResult>();
        string load = SpeedBenchmark.LoadAverage();
        string blocks = Blocks(Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx"));
        JsonElement? reference = null;
        string? why = null;
        var torchRuns = new List<double>();
        for (int round = 0; round < repeats; round++)
        {
            foreach (var p in new[] { "ours", "ort-batch1", "dnn", "ela", "ulsam" })
            {
                int code = RunSelf("tile-features", options, new[] { "part", "result-out", "out", "section", "repeats" },
                    "--part", p, "--result-out", temp);
                if (code != 0 || !File.Exists(temp))
                    throw new InvalidOperationException($"Part '{p}' failed in its child process (exit code {code}).");
                var result = JsonSerializer.Deserialize<PartResult>(File.ReadAllText(temp))!;
                File.Delete(temp);
                if (!runs.TryGetValue(p, out var list)) runs[p] = list = new List<double>();
                list.Add(result.TilesPerSecond);
                if (!results.TryGetValue(p, out var best) || result.TilesPerSecond > best.TilesPerSecond) results[p] = result;
                Console.WriteLine($"  round {round + 1} {p}: {F(result.TilesPerSecond, "F1")} tiles/s, peak RSS {F(result.PeakRssMb, "F0")} MB");
            }
            var (found, w) = PythonReference.Run(python, Path.Combine(RepoRoot(), "bench", "reference", "wsi", "resnet18_tiles.py"),
                new[] { "--tiles", tiles.ToString(), "--batch", "32", "--threads", threads.ToString(), "--blocks", blocks },
                TimeSpan.FromMinutes(10));
            why = w;
            if (found is { } ok)
            {
                double rate = ok.GetProperty("tiles_per_second").GetDouble();
                torchRuns.Add(rate);
                if (reference is null || rate > reference.Value.GetProperty("tiles_per_second").GetDouble()) reference = ok;
                Console.WriteLine($"  round {round + 1} pytorch: {F(rate, "F1")} tiles/s");
            }
            else Console.WriteLine($"  (d) PyTorch skipped: {why}");
        }
        string All(IEnumerable<double> rates) => string.Join(", ", rates.Select(x => F(x, "F1")));
        runs["pytorch"] = torchRuns;

        double diff(string a, string b) => results[a].First.Zip(results[b].First, (x, y) => Math.Abs(x - y)).Max();
        var ours = results["ours"];
        string Row(string name, string part, double rate, double rss) =>
            $"| {name} | {F(rate, "F1")} | {F(1000 / rate, "F1")} | {F(ours.TilesPerSecond / rate, "F2")}× | {F(rss, "F0")} | " +
            $"{All(runs[part])} |";
        var md = new StringBuilder();
        md.AppendLine("## Tile featurizers: ResNet-18 vs ONNX Runtime batch 1, DnnFeaturizeImage, PyTorch; ELA / ULSAM backbones");
        md.AppendLine();
        md.AppendLine($"`dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- {command}`, {started:yyyy-MM-dd HH:mm}; " +
                      $"{Machine()}; load average before the runs {load}, after {SpeedBenchmark.LoadAverage()}. Shared machine: other " +
                      "jobs ran beside these, hence every round's rate in the last column.");
        md.AppendLine();
        md.AppendLine($"{tiles} tiles of 224 × 224 cut from skimage's `ihc.png` (512 × 512 immunohistochemistry) at seeded random " +
                      "offsets, as CHW float pixels (RGB 0–255, what `ResizeImages(224, 224) → ExtractPixels()` writes), built " +
                      "before timing; every part is timed over all tiles after a warm-up batch, in its own process (peak RSS = " +
                      $"that process's peak working set / `ru_maxrss`, of the best round), one after another, the six parts " +
                      $"taking turns for {repeats} rounds; {threads} threads everywhere " +
                      "(ONNX Runtime intra-op threads, `torch.set_num_threads`). (e) and (f) are the ELA / ULSAM backbones " +
                      "of the classification work as tile featurizers (`AttentionImageFeaturizer`, TorchSharp 0.107 CPU) " +
                      "on the same pixels, ImageNet-size MobileNetV2 (width 1.0, 1280 features per tile), with the weights " +
                      "of an `ImageClassifier` trained for one step on 8 of the tiles before timing (their speed does not " +
                      "depend on the weights; no trained pathology ELA / ULSAM backbone exists here).");
        md.AppendLine();
        md.AppendLine("| Part | Tiles/s (best round) | ms/tile | (a) is × faster | Peak RSS (MB) | Tiles/s, every round |");
        md.AppendLine("|---|---:|---:|---:|---:|---|");
        md.AppendLine(Row($"(a) ours: `ResNet18TileFeaturizer`, batch {batch} (Transform, cursor)", "ours", ours.TilesPerSecond, ours.PeakRssMb));
        var ort = results["ort-batch1"];
        md.AppendLine(Row("(b) ONNX Runtime 1.31.1 directly, packaged graphs at their fixed batch 1", "ort-batch1", ort.TilesPerSecond, ort.PeakRssMb));
        var dnn = results["dnn"];
        md.AppendLine(Row("(c) ML.NET `DnnFeaturizeImage(ResNet18)` (OnnxTransformer, per row)", "dnn", dnn.TilesPerSecond, dnn.PeakRssMb));
        if (reference is { } r)
            md.AppendLine(Row($"(d) PyTorch {r.GetProperty("torch").GetString()} eager, batch 32, inference_mode, random weights",
                "pytorch", r.GetProperty("tiles_per_second").GetDouble(), r.GetProperty("peak_rss_mb").GetDouble()));
        else
            md.AppendLine($"| (d) PyTorch | skipped: {why} | | | |");
        var ela = results["ela"];
        md.AppendLine(Row($"(e) `AttentionImageFeaturizer` MobileNetV2 + ELA-L, batch {batch} (Transform, cursor)", "ela",
            ela.TilesPerSecond, ela.PeakRssMb));
        var ulsam = results["ulsam"];
        md.AppendLine(Row($"(f) `AttentionImageFeaturizer` MobileNetV2 + ULSAM, batch {batch} (Transform, cursor)", "ulsam",
            ulsam.TilesPerSecond, ulsam.PeakRssMb));
        md.AppendLine();
        md.AppendLine($"Same features: the first tile's 512 values of (a) vs (b) differ by at most {diff("ours", "ort-batch1"):E1}, " +
                      $"(a) vs (c) by {diff("ours", "dnn"):E1} (max abs; the features reach ≈ {ours.First.Max():F1}). " +
                      $"PyTorch: plain torch ResNet-18 ({blocks} basic blocks, counted from the ONNX graph's Conv nodes), He-init " +
                      "random weights (no `onnx` Python package here to read the ONNX weights; only its speed is compared), " +
                      "uint8 → /255 → ImageNet mean/std inside the timed loop; " + PythonReference.RunEnvironment + ".");
        WriteSection(OutPath(options), section, md.ToString());
        Console.WriteLine();
        Console.WriteLine(md);
        return 0;
    }

    // Basic blocks per stage of the packaged graph: 1 stem conv + 2 per block + 3 projection shortcuts; the first
    // three stages have 2 blocks each (checked by the stage outputs HeadsBenchmark reads), the rest are the 4th's.
    private static string Blocks(string resnetPath)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(resnetPath));
        int convs = model.Graph.Node.Count(n => n.OpType == "Conv");
        int total = (convs - 4) / 2;
        return $"2,2,2,{Math.Max(1, total - 6)}";
    }

    private static PixelRow[] Tiles(string image, int count)
    {
        using var source = MLImage.CreateFromFile(image);
        if (source.Width < Side || source.Height < Side)
            throw new UsageException($"--image {image} is {source.Width} × {source.Height}; it must be at least 224 × 224.");
        var pixels = source.Pixels.ToArray();
        int stride = pixels.Length / source.Height;
        bool bgra = source.PixelFormat == MLPixelFormat.Bgra32;
        var random = new Random(1);
        var rows = new PixelRow[count];
        for (int t = 0; t < count; t++)
        {
            int x0 = random.Next(source.Width - Side + 1), y0 = random.Next(source.Height - Side + 1);
            var row = rows[t] = new PixelRow();
            for (int y = 0; y < Side; y++)
                for (int x = 0; x < Side; x++)
                {
                    int s = (y0 + y) * stride + (x0 + x) * 4, d = y * Side + x;
                    row.Pixels[d] = pixels[s + (bgra ? 2 : 0)];
                    row.Pixels[Side * Side + d] = pixels[s + 1];
                    row.Pixels[2 * Side * Side + d] = pixels[s + (bgra ? 0 : 2)];
                }
        }
        return rows;
    }

    private sealed class LabelledRow
    {
        [VectorType(3, Side, Side)] public float[] Pixels { get; set; } = new float[PixelCount];
        public string Label { get; set; } = "";
    }

    // An ImageNet-size MobileNetV2 (width 1.0) with ELA-L or ULSAM, trained one step on 8 tiles (any weights do for
    // speed), as the featurizer a user makes from a classifier trained on labelled tiles.
    private static AttentionImageFeaturizerEstimator AttentionFeaturizer(MLContext ml, PixelRow[] rows,
        ImageAttention attention, int batch, int threads)
    {
        var labelled = rows.Take(8).Select((r, i) => new LabelledRow { Pixels = r.Pixels, Label = i % 2 == 0 ? "a" : "b" });
        var train = ml.Data.LoadFromEnumerable(labelled.ToArray());
        var classifier = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.ImageClassifier(new ImageClassifierOptions
            {
                FeatureColumnName = "Pixels", ImageHeight = Side, ImageWidth = Side, Backbone = ImageBackbone.MobileNetV2,
                Attention = attention, MaxEpochs = 1, BatchSize = 8, NumberOfThreads = threads, Seed = 1,
                ValidationFraction = 0, EarlyStoppingPatience = null, BatchNormRecalibrationBatches = 0,
            }))
            .Fit(train);
        return ml.Transforms.AttentionImageFeaturizer(classifier.LastTransformer, outputColumnName: "Features",
            inputColumnName: "Pixels", batchSize: batch);
    }

    private static int RunPart(string part, string image, int tiles, int batch, int threads, string resultFile)
    {
        var rows = Tiles(image, tiles);
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(rows);
        float[] first = Array.Empty<float>();
        double seconds;
        float[][] Features(IDataView view, string column) =>
            view.GetColumn<VBuffer<float>>(column).Select(v => v.DenseValues().ToArray()).ToArray();
        // One warm-up batch, then every tile timed; the first tile's features are kept for the equality check.
        (double Seconds, float[] First) TimeFeaturizer(ITransformer featurizer)
        {
            Features(featurizer.Transform(ml.Data.TakeRows(data, batch)), "Features");
            var clock = Stopwatch.StartNew();
            var features = Features(featurizer.Transform(data), "Features");
            return (clock.Elapsed.TotalSeconds, features[0]);
        }
        switch (part)
        {
            case "ours":
            {
                using var featurizer = ml.Transforms.ResNet18TileFeaturizer(batchSize: batch, intraOpNumThreads: threads).Fit(data);
                (seconds, first) = TimeFeaturizer(featurizer);
                break;
            }
            case "dnn":
            {
                var dnn = ml.Transforms.DnnFeaturizeImage("Features", m => m.ModelSelector.ResNet18(ml, m.OutputColumn,
                    m.InputColumn), "Pixels").Fit(data);
                Features(dnn.Transform(ml.Data.TakeRows(data, batch)), "Features");
                var clock = Stopwatch.StartNew();
                var features = Features(dnn.Transform(data), "Features");
                seconds = clock.Elapsed.TotalSeconds;
                first = features[0];
                break;
            }
            case "ort-batch1":
            {
                string dir = Path.Combine(AppContext.BaseDirectory, "DnnImageModels");
                using var sessionOptions = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
                using var prep = new InferenceSession(Path.Combine(dir, "ResNetPrepOnnx", "ResNetPreprocess.onnx"), sessionOptions);
                using var resnet = new InferenceSession(Path.Combine(dir, "ResNet18Onnx", "ResNet18.onnx"), sessionOptions);
                string prepIn = prep.InputMetadata.Keys.Single();
                float[] One(float[] pixels)
                {
                    var x = new DenseTensor<float>(pixels, new[] { 1, 3, Side, Side });
                    using var p = prep.Run(new[] { NamedOnnxValue.CreateFromTensor(prepIn, x) });
                    using var o = resnet.Run(new[] { NamedOnnxValue.CreateFromTensor(ResNet18OnnxGraph.ResNetInput,
                        p.Single().AsTensor<float>()) });
                    return o.Single().AsTensor<float>().ToArray();
                }
                for (int i = 0; i < Math.Min(batch, tiles); i++) One(rows[i].Pixels);
                var clock = Stopwatch.StartNew();
                var features = rows.Select(r => One(r.Pixels)).ToArray();
                seconds = clock.Elapsed.TotalSeconds;
                first = features[0];
                break;
            }
            case "ela":
            case "ulsam":
            {
                using var featurizer = AttentionFeaturizer(ml, rows, part == "ela" ? ImageAttention.ElaL : ImageAttention.Ulsam,
                    batch, threads).Fit(data);
                TorchSharp.torch.set_num_threads(threads);
                (seconds, first) = TimeFeaturizer(featurizer);
                break;
            }
            default:
                throw new UsageException($"Unknown --part '{part}'; use ours, ort-batch1, dnn, ela or ulsam.");
        }
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        var result = new PartResult(part, tiles, tiles / seconds, self.PeakWorkingSet64 / 1048576.0, first);
        File.WriteAllText(resultFile, JsonSerializer.Serialize(result));
        return 0;
    }
}
