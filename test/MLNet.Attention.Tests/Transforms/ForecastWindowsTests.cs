using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Transforms;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;

namespace MLNet.Attention.Tests.Transforms;

[TestClass]
public sealed class ForecastWindowsTests
{
    [TestMethod]
    public void WindowsAreAPipelineStepThatFeedsATrainedForecasterAndSurvivesSaveLoad()
    {
        var ml = new MLContext(seed: 2);
        var rows = Series(200);
        var series = ml.Data.LoadFromEnumerable(rows);
        var variates = new[] { "A", "B", "C" };
        var windows = ml.Transforms.CreateForecastWindows(variates, L, S, "Time").Fit(series).Transform(series);
        Assert.AreEqual(200 - L - S + 1, windows.GetRowCount());
        var lookback = windows.GetColumn<float[]>("Lookback").ToArray();
        var target = windows.GetColumn<float[]>("Target").ToArray();
        var time = windows.GetColumn<DateTime>("Timestamp").ToArray();
        Assert.AreEqual(L * 3, lookback[0].Length);
        Assert.AreEqual(rows[5].A, lookback[5][0]);           // window 5 starts at row 5
        Assert.AreEqual(rows[5 + L].C, target[5][2]);         // and its target right after the lookback
        Assert.AreEqual(rows[5 + L - 1].Time, time[5]);

        // The trained model scores the transform's windows exactly as its own CreateWindows.
        using var model = TrainTiny(ml, series, o => o.MaxEpochs = 1);
        var scoring = ml.Transforms.CreateForecastWindows(variates, L, timestampColumnName: "Time").Fit(series);
        var viaTransform = model.Transform(scoring.Transform(series)).GetColumn<float[]>("Forecast").ToArray();
        var viaModel = model.Transform(model.CreateWindows(ml, series, includeTargets: false)).GetColumn<float[]>("Forecast").ToArray();
        Assert.AreEqual(200 - L + 1, viaTransform.Length);
        for (int w = 0; w < viaModel.Length; w++) CollectionAssert.AreEqual(viaModel[w], viaTransform[w]);

        var chain = new TransformerChain<ITransformer>(scoring, model);
        var path = Path.Combine(Path.GetTempPath(), $"windows-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(chain, series.Schema, path);
            var loaded = ml.Model.Load(path, out _);
            var again = loaded.Transform(series).GetColumn<float[]>("Forecast").ToArray();
            CollectionAssert.AreEqual(viaModel[^1], again[^1]);
            (loaded as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void BadSeriesAreRefusedNamingTheColumnRowAndFix()
    {
        var ml = new MLContext(seed: 2);
        var rows = Series(50);
        var estimator = ml.Transforms.CreateForecastWindows(new[] { "A", "Nope" }, L);
        var missingColumn = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.Fit(ml.Data.LoadFromEnumerable(rows)));
        StringAssert.Contains(missingColumn.Message, "variate column 'Nope' was not found");

        var windows = ml.Transforms.CreateForecastWindows(new[] { "A", "B" }, L, 40).Fit(ml.Data.LoadFromEnumerable(rows));
        var tooShort = Assert.ThrowsExactly<InvalidOperationException>(() => windows.Transform(ml.Data.LoadFromEnumerable(rows)));
        StringAssert.Contains(tooShort.Message, $"fewer than the {L + 40}");

        rows[7].B = float.NaN;
        var refuse = ml.Transforms.CreateForecastWindows(new[] { "A", "B" }, L).Fit(ml.Data.LoadFromEnumerable(rows));
        var nan = Assert.ThrowsExactly<InvalidOperationException>(() => refuse.Transform(ml.Data.LoadFromEnumerable(rows)));
        StringAssert.Contains(nan.Message, "column 'B' is missing (NaN) at row 7");
        var keep = ml.Transforms.CreateForecastWindows(new ForecastWindowsOptions
        {
            VariateColumnNames = new[] { "A", "B" }, Lookback = L, MissingValues = MissingValuePolicy.ZeroFill,
        }).Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        Assert.IsTrue(float.IsNaN(keep.GetColumn<float[]>("Lookback").First()[7 * 2 + 1]), "NaN stays a missing value");

        var bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.CreateForecastWindows(new[] { "A" }, 0));
        StringAssert.Contains(bad.Message, "Lookback must be at least 1");
        Assert.ThrowsExactly<InvalidOperationException>(() => refuse.GetRowToRowMapper(ml.Data.LoadFromEnumerable(rows).Schema));
    }
}
