using MLNet.Attention.WholeSlide;

namespace MLNet.Attention.Tests.WholeSlide;

[TestClass]
public sealed class WholeSlideImageTests
{
    [TestMethod]
    public void OpenSlideOpensTheFixtureAsAperio()
    {
        if (!WholeSlideImage.IsOpenSlideAvailable)
            Assert.Inconclusive("libopenslide.so.0 is not installed (apt-get install libopenslide0).");
        using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid(), SlideBackend.OpenSlide);
        Assert.AreEqual(SlideBackend.OpenSlide, slide.Backend);
        Assert.AreEqual("aperio", slide.Vendor);
        Assert.AreEqual(1024L, slide.Width);
        Assert.AreEqual(1024L, slide.Height);
        Assert.AreEqual(3, slide.LevelCount); // 1024, 512, 256 (NetVips stops the pyramid at one tile)
        Assert.AreEqual(0.5, slide.MppX!.Value, 1e-9);
        Assert.AreEqual(0.5, slide.MppY!.Value, 1e-9);
        Assert.AreEqual(20.0, slide.ObjectiveMagnification!.Value, 1e-9);
        Assert.AreEqual(2.0, slide.LevelDownsamples[1], 1e-6);
    }

    [TestMethod]
    public void NetVipsOpensTheFixtureWithTheSameLevelsAndMetadata()
    {
        using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid(), SlideBackend.NetVips);
        Assert.AreEqual(SlideBackend.NetVips, slide.Backend);
        Assert.AreEqual("tiff", slide.Vendor);
        Assert.AreEqual((1024L, 1024L), slide.LevelDimensions[0]);
        Assert.AreEqual(3, slide.LevelCount);
        Assert.AreEqual((512L, 512L), slide.LevelDimensions[1]);
        Assert.AreEqual(0.5, slide.MppX!.Value, 1e-9);
        Assert.AreEqual(20.0, slide.ObjectiveMagnification!.Value, 1e-9);
    }

    [TestMethod]
    public void ReadRegionAgreesBetweenBackendsAtLevelZeroAndOne()
    {
        if (!WholeSlideImage.IsOpenSlideAvailable)
            Assert.Inconclusive("libopenslide.so.0 is not installed (apt-get install libopenslide0).");
        var path = SlideFixtures.Pyramid();
        using var os = WholeSlideImage.Open(path, SlideBackend.OpenSlide);
        using var vips = WholeSlideImage.Open(path, SlideBackend.NetVips);
        foreach (var (x, y, level) in new[] { (0L, 0L, 0), (300L, 517L, 0), (768L, 768L, 0), (200L, 100L, 1) })
        {
            var a = os.ReadRegion(x, y, level, 256, 256);
            var b = vips.ReadRegion(x, y, level, 256, 256);
            Assert.AreEqual(a.Length, b.Length);
            var maxDiff = 0;
            for (var i = 0; i < a.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
            // Both decode the same JPEG tiles with libjpeg; only IDCT rounding may differ.
            Assert.IsLessThanOrEqualTo(2, maxDiff, $"({x}, {y}) level {level}: max |Δ| {maxDiff}");
        }
    }

    [TestMethod]
    public void RegionsOutsideTheSlideAreTransparent()
    {
        using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid(), SlideBackend.NetVips);
        var rgba = slide.ReadRegion(1000, 1000, 0, 48, 48);
        Assert.AreEqual(255, rgba[3]); // (1000, 1000) is inside
        Assert.AreEqual(0, rgba[(47 * 48 + 47) * 4 + 3]); // (1047, 1047) is outside
    }

    [TestMethod]
    public void ThumbnailKeepsTheAspectAndSize()
    {
        using var slide = WholeSlideImage.Open(SlideFixtures.Pyramid());
        var thumb = slide.GetThumbnail(300);
        Assert.AreEqual(300, thumb.Width);
        Assert.AreEqual(300, thumb.Height);
        Assert.AreEqual(300 * 300 * 4, thumb.Rgba.Length);
    }

    [TestMethod]
    public void OrdinaryPngOpensAsOneLevelWithoutMetadata()
    {
        using var slide = WholeSlideImage.Open(SlideFixtures.IhcPng);
        Assert.AreEqual(1, slide.LevelCount);
        Assert.AreEqual(512L, slide.Width);
        Assert.IsNull(slide.ObjectiveMagnification);
    }

    [TestMethod]
    public void TruncatedFileThrowsNamingTheFileAndTheBackends()
    {
        var dir = SlideFixtures.TempDir();
        try
        {
            var bytes = File.ReadAllBytes(SlideFixtures.Pyramid());
            var path = Path.Combine(dir, "half.tif");
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
            var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            {
                using var slide = WholeSlideImage.Open(path);
                // A lazily failing decoder would only fail here; either way the read must not succeed silently.
                for (var l = 0; l < slide.LevelCount; l++)
                {
                    var (w, h) = slide.LevelDimensions[l];
                    slide.ReadRegion(0, 0, l, (int)w, (int)h);
                }
            });
            StringAssert.Contains(e.Message, "half.tif");
            StringAssert.Contains(e.Message, "NetVips");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void NonImageFileThrowsNamingTheFile()
    {
        var dir = SlideFixtures.TempDir();
        try
        {
            var path = Path.Combine(dir, "notes.svs");
            File.WriteAllText(path, "this is not a slide");
            var e = Assert.ThrowsExactly<InvalidDataException>(() => WholeSlideImage.Open(path).Dispose());
            StringAssert.Contains(e.Message, "notes.svs");
            StringAssert.Contains(e.Message, "Tried:");
            Assert.ThrowsExactly<FileNotFoundException>(() => WholeSlideImage.Open(Path.Combine(dir, "none.svs")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
