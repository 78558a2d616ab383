using Microsoft.ML.Data;
using MLNet.Attention.Data;

namespace MLNet.Attention.Classification;

/// <summary>
/// Writes an attention map over its image as a PNG (or JPEG/BMP by the file extension): the map is scaled to 0–1 by its
/// own minimum and maximum, coloured with a blue → green → yellow → red ramp and blended over the image.
/// Use it with the map column of an image classifier (<see cref="ImageClassifierOptions.AttentionMapColumnName"/>).
/// </summary>
public static class AttentionOverlay
{
    /// <summary>Writes the overlay of <paramref name="map"/> (<paramref name="height"/> × <paramref name="width"/>,
    /// row-major) on the image file <paramref name="imagePath"/>, which is resized and centre-cropped to the map's size
    /// as the classifier saw it.</summary>
    /// <param name="outputPath">The file to write (.png, .jpg or .bmp).</param>
    /// <param name="imagePath">The image the map belongs to.</param>
    /// <param name="map">The attention map, <c>height · width</c> values.</param>
    /// <param name="height">Map rows.</param>
    /// <param name="width">Map columns.</param>
    /// <param name="opacity">Weight of the colour ramp over the image (0–1).</param>
    /// <param name="scale">Integer upscaling of the written picture (small images are hard to see).</param>
    public static void Save(string outputPath, string imagePath, ReadOnlySpan<float> map, int height, int width,
        double opacity = 0.5, int scale = 4)
    {
        ArgumentNullException.ThrowIfNull(imagePath);
        using var image = MLImage.CreateFromFile(imagePath);
        var pixels = new float[3 * height * width];
        ImagePixels.ToChw(image, 3, height, width, pixels);
        Save(outputPath, pixels, 3, map, height, width, opacity, scale);
    }

    /// <summary>Writes the overlay of <paramref name="map"/> on CHW pixels in 0–255 (what <c>ExtractPixels</c> writes
    /// by default) of the same height and width.</summary>
    /// <param name="outputPath">The file to write (.png, .jpg or .bmp).</param>
    /// <param name="pixels">The image, <c>channels · height · width</c> values in CHW order, 0–255.</param>
    /// <param name="channels">3 (RGB) or 1 (grey).</param>
    /// <param name="map">The attention map, <c>height · width</c> values.</param>
    /// <param name="height">Rows of the image and the map.</param>
    /// <param name="width">Columns of the image and the map.</param>
    /// <param name="opacity">Weight of the colour ramp over the image (0–1).</param>
    /// <param name="scale">Integer upscaling of the written picture.</param>
    public static void Save(string outputPath, ReadOnlySpan<float> pixels, int channels, ReadOnlySpan<float> map, int height,
        int width, double opacity = 0.5, int scale = 4)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(outputPath);
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "Use 3 (RGB) or 1 (grey) channels.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        if (pixels.Length != channels * height * width)
            throw new ArgumentException($"The image holds {pixels.Length} values; {channels} × {height} × {width} = " +
                $"{channels * height * width} expected.", nameof(pixels));
        if (map.Length != height * width)
            throw new ArgumentException($"The map holds {map.Length} values; {height} × {width} = {height * width} expected " +
                "(the classifier's map column is ImageHeight × ImageWidth).", nameof(map));
        if (!(opacity is >= 0 and <= 1))
            throw new ArgumentOutOfRangeException(nameof(opacity), opacity, "Opacity is between 0 and 1.");
        if (scale is < 1 or > 64)
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "Scale is an integer from 1 to 64.");

        float lo = float.MaxValue, hi = float.MinValue;
        foreach (float v in map)
        {
            if (!float.IsFinite(v)) throw new ArgumentException("The map holds NaN or infinite values.", nameof(map));
            lo = Math.Min(lo, v);
            hi = Math.Max(hi, v);
        }
        float range = hi - lo > 1e-12f ? hi - lo : 1;
        int plane = height * width, outH = height * scale, outW = width * scale;
        var rgba = new byte[outH * outW * 4];
        for (int y = 0; y < outH; y++)
            for (int x = 0; x < outW; x++)
            {
                int i = y / scale * width + x / scale;
                var (r, g, b) = Ramp((map[i] - lo) / range);
                float ir = pixels[i], ig = channels == 3 ? pixels[plane + i] : ir, ib = channels == 3 ? pixels[2 * plane + i] : ir;
                int o = (y * outW + x) * 4;
                rgba[o] = Blend(ir, r, opacity);
                rgba[o + 1] = Blend(ig, g, opacity);
                rgba[o + 2] = Blend(ib, b, opacity);
                rgba[o + 3] = 255;
            }
        string? folder = Path.GetDirectoryName(Path.GetFullPath(outputPath));
        if (folder is not null) Directory.CreateDirectory(folder);
        using var picture = MLImage.CreateFromPixels(outW, outH, MLPixelFormat.Rgba32, rgba);
        picture.Save(outputPath);
    }

    private static byte Blend(float image, float colour, double opacity) =>
        (byte)Math.Clamp(Math.Round((1 - opacity) * image + opacity * colour), 0, 255);

    // Blue (low) → cyan → green → yellow → red (high), 0–255.
    private static (float R, float G, float B) Ramp(float t)
    {
        t = Math.Clamp(t, 0, 1);
        float r = Math.Clamp(4 * t - 2, 0, 1), g = t < 0.25f ? 4 * t : t > 0.75f ? 4 - 4 * t : 1, b = Math.Clamp(2 - 4 * t, 0, 1);
        return (255 * r, 255 * g, 255 * b);
    }
}
