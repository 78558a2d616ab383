using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;

namespace MLNet.Attention.Tests.Forecasting;

[TestClass]
public sealed class PredictionIntervalTests
{
    private sealed class IntervalOutput
    {
        [VectorType(S * 3)] public float[] Forecast { get; set; } = Array.Empty<float>();
        [VectorType(S * 3)] public float[] Lower { get; set; } = Array.Empty<float>();
        [VectorType(S * 3)] public float[] Upper { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void ConformalIntervalsCoverTheTestTargetsAtTheAskedRateAndSurviveSaveLoad()
    {
        var ml = new MLContext(seed: 3);
        var all = ml.Data.LoadFromEnumerable(Series(1100, seed: 9));
        var train = ml.Data.TakeRows(all, 700);
        var test = ml.Data.SkipRows(all, 700 - L);
        var trainer = ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o => { o.MaxEpochs = 6; o.IntervalCoverage = 0.9; }));
        static SchemaShape.Column Scalar(string name, DataViewType type) =>
            MLNet.Attention.Interop.HostSettings.SchemaColumn(name, SchemaShape.Column.VectorKind.Scalar, type);
        var schema = trainer.GetOutputSchema(new SchemaShape(new[] { Scalar("A", NumberDataViewType.Single),
            Scalar("B", NumberDataViewType.Single), Scalar("C", NumberDataViewType.Single), Scalar("Time", DateTimeDataViewType.Instance) }));
        Assert.IsTrue(schema.Any(c => c.Name == "Lower") && schema.Any(c => c.Name == "Upper"));
        using var model = trainer.Fit(train);
        Assert.AreEqual(0.9, model.IntervalCoverage);
        Assert.AreEqual(140 + L - L - S + 1, model.IntervalCalibrationWindows, "every validation window calibrates");

        // Split conformal on exchangeable-enough residuals: the test coverage is near the nominal 90 %.
        var metrics = model.Evaluate(test);
        Assert.AreEqual(0.9, metrics.IntervalCoverage);
        Assert.IsTrue(metrics.EmpiricalCoverage is > 0.8 and < 0.97, $"empirical coverage {metrics.EmpiricalCoverage}");
        Assert.IsTrue(metrics.MeanIntervalWidth > 0 && metrics.QuantileLoss > 0);
        StringAssert.Contains(metrics.ToString(), "90 % intervals cover");
        Assert.IsNull(model.EvaluateLastValueBaseline(test).EmpiricalCoverage);

        // Forecast: bounds around the point forecast; a lower coverage gives narrower bounds.
        var forecast = model.Forecast(test);
        Assert.AreEqual(0.9, forecast.Coverage);
        for (int i = 0; i < forecast.Values.Length; i++)
            Assert.IsTrue(forecast.Lower![i] < forecast.Values[i] && forecast.Values[i] < forecast.Upper![i]);
        var narrow = model.Forecast(test, coverage: 0.5);
        Assert.IsTrue(Enumerable.Range(0, narrow.Values.Length).All(i =>
            narrow.Upper![i] - narrow.Lower![i] <= forecast.Upper![i] - forecast.Lower![i]));
        CollectionAssert.AreEqual(forecast.Values, narrow.Values);
        Assert.AreEqual(S, forecast.LowerSeries("B").Length);

        // Transform and the prediction engine write Lower/Upper beside Forecast, equal to Forecast(...)'s bounds.
        var windows = model.CreateWindows(ml, test, includeTargets: false);
        var scored = model.Transform(windows);
        Assert.IsNotNull(scored.Schema.GetColumnOrNull("Lower"));
        var rows = ml.Data.CreateEnumerable<IntervalOutput>(scored, reuseRowObject: false).ToArray();
        var lastRow = rows[^1];
        for (int i = 0; i < lastRow.Forecast.Length; i++)
        {
            Assert.AreEqual(forecast.Lower![i], lastRow.Lower[i], 1e-4f);
            Assert.AreEqual(forecast.Upper![i], lastRow.Upper[i], 1e-4f);
        }

        var path = Path.Combine(Path.GetTempPath(), $"intervals-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, all.Schema, path);
            using var loaded = (InvertedTransformerModel)ml.Model.Load(path, out _);
            Assert.AreEqual(0.9, loaded.IntervalCoverage);
            var again = loaded.Forecast(test, coverage: 0.5);
            CollectionAssert.AreEqual(narrow.Lower, again.Lower);
            CollectionAssert.AreEqual(narrow.Upper, again.Upper);
            Assert.AreEqual(metrics.EmpiricalCoverage, loaded.Evaluate(test).EmpiricalCoverage);
        }
        finally
        {
            File.Delete(path);
        }

        // 0.999 needs 999 residuals: 133 windows per (step, variate) are too few, so each variate's 8 steps pool theirs.
        var wide = model.Forecast(test, coverage: 0.999);
        Assert.IsTrue(Enumerable.Range(0, wide.Values.Length).All(i => wide.Upper![i] >= forecast.Upper![i]));
        var outside = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Forecast(test, coverage: 0.01));
        StringAssert.Contains(outside.Message, "stored for coverages 0.05 to 0.999");
    }

    [TestMethod]
    public void IntervalsNeedCalibrationWindowsAndAValidCoverage()
    {
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Series(300));
        var bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o => o.IntervalCoverage = 1.0)));
        StringAssert.Contains(bad.Message, "IntervalCoverage must be between 0.05 and 0.999");
        var none = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Forecasting.Trainers.InvertedTransformer(
            TinyOptions(o => { o.IntervalCoverage = 0.9; o.ValidationFraction = 0; o.EarlyStoppingPatience = null; o.MaxEpochs = 1; })).Fit(data));
        StringAssert.Contains(none.Message, "no ValidationSet or IntervalCalibrationSet");
        var few = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Forecasting.Trainers.InvertedTransformer(
            TinyOptions(o => { o.IntervalCoverage = 0.99; o.MaxEpochs = 1; })).Fit(data));
        StringAssert.Contains(few.Message, "IntervalCoverage = 0.99 needs at least 99 calibration windows");

        // A separate calibration series is used when given; a model without intervals refuses a coverage.
        var all = ml.Data.LoadFromEnumerable(Series(600));
        using var model = ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o =>
        {
            o.MaxEpochs = 1;
            o.IntervalCoverage = 0.8;
            o.IntervalCalibrationSet = ml.Data.SkipRows(all, 300);
        })).Fit(ml.Data.TakeRows(all, 300));
        Assert.AreEqual(300 - L - S + 1, model.IntervalCalibrationWindows);

        // Beyond what the calibration windows support even pooled over the horizon (53 windows × 8 steps < 999).
        using var small = ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o => { o.MaxEpochs = 1; o.IntervalCoverage = 0.8; }))
            .Fit(data);
        Assert.AreEqual(53, small.IntervalCalibrationWindows);
        var tooHigh = Assert.ThrowsExactly<InvalidOperationException>(() => small.Forecast(data, coverage: 0.999));
        StringAssert.Contains(tooHigh.Message, "coverage 0.999 needs at least 999 calibration residuals");
        using var plain = ml.Forecasting.Trainers.InvertedTransformer(TinyOptions(o => o.MaxEpochs = 1)).Fit(data);
        var noIntervals = Assert.ThrowsExactly<InvalidOperationException>(() => plain.Forecast(data, coverage: 0.9));
        StringAssert.Contains(noIntervals.Message, "train it with IntervalCoverage set");
        Assert.IsNull(plain.Forecast(data).Lower);
    }
}

[TestClass]
public sealed class ForecastingEstimatorContractTests
{
    [TestMethod]
    public void TheEstimatorsOutputSchemaIsWhatTheFittedModelWritesForTheSeriesItWasFittedOn()
    {
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Series(300));
        var options = TinyOptions(o => { o.MaxEpochs = 1; o.IntervalCoverage = 0.8; });
        var estimator = ml.Forecasting.Trainers.InvertedTransformer(options);
        static SchemaShape.Column Scalar(string name, DataViewType type) =>
            MLNet.Attention.Interop.HostSettings.SchemaColumn(name, SchemaShape.Column.VectorKind.Scalar, type);
        var promised = estimator.GetOutputSchema(new SchemaShape(new[] { Scalar("Time", DateTimeDataViewType.Instance),
            Scalar("A", NumberDataViewType.Single), Scalar("B", NumberDataViewType.Single), Scalar("C", NumberDataViewType.Single) }));
        using var model = estimator.Fit(data);
        var scored = model.Transform(data);
        Assert.AreEqual(scored.Schema.Count, model.GetOutputSchema(data.Schema).Count);
        foreach (var column in promised)
        {
            var actual = scored.Schema.GetColumnOrNull(column.Name);
            Assert.IsNotNull(actual, $"promised column {column.Name} is missing");
            Assert.AreEqual(column.ItemType, actual.Value.Type is VectorDataViewType v ? v.ItemType : actual.Value.Type, column.Name);
            Assert.AreEqual(column.Kind == SchemaShape.Column.VectorKind.Scalar, actual.Value.Type is not VectorDataViewType, column.Name);
        }
        CollectionAssert.AreEquivalent(new[] { "Lookback", "Timestamp", "Forecast", "Lower", "Upper" },
            scored.Schema.Select(c => c.Name).ToArray());

        // In a pipeline: fit on the series, score the series, save and reload the chain, score again.
        var chain = new EstimatorChain<ITransformer>().Append(estimator).Fit(data);
        var path = Path.Combine(Path.GetTempPath(), $"chain-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(chain, data.Schema, path);
            var loaded = ml.Model.Load(path, out _);
            var again = loaded.Transform(data).GetColumn<float[]>("Upper").ToArray();
            Assert.AreEqual(300 - L + 1, again.Length);
            CollectionAssert.AreEqual(chain.Transform(data).GetColumn<float[]>("Upper").Last(), again.Last());
            (loaded as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
            chain.Dispose();
        }
    }
}

[TestClass]
public sealed class CalendarCovariateConsistencyTests
{
    [TestMethod]
    public void IrregularSeriesGetTheSameCovariatesInTransformForecastAndEvaluate()
    {
        var ml = new MLContext(seed: 6);
        var rows = Series(260);
        // A five-hour outage at row 150, and a daylight-saving fall-back at row 200: local wall-clock time repeats
        // an hour (kept as a duplicate) and the rest of the series is an hour behind the regular grid.
        for (int t = 150; t < rows.Length; t++) rows[t].Time = rows[t].Time.AddHours(5);
        for (int t = 201; t < rows.Length; t++) rows[t].Time = rows[t].Time.AddHours(-1);
        var series = ml.Data.LoadFromEnumerable(rows);
        using var model = TrainTiny(ml, series, o =>
        {
            o.MaxEpochs = 1;
            o.TimestampGapPolicy = TimestampGapPolicy.Ignore;
            o.DuplicateTimestamps = DuplicateTimestampPolicy.Keep;
        });
        Assert.AreEqual(CalendarFeatures.Hourly, model.CalendarFeatures);

        var scored = model.Transform(series).GetColumn<float[]>("Forecast").ToArray();
        Assert.AreEqual(260 - L + 1, scored.Length);
        // Forecast(history) of every window across the irregularities equals the series Transform's row.
        foreach (int end in new[] { 160, 205, 259 })
        {
            var forecast = model.Forecast(ml.Data.TakeRows(series, end + 1)).Values;
            CollectionAssert.AreEqual(forecast, scored[end - L + 1], $"window ending at row {end}");
        }

        // Evaluate on the rows after the gap uses the same windows: its MSE equals one recomputed from Transform.
        var tail = ml.Data.SkipRows(series, 160);
        var metrics = model.Evaluate(tail);
        var tailForecasts = model.Transform(tail).GetColumn<float[]>("Forecast").ToArray();
        var scaler = model.Scaler;
        double sum = 0; long count = 0;
        for (int w = 0; w + L + S <= 100; w++)
            for (int k = 0; k < S; k++)
            {
                var row = rows[160 + w + L + k];
                var actual = new[] { row.A, row.B, row.C };
                for (int n = 0; n < 3; n++)
                {
                    double e = (tailForecasts[w][k * 3 + n] - actual[n]) / scaler.Std[n];
                    sum += e * e; count++;
                }
            }
        Assert.AreEqual(metrics.MeanSquaredError, sum / count, 1e-6 * (sum / count));

        // A window row carries only its last timestamp: away from the irregularities it is scored identically.
        var windows = model.CreateWindows(ml, series, includeTargets: false);
        var rowByRow = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        CollectionAssert.AreEqual(scored[10], rowByRow[10]);
    }
}
