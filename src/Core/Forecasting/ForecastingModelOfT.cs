using Microsoft.ML.Runtime;
using MLNet.Attention.Interop;
using MLNet.Attention.Persistence;
using MLNet.Attention.Runtime;
using TorchSharp;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// A trained forecaster built from a config record and one <see cref="IForecastingNetwork"/>: scoring, forecasting,
/// evaluation and backtesting come from <see cref="ForecastingModel"/>; saving is done here (the shared header, the
/// config, the scoring batch size and the weights, with checksums), and a subclass's static <c>Load</c> is one call to
/// <see cref="LoadModel{TModel}"/>.
/// </summary>
/// <typeparam name="TConfig">The network's hyper-parameters (a record; persisted field by field by name).</typeparam>
/// <typeparam name="TNetwork">The network module, owned by the model.</typeparam>
public abstract class ForecastingModel<TConfig, TNetwork> : ForecastingModel
    where TConfig : class
    where TNetwork : torch.nn.Module, IForecastingNetwork
{
    /// <summary>The payload layout written by this class: header with policies (from version 3) and prediction
    /// intervals (from version 4) and covariates (from version 5), config, scoring batch size, weights.</summary>
    private protected const int ToolkitPayloadVersion = 5;

    /// <summary>Wraps a trained (or loaded) network.</summary>
    /// <param name="env">The ML.NET environment.</param>
    /// <param name="name">Component name: the trainer's name, also written into the saved model.</param>
    /// <param name="state">From the toolkit: <see cref="ForecastingTrainer{TOptions, TConfig, TNetwork, TModel}"/>'s
    /// <c>CreateModel</c> or <see cref="LoadModel{TModel}"/>.</param>
    /// <param name="config">The network's hyper-parameters.</param>
    protected ForecastingModel(IHostEnvironment env, string name, ForecastingState state, TConfig config)
        : base(env, name, (state ?? throw new ArgumentNullException(nameof(state))).Scorer, state.ScoringBatchSize)
    {
        Config = config ?? throw new ArgumentNullException(nameof(config));
    }

    /// <summary>The network's hyper-parameters.</summary>
    public TConfig Config { get; }

    /// <summary>The underlying TorchSharp network (inputs scaled with the model's scaler, missing entries 0).</summary>
    public TNetwork Network => (TNetwork)Scorer.Network;

    private protected override int PayloadVersion => ToolkitPayloadVersion;

    private protected sealed override void SaveNetwork(BinaryWriter writer)
    {
        ConfigPersistence.WriteConfig(writer, Config);
        writer.Write(BatchSize);
        TorchModelPersistence.WriteModule(writer, Scorer.Network);
    }

    /// <summary>
    /// Reads back what this class saves (the body of a subclass's <c>public static TModel Load(IHostEnvironment env,
    /// BinaryReader reader)</c>, which <c>mlContext.Model.Load</c> calls): the header, the config, the weights; moves
    /// the network to the device by ML.NET's rule (<c>MLContext.GpuDeviceId</c>, <c>FallbackToCpu</c>) and disposes
    /// it if any step fails.
    /// </summary>
    /// <param name="env">The ML.NET environment.</param>
    /// <param name="reader">The payload, at its start.</param>
    /// <param name="name">The model's name for messages (the trainer's name).</param>
    /// <param name="createNetwork">Builds the network from the saved config.</param>
    /// <param name="createModel">Calls the model's constructor.</param>
    protected static TModel LoadModel<TModel>(IHostEnvironment env, BinaryReader reader, string name,
        Func<TConfig, TNetwork> createNetwork, Func<ForecastingState, TConfig, TModel> createModel)
        where TModel : ForecastingModel<TConfig, TNetwork> =>
        LoadModelWithLegacy(env, reader, name, createNetwork, createModel, version1: null);

    /// <summary><see cref="LoadModel{TModel}"/> that also reads the hand-written payload version 1 (MLNet.Attention
    /// 0.1.0): its config reader and its weights reader.</summary>
    private protected static TModel LoadModelWithLegacy<TModel>(IHostEnvironment env, BinaryReader reader, string name,
        Func<TConfig, TNetwork> createNetwork, Func<ForecastingState, TConfig, TModel> createModel,
        (Func<BinaryReader, TConfig> ReadConfig, Action<TNetwork, BinaryReader> ReadWeights)? version1)
        where TModel : ForecastingModel<TConfig, TNetwork>
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(reader);
        var (version, info, policies, intervals, covariates) = ReadHeader(reader, name, ToolkitPayloadVersion);
        if (version == 1 && version1 is null)
            throw new InvalidDataException($"This {name} model declares payload format 1, which {name} never wrote; " +
                                           "the model file is corrupted. Re-save or re-download it.");
        var config = version == 1 ? version1!.Value.ReadConfig(reader) : ConfigPersistence.ReadConfig<TConfig>(reader);
        int scoringBatchSize = reader.ReadInt32();
        if (scoringBatchSize < 1)
            throw new InvalidDataException($"Corrupted {name} model: scoring batch size {scoringBatchSize}. Re-save or re-download it.");
        TorchRuntime.EnsureLoaded();
        var network = createNetwork(config);
        try
        {
            if (network.Lookback != info.Lookback || network.Horizon != info.Horizon)
                throw new InvalidDataException(
                    $"Corrupted {name} model: the network is built for lookback {network.Lookback} / horizon " +
                    $"{network.Horizon}, the model for {info.Lookback} / {info.Horizon}. Re-save or re-download it.");
            if (version == 1) version1!.Value.ReadWeights(network, reader);
            else TorchModelPersistence.ReadModule(reader, network);
            var (gpu, fallback) = HostSettings.GpuSettings(env);
            var device = TorchRuntime.ResolveDevice(gpu, fallback);
            network.to(device);
            var scorer = new ForecastScorer(info, policies, covariates, network, device);
            if (intervals is not null) scorer.SetIntervals(intervals);
            return createModel(new ForecastingState(scorer, scoringBatchSize), config);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }
}
