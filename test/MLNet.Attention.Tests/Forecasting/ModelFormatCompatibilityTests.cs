using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;

namespace MLNet.Attention.Tests.Forecasting;

/// <summary>Models saved by earlier releases keep loading; payloads from later ones are refused naming the version
/// to use.</summary>
[TestClass]
public sealed class ModelFormatCompatibilityTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static SeriesRow[] FixtureSeries() => File.ReadAllLines(Fixture("itransformer-v1.series.csv")).Skip(1)
        .Select(line => line.Split(','))
        .Select(f => new SeriesRow
        {
            Time = DateTime.ParseExact(f[0], "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
            A = float.Parse(f[1], CultureInfo.InvariantCulture),
            B = float.Parse(f[2], CultureInfo.InvariantCulture),
            C = float.Parse(f[3], CultureInfo.InvariantCulture),
        }).ToArray();

    private static float[] FixtureValues(string key) => File.ReadAllLines(Fixture("itransformer-v1.forecasts.txt"))
        .Single(l => l.StartsWith(key + " ")).Split(' ').Skip(1)
        .Select(h => BitConverter.Int32BitsToSingle(int.Parse(h, NumberStyles.HexNumber))).ToArray();

    private static float[] WindowForecasts(MLContext ml, InvertedTransformerModel model, IDataView series) =>
        model.Transform(model.CreateWindows(ml, series)).GetColumn<float[]>("Next").SelectMany(v => v).ToArray();

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        // Written with the same code on another machine: libtorch may pick other CPU kernels, so allow float rounding.
        Assert.AreEqual(expected.Length, actual.Length, what);
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(expected[i], actual[i], 1e-5f * (1 + Math.Abs(expected[i])), $"{what}[{i}]");
    }

    [TestMethod]
    public void AModelSavedByVersion1LoadsAndForecastsAsBefore()
    {
        var ml = new MLContext(seed: 1);
        var series = ml.Data.LoadFromEnumerable(FixtureSeries());
        int threads = TorchSharp.torch.get_num_threads();
        TorchSharp.torch.set_num_threads(1);   // as when the fixture was written
        string resaved = Path.Combine(Path.GetTempPath(), $"itransformer-v2-{Guid.NewGuid():N}.zip");
        try
        {
            using var v1 = (InvertedTransformerModel)ml.Model.Load(Fixture("itransformer-v1.zip"), out _);
            Assert.AreEqual(new InvertedTransformerConfig(12, 4, ModelWidth: 8, Heads: 2, Layers: 1,
                FeedForwardWidth: 16, Dropout: 0.05, UseNorm: false, Activation: "gelu"), v1.Config);
            CollectionAssert.AreEqual(new[] { "A", "B", "C" }, v1.VariateColumnNames.ToArray());
            Assert.AreEqual(CalendarFeatures.Hourly, v1.CalendarFeatures);
            Assert.AreEqual(TimeSpan.FromHours(1), v1.Frequency);
            Assert.AreEqual(7, v1.BatchSize);
            var forecast = v1.Forecast(series).Values;
            var windows = WindowForecasts(ml, v1, series);
            AssertClose(FixtureValues("forecast"), forecast, "forecast");
            AssertClose(FixtureValues("windows"), windows, "windows");

            // Saved again by this build (payload version 2): bit-identical.
            ml.Model.Save(v1, series.Schema, resaved);
            using var v2 = (InvertedTransformerModel)new MLContext().Model.Load(resaved, out _);
            Assert.AreEqual(v1.Config, v2.Config);
            Assert.AreEqual(v1.Frequency, v2.Frequency);
            Assert.AreEqual(v1.BatchSize, v2.BatchSize);
            CollectionAssert.AreEqual(forecast, v2.Forecast(series).Values);
            CollectionAssert.AreEqual(windows, WindowForecasts(ml, v2, series));
        }
        finally
        {
            TorchSharp.torch.set_num_threads(threads);
            File.Delete(resaved);
        }
    }

    private static byte[] Header(params object[] fields)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            foreach (var f in fields)
                if (f is int i) writer.Write(i); else writer.Write((string)f);
        return stream.ToArray();
    }

    private static string LoadFails(byte[] payload)
    {
        using var reader = new BinaryReader(new MemoryStream(payload), Encoding.UTF8);
        return Assert.ThrowsExactly<InvalidDataException>(
            () => InvertedTransformerModel.Load(new MLContext(), reader)).Message;
    }

    [TestMethod]
    public void ACribModelSavedWithPayload3LoadsWithItsMissingValuePolicyAndForecastsAsBefore()
    {
        var ml = new MLContext(seed: 1);
        var rows = File.ReadAllLines(Fixture("crib-v3.series.csv")).Skip(1).Select(line => line.Split(',')).Select(f => new SeriesRow
        {
            Time = DateTime.ParseExact(f[0], "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
            A = float.Parse(f[1], CultureInfo.InvariantCulture),
            B = float.Parse(f[2], CultureInfo.InvariantCulture),
            C = float.Parse(f[3], CultureInfo.InvariantCulture),
        }).ToArray();
        Assert.IsTrue(float.IsNaN(rows[50].B), "the fixture series has missing values");
        var series = ml.Data.LoadFromEnumerable(rows);
        var expected = File.ReadAllText(Fixture("crib-v3.forecast.txt")).Trim().Split(' ').Skip(1)
            .Select(h => BitConverter.Int32BitsToSingle(int.Parse(h, NumberStyles.HexNumber))).ToArray();
        int threads = TorchSharp.torch.get_num_threads();
        TorchSharp.torch.set_num_threads(1);   // as when the fixture was written
        string resaved = Path.Combine(Path.GetTempPath(), $"crib-v4-{Guid.NewGuid():N}.zip");
        try
        {
            using var v3 = (CribModel)ml.Model.Load(Fixture("crib-v3.zip"), out _);
            Assert.AreEqual(MissingValuePolicy.ZeroFill, v3.MissingValues);
            Assert.IsNull(v3.IntervalCoverage);
            Assert.AreEqual(5, v3.BatchSize);
            var forecast = v3.Forecast(series).Values;
            AssertClose(expected, forecast, "forecast");

            // Saved again by this build (payload 5, with empty interval and covariate slots): bit-identical forecasts.
            ml.Model.Save(v3, series.Schema, resaved);
            using var v4 = (CribModel)new MLContext().Model.Load(resaved, out _);
            Assert.AreEqual(v3.Config, v4.Config);
            CollectionAssert.AreEqual(forecast, v4.Forecast(series).Values);
        }
        finally
        {
            TorchSharp.torch.set_num_threads(threads);
            File.Delete(resaved);
        }
    }

    [TestMethod]
    public void APayloadFromANewerReleaseNamesTheVersionToUse()
    {
        var message = LoadFails(Header(0, 6, "MLNet.Attention.Core 0.6.0"));
        StringAssert.Contains(message, "saved by MLNet.Attention.Core 0.6.0 with payload format 6");
        StringAssert.Contains(message, "reads InvertedTransformer payload formats up to 5");
        StringAssert.Contains(message, "Upgrade the MLNet.Attention packages to the version that saved it");
    }

    [TestMethod]
    public void ImpossibleHeadersAreReportedAsCorruption()
    {
        StringAssert.Contains(LoadFails(Header(-5)), "starts with -5, which no MLNet.Attention version writes");
        StringAssert.Contains(LoadFails(Header(0, 1, "MLNet.Attention.Core 0.1.0")), "declares payload format 1");
    }
}
