using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.MultipleInstance;

namespace MLNet.Attention.Tests.MultipleInstance;

/// <summary>The attention-MIL trainers (ABMIL, ACMIL) through ML.NET's public API: Musk1 bags, evaluators, the
/// per-instance attention, save/load, prediction engines, padding invariance and bad input.</summary>
[TestClass]
public sealed class AttentionMilTrainerTests
{
    private static AttentionMilOptions Quick(MilArchitecture architecture) => new()
    {
        Architecture = architecture,
        LabelColumnName = "Label",
        MaxEpochs = 8,
        BatchSize = 4,
        LearningRate = 1e-3,
        InnerSize = 64,
        AttentionSize = 32,
        ValidationFraction = 0,
        EarlyStoppingPatience = null,
        Seed = 7,
        NumberOfThreads = 1,
    };

    [TestMethod]
    public void GatedAttentionLearnsMusk1AndExplainsEachInstance()
    {
        var ml = new MLContext(seed: 3);
        var bags = ml.Data.Cache(MuskData.Bags(ml));
        using var model = ml.BinaryClassification.Trainers.AttentionMil(Quick(MilArchitecture.GatedAttention)).Fit(bags);
        var scored = model.Transform(bags);
        var metrics = ml.BinaryClassification.Evaluate(scored);
        Assert.IsTrue(metrics.AreaUnderRocCurve > 0.9, $"training AUC {metrics.AreaUnderRocCurve:F3}");

        var counts = scored.GetColumn<int>("InstanceCount").ToArray();
        var attention = scored.GetColumn<float[]>("Attention").ToArray();
        for (int b = 0; b < counts.Length; b++)
        {
            Assert.AreEqual(counts[b], attention[b].Length);
            Assert.AreEqual(1.0, attention[b].Sum(), 1e-4);
        }
    }

    [TestMethod]
    public void AcmilMulticlassScoresTheSameAfterSaveAndLoadAndInAnyBatchSize()
    {
        var ml = new MLContext(seed: 3);
        var bags = ml.Data.Cache(ml.Transforms.Conversion.ConvertType("Class", "Label", DataKind.String)
            .Append(ml.Transforms.Conversion.MapValueToKey("Class")).Fit(MuskData.Bags(ml)).Transform(MuskData.Bags(ml)));
        var options = Quick(MilArchitecture.Acmil);
        options.LabelColumnName = "Class";
        options.Branches = 3;
        options.MaxEpochs = 4;
        using var model = ml.MulticlassClassification.Trainers.AttentionMil(options).Fit(bags);
        Assert.IsTrue(model.TrainingSummary!.Epochs[0].TrainLossParts.ContainsKey("diversity"));
        var scored = model.Transform(bags);
        var metrics = ml.MulticlassClassification.Evaluate(scored, labelColumnName: "Class");
        Assert.IsTrue(metrics.MacroAccuracy > 0.6, $"training macro accuracy {metrics.MacroAccuracy:F3}");
        var counts = scored.GetColumn<int>("InstanceCount").ToArray();
        var branches = scored.GetColumn<float[]>("BranchAttention").ToArray();
        for (int b = 0; b < counts.Length; b++) Assert.AreEqual(counts[b] * 3, branches[b].Length);
        var scores = scored.GetColumn<float[]>("Score").ToArray();

        string path = Path.Combine(Path.GetTempPath(), $"acmil-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, bags.Schema, path);
            var loadedContext = new MLContext();
            var loaded = loadedContext.Model.Load(path, out _);
            try
            {
                var again = loaded.Transform(bags).GetColumn<float[]>("Score").ToArray();
                for (int b = 0; b < scores.Length; b++)
                    for (int c = 0; c < scores[b].Length; c++) Assert.AreEqual(scores[b][c], again[b][c], 1e-5);
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
            }
        }
        finally
        {
            File.Delete(path);
        }

        // Padding: one bag per forward pass gives what batches of 16 padded bags give.
        var engine = ml.Model.CreatePredictionEngine<BagInput, MulticlassOutput>(model);
        var features = bags.GetColumn<float[]>("Features").ToArray();
        for (int b = 0; b < 10; b++)
        {
            var single = engine.Predict(new BagInput { Features = features[b] });
            for (int c = 0; c < scores[b].Length; c++) Assert.AreEqual(scores[b][c], single.Score[c], 1e-5);
            Assert.AreEqual(counts[b], single.Attention.Length);
        }
    }

    public sealed class BagInput
    {
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    public sealed class MulticlassOutput
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public float[] Attention { get; set; } = Array.Empty<float>();
    }

    public sealed class BinaryOutput
    {
        public bool PredictedLabel { get; set; }
        public float Probability { get; set; }
        public float[] Attention { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void InstanceSamplingCapsTrainingBagsAndCrossValidateWorks()
    {
        var ml = new MLContext(seed: 3);
        var bags = ml.Data.Cache(MuskData.Bags(ml));
        var options = Quick(MilArchitecture.GatedAttention);
        options.MaxInstancesPerBag = 4;
        options.MaxEpochs = 3;
        var results = ml.BinaryClassification.CrossValidateNonCalibrated(bags, ml.BinaryClassification.Trainers.AttentionMil(options),
            numberOfFolds: 3);
        Assert.AreEqual(3, results.Count);
        foreach (var fold in results)
        {
            Assert.IsTrue(fold.Metrics.AreaUnderRocCurve is > 0 and <= 1);
            (fold.Model as IDisposable)?.Dispose();
        }
    }

    public sealed class RawBag
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public bool Label { get; set; }
    }

    private static IDataView Raw(MLContext ml, params float[][] bags) =>
        ml.Data.LoadFromEnumerable(bags.Select((f, i) => new RawBag { Features = f, Label = i % 2 == 0 }));

    [TestMethod]
    public void AnEmptyBagIsNamedWithItsRow()
    {
        var ml = new MLContext(seed: 1);
        var data = Raw(ml, new float[] { 1, 2, 3, 4 }, new float[] { 1, 2 }, Array.Empty<float>(), new float[] { 5, 6 });
        var options = Quick(MilArchitecture.GatedAttention);
        options.InstanceSize = 2;
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.BinaryClassification.Trainers.AttentionMil(options).Fit(data));
        StringAssert.Contains(e.Message, "empty bag");
        StringAssert.Contains(e.Message, "at row 2");
    }

    [TestMethod]
    public void BagsOfAnotherFeatureSizeAreRefused()
    {
        var ml = new MLContext(seed: 1);
        var data = Raw(ml, new float[] { 1, 2, 3, 4 }, new float[] { 1, 2, 3 }, new float[] { 5, 6 }, new float[] { 7, 8 });
        var options = Quick(MilArchitecture.GatedAttention);
        options.InstanceSize = 2;
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.BinaryClassification.Trainers.AttentionMil(options).Fit(data));
        StringAssert.Contains(e.Message, "3 values at row 1, not a multiple of the instance size 2");

        // A trained model refuses bags whose annotation declares another instance size.
        var bags = MuskData.Bags(ml);
        using var model = ml.BinaryClassification.Trainers.AttentionMil(Quick(MilArchitecture.GatedAttention)).Fit(bags);
        var other = ml.Transforms.GroupIntoBags("BagId", new[] { "Half" }, "Label").Fit(Halves(ml)).Transform(Halves(ml));
        var schema = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(other));
        StringAssert.Contains(schema.Message, "instances of 83 features");
    }

    private static IDataView Halves(MLContext ml) => ml.Transforms.CustomMapping<MuskData.Instance, HalfRow>(
        (input, output) => output.Half = input.Features[..83], contractName: null).Fit(MuskData.Instances(ml)).Transform(MuskData.Instances(ml));

    public sealed class HalfRow
    {
        [VectorType(83)] public float[] Half { get; set; } = new float[83];
    }

    [TestMethod]
    public void LabelsThatAreNotKeysNameTheFix()
    {
        var ml = new MLContext(seed: 1);
        var bags = ml.Transforms.Conversion.ConvertType("Class", "Label", DataKind.String).Fit(MuskData.Bags(ml)).Transform(MuskData.Bags(ml));
        var options = Quick(MilArchitecture.GatedAttention);
        options.LabelColumnName = "Class";
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.AttentionMil(options).Fit(bags));
        StringAssert.Contains(e.Message, "MapValueToKey");
    }

    [TestMethod]
    public void NaNFeaturesInABagNameRowInstanceAndFeature()
    {
        var ml = new MLContext(seed: 1);
        var data = Raw(ml, new float[] { 1, 2, 3, 4 }, new float[] { 1, float.NaN }, new float[] { 5, 6 }, new float[] { 7, 8 });
        var options = Quick(MilArchitecture.GatedAttention);
        options.InstanceSize = 2;
        options.StandardizeFeatures = false;
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.BinaryClassification.Trainers.AttentionMil(options).Fit(data));
        StringAssert.Contains(e.Message, "at row 1, instance 0, feature 1");
    }

    [TestMethod]
    public void BinaryPredictionEngineGivesProbabilityAndAttention()
    {
        var ml = new MLContext(seed: 3);
        var bags = ml.Data.Cache(MuskData.Bags(ml));
        var options = Quick(MilArchitecture.Acmil);
        options.MaxEpochs = 2;
        using var model = ml.BinaryClassification.Trainers.AttentionMil(options).Fit(bags);
        var engine = ml.Model.CreatePredictionEngine<BagInput, BinaryOutput>(model);
        var first = bags.GetColumn<float[]>("Features").First();
        var p = engine.Predict(new BagInput { Features = first });
        Assert.IsTrue(p.Probability is >= 0 and <= 1);
        Assert.AreEqual(p.Probability > 0.5f, p.PredictedLabel);
        Assert.AreEqual(first.Length / 166, p.Attention.Length);
    }
}
