using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Interop;
using MLNet.Attention.Transforms;

namespace MLNet.Attention.Tests.Forecasting;

/// <summary>Exogenous covariates: past-only and known-future columns read by the forecasters (never forecast), through
/// training, Evaluate, Forecast, Transform (series and window views), the prediction engine and save/load.</summary>
[TestClass]
public sealed class CovariateForecastingTests
{
    private const int L = 24, S = 8;

    public sealed class Row
    {
        public DateTime Time { get; set; }
        public float Y { get; set; }
        public float X { get; set; }
    }

    public sealed class FutureRow
    {
        public float X { get; set; }
    }

    public sealed class Window
    {
        [VectorType(L * 2)] public float[] Lookback { get; set; } = Array.Empty<float>();
        [VectorType(S)] public float[] FutureCovariates { get; set; } = Array.Empty<float>();
    }

    public sealed class Scored
    {
        [VectorType(S)] public float[] Forecast { get; set; } = Array.Empty<float>();
    }

    /// <summary>X is white noise (unpredictable from its past); Y is X shifted by <paramref name="lag"/> rows (0: Y
    /// follows X at the same step, so only X's future values tell Y's future) plus a little noise.</summary>
    private static Row[] Series(int rows, int lag, int seed = 5)
    {
        var rng = new Random(seed);
        var x = Enumerable.Range(0, rows + lag).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        return Enumerable.Range(0, rows).Select(t => new Row
        {
            Time = new DateTime(2021, 1, 1).AddHours(t),
            X = x[t + lag],
            Y = (float)(5 + 2 * x[t] + 0.05 * (rng.NextDouble() - 0.5)),
        }).ToArray();
    }

    private static InvertedTransformerOptions Options(Action<InvertedTransformerOptions>? change = null)
    {
        var o = new InvertedTransformerOptions
        {
            VariateColumnNames = new[] { "Y" }, TimestampColumnName = "Time", CalendarFeatures = CalendarFeatures.None,
            Lookback = L, Horizon = S, ModelWidth = 32, Heads = 2, Layers = 1, FeedForwardWidth = 64, Dropout = 0,
            MaxEpochs = 12, BatchSize = 32, LearningRate = 3e-3, NumberOfThreads = 1, ValidationFraction = 0.15,
        };
        change?.Invoke(o);
        return o;
    }

    [TestMethod]
    public void KnownFutureCovariatesDriveTheForecastAndEveryScoringPathAgrees()
    {
        var ml = new MLContext(seed: 3);
        // Y(t) = 2·X(t): only X's values over the horizon say where Y goes.
        var rows = Series(900, lag: 0);
        var train = ml.Data.LoadFromEnumerable(rows.Take(700));
        var test = ml.Data.LoadFromEnumerable(rows.Skip(700 - L));
        using var plain = ml.Forecasting.Trainers.InvertedTransformer(Options()).Fit(train);
        using var model = ml.Forecasting.Trainers.InvertedTransformer(Options(o => o.FutureCovariateColumnNames = new[] { "X" }))
            .Fit(train);
        CollectionAssert.AreEqual(new[] { "X" }, model.FutureCovariateColumnNames.ToArray());
        Assert.AreEqual(1, model.Config.FutureCovariates);

        var withFuture = model.Evaluate(test);
        var without = plain.Evaluate(test);
        Assert.AreEqual(1, withFuture.MeanAbsoluteErrorPerVariateOriginal.Count, "only the variate is scored");
        Assert.IsTrue(withFuture.MeanSquaredError < 0.3 * without.MeanSquaredError,
            $"with the future covariate {withFuture.MeanSquaredError:F4}, without {without.MeanSquaredError:F4}");

        // Forecast(history, future) = the series view's window ending at the same row = the prediction engine.
        var history = ml.Data.LoadFromEnumerable(rows.Take(800));
        var future = ml.Data.LoadFromEnumerable(rows.Skip(800).Take(S).Select(r => new FutureRow { X = r.X }));
        var forecast = model.Forecast(history, future);
        Assert.AreEqual(S, forecast.Values.Length);
        var seriesView = ml.Data.LoadFromEnumerable(rows.Take(800 + S));
        var scored = model.Transform(seriesView);
        Assert.AreEqual(800 + S - L - S + 1, scored.GetColumn<float[]>("Forecast").Count(),
            "a series view is scored for the windows whose horizon covariates it holds");
        var last = scored.GetColumn<float[]>("Forecast").Last();
        CollectionAssert.AreEqual(forecast.Values, last, new Tolerance(1e-5f));
        var windows = ml.Data.CreateEnumerable<Window>(model.CreateWindows(ml, seriesView, includeTargets: false),
            reuseRowObject: false).ToArray();
        Assert.AreEqual(800 + S - L - S + 1, windows.Length);
        using (var engine = ml.Model.CreatePredictionEngine<Window, Scored>(model))
        {
            CollectionAssert.AreEqual(forecast.Values, engine.Predict(windows[^1]).Forecast, new Tolerance(1e-5f));
            var holed = new Window
            {
                Lookback = windows[^1].Lookback, FutureCovariates = (float[])windows[^1].FutureCovariates.Clone(),
            };
            holed.FutureCovariates[2] = float.NaN;
            StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(holed)).Message,
                "FutureCovariates");
        }
        // The same windows as a pipeline step (CreateForecastWindows with the covariates, no targets).
        var step = ml.Transforms.CreateForecastWindows(new ForecastWindowsOptions
        {
            VariateColumnNames = new[] { "Y" }, FutureCovariateColumnNames = new[] { "X" }, Lookback = L, Horizon = S,
            IncludeTargets = false,
        }).Fit(seriesView).Transform(seriesView);
        CollectionAssert.AreEqual(forecast.Values, model.Transform(step).GetColumn<float[]>("Forecast").Last(),
            new Tolerance(1e-5f));
        Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.CreateForecastWindows(new ForecastWindowsOptions
        {
            VariateColumnNames = new[] { "Y" }, FutureCovariateColumnNames = new[] { "X" }, Lookback = L,
        }));

        // Saved and reloaded: the same forecast.
        var path = Path.Combine(Path.GetTempPath(), $"future-covariates-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, seriesView.Schema, path);
            using var loaded = (ForecastingModel)ml.Model.Load(path, out _);
            CollectionAssert.AreEqual(forecast.Values, loaded.Forecast(history, future).Values, new Tolerance(1e-6f));
            CollectionAssert.AreEqual(new[] { "X" }, loaded.FutureCovariateColumnNames.ToArray());
        }
        finally
        {
            File.Delete(path);
        }

        // Covariates missing at forecast time: no future view, a short one, a missing value under Refuse.
        var none = Assert.ThrowsExactly<InvalidOperationException>(() => model.Forecast(history));
        StringAssert.Contains(none.Message, "known-future covariates ('X')");
        StringAssert.Contains(none.Message, "model.Forecast(history, future)");
        var shortFuture = ml.Data.LoadFromEnumerable(rows.Skip(800).Take(S - 1).Select(r => new FutureRow { X = r.X }));
        var tooShort = Assert.ThrowsExactly<InvalidOperationException>(() => model.Forecast(history, shortFuture));
        StringAssert.Contains(tooShort.Message, $"has {S - 1} rows; expected at least {S} rows");
        var gap = rows.Skip(800).Take(S).Select(r => new FutureRow { X = r.X }).ToArray();
        gap[3].X = float.NaN;
        var missing = Assert.ThrowsExactly<InvalidOperationException>(
            () => model.Forecast(history, ml.Data.LoadFromEnumerable(gap)));
        StringAssert.Contains(missing.Message, "column 'X' is missing (NaN) at row 3");
        Assert.ThrowsExactly<ArgumentException>(() => plain.Forecast(history, future));
    }

    [TestMethod]
    public void PastCovariatesAreReadButNotForecastByTheITransformerAndMvpa()
    {
        var ml = new MLContext(seed: 4);
        // Y(t) = 2·X(t − S): the horizon's Y values are the lookback's last S values of X.
        var rows = Series(900, lag: 0);
        var rng = new Random(9);
        var x = Enumerable.Range(0, 900).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        for (int t = 0; t < rows.Length; t++)
        {
            rows[t].X = x[t];
            rows[t].Y = 5 + 2 * (t >= S ? x[t - S] : 0);
        }
        var train = ml.Data.LoadFromEnumerable(rows.Take(700));
        var test = ml.Data.LoadFromEnumerable(rows.Skip(700 - L));
        using var plain = ml.Forecasting.Trainers.InvertedTransformer(Options()).Fit(train);
        using var model = ml.Forecasting.Trainers.InvertedTransformer(Options(o =>
        {
            o.PastCovariateColumnNames = new[] { "X" };
            // Y's horizon is X's recent past; per-window normalisation (RevIN) of each token by its own lookback
            // statistics would make that map non-linear.
            o.UseNorm = false;
        })).Fit(train);
        var withPast = model.Evaluate(test);
        var without = plain.Evaluate(test);
        Assert.IsTrue(withPast.MeanSquaredError < 0.3 * without.MeanSquaredError,
            $"with the past covariate {withPast.MeanSquaredError:F4}, without {without.MeanSquaredError:F4}");
        var forecast = model.Forecast(ml.Data.LoadFromEnumerable(rows.Take(800)));
        CollectionAssert.AreEqual(new[] { "Y" }, forecast.Columns.ToArray());
        Assert.AreEqual(S, forecast.Values.Length);
        Assert.IsTrue(forecast.Values.All(float.IsFinite));

        var mvpaOptions = new MultiVariateParallelTransformerOptions
        {
            VariateColumnNames = new[] { "Y" }, PastCovariateColumnNames = new[] { "X" }, TimestampColumnName = "Time",
            CalendarFeatures = CalendarFeatures.None, Lookback = L, Horizon = S, PatchLength = 8, ModelWidth = 16,
            Heads = 2, KeyValueHeads = 1, Layers = 1, MaxEpochs = 2, BatchSize = 32, NumberOfThreads = 1,
        };
        using var mvpa = ml.Forecasting.Trainers.MultiVariateParallelTransformer(mvpaOptions).Fit(train);
        var mvpaForecast = mvpa.Forecast(ml.Data.LoadFromEnumerable(rows.Take(800)));
        Assert.AreEqual(S, mvpaForecast.Values.Length);
        Assert.IsTrue(mvpaForecast.Values.All(float.IsFinite));
        CollectionAssert.AreEqual(new[] { "X" }, mvpa.PastCovariateColumnNames.ToArray());
    }

    [TestMethod]
    public void CovariateOptionsAForecasterCannotReadOrThatCollideAreRefusedWithTheFix()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Series(300, lag: 0));

        var crib = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Forecasting.Trainers.Crib(new CribOptions
        {
            VariateColumnNames = new[] { "Y" }, PastCovariateColumnNames = new[] { "X" }, Lookback = L, Horizon = S,
            PatchLength = 8, MaxEpochs = 1,
        }).Fit(train));
        StringAssert.Contains(crib.Message, "Crib does not read past covariates");
        StringAssert.Contains(crib.Message, "InvertedTransformer");

        var mvpa = Assert.ThrowsExactly<ArgumentException>(() => ml.Forecasting.Trainers.MultiVariateParallelTransformer(
            new MultiVariateParallelTransformerOptions
            {
                VariateColumnNames = new[] { "Y" }, FutureCovariateColumnNames = new[] { "X" }, Lookback = L, Horizon = S,
                PatchLength = 8,
            }).Fit(train));
        StringAssert.Contains(mvpa.Message, "does not read known-future covariates");

        var twice = Assert.ThrowsExactly<ArgumentException>(() => ml.Forecasting.Trainers.InvertedTransformer(
            Options(o => { o.PastCovariateColumnNames = new[] { "X" }; o.FutureCovariateColumnNames = new[] { "X" }; }))
            .Fit(train));
        StringAssert.Contains(twice.Message, "Column 'X' is named more than once");

        var absent = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Forecasting.Trainers.InvertedTransformer(
            Options(o => o.PastCovariateColumnNames = new[] { "Z" })).GetOutputSchema(new SchemaShape(new[]
            {
                HostSettings.SchemaColumn("Y", SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single),
                HostSettings.SchemaColumn("Time", SchemaShape.Column.VectorKind.Scalar, DateTimeDataViewType.Instance),
            })));
        StringAssert.Contains(absent.Message, "past covariate column 'Z' was not found");
    }

    private sealed class Tolerance(float epsilon) : System.Collections.IComparer
    {
        public int Compare(object? x, object? y) => Math.Abs((float)x! - (float)y!) <= epsilon ? 0 : 1;
    }
}
