using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using MLNet.Attention.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Trains a CRIB forecaster (Yang et al., "Revisiting Multivariate Time Series Forecasting with Missing Values") from
/// a series with one row per timestamp that may contain missing values (NaN): no imputation, the network reads the
/// zero-filled window with its observed mask. Create it with <c>mlContext.Forecasting.Trainers.Crib(...)</c>.
/// </summary>
public sealed class CribTrainer : IEstimator<CribModel>, IForecastingTrainer
{
    internal const string Name = "Crib";
    private readonly IHostEnvironment _env;
    private readonly CribOptions _options;

    internal CribTrainer(IHostEnvironment env, CribOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _options.Validate();
    }

    ForecasterOptions IForecastingTrainer.Options => _options;

    /// <summary>Trains on <paramref name="input"/> (the training rows; validation rows come from the options).</summary>
    public CribModel Fit(IDataView input)
    {
        var config = _options.ToConfig();
        var (scorer, summary) = ForecasterTraining.Train(_env, Name, _options, input, new Architecture(config));
        return new CribModel(_env, scorer, config, _options.ScoringBatchSize) { TrainingSummary = summary };
    }

    /// <summary>Checks the series columns and describes the window-scoring columns: <c>Lookback</c> in,
    /// <c>Forecast</c> out.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => ForecasterTraining.OutputSchema(Name, _options, inputSchema);

    private sealed class Architecture(CribConfig config) : ForecastingArchitecture<CribNetwork>
    {
        public override CribNetwork CreateNetwork(ForecastingModelInfo info) => new(config);

        public override Tensor ForecastScaled(CribNetwork network, Tensor windows, Tensor? covariates, Tensor? observedMask) =>
            network.call(windows, observedMask);

        // The reference's objective (spec §5) with the forecast error over observed targets only; the second view's
        // noise comes from the global generator, which the trainer seeds from MLContext.
        public override TrainingLoss Loss(CribNetwork network, TrainingBatch batch)
        {
            var terms = network.ComputeLoss(batch.Inputs[0]!, batch.Inputs[2], batch.Target);
            var prediction = MaskedLoss.AbsoluteError(terms.Output.Forecast, batch.Target, batch.TargetMask);
            var total = CribLosses.Total(config, prediction, terms.Consistency, terms.Kl);
            return new TrainingLoss(total, new[] { ("prediction", prediction), ("consistency", terms.Consistency), ("kl", terms.Kl) });
        }

        // Validation reports the forecast error alone (the reference's validation MAE), not the regularisers.
        public override bool HasValidationLoss => true;

        public override Tensor ValidationLoss(CribNetwork network, TrainingBatch batch) =>
            MaskedLoss.AbsoluteError(network.call(batch.Inputs[0]!, batch.Inputs[2]), batch.Target, batch.TargetMask);
    }
}

/// <summary>A trained CRIB forecaster; see <see cref="ForecastingModel"/> for scoring, forecasting and evaluation.
/// Windows and series may hold missing values (NaN) when it was trained with <see cref="MissingValuePolicy.ZeroFill"/>
/// (the default).</summary>
public sealed class CribModel : ForecastingModel
{
    /// <summary>Version 3 (the first CRIB payload; shares the forecasters' header with policies): config, scoring
    /// batch size, weights.</summary>
    private const int CurrentPayloadVersion = 3;
    private readonly CribConfig _config;

    internal CribModel(IHostEnvironment env, ForecastScorer scorer, CribConfig config, int scoringBatchSize)
        : base(env, CribTrainer.Name, scorer, scoringBatchSize)
    {
        _config = config;
    }

    /// <summary>The network's hyper-parameters.</summary>
    public CribConfig Config => _config;

    /// <summary>The underlying TorchSharp network (inputs scaled with the model's scaler, missing entries 0).</summary>
    public CribNetwork Network => (CribNetwork)Scorer.Network;

    private protected override int PayloadVersion => CurrentPayloadVersion;

    private protected override void SaveNetwork(BinaryWriter writer)
    {
        ConfigPersistence.WriteConfig(writer, _config);
        writer.Write(BatchSize);
        TorchModelPersistence.WriteModule(writer, Scorer.Network);
    }

    /// <summary>Reads a model written by <see cref="SaveNetwork"/>; called by the persistence bridge on
    /// mlContext.Model.Load.</summary>
    public static CribModel Load(IHostEnvironment env, BinaryReader reader)
    {
        var (_, info, policies) = ReadHeader(reader, CribTrainer.Name, CurrentPayloadVersion);
        var config = ConfigPersistence.ReadConfig<CribConfig>(reader);
        int scoringBatchSize = reader.ReadInt32();
        if (config.Lookback != info.Lookback || config.Horizon != info.Horizon || scoringBatchSize < 1)
            throw new InvalidDataException(
                "Corrupted Crib model: network and model disagree on lookback/horizon, or the scoring batch size is " +
                "invalid. Re-save or re-download it.");
        Runtime.TorchRuntime.EnsureLoaded();
        var network = new CribNetwork(config);
        try
        {
            TorchModelPersistence.ReadModule(reader, network);
            var (gpu, fallback) = HostSettings.GpuSettings(env);
            var device = Runtime.TorchRuntime.ResolveDevice(gpu, fallback);
            network.to(device);
            var scorer = new ForecastScorer(info, policies, network, device, (x, _, m) => network.call(x, m));
            return new CribModel(env, scorer, config, scoringBatchSize);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }
}
