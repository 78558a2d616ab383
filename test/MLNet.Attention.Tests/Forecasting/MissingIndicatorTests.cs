using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;

namespace MLNet.Attention.Tests.Forecasting;

/// <summary>Missing values given by indicator columns (a sentinel in the value column, a flag beside it) instead of
/// NaN: read exactly as NaN would be, in training, scoring and save/load; bad indicator columns are refused.</summary>
[TestClass]
public sealed class MissingIndicatorTests
{
    private static readonly string[] Indicators = { "AMissing", "BMissing", "CMissing" };

    public sealed class FlaggedRow
    {
        public DateTime Time { get; set; }
        public float A { get; set; }
        public float B { get; set; }
        public float C { get; set; }
        public bool AMissing { get; set; }
        public bool BMissing { get; set; }
        public float CMissing { get; set; }   // numeric indicators work too: non-zero = missing
    }

    /// <summary>The test series with every 7th B and every 11th C missing: as NaN, and as sentinels + flags.</summary>
    private static (SeriesRow[] WithNaN, FlaggedRow[] Flagged) Series(int rows)
    {
        var nan = InvertedTransformerTrainerTests.Series(rows);
        var flagged = nan.Select((r, t) => new FlaggedRow
        {
            Time = r.Time, A = r.A, B = t % 7 == 3 ? -999f : r.B, C = t % 11 == 5 ? 0f : r.C,
            BMissing = t % 7 == 3, CMissing = t % 11 == 5 ? 1f : 0f,
        }).ToArray();
        for (int t = 0; t < rows; t++)
        {
            if (t % 7 == 3) nan[t].B = float.NaN;
            if (t % 11 == 5) nan[t].C = float.NaN;
        }
        return (nan, flagged);
    }

    [TestMethod]
    public void IndicatedValuesAreMissingValuesInTrainingScoringAndSaveLoad()
    {
        var (nan, flagged) = Series(400);
        var ml = new MLContext(seed: 5);
        using var fromNaN = TrainTiny(ml, ml.Data.LoadFromEnumerable(nan), o =>
        {
            o.MaxEpochs = 2;
            o.MissingValues = MissingValuePolicy.ZeroFill;
            o.NumberOfThreads = 1;
        });
        var ml2 = new MLContext(seed: 5);
        var flaggedView = ml2.Data.LoadFromEnumerable(flagged);
        using var fromFlags = TrainTiny(ml2, flaggedView, o =>
        {
            o.MaxEpochs = 2;
            o.MissingValues = MissingValuePolicy.ZeroFill;
            o.MissingIndicatorColumnNames = Indicators;
            o.NumberOfThreads = 1;
        });
        CollectionAssert.AreEqual(Indicators, fromFlags.MissingIndicatorColumnNames.ToArray());
        // The sentinels never reach the network: the same scaler, the same training, the same forecasts.
        CollectionAssert.AreEqual(fromNaN.Scaler.Mean.ToArray(), fromFlags.Scaler.Mean.ToArray());
        var expected = fromNaN.Forecast(ml.Data.LoadFromEnumerable(nan)).Values;
        CollectionAssert.AreEqual(expected, fromFlags.Forecast(flaggedView).Values);
        Assert.AreEqual(fromNaN.Evaluate(ml.Data.LoadFromEnumerable(nan)).MissingTargets,
            fromFlags.Evaluate(flaggedView).MissingTargets);
        var lookbacks = fromFlags.Transform(flaggedView).GetColumn<float[]>("Lookback").First();
        Assert.IsTrue(float.IsNaN(lookbacks[3 * 3 + 1]), "row 3's B is missing in the scored windows");

        var path = Path.Combine(Path.GetTempPath(), $"indicators-{Guid.NewGuid():N}.zip");
        try
        {
            ml2.Model.Save(fromFlags, flaggedView.Schema, path);
            using var loaded = (ForecastingModel)ml2.Model.Load(path, out _);
            CollectionAssert.AreEqual(Indicators, loaded.MissingIndicatorColumnNames.ToArray());
            CollectionAssert.AreEqual(expected, loaded.Forecast(flaggedView).Values);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public sealed class TextFlagRow
    {
        public DateTime Time { get; set; }
        public float A { get; set; }
        public float B { get; set; }
        public float C { get; set; }
        public string AMissing { get; set; } = "no";
        public bool BMissing { get; set; }
        public bool CMissing { get; set; }
    }

    [TestMethod]
    public void BadIndicatorColumnsAreRefusedNamingTheColumnAndTheFix()
    {
        var ml = new MLContext(seed: 1);
        var (_, flagged) = Series(200);
        var view = ml.Data.LoadFromEnumerable(flagged);

        var refused = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TrainTiny(ml, view, o => o.MissingIndicatorColumnNames = Indicators));
        StringAssert.Contains(refused.Message, "column 'B' is missing at row 3 (indicator column 'BMissing')");
        StringAssert.Contains(refused.Message, "MissingValues = MissingValuePolicy.ZeroFill");

        var text = ml.Data.LoadFromEnumerable(InvertedTransformerTrainerTests.Series(200).Select(r => new TextFlagRow
            { Time = r.Time, A = r.A, B = r.B, C = r.C }));
        var wrongType = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TrainTiny(ml, text, o =>
        {
            o.MissingIndicatorColumnNames = Indicators;
            o.MissingValues = MissingValuePolicy.ZeroFill;
        }));
        StringAssert.Contains(wrongType.Message, "missing-value indicator column 'AMissing' (for 'A') has type String");
        StringAssert.Contains(wrongType.Message, "expected a Boolean scalar");

        var count = Assert.ThrowsExactly<ArgumentException>(() =>
            TrainTiny(ml, view, o => o.MissingIndicatorColumnNames = new[] { "AMissing" }));
        StringAssert.Contains(count.Message, "expected one indicator per variate");

        var absent = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TrainTiny(ml, view, o =>
        {
            o.MissingIndicatorColumnNames = new[] { "AMissing", "BMissing", "Nope" };
            o.MissingValues = MissingValuePolicy.ZeroFill;
        }));
        StringAssert.Contains(absent.Message, "missing-value indicator column 'Nope' (for 'C') was not found");
    }
}
