using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Engine;
using MLNet.Attention.Forecasting;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Forecasting;

/// <summary>Missing values as the forecasting toolkit's normal case: policies, masks, masked loss and metrics, the
/// simulation helper, duplicate timestamps, and the CRIB forecaster.</summary>
[TestClass]
public sealed class MissingValueForecastingTests
{
    private static readonly string[] Variates = { "A", "B", "C" };

    /// <summary>The test series with a share of its values removed (NaN) by a seeded point pattern.</summary>
    private static IDataView Incomplete(MLContext ml, int rows, double rate, int seed = 7) =>
        MissingValueSimulation.Apply(ml.Data.LoadFromEnumerable(Series(rows)), Variates, MissingPattern.Point, rate, seed, "Time");

    private static CribOptions TinyCrib(Action<CribOptions>? change = null)
    {
        var o = new CribOptions
        {
            VariateColumnNames = Variates, TimestampColumnName = "Time", Lookback = L, Horizon = S, PatchLength = 8,
            ModelWidth = 16, Heads = 2, Layers = 1, MaxEpochs = 4, BatchSize = 16, LearningRate = 3e-3,
            NumberOfThreads = 1, Dropout = 0,
        };
        change?.Invoke(o);
        return o;
    }

    [TestMethod]
    public void ZeroFillTrainsEvaluatesAndForecastsThroughMissingValuesWithoutNaN()
    {
        var ml = new MLContext(seed: 11);
        var all = Incomplete(ml, 900, 0.2);
        var train = ml.Data.TakeRows(all, 700);
        var test = ml.Data.SkipRows(all, 700 - L);
        using var model = TrainTiny(ml, train, o => { o.MaxEpochs = 6; o.MissingValues = MissingValuePolicy.ZeroFill; });
        Assert.AreEqual(MissingValuePolicy.ZeroFill, model.MissingValues);

        var metrics = model.Evaluate(test);
        var naive = model.EvaluateLastValueBaseline(test);
        // 20 % of the 193 × 8 × 3 targets are missing and left out of the metrics.
        Assert.AreEqual(200 - S + 1, metrics.Windows + metrics.SkippedWindows);
        Assert.AreEqual(metrics.Windows * S * 3L, metrics.ObservedTargets + metrics.MissingTargets);
        Assert.IsTrue(metrics.MissingTargets > 0.1 * metrics.Windows * S * 3, $"{metrics.MissingTargets} missing targets");
        Assert.IsTrue(double.IsFinite(metrics.MeanSquaredError) && double.IsFinite(naive.MeanSquaredError));
        Assert.IsTrue(metrics.MeanSquaredError < 0.6 * naive.MeanSquaredError, $"model {metrics} vs naive {naive}");
        StringAssert.Contains(metrics.ToString(), "missing targets left out");

        // Forecast, Transform and the prediction engine all read windows with NaN and return finite forecasts.
        var forecast = model.Forecast(all);
        Assert.IsTrue(forecast.Values.All(float.IsFinite));
        var windows = model.CreateWindows(ml, test, includeTargets: false);
        var scored = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        Assert.IsTrue(scored.All(f => f.All(float.IsFinite)));
        var rows = ml.Data.CreateEnumerable<WindowInput>(windows, reuseRowObject: false).ToArray();
        Assert.IsTrue(rows.Any(r => r.Lookback.Any(float.IsNaN)), "the windows should hold missing values");
        using var engine = ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(model);
        for (int i = 0; i < rows.Length; i += 41)
            CollectionAssert.AreEqual(scored[i], engine.Predict(rows[i]).Forecast, new Tolerance(1e-5f));
    }

    [TestMethod]
    public void RefuseNamesTheColumnTheRowAndTheOptionThatAcceptsMissingValues()
    {
        var ml = new MLContext(seed: 1);
        var series = Series(200);
        series[17].B = float.NaN;
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => TrainTiny(ml, ml.Data.LoadFromEnumerable(series)));
        StringAssert.Contains(error.Message, "column 'B' is missing (NaN) at row 17");
        StringAssert.Contains(error.Message, "MissingValues = MissingValuePolicy.ZeroFill");

        // A model trained without missing values refuses a window with NaN at scoring, saying how to accept it.
        using var model = TrainTiny(ml, ml.Data.LoadFromEnumerable(Series(200)), o => o.MaxEpochs = 1);
        var window = new WindowInput { Lookback = Enumerable.Repeat(1f, L * 3).ToArray(), Timestamp = new DateTime(2020, 3, 1) };
        window.Lookback[5] = float.NaN;
        using var engine = ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(model);
        var scoring = Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(window));
        StringAssert.Contains(scoring.Message, "Column 'Lookback'");
        StringAssert.Contains(scoring.Message, "element 5");
        StringAssert.Contains(scoring.Message, "MissingValues = MissingValuePolicy.ZeroFill");
    }

    [TestMethod]
    public void BadMissingDataIsRefusedWithWhatAndWhy()
    {
        var ml = new MLContext(seed: 1);
        // A variate never observed in training (the column pattern) trains as fully missing, with a warning in the
        // log; its forecasts stay finite.
        var allMissing = Series(200);
        foreach (var row in allMissing) row.C = float.NaN;
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("no observed value")) warnings.Add(e.Message); };
        using (var unobserved = TrainTiny(ml, ml.Data.LoadFromEnumerable(allMissing),
                   o => { o.MaxEpochs = 1; o.MissingValues = MissingValuePolicy.ZeroFill; }))
        {
            Assert.IsTrue(warnings.Any(w => w.Contains("column(s) 'C'")), "expected a warning naming column C");
            var unobservedForecast = unobserved.Forecast(ml.Data.LoadFromEnumerable(allMissing));
            Assert.IsTrue(unobservedForecast.Values.All(float.IsFinite));
            var metrics = unobserved.Evaluate(ml.Data.LoadFromEnumerable(allMissing));
            Assert.IsTrue(double.IsFinite(metrics.MeanSquaredError));
        }

        // Infinity is never a missing value.
        var infinite = Series(200);
        infinite[3].A = float.PositiveInfinity;
        var inf = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TrainTiny(ml, ml.Data.LoadFromEnumerable(infinite), o => o.MissingValues = MissingValuePolicy.ZeroFill));
        StringAssert.Contains(inf.Message, "+infinity at row 3");

        // A lookback with every value missing cannot be forecast: Forecast, the prediction engine and Transform say so.
        using var model = TrainTiny(ml, Incomplete(ml, 300, 0.1), o => { o.MaxEpochs = 1; o.MissingValues = MissingValuePolicy.ZeroFill; });
        var history = Series(100);
        foreach (var row in history.Skip(100 - L)) row.A = row.B = row.C = float.NaN;
        var forecast = Assert.ThrowsExactly<InvalidOperationException>(() => model.Forecast(ml.Data.LoadFromEnumerable(history)));
        StringAssert.Contains(forecast.Message, $"rows {100 - L} to 99) are all missing");
        var empty = new WindowInput { Lookback = Enumerable.Repeat(float.NaN, L * 3).ToArray(), Timestamp = new DateTime(2020, 3, 1) };
        using var engine = ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(model);
        var scoring = Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(empty));
        StringAssert.Contains(scoring.Message, "has no observed value");
        var infiniteWindow = new WindowInput { Lookback = Enumerable.Repeat(1f, L * 3).ToArray(), Timestamp = new DateTime(2020, 3, 1) };
        infiniteWindow.Lookback[2] = float.NegativeInfinity;
        var infScoring = Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(infiniteWindow));
        StringAssert.Contains(infScoring.Message, "rejects infinity");
    }

    [TestMethod]
    public void MaskedLossAndMetricsLeaveMissingTargetsOut()
    {
        using var scope = NewDisposeScope();
        var forecast = tensor(new float[] { 1, 2, 3, 4 });
        var target = tensor(new float[] { 1, 0, 0, 2 });
        var mask = tensor(new float[] { 1, 0, 1, 1 });
        // Observed errors 0, 3, 2 → MSE 13/3, MAE 5/3; the missing entry (error 2) is ignored.
        Assert.AreEqual(13f / 3, MaskedLoss.SquaredError(forecast, target, mask).item<float>(), 1e-6f);
        Assert.AreEqual(5f / 3, MaskedLoss.AbsoluteError(forecast, target, mask).item<float>(), 1e-6f);
        Assert.AreEqual(0f, MaskedLoss.SquaredError(forecast, target, zeros(4)).item<float>(), "no observed target: 0, not NaN");

        var accumulator = new ForecastMetricsAccumulator(new SeriesScaler(new[] { 0f, 0f }, new[] { 1f, 1f }));
        accumulator.AddScaled(new[] { 1f, 2f, 3f, 4f }, new[] { 1f, 0f, 0f, 2f }, 1, new[] { 1f, 0f, 1f, 1f });
        accumulator.SkipWindows(2);
        var metrics = accumulator.Result();
        Assert.AreEqual(13.0 / 3, metrics.MeanSquaredError, 1e-9);
        Assert.AreEqual((3L, 1L, 2), (metrics.ObservedTargets, metrics.MissingTargets, metrics.SkippedWindows));
        // Per variate: variate 0 saw errors 0 and 3, variate 1 only 2 (its other target is missing).
        CollectionAssert.AreEqual(new[] { 4.5, 4.0 }, metrics.MeanSquaredErrorPerVariate.ToArray());
    }

    [TestMethod]
    public void SimulatedPatternsRemoveWhatTheProtocolSays()
    {
        const int rows = 400, variates = 7;
        var point = MissingValueSimulation.Mask(rows, variates, MissingPattern.Point, 0.2, seed: 1);
        Assert.AreEqual(rows * variates * 2 / 10, point.Count(o => !o), "point: exactly ⌊size · rate⌋ removed");
        CollectionAssert.AreEqual(point, MissingValueSimulation.Mask(rows, variates, MissingPattern.Point, 0.2, seed: 1));
        CollectionAssert.AreNotEqual(point, MissingValueSimulation.Mask(rows, variates, MissingPattern.Point, 0.2, seed: 2));

        var column = MissingValueSimulation.Mask(rows, variates, MissingPattern.Column, 0.3, seed: 1);
        var missingColumns = Enumerable.Range(0, variates).Where(n => !column[n]).ToArray();
        Assert.AreEqual(2, missingColumns.Length, "⌊7 · 0.3⌋ = 2 whole variates");
        foreach (int n in missingColumns)
            Assert.IsTrue(Enumerable.Range(0, rows).All(t => !column[t * variates + n]));
        Assert.AreEqual(2 * rows, column.Count(o => !o));

        var block = MissingValueSimulation.Mask(rows, variates, MissingPattern.Block, 0.2, seed: 1);
        int removed = block.Count(o => !o);
        Assert.IsTrue(removed > 0 && removed <= rows * variates * 2 / 10 / 25 * 25, $"{removed}: overlapping blocks stay at or below the nominal rate");

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MissingValueSimulation.Mask(rows, variates, MissingPattern.Point, 1.0, 1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MissingValueSimulation.Mask(rows, variates, MissingPattern.Point, -0.1, 1));

        // The view form sets NaN exactly where the mask says and keeps the timestamps.
        var ml = new MLContext(1);
        var view = MissingValueSimulation.Apply(ml.Data.LoadFromEnumerable(Series(rows)), Variates, MissingPattern.Point, 0.25, 3, "Time");
        var frame = TimeSeriesFrame.FromDataView(view, Variates, "Time", allowMissing: true, "test");
        Assert.AreEqual(rows * 3 / 4, frame.Values.Count(float.IsNaN));
        Assert.AreEqual(new DateTime(2020, 1, 1, 5, 0, 0), frame.Timestamps![5]);
    }

    [TestMethod]
    public void CribProtocolSplitsEtth1AsTheReferenceLog()
    {
        var ml = new MLContext(1);
        var split = CribProtocol.Apply(EttData.Load(ml), EttData.Variates, 24, 24, MissingPattern.Point, 0.2, seed: 123, "Date");
        // ETTh1 24/24: 17,420 rows → 17,373 windows → 10,424 / 3,475 / 3,474 (spec crib.md §3.5).
        Assert.AreEqual((10424, 3475, 3474), (split.TrainWindows, split.ValidationWindows, split.TestWindows));
        Assert.AreEqual(0.2, split.MissingRate, 1e-4);
        var train = TimeSeriesFrame.FromDataView(split.Train, EttData.Variates, "Date", true, "test");
        var test = TimeSeriesFrame.FromDataView(split.Test, EttData.Variates, "Date", true, "test");
        Assert.AreEqual((10424 + 47, 3474 + 47), (train.Rows, test.Rows));
        Assert.AreEqual(new DateTime(2016, 7, 1), train.Timestamps![0]);
        // Globally standardised over the training windows' inputs (missing counted as 0): mean ≈ 0, std ≈ 1 there.
        float zero = -split.Mean / split.Std;   // a missing value, counted as 0 in original units
        var filled = train.Values.Take((10424 + 23) * 7).Select(v => float.IsNaN(v) ? zero : v).ToArray();
        Assert.AreEqual(0, filled.Average(), 0.02);
        Assert.IsTrue(split.Std > 1 && float.IsFinite(split.Mean));
    }

    [TestMethod]
    public void DuplicateTimestampsAreRefusedKeptOrDroppedAsAsked()
    {
        var ml = new MLContext(seed: 1);
        var series = Series(200);
        series[50].Time = series[49].Time;
        var data = ml.Data.LoadFromEnumerable(series);
        var refused = Assert.ThrowsExactly<InvalidOperationException>(() => TrainTiny(ml, data, o => o.MaxEpochs = 1));
        StringAssert.Contains(refused.Message, "repeats a timestamp in 1 row(s), first row 50");
        StringAssert.Contains(refused.Message, "DuplicateTimestamps = DuplicateTimestampPolicy.Keep");

        var kept = TimeSeriesFrame.FromDataView(data, Variates, "Time", false, "test", duplicateTimestamps: DuplicateTimestampPolicy.Keep);
        var dropped = TimeSeriesFrame.FromDataView(data, Variates, "Time", false, "test", duplicateTimestamps: DuplicateTimestampPolicy.Drop);
        Assert.AreEqual((200, 199), (kept.Rows, dropped.Rows));
        Assert.AreEqual(series[51].A, dropped.Values[50 * 3]);
        using var model = TrainTiny(ml, data, o => { o.MaxEpochs = 1; o.DuplicateTimestamps = DuplicateTimestampPolicy.Keep; });
        Assert.AreEqual(DuplicateTimestampPolicy.Keep, model.DuplicateTimestamps);
        Assert.AreEqual(200 - L - S + 1, model.Evaluate(data).Windows);

        series[80].Time = series[10].Time;
        var backwards = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TimeSeriesFrame.FromDataView(ml.Data.LoadFromEnumerable(series), Variates, "Time", false, "test",
                duplicateTimestamps: DuplicateTimestampPolicy.Keep));
        StringAssert.Contains(backwards.Message, "goes back in time at row 80");
    }

    [TestMethod]
    public void PoliciesAndForecastsSurviveSaveAndLoad()
    {
        var ml = new MLContext(seed: 3);
        var data = Incomplete(ml, 300, 0.2);
        using var model = TrainTiny(ml, data, o => { o.MaxEpochs = 1; o.MissingValues = MissingValuePolicy.ZeroFill; });
        string path = Path.Combine(Path.GetTempPath(), $"mlnet-attention-missing-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            using var loaded = (InvertedTransformerModel)ml.Model.Load(path, out _);
            Assert.AreEqual(MissingValuePolicy.ZeroFill, loaded.MissingValues);
            CollectionAssert.AreEqual(model.Forecast(data).Values, loaded.Forecast(data).Values);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void CribTrainsOnAnIncompleteSeriesBeatsTheNaiveBaselineAndRoundTrips()
    {
        var ml = new MLContext(seed: 11);
        var all = Incomplete(ml, 900, 0.2);
        var train = ml.Data.TakeRows(all, 700);
        var test = ml.Data.SkipRows(all, 700 - L);
        var reports = new List<EpochReport>();
        using var model = ml.Forecasting.Trainers.Crib(TinyCrib(o => { o.MaxEpochs = 6; o.EpochCallback = reports.Add; })).Fit(train);
        Assert.AreEqual(6, reports.Count);
        CollectionAssert.AreEquivalent(new[] { "prediction", "consistency", "kl" }, reports[^1].TrainLossParts.Keys.ToArray());
        Assert.IsTrue(reports[^1].TrainLossParts["prediction"] < reports[0].TrainLossParts["prediction"], "the forecast error should fall");
        Assert.IsNotNull(reports[^1].ValidationLoss, "the last 20 % of the rows validate by default");
        Assert.AreEqual(MissingValuePolicy.ZeroFill, model.MissingValues);

        var metrics = model.Evaluate(test);
        var naive = model.EvaluateLastValueBaseline(test);
        Assert.IsTrue(metrics.MissingTargets > 0);
        Assert.IsTrue(metrics.MeanSquaredError < 0.6 * naive.MeanSquaredError, $"CRIB {metrics} vs naive {naive}");

        var windows = model.CreateWindows(ml, test, includeTargets: false);
        var scored = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        Assert.IsTrue(scored.All(f => f.All(float.IsFinite)));
        string path = Path.Combine(Path.GetTempPath(), $"mlnet-attention-crib-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            using var loaded = (CribModel)ml.Model.Load(path, out _);
            Assert.AreEqual(model.Config, loaded.Config);
            CollectionAssert.AreEqual(model.Forecast(all).Values, loaded.Forecast(all).Values);
            // CRIB takes no calendar covariates: its windows are the lookback alone.
            var rows = ml.Data.CreateEnumerable<LookbackOnly>(windows, reuseRowObject: false).ToArray();
            using var engine = ml.Model.CreatePredictionEngine<LookbackOnly, WindowOutput>(loaded);
            CollectionAssert.AreEqual(scored[7], engine.Predict(rows[7]).Forecast, new Tolerance(1e-5f));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void CribOptionsAreCheckedWithTheFix()
    {
        var ml = new MLContext(1);
        var patch = Assert.ThrowsExactly<ArgumentException>(() => ml.Forecasting.Trainers.Crib(TinyCrib(o => o.Lookback = 20)));
        StringAssert.Contains(patch.Message, "Lookback = 20 is not divisible by PatchLength = 8");
        var calendar = Assert.ThrowsExactly<ArgumentException>(() =>
            ml.Forecasting.Trainers.Crib(TinyCrib(o => o.CalendarFeatures = CalendarFeatures.Hourly)));
        StringAssert.Contains(calendar.Message, "CRIB takes no calendar covariates");
        var policy = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Forecasting.Trainers.Crib(TinyCrib(o => o.MissingValues = (MissingValuePolicy)7)));
        StringAssert.Contains(policy.Message, "Refuse or ZeroFill");
        // The simple overload works on a complete series too.
        using var model = ml.Forecasting.Trainers.Crib(Variates, lookback: 16, horizon: 4, maxEpochs: 1, modelWidth: 8, layers: 1)
            .Fit(ml.Data.LoadFromEnumerable(Series(120)));
        Assert.AreEqual((16, 4), (model.Lookback, model.Horizon));
    }

    private sealed class LookbackOnly
    {
        [VectorType(L * 3)] public float[] Lookback { get; set; } = Array.Empty<float>();
    }

    private sealed class Tolerance(float epsilon) : System.Collections.IComparer
    {
        public int Compare(object? x, object? y) => Math.Abs((float)x! - (float)y!) <= epsilon ? 0 : 1;
    }
}

[TestClass]
public sealed class BacktestTests
{
    [TestMethod]
    public void RollingOriginsScoreTheHorizonAfterEachCutoffAsEvaluateDoes()
    {
        var ml = new MLContext(seed: 2);
        var data = ml.Data.LoadFromEnumerable(Series(400));
        using var model = TrainTiny(ml, ml.Data.TakeRows(data, 300), o => o.MaxEpochs = 2);
        var result = model.Backtest(data, folds: 3);
        Assert.IsFalse(result.Refitted);
        CollectionAssert.AreEqual(new[] { 400 - 3 * S, 400 - 2 * S, 400 - S }, result.Folds.Select(f => f.Cutoff).ToArray());
        Assert.AreEqual(new DateTime(2020, 1, 1).AddHours(400 - S), result.Folds[^1].CutoffTime);
        Assert.AreEqual(3 * S * 3L, result.Overall.ObservedTargets);
        foreach (var fold in result.Folds)
        {
            // A fold is the one window whose forecast starts at the cutoff: Evaluate on exactly those rows agrees.
            var rows = ml.Data.TakeRows(ml.Data.SkipRows(data, fold.Cutoff - L), L + S);
            var expected = model.Evaluate(rows);
            Assert.AreEqual(1, fold.Metrics.Windows);
            Assert.AreEqual(expected.MeanSquaredError, fold.Metrics.MeanSquaredError, 1e-9);
            Assert.IsTrue(fold.MeanAbsoluteScaledError > 0 && double.IsFinite(fold.MeanAbsoluteScaledError));
        }
        Assert.AreEqual(result.Folds.Average(f => f.MeanAbsoluteScaledError), result.MeanAbsoluteScaledError, 1e-12);
        StringAssert.Contains(result.ToString(), "overall (3 folds)");

        var tooMany = Assert.ThrowsExactly<InvalidOperationException>(() => model.Backtest(data, folds: 60));
        StringAssert.Contains(tooMany.Message, $"need at least {L + 59 * S + S} rows; the series has 400");
    }

    [TestMethod]
    public void RefitTrainsOneModelPerFoldOnTheRowsBeforeItsCutoff()
    {
        var ml = new MLContext(seed: 2);
        var data = MissingValueSimulation.Apply(ml.Data.LoadFromEnumerable(Series(360)), new[] { "A", "B", "C" },
            MissingPattern.Point, 0.1, 4, "Time");
        var trainer = ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o =>
        {
            o.MaxEpochs = 1;
            o.MissingValues = MissingValuePolicy.ZeroFill;
        }));
        var result = ForecastBacktest.Run(trainer, data, folds: 2, step: 20, seasonality: 24);
        Assert.IsTrue(result.Refitted);
        CollectionAssert.AreEqual(new[] { 360 - S - 20, 360 - S }, result.Folds.Select(f => f.Cutoff).ToArray());
        Assert.IsTrue(result.Folds.All(f => double.IsFinite(f.Metrics.MeanAbsoluteErrorOriginal)));
        Assert.IsTrue(result.Overall.MissingTargets > 0, "missing targets are left out of the backtest metrics too");

        var leaky = ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o => o.ValidationSet = data));
        var error = Assert.ThrowsExactly<ArgumentException>(() => ForecastBacktest.Run(leaky, data, folds: 2));
        StringAssert.Contains(error.Message, "fixed ValidationSet");
    }
}
