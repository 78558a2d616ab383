using Microsoft.ML;
using MLNet.Attention.Engine;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Tests.Forecasting;

namespace MLNet.Attention.Tests.Engine;

[TestClass]
public sealed class TrainingLoopTests
{
    private sealed class Options : TorchTrainerOptions { }

    [TestMethod]
    public void LearningRateSchedulesFollowTheirDefinitions()
    {
        var halve = new Options { LearningRate = 1e-3, LearningRateSchedule = LearningRateSchedule.HalveEveryEpoch };
        // iTransformer's type1: epochs 1 and 2 at lr0, then halved after each epoch.
        CollectionAssert.AreEqual(new[] { 1e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4 },
            Enumerable.Range(1, 5).Select(e => TrainingLoop.LearningRateAt(halve, e, 0, 100)).ToArray());
        var cosine = new Options { LearningRate = 1e-3, LearningRateSchedule = LearningRateSchedule.Cosine };
        Assert.AreEqual(1e-3, TrainingLoop.LearningRateAt(cosine, 1, 0, 100), 1e-15);
        Assert.AreEqual(5e-4, TrainingLoop.LearningRateAt(cosine, 1, 50, 100), 1e-15);
        Assert.AreEqual(0, TrainingLoop.LearningRateAt(cosine, 1, 100, 100), 1e-15);
        Assert.AreEqual(1e-3, TrainingLoop.LearningRateAt(new Options { LearningRate = 1e-3 }, 7, 99, 100));
    }

    [TestMethod]
    public void InvalidOptionsNameTheOption()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Options { BatchSize = 0 }.Validate()).Message, "BatchSize");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Options { LearningRate = double.NaN }.Validate()).Message, "LearningRate");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Options { GradientClipNorm = 0 }.Validate()).Message, "GradientClipNorm");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Options { EarlyStoppingPatience = 0 }.Validate()).Message, "EarlyStoppingPatience");
    }

    [TestMethod]
    public void ClippingWeightDecayAndNoValidationTrainWithoutEarlyStopping()
    {
        var ml = new MLContext(seed: 8);
        var data = ml.Data.LoadFromEnumerable(InvertedTransformerTrainerTests.Series(200));
        using var model = InvertedTransformerTrainerTests.TrainTiny(ml, data, o =>
        {
            o.MaxEpochs = 2; o.GradientClipNorm = 0.5; o.WeightDecay = 0.01; o.LearningRateSchedule = LearningRateSchedule.Cosine;
            o.ValidationFraction = 0; o.EarlyStoppingPatience = null;
        });
        var epochs = model.TrainingSummary!.Epochs;
        Assert.AreEqual(2, epochs.Count);
        Assert.IsTrue(epochs.All(e => e.ValidationLoss is null && double.IsFinite(e.TrainLoss)));
        Assert.AreEqual(2, model.TrainingSummary.BestEpoch);
        // Early stopping without validation data is refused with the fix.
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => InvertedTransformerTrainerTests.TrainTiny(ml, data, o => o.ValidationFraction = 0));
        StringAssert.Contains(ex.Message, "EarlyStoppingPatience = null");
    }

    [TestMethod]
    public void ExplicitValidationSetIsUsed()
    {
        var ml = new MLContext(seed: 8);
        var rows = InvertedTransformerTrainerTests.Series(300);
        var train = ml.Data.LoadFromEnumerable(rows.Take(200));
        var validation = ml.Data.LoadFromEnumerable(rows.Skip(200 - InvertedTransformerTrainerTests.L));
        var reports = new List<EpochReport>();
        using var model = InvertedTransformerTrainerTests.TrainTiny(ml, train, o => { o.ValidationSet = validation; o.MaxEpochs = 2; o.EpochCallback = reports.Add; });
        // The reported validation loss is the model's scaled MSE on that set.
        Assert.AreEqual(model.Evaluate(validation).MeanSquaredError, model.TrainingSummary!.Epochs[model.TrainingSummary.BestEpoch - 1].ValidationLoss!.Value, 1e-5);
        Assert.AreEqual(2, reports.Count);
    }
}
