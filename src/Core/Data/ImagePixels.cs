using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Data;

/// <summary>
/// Turns ML.NET images and encoded image bytes into the float CHW pixels a network receives: RGB planes in 0–255 (what
/// <c>ExtractPixels</c> writes with its defaults) or one luminance plane (0.3 R + 0.59 G + 0.11 B, ML.NET's
/// <c>ConvertToGrayscale</c> weights). An image of another size is scaled to cover the target and centre-cropped
/// (ML.NET's <c>ResizeImages</c> default, <c>IsoCrop</c>), with an antialiased triangle filter (PIL's / torchvision's
/// bilinear resize); an image already at the target size is copied exactly.
/// </summary>
public static class ImagePixels
{
    /// <summary>Writes <paramref name="image"/> as CHW floats into <paramref name="destination"/>
    /// (<paramref name="channels"/> · <paramref name="height"/> · <paramref name="width"/> values).</summary>
    /// <param name="image">The image (any size; BGRA or RGBA, as ML.NET holds every image).</param>
    /// <param name="channels">3 for RGB planes, 1 for luminance.</param>
    /// <param name="height">Target rows.</param>
    /// <param name="width">Target columns.</param>
    /// <param name="destination">Output, length <c>channels · height · width</c>.</param>
    public static void ToChw(MLImage image, int channels, int height, int width, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "Use 3 (RGB) or 1 (grey) channels.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        if (destination.Length != channels * height * width)
            throw new ArgumentException($"Destination holds {destination.Length} values; expected {channels * height * width}.", nameof(destination));
        int w = image.Width, h = image.Height;
        var pixels = image.Pixels;
        int stride = pixels.Length / h;
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        int rOff = bgra ? 2 : 0, bOff = bgra ? 0 : 2;

        // Source planes (R, G, B) as floats, then resampled to the target.
        var planes = new float[3][];
        for (int c = 0; c < 3; c++) planes[c] = new float[w * h];
        for (int y = 0; y < h; y++)
        {
            var row = pixels.Slice(y * stride, w * 4);
            for (int x = 0; x < w; x++)
            {
                planes[0][y * w + x] = row[x * 4 + rOff];
                planes[1][y * w + x] = row[x * 4 + 1];
                planes[2][y * w + x] = row[x * 4 + bOff];
            }
        }
        int plane = height * width;
        if (w == width && h == height)
        {
            if (channels == 3)
                for (int c = 0; c < 3; c++) planes[c].AsSpan().CopyTo(destination.Slice(c * plane, plane));
            else
                for (int i = 0; i < plane; i++) destination[i] = Luminance(planes[0][i], planes[1][i], planes[2][i]);
            return;
        }

        // IsoCrop: scale so that the image covers width × height, crop the centre.
        double scale = Math.Max((double)width / w, (double)height / h);
        double cropX = (w * scale - width) / 2, cropY = (h * scale - height) / 2;
        var columns = Weights(w, width, scale, cropX);
        var rows = Weights(h, height, scale, cropY);
        var resized = new float[3][];
        var temp = new float[h * width];
        for (int c = 0; c < 3; c++)
        {
            var src = planes[c];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < width; x++)
                {
                    var (start, weights) = columns[x];
                    double sum = 0;
                    for (int k = 0; k < weights.Length; k++) sum += weights[k] * src[y * w + start + k];
                    temp[y * width + x] = (float)sum;
                }
            var dst = resized[c] = new float[plane];
            for (int y = 0; y < height; y++)
            {
                var (start, weights) = rows[y];
                for (int x = 0; x < width; x++)
                {
                    double sum = 0;
                    for (int k = 0; k < weights.Length; k++) sum += weights[k] * temp[(start + k) * width + x];
                    dst[y * width + x] = (float)Math.Clamp(Math.Round(sum), 0, 255);
                }
            }
        }
        if (channels == 3)
            for (int c = 0; c < 3; c++) resized[c].AsSpan().CopyTo(destination.Slice(c * plane, plane));
        else
            for (int i = 0; i < plane; i++) destination[i] = Luminance(resized[0][i], resized[1][i], resized[2][i]);
    }

    private static float Luminance(float r, float g, float b) => 0.3f * r + 0.59f * g + 0.11f * b;

    // Triangle-filter weights for each output position: support widened by the downscale factor (antialiasing).
    private static (int Start, double[] Weights)[] Weights(int sourceSize, int targetSize, double scale, double offset)
    {
        double support = scale < 1 ? 1 / scale : 1;
        var result = new (int, double[])[targetSize];
        for (int i = 0; i < targetSize; i++)
        {
            double center = (i + 0.5 + offset) / scale;   // in source pixels (half-pixel centres)
            int start = Math.Max(0, (int)Math.Floor(center - support));
            int end = Math.Min(sourceSize, (int)Math.Ceiling(center + support));
            var weights = new double[Math.Max(1, end - start)];
            double total = 0;
            for (int k = 0; k < end - start; k++)
            {
                double distance = Math.Abs(start + k + 0.5 - center) / support;
                weights[k] = Math.Max(0, 1 - distance);
                total += weights[k];
            }
            if (total <= 0)
            {
                start = Math.Clamp((int)center, 0, sourceSize - 1);
                weights = new[] { 1.0 };
                total = 1;
            }
            for (int k = 0; k < weights.Length; k++) weights[k] /= total;
            result[i] = (start, weights);
        }
        return result;
    }

    /// <summary>Decodes encoded image bytes (JPEG, PNG, BMP, GIF, WebP); null when they are not an image.</summary>
    public static MLImage? TryDecode(ReadOnlyMemory<byte> bytes)
    {
        if (bytes.IsEmpty) return null;
        try
        {
            using var stream = new MemoryStream(bytes.ToArray(), writable: false);
            return MLImage.CreateFromStream(stream);
        }
        catch (ArgumentException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    internal static Action<int, long> Reader(TorchInputColumn spec, DataViewRow row, DataViewSchema.Column column,
        float[] staging, Func<long, string> at)
    {
        int c = spec.Dimensions[0], h = spec.Dimensions[1], w = spec.Dimensions[2], size = spec.Size;
        if (spec.Kind == TorchColumnKind.Image)
        {
            var getter = row.GetGetter<MLImage>(column);
            MLImage image = null!;   // kept between rows: ML.NET's image getters dispose the value they replace
            return (slot, position) =>
            {
                getter(ref image);
                if (image is null)
                    throw new InvalidOperationException($"Column '{spec.Name}' has no image {at(position)} (the file could not " +
                        "be loaded). Check the path, or remove such rows first.");
                ToChw(image, c, h, w, staging.AsSpan(slot * size, size));
            };
        }
        var bytesGetter = row.GetGetter<VBuffer<byte>>(column);
        VBuffer<byte> buffer = default;
        return (slot, position) =>
        {
            bytesGetter(ref buffer);
            var dense = buffer.DenseValues().ToArray();
            using var image = TryDecode(dense) ?? throw new InvalidOperationException(
                $"Column '{spec.Name}' holds {dense.Length} bytes {at(position)} that do not decode as an image " +
                "(JPEG, PNG, BMP, GIF or WebP). Remove or replace that file, or filter such rows before training/scoring.");
            ToChw(image, c, h, w, staging.AsSpan(slot * size, size));
        };
    }
}
