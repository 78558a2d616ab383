using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNet.Attention.Classification;
using MLNet.Attention.Tests.Bridge;
using MLNet.Attention.WholeSlide;

namespace MLNet.Attention.Tests.WholeSlide;

/// <summary>The ResNet-18 tile featurizer against ML.NET's own DnnFeaturizeImage(ResNet18) on tiles of a real
/// immunohistochemistry image (Fixtures/ihc-512.jpg: skimage's ihc.png, "no known copyright restrictions").</summary>
[TestClass]
public sealed class TileFeaturizerTests
{
    private const int Side = 224, PixelCount = 3 * Side * Side, Width = 512;

    public sealed class PixelRow
    {
        [VectorType(3, Side, Side)] public float[] Pixels { get; set; } = new float[PixelCount];
    }

    public sealed class ImageRow
    {
        [ImageType(Side, Side)] public MLImage? Image { get; set; }
    }

    public sealed class PathRow
    {
        public string Path { get; set; } = "";
    }

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static readonly Lazy<MLImage[]> TileImages = new(() =>
    {
        using var slide = MLImage.CreateFromFile(Fixture("ihc-512.jpg"));
        var source = slide.Pixels.ToArray();
        int stride = source.Length / slide.Height;
        bool bgra = slide.PixelFormat == MLPixelFormat.Bgra32;
        var tiles = new List<MLImage>();
        foreach (int y in new[] { 0, 144, 288 })
            foreach (int x in new[] { 0, 144, 288 })
            {
                var rgba = new byte[Side * Side * 4];
                for (int r = 0; r < Side; r++)
                    for (int c = 0; c < Side; c++)
                    {
                        int s = (y + r) * stride + (x + c) * 4, d = (r * Side + c) * 4;
                        rgba[d] = source[s + (bgra ? 2 : 0)];
                        rgba[d + 1] = source[s + 1];
                        rgba[d + 2] = source[s + (bgra ? 0 : 2)];
                        rgba[d + 3] = 255;
                    }
                tiles.Add(MLImage.CreateFromPixels(Side, Side, MLPixelFormat.Rgba32, rgba));
            }
        return tiles.ToArray();
    });

    // Nine 224 × 224 tiles (a 3 × 3 grid at stride 144) as CHW RGB 0–255, as ExtractPixels writes them.
    private static PixelRow[] Tiles() => TileImages.Value.Select(image =>
    {
        var pixels = image.Pixels;
        var row = new PixelRow();
        for (int i = 0; i < Side * Side; i++)
            for (int c = 0; c < 3; c++) row.Pixels[c * Side * Side + i] = pixels[i * 4 + c];
        return row;
    }).ToArray();

    private static float[][] Column(IDataView view, string name) =>
        view.GetColumn<VBuffer<float>>(name).Select(v => v.DenseValues().ToArray()).ToArray();

    private static double MaxRelativeDiff(float[][] a, float[][] b)
    {
        Assert.AreEqual(a.Length, b.Length);
        double worst = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.AreEqual(a[i].Length, b[i].Length);
            double scale = Math.Max(1e-3, a[i].Max(Math.Abs));
            for (int j = 0; j < a[i].Length; j++) worst = Math.Max(worst, Math.Abs(a[i][j] - b[i][j]) / scale);
        }
        return worst;
    }

    private static float[][] DnnFeatures(MLContext ml, IDataView data, string pixels)
    {
        var dnn = ml.Transforms.DnnFeaturizeImage("Dnn",
            m => m.ModelSelector.ResNet18(ml, m.OutputColumn, m.InputColumn), pixels);
        return Column(dnn.Fit(data).Transform(data), "Dnn");
    }

    [TestMethod]
    public void FeaturesEqualDnnFeaturizeImageForTilesAndAResizedImage()
    {
        var ml = new MLContext(1);
        var tiles = ml.Data.LoadFromEnumerable(Tiles());
        var expected = DnnFeatures(ml, tiles, "Pixels");
        using var featurizer = ml.Transforms.ResNet18TileFeaturizer(intraOpNumThreads: 2).Fit(tiles);
        Assert.AreEqual(ImageInputKind.PixelVector, featurizer.InputKind);
        Assert.AreEqual("CPU", featurizer.ExecutionProvider);
        var scored = featurizer.Transform(tiles);
        var type = (VectorDataViewType)scored.Schema["Features"].Type;
        Assert.AreEqual(Width, type.Size);
        var actual = Column(scored, "Features");
        Assert.AreEqual(9, actual.Length);
        double diff = MaxRelativeDiff(expected, actual);
        Console.WriteLine($"tiles: max |Δ| / max |feature| = {diff:E2}");
        Assert.IsTrue(diff <= 1e-4, $"max relative difference {diff}");
        Assert.IsTrue(actual.All(f => f.Any(v => v != 0)), "every tile has non-zero features");
        Assert.IsTrue(MaxRelativeDiff(new[] { actual[0] }, new[] { actual[8] }) > 0.05,
            "different tiles, different features");

        // The whole 512 × 512 image through ML.NET's LoadImages → ResizeImages(224, 224) → ExtractPixels.
        var paths = ml.Data.LoadFromEnumerable(new[] { new PathRow { Path = Fixture("ihc-512.jpg") } });
        var pixels = ml.Transforms.LoadImages("Loaded", null, "Path")
            .Append(ml.Transforms.ResizeImages("Resized", Side, Side, "Loaded"))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Resized"))
            .Fit(paths).Transform(paths);
        using var again = ml.Transforms.ResNet18TileFeaturizer().Fit(pixels);
        double whole = MaxRelativeDiff(DnnFeatures(ml, pixels, "Pixels"), Column(again.Transform(pixels), "Features"));
        Console.WriteLine($"resized image: max |Δ| / max |feature| = {whole:E2}");
        Assert.IsTrue(whole <= 1e-4, $"max relative difference {whole}");
    }

    [TestMethod]
    public void OutputsDoNotDependOnTheBatchSize()
    {
        var ml = new MLContext(1);
        var tiles = ml.Data.LoadFromEnumerable(Tiles());
        float[][] Run(int batch)
        {
            using var f = ml.Transforms.ResNet18TileFeaturizer(batchSize: batch, intraOpNumThreads: 2).Fit(tiles);
            Assert.AreEqual(batch, f.BatchSize);
            return Column(f.Transform(tiles), "Features");
        }
        var one = Run(1);
        double d7 = MaxRelativeDiff(one, Run(7)), d32 = MaxRelativeDiff(one, Run(32));
        Console.WriteLine($"batch 1 vs 7: {d7:E2}, vs 32: {d32:E2}");
        Assert.IsTrue(d7 <= 1e-5 && d32 <= 1e-5, $"batch 7: {d7}, batch 32: {d32}");
    }

    [TestMethod]
    public void ImageColumnEncodedBytesAndPixelVectorsGiveTheSameFeatures()
    {
        var ml = new MLContext(1);
        var pixels = ml.Data.LoadFromEnumerable(Tiles());
        var images = ml.Data.LoadFromEnumerable(TileImages.Value.Select(i => new ImageRow { Image = i }).ToArray());
        using var fromPixels = ml.Transforms.ResNet18TileFeaturizer(batchSize: 4).Fit(pixels);
        using var fromImages = ml.Transforms.ResNet18TileFeaturizer(inputColumnName: "Image", batchSize: 4).Fit(images);
        Assert.AreEqual(ImageInputKind.Image, fromImages.InputKind);
        var expected = Column(fromPixels.Transform(pixels), "Features");
        Assert.AreEqual(0, MaxRelativeDiff(expected, Column(fromImages.Transform(images), "Features")));

        // An Image of another size is resized inside (IsoCrop, antialiased): close to ML.NET's ResizeImages.
        var paths = ml.Data.LoadFromEnumerable(new[] { new PathRow { Path = Fixture("ihc-512.jpg") } });
        var loaded = ml.Transforms.LoadImages("Image", null, "Path").Fit(paths).Transform(paths);
        var viaMl = ml.Transforms.ResizeImages("Resized", Side, Side, "Image")
            .Append(ml.Transforms.ExtractPixels("Pixels", "Resized"))
            .Fit(loaded).Transform(loaded);
        using var f1 = ml.Transforms.ResNet18TileFeaturizer(inputColumnName: "Image").Fit(loaded);
        using var f2 = ml.Transforms.ResNet18TileFeaturizer().Fit(viaMl);
        var a = Column(f1.Transform(loaded), "Features")[0];
        var b = Column(f2.Transform(viaMl), "Features")[0];
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < Width; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        double cosine = dot / Math.Sqrt(na * nb);
        Console.WriteLine($"512 × 512 image resized inside vs ResizeImages: cosine {cosine:F5}");
        Assert.IsTrue(cosine > 0.98, $"cosine {cosine}");

        // Encoded bytes are decoded as LoadImages decodes them.
        var raw = ml.Transforms.LoadRawImageBytes("Bytes", null, "Path").Fit(paths).Transform(paths);
        using var f3 = ml.Transforms.ResNet18TileFeaturizer(inputColumnName: "Bytes").Fit(raw);
        Assert.AreEqual(ImageInputKind.EncodedBytes, f3.InputKind);
        Assert.AreEqual(0, MaxRelativeDiff(new[] { a }, Column(f3.Transform(raw), "Features")));
    }

    [TestMethod]
    public void SaveLoadRoundTripAndPredictionEngine()
    {
        var ml = new MLContext(1);
        var tiles = ml.Data.LoadFromEnumerable(Tiles());
        string path = Path.Combine(Path.GetTempPath(), $"resnet18-tiles-{Guid.NewGuid():N}.zip");
        try
        {
            float[][] expected;
            using (var featurizer = ml.Transforms.ResNet18TileFeaturizer(batchSize: 5, intraOpNumThreads: 2).Fit(tiles))
            {
                expected = Column(featurizer.Transform(tiles), "Features");
                ml.Model.Save(featurizer, tiles.Schema, path);
            }
            Assert.IsTrue(new FileInfo(path).Length < 100_000, "the weights are not embedded");
            using var loaded = (ResNet18TileFeaturizerTransformer)new MLContext().Model.Load(path, out var schema);
            Assert.AreEqual(5, loaded.BatchSize);
            Assert.AreEqual(2, loaded.IntraOpNumThreads);
            Assert.AreEqual(0, MaxRelativeDiff(expected, Column(loaded.Transform(tiles), "Features")));

            using var engine = ml.Model.CreatePredictionEngine<PixelRow, FeatureRow>(loaded);
            var single = engine.Predict(Tiles()[4]).Features;
            Assert.IsTrue(MaxRelativeDiff(new[] { expected[4] }, new[] { single }) <= 1e-5);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void FeaturizeOnSpansEqualsTransformAndChecksItsBuffers()
    {
        var ml = new MLContext(1);
        var rows = Tiles();
        var tiles = ml.Data.LoadFromEnumerable(rows);
        using var featurizer = ml.Transforms.ResNet18TileFeaturizer(batchSize: 4).Fit(tiles);
        var expected = Column(featurizer.Transform(tiles), "Features");
        var pixels = rows.SelectMany(r => r.Pixels).ToArray();
        var features = new float[rows.Length * Width];
        featurizer.Featurize(pixels, rows.Length, features);
        var actual = Enumerable.Range(0, rows.Length)
            .Select(i => features.AsSpan(i * Width, Width).ToArray()).ToArray();
        Assert.IsTrue(MaxRelativeDiff(expected, actual) <= 1e-5);
        var e = Assert.ThrowsExactly<ArgumentException>(() => featurizer.Featurize(pixels, rows.Length + 1, features));
        StringAssert.Contains(e.Message, "3 × 224 × 224");
    }

    [TestMethod]
    public void TheRewrittenGraphHasASymbolicBatchAndOptionalPooledStages()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");
        var stages = new[] { "ReLU283_Output_0", "ReLU315_Output_0", "ReLU347_Output_0" };
        var bytes = ResNet18OnnxGraph.BatchableBytes(path, stages);
        Assert.AreSame(bytes, ResNet18OnnxGraph.BatchableBytes(path, stages), "cached per file and outputs");
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(bytes);
        Assert.AreEqual(-1, session.InputMetadata[ResNet18OnnxGraph.ResNetInput].Dimensions[0]);
        CollectionAssert.AreEquivalent(
            stages.Select(s => s + "_pooled").Append(ResNet18OnnxGraph.ResNetOutput).ToArray(),
            session.OutputMetadata.Keys.ToArray());

        var reshape = new Onnx.ModelProto { Graph = new Onnx.GraphProto() };
        reshape.Graph.Node.Add(new Onnx.NodeProto { OpType = "Reshape", Name = "r" });
        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            ResNet18OnnxGraph.MakeBatchable(Google.Protobuf.MessageExtensions.ToByteArray(reshape), "tiny.onnx"));
        StringAssert.Contains(e.Message, "'r' (Reshape) bakes a shape");
    }

    [TestMethod]
    public void TheFeaturizerUsesNoMLNetInternalsNorReflection()
    {
        // The isolation rule of Bridge/InternalsIsolationTests (only src/Core/Interop may), for this featurizer's
        // types.
        var findings = InteropScanner.Scan(typeof(ResNet18TileFeaturizerTransformer).Assembly);
        var mine = findings.Internals.Concat(findings.Reflection).Where(f => f.Contains("ResNet18")).ToList();
        Assert.AreEqual(0, mine.Count, string.Join("\n", mine));
    }

    public sealed class FeatureRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    public sealed class SmallRow
    {
        [VectorType(3, 32, 32)] public float[] Pixels { get; set; } = new float[3 * 32 * 32];
    }

    public sealed class HwcRow
    {
        [VectorType(Side, Side, 3)] public float[] Pixels { get; set; } = new float[PixelCount];
    }

    public sealed class TextRow
    {
        public string Pixels { get; set; } = "x";
    }

    [TestMethod]
    public void BadInputsSayWhatIsWrongAndTheFix()
    {
        var ml = new MLContext(1);
        var small = ml.Data.LoadFromEnumerable(new[] { new SmallRow() });
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.ResNet18TileFeaturizer().Fit(small));
        StringAssert.Contains(e.Message, "'Pixels'");
        StringAssert.Contains(e.Message, "3072");
        StringAssert.Contains(e.Message, "ResizeImages(224, 224)");

        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.ResNet18TileFeaturizer(inputColumnName: "Tile").Fit(small));
        StringAssert.Contains(e.Message, "'Tile' was not found");
        StringAssert.Contains(e.Message, "LoadImages");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.ResNet18TileFeaturizer(inputColumnName: "Tile")
                .GetOutputSchema(BridgeTestHelpers.ShapeOf(small.Schema)));
        StringAssert.Contains(e.Message, "'Tile' was not found");

        var hwc = ml.Data.LoadFromEnumerable(new[] { new HwcRow() });
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.ResNet18TileFeaturizer().Fit(hwc));
        StringAssert.Contains(e.Message, "interleaved HWC");

        var text = ml.Data.LoadFromEnumerable(new[] { new TextRow() });
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.ResNet18TileFeaturizer().Fit(text));
        StringAssert.Contains(e.Message, "'Pixels' has type");

        // The estimator's schema propagation, and a fitted featurizer given the wrong column later.
        var tiles = ml.Data.LoadFromEnumerable(Tiles().Take(1));
        var shape = ml.Transforms.ResNet18TileFeaturizer().GetOutputSchema(BridgeTestHelpers.ShapeOf(tiles.Schema));
        var features = shape.Single(c => c.Name == "Features");
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, features.Kind);
        using var fitted = ml.Transforms.ResNet18TileFeaturizer().Fit(tiles);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => fitted.Transform(small));
        StringAssert.Contains(e.Message, "'Pixels'");
        StringAssert.Contains(e.Message, "3072");

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.ResNet18TileFeaturizer(batchSize: 0));
        var gpu = new ResNet18TileFeaturizerOptions { GpuDeviceId = 0, FallbackToCpu = false };
        var g = Assert.ThrowsExactly<InvalidOperationException>(() =>
            ml.Transforms.ResNet18TileFeaturizer(gpu).Fit(tiles));
        StringAssert.Contains(g.Message, "CUDA execution provider");
        gpu.FallbackToCpu = true;
        using var onCpu = ml.Transforms.ResNet18TileFeaturizer(gpu).Fit(tiles);
        Assert.AreEqual("CPU", onCpu.ExecutionProvider);

        var missing = new ResNet18TileFeaturizerOptions
        {
            ModelDirectory = Path.Combine(Path.GetTempPath(), "no-models-here"),
        };
        var m = Assert.ThrowsExactly<FileNotFoundException>(() =>
            ml.Transforms.ResNet18TileFeaturizer(missing).Fit(tiles));
        StringAssert.Contains(m.Message, "Microsoft.ML.DnnImageFeaturizer.ResNet18");

        fitted.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => fitted.Transform(tiles));
    }
}
