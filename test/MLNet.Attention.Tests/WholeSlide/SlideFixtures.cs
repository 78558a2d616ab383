using NetVips;

namespace MLNet.Attention.Tests.WholeSlide;

/// <summary>Slide fixtures: skimage's ihc.png (512² IHC stain) as an Aperio-described tiled pyramidal TIFF.</summary>
internal static class SlideFixtures
{
    internal const string IhcPng = "/usr/lib/python3/dist-packages/skimage/data/ihc.png";
    internal const string CommittedName = "ihc-aperio-20x.tif";

    /// <summary>The committed fixture (Fixtures/ihc-aperio-20x.tif, copied to the output), generated when missing.
    /// </summary>
    internal static string Pyramid()
    {
        var committed = Path.Combine(AppContext.BaseDirectory, "Fixtures", CommittedName);
        if (File.Exists(committed)) return committed;
        var generated = Path.Combine(Path.GetTempPath(), "mlnet-attention-wsi", CommittedName);
        if (!File.Exists(generated)) WriteIhcPyramid(generated, upscale: 2);
        return generated;
    }

    /// <summary>Writes ihc.png upscaled <paramref name="upscale"/>× as a 256²-tiled JPEG pyramid with an Aperio
    /// ImageDescription (AppMag 20, MPP 0.5), which OpenSlide opens as "aperio".</summary>
    internal static void WriteIhcPyramid(string path, int upscale)
    {
        if (!File.Exists(IhcPng)) Assert.Inconclusive($"{IhcPng} is missing: apt-get install python3-skimage.");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var source = Image.NewFromFile(IhcPng, access: Enums.Access.Sequential);
        using var rgb = source.Bands > 3 ? source.ExtractBand(0, 3) : source.Copy();
        using var big = rgb.Resize(upscale, kernel: Enums.Kernel.Cubic);
        var description = $"Aperio Image Library v12.0.0\r\n{big.Width}x{big.Height} [0,0 {big.Width}x{big.Height}] "
            + "(256x256) JPEG/RGB Q=75|AppMag = 20|MPP = 0.5";
        using var described = big.Mutate(m => m.Set(GValue.GStrType, "image-description", description));
        var temp = path + ".tmp";
        described.Tiffsave(temp, compression: Enums.ForeignTiffCompression.Jpeg, q: 75, tile: true, tileWidth: 256,
            tileHeight: 256, pyramid: true);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>A temp folder removed by the caller.</summary>
    internal static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "mlnet-attention-wsi-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}
