using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Classification;

namespace MLNet.Attention.Tests.Classification;

/// <summary>The image classifier on CHW pixel vectors (what ExtractPixels writes), through ML.NET's public API.</summary>
[TestClass]
public sealed class ImageClassifierTests
{
    private const int Side = 32, Pixels = 3 * Side * Side;

    public sealed class ImageRow
    {
        [VectorType(Pixels)] public float[] Features { get; set; } = new float[Pixels];
        public string Label { get; set; } = "";
    }

    public sealed class Prediction
    {
        public string PredictedLabel { get; set; } = "";
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    /// <summary>0–255 pixels: a bright square at a random place, red for "red", blue for "blue", on noise.</summary>
    private static ImageRow[] Images(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            bool red = i % 2 == 0;
            var p = new float[Pixels];
            for (int k = 0; k < Pixels; k++) p[k] = (float)(rng.NextDouble() * 60);
            int top = rng.Next(Side - 12), left = rng.Next(Side - 12), channel = red ? 0 : 2;
            for (int y = top; y < top + 12; y++)
                for (int x = left; x < left + 12; x++)
                    p[channel * Side * Side + y * Side + x] = 230;
            return new ImageRow { Features = p, Label = red ? "red" : "blue" };
        }).ToArray();
    }

    private static ImageClassifierOptions Options(ImageBackbone backbone, ImageAttention attention) => new()
    {
        Backbone = backbone, Attention = attention, WidthMultiplier = 0.35, MaxEpochs = 10, BatchSize = 16, LearningRate = 1e-3,
        NumberOfThreads = 1, Seed = 4, ValidationFraction = 0, EarlyStoppingPatience = null,
    };

    [TestMethod]
    [DataRow(ImageBackbone.MobileNetV2, ImageAttention.ElaL, 10)]
    [DataRow(ImageBackbone.MobileNetV2, ImageAttention.Ulsam, 20)]
    public void TrainsOnPixelVectorsEvaluatesAndRoundTrips(ImageBackbone backbone, ImageAttention attention, int epochs)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Images(96, 1));
        var test = ml.Data.LoadFromEnumerable(Images(40, 2));
        var options = Options(backbone, attention);
        options.MaxEpochs = epochs;
        options.EpochCallback = e => Console.WriteLine(e);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.ImageClassifier(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var model = pipeline.Fit(train);
        var scored = model.Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.IsTrue(metrics.MicroAccuracy >= 0.85, $"{backbone} + {attention}: accuracy {metrics.MicroAccuracy}");

        using var engine = ml.Model.CreatePredictionEngine<ImageRow, Prediction>(model);
        var first = Images(1, 3)[0];
        Assert.AreEqual(first.Label, engine.Predict(first).PredictedLabel);

        var path = Path.Combine(Path.GetTempPath(), $"image-{backbone}-{attention}-{Environment.ProcessId}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var loaded = ml.Model.Load(path, out _);
            CollectionAssert.AreEqual(scored.GetColumn<float[]>("Score").First(), loaded.Transform(test).GetColumn<float[]>("Score").First());
            (loaded as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
        (model as IDisposable)?.Dispose();
    }

    [TestMethod]
    public void ScoresComeFromABatchNormFoldedCopyEqualToTheTrainedNetwork()
    {
        var ml = new MLContext(seed: 1);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Images(8, 1)));
        var train = keyed.Transform(ml.Data.LoadFromEnumerable(Images(64, 1)));
        var test = Images(16, 2);
        var options = Options(ImageBackbone.MobileNetV2, ImageAttention.ElaB);
        options.MaxEpochs = 2;
        options.AttentionMapColumnName = "AttentionMap";
        using var model = ml.MulticlassClassification.Trainers.ImageClassifier(options).Fit(train);
        var scored = model.Transform(keyed.Transform(ml.Data.LoadFromEnumerable(test)));
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        var maps = scored.GetColumn<float[]>("AttentionMap").ToArray();

        // The trained network, batch norms and all, in evaluation mode: the reference the folded copy must match.
        var network = model.Network;
        network.eval();
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var noGrad = TorchSharp.torch.no_grad();
        var pixels = TorchSharp.torch.tensor(test.SelectMany(r => r.Features).ToArray(), new long[] { test.Length, Pixels });
        var (logits, map) = network.ForwardWithAttentionMap(pixels);
        var expected = TorchSharp.torch.nn.functional.softmax(logits, 1).data<float>().ToArray();
        var expectedMaps = map.reshape(test.Length, -1).data<float>().ToArray();
        for (int i = 0; i < test.Length; i++)
        {
            for (int c = 0; c < 2; c++)
                Assert.AreEqual(expected[i * 2 + c], scores[i][c], 1e-5, $"row {i} class {c}");
            for (int k = 0; k < maps[i].Length; k++)
                Assert.AreEqual(expectedMaps[i * maps[i].Length + k], maps[i][k], 1e-5, $"row {i} map {k}");
        }
        // The model's own network keeps its batch norms: it still trains.
        network.train();
        Assert.AreEqual(test.Length, network.call(pixels).shape[0]);
        Assert.IsTrue(network.modules().OfType<MLNet.Attention.Layers.BatchNorm2d>().All(n => !n.FoldedIntoConvolution));
    }

    [TestMethod]
    public void WrongPixelCountsNameTheColumnAndTheFix()
    {
        var ml = new MLContext(seed: 1);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label");
        var rows = ml.Data.LoadFromEnumerable(Images(8, 1));
        var keyed = keys.Fit(rows).Transform(rows);
        var grey = new ImageClassifierOptions { ImageHeight = 32, ImageWidth = 32, Channels = 1, Mean = new[] { 0.5f }, Std = new[] { 0.5f } };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.ImageClassifier(grey).Fit(keyed)).Message, "three channels where one is expected");
        var small = new ImageClassifierOptions { ImageHeight = 16, ImageWidth = 16 };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.ImageClassifier(small).Fit(keyed)).Message, "check ImageHeight/ImageWidth/Channels");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.ImageClassifier(Options(ImageBackbone.MobileNetV2, ImageAttention.ElaL)).Fit(rows)).Message, "MapValueToKey");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new ImageClassifierOptions { Backbone = ImageBackbone.ResNet18, Attention = ImageAttention.Ulsam }.Validate()).Message, "ULSAM");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new ImageClassifierOptions { Channels = 1 }.Validate()).Message, "one value per channel");
        var nanRows = Images(8, 1);
        nanRows[3].Features[5] = float.NaN;
        var nan = keys.Fit(rows).Transform(ml.Data.LoadFromEnumerable(nanRows));
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() =>
            ml.MulticlassClassification.Trainers.ImageClassifier(Options(ImageBackbone.MobileNetV2, ImageAttention.ElaL)).Fit(nan)).Message,
            "non-finite value (NaN) at row 3, element 5");
    }
}
