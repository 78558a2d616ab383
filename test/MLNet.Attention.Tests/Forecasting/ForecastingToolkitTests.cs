using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;

namespace MLNet.Attention.Tests.Forecasting;

[TestClass]
public sealed class ForecastingToolkitTests
{
    private sealed class Row
    {
        public float A { get; set; }
        public double B { get; set; }
        public string Text { get; set; } = "";
        public string When { get; set; } = "";
    }

    private static IDataView View(MLContext ml, params Row[] rows) => ml.Data.LoadFromEnumerable(rows);

    [TestMethod]
    public void ScalerMatchesSpecStatisticsOnEtth1TrainRows()
    {
        var ml = new MLContext(1);
        var frame = TimeSeriesFrame.FromDataView(EttData.Load(ml), EttData.Variates, "Date", false, "test");
        Assert.AreEqual(17420, frame.Rows);
        var split = ForecastSplit.Ett();
        Assert.AreEqual((8640, 11520, 14400), (split.TrainEnd, split.ValidationEnd, split.TestEnd));
        Assert.AreEqual(new DateTime(2017, 6, 26), frame.Timestamps![8640]);
        Assert.AreEqual(new DateTime(2017, 10, 24), frame.Timestamps[11520]);
        Assert.AreEqual(new DateTime(2018, 2, 21), frame.Timestamps[14400]);
        var scaler = SeriesScaler.Fit(frame.Values, 7, split.TrainEnd);
        double[] mean = { 7.937742, 2.021039, 5.079771, 0.746186, 2.781762, 0.788453, 17.128262 };
        double[] std = { 5.812749, 2.090105, 5.518794, 1.926379, 1.023523, 0.630237, 9.176491 };
        for (int n = 0; n < 7; n++)
        {
            Assert.AreEqual(mean[n], scaler.Mean[n], 2e-5 * Math.Max(1, mean[n]), $"mean {n}");
            Assert.AreEqual(std[n], scaler.Std[n], 2e-5 * std[n], $"std {n}");
        }
        var scaled = scaler.Transform(frame.Values);
        scaler.InverseTransformInPlace(scaled);
        Assert.AreEqual(frame.Values[12345], scaled[12345], 1e-4);
    }

    [TestMethod]
    public void CalendarFeaturesMatchSpecExamples()
    {
        var f = new float[5];
        CalendarFeatureEncoder.Encode(CalendarFeatures.Hourly, new DateTime(2016, 7, 1, 0, 0, 0), f);
        AssertClose(new[] { -0.5f, 0.1666667f, -0.5f, -0.0013699f }, f[..4]);
        CalendarFeatureEncoder.Encode(CalendarFeatures.Hourly, new DateTime(2016, 7, 1, 13, 0, 0), f);
        Assert.AreEqual(0.0652174f, f[0], 1e-6f);
        CalendarFeatureEncoder.Encode(CalendarFeatures.Hourly, new DateTime(2017, 6, 26), f);
        AssertClose(new[] { -0.5f, -0.5f, 0.3333333f, -0.0178082f }, f[..4]);
        CalendarFeatureEncoder.Encode(CalendarFeatures.Minutely, new DateTime(2016, 7, 1, 0, 59, 0), f);
        Assert.AreEqual(0.5f, f[0]);
        Assert.AreEqual(-0.5f, f[1]);
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        for (int i = 0; i < expected.Length; i++) Assert.AreEqual(expected[i], actual[i], 1e-6f, $"feature {i}");
    }

    [TestMethod]
    public void WindowCountsFollowThePapersProtocol()
    {
        // ETTh, L = 96, S = 96 → 8449 training windows; S = 192 → 8353 / 2689 / 2689.
        Assert.AreEqual(8449, new WindowBatchSource(new float[8640 * 7], 7, 7, 0, null, 0, 96, 96).Count);
        Assert.AreEqual(8353, new WindowBatchSource(new float[8640 * 7], 7, 7, 0, null, 0, 96, 192).Count);
        Assert.AreEqual(2689, new WindowBatchSource(new float[(11520 - 8640 + 96) * 7], 7, 7, 0, null, 0, 96, 192).Count);
    }

    [TestMethod]
    public void WindowBatchesGatherTheRightRows()
    {
        TorchSharp.torch.InitializeDeviceType(TorchSharp.DeviceType.CPU);
        var values = Enumerable.Range(0, 20 * 2).Select(i => (float)i).ToArray(); // row t = [2t, 2t+1]
        using var source = new WindowBatchSource(values, 2, 2, 0, null, 0, 3, 2);
        Assert.AreEqual(16, source.Count);
        using var scope = TorchSharp.torch.NewDisposeScope();
        var batch = source.CreateBatch(new[] { 0, 5 }, TorchSharp.torch.CPU);
        CollectionAssert.AreEqual(new float[] { 10, 11, 12, 13, 14, 15 }, batch.Inputs[0]![1].data<float>().ToArray());
        CollectionAssert.AreEqual(new float[] { 16, 17, 18, 19 }, batch.Target[1].data<float>().ToArray());
        Assert.IsNull(batch.Inputs[1]);
    }

    [TestMethod]
    public void MetricsAreGlobalMeansInScaledAndOriginalUnits()
    {
        var scaler = new SeriesScaler(new[] { 10f }, new[] { 2f });
        var acc = new ForecastMetricsAccumulator(scaler);
        acc.AddScaled(new[] { 1f, 0f }, new[] { 0f, 0f }, 1);
        acc.AddScaled(new[] { 0f }, new[] { 0.5f }, 1);
        var m = acc.Result();
        Assert.AreEqual((1 + 0 + 0.25) / 3, m.MeanSquaredError, 1e-12);
        Assert.AreEqual((1 + 0 + 0.5) / 3, m.MeanAbsoluteError, 1e-12);
        Assert.AreEqual((2 + 0 + 1) / 3.0, m.MeanAbsoluteErrorOriginal, 1e-12);
        Assert.AreEqual(Math.Sqrt((4 + 0 + 1) / 3.0), m.RootMeanSquaredErrorOriginal, 1e-12);
        Assert.AreEqual(100 * (2 / 10.0 + 0 + 1 / 11.0) / 3, m.MeanAbsolutePercentageError, 1e-9);
        Assert.AreEqual(2, m.Windows);
    }

    [TestMethod]
    public void MissingColumnIsNamedWithAvailableColumns()
    {
        var ml = new MLContext(1);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            TimeSeriesFrame.FromDataView(View(ml, new Row()), new[] { "A", "Nope" }, null, false, "Trainer data"));
        StringAssert.Contains(ex.Message, "column 'Nope' was not found");
        StringAssert.Contains(ex.Message, "Available columns: A, B, Text, When");
    }

    [TestMethod]
    public void NonNumericColumnIsRejectedWithTheFix()
    {
        var ml = new MLContext(1);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            TimeSeriesFrame.FromDataView(View(ml, new Row()), new[] { "Text" }, null, false, "Trainer data"));
        StringAssert.Contains(ex.Message, "column 'Text' has type String");
        StringAssert.Contains(ex.Message, "ConvertType");
    }

    [TestMethod]
    public void NaNAndInfinityAreRejectedWithColumnAndRow()
    {
        var ml = new MLContext(1);
        var nan = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TimeSeriesFrame.FromDataView(View(ml, new Row { A = 1 }, new Row { A = float.NaN }), new[] { "A", "B" }, null, false, "Trainer data"));
        StringAssert.Contains(nan.Message, "column 'A' is missing (NaN) at row 1");
        StringAssert.Contains(nan.Message, "ReplaceMissingValues");
        var inf = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TimeSeriesFrame.FromDataView(View(ml, new Row(), new Row(), new Row { B = double.PositiveInfinity }), new[] { "A", "B" }, null, true, "Trainer data"));
        StringAssert.Contains(inf.Message, "column 'B' holds +infinity at row 2");
        // With missing values allowed, NaN is kept for models that handle it.
        var kept = TimeSeriesFrame.FromDataView(View(ml, new Row { A = float.NaN }), new[] { "A" }, null, true, "x");
        Assert.IsTrue(float.IsNaN(kept.Values[0]));
    }

    [TestMethod]
    public void EmptyViewAndBadTimestampsAreRejected()
    {
        var ml = new MLContext(1);
        var empty = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TimeSeriesFrame.FromDataView(View(ml), new[] { "A" }, null, false, "Trainer data"));
        StringAssert.Contains(empty.Message, "Trainer data: the data view has no rows; expected at least lookback + horizon rows " +
            "(one complete window). Pass a view with at least lookback + horizon rows");
        var notDate = Assert.ThrowsExactly<FormatException>(() =>
            TimeSeriesFrame.FromDataView(View(ml, new Row { When = "yesterday" }), new[] { "A" }, "When", false, "Trainer data"));
        StringAssert.Contains(notDate.Message, "'yesterday' at row 0");
        var unordered = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TimeSeriesFrame.FromDataView(View(ml, new Row { When = "2020-01-02" }, new Row { When = "2020-01-01" }), new[] { "A" }, "When", false, "Trainer data"));
        StringAssert.Contains(unordered.Message, "goes back in time at row 1");
    }

    [TestMethod]
    public void ASummaryLineShowsSmapeNotAnExplodingMape()
    {
        // An actual value of 1e-6 against a forecast of 1 (original units): MAPE ~ 1e8 %, sMAPE bounded by 200 %.
        var scaler = new SeriesScaler(new[] { 0f }, new[] { 1f });
        var acc = new ForecastMetricsAccumulator(scaler);
        acc.AddScaled(new[] { 1f }, new[] { 1e-6f }, 1);
        var m = acc.Result();
        Assert.IsTrue(m.MeanAbsolutePercentageError > 1e7, "MAPE is still computed");
        string line = m.ToString();
        StringAssert.Contains(line, $"sMAPE {m.SymmetricMeanAbsolutePercentageError:F2}%");
        Assert.IsFalse(line.Replace("sMAPE", "").Contains("MAPE"), line);
    }

    [TestMethod]
    public void ASplitRefusesASeriesShorterThanItsBordersAndFractionsCountATextLoadedView()
    {
        var ml = new MLContext(seed: 1);
        string csv = Path.Combine(Path.GetTempPath(), $"split-{Guid.NewGuid():N}.csv");
        File.WriteAllLines(csv, new[] { "Date,A" }.Concat(Enumerable.Range(0, 7588)
            .Select(i => $"{new DateTime(2020, 1, 1).AddHours(i):yyyy-MM-dd HH:mm:ss},{i % 13}")));
        try
        {
            var data = ml.Data.LoadFromTextFile(csv, new[]
            {
                new TextLoader.Column("Date", DataKind.String, 0), new TextLoader.Column("A", DataKind.Single, 1),
            }, separatorChar: ',', hasHeader: true);
            Assert.IsNull(data.GetRowCount(), "a text-loaded view does not know its row count");

            // The ETT protocol needs 14,400 rows: refused before any view is built, with the alternatives.
            var error = Assert.ThrowsExactly<ArgumentException>(() => ForecastSplit.Ett().Apply(ml, data, lookback: 96));
            StringAssert.Contains(error.Message, "needs 14400 rows");
            StringAssert.Contains(error.Message, "the series has 7588");
            StringAssert.Contains(error.Message, "ForecastSplit.FromFractions(data)");

            // The papers' custom protocol on the same view: ⌊0.7·7588⌋ = 5311 training rows, ⌊0.2·7588⌋ = 1517 test rows.
            var split = ForecastSplit.FromFractions(data);
            Assert.AreEqual(new ForecastSplit(5311, 7588 - 1517, 7588), split);
            var (train, validation, test) = split.Apply(ml, data, lookback: 96);
            Assert.AreEqual(5311, train.GetColumn<float>("A").Count());
            Assert.AreEqual(7588 - 1517 - 5311 + 96, validation.GetColumn<float>("A").Count());
            Assert.AreEqual(1517 + 96, test.GetColumn<float>("A").Count());
        }
        finally
        {
            File.Delete(csv);
        }
    }

    [TestMethod]
    public void SeriesCsvReadsAGzippedHeaderAndWideOddlyNamedColumns()
    {
        var ml = new MLContext(seed: 1);
        var ett = SeriesCsv.Load(ml, Path.Combine(AppContext.BaseDirectory, "data", "ETTh1.csv.gz"));
        Assert.AreEqual("date", ett.TimestampColumnName);
        CollectionAssert.AreEqual(EttData.Variates, ett.VariateColumnNames.ToArray());
        var expected = EttData.Load(ml).GetColumn<float>("OT").ToArray();
        CollectionAssert.AreEqual(expected, ett.Data.GetColumn<float>("OT").ToArray(), "the same values as a typed loader");
        Assert.AreEqual(17420, expected.Length);

        // A Weather-like file: quoted header names with spaces, dots and slashes; an empty field is a missing value.
        string csv = Path.Combine(Path.GetTempPath(), $"wide-{Guid.NewGuid():N}.csv");
        File.WriteAllLines(csv, new[]
        {
            "\"p (mbar)\",\"max. wv (m/s)\",\"Date Time\",T (degC)",
            "1008.89,1.5,2020-01-01 00:10:00,0.71",
            "1008.76,,2020-01-01 00:20:00,0.75",
        });
        try
        {
            var wide = SeriesCsv.Load(ml, csv, timestampColumnName: "Date Time");
            CollectionAssert.AreEqual(new[] { "p (mbar)", "max. wv (m/s)", "T (degC)" }, wide.VariateColumnNames.ToArray());
            var wv = wide.Data.GetColumn<float>("max. wv (m/s)").ToArray();
            Assert.AreEqual(1.5f, wv[0]);
            Assert.IsTrue(float.IsNaN(wv[1]), "an empty field loads as NaN, never as 0");
            var error = Assert.ThrowsExactly<ArgumentException>(() => SeriesCsv.Load(ml, csv, timestampColumnName: "Date"));
            StringAssert.Contains(error.Message, "'Date Time'");
            Assert.AreEqual("Date Time", SeriesCsv.Load(ml, csv).TimestampColumnName,
                "a column whose first value parses as a date is detected");
        }
        finally
        {
            File.Delete(csv);
        }
    }
}
