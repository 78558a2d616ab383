using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Attention.Engine;
using MLNet.Attention.Forecasting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using ThirdParty.LinearForecast;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;

namespace MLNet.Attention.Tests.Forecasting;

[TestClass]
public sealed class ThirdPartyForecasterTests
{
    [TestMethod]
    public void AForecasterFromThePublicToolkitTrainsEvaluatesSavesLoadsAndBacktests()
    {
        var ml = new MLContext(seed: 5);
        var all = ml.Data.LoadFromEnumerable(Series(700));
        var train = ml.Data.TakeRows(all, 500);
        var test = ml.Data.SkipRows(all, 500 - L);
        var options = new LinearForecastOptions
        {
            VariateColumnNames = new[] { "A", "B", "C" }, TimestampColumnName = "Time", CalendarFeatures = CalendarFeatures.None,
            Lookback = L, Horizon = S, MaxEpochs = 8, BatchSize = 16, LearningRate = 1e-2, NumberOfThreads = 1,
        };
        var trainer = new LinearForecastTrainer(TrainerCatalog.EnvironmentOf(ml), options);
        using var model = trainer.Fit(train);
        Assert.AreEqual(new LinearForecastConfig(L, S), model.Config);
        Assert.AreEqual(8, model.TrainingSummary!.Epochs.Count);

        var metrics = model.Evaluate(test);
        var naive = model.EvaluateLastValueBaseline(test);
        Assert.IsTrue(metrics.MeanSquaredError < 0.7 * naive.MeanSquaredError,
            $"linear MSE {metrics.MeanSquaredError:F4} vs naive {naive.MeanSquaredError:F4}");

        // Saved and loaded through mlContext.Model like the pack's own forecasters: the same forecasts.
        var path = Path.Combine(Path.GetTempPath(), $"linear-forecast-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, all.Schema, path);
            using var loaded = (LinearForecastModel)ml.Model.Load(path, out _);
            var before = model.Forecast(test).Values;
            var after = loaded.Forecast(test).Values;
            CollectionAssert.AreEqual(before, after);
            Assert.AreEqual(metrics.MeanSquaredError, loaded.Evaluate(test).MeanSquaredError, 1e-9);
        }
        finally
        {
            File.Delete(path);
        }

        // The toolkit's helpers take it as they take the pack's forecasters.
        var backtest = ForecastBacktest.Run(trainer, all, folds: 2, step: 50);
        Assert.IsTrue(backtest.Refitted);
        Assert.AreEqual(2, backtest.Folds.Count);
        Assert.IsTrue(double.IsFinite(backtest.Overall.MeanSquaredError));
    }

    [TestMethod]
    public void TheSmokeAppsDemoBeatsTheNaiveForecastAndReloadsIdentically()
    {
        var (ratio, same) = LinearDemo.Run();
        Assert.IsTrue(ratio < 0.5, $"MSE ratio to naive {ratio:F3}");
        Assert.IsTrue(same);
    }

    [TestMethod]
    public void ANetworkBuiltForOtherSizesIsRefusedNamingThem()
    {
        var ml = new MLContext(seed: 5);
        var options = new LinearForecastOptions
        {
            VariateColumnNames = new[] { "A", "B", "C" }, Lookback = L, Horizon = S, MaxEpochs = 1, NumberOfThreads = 1,
        };
        var trainer = new WrongSizeTrainer(TrainerCatalog.EnvironmentOf(ml), options);
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Fit(ml.Data.LoadFromEnumerable(Series(200))));
        StringAssert.Contains(error.Message, $"built for lookback {L + 1} and horizon {S}");
    }

    private sealed class WrongSizeTrainer(IHostEnvironment env, LinearForecastOptions options)
        : ForecastingTrainer<LinearForecastOptions, LinearForecastConfig, LinearForecastNetwork, LinearForecastModel>(
            env, "WrongSize", options)
    {
        protected override LinearForecastConfig CreateConfig(ForecastingShape shape) => new(shape.Lookback + 1, shape.Horizon);

        protected override LinearForecastNetwork CreateNetwork(LinearForecastConfig config) => new(config);

        protected override LinearForecastModel CreateModel(ForecastingState state, LinearForecastConfig config) =>
            new(Environment, state, config);
    }
}
