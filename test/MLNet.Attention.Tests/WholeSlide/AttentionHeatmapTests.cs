using System.Diagnostics;
using System.Text.Json;
using MLNet.Attention.WholeSlide;
using NetVips;

namespace MLNet.Attention.Tests.WholeSlide;

[TestClass]
public sealed class AttentionHeatmapTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void PngOverlayHasTheThumbnailPlusLegendSizeAndIsRedWhereAttentionIsHigh()
    {
        var dir = SlideFixtures.TempDir();
        try
        {
            using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid());
            var grid = SlideTiler.CreateGrid(slide, new TilingOptions { Tissue = null });
            var attention = new float[grid.Count]; // 16 tiles: the first (top-left) high, the rest low
            for (var i = 0; i < attention.Length; i++) attention[i] = i == 0 ? 3f : -1f + 0.01f * i;
            var path = Path.Combine(dir, "heat.png");
            var sw = Stopwatch.StartNew();
            var raster = AttentionHeatmap.WritePng(slide, attention, grid.Coordinates, grid.TileSizeLevel0, path,
                new HeatmapOptions { ThumbnailMaxSize = 256, Alpha = 0.8 });
            TestContext.WriteLine($"fixture heatmap {sw.Elapsed.TotalMilliseconds:F1} ms");
            using var png = Image.NewFromFile(path);
            Assert.AreEqual(256 + 64, png.Width);
            Assert.AreEqual(256, png.Height);
            Assert.AreEqual(raster.Width, png.Width);
            var hot = (double[])png.Getpoint(32, 32);
            var cold = (double[])png.Getpoint(224, 224);
            Assert.IsGreaterThan(hot[2] + 80, hot[0], $"top-left tile should be red: {string.Join(",", hot)}");
            Assert.IsGreaterThan(cold[0] + 40, cold[2], $"bottom-right tile should be blue: {string.Join(",", cold)}");
            // The legend: white panel, a red top and a blue bottom of the colour bar, black label pixels.
            var barTop = (double[])png.Getpoint(256 + 24, 20);
            var barBottom = (double[])png.Getpoint(256 + 24, 230);
            Assert.IsGreaterThan(barTop[2] + 80, barTop[0], string.Join(",", barTop)); // jet's dark red
            Assert.IsGreaterThan(barBottom[0] + 80, barBottom[2], string.Join(",", barBottom)); // dark blue
            using var legendLabels = png.Crop(256, 0, 64, 12);
            Assert.AreEqual(0.0, legendLabels.Min(), "the max label is drawn in black");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void PercentileNormalisationRanksScores()
    {
        var n = AttentionHeatmap.Normalize([5f, 1f, 1f, 100f], HeatmapNormalization.Percentile, out _, out _);
        CollectionAssert.AreEqual(new[] { 2f / 3, 1f / 6, 1f / 6, 1f }, n);
        var m = AttentionHeatmap.Normalize([2f, 4f, 3f], HeatmapNormalization.MinMax, out var min, out var max);
        CollectionAssert.AreEqual(new[] { 0f, 1f, 0.5f }, m);
        Assert.AreEqual(2f, min);
        Assert.AreEqual(4f, max);
    }

    [TestMethod]
    public void MismatchedCoordinatesThrow()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() =>
            AttentionHeatmap.WriteGeoJson(Stream.Null, [1f, 2f], [0L, 0L, 256L], 256));
        StringAssert.Contains(e.Message, "2 × N");
    }

    [TestMethod]
    public void GeoJsonParsesWithOnePolygonPerTileInLevelZeroPixels()
    {
        long[] coords = [0, 0, 512, 0, 1024, 2048];
        float[] attention = [0.1f, 0.9f, 0.5f];
        using var stream = new MemoryStream();
        AttentionHeatmap.WriteGeoJson(stream, attention, coords, 512, new GeoJsonOptions());
        using var doc = JsonDocument.Parse(stream.ToArray());
        Assert.AreEqual("FeatureCollection", doc.RootElement.GetProperty("type").GetString());
        var features = doc.RootElement.GetProperty("features");
        Assert.AreEqual(3, features.GetArrayLength());
        var third = features[2];
        var ring = third.GetProperty("geometry").GetProperty("coordinates")[0];
        Assert.AreEqual("Polygon", third.GetProperty("geometry").GetProperty("type").GetString());
        long[][] expected = [[1024, 2048], [1536, 2048], [1536, 2560], [1024, 2560], [1024, 2048]];
        Assert.AreEqual(5, ring.GetArrayLength());
        for (var i = 0; i < 5; i++)
        {
            Assert.AreEqual(expected[i][0], ring[i][0].GetInt64());
            Assert.AreEqual(expected[i][1], ring[i][1].GetInt64());
        }
        var props = third.GetProperty("properties");
        Assert.AreEqual("tile", props.GetProperty("objectType").GetString());
        Assert.AreEqual("Attention", props.GetProperty("classification").GetProperty("name").GetString());
        Assert.AreEqual(0.5, props.GetProperty("measurements").GetProperty("attention").GetDouble(), 1e-6);
        Assert.AreEqual(0.5, props.GetProperty("measurements").GetProperty("attention (normalized)").GetDouble(), 1e-6);
        Assert.AreEqual(3, props.GetProperty("color").GetArrayLength());
    }

    [TestMethod]
    public void Measure100kTilesGeoJsonAndHeatmap()
    {
        // A synthetic 80,000² level-0 slide (a 40× resection) with 312² ≈ 97k tiles of 256 px.
        const long side = 80_000, tile = 256;
        var perRow = (int)(side / tile);
        var n = perRow * perRow;
        var coords = new long[2 * n];
        var attention = new float[n];
        var rng = new Random(7);
        for (var i = 0; i < n; i++)
        {
            coords[2 * i] = i % perRow * tile;
            coords[2 * i + 1] = i / perRow * tile;
            attention[i] = (float)rng.NextDouble();
        }
        var dir = SlideFixtures.TempDir();
        try
        {
            var geo = Path.Combine(dir, "tiles.geojson");
            var sw = Stopwatch.StartNew();
            AttentionHeatmap.WriteGeoJson(geo, attention, coords, tile);
            var geoMs = sw.Elapsed.TotalMilliseconds;
            var size = new FileInfo(geo).Length;
            var thumb = new SlideRaster(2048, 2048, Enumerable.Repeat((byte)230, 2048 * 2048 * 4).ToArray());
            sw.Restart();
            AttentionHeatmap.WritePng(thumb, side, side, attention, coords, tile, Path.Combine(dir, "heat.png"),
                new HeatmapOptions { Normalization = HeatmapNormalization.Percentile });
            var pngMs = sw.Elapsed.TotalMilliseconds;
            TestContext.WriteLine($"{n} tiles: GeoJSON {geoMs:F0} ms ({size / 1e6:F1} MB), heatmap PNG 2048² "
                + $"(percentile) {pngMs:F0} ms");
            using var stream = File.OpenRead(geo);
            using var doc = JsonDocument.Parse(stream);
            Assert.AreEqual(n, doc.RootElement.GetProperty("features").GetArrayLength());
        }
        finally { Directory.Delete(dir, true); }
    }
}
