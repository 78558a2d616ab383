using Microsoft.ML.Runtime;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Trains the MVPA-inspired forecaster (tokens = time segment × variable, attention causal in time and full across
/// variables, a linear head per variable) from a series with one row per timestamp, NaN = missing. Create it with
/// <c>mlContext.Forecasting.Trainers.MultiVariateParallelTransformer(...)</c>.
/// </summary>
public sealed class MultiVariateParallelTransformerTrainer : ForecastingTrainer<MultiVariateParallelTransformerOptions,
    MultiVariateParallelTransformerConfig, MultiVariateParallelTransformerNetwork, MultiVariateParallelTransformerModel>
{
    internal const string TrainerName = "MultiVariateParallelTransformer";

    internal MultiVariateParallelTransformerTrainer(IHostEnvironment env, MultiVariateParallelTransformerOptions options)
        : base(env, TrainerName, options)
    {
    }

    /// <inheritdoc/>
    protected override MultiVariateParallelTransformerConfig CreateConfig(ForecastingShape shape) => Options.ToConfig(shape);

    /// <inheritdoc/>
    protected override bool SupportsPastCovariates => true;

    /// <inheritdoc/>
    protected override MultiVariateParallelTransformerNetwork CreateNetwork(MultiVariateParallelTransformerConfig config) =>
        new(config);

    /// <inheritdoc/>
    protected override MultiVariateParallelTransformerModel CreateModel(ForecastingState state,
        MultiVariateParallelTransformerConfig config) => new(Environment, state, config);
}

/// <summary>A trained MVPA-inspired forecaster; see <see cref="ForecastingModel"/> for scoring, forecasting and
/// evaluation.</summary>
public sealed class MultiVariateParallelTransformerModel
    : ForecastingModel<MultiVariateParallelTransformerConfig, MultiVariateParallelTransformerNetwork>
{
    internal MultiVariateParallelTransformerModel(IHostEnvironment env, ForecastingState state,
        MultiVariateParallelTransformerConfig config) : base(env, MultiVariateParallelTransformerTrainer.TrainerName, state, config)
    {
    }

    /// <summary>Reads a saved model; called by the persistence bridge on mlContext.Model.Load.</summary>
    public static MultiVariateParallelTransformerModel Load(IHostEnvironment env, BinaryReader reader) =>
        LoadModel(env, reader, MultiVariateParallelTransformerTrainer.TrainerName,
            config => new MultiVariateParallelTransformerNetwork(config),
            (state, config) => new MultiVariateParallelTransformerModel(env, state, config));
}
