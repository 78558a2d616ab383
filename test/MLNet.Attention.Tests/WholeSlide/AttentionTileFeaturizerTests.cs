using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Classification;
using MLNet.Attention.MultipleInstance;
using MLNet.Attention.Transforms;
using MLNet.Attention.WholeSlide;

namespace MLNet.Attention.Tests.WholeSlide;

/// <summary>The ELA / ULSAM backbones of the classification work as tile featurizers: the tiles of
/// <c>LoadSlideTiles</c> (its <c>Image</c> column, no LoadImages / ResizeImages) straight into
/// <c>AttentionImageFeaturizer</c>, then into MIL bags (GroupIntoBags) and a CLAM .h5 (FeatureFileWriter).</summary>
[TestClass]
public sealed class AttentionTileFeaturizerTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    // The fixture slide at 10× (a 512² image): 128-px tiles (resized to 64 inside the featurizer) or 64-px tiles.
    private static SlideTileDataView Tiles(MLContext ml, int tileSize, bool pixels = false) =>
        ml.Data.LoadSlideTiles([SlideFixtures.Pyramid()], new TilingOptions
        {
            TileSize = tileSize, Magnification = 10, Tissue = TissueAndTilingTests.SmallSlide, IncludePixels = pixels,
        });

    // The ELA-B MobileNetV2 (width 0.25) PyTorch checkpoint of the .pth import tests, reading the tile images.
    private static AttentionImageFeaturizerOptions Ela(int batchSize) => new()
    {
        CheckpointPath = Fixture("mbv2-elab-w025-cifar.pth"),
        Backbone = ImageBackbone.MobileNetV2, Attention = ImageAttention.ElaB, WidthMultiplier = 0.25, CifarStem = true,
        InputColumnName = SlideTileDataView.ImageColumn, ImageHeight = 64, ImageWidth = 64, BatchSize = batchSize,
    };

    private static float[][] Column(IDataView view, string name = "Features") =>
        view.GetColumn<VBuffer<float>>(name).Select(v => v.DenseValues().ToArray()).ToArray();

    private static double MaxRelativeDiff(float[][] a, float[][] b)
    {
        Assert.HasCount(a.Length, b);
        double worst = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.HasCount(a[i].Length, b[i]);
            double scale = Math.Max(1e-3, a[i].Max(Math.Abs));
            for (int j = 0; j < a[i].Length; j++) worst = Math.Max(worst, Math.Abs(a[i][j] - b[i][j]) / scale);
        }
        return worst;
    }

    private static void AssertUsableFeatures(float[][] features, int tiles, int width)
    {
        Assert.HasCount(tiles, features);
        Assert.IsTrue(features.All(f => f.Length == width), $"every tile has {width} features");
        Assert.IsTrue(features.All(f => f.All(float.IsFinite)), "finite features");
        Assert.IsTrue(features.All(f => f.Any(v => v != 0)), "no all-zero tile");
        Assert.IsTrue(MaxRelativeDiff([features[0]], [features[^1]]) > 1e-3, "different tiles, different features");
    }

    private static int TileCount(int tileSize)
    {
        using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid());
        return SlideTiler.CreateGrid(slide, new TilingOptions
        {
            TileSize = tileSize, Magnification = 10, Tissue = TissueAndTilingTests.SmallSlide,
        }).Count;
    }

    [TestMethod]
    public void ElaCheckpointFeaturizesTheSlideTilesDeterministicallyAndInBatchesAsOneAtATime()
    {
        var ml = new MLContext(seed: 1);
        var tiles = Tiles(ml, 128);
        int count = TileCount(128);
        Assert.IsGreaterThan(3, count, "the fixture has tissue tiles at 10×");

        using var featurizer = ml.Transforms.AttentionImageFeaturizer(Ela(batchSize: 5)).Fit(tiles);
        Assert.AreEqual(ImageInputKind.Image, featurizer.InputKind);
        var scored = featurizer.Transform(tiles);
        Assert.AreEqual(1280, ((VectorDataViewType)scored.Schema["Features"].Type).Size);
        var features = Column(scored);
        AssertUsableFeatures(features, count, featurizer.FeatureWidth);

        // The tile columns pass through next to the features, in tile order.
        var x = scored.GetColumn<long>(SlideTileDataView.TileXColumn).ToArray();
        Assert.HasCount(count, x);

        Assert.AreEqual(0, MaxRelativeDiff(features, Column(featurizer.Transform(tiles))), "same features again");
        using var one = ml.Transforms.AttentionImageFeaturizer(Ela(batchSize: 1)).Fit(tiles);
        double batched = MaxRelativeDiff(features, Column(one.Transform(tiles)));
        Console.WriteLine($"{count} tiles, ELA-B features; batch 5 vs 1: max |Δ| / max |f| = {batched:E2}");
        Assert.IsTrue(batched <= 1e-5, $"batch 5 vs batch 1: {batched}");
    }

    [TestMethod]
    public void TheImageColumnAndThePixelsColumnOfTheTileViewGiveTheSameFeatures()
    {
        // 64-px tiles: the featurizer reads the Image column at its own size, so both columns are the same pixels.
        var ml = new MLContext(seed: 1);
        var tiles = Tiles(ml, 64, pixels: true);
        var fromPixels = Ela(batchSize: 8);
        fromPixels.InputColumnName = SlideTileDataView.PixelsColumn;
        using var a = ml.Transforms.AttentionImageFeaturizer(Ela(batchSize: 8)).Fit(tiles);
        using var b = ml.Transforms.AttentionImageFeaturizer(fromPixels).Fit(tiles);
        Assert.AreEqual(ImageInputKind.PixelVector, b.InputKind);
        var expected = Column(a.Transform(tiles));
        AssertUsableFeatures(expected, TileCount(64), 1280);
        Assert.AreEqual(0, MaxRelativeDiff(expected, Column(b.Transform(tiles))));
    }

    [TestMethod]
    public void UlsamBackboneOfAClassifierTrainedOnTilesFeaturizesTilesIntoBagsAndAFeatureFile()
    {
        var ml = new MLContext(seed: 1);
        var tiles = Tiles(ml, 64, pixels: true);
        // Train a ULSAM MobileNetV2 on the tiles' pixels (label: brighter than the median tile), one short epoch: the
        // backbone of a classifier trained on labelled tiles is what an ELA/ULSAM tile featurizer is made from.
        var pixels = Column(tiles, SlideTileDataView.PixelsColumn);
        double median = pixels.Select(p => p.Average()).OrderBy(v => v).ElementAt(pixels.Length / 2);
        var train = ml.Data.LoadFromEnumerable(pixels.Select(p => new TileRow
        {
            Pixels = p, Label = p.Average() > median ? "bright" : "dark",
        }).ToArray());
        using var classifier = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.ImageClassifier(new ImageClassifierOptions
            {
                FeatureColumnName = "Pixels", ImageHeight = 64, ImageWidth = 64, Backbone = ImageBackbone.MobileNetV2,
                Attention = ImageAttention.Ulsam, WidthMultiplier = 0.25, MaxEpochs = 1, BatchSize = 16,
                NumberOfThreads = 1, Seed = 3, ValidationFraction = 0, EarlyStoppingPatience = null,
                BatchNormRecalibrationBatches = 2,
            }))
            .Fit(train);
        var model = classifier.LastTransformer;
        Assert.AreEqual(ImageAttention.Ulsam, model.Config.Attention);

        // Fitted on the tile view, the classifier's featurizer reads the Image column directly.
        using var featurizer = ml.Transforms.AttentionImageFeaturizer(model, outputColumnName: "Features",
            inputColumnName: SlideTileDataView.ImageColumn, batchSize: 6).Fit(tiles);
        Assert.AreEqual(ImageInputKind.Image, featurizer.InputKind);
        var features = Column(featurizer.Transform(tiles));
        AssertUsableFeatures(features, pixels.Length, featurizer.FeatureWidth);
        using var one = ml.Transforms.AttentionImageFeaturizer(model, inputColumnName: SlideTileDataView.ImageColumn,
            batchSize: 1).Fit(tiles);
        double batched = MaxRelativeDiff(features, Column(one.Transform(tiles)));
        Console.WriteLine(
            $"{features.Length} tiles, ULSAM features ({featurizer.FeatureWidth}); batch 6 vs 1: {batched:E2}");
        Assert.IsTrue(batched <= 1e-5, $"batch 6 vs batch 1: {batched}");
        Assert.AreEqual(0, MaxRelativeDiff(features, Column(featurizer.Transform(tiles))), "same features again");

        // The slide as one MIL bag: tiles → features → GroupIntoBags by SlideId, with the tile coordinates.
        var bags = ml.Transforms.GroupIntoBags(new GroupIntoBagsOptions
        {
            BagIdColumnName = SlideTileDataView.SlideIdColumn, FeatureColumnNames = ["Features"],
            CoordinateColumnNames = [SlideTileDataView.TileXColumn, SlideTileDataView.TileYColumn],
        });
        var featured = featurizer.Transform(tiles);
        var bag = bags.Fit(featured).Transform(featured);
        var bagFeatures = Column(bag).Single();
        Assert.AreEqual(features.Length, bag.GetColumn<int>("InstanceCount").Single());
        Assert.AreEqual(0, MaxRelativeDiff([features.SelectMany(f => f).ToArray()], [bagFeatures]));

        // … or written to a CLAM-layout .h5 that LoadFeatureBags reads back.
        string dir = SlideFixtures.TempDir();
        try
        {
            string h5 = Path.Combine(dir, "ihc.h5");
            using (var writer = new FeatureFileWriter(h5, featurizer.FeatureWidth))
            {
                var coords = bag.GetColumn<long[]>("Coordinates").Single();
                for (int i = 0; i < features.Length; i++) writer.Append(features[i], coords.AsSpan(2 * i, 2));
                writer.Complete();
            }
            var read = FeatureFile.Read(h5);
            Assert.AreEqual(features.Length, read.InstanceCount);
            CollectionAssert.AreEqual(bagFeatures, read.Features);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void AWrongTileColumnNamesTheColumnAndTheFix()
    {
        var ml = new MLContext(seed: 1);
        var tiles = Tiles(ml, 128);

        // The featurizer's default column, Pixels, is not in a tile view without IncludePixels: say to use Image.
        var options = Ela(batchSize: 4);
        options.InputColumnName = "Pixels";
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.AttentionImageFeaturizer(options).Fit(tiles));
        StringAssert.Contains(e.Message, "'Pixels' was not found");
        StringAssert.Contains(e.Message, "'Image'");

        // A column of the wrong type names the column and what it should hold.
        options.InputColumnName = SlideTileDataView.TileXColumn;
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.AttentionImageFeaturizer(options).Fit(tiles));
        StringAssert.Contains(e.Message, "'TileX' has type Int64");
        StringAssert.Contains(e.Message, "an Image");

        // The Pixels column of 128-px tiles for a 64-px featurizer: resize, or pass the Image column.
        var withPixels = Tiles(ml, 128, pixels: true);
        options.InputColumnName = SlideTileDataView.PixelsColumn;
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.AttentionImageFeaturizer(options).Fit(withPixels));
        StringAssert.Contains(e.Message, "'Pixels'");
        StringAssert.Contains(e.Message, "49152");
        StringAssert.Contains(e.Message, "Image column");
    }

    private sealed class TileRow
    {
        [VectorType(3 * 64 * 64)] public float[] Pixels { get; set; } = [];
        public string Label { get; set; } = "";
    }
}
