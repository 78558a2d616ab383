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

/// <summary>
/// The one training loop behind every trainer: shuffled reproducible mini-batches, AdamW, learning-rate schedule,
/// gradient clipping, validation, early stopping with restore of the best weights, progress through the ML.NET
/// channel and a callback, cancellation, and a dispose scope around every step.
/// </summary>
internal static class TrainingLoop
{
    /// <param name="env">Host environment: progress goes to its log (mlContext.Log).</param>
    /// <param name="componentName">Name used in log messages.</param>
    /// <param name="module">Module already on <paramref name="device"/>, with freshly seeded weights.</param>
    /// <param name="computeLoss">Forward pass and loss for one batch (a scalar tensor).</param>
    /// <param name="train">Training rows.</param>
    /// <param name="validation">Validation rows, or null.</param>
    /// <param name="options">Shared options.</param>
    /// <param name="device">Device of the module.</param>
    /// <param name="shuffleSeed">Seed of the per-epoch shuffling.</param>
    public static TrainingSummary Run(IHostEnvironment env, string componentName, nn.Module module,
        Func<TrainingBatch, Tensor> computeLoss, BatchSource train, BatchSource? validation,
        TorchTrainerOptions options, Device device, int shuffleSeed)
    {
        if (train.Count == 0) throw new InvalidOperationException($"{componentName}: the training data has no rows.");
        if (options.EarlyStoppingPatience is not null && validation is null)
            throw new InvalidOperationException($"{componentName}: early stopping needs validation data. Provide a validation set or fraction, or set EarlyStoppingPatience = null.");
        if (validation is { Count: 0 })
            throw new InvalidOperationException($"{componentName}: the validation data has no rows. Provide more data or a larger validation fraction.");

        using var channel = env.Start(componentName);
        var shuffle = new Random(shuffleSeed);
        bool dropLast = train.Count > options.BatchSize; // the reference drops the last partial batch; keep one batch for tiny data
        int stepsPerEpoch = dropLast ? train.Count / options.BatchSize : 1;
        int totalSteps = stepsPerEpoch * options.MaxEpochs;

        var parameters = module.parameters().Where(p => p.requires_grad).ToList();
        // Our AdamW, not TorchSharp's: its step creates temporary Scalars that the GC can free mid-call (TorchScalars).
        using var optimizer = new Optim.AdamW(parameters, options.LearningRate, weightDecay: options.WeightDecay);
        var reports = new List<EpochReport>();
        Dictionary<string, Tensor>? best = null;
        double? bestLoss = null;
        int bestEpoch = 0, sinceBest = 0, step = 0;
        bool stoppedEarly = false;

        try
        {
            for (int epoch = 1; epoch <= options.MaxEpochs; epoch++)
            {
                var clock = Stopwatch.StartNew();
                module.train();
                double lossSum = 0; long rows = 0; double lr = options.LearningRate;
                var order = train.EpochOrder(shuffle);
                for (int start = 0; start < order.Length; start += options.BatchSize)
                {
                    int count = Math.Min(options.BatchSize, order.Length - start);
                    if (dropLast && count < options.BatchSize) break;
                    options.CancellationToken.ThrowIfCancellationRequested();
                    lr = LearningRateAt(options, epoch, step++, totalSteps);
                    optimizer.LearningRate = lr;
                    using var scope = NewDisposeScope();
                    var batch = train.CreateBatch(order.AsSpan(start, count), device);
                    optimizer.ZeroGrad();
                    var loss = computeLoss(batch);
                    loss.backward();
                    if (options.GradientClipNorm is { } clip) nn.utils.clip_grad_norm_(parameters, clip);
                    optimizer.Step();
                    double value = loss.item<float>();
                    if (!double.IsFinite(value))
                        throw new InvalidOperationException($"{componentName}: the training loss became {value} in epoch {epoch}. Lower LearningRate, set GradientClipNorm, or check the data for extreme values.");
                    lossSum += value * batch.Rows;
                    rows += batch.Rows;
                }
                double trainSeconds = clock.Elapsed.TotalSeconds;

                double? validationLoss = validation is null ? null : Evaluate(module, computeLoss, validation, options.BatchSize, device, options.CancellationToken);
                bool isBest = validationLoss is null || bestLoss is null || validationLoss < bestLoss - options.EarlyStoppingMinDelta;
                if (validationLoss is not null && isBest)
                {
                    bestLoss = validationLoss;
                    bestEpoch = epoch;
                    sinceBest = 0;
                    if (options.RestoreBestWeights) best = Snapshot(module, best);
                }
                else if (validationLoss is not null) sinceBest++;
                if (validation is null) bestEpoch = epoch;

                var report = new EpochReport(epoch, options.MaxEpochs, lossSum / Math.Max(1, rows), validationLoss, bestLoss, lr,
                    clock.Elapsed, rows / Math.Max(1e-9, trainSeconds), validationLoss is not null && isBest);
                reports.Add(report);
                channel.Info(MessageSensitivity.None, $"{componentName} {report}");
                options.EpochCallback?.Invoke(report);

                if (options.EarlyStoppingPatience is { } patience && sinceBest >= patience && epoch < options.MaxEpochs)
                {
                    channel.Info(MessageSensitivity.None, $"{componentName}: early stopping after epoch {epoch}; no validation improvement for {patience} epochs (best epoch {bestEpoch}).");
                    stoppedEarly = true;
                    break;
                }
            }

            if (best is not null && bestEpoch != reports.Count)
            {
                using (no_grad())
                    foreach (var (name, p) in module.named_parameters()) p.copy_(best[name]);
                channel.Info(MessageSensitivity.None, $"{componentName}: restored the weights of epoch {bestEpoch} (validation loss {bestLoss:G5}).");
            }
            else if (best is null && validation is not null) bestEpoch = reports.Count;
        }
        finally
        {
            if (best is not null) foreach (var t in best.Values) t.Dispose();
            module.eval();
        }
        return new TrainingSummary(reports, bestEpoch, stoppedEarly);
    }

    /// <summary>Mean loss over all rows of <paramref name="data"/> (row-weighted), in eval mode without gradients.</summary>
    internal static double Evaluate(nn.Module module, Func<TrainingBatch, Tensor> computeLoss, BatchSource data, int batchSize,
        Device device, CancellationToken cancellation)
    {
        module.eval();
        using var inference = inference_mode();
        double sum = 0; long rows = 0;
        var order = data.EpochOrder(null);
        for (int start = 0; start < order.Length; start += batchSize)
        {
            cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            int count = Math.Min(batchSize, order.Length - start);
            var batch = data.CreateBatch(order.AsSpan(start, count), device);
            sum += computeLoss(batch).item<float>() * batch.Rows;
            rows += batch.Rows;
        }
        return sum / Math.Max(1, rows);
    }

    internal static double LearningRateAt(TorchTrainerOptions options, int epoch, int step, int totalSteps) => options.LearningRateSchedule switch
    {
        LearningRateSchedule.HalveEveryEpoch => options.LearningRate * Math.Pow(0.5, Math.Max(0, epoch - 2)),
        LearningRateSchedule.Cosine => options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * step / Math.Max(1, totalSteps))),
        _ => options.LearningRate,
    };

    private static Dictionary<string, Tensor> Snapshot(nn.Module module, Dictionary<string, Tensor>? reuse)
    {
        var snapshot = reuse ?? new Dictionary<string, Tensor>();
        using var noGrad = no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            if (snapshot.TryGetValue(name, out var existing)) existing.copy_(p);
            else snapshot[name] = p.detach().clone().DetachFromDisposeScope();
        }
        return snapshot;
    }
}
