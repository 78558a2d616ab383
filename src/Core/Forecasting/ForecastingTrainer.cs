using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Attention.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>The sizes a forecasting network is built for.</summary>
/// <param name="Variates">Series columns N (all are forecast).</param>
/// <param name="Lookback">Input window length L.</param>
/// <param name="Horizon">Forecast length S.</param>
/// <param name="Covariates">Calendar covariates M per row (0 without them).</param>
/// <param name="PastCovariates">Past covariates P: window channels after the variates, not forecast.</param>
/// <param name="FutureCovariates">Known-future covariates F: the last window channels, their horizon values passed
/// beside the window (<see cref="IFutureCovariateForecastingNetwork"/>).</param>
public sealed record ForecastingShape(int Variates, int Lookback, int Horizon, int Covariates, int PastCovariates = 0,
    int FutureCovariates = 0)
{
    /// <summary>Channels per window row C = N + P + F (the window tensor's last dimension).</summary>
    public int Channels => Variates + PastCovariates + FutureCovariates;
}

/// <summary>
/// What a trained forecasting model wraps, produced by the toolkit (after training, or when loading): the model
/// description (variates, lookback, horizon, scaler, calendar covariates, missing-value policies), the network on its
/// device, and the scoring batch size. Hand it to the <see cref="ForecastingModel{TConfig, TNetwork}"/> constructor.
/// </summary>
public sealed class ForecastingState
{
    internal ForecastingState(ForecastScorer scorer, int scoringBatchSize)
    {
        Scorer = scorer;
        ScoringBatchSize = scoringBatchSize;
    }

    internal ForecastScorer Scorer { get; }

    /// <summary>Windows per forward pass when scoring.</summary>
    public int ScoringBatchSize { get; }

    /// <summary>The sizes the network was built for.</summary>
    public ForecastingShape Shape => Scorer.Info.Shape;
}

/// <summary>
/// The base of every forecasting trainer: a network that maps scaled windows to scaled forecasts
/// (<see cref="IForecastingNetwork"/>); the toolkit does the rest — reading the series (timestamps checked for order,
/// gaps and duplicates; missing values by <see cref="ForecasterOptions.MissingValues"/>), the validation split, the
/// scaler fitted on the training rows, windows with covariates and observed masks, the masked loss, the shared training
/// loop (early stopping, schedules, progress, seeding, device) and the fitted model's save/load.
/// </summary>
/// <remarks>
/// A new forecaster is an options class derived from <see cref="ForecasterOptions"/>, a network implementing
/// <see cref="IForecastingNetwork"/> built from a config record, a model derived from
/// <see cref="ForecastingModel{TConfig, TNetwork}"/> (a constructor and a static <c>Load</c>), this trainer with three
/// members, and a catalog method. Example:
/// <code>
/// public sealed class LinearTrainer(IHostEnvironment env, LinearOptions options)
///     : ForecastingTrainer&lt;LinearOptions, LinearConfig, LinearNetwork, LinearModel&gt;(env, "Linear", options)
/// {
///     protected override LinearConfig CreateConfig(ForecastingShape shape) =&gt; new(shape.Lookback, shape.Horizon);
///     protected override LinearNetwork CreateNetwork(LinearConfig config) =&gt; new(config);
///     protected override LinearModel CreateModel(ForecastingState state, LinearConfig config) =&gt; new(Environment, state, config);
/// }
/// </code>
/// The default loss is the mean squared error over observed targets; override <see cref="Loss"/> for another objective
/// (e.g. with regularisers) and <see cref="ValidationLoss"/> to validate on the forecast error alone.
/// </remarks>
/// <typeparam name="TOptions">The trainer's options.</typeparam>
/// <typeparam name="TConfig">The network's hyper-parameters (a record, persisted with the weights).</typeparam>
/// <typeparam name="TNetwork">The network module (owned by the model after training).</typeparam>
/// <typeparam name="TModel">The fitted model.</typeparam>
public abstract class ForecastingTrainer<TOptions, TConfig, TNetwork, TModel> : TorchTrainerBase<TOptions, TModel>, IForecastingTrainer
    where TOptions : ForecasterOptions
    where TConfig : class
    where TNetwork : nn.Module, IForecastingNetwork
    where TModel : ForecastingModel<TConfig, TNetwork>
{
    /// <inheritdoc/>
    protected ForecastingTrainer(IHostEnvironment env, string name, TOptions options) : base(env, name, options)
    {
    }

    ForecasterOptions IForecastingTrainer.Options => Options;

    /// <summary>The network's hyper-parameters for the series (called before seeding; validate them here).</summary>
    protected abstract TConfig CreateConfig(ForecastingShape shape);

    /// <summary>Builds a freshly initialised network (called after seeding, so its weights follow the seed).</summary>
    protected abstract TNetwork CreateNetwork(TConfig config);

    /// <summary>Wraps the trained network (inside <paramref name="state"/>, now owned by the model) in the fitted model.</summary>
    protected abstract TModel CreateModel(ForecastingState state, TConfig config);

    /// <summary>Training loss of a batch; <c>batch.Inputs</c> are the scaled window [B, L, C] (missing entries 0),
    /// the covariates [B, L, M] or null, the observed mask or null, and with known-future covariates their horizon
    /// values [B, S, F]; <c>batch.Target</c> [B, S, N] with <c>batch.TargetMask</c> (1 = observed) or null.
    /// Default: squared error over the observed targets of <see cref="Forecast"/>.</summary>
    protected virtual TrainingLoss Loss(TNetwork network, TrainingBatch batch) =>
        new(MaskedLoss.SquaredError(Forecast(network, batch), batch.Target, batch.TargetMask));

    /// <summary>The network's scaled forecast [B, S, N] of a batch, as scoring computes it: the future covariates go to
    /// <see cref="IFutureCovariateForecastingNetwork"/>, and output channels beyond the N variates (past covariates'
    /// tokens) are dropped.</summary>
    protected static Tensor Forecast(TNetwork network, TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return ForecastScorer.Forward(network, (int)batch.Target.size(2), batch.Inputs);
    }

    /// <summary>True when the network reads past covariates (<see cref="ForecasterOptions.PastCovariateColumnNames"/>)
    /// as window channels after the variates, i.e. it is built for <see cref="ForecastingShape.Channels"/> channels.
    /// Default false: the trainer refuses them. Known-future covariates need a network implementing
    /// <see cref="IFutureCovariateForecastingNetwork"/>.</summary>
    protected virtual bool SupportsPastCovariates => false;

    /// <summary>The validation loss of a batch for early stopping and the epoch report; null (the default) uses
    /// <see cref="Loss"/>'s total.</summary>
    protected virtual Tensor? ValidationLoss(TNetwork network, TrainingBatch batch) => null;

    /// <summary>True when <see cref="ValidationLoss"/> is overridden to return a value.</summary>
    protected virtual bool HasValidationLoss => false;

    /// <inheritdoc/>
    protected sealed override TModel Train(IDataView input)
    {
        Options.Validate();
        var shape = ForecasterTraining.Shape(Options);
        if (shape.PastCovariates > 0 && !SupportsPastCovariates)
            throw new InvalidOperationException($"{Name} does not read past covariates (PastCovariateColumnNames: " +
                $"{string.Join(", ", Options.PastCovariateColumnNames)}). Use the InvertedTransformer or " +
                "MultiVariateParallelTransformer forecaster for them, or name them as variates (they are then forecast too).");
        if (shape.FutureCovariates > 0 && !typeof(IFutureCovariateForecastingNetwork).IsAssignableFrom(typeof(TNetwork)))
            throw new InvalidOperationException($"{Name} does not read known-future covariates (FutureCovariateColumnNames: " +
                $"{string.Join(", ", Options.FutureCovariateColumnNames)}). Use the InvertedTransformer forecaster for " +
                "them, or name them in PastCovariateColumnNames if the forecaster reads those (their horizon values are then unused).");
        var config = CreateConfig(shape);
        var (scorer, summary) = ForecasterTraining.Train(Environment, Name, Options, input, new Adapter(this, config));
        try
        {
            var model = CreateModel(new ForecastingState(scorer, Options.ScoringBatchSize), config);
            model.TrainingSummary = summary;
            return model;
        }
        catch
        {
            scorer.Dispose();
            throw;
        }
    }

    /// <summary>Checks that the series columns exist and are numeric, and describes the model's window-scoring
    /// columns: <c>Lookback</c> (+ <c>Timestamp</c> with calendar covariates) in, <c>Forecast</c> out.</summary>
    public override SchemaShape GetOutputSchema(SchemaShape inputSchema) =>
        ForecasterTraining.OutputSchema(Name, Options, inputSchema);

    private sealed class Adapter(ForecastingTrainer<TOptions, TConfig, TNetwork, TModel> trainer, TConfig config)
        : ForecastingArchitecture<TNetwork>
    {
        public override TNetwork CreateNetwork(ForecastingModelInfo info) => trainer.CreateNetwork(config);
        public override TrainingLoss Loss(TNetwork network, TrainingBatch batch) => trainer.Loss(network, batch);
        public override bool HasValidationLoss => trainer.HasValidationLoss;
        public override Tensor ValidationLoss(TNetwork network, TrainingBatch batch) =>
            trainer.ValidationLoss(network, batch) ?? trainer.Loss(network, batch).Total;
    }
}

/// <summary>Losses over observed targets only: a missing target neither pulls the forecast nor dilutes the mean.</summary>
public static class MaskedLoss
{
    /// <summary>Mean squared error over the entries where <paramref name="mask"/> is 1 (all entries when null).</summary>
    public static Tensor SquaredError(Tensor forecast, Tensor target, Tensor? mask) =>
        mask is null ? nn.functional.mse_loss(forecast, target) : Masked(forecast.sub(target).pow(Runtime.TorchScalars.Of(2L)), mask);

    /// <summary>Mean absolute error over the entries where <paramref name="mask"/> is 1 (all entries when null).</summary>
    public static Tensor AbsoluteError(Tensor forecast, Tensor target, Tensor? mask) =>
        mask is null ? nn.functional.l1_loss(forecast, target) : Masked(forecast.sub(target).abs(), mask);

    private static Tensor Masked(Tensor errors, Tensor mask) =>
        errors.mul(mask).sum().div(mask.sum().clamp_min(Runtime.TorchScalars.One));
}
