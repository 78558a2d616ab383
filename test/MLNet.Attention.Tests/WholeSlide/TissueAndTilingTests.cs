using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.WholeSlide;
using NetVips;

namespace MLNet.Attention.Tests.WholeSlide;

[TestClass]
public sealed class TissueAndTilingTests
{
    /// <summary>CLAM's settings with areas sized for a 1024² fixture (CLAM's a_t 100 × 512² is 26 M level-0 px).
    /// </summary>
    internal static readonly TissueDetectionOptions SmallSlide = new() { MinTissueArea = 0.5, MaxHoleArea = 0.05 };

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void TissueIsFoundOnTheIhcStainWithASaneFraction()
    {
        using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid());
        var sw = Stopwatch.StartNew();
        var mask = TissueDetector.Detect(slide, SmallSlide);
        sw.Stop();
        TestContext.WriteLine($"tissue detection {sw.Elapsed.TotalMilliseconds:F1} ms, "
            + $"mask {mask.Width}×{mask.Height}, "
            + $"fraction {mask.TissueFractionOfSlide:F3}, regions {mask.Regions.Count}, threshold {mask.Threshold}");
        Assert.AreEqual(512, mask.Width);
        Assert.IsGreaterThan(0.3, mask.TissueFractionOfSlide);
        Assert.IsLessThanOrEqualTo(1.0, mask.TissueFractionOfSlide);
        Assert.IsNotEmpty(mask.Regions);
        Assert.AreEqual(1.0, mask.TissueFraction(0, 0, slide.Width, slide.Height) / mask.TissueFractionOfSlide, 1e-9);
        var otsu = TissueDetector.Detect(slide, SmallSlide with { UseOtsu = true });
        Assert.IsGreaterThan(8, otsu.Threshold);
        Assert.IsGreaterThan(0.1, otsu.TissueFractionOfSlide);
    }

    [TestMethod]
    public void CLAMDefaultAreasRejectASmallSlideAndSaySo()
    {
        using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid());
        var e = Assert.ThrowsExactly<NoTissueFoundException>(() => TissueDetector.Detect(slide));
        StringAssert.Contains(e.Message, "MinTissueArea 100");
    }

    [TestMethod]
    public void AllWhiteImageThrowsNoTissueWithTheThresholds()
    {
        var dir = SlideFixtures.TempDir();
        try
        {
            var path = Path.Combine(dir, "white.png");
            using (var black = Image.Black(512, 512, bands: 3))
            using (var white = black + 255)
            using (var u8 = white.Cast(Enums.BandFormat.Uchar))
                u8.Pngsave(path);
            using var slide = WholeSlideImage.Open(path);
            var e = Assert.ThrowsExactly<NoTissueFoundException>(() => TissueDetector.Detect(slide, SmallSlide));
            StringAssert.Contains(e.Message, "white.png");
            StringAssert.Contains(e.Message, "SaturationThreshold 8");
            StringAssert.Contains(e.Message, "0 pixel(s) above the threshold");
            StringAssert.Contains(e.Message, "UseOtsu");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void MedianBlurMatchesABruteForceMedian()
    {
        var rng = new Random(3);
        int w = 23, h = 17, k = 5;
        var src = new byte[w * h];
        rng.NextBytes(src);
        var fast = TissueDetector.MedianBlur(src, w, h, k);
        for (var y = 0; y < h; y++)
            for (var x = 0; x < w; x++)
            {
                var window = new List<byte>();
                for (var dy = -2; dy <= 2; dy++)
                    for (var dx = -2; dx <= 2; dx++)
                        window.Add(src[Math.Clamp(y + dy, 0, h - 1) * w + Math.Clamp(x + dx, 0, w - 1)]);
                window.Sort();
                Assert.AreEqual(window[12], fast[y * w + x], $"({x}, {y})");
            }
    }

    [TestMethod]
    public void TileLargerThanTheSlideThrows()
    {
        using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid());
        var e = Assert.ThrowsExactly<ArgumentException>(() =>
            SlideTiler.CreateGrid(slide, new TilingOptions { TileSize = 2048, Tissue = null }));
        StringAssert.Contains(e.Message, "1024×1024");
        StringAssert.Contains(e.Message, "smaller TileSize");
        Assert.ThrowsExactly<ArgumentException>(() =>
            SlideTiler.CreateGrid(slide, new TilingOptions { Magnification = 40, Tissue = null }));
    }

    [TestMethod]
    [DataRow(20.0, 0, 256)]
    [DataRow(10.0, 1, 256)]
    [DataRow(8.0, 1, 320)]
    [DataRow(5.0, 2, 256)]
    public void GridPicksTheBestLevelAndKeepsLevelZeroCoordinates(double magnification, int level, int readSize)
    {
        using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid());
        var grid = SlideTiler.CreateGrid(slide, new TilingOptions { Magnification = magnification, Tissue = null });
        Assert.AreEqual(level, grid.ReadLevel);
        Assert.AreEqual(readSize, grid.ReadSize);
        var tile0 = (long)Math.Round(256 * 20 / magnification);
        Assert.AreEqual(tile0, grid.TileSizeLevel0);
        Assert.AreEqual((int)(1024 / tile0) * (int)(1024 / tile0), grid.Count);
        Assert.AreEqual(magnification, grid.TargetMagnification!.Value, 1e-9);
        var tile = SlideTiler.ReadTile(slide, grid, grid.Coordinates[0], grid.Coordinates[1]);
        Assert.AreEqual(256 * 256 * 4, tile.Length);
    }

    [TestMethod]
    public void TileViewStreamsEveryTileOnTheGridWithImagesEqualToReadRegion()
    {
        var path = SlideFixtures.Pyramid();
        var options = new TilingOptions
        {
            Step = 128, Tissue = SmallSlide, MinTissueFraction = 0.5, IncludePixels = true,
        };
        var ml = new MLContext(seed: 1);
        var reports = new List<TilingProgress>();
        var view = ml.Data.LoadSlideTiles([path], options, new SyncProgress(reports.Add));
        using var slide = WholeSlideImage.Open(path);
        var grid = SlideTiler.CreateGrid(slide, options);
        Assert.IsGreaterThan(10, grid.Count);
        var rows = 0;
        var sw = Stopwatch.StartNew();
        using (var cursor = view.GetRowCursor(view.Schema))
        {
            var id = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["SlideId"]);
            var gx = cursor.GetGetter<long>(view.Schema["TileX"]);
            var gy = cursor.GetGetter<long>(view.Schema["TileY"]);
            var gi = cursor.GetGetter<MLImage>(view.Schema["Image"]);
            var gp = cursor.GetGetter<VBuffer<float>>(view.Schema["Pixels"]);
            ReadOnlyMemory<char> slideId = default;
            long x = 0, y = 0;
            MLImage image = null!;
            VBuffer<float> pixels = default;
            while (cursor.MoveNext())
            {
                id(ref slideId);
                gx(ref x);
                gy(ref y);
                gi(ref image);
                gp(ref pixels);
                Assert.AreEqual("ihc-aperio-20x", slideId.ToString());
                Assert.AreEqual(grid.Coordinates[2 * rows], x);
                Assert.AreEqual(grid.Coordinates[2 * rows + 1], y);
                Assert.AreEqual(0L, x % 128);
                Assert.AreEqual(0L, y % 128);
                Assert.IsTrue(x >= 0 && x + 256 <= 1024 && y >= 0 && y + 256 <= 1024, $"({x}, {y}) out of bounds");
                Assert.AreEqual(256, image.Width);
                Assert.AreEqual(256, image.Height);
                var expected = slide.ReadRegion(x, y, 0, 256, 256);
                CollectionAssert.AreEqual(expected, image.Pixels.ToArray(), $"tile ({x}, {y})");
                Assert.AreEqual(3 * 256 * 256, pixels.Length);
                var dense = pixels.GetValues();
                Assert.AreEqual(expected[4 * 1000 + 1], dense[256 * 256 + 1000]); // G plane, pixel 1000
                rows++;
            }
        }
        sw.Stop();
        Assert.AreEqual(grid.Count, rows);
        Assert.AreEqual(grid.Count, reports[^1].TilesDone);
        Assert.AreEqual(grid.Count, reports[^1].TilesTotal);
        TestContext.WriteLine($"{rows} tiles with ReadRegion checks in {sw.Elapsed.TotalMilliseconds:F0} ms");
    }

    [TestMethod]
    public void ResizeAndExtractPixelsRunOnTheTileViewWithoutLoadImages()
    {
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadSlideTiles([SlideFixtures.Pyramid()],
            new TilingOptions { Magnification = 10, Tissue = null });
        var pipeline = ml.Transforms.ResizeImages("Small", 32, 32, "Image")
            .Append(ml.Transforms.ExtractPixels("Features", "Small"));
        var transformed = pipeline.Fit(view).Transform(view);
        var features = transformed.GetColumn<float[]>("Features").ToArray();
        Assert.HasCount(4, features); // 512-px level-0 tiles of a 1024² slide
        Assert.AreEqual(3 * 32 * 32, features[0].Length);
        Assert.IsTrue(features[0].Any(v => v > 0));
    }

    [TestMethod]
    public void MeasureTilesPerSecondAt20x256()
    {
        var path = SlideFixtures.Pyramid();
        var ml = new MLContext(seed: 1);
        var options = new TilingOptions { Tissue = null, Step = 64 };
        var view = ml.Data.LoadSlideTiles([path], options);
        var sw = Stopwatch.StartNew();
        var rows = 0;
        using (var cursor = view.GetRowCursor(view.Schema))
        {
            var gi = cursor.GetGetter<MLImage>(view.Schema["Image"]);
            MLImage image = null!;
            while (cursor.MoveNext())
            {
                gi(ref image);
                rows++;
            }
        }
        sw.Stop();
        TestContext.WriteLine($"{rows} tiles (256², 20×, step 64) read + emitted as MLImage in "
            + $"{sw.Elapsed.TotalMilliseconds:F0} ms: {rows / sw.Elapsed.TotalSeconds:F0} tiles/s "
            + $"(backend {(WholeSlideImage.IsOpenSlideAvailable ? "OpenSlide" : "NetVips")})");
        Assert.AreEqual(13 * 13, rows);
    }

    private sealed class SyncProgress(Action<TilingProgress> report) : IProgress<TilingProgress>
    {
        public void Report(TilingProgress value) => report(value);
    }
}
