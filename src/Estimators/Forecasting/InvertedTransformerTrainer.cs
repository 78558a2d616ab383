using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using MLNet.Attention.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Trains an iTransformer (inverted Transformer) multivariate forecaster from a series held as an
/// <see cref="IDataView"/> with one row per timestamp. Create it with
/// <c>mlContext.Forecasting.Trainers.InvertedTransformer(...)</c>.
/// </summary>
public sealed class InvertedTransformerTrainer : IEstimator<InvertedTransformerModel>, IForecastingTrainer
{
    internal const string Name = "InvertedTransformer";
    private readonly IHostEnvironment _env;
    private readonly InvertedTransformerOptions _options;

    internal InvertedTransformerTrainer(IHostEnvironment env, InvertedTransformerOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _options.Validate();
    }

    ForecasterOptions IForecastingTrainer.Options => _options;

    /// <summary>Trains on <paramref name="input"/> (the training rows; validation rows come from the options).</summary>
    public InvertedTransformerModel Fit(IDataView input)
    {
        var config = _options.ToConfig();
        var architecture = new Architecture(config);
        var (scorer, summary) = ForecasterTraining.Train(_env, Name, _options, input, architecture);
        return new InvertedTransformerModel(_env, scorer, config, _options.ScoringBatchSize) { TrainingSummary = summary };
    }

    private sealed class Architecture(InvertedTransformerConfig config) : ForecastingArchitecture<InvertedTransformerNetwork>
    {
        public override InvertedTransformerNetwork CreateNetwork(ForecastingModelInfo info) => new(config);

        // The iTransformer has no notion of a missing input: it sees the zero-filled window (MissingValues = ZeroFill).
        public override Tensor ForecastScaled(InvertedTransformerNetwork network, Tensor windows, Tensor? covariates,
            Tensor? observedMask) => network.call(windows, covariates);
    }

    /// <summary>
    /// Checks that the series columns exist and are numeric, and describes the model's window-scoring columns:
    /// <c>Lookback</c> in, <c>Forecast</c> out.
    /// </summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => ForecasterTraining.OutputSchema(Name, _options, inputSchema);
}

/// <summary>A trained iTransformer forecaster; see <see cref="ForecastingModel"/> for scoring, forecasting and evaluation.</summary>
public sealed class InvertedTransformerModel : ForecastingModel
{
    /// <summary>Version 3: + the missing-value and duplicate-timestamp policies. Version 2: the config and the model
    /// description stored by <see cref="ConfigPersistence"/>, weights through <see cref="TorchModelPersistence.WriteModule"/>.
    /// Version 1 (MLNet.Attention 0.1.0): every field by hand, weights by <c>Module.save</c>. All are still read.</summary>
    private const int CurrentPayloadVersion = 3;
    private readonly InvertedTransformerConfig _config;

    /// <summary>The network's hyper-parameters.</summary>
    public InvertedTransformerConfig Config => _config;

    internal InvertedTransformerModel(IHostEnvironment env, ForecastScorer scorer, InvertedTransformerConfig config,
        int scoringBatchSize)
        : base(env, InvertedTransformerTrainer.Name, scorer, scoringBatchSize)
    {
        _config = config;
    }

    /// <summary>The underlying TorchSharp network (for direct use; inputs scaled with the model's scaler).</summary>
    public InvertedTransformerNetwork Network => (InvertedTransformerNetwork)Scorer.Network;

    private protected override int PayloadVersion => CurrentPayloadVersion;

    private protected override void SaveNetwork(BinaryWriter writer)
    {
        ConfigPersistence.WriteConfig(writer, _config);
        writer.Write(BatchSize);
        TorchModelPersistence.WriteModule(writer, Scorer.Network);
    }

    /// <summary>Reads a model written by <see cref="SaveNetwork"/> (payload versions 1 and 2); called by the
    /// persistence bridge on mlContext.Model.Load.</summary>
    public static InvertedTransformerModel Load(IHostEnvironment env, BinaryReader reader)
    {
        var (version, info, policies) = ReadHeader(reader, InvertedTransformerTrainer.Name, CurrentPayloadVersion);
        var config = version == 1
            ? ReadConfigVersion1(reader)
            : ConfigPersistence.ReadConfig<InvertedTransformerConfig>(reader);
        int scoringBatchSize = reader.ReadInt32();
        if (config.Lookback != info.Lookback || config.Horizon != info.Horizon || scoringBatchSize < 1)
            throw new InvalidDataException(
                "Corrupted InvertedTransformer model: network and model disagree on lookback/horizon, or the scoring " +
                "batch size is invalid. Re-save or re-download it.");
        Runtime.TorchRuntime.EnsureLoaded();
        var network = new InvertedTransformerNetwork(config);
        try
        {
            if (version == 1) network.load(reader);
            else TorchModelPersistence.ReadModule(reader, network);
            var (gpu, fallback) = HostSettings.GpuSettings(env);
            var device = Runtime.TorchRuntime.ResolveDevice(gpu, fallback);
            network.to(device);
            var scorer = new ForecastScorer(info, policies, network, device, (x, c, _) => network.call(x, c));
            return new InvertedTransformerModel(env, scorer, config, scoringBatchSize);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>The hand-written config of payload version 1 (MLNet.Attention 0.1.0).</summary>
    private static InvertedTransformerConfig ReadConfigVersion1(BinaryReader reader)
    {
        var config = new InvertedTransformerConfig(reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt32(),
            reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt32(), reader.ReadDouble(), reader.ReadBoolean(),
            reader.ReadString());
        try
        {
            config.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException(
                $"Corrupted InvertedTransformer model (payload version 1): {ex.Message}", ex);
        }
        return config;
    }
}
