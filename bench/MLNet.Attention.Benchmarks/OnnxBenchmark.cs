using System.Diagnostics;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNet.Attention.Classification;
using MLNet.Attention.Forecasting;
using MLNet.Attention.MultipleInstance;
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
        /// <summary>The view ApplyOnnxModel scores (the graph's inputs as columns); default: <see cref="Rows"/>.</summary>
        public IDataView? OnnxRows { get; init; }

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
            var onnxRows = c.OnnxRows ?? c.Rows;
            var apply = ml.Transforms.ApplyOnnxModel(new[] { c.Output }, c.OnnxInputs.Select(i => i.Name).ToArray(),
                c.OnnxPath).Fit(onnxRows);
            double applied = Throughput(() => Consume(apply.Transform(onnxRows), c.Output), c.Count, minSeconds);
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
            case "itransformer" or "crib" or "mvpa":
                return Forecaster(ml, name, rows, batch, onnx);
            case "abmil" or "acmil":
                return Mil(ml, name, rows, onnx);
            default:
                throw new UsageException($"Unknown model '{name}' for onnx; use mbv2, mbv2-ela, mbv2-ulsam, resnet18, " +
                    "daam, itransformer, crib, mvpa, abmil, acmil.");
        }
    }

    /// <summary>A forecaster on the shipped ETTh1 (one epoch on its first 3,000 rows), scoring the windows after them:
    /// iTransformer 96 → 96 with D = d_ff = 256 and hourly calendar tokens (the `speed` benchmark's model), CRIB
    /// 24 → 24 (`crib-speed`'s), MVPA 96 → 96 with its defaults.</summary>
    private static Case Forecaster(MLContext ml, string name, int rows, int batch, string onnx)
    {
        string file = File.Exists(Path.Combine("samples", "data", "ETTh1.csv.gz"))
            ? Path.Combine("samples", "data", "ETTh1.csv.gz")
            : throw new UsageException("onnx: run from the repository root (samples/data/ETTh1.csv.gz is read).");
        var series = SeriesCsv.Load(ml, file);
        var variates = series.VariateColumnNames.ToArray();
        int lookback = name == "crib" ? 24 : 96, horizon = lookback;
        var train = ml.Data.TakeRows(series.Data, 3000);
        var scoring = ml.Data.TakeRows(ml.Data.SkipRows(series.Data, 3000), rows + lookback - 1);
        ForecastingModel model = name switch
        {
            "itransformer" => ml.Forecasting.Trainers.InvertedTransformer(new InvertedTransformerOptions
            {
                VariateColumnNames = variates, TimestampColumnName = series.TimestampColumnName, Lookback = lookback,
                Horizon = horizon, ModelWidth = 256, FeedForwardWidth = 256, MaxEpochs = 1, BatchSize = batch,
            }).Fit(train),
            "crib" => ml.Forecasting.Trainers.Crib(new CribOptions
            {
                VariateColumnNames = variates, Lookback = lookback, Horizon = horizon, MaxEpochs = 1, BatchSize = batch,
            }).Fit(train),
            _ => ml.Forecasting.Trainers.MultiVariateParallelTransformer(new MultiVariateParallelTransformerOptions
            {
                VariateColumnNames = variates, TimestampColumnName = series.TimestampColumnName, Lookback = lookback,
                Horizon = horizon, MaxEpochs = 1, BatchSize = batch,
            }).Fit(train),
        };
        ml.Model.ExportToOnnx(model, onnx);
        var windows = ml.Data.Cache(model.CreateWindows(ml, scoring, includeTargets: false));
        var lookbacks = windows.GetColumn<float[]>("Lookback").ToArray();
        int count = lookbacks.Length, channels = lookbacks[0].Length / lookback;
        var inputs = new List<(string, float[], long[])> { ("Lookback", lookbacks.SelectMany(v => v).ToArray(),
            new long[] { lookbacks[0].Length }) };
        float[][]? calendar = null;
        if (model.CalendarFeatures != CalendarFeatures.None)
        {
            calendar = windows.GetColumn<DateTime>("Timestamp").Select(model.OnnxCalendarInput).ToArray();
            inputs.Add((ForecastingOnnxExportExtensions.CalendarInputName, calendar.SelectMany(v => v).ToArray(),
                new long[] { calendar[0].Length }));
        }
        var onnxDefinition = SchemaDefinition.Create(typeof(OnnxWindow));
        onnxDefinition["Lookback"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, lookbacks[0].Length);
        onnxDefinition["CalendarFeatures"].ColumnType = new VectorDataViewType(NumberDataViewType.Single,
            Math.Max(1, calendar?[0].Length ?? 1));
        var onnxRows = ml.Data.LoadFromEnumerable(lookbacks.Select((v, i) => new OnnxWindow
            { Lookback = v, CalendarFeatures = calendar?[i] ?? new float[1] }), onnxDefinition);
        if (calendar is null) onnxRows = ml.Transforms.DropColumns("CalendarFeatures").Fit(onnxRows).Transform(onnxRows);

        var stamps = windows.Schema.GetColumnOrNull("Timestamp") is null ? new DateTime[1]
            : windows.GetColumn<DateTime>("Timestamp").ToArray();
        Action Predict()
        {
            var definition = SchemaDefinition.Create(typeof(WindowRow));
            definition["Lookback"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, lookback, channels);
            var engine = ml.Model.CreatePredictionEngine<WindowRow, ForecastRow>(model, inputSchemaDefinition: definition);
            var row = new WindowRow { Lookback = lookbacks[0], Timestamp = stamps[0] };
            var output = new ForecastRow();
            return () => engine.Predict(row, ref output);
        }
        string label = name switch { "itransformer" => "iTransformer 96→96, D 256, 7 variates + calendar",
            "crib" => "CRIB 24→24, 7 variates", _ => "MVPA 96→96, 7 variates + calendar" };
        return new Case(label, model, windows, onnx, inputs, "Forecast", Predict, count) { OnnxRows = onnxRows };
    }

    /// <summary>ABMIL / ACMIL on bags of 100 instances × 512 features (tile features of a slide), trained one epoch
    /// on 32 bags; ONNX Runtime takes several same-size bags per run ([bags, instances, D]).</summary>
    private static Case Mil(MLContext ml, string name, int rows, string onnx)
    {
        const int Instances = 100, Width = 512;
        var random = new Random(1);
        MilBag Bag(int i)
        {
            var v = new float[Instances * Width];
            for (int j = 0; j < v.Length; j++) v[j] = (float)(random.NextDouble() * 2 - 1);
            return new MilBag { Features = v, Label = i % 2 == 0 };
        }
        var train = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 32).Select(Bag).ToArray());
        int bags = Math.Min(rows, 128);
        var scoreBags = Enumerable.Range(0, bags).Select(Bag).ToArray();
        var model = ml.BinaryClassification.Trainers.AttentionMil(new AttentionMilOptions
        {
            Architecture = name == "acmil" ? MilArchitecture.Acmil : MilArchitecture.GatedAttention,
            InstanceSize = Width, MaxEpochs = 1, BatchSize = 8, ValidationFraction = 0, EarlyStoppingPatience = null,
        }).Fit(train);
        model.ExportToOnnx(onnx);
        var view = ml.Data.LoadFromEnumerable(scoreBags);
        Action Predict()
        {
            var engine = ml.Model.CreatePredictionEngine<MilBag, MilScore>(model);
            var bag = scoreBags[0];
            var output = new MilScore();
            return () => engine.Predict(bag, ref output);
        }
        return new Case($"{(name == "acmil" ? "ACMIL" : "ABMIL")}, bags of {Instances} × {Width}", model, view, onnx,
            new[] { ("Features", scoreBags.SelectMany(b => b.Features).ToArray(), new long[] { Instances, Width }) },
            "Score", Predict, bags);
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
        if (col.Type is VectorDataViewType)
        {
            var getter = cursor.GetGetter<VBuffer<float>>(col);
            VBuffer<float> buffer = default;
            while (cursor.MoveNext()) getter(ref buffer);
        }
        else
        {
            var getter = cursor.GetGetter<float>(col);
            float value = 0;
            while (cursor.MoveNext()) getter(ref value);
        }
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

    private sealed class OnnxWindow
    {
        public float[] Lookback { get; set; } = Array.Empty<float>();
        public float[] CalendarFeatures { get; set; } = Array.Empty<float>();
    }

    private sealed class WindowRow
    {
        public float[] Lookback { get; set; } = Array.Empty<float>();
        public DateTime Timestamp { get; set; }
    }

    private sealed class ForecastRow
    {
        public float[] Forecast { get; set; } = Array.Empty<float>();
    }

    private sealed class MilBag
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public bool Label { get; set; }
    }

    private sealed class MilScore
    {
        public float Score { get; set; }
        public float Probability { get; set; }
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
