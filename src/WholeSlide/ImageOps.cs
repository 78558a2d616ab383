using NetVips;

namespace MLNet.Attention.WholeSlide;

/// <summary>Small raster helpers over NetVips shared by reading, tiling and heatmaps.</summary>
internal static class ImageOps
{
    /// <summary>An 8-bit sRGB image with an alpha band (opaque when the source has none).</summary>
    internal static Image ToRgba8(Image source)
    {
        var image = source;
        var owned = new List<Image>();
        try
        {
            if (image.Format != Enums.BandFormat.Uchar)
            {
                image = image.Interpretation is Enums.Interpretation.Rgb16 or Enums.Interpretation.Grey16
                    ? image.Colourspace(Enums.Interpretation.Srgb) : image.Cast(Enums.BandFormat.Uchar);
                owned.Add(image);
            }
            if (image.Bands < 3)
            {
                image = image.Bands == 2
                    ? image.ExtractBand(0).Bandjoin(image.ExtractBand(0), image.ExtractBand(0), image.ExtractBand(1))
                    : image.Bandjoin(image, image);
                owned.Add(image);
            }
            if (image.Bands == 3)
            {
                image = image.Bandjoin(255);
                owned.Add(image);
            }
            else if (image.Bands > 4)
            {
                image = image.ExtractBand(0, 4);
                owned.Add(image);
            }
            var result = image.Copy(interpretation: Enums.Interpretation.Srgb);
            return result;
        }
        finally
        {
            foreach (var o in owned) o.Dispose();
        }
    }

    /// <summary>Resizes RGBA bytes to <paramref name="width"/> × <paramref name="height"/> (Lanczos down, bicubic up;
    /// libvips' default kernel).</summary>
    internal static byte[] Resize(byte[] rgba, int srcWidth, int srcHeight, int width, int height)
    {
        if (srcWidth == width && srcHeight == height) return rgba;
        using var src = Image.NewFromMemory(rgba, srcWidth, srcHeight, 4, Enums.BandFormat.Uchar);
        using var resized = src.Resize(width / (double)srcWidth, vscale: height / (double)srcHeight);
        using var exact = resized.Width == width && resized.Height == height
            ? resized.Copy() : resized.Embed(0, 0, width, height, Enums.Extend.Copy);
        return exact.WriteToMemory<byte>();
    }

    /// <summary>Writes RGBA or RGB bytes as a PNG.</summary>
    internal static void SavePng(byte[] pixels, int width, int height, int bands, string path)
    {
        using var image = Image.NewFromMemory(pixels, width, height, bands, Enums.BandFormat.Uchar);
        using var srgb = image.Copy(interpretation: Enums.Interpretation.Srgb);
        srgb.Pngsave(path);
    }
}
