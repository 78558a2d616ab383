using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Interop;
using MLNet.Attention.MultipleInstance;

namespace MLNet.Attention.Tests.MultipleInstance;

/// <summary>Attention MIL with the LeNet instance encoder (MNIST-bags style) through ML.NET's public API: tiny 16×16
/// noise images, a positive bag holds one image with a bright square; the model learns it end to end, attends to that
/// image, scores the same after save/load, and refuses an image shape that does not fit the instances.</summary>
[TestClass]
public sealed class ImageBagTrainingTests
{
    private const int Side = 16, Pixels = Side * Side;

    public sealed class ImageBag
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public bool Label { get; set; }
        public string Class { get; set; } = "";
        public int Positive { get; set; } = -1;   // index of the patterned image; -1 in a negative bag
    }

    /// <summary>Bags of 3–7 noise images; half of them hold one image with a 4×4 bright square somewhere.</summary>
    private static List<ImageBag> Bags(int count, int seed)
    {
        var random = new Random(seed);
        var bags = new List<ImageBag>();
        for (int b = 0; b < count; b++)
        {
            bool positive = b % 2 == 0;
            int n = random.Next(3, 8);
            var values = new float[n * Pixels];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 0.5);
            int target = positive ? random.Next(n) : -1;
            if (positive)
            {
                int top = random.Next(Side - 4), left = random.Next(Side - 4);
                for (int y = top; y < top + 4; y++)
                    for (int x = left; x < left + 4; x++) values[target * Pixels + y * Side + x] = 2f;
            }
            bags.Add(new ImageBag { Features = values, Label = positive, Class = positive ? "square" : "noise", Positive = target });
        }
        return bags;
    }

    private static AttentionMilOptions LeNet(MilArchitecture architecture) => new()
    {
        Architecture = architecture,
        InstanceEncoder = MilInstanceEncoder.LeNet,
        InstanceImageHeight = Side,
        InstanceImageWidth = Side,
        InstanceSize = Pixels,
        InnerSize = 32,
        AttentionSize = 16,
        Branches = 3,
        TopK = 2,
        MaxEpochs = 6,
        LearningRate = 1e-3,
        ValidationFraction = 0,
        EarlyStoppingPatience = null,
        Seed = 5,
        NumberOfThreads = 1,
    };

    [TestMethod]
    public void LeNetGatedAttentionLearnsImageBagsAttendsToThePatternAndScoresTheSameAfterSaveAndLoad()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Bags(64, 1));
        var testBags = Bags(40, 2);
        var test = ml.Data.LoadFromEnumerable(testBags);
        using var model = ml.BinaryClassification.Trainers.AttentionMil(LeNet(MilArchitecture.GatedAttention)).Fit(train);

        // Images: one mean and std over all pixels (not per pixel); the pixels are uniform on [0, 0.5] plus squares.
        var mean = model.Network.get_buffer("feature_mean")!.data<float>().ToArray();
        var std = model.Network.get_buffer("feature_std")!.data<float>().ToArray();
        Assert.AreEqual(1, mean.Distinct().Count());
        Assert.AreEqual(1, std.Distinct().Count());
        Assert.IsTrue(mean[0] is > 0.25f and < 0.35f, $"pooled mean {mean[0]}");
        Assert.AreEqual(32L, model.Network.named_parameters().Single(p => p.name == "encoder.fc.weight").parameter.shape[0]);
        Assert.IsFalse(model.Network.named_parameters().Any(p => p.name.Contains("dimreduction")),
            "the encoder's output goes to the attention directly");

        var scored = model.Transform(test);
        var metrics = ml.BinaryClassification.Evaluate(scored);
        Assert.IsTrue(metrics.AreaUnderRocCurve > 0.95, $"test AUC {metrics.AreaUnderRocCurve:F3}");

        var attention = scored.GetColumn<float[]>("Attention").ToArray();
        int hits = 0, positives = 0;
        for (int b = 0; b < testBags.Count; b++)
        {
            Assert.AreEqual(testBags[b].Features.Length / Pixels, attention[b].Length);
            Assert.AreEqual(1.0, attention[b].Sum(), 1e-4);
            if (testBags[b].Positive < 0) continue;
            positives++;
            if (Array.IndexOf(attention[b], attention[b].Max()) == testBags[b].Positive) hits++;
        }
        Assert.IsTrue(hits >= 0.9 * positives, $"the patterned image has the most attention in {hits} of {positives} bags");

        var scores = scored.GetColumn<float>("Score").ToArray();
        string path = Path.Combine(Path.GetTempPath(), $"lenet-mil-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            try
            {
                var again = loaded.Transform(test);
                CollectionAssert.AreEqual(scores, again.GetColumn<float>("Score").ToArray());
                var attentionAgain = again.GetColumn<float[]>("Attention").ToArray();
                for (int b = 0; b < attention.Length; b++) CollectionAssert.AreEqual(attention[b], attentionAgain[b]);
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
    }

    [TestMethod]
    public void LeNetAcmilMulticlassLearnsImageBagsAndScoresTheSameAfterSaveAndLoad()
    {
        var ml = new MLContext(seed: 1);
        var key = ml.Transforms.Conversion.MapValueToKey("Class");
        var raw = ml.Data.LoadFromEnumerable(Bags(64, 3));
        var toKey = key.Fit(raw);
        var train = toKey.Transform(raw);
        var test = toKey.Transform(ml.Data.LoadFromEnumerable(Bags(40, 4)));
        var options = LeNet(MilArchitecture.Acmil);
        options.LabelColumnName = "Class";
        options.StandardizeFeatures = false;
        options.MaxEpochs = 12;   // ACMIL's masking of the top instances slows learning on so few bags
        using var model = ml.MulticlassClassification.Trainers.AttentionMil(options).Fit(train);
        Assert.IsTrue(model.TrainingSummary!.Epochs[0].TrainLossParts.ContainsKey("diversity"));
        var scored = model.Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored, labelColumnName: "Class");
        Assert.IsTrue(metrics.MacroAccuracy > 0.9, $"test macro accuracy {metrics.MacroAccuracy:F3}");
        var images = scored.GetColumn<float[]>("Features").Select(f => f.Length / Pixels).ToArray();
        var branches = scored.GetColumn<float[]>("BranchAttention").ToArray();
        for (int b = 0; b < images.Length; b++) Assert.AreEqual(images[b] * 3, branches[b].Length);

        var scores = scored.GetColumn<float[]>("Score").ToArray();
        using var stream = new MemoryStream();
        ml.Model.Save(model, train.Schema, stream);
        stream.Position = 0;
        var loaded = new MLContext().Model.Load(stream, out _);
        try
        {
            var again = loaded.Transform(test).GetColumn<float[]>("Score").ToArray();
            for (int b = 0; b < scores.Length; b++) CollectionAssert.AreEqual(scores[b], again[b]);
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    [TestMethod]
    public void AnImageShapeThatDoesNotFitTheInstancesNamesTheOption()
    {
        var ml = new MLContext(seed: 1);

        // 20 × 20 = 400 pixels do not divide the 256 values of an instance.
        var options = LeNet(MilArchitecture.GatedAttention);
        options.InstanceImageHeight = options.InstanceImageWidth = 20;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.BinaryClassification.Trainers.AttentionMil(options));
        Assert.AreEqual("InstanceImageHeight", e.ParamName);
        StringAssert.Contains(e.Message, "20 × 20 = 400 pixels do not divide the 256 values");

        // Below what two valid 5×5 convolutions and two poolings accept.
        options = LeNet(MilArchitecture.Acmil);
        options.InstanceImageWidth = 12;
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.BinaryClassification.Trainers.AttentionMil(options));
        Assert.AreEqual("InstanceImageWidth", e.ParamName);
        StringAssert.Contains(e.Message, "at least 16");

        // Instance size declared by the bag column (GroupIntoBags), not the options: checked at Fit.
        options = LeNet(MilArchitecture.GatedAttention);
        options.InstanceSize = 0;
        options.InstanceImageHeight = options.InstanceImageWidth = 17;
        var trainer = ml.BinaryClassification.Trainers.AttentionMil(options);
        var rows = Bags(4, 5).SelectMany((bag, id) => Enumerable.Range(0, bag.Features.Length / Pixels).Select(i => new ImageRow
        {
            BagId = id,
            Label = bag.Label,
            Image = bag.Features[(i * Pixels)..((i + 1) * Pixels)],
        })).ToList();
        var instances = ml.Data.LoadFromEnumerable(rows);
        var bags = ml.Transforms.GroupIntoBags("BagId", new[] { "Image" }, "Label").Fit(instances).Transform(instances);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(bags));
        Assert.AreEqual("InstanceImageHeight", e.ParamName);
        StringAssert.Contains(e.Message, "289 pixels do not divide the 256 values");

        // An image shape without the encoder.
        options = LeNet(MilArchitecture.GatedAttention);
        options.InstanceEncoder = MilInstanceEncoder.None;
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.BinaryClassification.Trainers.AttentionMil(options));
        StringAssert.Contains(e.Message, "set InstanceEncoder = LeNet");
    }

    public sealed class ImageRow
    {
        public float BagId { get; set; }
        public bool Label { get; set; }
        [VectorType(Pixels)] public float[] Image { get; set; } = new float[Pixels];
    }

    [TestMethod]
    public void LeNetEncoderHasThePapersSizesFor28By28()
    {
        using var encoder = new LeNetInstanceEncoder(1, 28, 28);
        Assert.AreEqual(800, encoder.FlattenedSize);
        Assert.AreEqual(500, encoder.OutputSize);
        // conv1 1·20·25 + 20, conv2 20·50·25 + 50, fc 800·500 + 500 (Ilse et al.'s feature extractor).
        Assert.AreEqual(520L + 25_050 + 400_500, encoder.ParameterCount);
        Assert.AreEqual(encoder.ParameterCount, encoder.parameters().Sum(p => p.numel()));
        using var bags = TorchSharp.torch.zeros(2, 3, 784);
        using var features = encoder.EncodeBags(bags);
        CollectionAssert.AreEqual(new long[] { 2, 3, 500 }, features.shape);
    }

    /// <summary>AttentionMilConfig as it was before the instance encoder (same type name, the old fields).</summary>
    private static class Before
    {
        public sealed record AttentionMilConfig(MilArchitecture Architecture, int FeatureSize, int InnerSize, int Classes,
            int AttentionSize, double Dropout, int Branches, int TopK, double MaskRatio);
    }

    [TestMethod]
    public void AModelConfigSavedBeforeTheEncoderExistedReadsAsNoEncoder()
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            ConfigPersistence.WriteConfig(writer, new Before.AttentionMilConfig(MilArchitecture.Acmil, 166, 64, 2, 32, 0, 5, 10, 0.6));
        stream.Position = 0;
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        var config = ConfigPersistence.ReadConfig<AttentionMilConfig>(reader);
        Assert.AreEqual(new AttentionMilConfig(MilArchitecture.Acmil, 166, 64, 2, 32, 0, 5, 10, 0.6), config);
        Assert.AreEqual(MilInstanceEncoder.None, config.InstanceEncoder);
        using var network = new AttentionMilNetwork(config);
        Assert.IsTrue(network.named_parameters().Any(p => p.name == "mil.dimreduction.fc1.weight"));
    }
}
