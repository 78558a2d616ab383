using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Engine;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Interop;

namespace MLNet.Attention.Tests.Forecasting;

[TestClass]
public sealed class InvertedTransformerTrainerTests
{
    internal const int L = 24, S = 8;

    internal sealed class SeriesRow
    {
        public DateTime Time { get; set; }
        public float A { get; set; }
        public float B { get; set; }
        public float C { get; set; }
    }

    /// <summary>Three coupled daily/half-daily cycles with noise, hourly.</summary>
    internal static SeriesRow[] Series(int rows, int seed = 3)
    {
        var rng = new Random(seed);
        var start = new DateTime(2020, 1, 1);
        return Enumerable.Range(0, rows).Select(t => new SeriesRow
        {
            Time = start.AddHours(t),
            A = (float)(10 + 3 * Math.Sin(2 * Math.PI * t / 24) + 0.2 * rng.NextDouble()),
            B = (float)(5 * Math.Cos(2 * Math.PI * t / 12) + 0.2 * rng.NextDouble()),
            C = (float)(2 * Math.Sin(2 * Math.PI * (t - 3) / 24) + 0.05 * t / 24 + 0.2 * rng.NextDouble()),
        }).ToArray();
    }

    internal static InvertedTransformerOptions TinyOptions(Action<InvertedTransformerOptions>? change = null)
    {
        var o = new InvertedTransformerOptions
        {
            VariateColumnNames = new[] { "A", "B", "C" },
            TimestampColumnName = "Time",
            Lookback = L, Horizon = S, ModelWidth = 16, Heads = 2, Layers = 1, FeedForwardWidth = 32,
            MaxEpochs = 4, BatchSize = 16, LearningRate = 3e-3, NumberOfThreads = 1,
        };
        change?.Invoke(o);
        return o;
    }

    internal static InvertedTransformerModel TrainTiny(MLContext ml, IDataView data, Action<InvertedTransformerOptions>? change = null) =>
        ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(change)).Fit(data);

    [TestMethod]
    public void LearnsASeriesAndBeatsTheNaiveBaseline()
    {
        var ml = new MLContext(seed: 11);
        var all = ml.Data.LoadFromEnumerable(Series(900));
        var train = ml.Data.TakeRows(all, 700);
        var test = ml.Data.SkipRows(all, 700 - L);
        var reports = new List<EpochReport>();
        using var model = TrainTiny(ml, train, o => { o.MaxEpochs = 6; o.EpochCallback = reports.Add; });
        Assert.AreEqual(6, reports.Count);
        Assert.IsTrue(reports[^1].TrainLoss < reports[0].TrainLoss, "training loss should fall");
        Assert.IsNotNull(model.TrainingSummary);
        var metrics = model.Evaluate(test);
        var naive = model.EvaluateLastValueBaseline(test);
        Assert.AreEqual(200 - S + 1, metrics.Windows);
        Assert.IsTrue(metrics.MeanSquaredError < 0.5 * naive.MeanSquaredError, $"model {metrics.MeanSquaredError} vs naive {naive.MeanSquaredError}");
        Assert.IsTrue(metrics.RootMeanSquaredErrorOriginal > 0 && double.IsFinite(metrics.SymmetricMeanAbsolutePercentageError));
    }

    [TestMethod]
    public void SameSeedGivesBitIdenticalTraining()
    {
        float[] Run()
        {
            var ml = new MLContext(seed: 5);
            using var model = TrainTiny(ml, ml.Data.LoadFromEnumerable(Series(300)), o => o.MaxEpochs = 2);
            return model.Network.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();
        }
        CollectionAssert.AreEqual(Run(), Run());
    }

    [TestMethod]
    public void ForecastContinuesTheSeriesWithTimestamps()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Series(300));
        using var model = TrainTiny(ml, data, o => o.MaxEpochs = 1);
        Assert.AreEqual(TimeSpan.FromHours(1), model.Frequency);
        var forecast = model.Forecast(data);
        Assert.AreEqual(S, forecast.Horizon);
        Assert.AreEqual(new DateTime(2020, 1, 1).AddHours(300), forecast.Timestamps![0]);
        Assert.AreEqual(S, forecast.Series("C").Length);
        Assert.AreEqual(forecast.Values[2], forecast[0, "C"]);
        Assert.ThrowsExactly<ArgumentException>(() => forecast.Series("D"));
    }

    [TestMethod]
    public void TransformPredictionEngineAndForecastAgree()
    {
        var ml = new MLContext(seed: 2);
        var data = ml.Data.LoadFromEnumerable(Series(260));
        using var model = TrainTiny(ml, data, o => o.MaxEpochs = 1);
        var windows = model.CreateWindows(ml, data, includeTargets: false);
        var scored = model.Transform(windows);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, S, 3), scored.Schema["Forecast"].Type);
        var forecasts = scored.GetColumn<float[]>("Forecast").ToArray();
        Assert.AreEqual(260 - L + 1, forecasts.Length);
        // The last window equals Forecast() on the whole series.
        CollectionAssert.AreEqual(model.Forecast(data).Values, forecasts[^1]);
        // A prediction engine scores one window at a time with the same numbers.
        var engine = ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(model);
        var rows = ml.Data.CreateEnumerable<WindowInput>(windows, reuseRowObject: false).ToArray();
        for (int i = 0; i < rows.Length; i += 57)
        {
            var single = engine.Predict(rows[i]).Forecast;
            for (int j = 0; j < single.Length; j++) Assert.AreEqual(forecasts[i][j], single[j], 1e-5f);
        }
    }

    internal sealed class WindowInput
    {
        [VectorType(L * 3)] public float[] Lookback { get; set; } = Array.Empty<float>();
        public DateTime Timestamp { get; set; }
    }

    internal sealed class WindowOutput
    {
        [VectorType(S * 3)] public float[] Forecast { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void SaveAndLoadGiveBitIdenticalForecasts()
    {
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Series(260));
        using var model = TrainTiny(ml, data, o => { o.MaxEpochs = 1; o.ScoringBatchSize = 64; });
        string path = Path.Combine(Path.GetTempPath(), $"itransformer-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var fresh = new MLContext();
            using var loaded = (InvertedTransformerModel)fresh.Model.Load(path, out _);
            Assert.AreEqual(model.Config, loaded.Config);
            Assert.AreEqual(model.Frequency, loaded.Frequency);
            Assert.AreEqual(model.BatchSize, loaded.BatchSize);
            CollectionAssert.AreEqual(model.Forecast(data).Values, loaded.Forecast(data).Values);
            var windows = model.CreateWindows(ml, data);
            CollectionAssert.AreEqual(model.Transform(windows).GetColumn<float[]>("Forecast").SelectMany(v => v).ToArray(),
                loaded.Transform(windows).GetColumn<float[]>("Forecast").SelectMany(v => v).ToArray());
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void LoadsInAFreshProcessWithoutRegistration()
    {
        var ml = new MLContext(seed: 3);
        var rows = Series(200);
        var data = ml.Data.LoadFromEnumerable(rows);
        using var model = TrainTiny(ml, data, o => o.MaxEpochs = 1);
        string dir = Path.Combine(Path.GetTempPath(), $"forecast-probe-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string zip = Path.Combine(dir, "model.zip"), csv = Path.Combine(dir, "series.csv");
            ml.Model.Save(model, data.Schema, zip);
            File.WriteAllLines(csv, rows.Select(r => FormattableString.Invariant($"{r.Time:yyyy-MM-dd HH:mm:ss},{r.A:R},{r.B:R},{r.C:R}")).Prepend("Time,A,B,C"));
            var (exit, lines, stderr) = Bridge.BridgeTestHelpers.RunProbe("forecast", zip, csv);
            Assert.AreEqual(0, exit, string.Join("\n", lines) + stderr);
            CollectionAssert.Contains(lines, "TYPE " + typeof(InvertedTransformerModel).FullName);
            int threads = int.Parse(lines.Single(l => l.StartsWith("THREADS "))[8..]);
            int before = TorchSharp.torch.get_num_threads();
            TorchSharp.torch.set_num_threads(threads); // bit-identical at the same libtorch thread count
            try
            {
                string expected = "ROW " + string.Join(" ", model.Forecast(data).Values.Select(v => BitConverter.SingleToInt32Bits(v).ToString("x8")));
                Assert.AreEqual(expected, lines.Single(l => l.StartsWith("ROW ")));
            }
            finally { TorchSharp.torch.set_num_threads(before); }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    public void EarlyStoppingRestoresTheBestEpochAndLogsProgress()
    {
        var ml = new MLContext(seed: 4);
        var messages = new List<string>();
        ml.Log += (_, e) => { if (e.Source.Contains("InvertedTransformer")) lock (messages) messages.Add(e.Message); };
        var data = ml.Data.LoadFromEnumerable(Series(400));
        // A huge learning rate makes validation loss bounce, so patience 1 stops early.
        using var model = TrainTiny(ml, data, o => { o.MaxEpochs = 8; o.EarlyStoppingPatience = 1; o.LearningRate = 0.05; o.LearningRateSchedule = LearningRateSchedule.Constant; });
        var summary = model.TrainingSummary!;
        double best = summary.Epochs.Min(e => e.ValidationLoss!.Value);
        Assert.AreEqual(best, summary.Epochs[summary.BestEpoch - 1].ValidationLoss);
        if (summary.StoppedEarly) Assert.IsTrue(summary.Epochs.Count < 8);
        Assert.IsTrue(messages.Any(m => m.Contains("epoch 1/8: train loss")), string.Join("\n", messages));
        // The restored weights reproduce the best validation loss.
        Assert.IsTrue(summary.Epochs.All(e => e.TrainRowsPerSecond > 0));
    }

    [TestMethod]
    public void CancellationStopsTraining()
    {
        var ml = new MLContext(seed: 4);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsExactly<OperationCanceledException>(() => TrainTiny(ml, ml.Data.LoadFromEnumerable(Series(300)), o => o.CancellationToken = cts.Token));
    }

    [TestMethod]
    public void GpuDemandedButAbsentFailsUnlessFallbackIsAllowed()
    {
        var ml = new MLContext(seed: 4) { GpuDeviceId = 0, FallbackToCpu = false };
        var data = ml.Data.LoadFromEnumerable(Series(200));
        if (TorchSharp.torch.cuda.is_available()) Assert.Inconclusive("A CUDA device is present.");
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => TrainTiny(ml, data, o => o.MaxEpochs = 1));
        StringAssert.Contains(ex.Message, "GpuDeviceId = 0");
        ml.FallbackToCpu = true;
        using var model = TrainTiny(ml, data, o => o.MaxEpochs = 1);
        Assert.AreEqual(1, model.TrainingSummary!.Epochs.Count);
    }

    [TestMethod]
    public void TooFewRowsAndBadOptionsAreExplained()
    {
        var ml = new MLContext(seed: 4);
        var tiny = ml.Data.LoadFromEnumerable(Series(35)); // 7 rows validate, 28 < 24 + 8 remain
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => TrainTiny(ml, tiny));
        StringAssert.Contains(ex.Message, "fewer than lookback + horizon = 32");
        StringAssert.Contains(ex.Message, "held out for validation");
        var heads = Assert.ThrowsExactly<ArgumentException>(() => ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o => o.Heads = 3)));
        StringAssert.Contains(heads.Message, "divide ModelWidth = 16");
        var noColumns = Assert.ThrowsExactly<ArgumentException>(() => ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o => o.VariateColumnNames = Array.Empty<string>())));
        StringAssert.Contains(noColumns.Message, "variate column");
        var calendar = Assert.ThrowsExactly<ArgumentException>(() => ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o => { o.TimestampColumnName = null; o.CalendarFeatures = CalendarFeatures.Hourly; })));
        StringAssert.Contains(calendar.Message, "needs TimestampColumnName");
    }

    [TestMethod]
    public void ScoringRejectsWrongWindowSizeAndShortHistory()
    {
        var ml = new MLContext(seed: 4);
        var data = ml.Data.LoadFromEnumerable(Series(200));
        using var model = TrainTiny(ml, data, o => { o.MaxEpochs = 1; o.TimestampColumnName = null; });
        var wrong = ml.Data.LoadFromEnumerable(new[] { new { Lookback = new float[5] } }.Select(x => new WrongWindow { Lookback = x.Lookback }));
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(wrong));
        StringAssert.Contains(ex.Message, "Lookback");
        var windows = ml.Data.CreateEnumerable<LookbackOnly>(model.CreateWindows(ml, data, includeTargets: false), false).Take(3).ToArray();
        windows[2].Lookback[5] = float.NaN;
        var nan = Assert.ThrowsExactly<InvalidOperationException>(() => model.Transform(ml.Data.LoadFromEnumerable(windows)).GetColumn<float[]>("Forecast").ToArray());
        StringAssert.Contains(nan.Message, "Column 'Lookback' has a non-finite value (NaN) at row 2, element 5");
        // The series the model was trained on is scored as its windows (ForecastBySsa-style); a view that is neither a
        // series with every variate nor a window view is refused with the way to build windows.
        var fromSeries = model.Transform(data).GetColumn<float[]>("Forecast").ToArray();
        var fromWindows = model.Transform(model.CreateWindows(ml, data, includeTargets: false)).GetColumn<float[]>("Forecast").ToArray();
        Assert.AreEqual(200 - L + 1, fromSeries.Length);
        for (int w = 0; w < fromSeries.Length; w++) CollectionAssert.AreEqual(fromWindows[w], fromSeries[w]);
        var partial = ml.Transforms.SelectColumns("A", "B").Fit(data).Transform(data);
        var seriesWithoutC = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(partial));
        StringAssert.Contains(seriesWithoutC.Message, "Column 'Lookback' was not found");
        StringAssert.Contains(seriesWithoutC.Message, "model.CreateWindows(mlContext, series)");
        var shortHistory = Assert.ThrowsExactly<InvalidOperationException>(() => model.Forecast(ml.Data.TakeRows(data, 10)));
        StringAssert.Contains(shortHistory.Message, "InvertedTransformer: the history has 10 rows; expected at least 24 rows " +
            "(the model's lookback; the horizon is forecast, not read). Pass a longer history.");
        // An empty history asks for the lookback too, not lookback + horizon; exactly the lookback is enough.
        var none = ml.Data.FilterRowsByColumn(data, "A", lowerBound: 1e6);
        var emptyHistory = Assert.ThrowsExactly<InvalidOperationException>(() => model.Forecast(none));
        StringAssert.Contains(emptyHistory.Message, "InvertedTransformer history: the data view has no rows; expected at least 24 " +
            "rows (the model's lookback; the horizon is forecast, not read). Pass a view with at least 24 rows");
        Assert.IsFalse(emptyHistory.Message.Contains("lookback + horizon"), emptyHistory.Message);
        Assert.AreEqual(S * 3, model.Forecast(ml.Data.TakeRows(data, L)).Values.Length);
        var emptyWindows = Assert.ThrowsExactly<InvalidOperationException>(() => model.CreateWindows(ml, none,
            includeTargets: false));
        StringAssert.Contains(emptyWindows.Message, "no rows; expected at least 24 rows (one lookback window)");
        var noTarget = Assert.ThrowsExactly<InvalidOperationException>(() => model.Evaluate(ml.Data.TakeRows(data, 30)));
        StringAssert.Contains(noTarget.Message, "fewer than lookback + horizon = 32");
    }

    [TestMethod]
    public void TimestampGaps_Warn_Refuse_Ignore()
    {
        // Hourly rows with 3 gaps: original hours 50-51, 120 and 150-152 are missing.
        var missing = new HashSet<int> { 50, 51, 120, 150, 151, 152 };
        var rows = Series(260).Where((_, t) => !missing.Contains(t)).ToArray();
        const string first = "first at row 50 (2020-01-03T01:00:00 then 2020-01-03T04:00:00), " +
                             "row 118 (2020-01-05T23:00:00 then 2020-01-06T01:00:00), row 147";

        // Warn (default): trains, and mlContext.Log gets one warning with the count and the first gap rows.
        var ml = new MLContext(seed: 4);
        var warnings = new List<string>();
        ml.Log += (_, e) =>
        {
            if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.Message);
        };
        using (var model = TrainTiny(ml, ml.Data.LoadFromEnumerable(rows), o => o.MaxEpochs = 1))
            Assert.AreEqual(TimeSpan.FromHours(1), model.Frequency);
        Assert.AreEqual(1, warnings.Count, string.Join("\n", warnings));
        StringAssert.Contains(warnings[0], "InvertedTransformer training data: timestamp column 'Time' has 3 gap(s) longer than " +
            "the series step 01:00:00 (the most common interval), " + first);
        StringAssert.Contains(warnings[0], "set TimestampGapPolicy = Refuse to make this an error, or Ignore to silence it");

        // Refuse: the same facts as an error, naming the option, before any training.
        var refuse = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TrainTiny(ml, ml.Data.LoadFromEnumerable(rows), o => o.TimestampGapPolicy = TimestampGapPolicy.Refuse));
        StringAssert.Contains(refuse.Message, "InvertedTransformer training data: timestamp column 'Time' has 3 gap(s) " +
            "longer than the series step 01:00:00 (the most common interval), " + first);
        StringAssert.Contains(refuse.Message, "expected one row every 01:00:00, because TimestampGapPolicy = Refuse. " +
            "Insert the missing rows");
        StringAssert.Contains(refuse.Message, "or set TimestampGapPolicy = Warn to train across the gaps");

        // A validation set is checked against the training step.
        var regular = ml.Data.LoadFromEnumerable(Series(200));
        var validation = ml.Data.LoadFromEnumerable(rows.Skip(100).ToArray());
        var refuseValidation = Assert.ThrowsExactly<InvalidOperationException>(() => TrainTiny(ml, regular, o =>
        {
            o.TimestampGapPolicy = TimestampGapPolicy.Refuse;
            o.ValidationSet = validation;
        }));
        StringAssert.Contains(refuseValidation.Message, "InvertedTransformer validation data: timestamp column 'Time' has 2 gap(s)");
        StringAssert.Contains(refuseValidation.Message, "first at row 18 (2020-01-05T23:00:00 then 2020-01-06T01:00:00)");

        // Ignore: silent.
        warnings.Clear();
        using (TrainTiny(ml, ml.Data.LoadFromEnumerable(rows), o =>
               {
                   o.MaxEpochs = 1;
                   o.TimestampGapPolicy = TimestampGapPolicy.Ignore;
               })) { }
        Assert.AreEqual(0, warnings.Count, string.Join("\n", warnings));
        var invalid = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            TrainTiny(ml, regular, o => o.TimestampGapPolicy = (TimestampGapPolicy)7));
        StringAssert.Contains(invalid.Message, "TimestampGapPolicy must be Warn, Refuse or Ignore.");
    }

    private sealed class LookbackOnly
    {
        [VectorType(L * 3)] public float[] Lookback { get; set; } = Array.Empty<float>();
    }

    private sealed class WrongWindow
    {
        [VectorType(5)] public float[] Lookback { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void EstimatorSchemaChecksNameTheColumn()
    {
        var ml = new MLContext(seed: 4);
        var trainer = ml.Forecasting.Trainers.InvertedTransformer(TinyOptions());
        static SchemaShape.Column Scalar(string name, DataViewType type) => HostSettings.SchemaColumn(name, SchemaShape.Column.VectorKind.Scalar, type);
        var shape = new SchemaShape(new[] { Scalar("A", NumberDataViewType.Single), Scalar("B", TextDataViewType.Instance), Scalar("Time", DateTimeDataViewType.Instance) });
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.GetOutputSchema(shape));
        StringAssert.Contains(ex.Message, "'B'");
        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.GetOutputSchema(new SchemaShape(new[] { Scalar("A", NumberDataViewType.Single) })));
        StringAssert.Contains(missing.Message, "'B' was not found");
        var output = trainer.GetOutputSchema(new SchemaShape(new[] { Scalar("A", NumberDataViewType.Single), Scalar("B", NumberDataViewType.Double), Scalar("C", NumberDataViewType.Single) }));
        Assert.IsTrue(output.Any(c => c.Name == "Forecast"));
    }


    [TestMethod]
    public void PaperRecipesGiveEachDatasetsScriptSettingsAndDffFollowsTheWidth()
    {
        var etth1Long = InvertedTransformerOptions.PaperRecipe("etth1", 336);
        Assert.AreEqual((2, 512, 1e-4, 32), (etth1Long.Layers, etth1Long.ModelWidth, etth1Long.LearningRate, etth1Long.BatchSize));
        Assert.AreEqual(512, etth1Long.ToConfig().FeedForwardWidth, "D = d_ff unless d_ff is set");
        Assert.AreEqual(256, InvertedTransformerOptions.PaperRecipe("ETTh1", 96).ModelWidth);
        var traffic = InvertedTransformerOptions.PaperRecipe("Traffic", 720);
        Assert.AreEqual((4, 512, 1e-3, 16), (traffic.Layers, traffic.ModelWidth, traffic.LearningRate, traffic.BatchSize));
        Assert.IsFalse(InvertedTransformerOptions.PaperRecipe("PEMS08", 48).UseNorm);
        Assert.IsTrue(InvertedTransformerOptions.PaperRecipe("PEMS08", 12).UseNorm);
        Assert.AreEqual(1, InvertedTransformerOptions.PaperRecipe("Exchange", 336).MaxEpochs);
        Assert.AreEqual(CalendarFeatures.None, InvertedTransformerOptions.PaperRecipe("Solar", 96).CalendarFeatures);
        var unknown = Assert.ThrowsExactly<ArgumentException>(() => InvertedTransformerOptions.PaperRecipe("ILI", 24));
        StringAssert.Contains(unknown.Message, "ETTh1, ETTh2");

        // Width alone: d_ff follows it; an explicit d_ff still wins.
        Assert.AreEqual(64, new InvertedTransformerOptions { ModelWidth = 64 }.ToConfig().FeedForwardWidth);
        Assert.AreEqual(32, new InvertedTransformerOptions { ModelWidth = 64, FeedForwardWidth = 32 }.ToConfig().FeedForwardWidth);
    }

    [TestMethod]
    public void TheSimpleOverloadSetsWidthLayersAndFeedForwardWidth()
    {
        var ml = new MLContext(seed: 5);
        var data = ml.Data.LoadFromEnumerable(Series(300));
        using var model = ml.Forecasting.Trainers.InvertedTransformer(new[] { "A", "B", "C" }, lookback: L, horizon: S,
            maxEpochs: 1, modelWidth: 16, layers: 1).Fit(data);
        Assert.AreEqual((16, 1, 16), (model.Config.ModelWidth, model.Config.Layers, model.Config.FeedForwardWidth));
        using var wider = ml.Forecasting.Trainers.InvertedTransformer(new[] { "A", "B", "C" }, lookback: L, horizon: S,
            maxEpochs: 1, modelWidth: 16, layers: 1, feedForwardWidth: 24).Fit(data);
        Assert.AreEqual(24, wider.Config.FeedForwardWidth);
    }
}
