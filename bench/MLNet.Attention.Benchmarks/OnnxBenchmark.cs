using System.Diagnostics;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNet.Attention.Classification;
using static MLNet.Attention.Benchmarks.Bench;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// `onnx`: each exportable model scored by TorchSharp (our transformer: Transform over a view, and a
/// PredictionEngine) and by ONNX Runtime on its exported graph (InferenceSession at batch 1 and at a large batch, and
/// ML.NET's ApplyOnnxModel over the same view), same process, same threads. Weights come from one short training run:
/// speed does not depend on them. Reports rows/s, batch-1 latency, and ONNX Runtime's ratio to TorchSharp.
/// </summary>
internal static class OnnxBenchmark
{
    /// <summary>A model to time: our transformer, the view it scores, and the graph's input as ORT takes it.</summary>
    private sealed record Case(string Name, ITransformer Model, IDataView Rows, string OnnxPath,
        IReadOnlyList<(string Name, float[] Values, long[] RowShape)> OnnxInputs, string Output,
        Func<Action> PredictOne, int Count) : IDisposable
    {
        public void Dispose() => (Model as IDisposable)?.Dispose();
    }

    public static int Run(CommandLine options)
    {
        int threads = options.Int("threads", 2), rows = options.Int("rows", 512), batch = options.Int("batch", 64);
        double minSeconds = double.Parse(options.Get("min-seconds", "2"), System.Globalization.CultureInfo.InvariantCulture);
        var models = options.List("models", "mbv2,mbv2-ela,mbv2-ulsam,resnet18,daam");
        string work = Path.Combine(Path.GetTempPath(), "mlnet-attention-onnx-bench");
        Directory.CreateDirectory(work);
        Runtime.TorchRuntime.SetThreads(threads);
        var ml = new MLContext(seed: 1);

        var table = new StringBuilder();
        table.AppendLine("| model | TorchSharp Transform, rows/s | ORT batch " + batch + ", rows/s | ApplyOnnxModel, rows/s | " +
            "TorchSharp PredictionEngine, ms | ORT batch 1, ms | ORT / TorchSharp throughput | TorchSharp / ORT latency |");
        table.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (string name in models)
        {
            using var c = Build(ml, name, rows, batch, work);
            double ours = Throughput(() => Consume(c.Model.Transform(c.Rows), c.Output), c.Count, minSeconds);
            var predict = c.PredictOne();
            double ourLatency = LatencyMs(predict, minSeconds);

            using var session = new InferenceSession(c.OnnxPath, new SessionOptions
            {
                IntraOpNumThreads = threads, InterOpNumThreads = 1,
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            });
            double ortBatch = Throughput(() => RunOrt(session, c, 0, batch), batch, minSeconds);
            double ortLatency = LatencyMs(() => RunOrt(session, c, 1, 1), minSeconds);
            var apply = ml.Transforms.ApplyOnnxModel(new[] { c.Output }, c.OnnxInputs.Select(i => i.Name).ToArray(),
                c.OnnxPath).Fit(c.Rows);
            double applied = Throughput(() => Consume(apply.Transform(c.Rows), c.Output), c.Count, minSeconds);
            apply.Dispose();
            string line = $"| {c.Name} | {F(ours, "F0")} | {F(ortBatch, "F0")} | {F(applied, "F0")} | " +
                $"{F(ourLatency, "F2")} | {F(ortLatency, "F2")} | {F(ortBatch / ours, "F2")}× | {F(ourLatency / ortLatency, "F2")}× |";
            Console.WriteLine(line);
            table.AppendLine(line);
        }
        string content = $"## ONNX Runtime vs TorchSharp scoring (`onnx`)\n\n{Machine()}; {threads} threads on both sides " +
            $"(libtorch intra-op, ORT IntraOpNumThreads), ONNX Runtime 1.31, libtorch 2.10; {rows} rows, each figure " +
            $"the best of runs over ≥ {minSeconds} s.\n\n" +
            "Command: `dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- onnx " +
            string.Join(' ', options.All.Select(kv => $"--{kv.Name} {kv.Value}")) + "`\n\n" + table;
        Console.WriteLine();
        Console.WriteLine(content);
        if (options.Get("out") is not null || options.Get("write") is not null)
            WriteSection(OutPath(options), options.Get("section", "onnx"), content);
        return 0;
    }

    private static Case Build(MLContext ml, string name, int rows, int batch, string work)
    {
        string onnx = Path.Combine(work, name + ".onnx");
        switch (name)
        {
            case "mbv2" or "mbv2-ela" or "mbv2-ulsam" or "resnet18":
            {
                var (backbone, attention) = name switch
                {
                    "mbv2" => (ImageBackbone.MobileNetV2, ImageAttention.None),
                    "mbv2-ela" => (ImageBackbone.MobileNetV2, ImageAttention.ElaL),
                    "mbv2-ulsam" => (ImageBackbone.MobileNetV2, ImageAttention.Ulsam),
                    _ => (ImageBackbone.ResNet18, ImageAttention.None),
                };
                const int Pixels = 3 * 32 * 32;
                var (train, score, values) = FeatureViews(ml, Pixels, rows, 255);
                var model = ml.MulticlassClassification.Trainers.ImageClassifier(new ImageClassifierOptions
                {
                    Backbone = backbone, Attention = attention, WidthMultiplier = name == "resnet18" ? 1 : 0.35,
                    ImageHeight = 32, ImageWidth = 32, MaxEpochs = 1, BatchSize = batch, ValidationFraction = 0,
                    EarlyStoppingPatience = null,
                }).Fit(train);
                model.ExportToOnnx(onnx);
                string label = name switch { "mbv2" => "MobileNetV2-0.35", "mbv2-ela" => "MobileNetV2-0.35 + ELA-L",
                    "mbv2-ulsam" => "MobileNetV2-0.35 + ULSAM", _ => "ResNet-18" };
                return new Case(label + " (32×32)", model, score, onnx, new[] { ("Features", values, new long[] { Pixels }) },
                    "Score", () => Predictor(ml, model, Pixels, values), rows);
            }
            case "daam":
            {
                const int Layers = 12, Width = 768;   // a BERT-base-like stack of 12 layer embeddings
                var (train, score, values) = FeatureViews(ml, Layers * Width, rows, 1);
                var model = ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(
                    new DensityAdaptiveAttentionClassifierOptions
                    {
                        Layers = Layers, Heads = 4, Head = ClassifierHead.Daam, MaxEpochs = 1, BatchSize = batch,
                        ValidationFraction = 0, EarlyStoppingPatience = null,
                    }).Fit(train);
                model.ExportToOnnx(onnx);
                return new Case($"DAAM classifier ({Layers}×{Width})", model, score, onnx,
                    new[] { ("Features", values, new long[] { Layers * Width }) }, "Score",
                    () => Predictor(ml, model, Layers * Width, values), rows);
            }
            default:
                throw new UsageException($"Unknown model '{name}' for onnx; use mbv2, mbv2-ela, mbv2-ulsam, resnet18, daam.");
        }
    }

    /// <summary>A keyed training view (3 classes, 96 rows) and a scoring view of <paramref name="rows"/> random
    /// feature vectors of <paramref name="width"/> values in [0, scale).</summary>
    private static (IDataView Train, IDataView Score, float[] Values) FeatureViews(MLContext ml, int width, int rows,
        float scale)
    {
        var random = new Random(1);
        FeatureRow Row(int i)
        {
            var v = new float[width];
            for (int j = 0; j < width; j++) v[j] = (float)random.NextDouble() * scale;
            return new FeatureRow { Features = v, Label = "class" + (i % 3) };
        }
        var definition = SchemaDefinition.Create(typeof(FeatureRow));
        definition["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, width);
        var raw = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 96).Select(Row).ToArray(), definition);
        var train = ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw);
        var scoreRows = Enumerable.Range(0, rows).Select(Row).ToArray();
        var values = scoreRows.SelectMany(r => r.Features).ToArray();
        return (train, ml.Data.LoadFromEnumerable(scoreRows, definition), values);
    }

    private static Action Predictor(MLContext ml, ITransformer model, int width, float[] values)
    {
        var definition = SchemaDefinition.Create(typeof(FeatureRow));
        definition["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, width);
        var engine = ml.Model.CreatePredictionEngine<FeatureRow, ScoreRow>(model, inputSchemaDefinition: definition);
        var row = new FeatureRow { Features = values[..width] };
        var output = new ScoreRow();
        return () => engine.Predict(row, ref output);
    }

    private static void RunOrt(InferenceSession session, Case c, int offsetRows, int batch)
    {
        var values = new List<OrtValue>();
        try
        {
            foreach (var (_, all, shape) in c.OnnxInputs)
            {
                long perRow = shape.Aggregate(1L, (a, b) => a * b);
                var memory = new Memory<float>(all, (int)(offsetRows * perRow), (int)(batch * perRow));
                values.Add(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, memory,
                    new[] { (long)batch }.Concat(shape).ToArray()));
            }
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, c.OnnxInputs.Select(i => i.Name).ToArray(), values, new[] { c.Output });
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private static void Consume(IDataView scored, string column)
    {
        var col = scored.Schema[column];
        using var cursor = scored.GetRowCursor(new[] { col });
        var getter = cursor.GetGetter<VBuffer<float>>(col);
        VBuffer<float> buffer = default;
        while (cursor.MoveNext()) getter(ref buffer);
    }

    /// <summary>Items per second: the best of repeated runs (after one warm-up) over at least
    /// <paramref name="minSeconds"/>.</summary>
    private static double Throughput(Action run, int items, double minSeconds)
    {
        run();
        double best = 0;
        var total = Stopwatch.StartNew();
        do
        {
            var clock = Stopwatch.StartNew();
            run();
            best = Math.Max(best, items / clock.Elapsed.TotalSeconds);
        } while (total.Elapsed.TotalSeconds < minSeconds);
        return best;
    }

    /// <summary>Median milliseconds of one call, over at least <paramref name="minSeconds"/> (after warm-up).</summary>
    private static double LatencyMs(Action call, double minSeconds)
    {
        for (int i = 0; i < 20; i++) call();
        var samples = new List<double>();
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < minSeconds || samples.Count < 50)
        {
            long start = Stopwatch.GetTimestamp();
            call();
            samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        samples.Sort();
        return samples[samples.Count / 2];
    }

    private sealed class FeatureRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public string Label { get; set; } = "";
    }

    private sealed class ScoreRow
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
