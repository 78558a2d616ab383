using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Engine;

/// <summary>What a training run did.</summary>
/// <param name="Epochs">Per-epoch reports in order.</param>
/// <param name="BestEpoch">1-based epoch whose weights the module holds (the last one without validation data).</param>
/// <param name="StoppedEarly">True when early stopping ended training before MaxEpochs.</param>
public sealed record TrainingSummary(IReadOnlyList<EpochReport> Epochs, int BestEpoch, bool StoppedEarly);

/// <summary>The loss of one batch: the total that is optimised and, for a composite loss, its named parts (reported
/// per epoch). Tensors belong to the step's dispose scope.</summary>
/// <param name="Total">Scalar tensor to minimise.</param>
/// <param name="Parts">Named scalar parts (e.g. ACMIL's slide, branch and diversity losses), or null.</param>
public sealed record TrainingLoss(Tensor Total, IReadOnlyList<(string Name, Tensor Value)>? Parts = null);

/// <summary>What a task plugs into <see cref="TrainingLoop"/>.</summary>
/// <param name="Loss">Forward pass and loss of one batch.</param>
public sealed record TrainingHooks(Func<TrainingBatch, TrainingLoss> Loss)
{
    /// <summary>Train-only per-batch augmentation (random crops, flips, ...): (batch, optimizer step) → batch. Never
    /// applied to validation batches. Draw randomness from a generator seeded by the trainer for reproducibility.</summary>
    public Func<TrainingBatch, long, TrainingBatch>? Augment { get; init; }

    /// <summary>Class scores [B, C] of a validation batch (target: int64 class indices [B]); enables the
    /// classification metrics of <see cref="EarlyStoppingMetric"/>.</summary>
    public Func<TrainingBatch, Tensor>? ValidationScores { get; init; }

    /// <summary>Number of classes, with <see cref="ValidationScores"/>.</summary>
    public int Classes { get; init; }

    /// <summary>The validation loss of a batch (reported, and early-stopped on with EarlyStoppingMetric.Loss) when it
    /// should differ from the training objective, e.g. CRIB's forecast error without its regularisers; null: the
    /// total of <see cref="Loss"/>.</summary>
    public Func<TrainingBatch, Tensor>? ValidationLoss { get; init; }
}

/// <summary>
/// The one training loop behind every trainer: shuffled reproducible mini-batches, AdamW or SGD (scalar-safe, see
/// MLNet.Attention.Optim), optional exemption of norms and biases from weight decay, warm-up and learning-rate
/// schedules, gradient accumulation and clipping, train-only augmentation, validation with loss and classification
/// metrics, early stopping on a chosen metric with restore of the best epoch's whole state (parameters and buffers such
/// as BatchNorm running statistics), composite-loss parts per epoch, progress through the ML.NET channel and a
/// callback, cancellation, and a dispose scope around every step.
/// </summary>
internal static class TrainingLoop
{
    /// <summary>Runs training with a single loss (see the hooks overload).</summary>
    public static TrainingSummary Run(IHostEnvironment env, string componentName, nn.Module module,
        Func<TrainingBatch, Tensor> computeLoss, BatchSource train, BatchSource? validation,
        TorchTrainerOptions options, Device device, int shuffleSeed) =>
        Run(env, componentName, module, new TrainingHooks(batch => new TrainingLoss(computeLoss(batch))), train, validation,
            options, device, shuffleSeed);

    /// <param name="env">Host environment: progress goes to its log (mlContext.Log).</param>
    /// <param name="componentName">Name used in log messages.</param>
    /// <param name="module">Module already on <paramref name="device"/>, with freshly seeded weights.</param>
    /// <param name="hooks">Loss, augmentation and validation scores of the task.</param>
    /// <param name="train">Training rows.</param>
    /// <param name="validation">Validation rows, or null.</param>
    /// <param name="options">Shared options.</param>
    /// <param name="device">Device of the module.</param>
    /// <param name="shuffleSeed">Seed of the per-epoch shuffling.</param>
    public static TrainingSummary Run(IHostEnvironment env, string componentName, nn.Module module, TrainingHooks hooks,
        BatchSource train, BatchSource? validation, TorchTrainerOptions options, Device device, int shuffleSeed)
    {
        if (train.Count == 0) throw new InvalidOperationException($"{componentName}: the training data has no rows.");
        if (options.EarlyStoppingPatience is not null && validation is null)
            throw new InvalidOperationException($"{componentName}: early stopping needs validation data. Provide a validation set or fraction, or set EarlyStoppingPatience = null.");
        if (validation is { Count: 0 })
            throw new InvalidOperationException($"{componentName}: the validation data has no rows. Provide more data or a larger validation fraction.");
        if (options.EarlyStoppingMetric != EarlyStoppingMetric.Loss && hooks.ValidationScores is null)
            throw new InvalidOperationException($"{componentName}: EarlyStoppingMetric = {options.EarlyStoppingMetric} needs class scores, which only classification trainers report; use EarlyStoppingMetric = Loss.");

        using var channel = env.Start(componentName);
        var shuffle = new Random(shuffleSeed);
        bool dropLast = train.Count > options.BatchSize; // the reference drops the last partial batch; keep one batch for tiny data
        int batchesPerEpoch = dropLast ? train.Count / options.BatchSize : 1;
        int accumulation = options.GradientAccumulationSteps;
        int stepsPerEpoch = (batchesPerEpoch + accumulation - 1) / accumulation;
        int totalSteps = stepsPerEpoch * options.MaxEpochs, warmupSteps = stepsPerEpoch * options.WarmupEpochs;

        var named = module.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var parameters = named.Select(p => p.parameter).ToList();
        var noDecay = options.NoWeightDecayOnNormsAndBiases
            ? named.Where(p => p.parameter.dim() <= 1 || p.name.EndsWith("bias", StringComparison.Ordinal)).Select(p => p.parameter).ToList()
            : null;
        // Ours, not TorchSharp's: its steps create temporary Scalars that the GC can free mid-call (TorchScalars).
        using Optim.ParameterOptimizer optimizer = options.Optimizer == OptimizerKind.Sgd
            ? new Optim.Sgd(parameters, options.LearningRate, options.Momentum, weightDecay: options.WeightDecay,
                nesterov: options.Nesterov, withoutWeightDecay: noDecay)
            : new Optim.AdamW(parameters, options.LearningRate, weightDecay: options.WeightDecay, withoutWeightDecay: noDecay);
        bool lowerIsBetter = options.EarlyStoppingMetric == EarlyStoppingMetric.Loss;
        string metricName = options.EarlyStoppingMetric.ToString();
        using var accumulationScale = accumulation == 1 ? null : (1.0 / accumulation).ToScalar();
        var reports = new List<EpochReport>();
        Dictionary<string, Tensor>? best = null;
        double? bestValue = null, bestLoss = null;
        int bestEpoch = 0, sinceBest = 0;
        long step = 0;
        bool stoppedEarly = false;

        try
        {
            for (int epoch = 1; epoch <= options.MaxEpochs; epoch++)
            {
                var clock = Stopwatch.StartNew();
                module.train();
                double lossSum = 0; long rows = 0; double lr = options.LearningRate;
                Dictionary<string, double>? partSums = null;
                int micro = 0, batchIndex = 0;
                optimizer.ZeroGrad();
                using var batches = train.EpochBatches(options.BatchSize, dropLast, shuffle, device).GetEnumerator();
                for (; ; batchIndex++)
                {
                    options.CancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();   // open before the batch is built: its tensors belong to the step
                    if (!batches.MoveNext()) break;
                    var batch = batches.Current;
                    if (micro == 0)
                    {
                        lr = LearningRateAt(options, epoch, step, totalSteps, warmupSteps);
                        optimizer.LearningRate = lr;
                    }
                    if (hooks.Augment is not null) batch = hooks.Augment(batch, step);
                    var loss = hooks.Loss(batch);
                    (accumulationScale is null ? loss.Total : loss.Total.mul(accumulationScale)).backward();
                    double batchLoss = loss.Total.item<float>();
                    if (!double.IsFinite(batchLoss))
                        throw new InvalidOperationException($"{componentName}: the training loss became {batchLoss} in epoch {epoch}. Lower LearningRate, set GradientClipNorm, or check the data for extreme values.");
                    lossSum += batchLoss * batch.Rows;
                    rows += batch.Rows;
                    if (loss.Parts is { } parts)
                    {
                        partSums ??= new Dictionary<string, double>();
                        foreach (var (name, part) in parts)
                            partSums[name] = partSums.GetValueOrDefault(name) + part.item<float>() * batch.Rows;
                    }
                    bool lastBatch = batchIndex == batchesPerEpoch - 1;
                    if (++micro == accumulation || lastBatch)
                    {
                        if (options.GradientClipNorm is { } clip) nn.utils.clip_grad_norm_(parameters, clip);
                        optimizer.Step();
                        optimizer.ZeroGrad();
                        step++;
                        micro = 0;
                    }
                }
                double trainSeconds = clock.Elapsed.TotalSeconds;

                var validationResult = validation is null ? null
                    : Evaluate(module, hooks, validation, options.BatchSize, device, options.CancellationToken);
                double? validationLoss = validationResult?.Loss;
                double? value = validationResult is null ? null
                    : validationResult.Metrics.TryGetValue(metricName, out var m) ? m
                    : throw new InvalidOperationException($"{componentName}: the validation data gave no {metricName} (for AUC both classes must occur in it); use another EarlyStoppingMetric or a larger validation set.");
                bool isBest = value is null || bestValue is null
                    || (lowerIsBetter ? value < bestValue - options.EarlyStoppingMinDelta : value > bestValue + options.EarlyStoppingMinDelta);
                if (value is not null && isBest)
                {
                    bestValue = value;
                    bestLoss = validationLoss;
                    bestEpoch = epoch;
                    sinceBest = 0;
                    if (options.RestoreBestWeights) best = Snapshot(module, best);
                }
                else if (value is not null) sinceBest++;
                if (validation is null) bestEpoch = epoch;

                var report = new EpochReport(epoch, options.MaxEpochs, lossSum / Math.Max(1, rows), validationLoss, bestLoss, lr,
                    clock.Elapsed, rows / Math.Max(1e-9, trainSeconds), value is not null && isBest)
                {
                    TrainLossParts = partSums?.ToDictionary(p => p.Key, p => p.Value / Math.Max(1, rows)) ?? new Dictionary<string, double>(),
                    ValidationMetrics = validationResult?.Metrics ?? new Dictionary<string, double>(),
                };
                reports.Add(report);
                channel.Info(MessageSensitivity.None, $"{componentName} {report}");
                options.EpochCallback?.Invoke(report);

                if (options.EarlyStoppingPatience is { } patience && sinceBest >= patience && epoch < options.MaxEpochs)
                {
                    channel.Info(MessageSensitivity.None, $"{componentName}: early stopping after epoch {epoch}; no validation {metricName} improvement for {patience} epochs (best epoch {bestEpoch}).");
                    stoppedEarly = true;
                    break;
                }
            }

            if (best is not null && bestEpoch != reports.Count)
            {
                Restore(module, best);
                channel.Info(MessageSensitivity.None, $"{componentName}: restored the weights and buffers of epoch {bestEpoch} (validation {metricName} {bestValue:G5}).");
            }
            else if (best is null && validation is not null) bestEpoch = reports.Count;
            if (options.BatchNormRecalibrationBatches > 0)
            {
                int used = RecalibrateBatchNorm(module, hooks, train, options, device, new Random(shuffleSeed + 1));
                if (used > 0)
                    channel.Info(MessageSensitivity.None, $"{componentName}: BatchNorm running statistics recomputed " +
                        $"over {used} training batches.");
            }
        }
        finally
        {
            if (best is not null) foreach (var t in best.Values) t.Dispose();
            module.eval();
        }
        return new TrainingSummary(reports, bestEpoch, stoppedEarly);
    }

    /// <summary>Validation loss and metrics.</summary>
    internal sealed record ValidationResult(double Loss, Dictionary<string, double> Metrics);

    /// <summary>Mean loss over all rows of <paramref name="data"/> (row-weighted) and, with class scores, the
    /// classification metrics; in eval mode without gradients.</summary>
    internal static ValidationResult Evaluate(nn.Module module, TrainingHooks hooks, BatchSource data, int batchSize,
        Device device, CancellationToken cancellation)
    {
        module.eval();
        using var inference = inference_mode();
        double sum = 0; long rows = 0;
        List<float>? scores = hooks.ValidationScores is null ? null : new List<float>();
        List<int>? labels = scores is null ? null : new List<int>();
        using var batches = data.EpochBatches(batchSize, dropLast: false, shuffle: null, device).GetEnumerator();
        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            if (!batches.MoveNext()) break;
            var batch = batches.Current;
            var loss = hooks.ValidationLoss is { } validationLoss ? validationLoss(batch) : hooks.Loss(batch).Total;
            sum += loss.item<float>() * batch.Rows;
            rows += batch.Rows;
            if (hooks.ValidationScores is { } score)
            {
                scores!.AddRange(score(batch).to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray());
                labels!.AddRange(batch.Target.to(ScalarType.Int64).cpu().data<long>().ToArray().Select(l => (int)l));
            }
        }
        double meanLoss = sum / Math.Max(1, rows);
        var metrics = scores is null ? new Dictionary<string, double>()
            : ClassificationMetrics.Compute(scores.ToArray(), labels!.ToArray(), hooks.Classes);
        metrics[nameof(EarlyStoppingMetric.Loss)] = meanLoss;
        return new ValidationResult(meanLoss, metrics);
    }

    /// <summary>Mean loss over all rows of <paramref name="data"/> (row-weighted), in eval mode without gradients.</summary>
    internal static double Evaluate(nn.Module module, Func<TrainingBatch, Tensor> computeLoss, BatchSource data, int batchSize,
        Device device, CancellationToken cancellation) =>
        Evaluate(module, new TrainingHooks(b => new TrainingLoss(computeLoss(b))), data, batchSize, device, cancellation).Loss;

    /// <summary>The learning rate of optimizer step <paramref name="step"/> (0-based) in <paramref name="epoch"/> (1-based):
    /// linear warm-up over <paramref name="warmupSteps"/>, then the schedule.</summary>
    internal static double LearningRateAt(TorchTrainerOptions options, int epoch, long step, int totalSteps, int warmupSteps = 0)
    {
        if (step < warmupSteps) return options.LearningRate * (step + 1) / warmupSteps;
        int warmupEpochs = options.WarmupEpochs;
        return options.LearningRateSchedule switch
        {
            LearningRateSchedule.HalveEveryEpoch => options.LearningRate * Math.Pow(0.5, Math.Max(0, epoch - warmupEpochs - 2)),
            LearningRateSchedule.Cosine => options.LearningRate * 0.5
                * (1 + Math.Cos(Math.PI * (step - warmupSteps) / Math.Max(1, totalSteps - warmupSteps))),
            LearningRateSchedule.StepDecay => options.LearningRate
                * Math.Pow(options.StepDecayFactor, (epoch - 1 - warmupEpochs) / options.StepDecayEpochs),
            _ => options.LearningRate,
        };
    }

    /// <summary>Copies the whole state (parameters and buffers, e.g. BatchNorm running statistics and batch counters).</summary>
    /// <summary>Precise BN: resets every BatchNorm layer's running statistics and re-accumulates them as a cumulative
    /// average (momentum null) over up to <see cref="TorchTrainerOptions.BatchNormRecalibrationBatches"/> shuffled
    /// training batches in training mode, without gradients or augmentation; momenta are restored afterwards.</summary>
    /// <returns>The number of batches used; 0 when the network has no BatchNorm layer.</returns>
    private static int RecalibrateBatchNorm(nn.Module module, TrainingHooks hooks, BatchSource train,
        TorchTrainerOptions options, Device device, Random shuffle)
    {
        var norms = module.modules().OfType<TorchSharp.Modules.BatchNorm>()
            .Where(bn => bn.track_running_stats && bn.running_mean is not null && bn.running_var is not null).ToList();
        if (norms.Count == 0) return 0;
        var momenta = norms.Select(bn => bn.momentum).ToList();
        int used = 0;
        try
        {
            using (no_grad())
            {
                foreach (var bn in norms)
                {
                    bn.running_mean!.zero_();
                    bn.running_var!.fill_(Runtime.TorchScalars.One);
                    bn.num_batches_tracked?.zero_();
                    bn.momentum = null;   // cumulative average of the batches below
                }
                module.train();
                // As in training: full batches only (a batch of one has no batch variance), one batch for tiny data.
                bool dropLast = train.Count > options.BatchSize;
                using var batches = train.EpochBatches(options.BatchSize, dropLast, shuffle, device).GetEnumerator();
                while (used < options.BatchNormRecalibrationBatches)
                {
                    options.CancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();   // before the batch is built, so its tensors are freed here
                    if (!batches.MoveNext()) break;
                    hooks.Loss(batches.Current);
                    used++;
                }
            }
        }
        finally
        {
            for (int i = 0; i < norms.Count; i++) norms[i].momentum = momenta[i];
        }
        return used;
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module module, Dictionary<string, Tensor>? reuse)
    {
        var snapshot = reuse ?? new Dictionary<string, Tensor>();
        using var noGrad = no_grad();
        foreach (var (name, t) in module.state_dict())
        {
            if (snapshot.TryGetValue(name, out var existing)) existing.copy_(t);
            else snapshot[name] = t.detach().clone().DetachFromDisposeScope();
        }
        return snapshot;
    }

    private static void Restore(nn.Module module, Dictionary<string, Tensor> snapshot)
    {
        using var noGrad = no_grad();
        foreach (var (name, t) in module.state_dict()) t.copy_(snapshot[name]);
    }
}
