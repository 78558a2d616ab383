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
public sealed class CribTrainer : ForecastingTrainer<CribOptions, CribConfig, CribNetwork, CribModel>
{
    internal const string TrainerName = "Crib";

    internal CribTrainer(IHostEnvironment env, CribOptions options) : base(env, TrainerName, options)
    {
    }

    /// <inheritdoc/>
    protected override CribConfig CreateConfig(ForecastingShape shape) => Options.ToConfig();

    /// <inheritdoc/>
    protected override CribNetwork CreateNetwork(CribConfig config) => new(config);

    /// <inheritdoc/>
    protected override CribModel CreateModel(ForecastingState state, CribConfig config) => new(Environment, state, config);

    // The reference's objective (spec §5) with the forecast error over observed targets only; the second view's
    // noise comes from the global generator, which the trainer seeds from MLContext.
    /// <inheritdoc/>
    protected override TrainingLoss Loss(CribNetwork network, TrainingBatch batch)
    {
        var config = network.Config;
        var terms = network.ComputeLoss(batch.Inputs[0]!, batch.Inputs[2], batch.Target);
        var prediction = MaskedLoss.AbsoluteError(terms.Output.Forecast, batch.Target, batch.TargetMask);
        var total = CribLosses.Total(config, prediction, terms.Consistency, terms.Kl);
        return new TrainingLoss(total, new[] { ("prediction", prediction), ("consistency", terms.Consistency), ("kl", terms.Kl) });
    }

    // Validation reports the forecast error alone (the reference's validation MAE), not the regularisers.
    /// <inheritdoc/>
    protected override bool HasValidationLoss => true;

    /// <inheritdoc/>
    protected override Tensor ValidationLoss(CribNetwork network, TrainingBatch batch) =>
        MaskedLoss.AbsoluteError(network.call(batch.Inputs[0]!, batch.Inputs[2]), batch.Target, batch.TargetMask);
}

/// <summary>A trained CRIB forecaster; see <see cref="ForecastingModel"/> for scoring, forecasting and evaluation.
/// Windows and series may hold missing values (NaN) when it was trained with <see cref="MissingValuePolicy.ZeroFill"/>
/// (the default).</summary>
public sealed class CribModel : ForecastingModel<CribConfig, CribNetwork>
{
    internal CribModel(IHostEnvironment env, ForecastingState state, CribConfig config)
        : base(env, CribTrainer.TrainerName, state, config)
    {
    }

    /// <summary>Reads a saved model; called by the persistence bridge on mlContext.Model.Load.</summary>
    public static CribModel Load(IHostEnvironment env, BinaryReader reader) =>
        LoadModel(env, reader, CribTrainer.TrainerName, config => new CribNetwork(config),
            (state, config) => new CribModel(env, state, config));
}
