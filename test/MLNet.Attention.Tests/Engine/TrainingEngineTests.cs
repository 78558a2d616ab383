using Microsoft.ML;
using MLNet.Attention.Engine;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Engine;

/// <summary>The engine options of the task-neutral training loop, on small in-memory problems.</summary>
[TestClass]
public sealed class TrainingEngineTests
{
    private sealed class Options : TorchTrainerOptions { }

    /// <summary>Rows held as tensors: inputs [N, F], targets [N] or [N, T].</summary>
    private sealed class TensorSource : BatchSource
    {
        private readonly float[] _x, _y;
        private readonly int _features, _targets;
        private readonly bool _classes;

        public TensorSource(float[] x, float[] y, int features, int targets, bool classes = false)
        {
            _x = x; _y = y; _features = features; _targets = targets; _classes = classes;
        }

        public override int Count => _x.Length / _features;

        public override TrainingBatch CreateBatch(ReadOnlySpan<int> rows, Device device)
        {
            var x = new float[rows.Length * _features];
            var y = new float[rows.Length * _targets];
            for (int i = 0; i < rows.Length; i++)
            {
                _x.AsSpan(rows[i] * _features, _features).CopyTo(x.AsSpan(i * _features));
                _y.AsSpan(rows[i] * _targets, _targets).CopyTo(y.AsSpan(i * _targets));
            }
            var target = _classes ? tensor(y.Select(v => (long)v).ToArray()) : tensor(y, new long[] { rows.Length, _targets });
            return new TrainingBatch(new Tensor?[] { tensor(x, new long[] { rows.Length, _features }) }, target, rows.Length);
        }
    }

    private static (float[] X, float[] Y) Regression(int rows, int seed, double noise = 0.1)
    {
        var rng = new Random(seed);
        var x = new float[rows * 4];
        var y = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            for (int f = 0; f < 4; f++) { x[r * 4 + f] = (float)(rng.NextDouble() * 2 - 1); sum += (f + 1) * x[r * 4 + f]; }
            y[r] = (float)(sum + noise * (rng.NextDouble() - 0.5));
        }
        return (x, y);
    }

    private static Tensor Mse(nn.Module<Tensor, Tensor> net, TrainingBatch b) => nn.functional.mse_loss(net.call(b.Inputs[0]!), b.Target);

    [TestMethod]
    public void BestEpochRestoreBringsBackBatchNormStatisticsWithTheWeights()
    {
        var (x, y) = Regression(96, 1);
        var (vx, vy) = Regression(32, 2);
        for (int i = 0; i < vy.Length; i++) vy[i] = -vy[i];   // validation disagrees with training: the best epoch is early
        random.manual_seed(3);
        var net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1));
        var states = new List<Dictionary<string, Tensor>>();
        var options = new Options
        {
            BatchSize = 16, MaxEpochs = 6, LearningRate = 0.05, EarlyStoppingPatience = null, RestoreBestWeights = true,
            EpochCallback = _ => states.Add(net.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone())),
        };
        var summary = TrainingLoop.Run(new MLContext(1), "test", net, b => Mse(net, b), new TensorSource(x, y, 4, 1),
            new TensorSource(vx, vy, 4, 1), options, CPU, 7);
        Assert.IsTrue(summary.BestEpoch < summary.Epochs.Count, $"precondition: best epoch {summary.BestEpoch} is not the last");
        var restored = net.state_dict();
        var expected = states[summary.BestEpoch - 1];
        Assert.IsTrue(restored.ContainsKey("1.running_mean") && restored.ContainsKey("1.num_batches_tracked"));
        foreach (var (name, t) in restored)
            Assert.IsTrue(t.to(float64).allclose(expected[name].to(float64), rtol: 0, atol: 0), $"{name} is the best epoch's");
        Assert.IsFalse(restored["1.running_mean"].allclose(states[^1]["1.running_mean"]), "running stats differ from the last epoch's");
    }

    [TestMethod]
    public void BatchNormRecalibrationMakesTheRunningStatisticsThoseOfTheFinalWeights()
    {
        var (x, y) = Regression(96, 1);
        Sequential Train(int recalibrationBatches)
        {
            random.manual_seed(3);
            var net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1));
            var options = new Options
            {
                BatchSize = 16, MaxEpochs = 4, LearningRate = 0.05, EarlyStoppingPatience = null,
                BatchNormRecalibrationBatches = recalibrationBatches,
            };
            TrainingLoop.Run(new MLContext(1), "test", net, b => Mse(net, b), new TensorSource(x, y, 4, 1), null, options, CPU, 7);
            return net;
        }
        var net = Train(100);   // more than the 6 batches of an epoch: each of the 96 rows once
        var bn = (BatchNorm1d)net.children().ElementAt(1);
        var lagging = (BatchNorm1d)Train(0).children().ElementAt(1);
        Assert.AreEqual(0.1, bn.momentum, "the layer's momentum is restored after the recalibration");
        Assert.AreEqual(6L, bn.num_batches_tracked!.item<long>(), "counted from zero over the recalibration batches");
        using (no_grad())
        {
            // The exact mean of the final first layer's output over all training rows, and about its variance.
            var h = ((Linear)net.children().First()).call(tensor(x, new long[] { 96, 4 }));
            var mean = h.mean(new long[] { 0 });
            Assert.IsTrue(bn.running_mean!.allclose(mean, rtol: 0, atol: 1e-5), "running mean = the final weights' mean");
            var ratio = (bn.running_var! / h.var(0)).data<float>().ToArray();
            Assert.IsTrue(ratio.All(r => r is > 0.8f and < 1.25f), $"running variance ~ the rows' variance: {string.Join(", ", ratio)}");
            Assert.IsFalse(lagging.running_mean!.allclose(mean, rtol: 0, atol: 1e-3), "without it the statistics lag");
        }
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new Options { BatchNormRecalibrationBatches = -1 }.Validate()).Message, "BatchNormRecalibrationBatches");
    }

    [TestMethod]
    public void GradientAccumulationOfTwoHalfBatchesEqualsOneFullBatch()
    {
        var (x, y) = Regression(64, 4);
        float[] Train(int batch, int accumulation)
        {
            random.manual_seed(5);
            var net = nn.Linear(4, 1);
            var options = new Options
            {
                BatchSize = batch, GradientAccumulationSteps = accumulation, MaxEpochs = 3, LearningRate = 0.1,
                Optimizer = OptimizerKind.Sgd, Momentum = 0.9, EarlyStoppingPatience = null,
            };
            TrainingLoop.Run(new MLContext(1), "test", net, b => Mse(net, b), new TensorSource(x, y, 4, 1), null, options, CPU, 11);
            return net.weight!.detach().data<float>().ToArray().Concat(net.bias!.detach().data<float>().ToArray()).ToArray();
        }
        var full = Train(16, 1);
        var accumulated = Train(8, 2);
        for (int i = 0; i < full.Length; i++) Assert.AreEqual(full[i], accumulated[i], 1e-5f, $"parameter {i}");
        CollectionAssert.AreNotEqual(full, Train(8, 1), "without accumulation the steps differ");
    }

    [TestMethod]
    public void WarmupThenScheduleFollowTheirDefinitions()
    {
        var cosine = new Options { LearningRate = 1.0, MaxEpochs = 10, WarmupEpochs = 2, LearningRateSchedule = LearningRateSchedule.Cosine };
        // 10 steps per epoch: steps 0..19 warm up linearly, then a cosine over the remaining 80 steps.
        Assert.AreEqual(0.05, TrainingLoop.LearningRateAt(cosine, 1, 0, 100, 20), 1e-12);
        Assert.AreEqual(1.0, TrainingLoop.LearningRateAt(cosine, 2, 19, 100, 20), 1e-12);
        Assert.AreEqual(1.0, TrainingLoop.LearningRateAt(cosine, 3, 20, 100, 20), 1e-12);
        Assert.AreEqual(0.5, TrainingLoop.LearningRateAt(cosine, 7, 60, 100, 20), 1e-12);
        var stepDecay = new Options { LearningRate = 1.0, MaxEpochs = 10, LearningRateSchedule = LearningRateSchedule.StepDecay, StepDecayEpochs = 3, StepDecayFactor = 0.1 };
        CollectionAssert.AreEqual(new[] { 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01 },
            Enumerable.Range(1, 7).Select(e => Math.Round(TrainingLoop.LearningRateAt(stepDecay, e, 0, 100), 12)).ToArray());
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Options { WarmupEpochs = 10 }.Validate()).Message, "WarmupEpochs");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Options { Nesterov = true }.Validate()).Message, "Optimizer = Sgd");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Options { GradientAccumulationSteps = 0 }.Validate()).Message, "GradientAccumulationSteps");
    }

    [TestMethod]
    public void NormsAndBiasesCanBeExemptFromWeightDecay()
    {
        var (x, y) = Regression(32, 6);
        (float[] Weight, float[] Bias) Train(bool exempt)
        {
            random.manual_seed(8);
            var net = nn.Linear(4, 1);
            using (no_grad()) net.bias!.fill_(MLNet.Attention.Runtime.TorchScalars.Of(3.0));
            var options = new Options
            {
                BatchSize = 32, MaxEpochs = 1, LearningRate = 0.1, WeightDecay = 0.5, NoWeightDecayOnNormsAndBiases = exempt,
                EarlyStoppingPatience = null,
            };
            // A zero loss gradient isolates the decay: only weight decay moves the parameters.
            TrainingLoop.Run(new MLContext(1), "test", net, b => (net.call(b.Inputs[0]!) * 0).sum(), new TensorSource(x, y, 4, 1), null, options, CPU, 1);
            return (net.weight!.detach().data<float>().ToArray(), net.bias!.detach().data<float>().ToArray());
        }
        var decayed = Train(false);
        var exempted = Train(true);
        Assert.AreEqual(3.0f * (1 - 0.1f * 0.5f), decayed.Bias[0], 1e-6f);
        Assert.AreEqual(3.0f, exempted.Bias[0], 0f, "the bias is exempt");
        CollectionAssert.AreEqual(decayed.Weight, exempted.Weight, "weights decay in both");
    }

    [TestMethod]
    public void LossPartsAugmentationAndClassificationMetricsReachTheEpochReport()
    {
        // Two separable classes; a linear classifier learns them in a few epochs.
        var rng = new Random(9);
        int rows = 80;
        var x = new float[rows * 2];
        var y = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            y[r] = r % 2;
            x[r * 2] = (float)(y[r] * 2 - 1 + 0.3 * (rng.NextDouble() - 0.5));
            x[r * 2 + 1] = (float)(rng.NextDouble() - 0.5);
        }
        random.manual_seed(10);
        var net = nn.Linear(2, 2);
        int augmented = 0;
        var hooks = new TrainingHooks(b =>
        {
            var logits = net.call(b.Inputs[0]!);
            var ce = nn.functional.cross_entropy(logits, b.Target);
            var l2 = net.weight!.pow(MLNet.Attention.Runtime.TorchScalars.Of(2L)).sum().mul(MLNet.Attention.Runtime.TorchScalars.Of(1e-3));
            return new TrainingLoss(ce.add(l2, MLNet.Attention.Runtime.TorchScalars.One), new[] { ("cross-entropy", ce), ("l2", l2) });
        })
        {
            Augment = (b, _) => { augmented++; return b; },
            ValidationScores = b => nn.functional.softmax(net.call(b.Inputs[0]!), 1),
            Classes = 2,
        };
        var source = new TensorSource(x, y, 2, 1, classes: true);
        var options = new Options { BatchSize = 16, MaxEpochs = 4, LearningRate = 0.1, EarlyStoppingMetric = EarlyStoppingMetric.Accuracy, EarlyStoppingPatience = 2 };
        var summary = TrainingLoop.Run(new MLContext(1), "test", net, hooks, source, source, options, CPU, 2);
        Assert.AreEqual(summary.Epochs.Count * (rows / 16), augmented, "augmentation runs on training batches only");
        var last = summary.Epochs[^1];
        CollectionAssert.AreEquivalent(new[] { "cross-entropy", "l2" }, last.TrainLossParts.Keys.ToArray());
        Assert.AreEqual(last.TrainLoss, last.TrainLossParts.Values.Sum(), 1e-5);
        Assert.AreEqual(1.0, last.ValidationMetrics["Accuracy"], 1e-9, "separable classes");
        Assert.AreEqual(1.0, last.ValidationMetrics["Auc"], 1e-9);
        Assert.IsTrue(last.ValidationMetrics.ContainsKey("MacroF1") && last.ValidationMetrics.ContainsKey("Loss"));
        StringAssert.Contains(last.ToString(), "Accuracy 1");

        var withoutScores = new TrainingHooks(hooks.Loss);
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TrainingLoop.Run(new MLContext(1), "test", net, withoutScores, source, source, options, CPU, 2));
        StringAssert.Contains(ex.Message, "EarlyStoppingMetric = Accuracy needs class scores");
    }

    [TestMethod]
    public void ClassificationMetricsMatchTheirDefinitions()
    {
        // Binary AUC with a tie: positives {0.8, 0.4}, negatives {0.4, 0.1}: pairs won 1 + 1 + 0.5 + 1 = 3.5 of 4.
        Assert.AreEqual(0.875, ClassificationMetrics.BinaryAuc(new[] { 0.8f, 0.4f, 0.4f, 0.1f }, new[] { true, true, false, false })!.Value, 1e-12);
        Assert.IsNull(ClassificationMetrics.BinaryAuc(new[] { 0.1f, 0.2f }, new[] { true, true }));
        // Three classes, predictions 0,1,1,2,2,0 for labels 0,1,2,2,0,0 (argmax of one-hot scores).
        int[] predicted = { 0, 1, 1, 2, 2, 0 }, labels = { 0, 1, 2, 2, 0, 0 };
        var scores = new float[6 * 3];
        for (int r = 0; r < 6; r++) scores[r * 3 + predicted[r]] = 1;
        var m = ClassificationMetrics.Compute(scores, labels, 3);
        Assert.AreEqual(4.0 / 6, m["Accuracy"], 1e-12);
        // F1: class 0 tp 2, pred 2, actual 3 → 0.8; class 1 tp 1, pred 2, actual 1 → 2/3; class 2 tp 1, pred 2, actual 2 → 0.5.
        Assert.AreEqual((0.8 + 2.0 / 3 + 0.5) / 3, m["MacroF1"], 1e-12);
    }
}
