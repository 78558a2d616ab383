using System.Globalization;
using System.Runtime.InteropServices;
using NetVips;

namespace MLNet.Attention.WholeSlide;

/// <summary>An RGBA raster (8 bits per channel, interleaved, row-major): a region, a level or a thumbnail.</summary>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Rgba">Width × Height × 4 bytes: R, G, B, A per pixel (not premultiplied).</param>
public sealed record SlideRaster(int Width, int Height, byte[] Rgba);

/// <summary>Which library reads a <see cref="WholeSlideImage"/>.</summary>
public enum SlideBackend
{
    /// <summary>OpenSlide (<c>libopenslide.so.0</c>): vendor formats and pyramidal TIFF.</summary>
    OpenSlide,

    /// <summary>NetVips (libvips): pyramidal/plain TIFF and ordinary images (PNG, JPEG, ...).</summary>
    NetVips,
}

/// <summary>
/// A whole-slide image: a pyramid of levels (level 0 the full resolution), the microns per pixel and objective
/// magnification when the file records them, region reads addressed by level-0 coordinates (as OpenSlide and
/// CLAM/TRIDENT <c>coords</c>) and thumbnails. <see cref="Open(string)"/> tries OpenSlide first (Aperio .svs, Hamamatsu
/// .ndpi, MIRAX .mrxs, Leica .scn, generic tiled TIFF, ...) and falls back to NetVips for pyramidal or plain TIFF and
/// ordinary images. Not thread-safe for concurrent reads of one instance with the NetVips backend; open one
/// instance per thread.
/// </summary>
public sealed class WholeSlideImage : IDisposable
{
    private readonly SlideReader _reader;

    private WholeSlideImage(string path, SlideReader reader)
    {
        Path = path;
        _reader = reader;
    }

    /// <summary>The file this slide was opened from.</summary>
    public string Path { get; }

    /// <summary>The library that reads this slide.</summary>
    public SlideBackend Backend => _reader.Backend;

    /// <summary>
    /// The format as OpenSlide names it (<c>aperio</c>, <c>hamamatsu</c>, <c>mirax</c>, <c>generic-tiff</c>, ...) or,
    /// with NetVips, the loader's format (<c>tiff</c>, <c>png</c>, <c>jpeg</c>, ...).
    /// </summary>
    public string Vendor => _reader.Vendor;

    /// <summary>The number of pyramid levels (1 for an ordinary image).</summary>
    public int LevelCount => _reader.Dimensions.Length;

    /// <summary>Level dimensions (width, height) in pixels, level 0 first.</summary>
    public IReadOnlyList<(long Width, long Height)> LevelDimensions => _reader.Dimensions;

    /// <summary>Level downsample factors relative to level 0 (level 0 is 1).</summary>
    public IReadOnlyList<double> LevelDownsamples => _reader.Downsamples;

    /// <summary>Level-0 width in pixels.</summary>
    public long Width => _reader.Dimensions[0].Width;

    /// <summary>Level-0 height in pixels.</summary>
    public long Height => _reader.Dimensions[0].Height;

    /// <summary>Microns per pixel along x at level 0, or null when the file does not say.</summary>
    public double? MppX => _reader.MppX;

    /// <summary>Microns per pixel along y at level 0, or null when the file does not say.</summary>
    public double? MppY => _reader.MppY;

    /// <summary>The scanner's objective magnification at level 0 (e.g. 20 or 40), or null when unknown.</summary>
    public double? ObjectiveMagnification => _reader.Magnification;

    /// <summary>The slide's properties (OpenSlide's property map; with NetVips the parsed Aperio fields).</summary>
    public IReadOnlyDictionary<string, string> Properties => _reader.Properties;

    /// <summary>Whether OpenSlide (<c>libopenslide.so.0</c>) can be loaded in this process.</summary>
    public static bool IsOpenSlideAvailable => OpenSlideNative.IsAvailable;

    /// <summary>
    /// Opens <paramref name="path"/>: with OpenSlide when it is installed and recognises the file, else with NetVips.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">Neither backend could read it (truncated, not an image, ...); the
    /// message names the file and what each backend reported.</exception>
    public static WholeSlideImage Open(string path) => Open(path, null);

    /// <summary>Opens <paramref name="path"/> with the given backend (null: OpenSlide, then NetVips).</summary>
    /// <exception cref="DllNotFoundException"><paramref name="backend"/> is OpenSlide and it is not installed.
    /// </exception>
    public static WholeSlideImage Open(string path, SlideBackend? backend)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new FileNotFoundException(
                $"Slide file '{full}' does not exist; pass the path of a slide file.", full);
        var tried = new List<string>();
        if (backend is null or SlideBackend.OpenSlide)
        {
            if (!OpenSlideNative.IsAvailable)
            {
                if (backend == SlideBackend.OpenSlide) _ = OpenSlideNative.Functions; // throws with the install hint
                tried.Add($"OpenSlide: not installed ({OpenSlideNative.InstallHint})");
            }
            else
            {
                try { return new WholeSlideImage(full, new OpenSlideReader(full)); }
                catch (InvalidDataException e) { tried.Add("OpenSlide: " + e.Message); }
            }
        }
        if (backend is null or SlideBackend.NetVips)
        {
            try { return new WholeSlideImage(full, new VipsReader(full)); }
            catch (Exception e) when (e is VipsException or InvalidDataException)
            {
                tried.Add("NetVips: " + e.Message.Trim().Replace('\n', ' '));
            }
        }
        throw new InvalidDataException(
            $"Cannot read slide '{full}' ({new FileInfo(full).Length} bytes). Tried: {string.Join("; ", tried)}. "
            + "Expected a whole-slide image (.svs, .ndpi, .mrxs, .scn, pyramidal .tif) or an ordinary image (PNG, "
            + "JPEG, TIFF); check the file is complete (not truncated by a copy) and of a supported format.");
    }

    /// <summary>
    /// Reads a region: (<paramref name="x"/>, <paramref name="y"/>) is its top-left corner in level-0 pixels (as
    /// OpenSlide's <c>read_region</c>), <paramref name="width"/> × <paramref name="height"/> its size in pixels of
    /// <paramref name="level"/>. Pixels outside the slide are transparent (0, 0, 0, 0).
    /// </summary>
    /// <returns>RGBA bytes, <paramref name="width"/> × <paramref name="height"/> × 4.</returns>
    public byte[] ReadRegion(long x, long y, int level, int width, int height)
    {
        var buffer = new byte[checked(width * height * 4)];
        ReadRegion(x, y, level, width, height, buffer);
        return buffer;
    }

    /// <summary>Reads a region into <paramref name="rgba"/> (at least width × height × 4 bytes); see
    /// <see cref="ReadRegion(long, long, int, int, int)"/>.</summary>
    public void ReadRegion(long x, long y, int level, int width, int height, Span<byte> rgba)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((uint)level >= (uint)LevelCount)
            throw new ArgumentOutOfRangeException(nameof(level), level,
                $"Level {level} does not exist in '{Path}': it has {LevelCount} levels (0..{LevelCount - 1}).");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        if (rgba.Length < (long)width * height * 4)
            throw new ArgumentException(
                $"The buffer holds {rgba.Length} bytes; a {width}×{height} RGBA region needs {width * height * 4}.",
                nameof(rgba));
        _reader.ReadRegion(x, y, level, width, height, rgba);
    }

    /// <summary>The level OpenSlide would pick for <paramref name="downsample"/>: the most downsampled level whose
    /// downsample is not above it (level 0 when the request is below 1).</summary>
    public int GetBestLevelForDownsample(double downsample)
    {
        var best = 0;
        for (var l = 1; l < LevelCount; l++)
            if (LevelDownsamples[l] <= downsample * (1 + 1e-6)) best = l;
        return best;
    }

    /// <summary>
    /// A thumbnail whose longer side is at most <paramref name="maxSize"/> pixels (aspect kept), read from the
    /// smallest level at least that large and resized.
    /// </summary>
    public SlideRaster GetThumbnail(int maxSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxSize);
        var scale = Math.Min(1.0, maxSize / (double)Math.Max(Width, Height));
        var tw = Math.Max(1, (int)Math.Round(Width * scale));
        var th = Math.Max(1, (int)Math.Round(Height * scale));
        return ReadScaled(tw, th);
    }

    /// <summary>The whole slide resampled to <paramref name="width"/> × <paramref name="height"/> pixels.</summary>
    internal SlideRaster ReadScaled(int width, int height)
    {
        var level = GetBestLevelForDownsample(Math.Min(Width / (double)width, Height / (double)height));
        var (lw, lh) = LevelDimensions[level];
        if (lw * lh * 4 > int.MaxValue)
            throw new InvalidOperationException(
                $"Level {level} of '{Path}' ({lw}×{lh}) is too large to read whole for a {width}×{height} thumbnail; "
                + "the slide needs a more downsampled pyramid level.");
        var pixels = ReadRegion(0, 0, level, (int)lw, (int)lh);
        if (lw == width && lh == height) return new SlideRaster(width, height, pixels);
        return new SlideRaster(width, height, ImageOps.Resize(pixels, (int)lw, (int)lh, width, height));
    }

    private bool _disposed;

    /// <summary>Closes the slide.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _reader.Dispose();
    }

    /// <summary>Parses Aperio's ImageDescription (<c>...|AppMag = 20|MPP = 0.5</c>) into properties.</summary>
    internal static Dictionary<string, string> ParseAperioDescription(string? description)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (description is null || !description.StartsWith("Aperio", StringComparison.Ordinal)) return result;
        foreach (var part in description.Split('|').Skip(1))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0) continue;
            result["aperio." + part[..eq].Trim()] = part[(eq + 1)..].Trim();
        }
        return result;
    }

    internal static double? ParseDouble(string? value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0
        && double.IsFinite(v) ? v : null;
}

/// <summary>One backend's view of an open slide.</summary>
internal abstract class SlideReader : IDisposable
{
    internal abstract SlideBackend Backend { get; }
    internal string Vendor { get; set; } = "";
    internal (long Width, long Height)[] Dimensions { get; set; } = [];
    internal double[] Downsamples { get; set; } = [];
    internal double? MppX { get; set; }
    internal double? MppY { get; set; }
    internal double? Magnification { get; set; }
    internal Dictionary<string, string> Properties { get; } = new(StringComparer.Ordinal);
    internal abstract void ReadRegion(long x, long y, int level, int width, int height, Span<byte> rgba);
    public abstract void Dispose();
}

/// <summary>OpenSlide through <see cref="OpenSlideNative"/>.</summary>
internal sealed unsafe class OpenSlideReader : SlideReader
{
    private readonly OpenSlideNative.Api _api;
    private IntPtr _osr;
    private readonly string _path;

    internal OpenSlideReader(string path)
    {
        _api = OpenSlideNative.Functions;
        _path = path;
        var vendorPtr = OpenSlideNative.Api.WithUtf8(path, p => (IntPtr)_api.DetectVendor((byte*)p));
        if (vendorPtr == IntPtr.Zero) throw new InvalidDataException("not a format OpenSlide recognises");
        Vendor = Marshal.PtrToStringUTF8(vendorPtr) ?? "";
        _osr = OpenSlideNative.Api.WithUtf8(path, p => _api.Open((byte*)p));
        if (_osr == IntPtr.Zero) throw new InvalidDataException($"detected as '{Vendor}' but openslide_open failed");
        try
        {
            CheckError("openslide_open");
            var count = _api.GetLevelCount(_osr);
            CheckError("openslide_get_level_count");
            Dimensions = new (long, long)[count];
            Downsamples = new double[count];
            for (var l = 0; l < count; l++)
            {
                long w, h;
                _api.GetLevelDimensions(_osr, l, &w, &h);
                Dimensions[l] = (w, h);
                Downsamples[l] = _api.GetLevelDownsample(_osr, l);
            }
            foreach (var name in new[]
                     {
                         "openslide.mpp-x", "openslide.mpp-y", "openslide.objective-power", "openslide.vendor",
                         "openslide.comment", "aperio.AppMag", "aperio.MPP", "tiff.ImageDescription",
                     })
                if (Property(name) is { } v) Properties[name] = v;
            MppX = WholeSlideImage.ParseDouble(Property("openslide.mpp-x"));
            MppY = WholeSlideImage.ParseDouble(Property("openslide.mpp-y"));
            Magnification = WholeSlideImage.ParseDouble(Property("openslide.objective-power"));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    internal override SlideBackend Backend => SlideBackend.OpenSlide;

    private string? Property(string name)
    {
        var ptr = OpenSlideNative.Api.WithUtf8(name, p => _api.GetPropertyValue(_osr, (byte*)p));
        return ptr == IntPtr.Zero ? null : Marshal.PtrToStringUTF8(ptr);
    }

    private void CheckError(string call)
    {
        var err = _api.GetError(_osr);
        if (err != IntPtr.Zero)
            throw new InvalidDataException($"{call} reported: {Marshal.PtrToStringUTF8(err)}");
    }

    internal override void ReadRegion(long x, long y, int level, int width, int height, Span<byte> rgba)
    {
        fixed (byte* dest = rgba)
        {
            _api.ReadRegion(_osr, (uint*)dest, x, y, level, width, height);
        }
        var err = _api.GetError(_osr);
        if (err != IntPtr.Zero)
            throw new IOException(
                $"OpenSlide failed to read {width}×{height} at ({x}, {y}) level {level} of '{_path}': "
                + $"{Marshal.PtrToStringUTF8(err)} (the file may be damaged; OpenSlide cannot read this slide again "
                + "until it is reopened).");
        // OpenSlide writes premultiplied ARGB as native-endian uint32: bytes B, G, R, A on little-endian machines.
        var n = width * height;
        var span = rgba[..(n * 4)];
        for (var i = 0; i < span.Length; i += 4)
        {
            var b = span[i];
            var a = span[i + 3];
            var r = span[i + 2];
            var g = span[i + 1];
            if (a is not 255 and not 0)
            {
                r = (byte)Math.Min(255, r * 255 / a);
                g = (byte)Math.Min(255, g * 255 / a);
                b = (byte)Math.Min(255, b * 255 / a);
            }
            span[i] = r;
            span[i + 1] = g;
            span[i + 2] = b;
        }
    }

    public override void Dispose()
    {
        if (_osr == IntPtr.Zero) return;
        _api.Close(_osr);
        _osr = IntPtr.Zero;
    }
}

/// <summary>NetVips: every page of a pyramidal TIFF is a level (as NetVips' tiffsave pyramid writes them), any other
/// image is one level.</summary>
internal sealed class VipsReader : SlideReader
{
    private readonly Image[] _levels;
    private readonly string _path;

    internal VipsReader(string path)
    {
        _path = path;
        var first = Image.NewFromFile(path, access: Enums.Access.Random, failOn: Enums.FailOn.Error);
        var levels = new List<Image> { first };
        try
        {
            var loader = first.Contains("vips-loader") ? (string)first.Get("vips-loader") : "";
            Vendor = loader.EndsWith("load", StringComparison.Ordinal) ? loader[..^4] : loader;
            if (loader.StartsWith("tiff", StringComparison.Ordinal) && first.Contains("n-pages"))
            {
                var pages = (int)first.Get("n-pages");
                for (var p = 1; p < pages; p++)
                {
                    var page = Image.NewFromFile(path, access: Enums.Access.Random, failOn: Enums.FailOn.Error,
                        kwargs: new VOption { { "page", p } });
                    // A pyramid level is smaller than the one before (a TIFF's other pages, e.g. a label, are not).
                    if (page.Width >= levels[^1].Width || page.Height >= levels[^1].Height)
                    {
                        page.Dispose();
                        break;
                    }
                    levels.Add(page);
                }
            }
            // Force a decode of a corner of the smallest level so a truncated file fails here, not at the first read.
            using (var probe = levels[^1].Crop(0, 0, Math.Min(16, levels[^1].Width), Math.Min(16, levels[^1].Height)))
                _ = probe.WriteToMemory<byte>();
            _levels = levels.ToArray();
            Dimensions = _levels.Select(l => ((long)l.Width, (long)l.Height)).ToArray();
            Downsamples = _levels
                .Select(l => (first.Width / (double)l.Width + first.Height / (double)l.Height) / 2).ToArray();
            var description = first.Contains("image-description") ? (string)first.Get("image-description") : null;
            foreach (var (k, v) in WholeSlideImage.ParseAperioDescription(description)) Properties[k] = v;
            if (description is not null) Properties["tiff.ImageDescription"] = description;
            if (WholeSlideImage.ParseDouble(Properties.GetValueOrDefault("aperio.MPP")) is { } mpp)
                MppX = MppY = mpp;
            else if (first.Xres > 1.0001 && first.Yres > 1.0001) // libvips' 1 px/mm is its "no resolution" default
            {
                MppX = 1000.0 / first.Xres;
                MppY = 1000.0 / first.Yres;
            }
            Magnification = WholeSlideImage.ParseDouble(Properties.GetValueOrDefault("aperio.AppMag"));
        }
        catch
        {
            foreach (var l in levels) l.Dispose();
            throw;
        }
    }

    internal override SlideBackend Backend => SlideBackend.NetVips;

    internal override void ReadRegion(long x, long y, int level, int width, int height, Span<byte> rgba)
    {
        var image = _levels[level];
        var ds = Downsamples[level];
        // Level-0 origin → this level's pixels (as OpenSlide: floor(x / downsample)).
        var lx = (long)Math.Floor(x / ds);
        var ly = (long)Math.Floor(y / ds);
        var span = rgba[..(width * height * 4)];
        var x0 = Math.Max(lx, 0);
        var y0 = Math.Max(ly, 0);
        var x1 = Math.Min(lx + width, image.Width);
        var y1 = Math.Min(ly + height, image.Height);
        var inside = x1 > x0 && y1 > y0;
        if (!inside || x0 != lx || y0 != ly || x1 != lx + width || y1 != ly + height) span.Clear();
        if (!inside) return;
        int cw = (int)(x1 - x0), ch = (int)(y1 - y0);
        byte[] pixels;
        try
        {
            using var crop = image.Crop((int)x0, (int)y0, cw, ch);
            using var rgbaImage = ImageOps.ToRgba8(crop);
            pixels = rgbaImage.WriteToMemory<byte>();
        }
        catch (VipsException e)
        {
            throw new IOException(
                $"NetVips failed to read {width}×{height} at ({x}, {y}) level {level} of '{_path}': "
                + $"{e.Message.Trim()} (the file may be truncated or damaged).", e);
        }
        var ox = (int)(x0 - lx);
        var oy = (int)(y0 - ly);
        for (var r = 0; r < ch; r++)
            pixels.AsSpan(r * cw * 4, cw * 4).CopyTo(span.Slice(((oy + r) * width + ox) * 4, cw * 4));
    }

    public override void Dispose()
    {
        foreach (var l in _levels) l.Dispose();
    }
}
