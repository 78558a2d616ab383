using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Tests.Forecasting;
using Series = MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;

namespace MLNet.Attention.Tests.OnnxExport;

/// <summary>ONNX export of the forecasters: ONNX Runtime's Forecast (and Lower/Upper) equals the transformer's on its
/// window rows (scaling, calendar covariates, past and known-future covariates, missing values), for 1 and N rows, and
/// ApplyOnnxModel in an ML.NET pipeline gives the same Forecast column.</summary>
[TestClass]
public sealed class ForecasterOnnxExportTests
{
    private const double Tolerance = 1e-5;

    /// <summary>The window rows of <paramref name="model"/> over <paramref name="series"/> as graph inputs (Lookback,
    /// CalendarFeatures from the Timestamp column, FutureCovariates) and the transformer's output columns.</summary>
    private static (Dictionary<string, float[]> Inputs, int Rows, Dictionary<string, float[]> Expected) Score(
        MLContext ml, ForecastingModel model, IDataView series)
    {
        var windows = model.CreateWindows(ml, series, includeTargets: false);
        var scored = model.Transform(windows);
        var inputs = new Dictionary<string, float[]>
        {
            ["Lookback"] = scored.GetColumn<float[]>("Lookback").SelectMany(v => v).ToArray(),
        };
        int rows = scored.GetColumn<float[]>("Lookback").Count();
        if (model.CalendarFeatures != CalendarFeatures.None)
            inputs[ForecastingOnnxExportExtensions.CalendarInputName] = scored.GetColumn<DateTime>("Timestamp")
                .SelectMany(model.OnnxCalendarInput).ToArray();
        if (model.FutureCovariateColumnNames.Count > 0)
            inputs["FutureCovariates"] = scored.GetColumn<float[]>("FutureCovariates").SelectMany(v => v).ToArray();
        var expected = new Dictionary<string, float[]>();
        foreach (var column in new[] { "Forecast", "Lower", "Upper" })
            if (scored.Schema.GetColumnOrNull(column) is not null)
                expected[column] = scored.GetColumn<float[]>(column).SelectMany(v => v).ToArray();
        return (inputs, rows, expected);
    }

    internal static float[] RunOrt(byte[] model, IReadOnlyDictionary<string, float[]> inputs, int rows, string output,
        int first = 0, int count = -1)
    {
        count = count < 0 ? rows - first : count;
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(model, options);
        var values = inputs.Select(kv =>
        {
            int width = kv.Value.Length / rows;
            return OrtValue.CreateTensorValueFromMemory(kv.Value.AsSpan(first * width, count * width).ToArray(),
                new long[] { count, width });
        }).ToArray();
        try
        {
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, inputs.Keys.ToArray(), values, new[] { output });
            return results[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    internal static double MaxAbsDiff(float[] a, float[] b)
    {
        Assert.AreEqual(a.Length, b.Length);
        return a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
    }

    /// <summary>Every fifth Lookback value becomes NaN, and the expected Forecast is the transformer's on those
    /// windows.</summary>
    private static void WithMissingLookbackValues(MLContext ml, ITransformer model, Dictionary<string, float[]> inputs,
        int rows, Dictionary<string, float[]> expected)
    {
        var lookback = inputs["Lookback"];
        int width = lookback.Length / rows;
        for (int i = 0; i < lookback.Length; i += 5) lookback[i] = float.NaN;
        var windows = ml.Data.LoadFromEnumerable(Enumerable.Range(0, rows)
            .Select(r => new LookbackRow { Lookback = lookback.AsSpan(r * width, width).ToArray() }));
        expected["Forecast"] = model.Transform(windows).GetColumn<float[]>("Forecast").SelectMany(v => v).ToArray();
    }

    /// <summary>ONNX Runtime's value of every expected column within <see cref="Tolerance"/> of the transformer's.</summary>
    private static void AssertOrtEqualsTransform(string what, byte[] onnx, Dictionary<string, float[]> inputs, int rows,
        Dictionary<string, float[]> expected, int variates)
    {
        foreach (var (column, values) in expected)
        {
            var actual = RunOrt(onnx, inputs, rows, column);
            double delta = MaxAbsDiff(values, actual);
            Console.WriteLine($"{what}: max |ORT − Transform| {column} = {delta:E2} over {rows} windows × " +
                $"{Series.S}·{variates} values (range {values.Min():F2}…{values.Max():F2})");
            Assert.IsTrue(delta <= Tolerance, $"{column}: max |Δ| = {delta}");
        }
    }

    private static byte[] Export(Action<Stream> export)
    {
        using var stream = new MemoryStream();
        export(stream);
        return stream.ToArray();
    }

    private static IDataView SeriesView(MLContext ml, int rows, int seed = 3)
        => ml.Data.LoadFromEnumerable(Series.Series(rows, seed));

    [TestMethod]
    [DataRow("calendar")]             // hourly calendar covariates (the default with a timestamp column)
    [DataRow("plain")]                // no timestamp: no calendar covariates
    [DataRow("no-norm")]              // UseNorm = false, two encoder layers
    [DataRow("past+intervals")]       // a past covariate channel, Lower/Upper outputs
    [DataRow("future")]               // a known-future covariate (the future embedding, a second graph input)
    public void OnnxRuntimeForecastEqualsTheTransformer(string variant)
    {
        var ml = new MLContext(seed: 1);
        var train = SeriesView(ml, 240);
        using var model = Series.TrainTiny(ml, train, o =>
        {
            o.MaxEpochs = 2;
            switch (variant)
            {
                case "plain": o.TimestampColumnName = null; break;
                case "no-norm": o.UseNorm = false; o.Layers = 2; o.CalendarFeatures = CalendarFeatures.None; break;
                case "past+intervals":
                    o.VariateColumnNames = new[] { "A", "B" };
                    o.PastCovariateColumnNames = new[] { "C" };
                    o.IntervalCoverage = 0.9;
                    break;
                case "future":
                    o.VariateColumnNames = new[] { "A", "B" };
                    o.FutureCovariateColumnNames = new[] { "C" };
                    break;
            }
        });
        var (inputs, rows, expected) = Score(ml, model, SeriesView(ml, 80, seed: 7));
        var onnx = Export(model.ExportToOnnx);
        AssertOrtEqualsTransform($"iTransformer ({variant})", onnx, inputs, rows, expected,
            model.VariateColumnNames.Count);
        Assert.AreEqual(variant == "past+intervals" ? 3 : 1, expected.Count);
    }

    private static MultiVariateParallelTransformerModel TrainMvpa(MLContext ml, IDataView data,
        Action<MultiVariateParallelTransformerOptions>? change = null)
    {
        var o = new MultiVariateParallelTransformerOptions
        {
            VariateColumnNames = new[] { "A", "B", "C" }, TimestampColumnName = "Time",
            Lookback = Series.L, Horizon = Series.S, PatchLength = 4, ModelWidth = 16, Heads = 4, KeyValueHeads = 2,
            Layers = 1, MaxEpochs = 2, BatchSize = 16, LearningRate = 3e-3, NumberOfThreads = 1,
        };
        change?.Invoke(o);
        return ml.Forecasting.Trainers.MultiVariateParallelTransformer(o).Fit(data);
    }

    [TestMethod]
    [DataRow("calendar")]             // hourly calendar covariates as extra channels
    [DataRow("plain")]                // no calendar covariates, two blocks
    [DataRow("window")]               // a content window of one segment (the window mask matters), no norm
    [DataRow("past+intervals")]       // a past covariate channel, Lower/Upper outputs
    [DataRow("zero-fill")]            // missing values: zero-filled, the observed mask from the NaN entries
    public void OnnxRuntimeForecastOfTheMvpaForecasterEqualsTheTransformer(string variant)
    {
        var ml = new MLContext(seed: 1);
        using var model = TrainMvpa(ml, SeriesView(ml, 240), o =>
        {
            switch (variant)
            {
                case "plain": o.TimestampColumnName = null; o.Layers = 2; break;
                case "window": o.Window = 1; o.UseNorm = false; o.CalendarFeatures = CalendarFeatures.None; break;
                case "past+intervals":
                    o.VariateColumnNames = new[] { "A", "B" };
                    o.PastCovariateColumnNames = new[] { "C" };
                    o.IntervalCoverage = 0.9;
                    break;
                case "zero-fill": o.TimestampColumnName = null; o.MissingValues = MissingValuePolicy.ZeroFill; break;
            }
        });
        var (inputs, rows, expected) = Score(ml, model, SeriesView(ml, 80, seed: 7));
        if (variant == "zero-fill") WithMissingLookbackValues(ml, model, inputs, rows, expected);
        var onnx = Export(model.ExportToOnnx);
        AssertOrtEqualsTransform($"MVPA ({variant})", onnx, inputs, rows, expected,
            model.VariateColumnNames.Count);
        Assert.AreEqual(variant == "past+intervals" ? 3 : 1, expected.Count);
    }

    [TestMethod]
    public void ApplyOnnxModelScoresTheMvpaForecasterFoundInAPipeline()
    {
        var ml = new MLContext(seed: 1);
        var train = SeriesView(ml, 240);
        using var model = TrainMvpa(ml, train, o => o.TimestampColumnName = null);
        var chain = new TransformerChain<ITransformer>(ml.Transforms.CopyColumns("ACopy", "A").Fit(train), model);
        var windows = model.CreateWindows(ml, SeriesView(ml, 60, seed: 9), includeTargets: false);
        var expected = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        string path = Path.Combine(Path.GetTempPath(), $"onnx-mvpa-{Environment.ProcessId}.onnx");
        try
        {
            ml.Model.ExportToOnnx(chain, path);
            var onnx = ml.Transforms.ApplyOnnxModel("Forecast", "Lookback", path).Fit(windows);
            var actual = onnx.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
            Assert.AreEqual(expected.Length, actual.Length);
            double delta = expected.Zip(actual, MaxAbsDiff).Max();
            Console.WriteLine($"MVPA ApplyOnnxModel vs Transform: max |Δ| = {delta:E2} over {actual.Length} windows");
            Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");
            // One row at a time scores the same (the batch dimension is dynamic).
            var one = RunOrt(File.ReadAllBytes(path), new Dictionary<string, float[]>
            {
                ["Lookback"] = windows.GetColumn<float[]>("Lookback").Skip(3).First(),
            }, 1, "Forecast");
            Assert.IsTrue(MaxAbsDiff(expected[3], one) <= Tolerance);
            (onnx as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static CribModel TrainCrib(MLContext ml, IDataView data, Action<CribOptions>? change = null)
    {
        var o = new CribOptions
        {
            VariateColumnNames = new[] { "A", "B", "C" }, TimestampColumnName = "Time", Lookback = Series.L,
            Horizon = Series.S, PatchLength = 8, ModelWidth = 16, Heads = 2, Layers = 1, MaxEpochs = 2, BatchSize = 16,
            LearningRate = 3e-3, NumberOfThreads = 1,
        };
        change?.Invoke(o);
        return ml.Forecasting.Trainers.Crib(o).Fit(data);
    }

    [TestMethod]
    [DataRow("default")]              // the reference's settings (shared K = V = Q, flat head merge), ZeroFill
    [DataRow("separate+intervals")]   // separate key/value projections, two layers, Lower/Upper outputs
    [DataRow("missing")]              // NaN entries zero-filled after scaling
    public void OnnxRuntimeForecastOfTheCribForecasterEqualsTheTransformer(string variant)
    {
        var ml = new MLContext(seed: 1);
        using var model = TrainCrib(ml, SeriesView(ml, 240), o =>
        {
            if (variant != "separate+intervals") return;
            o.SeparateKeyValueProjections = true;
            o.Layers = 2;
            o.IntervalCoverage = 0.9;
        });
        var (inputs, rows, expected) = Score(ml, model, SeriesView(ml, 80, seed: 7));
        if (variant == "missing") WithMissingLookbackValues(ml, model, inputs, rows, expected);
        var onnx = Export(model.ExportToOnnx);
        AssertOrtEqualsTransform($"CRIB ({variant})", onnx, inputs, rows, expected,
            model.VariateColumnNames.Count);
        Assert.AreEqual(variant == "separate+intervals" ? 3 : 1, expected.Count);
    }

    [TestMethod]
    public void ApplyOnnxModelScoresTheCribForecasterFoundInAPipeline()
    {
        var ml = new MLContext(seed: 1);
        var train = SeriesView(ml, 240);
        using var model = TrainCrib(ml, train, o => o.TimestampColumnName = null);
        var chain = new TransformerChain<ITransformer>(ml.Transforms.CopyColumns("ACopy", "A").Fit(train), model);
        var windows = model.CreateWindows(ml, SeriesView(ml, 60, seed: 9), includeTargets: false);
        var expected = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        using var stream = new MemoryStream();
        ml.Model.ExportToOnnx(chain, stream);
        string path = Path.Combine(Path.GetTempPath(), $"onnx-crib-{Environment.ProcessId}.onnx");
        try
        {
            File.WriteAllBytes(path, stream.ToArray());
            var onnx = ml.Transforms.ApplyOnnxModel("Forecast", "Lookback", path).Fit(windows);
            var actual = onnx.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
            Assert.AreEqual(expected.Length, actual.Length);
            double delta = expected.Zip(actual, MaxAbsDiff).Max();
            Console.WriteLine($"CRIB ApplyOnnxModel vs Transform: max |Δ| = {delta:E2} over {actual.Length} windows");
            Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");
            (onnx as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void TheBatchDimensionIsDynamic()
    {
        var ml = new MLContext(seed: 1);
        using var model = Series.TrainTiny(ml, SeriesView(ml, 240), o => o.MaxEpochs = 1);
        var (inputs, rows, expected) = Score(ml, model, SeriesView(ml, 60, seed: 5));
        var onnx = Export(model.ExportToOnnx);
        int width = Series.S * 3;
        var one = RunOrt(onnx, inputs, rows, "Forecast", first: 4, count: 1);
        Assert.IsTrue(MaxAbsDiff(expected["Forecast"].AsSpan(4 * width, width).ToArray(), one) <= Tolerance);
        var several = RunOrt(onnx, inputs, rows, "Forecast", first: 2, count: 7);
        Assert.IsTrue(MaxAbsDiff(expected["Forecast"].AsSpan(2 * width, 7 * width).ToArray(), several) <= Tolerance);
        var all = RunOrt(onnx, inputs, rows, "Forecast");
        Console.WriteLine($"iTransformer batch 1 / 7 / {rows}: max |Δ| = {MaxAbsDiff(expected["Forecast"], all):E2}");
        Assert.IsTrue(MaxAbsDiff(expected["Forecast"], all) <= Tolerance);
    }

    [TestMethod]
    public void MissingValuesAreZeroFilledAfterScalingOrGiveNaNForARefusingModel()
    {
        var ml = new MLContext(seed: 1);
        var train = SeriesView(ml, 240);
        using var filling = Series.TrainTiny(ml, train, o =>
        {
            o.MaxEpochs = 1;
            o.TimestampColumnName = null;
            o.MissingValues = MissingValuePolicy.ZeroFill;
        });
        var (inputs, rows, _) = Score(ml, filling, SeriesView(ml, 40, seed: 5));
        var lookback = inputs["Lookback"];
        int width = lookback.Length / rows;
        for (int i = 0; i < lookback.Length; i += 7) lookback[i] = float.NaN;   // a few holes in every window
        var windows = ml.Data.LoadFromEnumerable(Enumerable.Range(0, rows)
            .Select(r => new LookbackRow { Lookback = lookback.AsSpan(r * width, width).ToArray() }));
        var expected = filling.Transform(windows).GetColumn<float[]>("Forecast").SelectMany(v => v).ToArray();
        var actual = RunOrt(Export(filling.ExportToOnnx), inputs, rows, "Forecast");
        double delta = MaxAbsDiff(expected, actual);
        Console.WriteLine($"iTransformer (ZeroFill) with NaN inputs: max |ORT − Transform| = {delta:E2}");
        Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");

        using var refusing = Series.TrainTiny(ml, train, o => { o.MaxEpochs = 1; o.TimestampColumnName = null; });
        Assert.ThrowsExactly<InvalidOperationException>(() =>
            refusing.Transform(windows).GetColumn<float[]>("Forecast").ToArray());
        var nan = RunOrt(Export(refusing.ExportToOnnx), inputs, rows, "Forecast");
        Assert.IsTrue(nan.Take(width).All(float.IsNaN), "a refusing model's graph propagates NaN");
    }

    public sealed class LookbackRow
    {
        [VectorType(Series.L, 3)] public float[] Lookback { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void ApplyOnnxModelInAPipelineGivesTheTransformersForecast()
    {
        var ml = new MLContext(seed: 1);
        var train = SeriesView(ml, 240);
        var options = Series.TinyOptions(o => { o.MaxEpochs = 1; o.TimestampColumnName = null; });
        using var chain = ml.Transforms.CopyColumns("ACopy", "A")
            .Append(ml.Forecasting.Trainers.InvertedTransformer(options)).Fit(train);
        var windows = chain.LastTransformer.CreateWindows(ml, SeriesView(ml, 60, seed: 9), includeTargets: false);
        var expected = chain.LastTransformer.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        string path = Path.Combine(Path.GetTempPath(), $"onnx-itransformer-{Environment.ProcessId}.onnx");
        try
        {
            // The catalog helper finds the forecaster in the fitted pipeline.
            ml.Model.ExportToOnnx(chain, path);
            var onnx = ml.Transforms.ApplyOnnxModel("Forecast", "Lookback", path).Fit(windows);
            var actual = onnx.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
            Assert.AreEqual(expected.Length, actual.Length);
            double delta = expected.Zip(actual, MaxAbsDiff).Max();
            Console.WriteLine($"iTransformer ApplyOnnxModel vs Transform: max |Δ| = {delta:E2} over {actual.Length} " +
                "windows");
            Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");
            (onnx as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    public sealed class TimestampRow
    {
        public DateTime Timestamp { get; set; }
    }

    public sealed class CalendarRow
    {
        [VectorType(Series.L * 4)] public float[] CalendarFeatures { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void ACalendarModelScoresThroughACustomMappingAndApplyOnnxModel()
    {
        var ml = new MLContext(seed: 1);
        using var model = Series.TrainTiny(ml, SeriesView(ml, 240), o => o.MaxEpochs = 1);
        Assert.AreEqual(CalendarFeatures.Hourly, model.CalendarFeatures);
        var windows = model.CreateWindows(ml, SeriesView(ml, 60, seed: 9), includeTargets: false);
        var expected = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        string path = Path.Combine(Path.GetTempPath(), $"onnx-itransformer-calendar-{Environment.ProcessId}.onnx");
        try
        {
            model.ExportToOnnx(path);
            // The Timestamp column becomes the graph's CalendarFeatures input in the scoring pipeline.
            var pipeline = ml.Transforms.CustomMapping((TimestampRow row, CalendarRow calendar) =>
                    calendar.CalendarFeatures = model.OnnxCalendarInput(row.Timestamp), contractName: null)
                .Append(ml.Transforms.ApplyOnnxModel(new[] { "Forecast" },
                    new[] { "Lookback", ForecastingOnnxExportExtensions.CalendarInputName }, path));
            var onnx = pipeline.Fit(windows);
            var actual = onnx.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
            Assert.AreEqual(expected.Length, actual.Length);
            double delta = expected.Zip(actual, MaxAbsDiff).Max();
            Console.WriteLine($"iTransformer (calendar) CustomMapping + ApplyOnnxModel vs Transform: max |Δ| = " +
                $"{delta:E2}");
            Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");
            (onnx.LastTransformer as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
        using var plain = Series.TrainTiny(ml, SeriesView(ml, 240), o =>
        {
            o.MaxEpochs = 1;
            o.TimestampColumnName = null;
        });
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() =>
            plain.OnnxCalendarInput(DateTime.UnixEpoch)).Message, "no calendar covariates");
    }

    [TestMethod]
    public void TheGraphCarriesTheForecastersMetadata()
    {
        var ml = new MLContext(seed: 1);
        using var model = Series.TrainTiny(ml, SeriesView(ml, 240), o => o.MaxEpochs = 1);
        using var session = new InferenceSession(Export(model.ExportToOnnx));
        var meta = session.ModelMetadata.CustomMetadataMap;
        Assert.AreEqual("24", meta["lookback"]);
        Assert.AreEqual("8", meta["horizon"]);
        Assert.AreEqual("[\"A\",\"B\",\"C\"]", meta["variates"]);
        Assert.AreEqual("Hourly", meta["calendar"]);
        Assert.AreEqual("01:00:00", meta["frequency"]);
        CollectionAssert.AreEquivalent(new[] { "Lookback", ForecastingOnnxExportExtensions.CalendarInputName },
            session.InputMetadata.Keys.ToArray());
        CollectionAssert.AreEqual(new[] { -1, 24 * 3 }, session.InputMetadata["Lookback"].Dimensions);
        CollectionAssert.AreEqual(new[] { -1, 8 * 3 }, session.OutputMetadata["Forecast"].Dimensions);
    }

    [TestMethod]
    public void ADisposedForecasterOrAReadOnlyStreamIsRefused()
    {
        var ml = new MLContext(seed: 1);
        var model = Series.TrainTiny(ml, SeriesView(ml, 240), o => o.MaxEpochs = 1);
        using (var readOnly = new MemoryStream(new byte[16], writable: false))
            Assert.ThrowsExactly<ArgumentException>(() => model.ExportToOnnx(readOnly));
        model.Dispose();
        var e = Assert.ThrowsExactly<ObjectDisposedException>(() => model.ExportToOnnx(new MemoryStream()));
        StringAssert.Contains(e.Message, "disposed");
        Assert.ThrowsExactly<ObjectDisposedException>(() => ml.Model.ExportToOnnx(model, new MemoryStream()));
    }
}
