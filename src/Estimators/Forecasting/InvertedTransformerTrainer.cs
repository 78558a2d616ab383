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
public sealed class InvertedTransformerTrainer
    : ForecastingTrainer<InvertedTransformerOptions, InvertedTransformerConfig, InvertedTransformerNetwork, InvertedTransformerModel>
{
    internal const string TrainerName = "InvertedTransformer";

    internal InvertedTransformerTrainer(IHostEnvironment env, InvertedTransformerOptions options)
        : base(env, TrainerName, options)
    {
    }

    /// <inheritdoc/>
    protected override InvertedTransformerConfig CreateConfig(ForecastingShape shape) =>
        Options.ToConfig() with { FutureCovariates = shape.FutureCovariates };

    /// <summary>Past covariates are extra variate tokens (the iTransformer authors' suggestion for exogenous series).</summary>
    protected override bool SupportsPastCovariates => true;

    /// <inheritdoc/>
    protected override InvertedTransformerNetwork CreateNetwork(InvertedTransformerConfig config) => new(config);

    /// <inheritdoc/>
    protected override InvertedTransformerModel CreateModel(ForecastingState state, InvertedTransformerConfig config) =>
        new(Environment, state, config);
}

/// <summary>A trained iTransformer forecaster; see <see cref="ForecastingModel"/> for scoring, forecasting and evaluation.</summary>
public sealed class InvertedTransformerModel : ForecastingModel<InvertedTransformerConfig, InvertedTransformerNetwork>
{
    // Payload versions: 3 adds the missing-value and duplicate-timestamp policies; 2 stores the config and the model
    // description by ConfigPersistence and the weights by TorchModelPersistence.WriteModule; 1 (MLNet.Attention 0.1.0)
    // wrote every field by hand and the weights by Module.save. All are still read.
    internal InvertedTransformerModel(IHostEnvironment env, ForecastingState state, InvertedTransformerConfig config)
        : base(env, InvertedTransformerTrainer.TrainerName, state, config)
    {
    }

    /// <summary>Reads a saved model (payload versions 1 to 3); called by the persistence bridge on
    /// mlContext.Model.Load.</summary>
    public static InvertedTransformerModel Load(IHostEnvironment env, BinaryReader reader) =>
        LoadModelWithLegacy(env, reader, InvertedTransformerTrainer.TrainerName, config => new InvertedTransformerNetwork(config),
            (state, config) => new InvertedTransformerModel(env, state, config),
            (ReadConfigVersion1, (network, r) => network.load(r)));

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
