using Microsoft.ML;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Runtime;
using static TorchSharp.torch;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;

namespace MLNet.Attention.Tests.Forecasting;

[TestClass]
public sealed class MultiVariateParallelTransformerTests
{
    private static MultiVariateParallelTransformerOptions Tiny(Action<MultiVariateParallelTransformerOptions>? change = null)
    {
        var o = new MultiVariateParallelTransformerOptions
        {
            VariateColumnNames = new[] { "A", "B", "C" }, TimestampColumnName = "Time",
            Lookback = L, Horizon = S, PatchLength = 4, ModelWidth = 16, Heads = 4, KeyValueHeads = 2, Layers = 1,
            MaxEpochs = 6, BatchSize = 16, LearningRate = 3e-3, NumberOfThreads = 1,
        };
        change?.Invoke(o);
        return o;
    }

    [TestMethod]
    public void LearnsASeriesWithCalendarChannelsBeatsNaiveAndRoundTrips()
    {
        var ml = new MLContext(seed: 7);
        var all = ml.Data.LoadFromEnumerable(Series(700));
        var train = ml.Data.TakeRows(all, 500);
        var test = ml.Data.SkipRows(all, 500 - L);
        using var model = ml.Forecasting.Trainers.MultiVariateParallelTransformer(Tiny()).Fit(train);
        Assert.AreEqual(CalendarFeatures.Hourly, model.CalendarFeatures);
        Assert.AreEqual(4, model.Config.Covariates, "hourly calendar covariates are extra channels");
        Assert.AreEqual(6, model.Config.Segments);

        var metrics = model.Evaluate(test);
        var naive = model.EvaluateLastValueBaseline(test);
        Assert.IsTrue(metrics.MeanSquaredError < 0.5 * naive.MeanSquaredError,
            $"MVPA MSE {metrics.MeanSquaredError:F4} vs naive {naive.MeanSquaredError:F4}");

        var path = Path.Combine(Path.GetTempPath(), $"mvpa-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, all.Schema, path);
            using var loaded = (MultiVariateParallelTransformerModel)ml.Model.Load(path, out _);
            Assert.AreEqual(model.Config, loaded.Config);
            CollectionAssert.AreEqual(model.Forecast(test).Values, loaded.Forecast(test).Values);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void TrainsAndForecastsThroughMissingValuesWhichNeverLeakIntoTheForecast()
    {
        var ml = new MLContext(seed: 7);
        var series = MissingValueSimulation.Apply(ml.Data.LoadFromEnumerable(Series(500)), new[] { "A", "B", "C" },
            MissingPattern.Point, 0.2, seed: 3, timestampColumnName: "Time");
        using var model = ml.Forecasting.Trainers.MultiVariateParallelTransformer(Tiny(o => o.MaxEpochs = 3)).Fit(series);
        Assert.AreEqual(MissingValuePolicy.ZeroFill, model.MissingValues);
        var metrics = model.Evaluate(series);
        Assert.IsTrue(metrics.MissingTargets > 0 && double.IsFinite(metrics.MeanSquaredError));
        Assert.IsTrue(model.Forecast(series).Values.All(float.IsFinite));

        // The value under a missing entry does not matter: the network sees it only through the mask.
        model.Network.eval();
        using var scope = NewDisposeScope();
        TorchRuntime.Seed(1);
        var x = randn(2, L, 3);
        var covariates = randn(2, L, 4);
        var mask = rand(2, L, 3).gt(0.3).to(ScalarType.Float32);
        using var _ = inference_mode();
        var a = model.Network.ForecastScaled(x.mul(mask), covariates, mask);
        var b = model.Network.ForecastScaled(x.mul(mask).add(mask.neg().add(1).mul(100)), covariates, mask);
        Assert.IsTrue(a.allclose(b, rtol: 0, atol: 1e-5), "a missing entry's value changed the forecast");
        var c = model.Network.ForecastScaled(x, covariates, null);
        Assert.IsFalse(a.allclose(c, rtol: 0, atol: 1e-3), "the mask was ignored");
    }

    [TestMethod]
    public void InconsistentSizesAreRefusedNamingTheOptionAndTheFix()
    {
        var ml = new MLContext(seed: 1);
        var patch = Assert.ThrowsExactly<ArgumentException>(() =>
            ml.Forecasting.Trainers.MultiVariateParallelTransformer(Tiny(o => o.PatchLength = 5)));
        StringAssert.Contains(patch.Message, "PatchLength = 5 must be positive and divide Lookback = 24");
        var segments = Assert.ThrowsExactly<ArgumentException>(() =>
            ml.Forecasting.Trainers.MultiVariateParallelTransformer(Tiny(o => { o.PatchLength = 1; o.MaxSegments = 20; })));
        StringAssert.Contains(segments.Message, "24 segments exceed MaxSegments = 20");
        var channels = Assert.ThrowsExactly<ArgumentException>(() =>
            ml.Forecasting.Trainers.MultiVariateParallelTransformer(Tiny(o => o.MaxChannels = 5)));
        StringAssert.Contains(channels.Message, "3 variates + 4 calendar covariates = 7 channels exceed MaxChannels = 5");
        var kv = Assert.ThrowsExactly<ArgumentException>(() =>
            ml.Forecasting.Trainers.MultiVariateParallelTransformer(Tiny(o => o.KeyValueHeads = 3)));
        StringAssert.Contains(kv.Message, "kvHeads = 3 must be positive and divide heads = 4");
    }
}
