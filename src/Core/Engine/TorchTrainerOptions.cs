using Microsoft.ML;

namespace MLNet.Attention.Engine;

/// <summary>How the learning rate evolves during training.</summary>
public enum LearningRateSchedule
{
    /// <summary>The initial rate throughout.</summary>
    Constant,
    /// <summary>Epochs 1 and 2 at the initial rate, then halved after every epoch (iTransformer's "type1").</summary>
    HalveEveryEpoch,
    /// <summary>Cosine decay from the initial rate to zero over all steps.</summary>
    Cosine,
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
    public override string ToString() =>
        $"epoch {Epoch}/{MaxEpochs}: train loss {TrainLoss:G5}" +
        (ValidationLoss is { } v ? $", validation loss {v:G5}{(IsBest ? " (best)" : "")}" : "") +
        $", lr {LearningRate:G3}, {Elapsed.TotalSeconds:F1} s, {TrainRowsPerSecond:F0} rows/s";
}

/// <summary>Training options shared by every MLNet.Attention trainer.</summary>
public abstract class TorchTrainerOptions
{
    /// <summary>Rows (windows, images, bags) per optimisation step.</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>Upper bound on epochs; early stopping may end sooner.</summary>
    public int MaxEpochs { get; set; } = 10;

    /// <summary>Initial learning rate of AdamW.</summary>
    public double LearningRate { get; set; } = 1e-4;

    /// <summary>Decoupled weight decay of AdamW (0 = Adam).</summary>
    public double WeightDecay { get; set; }

    /// <summary>Learning-rate schedule.</summary>
    public LearningRateSchedule LearningRateSchedule { get; set; } = LearningRateSchedule.Constant;

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
        if (MaxEpochs < 1) throw new ArgumentOutOfRangeException(nameof(MaxEpochs), MaxEpochs, "MaxEpochs must be at least 1.");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be a positive finite number.");
        if (WeightDecay < 0) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay cannot be negative.");
        if (GradientClipNorm is <= 0) throw new ArgumentOutOfRangeException(nameof(GradientClipNorm), GradientClipNorm, "GradientClipNorm must be positive (or null for no clipping).");
        if (EarlyStoppingPatience is < 1) throw new ArgumentOutOfRangeException(nameof(EarlyStoppingPatience), EarlyStoppingPatience, "EarlyStoppingPatience must be at least 1 (or null to disable early stopping).");
        if (EarlyStoppingMinDelta < 0) throw new ArgumentOutOfRangeException(nameof(EarlyStoppingMinDelta), EarlyStoppingMinDelta, "EarlyStoppingMinDelta cannot be negative.");
        if (NumberOfThreads is < 1) throw new ArgumentOutOfRangeException(nameof(NumberOfThreads), NumberOfThreads, "NumberOfThreads must be at least 1 (or null for libtorch's default).");
        if (ScoringBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(ScoringBatchSize), ScoringBatchSize, "ScoringBatchSize must be at least 1.");
    }
}
