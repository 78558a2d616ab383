using Microsoft.ML.SearchSpace;
using Microsoft.ML;

namespace MLNet.Attention.Engine;

/// <summary>How the learning rate evolves during training.</summary>
public enum LearningRateSchedule
{
    /// <summary>The initial rate throughout.</summary>
    Constant,
    /// <summary>Epochs 1 and 2 at the initial rate, then halved after every epoch (iTransformer's "type1").</summary>
    HalveEveryEpoch,
    /// <summary>Cosine decay from the initial rate to zero over all steps (after any warm-up).</summary>
    Cosine,
    /// <summary>Multiplied by <see cref="TorchTrainerOptions.StepDecayFactor"/> every
    /// <see cref="TorchTrainerOptions.StepDecayEpochs"/> epochs (torch.optim.lr_scheduler.StepLR).</summary>
    StepDecay,
}

/// <summary>The optimizer of the training engine (both scalar-safe, equal to PyTorch's; see MLNet.Attention.Optim).</summary>
public enum OptimizerKind
{
    /// <summary>AdamW with decoupled weight decay (β = 0.9, 0.999; ε = 1e-8).</summary>
    AdamW,
    /// <summary>SGD with <see cref="TorchTrainerOptions.Momentum"/>, optional Nesterov momentum and L2 weight decay.</summary>
    Sgd,
}

/// <summary>The validation quantity early stopping and best-weights selection follow.</summary>
public enum EarlyStoppingMetric
{
    /// <summary>Mean validation loss (lower is better); every task has it.</summary>
    Loss,
    /// <summary>Validation accuracy (higher is better); classification tasks.</summary>
    Accuracy,
    /// <summary>Macro-averaged F1 over the classes (higher is better); classification tasks.</summary>
    MacroF1,
    /// <summary>Area under the ROC curve (higher is better; one-vs-rest macro average for more than two classes).</summary>
    Auc,
}

/// <summary>Information about one finished epoch, passed to <see cref="TorchTrainerOptions.EpochCallback"/> and logged.</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="MaxEpochs">The configured maximum.</param>
/// <param name="TrainLoss">Mean training loss over the epoch's rows.</param>
/// <param name="ValidationLoss">Mean validation loss over all validation rows, or null without validation data.</param>
/// <param name="BestValidationLoss">Best validation loss so far (null without validation data).</param>
/// <param name="LearningRate">Learning rate used in this epoch (at its last step).</param>
/// <param name="Elapsed">Wall time of the epoch, training and validation.</param>
/// <param name="TrainRowsPerSecond">Training throughput.</param>
/// <param name="IsBest">True when this epoch improved the validation loss (its weights are kept).</param>
public sealed record EpochReport(int Epoch, int MaxEpochs, double TrainLoss, double? ValidationLoss, double? BestValidationLoss,
    double LearningRate, TimeSpan Elapsed, double TrainRowsPerSecond, bool IsBest)
{
    /// <summary>Row-weighted means of the named parts of a composite training loss (empty for a single loss).</summary>
    public IReadOnlyDictionary<string, double> TrainLossParts { get; init; } = new Dictionary<string, double>();

    /// <summary>Validation metrics of the epoch by name (<c>Loss</c>, and for classifiers <c>Accuracy</c>,
    /// <c>MacroF1</c>, <c>Auc</c>); empty without validation data.</summary>
    public IReadOnlyDictionary<string, double> ValidationMetrics { get; init; } = new Dictionary<string, double>();

    /// <inheritdoc/>
    public override string ToString() =>
        $"epoch {Epoch}/{MaxEpochs}: train loss {TrainLoss:G5}" +
        string.Concat(TrainLossParts.Select(p => $" ({p.Key} {p.Value:G4})")) +
        (ValidationLoss is { } v ? $", validation loss {v:G5}{(IsBest ? " (best)" : "")}" : "") +
        string.Concat(ValidationMetrics.Where(m => m.Key != nameof(EarlyStoppingMetric.Loss)).Select(m => $", {m.Key} {m.Value:G4}")) +
        $", lr {LearningRate:G3}, {Elapsed.TotalSeconds:F1} s, {TrainRowsPerSecond:F0} rows/s";
}

/// <summary>Training options shared by every MLNet.Attention trainer.</summary>
public abstract class TorchTrainerOptions
{
    /// <summary>Rows (windows, images, bags) per optimisation step.</summary>
    [Choice(new object[] { 16, 32, 64, 128 })]
    public int BatchSize { get; set; } = 32;

    /// <summary>Upper bound on epochs; early stopping may end sooner.</summary>
    public int MaxEpochs { get; set; } = 10;

    /// <summary>Initial (peak, after warm-up) learning rate.</summary>
    [Range(1e-5, 1e-1, logBase: true)]
    public double LearningRate { get; set; } = 1e-4;

    /// <summary>The optimizer (default AdamW).</summary>
    public OptimizerKind Optimizer { get; set; } = OptimizerKind.AdamW;

    /// <summary>Momentum of <see cref="OptimizerKind.Sgd"/> (0 = plain SGD).</summary>
    public double Momentum { get; set; } = 0.9;

    /// <summary>Nesterov momentum for <see cref="OptimizerKind.Sgd"/> (needs Momentum &gt; 0).</summary>
    public bool Nesterov { get; set; }

    /// <summary>Weight decay: decoupled for AdamW (0 = Adam), an L2 term in the gradient for SGD.</summary>
    [Range(1e-6, 1e-1, logBase: true)]
    public double WeightDecay { get; set; }

    /// <summary>
    /// Exempt biases and normalisation weights (every parameter with at most one dimension, as timm does) from
    /// <see cref="WeightDecay"/>. Default false: every parameter decays.
    /// </summary>
    public bool NoWeightDecayOnNormsAndBiases { get; set; }

    /// <summary>Learning-rate schedule.</summary>
    public LearningRateSchedule LearningRateSchedule { get; set; } = LearningRateSchedule.Constant;

    /// <summary>Linear warm-up from 0 to <see cref="LearningRate"/> over this many epochs (counted in optimizer steps)
    /// before the schedule starts; 0 = none.</summary>
    public int WarmupEpochs { get; set; }

    /// <summary>Epochs between decays of <see cref="LearningRateSchedule.StepDecay"/>.</summary>
    public int StepDecayEpochs { get; set; } = 30;

    /// <summary>Factor applied at each decay of <see cref="LearningRateSchedule.StepDecay"/>.</summary>
    public double StepDecayFactor { get; set; } = 0.1;

    /// <summary>Mini-batches whose gradients are summed (each loss divided by this count) before one optimizer step:
    /// the effective batch is BatchSize × this. 1 = a step per batch.</summary>
    public int GradientAccumulationSteps { get; set; } = 1;

    /// <summary>The validation quantity that early stopping and <see cref="RestoreBestWeights"/> follow; its direction
    /// is implied (loss: lower is better; the others: higher). Metrics other than Loss need a classification task.</summary>
    public EarlyStoppingMetric EarlyStoppingMetric { get; set; } = EarlyStoppingMetric.Loss;

    /// <summary>Clip the global gradient norm to this value (null: no clipping).</summary>
    public double? GradientClipNorm { get; set; }

    /// <summary>
    /// Stop after this many epochs without a validation improvement larger than <see cref="EarlyStoppingMinDelta"/>
    /// (null: train all epochs). Requires validation data.
    /// </summary>
    public int? EarlyStoppingPatience { get; set; } = 3;

    /// <summary>Smallest decrease of the validation loss that counts as an improvement.</summary>
    public double EarlyStoppingMinDelta { get; set; }

    /// <summary>Reload the weights of the best validation epoch when training ends (default true).</summary>
    public bool RestoreBestWeights { get; set; } = true;

    /// <summary>
    /// After training (and after restoring the best epoch), recompute every BatchNorm layer's running mean and variance
    /// as exact averages over this many training batches, without gradients or augmentation ("precise BN"). The
    /// statistics training leaves are an exponential average over the last steps of weights that kept changing; after
    /// short schedules or at high learning rates they lag the final weights, and evaluation-mode accuracy falls far
    /// below training accuracy. 0 (the default here; the image classifier uses 50) leaves them as training left them.
    /// Networks without BatchNorm are not affected.
    /// </summary>
    public int BatchNormRecalibrationBatches { get; set; }

    /// <summary>Explicit validation data (same schema as the training data). Takes precedence over a validation fraction.</summary>
    public IDataView? ValidationSet { get; set; }

    /// <summary>libtorch intra-op threads (null: libtorch's default, one per core).</summary>
    public int? NumberOfThreads { get; set; }

    /// <summary>Rows per forward pass when scoring with the trained model.</summary>
    public int ScoringBatchSize { get; set; } = 256;

    /// <summary>Seed for weights and shuffling; null derives one from the MLContext (new MLContext(seed)).</summary>
    public int? Seed { get; set; }

    /// <summary>Called after every epoch (on the training thread).</summary>
    public Action<EpochReport>? EpochCallback { get; set; }

    /// <summary>Cancels training between steps; <see cref="OperationCanceledException"/> is thrown.</summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid option.</summary>
    public virtual void Validate()
    {
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        if (BatchNormRecalibrationBatches < 0)
            throw new ArgumentOutOfRangeException(nameof(BatchNormRecalibrationBatches), BatchNormRecalibrationBatches,
                "BatchNormRecalibrationBatches cannot be negative (0 turns the recalibration off).");
        if (MaxEpochs < 1) throw new ArgumentOutOfRangeException(nameof(MaxEpochs), MaxEpochs, "MaxEpochs must be at least 1.");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be a positive finite number.");
        if (WeightDecay < 0) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay cannot be negative.");
        if (GradientClipNorm is <= 0) throw new ArgumentOutOfRangeException(nameof(GradientClipNorm), GradientClipNorm, "GradientClipNorm must be positive (or null for no clipping).");
        if (EarlyStoppingPatience is < 1) throw new ArgumentOutOfRangeException(nameof(EarlyStoppingPatience), EarlyStoppingPatience, "EarlyStoppingPatience must be at least 1 (or null to disable early stopping).");
        if (EarlyStoppingMinDelta < 0) throw new ArgumentOutOfRangeException(nameof(EarlyStoppingMinDelta), EarlyStoppingMinDelta, "EarlyStoppingMinDelta cannot be negative.");
        if (NumberOfThreads is < 1) throw new ArgumentOutOfRangeException(nameof(NumberOfThreads), NumberOfThreads, "NumberOfThreads must be at least 1 (or null for libtorch's default).");
        if (ScoringBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(ScoringBatchSize), ScoringBatchSize, "ScoringBatchSize must be at least 1.");
        if (!Enum.IsDefined(Optimizer)) throw new ArgumentOutOfRangeException(nameof(Optimizer), Optimizer, "Optimizer must be AdamW or Sgd.");
        if (!Enum.IsDefined(LearningRateSchedule)) throw new ArgumentOutOfRangeException(nameof(LearningRateSchedule), LearningRateSchedule, "Unknown LearningRateSchedule.");
        if (!Enum.IsDefined(EarlyStoppingMetric)) throw new ArgumentOutOfRangeException(nameof(EarlyStoppingMetric), EarlyStoppingMetric, "Unknown EarlyStoppingMetric.");
        if (!(Momentum >= 0) || Momentum >= 1) throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Momentum must be in [0, 1).");
        if (Nesterov && (Optimizer != OptimizerKind.Sgd || Momentum == 0)) throw new ArgumentOutOfRangeException(nameof(Nesterov), Nesterov, "Nesterov momentum needs Optimizer = Sgd and Momentum > 0.");
        if (WarmupEpochs < 0 || WarmupEpochs >= MaxEpochs && WarmupEpochs > 0) throw new ArgumentOutOfRangeException(nameof(WarmupEpochs), WarmupEpochs, $"WarmupEpochs must be in [0, MaxEpochs) = [0, {MaxEpochs}).");
        if (StepDecayEpochs < 1) throw new ArgumentOutOfRangeException(nameof(StepDecayEpochs), StepDecayEpochs, "StepDecayEpochs must be at least 1.");
        if (!(StepDecayFactor > 0) || StepDecayFactor > 1) throw new ArgumentOutOfRangeException(nameof(StepDecayFactor), StepDecayFactor, "StepDecayFactor must be in (0, 1].");
        if (GradientAccumulationSteps < 1) throw new ArgumentOutOfRangeException(nameof(GradientAccumulationSteps), GradientAccumulationSteps, "GradientAccumulationSteps must be at least 1.");
    }
}
