using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Classification;
using MLNet.Attention.Transforms;
using MLNet.Attention.Vision;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Transforms;

/// <summary>The image featurizer on mlContext.Transforms: weights from a PyTorch checkpoint written by Debian's
/// PyTorch from our reference MobileNetV2 (Fixtures/make_pth_fixture.py), and from a trained classifier.</summary>
[TestClass]
public sealed class AttentionImageFeaturizerTests
{
    private const int Side = 32, PixelCount = 3 * Side * Side;

    public sealed class PixelRow
    {
        [VectorType(PixelCount)] public float[] Pixels { get; set; } = new float[PixelCount];
    }

    public sealed class FeatureRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static (float[][] Pixels, float[][] Features) Reference()
    {
        var lines = File.ReadAllLines(Fixture("mbv2-elab-w025-cifar.features.txt")).Where(l => !l.StartsWith('#')).ToList();
        int p = lines.IndexOf("pixels"), f = lines.IndexOf("features");
        float[] Parse(string l) => l.Split(' ').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        return (lines.Skip(p + 1).Take(f - p - 1).Select(Parse).ToArray(), lines.Skip(f + 1).Select(Parse).ToArray());
    }

    private static AttentionImageFeaturizerOptions FixtureOptions() => new()
    {
        CheckpointPath = Fixture("mbv2-elab-w025-cifar.pth"),
        Backbone = ImageBackbone.MobileNetV2, Attention = ImageAttention.ElaB, WidthMultiplier = 0.25, CifarStem = true,
        BatchSize = 3,   // 4 rows: one full batch and a partial one
    };

    private static double MaxAbsDiff(float[][] a, float[][] b)
    {
        Assert.AreEqual(a.Length, b.Length);
        double worst = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.AreEqual(a[i].Length, b[i].Length);
            for (int j = 0; j < a[i].Length; j++) worst = Math.Max(worst, Math.Abs(a[i][j] - b[i][j]));
        }
        return worst;
    }

    [TestMethod]
    public void PthWeightsGiveThePyTorchFeaturesThroughThePipelineEngineAndReload()
    {
        var (pixels, expected) = Reference();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(pixels.Select(p => new PixelRow { Pixels = p }));
        var estimator = ml.Transforms.AttentionImageFeaturizer(FixtureOptions());
        var shape = estimator.GetOutputSchema(MLNet.Attention.Tests.Bridge.BridgeTestHelpers.ShapeOf(data.Schema));
        Assert.AreEqual(NumberDataViewType.Single, shape.Single(c => c.Name == "Features").ItemType);

        using var featurizer = estimator.Fit(data);
        Assert.AreEqual(1280, featurizer.FeatureWidth);
        var scored = featurizer.Transform(data);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 1280), scored.Schema["Features"].Type);
        var features = scored.GetColumn<float[]>("Features").ToArray();
        double diff = MaxAbsDiff(expected, features);
        Console.WriteLine($"max |Δ| vs PyTorch {diff:E2} over 4 × 1280 features (mean |f| {expected.SelectMany(f => f).Average(Math.Abs):F3})");
        Assert.IsTrue(diff <= 1e-5, $"max |Δ| {diff}");

        using (var engine = ml.Model.CreatePredictionEngine<PixelRow, FeatureRow>(featurizer))
            Assert.IsTrue(MaxAbsDiff(new[] { expected[2] }, new[] { engine.Predict(new PixelRow { Pixels = pixels[2] }).Features }) <= 1e-5);

        string path = Path.Combine(Path.GetTempPath(), $"featurizer-{Environment.ProcessId}-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(featurizer, data.Schema, path);
            using var loaded = (AttentionImageFeaturizerTransformer)new MLContext().Model.Load(path, out _);
            Assert.AreEqual(featurizer.WeightsSource, loaded.WeightsSource);
            CollectionAssert.AreEqual(features.SelectMany(f => f).ToArray(),
                loaded.Transform(data).GetColumn<float[]>("Features").SelectMany(f => f).ToArray());
        }
        finally
        {
            File.Delete(path);
        }
        Assert.IsFalse(featurizer.IsDisposed, "the prediction engine's dispose does not free the featurizer");
    }

    public sealed class BytesRow
    {
        public byte[] Image { get; set; } = Array.Empty<byte>();
    }

    /// <summary>CHW 0–255 pixels → PNG bytes (lossless, so the decoded image is the same pixels).</summary>
    private static byte[] Png(float[] chw, string path)
    {
        var rgba = new byte[Side * Side * 4];
        for (int i = 0; i < Side * Side; i++)
        {
            for (int c = 0; c < 3; c++) rgba[4 * i + c] = (byte)chw[c * Side * Side + i];
            rgba[4 * i + 3] = 255;
        }
        using (var image = MLImage.CreateFromPixels(Side, Side, MLPixelFormat.Rgba32, rgba)) image.Save(path);
        return File.ReadAllBytes(path);
    }

    private static AttentionImageFeaturizerOptions ImageColumnOptions()
    {
        var options = FixtureOptions();
        options.InputColumnName = "Image";
        return options;
    }

    [TestMethod]
    public void EncodedBytesAndImageColumnsGiveThePyTorchFeaturesToo()
    {
        var (pixels, expected) = Reference();
        string folder = Path.Combine(Path.GetTempPath(), $"featurizer-png-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            var files = pixels.Select((p, i) => Path.Combine(folder, $"{i}.png")).ToArray();
            var rows = pixels.Select((p, i) => new BytesRow { Image = Png(p, files[i]) }).ToArray();
            var ml = new MLContext(seed: 1);
            var bytes = ml.Data.LoadFromEnumerable(rows);
            using var fromBytes = ml.Transforms.AttentionImageFeaturizer(ImageColumnOptions())
                .Fit(bytes);
            Assert.AreEqual(ImageInputKind.EncodedBytes, fromBytes.InputKind);
            double diff = MaxAbsDiff(expected, fromBytes.Transform(bytes).GetColumn<float[]>("Features").ToArray());
            Console.WriteLine($"encoded PNG bytes: max |Δ| vs PyTorch {diff:E2}");
            Assert.IsTrue(diff <= 1e-5, $"bytes: max |Δ| {diff}");

            var paths = ml.Data.LoadFromEnumerable(files.Select(f => new PathRow { Path = f }));
            var images = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "Path").Fit(paths).Transform(paths);
            using var fromImages = ml.Transforms.AttentionImageFeaturizer(ImageColumnOptions())
                .Fit(images);
            Assert.AreEqual(ImageInputKind.Image, fromImages.InputKind);
            Assert.IsTrue(MaxAbsDiff(expected, fromImages.Transform(images).GetColumn<float[]>("Features").ToArray()) <= 1e-5);

            string model = Path.Combine(folder, "featurizer.zip");
            ml.Model.Save(fromBytes, bytes.Schema, model);
            using var loaded = (AttentionImageFeaturizerTransformer)new MLContext().Model.Load(model, out _);
            Assert.AreEqual(ImageInputKind.EncodedBytes, loaded.InputKind);
            Assert.IsTrue(MaxAbsDiff(expected, loaded.Transform(bytes).GetColumn<float[]>("Features").ToArray()) <= 1e-5);

            var broken = ml.Data.LoadFromEnumerable(rows.Take(2).Append(new BytesRow { Image = new byte[] { 1, 2, 3 } }));
            var error = Assert.ThrowsExactly<InvalidOperationException>(() =>
                fromBytes.Transform(broken).GetColumn<float[]>("Features").ToArray());
            StringAssert.Contains(error.Message, "Column 'Image'");
            StringAssert.Contains(error.Message, "do not decode as an image");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    public sealed class PathRow
    {
        public string Path { get; set; } = "";
    }

    [TestMethod]
    public void ACheckpointOfAnotherNetworkListsMissingUnexpectedAndMisShapedKeys()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Reference().Pixels.Select(p => new PixelRow { Pixels = p }));

        var plain = FixtureOptions();
        plain.Attention = ImageAttention.None;   // the file has ELA at conv.6, so its projection sits at conv.7/conv.8
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transforms.AttentionImageFeaturizer(plain).Fit(data));
        StringAssert.Contains(ex.Message, "does not fit MobileNetV2 with None attention (width 0.25, 3 channels)");
        StringAssert.Contains(ex.Message, "missing from the file");
        StringAssert.Contains(ex.Message, "features.2.conv.6.weight");
        StringAssert.Contains(ex.Message, "unexpected in the file");
        StringAssert.Contains(ex.Message, "features.2.conv.6.conv.weight");
        StringAssert.Contains(ex.Message, "features.2.conv.7.weight: expected [8], file has [8, 48, 1, 1]");
        var mismatch = (MLNet.Attention.Checkpoints.StateDictMismatchException)ex.InnerException!;
        Assert.IsTrue(mismatch.Missing.Count > 0 && mismatch.Unexpected.Count > 0 && mismatch.MisShaped.Count > 0);
        Assert.IsFalse(mismatch.Unexpected.Any(k => k.StartsWith("classifier.", StringComparison.Ordinal)), "the head is ignored");

        var wider = FixtureOptions();
        wider.WidthMultiplier = 0.5;
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ml.Transforms.AttentionImageFeaturizer(wider).Fit(data)).Message,
            "features.0.0.weight: expected [16, 3, 3, 3], file has [8, 3, 3, 3]");

        var stemOnly = FixtureOptions();
        stemOnly.CheckpointPath = Fixture("mbv2-stem-only.pth");
        var missing = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transforms.AttentionImageFeaturizer(stemOnly).Fit(data));
        StringAssert.Contains(missing.Message, "missing from the file");
        StringAssert.Contains(missing.Message, "features.1.conv.0.weight");
        Assert.IsFalse(missing.Message.Contains("unexpected in the file"), missing.Message);

        var notPth = FixtureOptions();
        notPth.CheckpointPath = Fixture("mbv2-elab-w025-cifar.features.txt");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ml.Transforms.AttentionImageFeaturizer(notPth).Fit(data)).Message,
            "is not a PyTorch checkpoint");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.AttentionImageFeaturizer(new AttentionImageFeaturizerOptions())).Message, "Set CheckpointPath");
    }

    [TestMethod]
    public void AWrongPixelColumnNamesTheColumnAndTheFix()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Reference().Pixels.Select(p => new PixelRow { Pixels = p }));
        var small = FixtureOptions();
        small.ImageHeight = small.ImageWidth = 16;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.AttentionImageFeaturizer(small).Fit(data)).Message,
            "pixel column 'Pixels' should hold 3 × 16 × 16 = 768 values per image. It holds 3072 values; resize the images to 16 × 16");
        var grey = FixtureOptions();
        grey.Channels = 1;
        grey.Mean = new[] { 0.5f };
        grey.Std = new[] { 0.5f };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.AttentionImageFeaturizer(grey).Fit(data)).Message,
            "three channels where one is expected");
        var renamed = FixtureOptions();
        renamed.InputColumnName = "Image";
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.AttentionImageFeaturizer(renamed).Fit(data)).Message,
            "image column 'Image' was not found");

        // A fitted featurizer applied to data of another size: the base schema check names the column.
        using var featurizer = ml.Transforms.AttentionImageFeaturizer(FixtureOptions()).Fit(data);
        var other = ml.Data.LoadFromEnumerable(new[] { new { Pixels = new float[10] } }.Select(r => new SmallRow()));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => featurizer.Transform(other)).Message, "'Pixels'");
    }

    public sealed class SmallRow
    {
        [VectorType(768)] public float[] Pixels { get; set; } = new float[768];
    }

    public sealed class ColourRow
    {
        [VectorType(PixelCount)] public float[] Features { get; set; } = new float[PixelCount];
        public string Label { get; set; } = "";
    }

    public sealed class ColourPrediction
    {
        public string PredictedLabel { get; set; } = "";
    }

    /// <summary>0–255 pixels: a 12 × 12 square of one of three colours at a random place, on noise.</summary>
    private static ColourRow[] Colours(int count, int seed)
    {
        var rng = new Random(seed);
        string[] names = { "red", "green", "blue" };
        return Enumerable.Range(0, count).Select(i =>
        {
            int c = i % 3;
            var p = new float[PixelCount];
            for (int k = 0; k < PixelCount; k++) p[k] = (float)(rng.NextDouble() * 60);
            int top = rng.Next(Side - 12), left = rng.Next(Side - 12);
            for (int y = top; y < top + 12; y++)
                for (int x = left; x < left + 12; x++)
                    p[c * Side * Side + y * Side + x] = 230;
            return new ColourRow { Features = p, Label = names[c] };
        }).ToArray();
    }

    [TestMethod]
    public void TheFeaturizerAcceptsAndRefusesExactlyTheClassifiersNetworks()
    {
        // One validation for both option classes: every backbone × attention pair (and bad sizes, channels,
        // normalisation) is accepted by both or refused by both with the same message.
        var cases = new List<Action<dynamic>>();   // the same settings written into either option class
        foreach (var backbone in Enum.GetValues<ImageBackbone>())
            foreach (var attention in Enum.GetValues<ImageAttention>())
                cases.Add(o => { o.Backbone = backbone; o.Attention = attention; });
        cases.Add(o => o.ImageHeight = 4);
        cases.Add(o => o.Channels = 2);
        cases.Add(o => o.Channels = 1);                       // Mean/Std still have three values
        cases.Add(o => o.Std = new[] { 1f, 0f, 1f });
        cases.Add(o => o.PixelScale = float.NaN);
        cases.Add(o => o.WidthMultiplier = 0);
        cases.Add(o => { o.Attention = ImageAttention.Ulsam; o.UlsamSubspaces = 0; });
        int refused = 0;
        foreach (var change in cases)
        {
            var classifier = new ImageClassifierOptions();
            var featurizer = new AttentionImageFeaturizerOptions { CheckpointPath = "weights.pth" };
            change(classifier);
            change(featurizer);
            string? classifierError = Record(classifier.Validate), featurizerError = Record(featurizer.Validate);
            Assert.AreEqual(classifierError, featurizerError,
                $"{classifier.Backbone}/{classifier.Attention}: the two option classes disagree");
            if (classifierError is not null) refused++;
        }
        // ResNet-18 + ULSAM, MobileNet V1 + four ELA variants, and the seven bad values.
        Assert.AreEqual(1 + 4 + 7, refused);
        Assert.IsNull(Record(new AttentionImageFeaturizerOptions
        {
            CheckpointPath = "weights.pth", Backbone = ImageBackbone.MobileNetV1, Attention = ImageAttention.Ulsam,
        }.Validate), "MobileNet V1 + ULSAM is a classifier network, so the featurizer takes it too");

        static string? Record(Action validate)
        {
            try { validate(); return null; }
            catch (ArgumentOutOfRangeException e) { return e.Message; }
        }
    }

    [TestMethod]
    public void AClassifiersFeaturizerFeedsAnMLNetTrainerAndOutlivesTheClassifier()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Colours(96, 1));
        var test = ml.Data.LoadFromEnumerable(Colours(60, 2));
        var classifier = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.ImageClassifier(new ImageClassifierOptions
            {
                Backbone = ImageBackbone.MobileNetV2, Attention = ImageAttention.ElaL, WidthMultiplier = 0.35, MaxEpochs = 10,
                BatchSize = 16, LearningRate = 1e-3, NumberOfThreads = 1, Seed = 4, ValidationFraction = 0,
                EarlyStoppingPatience = null,
            }))
            .Fit(train);
        var model = classifier.LastTransformer;

        // The featurizer's features are the classifier head's input: its head on them gives the classifier's scores.
        using (var featurizer = model.CreateFeaturizer())
        {
            var keyed = classifier.Transform(test);
            var features = featurizer.Transform(keyed).GetColumn<float[]>("Features").Take(5).ToArray();
            var scores = keyed.GetColumn<float[]>("Score").Take(5).ToArray();
            Console.WriteLine($"feature mean {features.SelectMany(f => f).Average():F4}, nonzero {features.SelectMany(f => f).Count(v => v != 0)}, " +
                $"row0-row1 max {features[0].Zip(features[1], (a, b) => Math.Abs(a - b)).Max():E2}, scores {string.Join(" ", scores[0])}");
            using var scope = NewDisposeScope();
            var head = ((MobileNetV2)model.Network.Backbone).Classifier;
            var x = tensor(features.SelectMany(f => f).ToArray(), new long[] { 5, featurizer.FeatureWidth });
            var probabilities = nn.functional.softmax(head.call(x), 1);
            var fromHead = Enumerable.Range(0, 5).Select(i => probabilities[i].data<float>().ToArray()).ToArray();
            Assert.IsTrue(MaxAbsDiff(scores, fromHead) < 1e-5, $"head(features) vs Score: {MaxAbsDiff(scores, fromHead)}");
        }

        // One pipeline: the classifier's backbone as a featurizer, then ML.NET's own trainer on its Features.
        Console.WriteLine($"classifier micro accuracy {ml.MulticlassClassification.Evaluate(classifier.Transform(test)).MicroAccuracy:F3}");
        var pipeline = ml.Transforms.AttentionImageFeaturizer(model, outputColumnName: "Embedding")
            .AppendCacheCheckpoint(ml)   // featurize once, not once per SDCA pass
            .Append(ml.Transforms.NormalizeMinMax("Embedding"))
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Embedding", maximumNumberOfIterations: 50))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var fitted = pipeline.Fit(train);
        classifier.Dispose();   // the featurizer holds its own copy of the weights
        Assert.IsTrue(model.IsDisposed);
        var metrics = ml.MulticlassClassification.Evaluate(fitted.Transform(test));
        Console.WriteLine($"SDCA on the featurizer's 1280 features: micro accuracy {metrics.MicroAccuracy:F3} on 60 unseen images");
        Assert.IsTrue(metrics.MicroAccuracy >= 0.9, $"accuracy {metrics.MicroAccuracy}");
        using (var engine = ml.Model.CreatePredictionEngine<ColourRow, ColourPrediction>(fitted))
        {
            var rows = Colours(6, 3);
            Assert.IsTrue(rows.Count(r => engine.Predict(r).PredictedLabel == r.Label) >= 5);
        }

        string path = Path.Combine(Path.GetTempPath(), $"featurizer-sdca-{Environment.ProcessId}-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(fitted, train.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            CollectionAssert.AreEqual(fitted.Transform(test).GetColumn<string>("PredictedLabel").ToArray(),
                loaded.Transform(test).GetColumn<string>("PredictedLabel").ToArray());
            (loaded as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
        fitted.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => model.CreateFeaturizer());
    }
}
