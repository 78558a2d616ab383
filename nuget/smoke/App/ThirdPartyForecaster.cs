// A forecaster written outside this repository, from the packages' public API only: an options class, a config record,
// a network implementing IForecastingNetwork, a thin trainer and a model with a one-line Load. Also compiled into the
// test project (Forecasting/ThirdPartyForecasterTests) so it is exercised on every test run.
using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Attention.Engine;
using MLNet.Attention.Forecasting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ThirdParty.LinearForecast;

public sealed record LinearForecastConfig(int Lookback, int Horizon);

public sealed class LinearForecastOptions : ForecasterOptions
{
}

public sealed class LinearForecastNetwork : nn.Module<Tensor, Tensor>, IForecastingNetwork
{
    private readonly Linear projection;

    public LinearForecastNetwork(LinearForecastConfig config) : base(nameof(LinearForecastNetwork))
    {
        Lookback = config.Lookback;
        Horizon = config.Horizon;
        projection = nn.Linear(config.Lookback, config.Horizon);
        RegisterComponents();
    }

    public int Lookback { get; }

    public int Horizon { get; }

    // [B, L, N] → [B, S, N]: one linear map over time shared by the variates (DLinear without decomposition).
    public override Tensor forward(Tensor windows) => projection.call(windows.transpose(1, 2)).transpose(1, 2);

    public Tensor ForecastScaled(Tensor windows, Tensor? covariates, Tensor? observedMask) => call(windows);
}

public sealed class LinearForecastTrainer(IHostEnvironment env, LinearForecastOptions options)
    : ForecastingTrainer<LinearForecastOptions, LinearForecastConfig, LinearForecastNetwork, LinearForecastModel>(
        env, "LinearForecast", options)
{
    protected override LinearForecastConfig CreateConfig(ForecastingShape shape) => new(shape.Lookback, shape.Horizon);

    protected override LinearForecastNetwork CreateNetwork(LinearForecastConfig config) => new(config);

    protected override LinearForecastModel CreateModel(ForecastingState state, LinearForecastConfig config) =>
        new(Environment, state, config);
}

public sealed class LinearForecastModel : ForecastingModel<LinearForecastConfig, LinearForecastNetwork>
{
    public LinearForecastModel(IHostEnvironment env, ForecastingState state, LinearForecastConfig config)
        : base(env, "LinearForecast", state, config)
    {
    }

    public static LinearForecastModel Load(IHostEnvironment env, BinaryReader reader) =>
        LoadModel(env, reader, "LinearForecast", config => new LinearForecastNetwork(config),
            (state, config) => new LinearForecastModel(env, state, config));
}

/// <summary>Trains on a noisy two-variate daily cycle, compares with the naive forecast, saves and reloads.</summary>
public static class LinearDemo
{
    public sealed class Row
    {
        public DateTime Time { get; set; }
        public float A { get; set; }
        public float B { get; set; }
    }

    public static (double MseRatioToNaive, bool SameAfterReload) Run()
    {
        var ml = new MLContext(seed: 5);
        var rng = new Random(1);
        var rows = Enumerable.Range(0, 600).Select(t => new Row
        {
            Time = new DateTime(2024, 1, 1).AddHours(t),
            A = (float)(Math.Sin(2 * Math.PI * t / 24) + 0.1 * rng.NextDouble()),
            B = (float)(Math.Cos(2 * Math.PI * t / 24) + 0.1 * rng.NextDouble()),
        }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        var trainer = new LinearForecastTrainer(TrainerCatalog.EnvironmentOf(ml), new LinearForecastOptions
        {
            VariateColumnNames = new[] { "A", "B" }, Lookback = 24, Horizon = 6, MaxEpochs = 8, LearningRate = 1e-2,
            NumberOfThreads = 1,
        });
        using var model = trainer.Fit(ml.Data.TakeRows(data, 450));
        var test = ml.Data.SkipRows(data, 450 - 24);
        double ratio = model.Evaluate(test).MeanSquaredError / model.EvaluateLastValueBaseline(test).MeanSquaredError;
        string path = Path.Combine(Path.GetTempPath(), $"linear-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            using var loaded = (LinearForecastModel)new MLContext().Model.Load(path, out _);
            return (ratio, model.Forecast(test).Values.SequenceEqual(loaded.Forecast(test).Values));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
