using System.Globalization;
using System.Text.Json;

namespace MLNet.Attention.WholeSlide;

/// <summary>How per-tile attention is mapped to 0..1 before colouring.</summary>
public enum HeatmapNormalization
{
    /// <summary>(a − min) / (max − min); all-equal scores map to 0.5.</summary>
    MinMax,

    /// <summary>The score's rank percentile (ties share their mean rank), as CLAM's heatmaps; robust to outliers.
    /// </summary>
    Percentile,
}

/// <summary>Colour maps for heatmaps.</summary>
public enum HeatmapColorMap
{
    /// <summary>Blue → cyan → yellow → red (matplotlib's jet, CLAM's default).</summary>
    Jet,

    /// <summary>Dark purple → teal → yellow (matplotlib's viridis; perceptually uniform).</summary>
    Viridis,
}

/// <summary>Heatmap drawing settings.</summary>
public sealed record HeatmapOptions
{
    /// <summary>Score normalisation.</summary>
    public HeatmapNormalization Normalization { get; init; } = HeatmapNormalization.MinMax;

    /// <summary>Colour map.</summary>
    public HeatmapColorMap ColorMap { get; init; } = HeatmapColorMap.Jet;

    /// <summary>Opacity of the colour over tiles (0 thumbnail only, 1 colour only).</summary>
    public double Alpha { get; init; } = 0.5;

    /// <summary>Longer side of the slide thumbnail the overlay is drawn on.</summary>
    public int ThumbnailMaxSize { get; init; } = 2048;

    /// <summary>Draw a colour bar with min/max labels to the right of the slide.</summary>
    public bool Legend { get; init; } = true;

    internal void Validate()
    {
        if (Alpha is < 0 or > 1 || double.IsNaN(Alpha))
            throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "Alpha must be in 0..1.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ThumbnailMaxSize);
    }
}

/// <summary>QuPath GeoJSON settings.</summary>
public sealed record GeoJsonOptions
{
    /// <summary>QuPath object type of each feature: <c>tile</c> (default) or <c>annotation</c>, <c>detection</c>.
    /// </summary>
    public string ObjectType { get; init; } = "tile";

    /// <summary>QuPath classification name of each feature (null: unclassified).</summary>
    public string? Classification { get; init; } = "Attention";

    /// <summary>The measurement name of the raw score (the normalised one is "<c>{name} (normalized)</c>").</summary>
    public string MeasurementName { get; init; } = "attention";

    /// <summary>Normalisation for the normalised measurement and the per-feature colour.</summary>
    public HeatmapNormalization Normalization { get; init; } = HeatmapNormalization.MinMax;

    /// <summary>Colour map of each feature's <c>color</c> property (null: no colour).</summary>
    public HeatmapColorMap? ColorMap { get; init; } = HeatmapColorMap.Jet;
}

/// <summary>
/// Attention heatmaps of a slide from per-tile scores (an attention-MIL model's attention, one per tile) and tile
/// level-0 origins (the bag's N × 2 coordinates): a PNG overlay on the slide thumbnail, and a QuPath-compatible
/// GeoJSON FeatureCollection of the tiles with the scores as measurements, written streaming.
/// </summary>
public static class AttentionHeatmap
{
    /// <summary>Draws the heatmap over <paramref name="slide"/>'s thumbnail and writes it as a PNG.</summary>
    /// <param name="slide">The slide the tiles come from.</param>
    /// <param name="attention">One score per tile (N).</param>
    /// <param name="coordinates">Tile level-0 origins, x, y per tile (2N).</param>
    /// <param name="tileSizeLevel0">Tile side in level-0 pixels (<see cref="TileGrid.TileSizeLevel0"/>).</param>
    /// <param name="pngPath">Output file.</param>
    /// <param name="options">Drawing settings.</param>
    /// <returns>The image written (RGB).</returns>
    public static SlideRaster WritePng(WholeSlideImage slide, ReadOnlySpan<float> attention,
        ReadOnlySpan<long> coordinates, long tileSizeLevel0, string pngPath, HeatmapOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(slide);
        options ??= new HeatmapOptions();
        options.Validate();
        var thumb = slide.GetThumbnail(options.ThumbnailMaxSize);
        return WritePng(thumb, slide.Width, slide.Height, attention, coordinates, tileSizeLevel0, pngPath, options);
    }

    /// <summary>Draws the heatmap over a given thumbnail (RGBA) of a slide of level-0 size
    /// <paramref name="slideWidth"/> × <paramref name="slideHeight"/> and writes it as a PNG.</summary>
    public static SlideRaster WritePng(SlideRaster thumbnail, long slideWidth, long slideHeight,
        ReadOnlySpan<float> attention, ReadOnlySpan<long> coordinates, long tileSizeLevel0, string pngPath,
        HeatmapOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(thumbnail);
        ArgumentException.ThrowIfNullOrEmpty(pngPath);
        options ??= new HeatmapOptions();
        options.Validate();
        var raster = Render(thumbnail, slideWidth, slideHeight, attention, coordinates, tileSizeLevel0, options);
        ImageOps.SavePng(raster.Rgba, raster.Width, raster.Height, 3, pngPath);
        return raster;
    }

    /// <summary>The heatmap image (RGB bytes in <see cref="SlideRaster.Rgba"/>, 3 per pixel) without writing it.
    /// </summary>
    public static SlideRaster Render(SlideRaster thumbnail, long slideWidth, long slideHeight,
        ReadOnlySpan<float> attention, ReadOnlySpan<long> coordinates, long tileSizeLevel0, HeatmapOptions options)
    {
        CheckInputs(attention, coordinates, tileSizeLevel0);
        var norm = Normalize(attention, options.Normalization, out var min, out var max);
        int tw = thumbnail.Width, th = thumbnail.Height;
        double sx = tw / (double)slideWidth, sy = th / (double)slideHeight;
        var sum = new float[tw * th];
        var count = new ushort[tw * th];
        for (var i = 0; i < norm.Length; i++)
        {
            var x0 = (int)Math.Clamp(Math.Floor(coordinates[2 * i] * sx), 0, tw);
            var y0 = (int)Math.Clamp(Math.Floor(coordinates[2 * i + 1] * sy), 0, th);
            var x1 = (int)Math.Clamp(Math.Ceiling((coordinates[2 * i] + tileSizeLevel0) * sx), 0, tw);
            var y1 = (int)Math.Clamp(Math.Ceiling((coordinates[2 * i + 1] + tileSizeLevel0) * sy), 0, th);
            var v = norm[i];
            for (var y = y0; y < y1; y++)
                for (var x = x0; x < x1; x++)
                {
                    var p = y * tw + x;
                    sum[p] += v;
                    if (count[p] < ushort.MaxValue) count[p]++;
                }
        }
        var legend = options.Legend ? Math.Max(64, th / 12) : 0;
        var width = tw + legend;
        var rgb = new byte[width * th * 3];
        var map = Lut(options.ColorMap);
        var alpha = options.Alpha;
        var src = thumbnail.Rgba;
        for (var y = 0; y < th; y++)
            for (var x = 0; x < tw; x++)
            {
                var p = y * tw + x;
                var o = (y * width + x) * 3;
                // Transparent thumbnail pixels (outside the scanned area) are drawn white.
                var a = src[4 * p + 3] / 255.0;
                for (var c = 0; c < 3; c++)
                {
                    var bg = src[4 * p + c] * a + 255 * (1 - a);
                    rgb[o + c] = (byte)Math.Round(count[p] == 0 ? bg
                        : bg * (1 - alpha) + map[(int)Math.Round(sum[p] / count[p] * 255) * 3 + c] * alpha);
                }
            }
        if (legend > 0) DrawLegend(rgb, width, th, tw, legend, map, options.Normalization, min, max);
        return new SlideRaster(width, th, rgb);
    }

    /// <summary>Writes the tiles as a QuPath GeoJSON FeatureCollection: one Polygon (level-0 pixels, closed ring
    /// clockwise from the origin) per tile with <c>objectType</c>, <c>classification</c>, <c>measurements</c>
    /// (raw and normalised score) and <c>color</c>. Streams with <see cref="Utf8JsonWriter"/>.</summary>
    public static void WriteGeoJson(string path, ReadOnlySpan<float> attention, ReadOnlySpan<long> coordinates,
        long tileSizeLevel0, GeoJsonOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        WriteGeoJson(stream, attention, coordinates, tileSizeLevel0, options);
    }

    /// <summary>Writes the GeoJSON to <paramref name="stream"/> (left open); see
    /// <see cref="WriteGeoJson(string, ReadOnlySpan{float}, ReadOnlySpan{long}, long, GeoJsonOptions?)"/>.</summary>
    public static void WriteGeoJson(Stream stream, ReadOnlySpan<float> attention, ReadOnlySpan<long> coordinates,
        long tileSizeLevel0, GeoJsonOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CheckInputs(attention, coordinates, tileSizeLevel0);
        options ??= new GeoJsonOptions();
        var norm = Normalize(attention, options.Normalization, out _, out _);
        var map = options.ColorMap is { } cm ? Lut(cm) : null;
        var normalizedName = options.MeasurementName + " (normalized)";
        using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { SkipValidation = true });
        writer.WriteStartObject();
        writer.WriteString("type", "FeatureCollection");
        writer.WriteStartArray("features");
        for (var i = 0; i < norm.Length; i++)
        {
            long x = coordinates[2 * i], y = coordinates[2 * i + 1], t = tileSizeLevel0;
            writer.WriteStartObject();
            writer.WriteString("type", "Feature");
            writer.WriteStartObject("geometry");
            writer.WriteString("type", "Polygon");
            writer.WriteStartArray("coordinates");
            writer.WriteStartArray();
            Point(writer, x, y);
            Point(writer, x + t, y);
            Point(writer, x + t, y + t);
            Point(writer, x, y + t);
            Point(writer, x, y);
            writer.WriteEndArray();
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteStartObject("properties");
            writer.WriteString("objectType", options.ObjectType);
            if (options.Classification is { } cls)
            {
                writer.WriteStartObject("classification");
                writer.WriteString("name", cls);
                writer.WriteEndObject();
            }
            if (map is not null)
            {
                var k = (int)Math.Round(norm[i] * 255) * 3;
                writer.WriteStartArray("color");
                writer.WriteNumberValue(map[k]);
                writer.WriteNumberValue(map[k + 1]);
                writer.WriteNumberValue(map[k + 2]);
                writer.WriteEndArray();
            }
            writer.WriteStartObject("measurements");
            writer.WriteNumber(options.MeasurementName, attention[i]);
            writer.WriteNumber(normalizedName, norm[i]);
            writer.WriteEndObject();
            writer.WriteEndObject();
            writer.WriteEndObject();
            if (writer.BytesPending > 1 << 16) writer.Flush();
        }
        writer.WriteEndArray();
        writer.WriteEndObject();
        writer.Flush();
    }

    private static void Point(Utf8JsonWriter writer, long x, long y)
    {
        writer.WriteStartArray();
        writer.WriteNumberValue(x);
        writer.WriteNumberValue(y);
        writer.WriteEndArray();
    }

    private static void CheckInputs(ReadOnlySpan<float> attention, ReadOnlySpan<long> coordinates, long tileSize)
    {
        if (coordinates.Length != 2 * attention.Length)
            throw new ArgumentException(
                $"Got {attention.Length} attention scores and {coordinates.Length} coordinate values; expected two "
                + "coordinates (level-0 x, y) per score (2 × N), as a bag's Int64 N × 2 coordinates.",
                nameof(coordinates));
        if (attention.Length == 0)
            throw new ArgumentException("No tiles: pass at least one attention score.", nameof(attention));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tileSize);
        for (var i = 0; i < attention.Length; i++)
            if (!float.IsFinite(attention[i]))
                throw new ArgumentException(
                    $"Attention score {i} is {attention[i]}; expected finite scores (check the model's output).",
                    nameof(attention));
    }

    /// <summary>Scores mapped to 0..1.</summary>
    internal static float[] Normalize(ReadOnlySpan<float> scores, HeatmapNormalization mode, out float min,
        out float max)
    {
        min = float.MaxValue;
        max = float.MinValue;
        foreach (var s in scores)
        {
            if (s < min) min = s;
            if (s > max) max = s;
        }
        var result = new float[scores.Length];
        if (mode == HeatmapNormalization.MinMax)
        {
            var range = max - min;
            for (var i = 0; i < result.Length; i++) result[i] = range > 0 ? (scores[i] - min) / range : 0.5f;
            return result;
        }
        var order = new int[scores.Length];
        for (var i = 0; i < order.Length; i++) order[i] = i;
        var keys = scores.ToArray();
        Array.Sort(keys, order);
        var denominator = Math.Max(1, scores.Length - 1);
        for (var start = 0; start < order.Length;)
        {
            var end = start;
            while (end + 1 < order.Length && keys[end + 1] == keys[start]) end++;
            var rank = (start + end) / 2.0 / denominator;
            for (var j = start; j <= end; j++) result[order[j]] = scores.Length == 1 ? 0.5f : (float)rank;
            start = end + 1;
        }
        return result;
    }

    /// <summary>A 256-entry RGB table.</summary>
    internal static byte[] Lut(HeatmapColorMap map)
    {
        var lut = new byte[256 * 3];
        ReadOnlySpan<double> viridis =
        [
            0.267, 0.005, 0.329, 0.283, 0.141, 0.458, 0.254, 0.265, 0.530, 0.207, 0.372, 0.553, 0.164, 0.471, 0.558,
            0.128, 0.567, 0.551, 0.135, 0.659, 0.518, 0.267, 0.749, 0.441, 0.478, 0.821, 0.318, 0.741, 0.873, 0.150,
            0.993, 0.906, 0.144,
        ];
        for (var i = 0; i < 256; i++)
        {
            var v = i / 255.0;
            double r, g, b;
            if (map == HeatmapColorMap.Jet)
            {
                r = Math.Clamp(1.5 - Math.Abs(4 * v - 3), 0, 1);
                g = Math.Clamp(1.5 - Math.Abs(4 * v - 2), 0, 1);
                b = Math.Clamp(1.5 - Math.Abs(4 * v - 1), 0, 1);
            }
            else
            {
                var f = v * 10;
                var k = Math.Min(9, (int)f);
                var t = f - k;
                r = viridis[3 * k] * (1 - t) + viridis[3 * k + 3] * t;
                g = viridis[3 * k + 1] * (1 - t) + viridis[3 * k + 4] * t;
                b = viridis[3 * k + 2] * (1 - t) + viridis[3 * k + 5] * t;
            }
            lut[3 * i] = (byte)Math.Round(r * 255);
            lut[3 * i + 1] = (byte)Math.Round(g * 255);
            lut[3 * i + 2] = (byte)Math.Round(b * 255);
        }
        return lut;
    }

    private static void DrawLegend(byte[] rgb, int width, int height, int left, int legend, byte[] map,
        HeatmapNormalization mode, float min, float max)
    {
        for (var y = 0; y < height; y++)
            for (var x = left; x < width; x++)
                rgb[(y * width + x) * 3] = rgb[(y * width + x) * 3 + 1] = rgb[(y * width + x) * 3 + 2] = 255;
        var scale = Math.Max(1, legend / 60);
        var labelHeight = 9 * scale;
        int barX0 = left + legend / 4, barX1 = left + legend / 2;
        int barY0 = labelHeight + 4 * scale, barY1 = height - labelHeight - 4 * scale;
        if (barY1 - barY0 < 8) return; // too short for a bar
        for (var y = barY0; y < barY1; y++)
        {
            var v = 1 - (y - barY0) / (double)Math.Max(1, barY1 - barY0 - 1);
            var k = (int)Math.Round(v * 255) * 3;
            for (var x = barX0; x < barX1; x++)
            {
                var o = (y * width + x) * 3;
                rgb[o] = map[k];
                rgb[o + 1] = map[k + 1];
                rgb[o + 2] = map[k + 2];
            }
        }
        var inv = CultureInfo.InvariantCulture;
        var top = mode == HeatmapNormalization.Percentile ? "100%" : max.ToString("G3", inv);
        var bottom = mode == HeatmapNormalization.Percentile ? "0%" : min.ToString("G3", inv);
        BitmapFont.Draw(rgb, width, height, left + 2, 2 * scale, top, scale);
        BitmapFont.Draw(rgb, width, height, left + 2, height - labelHeight, bottom, scale);
    }
}

/// <summary>A 5 × 7 pixel font for the legend's numbers (digits, sign, point, exponent, percent).</summary>
internal static class BitmapFont
{
    private static readonly Dictionary<char, string[]> Glyphs = new()
    {
        ['0'] = ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
        ['1'] = ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
        ['2'] = ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
        ['3'] = ["11110", "00001", "00001", "01110", "00001", "00001", "11110"],
        ['4'] = ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
        ['5'] = ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
        ['6'] = ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
        ['7'] = ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
        ['8'] = ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
        ['9'] = ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
        ['.'] = ["00000", "00000", "00000", "00000", "00000", "01100", "01100"],
        ['-'] = ["00000", "00000", "00000", "11111", "00000", "00000", "00000"],
        ['+'] = ["00000", "00100", "00100", "11111", "00100", "00100", "00000"],
        ['E'] = ["11111", "10000", "10000", "11110", "10000", "10000", "11111"],
        ['%'] = ["11001", "11010", "00010", "00100", "01000", "01011", "10011"],
    };

    internal static void Draw(byte[] rgb, int width, int height, int x, int y, string text, int scale)
    {
        foreach (var ch in text)
        {
            if (Glyphs.TryGetValue(char.ToUpperInvariant(ch), out var rows))
                for (var r = 0; r < 7; r++)
                    for (var c = 0; c < 5; c++)
                    {
                        if (rows[r][c] != '1') continue;
                        for (var dy = 0; dy < scale; dy++)
                            for (var dx = 0; dx < scale; dx++)
                            {
                                int px = x + c * scale + dx, py = y + r * scale + dy;
                                if (px < 0 || py < 0 || px >= width || py >= height) continue;
                                var o = (py * width + px) * 3;
                                rgb[o] = rgb[o + 1] = rgb[o + 2] = 0;
                            }
                    }
            x += 6 * scale;
        }
    }
}
