using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Classification;
using MLNet.Attention.Data;

namespace MLNet.Attention.Tests.Classification;

/// <summary>The image classifier on encoded bytes (LoadRawImageBytes, ML.NET's ImageClassificationTrainer pipeline) and
/// on Image columns (LoadImages), its attention-map column and overlay, MobileNet V1, and the image bad-input paths.</summary>
[TestClass]
public sealed class ImageInputsTests
{
    private static string _folder = "";
    private static string[] _trainFiles = Array.Empty<string>(), _testFiles = Array.Empty<string>();

    public sealed class FileRow
    {
        public string Path { get; set; } = "";
        public string Label { get; set; } = "";
    }

    public sealed class Prediction
    {
        public string PredictedLabel { get; set; } = "";
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    [ClassInitialize]
    public static void WriteImages(TestContext _)
    {
        _folder = Path.Combine(Path.GetTempPath(), $"mlnet-attention-images-{Environment.ProcessId}");
        Directory.CreateDirectory(_folder);
        _trainFiles = Enumerable.Range(0, 64).Select(i => WriteSquare(i, seed: 1, side: i % 3 == 0 ? 40 : 32)).ToArray();
        _testFiles = Enumerable.Range(64, 24).Select(i => WriteSquare(i, seed: 2, side: 32)).ToArray();
    }

    [ClassCleanup]
    public static void RemoveImages()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    /// <summary>A bright red (even i) or blue (odd i) square at a random place on dark noise; PNG.</summary>
    private static string WriteSquare(int i, int seed, int side)
    {
        var rng = new Random(seed * 1000 + i);
        bool red = i % 2 == 0;
        var rgba = new byte[side * side * 4];
        for (int k = 0; k < side * side; k++)
        {
            rgba[4 * k] = (byte)rng.Next(60);
            rgba[4 * k + 1] = (byte)rng.Next(60);
            rgba[4 * k + 2] = (byte)rng.Next(60);
            rgba[4 * k + 3] = 255;
        }
        int square = side * 3 / 8, top = rng.Next(side - square), left = rng.Next(side - square);
        for (int y = top; y < top + square; y++)
            for (int x = left; x < left + square; x++)
                rgba[4 * (y * side + x) + (red ? 0 : 2)] = 230;
        string name = $"{(red ? "red" : "blue")}-{seed}-{i}.png";
        using var image = MLImage.CreateFromPixels(side, side, MLPixelFormat.Rgba32, rgba);
        image.Save(Path.Combine(_folder, name));
        return name;
    }

    private static FileRow[] Rows(string[] files) =>
        files.Select(f => new FileRow { Path = f, Label = f.StartsWith("red", StringComparison.Ordinal) ? "red" : "blue" }).ToArray();

    private static ImageClassifierOptions Options() => new()
    {
        WidthMultiplier = 0.35, MaxEpochs = 10, BatchSize = 8, LearningRate = 1e-3, NumberOfThreads = 1, Seed = 4,
        ValidationFraction = 0, EarlyStoppingPatience = null, RandomCropPadding = 0, RandomHorizontalFlip = false,
    };

    [TestMethod]
    public void TheImageClassificationTrainerPipelineWorksUnchangedOnRawBytes()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Rows(_trainFiles));
        var test = ml.Data.LoadFromEnumerable(Rows(_testFiles));
        var options = Options();
        options.AttentionMapColumnName = "AttentionMap";
        options.EpochCallback = e => Console.WriteLine(e);
        var pipeline = ml.Transforms.LoadRawImageBytes("Features", _folder, "Path")
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.ImageClassifier(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var model = pipeline.Fit(train);
        var scored = model.Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.IsTrue(metrics.MicroAccuracy >= 0.85, $"accuracy {metrics.MicroAccuracy}");

        var mapColumn = scored.Schema["AttentionMap"];
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 32, 32), mapColumn.Type);
        var map = scored.GetColumn<float[]>("AttentionMap").First();
        Assert.AreEqual(32 * 32, map.Length);
        Assert.IsTrue(map.All(v => v > 0 && v < 1), "ELA maps are sigmoid products in (0, 1)");
        Assert.IsTrue(map.Max() - map.Min() > 1e-4, "the map varies over the image");

        var overlay = Path.Combine(_folder, "overlay.png");
        AttentionOverlay.Save(overlay, Path.Combine(_folder, _testFiles[0]), map, 32, 32);
        using (var written = MLImage.CreateFromFile(overlay))
            Assert.AreEqual((128, 128), (written.Width, written.Height));

        using (var engine = ml.Model.CreatePredictionEngine<FileRow, Prediction>(model))
        {
            var row = Rows(_testFiles)[1];
            Assert.AreEqual(row.Label, engine.Predict(row).PredictedLabel);
        }

        var path = Path.Combine(_folder, "bytes-model.zip");
        ml.Model.Save(model, train.Schema, path);
        var loaded = ml.Model.Load(path, out _);
        var reloaded = loaded.Transform(test);
        CollectionAssert.AreEqual(scored.GetColumn<float[]>("Score").First(), reloaded.GetColumn<float[]>("Score").First());
        CollectionAssert.AreEqual(map, reloaded.GetColumn<float[]>("AttentionMap").First());
        (loaded as IDisposable)?.Dispose();
        (model as IDisposable)?.Dispose();
    }

    [TestMethod]
    public void ImageColumnsOfAnySizeTrainAndScoreAsTheirBytesDo()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Rows(_trainFiles));
        var test = ml.Data.LoadFromEnumerable(Rows(_testFiles.Take(8).ToArray()));
        var options = Options();
        options.MaxEpochs = 1;
        var keys = ml.Transforms.Conversion.MapValueToKey("Label");
        var images = ml.Transforms.LoadImages("Features", _folder, "Path").Append(keys).Fit(train);
        using var model = ml.MulticlassClassification.Trainers.ImageClassifier(options).Fit(images.Transform(train));
        Assert.AreEqual(ImageInputKind.Image, model.InputKind);
        var fromImages = model.Transform(images.Transform(test)).GetColumn<float[]>("Score").ToArray();

        // The same trained network fed the files' bytes instead must score identically (same decode and resize).
        var bytes = ml.Transforms.LoadRawImageBytes("Features", _folder, "Path").Append(keys).Fit(train);
        var path = Path.Combine(_folder, "image-model.zip");
        ml.Model.Save(model, images.Transform(train).Schema, path);
        using var copy = (ImageClassifierModel)ml.Model.Load(path, out _);
        Assert.AreEqual(ImageInputKind.Image, copy.InputKind);
        CollectionAssert.AreEqual(fromImages[0], copy.Transform(images.Transform(test)).GetColumn<float[]>("Score").First());
        var bytesOptions = Options();
        bytesOptions.MaxEpochs = 1;
        using var bytesModel = ml.MulticlassClassification.Trainers.ImageClassifier(bytesOptions).Fit(bytes.Transform(train));
        Assert.AreEqual(ImageInputKind.EncodedBytes, bytesModel.InputKind);
        var fromBytes = bytesModel.Transform(bytes.Transform(test)).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < fromImages.Length; i++)
            CollectionAssert.AreEqual(fromImages[i], fromBytes[i], $"row {i}: same seed, same pixels, same scores");
    }

    [TestMethod]
    public void PixelsAtTheTargetSizeEqualExtractPixelsAndResizedOnesAreClose()
    {
        var ml = new MLContext(seed: 1);
        var rows = ml.Data.LoadFromEnumerable(Rows(new[] { _trainFiles[0], _trainFiles[1] }));   // 40 px and 32 px
        var extracted = ml.Transforms.LoadImages("Image", _folder, "Path")
            .Append(ml.Transforms.ResizeImages("Small", 32, 32, "Image"))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Small"))
            .Fit(rows).Transform(rows);
        var reference = extracted.GetColumn<float[]>("Pixels").ToArray();
        var ours = new float[2][];
        for (int i = 0; i < 2; i++)
        {
            using var image = MLImage.CreateFromFile(Path.Combine(_folder, _trainFiles[i]));
            ImagePixels.ToChw(image, 3, 32, 32, ours[i] = new float[3 * 32 * 32]);
        }
        CollectionAssert.AreEqual(reference[1], ours[1], "an image already 32 x 32 is copied exactly, in ExtractPixels' order");
        double meanAbs = reference[0].Zip(ours[0], (a, b) => Math.Abs(a - b)).Average();
        Assert.IsTrue(meanAbs < 12, $"40 → 32 px: mean |ours − ResizeImages| = {meanAbs:F2} (both crop the centre; filters differ)");
    }

    [TestMethod]
    public void MobileNetV1WithUlsamLearns()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Rows(_trainFiles));
        var test = ml.Data.LoadFromEnumerable(Rows(_testFiles));
        var options = Options();
        options.Backbone = ImageBackbone.MobileNetV1;
        options.Attention = ImageAttention.Ulsam;
        options.WidthMultiplier = 0.5;
        options.ImageHeight = options.ImageWidth = 64;
        options.MaxEpochs = 15;
        options.EpochCallback = e => Console.WriteLine(e);
        options.AttentionMapColumnName = "Map";
        var pipeline = ml.Transforms.LoadRawImageBytes("Features", _folder, "Path")
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.ImageClassifier(options));
        using var model = (IDisposable)pipeline.Fit(train);
        var scored = ((ITransformer)model).Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.IsTrue(metrics.MicroAccuracy >= 0.8, $"accuracy {metrics.MicroAccuracy}");
        var map = scored.GetColumn<float[]>("Map").First();
        Assert.AreEqual(64 * 64, map.Length);
        Assert.IsTrue(map.All(v => v >= 0 && float.IsFinite(v)), "ULSAM maps are softmax averages");
    }

    [TestMethod]
    public void GreyImagesFeedAnRgbModelAndColourImagesAGreyOne()
    {
        var ml = new MLContext(seed: 1);
        string grey = Path.Combine(_folder, "grey.jpg");
        var luminance = new byte[32 * 32 * 4];
        for (int k = 0; k < 32 * 32; k++) luminance[4 * k] = luminance[4 * k + 1] = luminance[4 * k + 2] = (byte)(k % 256);
        for (int k = 0; k < 32 * 32; k++) luminance[4 * k + 3] = 255;
        using (var image = MLImage.CreateFromPixels(32, 32, MLPixelFormat.Rgba32, luminance)) image.Save(grey);
        using (var decoded = MLImage.CreateFromFile(grey))
        {
            var rgb = new float[3 * 32 * 32];
            ImagePixels.ToChw(decoded, 3, 32, 32, rgb);
            CollectionAssert.AreEqual(rgb[..1024], rgb[1024..2048], "a grey image gives three equal planes");
        }
        using (var colour = MLImage.CreateFromFile(Path.Combine(_folder, _trainFiles[1])))
        {
            var one = new float[32 * 32];
            var rgb = new float[3 * 32 * 32];
            ImagePixels.ToChw(colour, 1, 32, 32, one);
            ImagePixels.ToChw(colour, 3, 32, 32, rgb);
            Assert.AreEqual(0.3f * rgb[5] + 0.59f * rgb[1024 + 5] + 0.11f * rgb[2048 + 5], one[5], 1e-4f);
        }

        var rows = ml.Data.LoadFromEnumerable(Rows(_trainFiles.Take(16).ToArray()));
        var options = Options();
        options.MaxEpochs = 1;
        options.Channels = 1;
        options.Mean = new[] { 0.5f };
        options.Std = new[] { 0.25f };
        var pipeline = ml.Transforms.LoadRawImageBytes("Features", _folder, "Path")
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.ImageClassifier(options));
        using var model = (IDisposable)pipeline.Fit(rows);
        var scores = ((ITransformer)model).Transform(rows).GetColumn<float[]>("Score").ToArray();
        Assert.IsTrue(scores.All(s => s.Length == 2 && s.All(float.IsFinite)));
    }

    [TestMethod]
    public void UndecodableBytesNameTheColumnAndTheRow()
    {
        var ml = new MLContext(seed: 1);
        File.WriteAllText(Path.Combine(_folder, "broken.png"), "this is not an image");
        var files = _trainFiles.Take(6).Append("broken.png").ToArray();
        var rows = Rows(files);
        rows[^1].Label = "red";
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.LoadRawImageBytes("Features", _folder, "Path")
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.ImageClassifier(Options()));
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => pipeline.Fit(data));
        StringAssert.Contains(error.Message, "Column 'Features'");
        StringAssert.Contains(error.Message, "at row 6");
        StringAssert.Contains(error.Message, "do not decode as an image");
    }

    [TestMethod]
    public void WrongInputTypesAndOptionsSayWhatToUse()
    {
        var ml = new MLContext(seed: 1);
        var rows = ml.Data.LoadFromEnumerable(Rows(_trainFiles.Take(4).ToArray()));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(rows).Transform(rows);
        var options = Options();
        options.FeatureColumnName = "Path";
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.ImageClassifier(options).Fit(keyed)).Message, "LoadRawImageBytes");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.ImageClassifier(Options()).Fit(keyed)).Message, "was not found");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new ImageClassifierOptions { Backbone = ImageBackbone.MobileNetV1, Attention = ImageAttention.ElaL }.Validate()).Message,
            "no official MobileNet V1 placement");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new ImageClassifierOptions { Attention = ImageAttention.None, AttentionMapColumnName = "Map" }.Validate()).Message,
            "needs an attention block");

        // A model trained on bytes refuses decoded images at scoring, naming the loader to use.
        var bytes = ml.Transforms.LoadRawImageBytes("Features", _folder, "Path").Fit(keyed).Transform(keyed);
        var small = Options();
        small.MaxEpochs = 1;
        using var model = ml.MulticlassClassification.Trainers.ImageClassifier(small).Fit(bytes);
        var images = ml.Transforms.LoadImages("Features", _folder, "Path").Fit(keyed).Transform(keyed);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(images)).Message,
            "LoadRawImageBytes");
    }
}
