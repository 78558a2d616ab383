using System.Globalization;

namespace MLNet.Attention.WholeSlide;

/// <summary>
/// How a slide is cut into tiles (TRIDENT's <c>--mag 20 --patch_size 256</c>, CLAM's <c>patch_size</c>/<c>step</c>):
/// the tile size in pixels at a target resolution given by <see cref="Level"/>, <see cref="Mpp"/> or
/// <see cref="Magnification"/> (checked in that order), the step between tiles, and which tiles count as tissue.
/// </summary>
public sealed record TilingOptions
{
    /// <summary>Tile side in pixels at the target resolution (the size of every emitted image).</summary>
    public int TileSize { get; init; } = 256;

    /// <summary>Target objective magnification (20 = 20×). Needs the slide's objective power, or its MPP (taken as
    /// 10 / MPP×, the 0.25 µm = 40× convention) when the power is missing.</summary>
    public double? Magnification { get; init; } = 20;

    /// <summary>Target microns per pixel; when set it wins over <see cref="Magnification"/>.</summary>
    public double? Mpp { get; init; }

    /// <summary>Tile at this pyramid level's own resolution; when set it wins over <see cref="Mpp"/> and
    /// <see cref="Magnification"/>.</summary>
    public int? Level { get; init; }

    /// <summary>Overlap between neighbouring tiles in target pixels (TRIDENT <c>overlap</c>); ignored when
    /// <see cref="Step"/> is set.</summary>
    public int Overlap { get; init; }

    /// <summary>Distance between tile origins in target pixels (CLAM <c>step_size</c>); default TileSize − Overlap.
    /// </summary>
    public int? Step { get; init; }

    /// <summary>Tissue detection settings; null tiles the whole slide without detection.</summary>
    public TissueDetectionOptions? Tissue { get; init; } = new();

    /// <summary>A tile is kept when at least this fraction of it is tissue (0 keeps any tile touching tissue).
    /// </summary>
    public double MinTissueFraction { get; init; } = 0.25;

    /// <summary>Also emit a <c>Pixels</c> column: Vector&lt;Single&gt; [3, TileSize, TileSize] (CHW, R G B planes),
    /// value × <see cref="PixelScale"/> + <see cref="PixelOffset"/> (ExtractPixels' defaults are 1 and 0).</summary>
    public bool IncludePixels { get; init; }

    /// <summary>Scale applied to each 0–255 channel value in the <c>Pixels</c> column.</summary>
    public float PixelScale { get; init; } = 1f;

    /// <summary>Offset added after scaling in the <c>Pixels</c> column.</summary>
    public float PixelOffset { get; init; }

    /// <summary>Leave out the <c>Image</c> column (coordinates only, or <c>Pixels</c> only).</summary>
    public bool ExcludeImage { get; init; }

    internal int EffectiveStep => Step ?? TileSize - Overlap;

    internal void Validate()
    {
        if (TileSize is < 1 or > 16384)
            throw new ArgumentOutOfRangeException(nameof(TileSize), TileSize,
                "TileSize must be in 1..16384 (256 is usual).");
        if (Overlap < 0 || Overlap >= TileSize)
            throw new ArgumentOutOfRangeException(nameof(Overlap), Overlap,
                $"Overlap must be in 0..{TileSize - 1} (less than TileSize {TileSize}).");
        if (EffectiveStep < 1)
            throw new ArgumentOutOfRangeException(nameof(Step), Step,
                "Step must be ≥ 1 (default TileSize − Overlap).");
        if (Magnification is <= 0 || Mpp is <= 0 || Level is < 0)
            throw new ArgumentOutOfRangeException(nameof(Magnification),
                "Magnification and Mpp must be positive and Level ≥ 0 when set.");
        if (Level is null && Mpp is null && Magnification is null)
            throw new ArgumentException("Set one of TilingOptions.Level, Mpp or Magnification.", nameof(Magnification));
        if (MinTissueFraction is < 0 or > 1)
            throw new ArgumentOutOfRangeException(nameof(MinTissueFraction), MinTissueFraction,
                "MinTissueFraction must be in 0..1.");
        Tissue?.Validate();
    }
}

/// <summary>
/// The tiles of one slide: level-0 origins on a regular grid, the pyramid level they are read from and the sizes
/// involved (the fields of TRIDENT/CLAM <c>coords</c> attributes).
/// </summary>
public sealed class TileGrid
{
    internal TileGrid(string slidePath, long slideWidth, long slideHeight, int tileSize, double targetDownsample,
        long tileSizeLevel0, long stepLevel0, int readLevel, double readDownsample, int readSize,
        double? level0Magnification, long[] coordinates, TissueMask? tissue)
    {
        SlidePath = slidePath;
        SlideWidth = slideWidth;
        SlideHeight = slideHeight;
        TileSize = tileSize;
        TargetDownsample = targetDownsample;
        TileSizeLevel0 = tileSizeLevel0;
        StepLevel0 = stepLevel0;
        ReadLevel = readLevel;
        ReadDownsample = readDownsample;
        ReadSize = readSize;
        Level0Magnification = level0Magnification;
        Coordinates = coordinates;
        Tissue = tissue;
    }

    /// <summary>The slide file.</summary>
    public string SlidePath { get; }

    /// <summary>Level-0 width.</summary>
    public long SlideWidth { get; }

    /// <summary>Level-0 height.</summary>
    public long SlideHeight { get; }

    /// <summary>Emitted tile side in pixels (TRIDENT <c>patch_size</c>).</summary>
    public int TileSize { get; }

    /// <summary>Level-0 pixels per target pixel.</summary>
    public double TargetDownsample { get; }

    /// <summary>Tile side in level-0 pixels (TRIDENT <c>patch_size_level0</c>).</summary>
    public long TileSizeLevel0 { get; }

    /// <summary>Distance between tile origins in level-0 pixels.</summary>
    public long StepLevel0 { get; }

    /// <summary>The pyramid level tiles are read from (CLAM <c>patch_level</c>).</summary>
    public int ReadLevel { get; }

    /// <summary>That level's downsample.</summary>
    public double ReadDownsample { get; }

    /// <summary>Tile side read at <see cref="ReadLevel"/> before resizing to <see cref="TileSize"/>.</summary>
    public int ReadSize { get; }

    /// <summary>The slide's objective magnification (TRIDENT <c>level0_magnification</c>), when known.</summary>
    public double? Level0Magnification { get; }

    /// <summary>The target magnification, when the level-0 one is known.</summary>
    public double? TargetMagnification => Level0Magnification / TargetDownsample;

    /// <summary>Tile origins as level-0 (x, y) pairs, row-major by y then x: 2 × <see cref="Count"/> values.</summary>
    public long[] Coordinates { get; }

    /// <summary>The number of tiles.</summary>
    public int Count => Coordinates.Length / 2;

    /// <summary>The tissue mask the tiles were selected with, or null without tissue detection.</summary>
    public TissueMask? Tissue { get; }
}

/// <summary>Progress of tiling: <paramref name="TilesDone"/> of <paramref name="TilesTotal"/> tiles of slide
/// <paramref name="SlideIndex"/> (0-based) of <paramref name="SlideCount"/>.</summary>
public readonly record struct TilingProgress(string SlideId, int SlideIndex, int SlideCount, int TilesDone,
    int TilesTotal);

/// <summary>Tile grids at a magnification and tile reads from them.</summary>
public static class SlideTiler
{
    /// <summary>The tile grid of <paramref name="slide"/> under <paramref name="options"/> (tissue detection
    /// included when <see cref="TilingOptions.Tissue"/> is set).</summary>
    /// <exception cref="ArgumentException">The tile is larger than the slide, or the requested resolution is finer
    /// than the slide's or cannot be resolved.</exception>
    public static TileGrid CreateGrid(WholeSlideImage slide, TilingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(slide);
        options ??= new TilingOptions();
        options.Validate();
        var inv = CultureInfo.InvariantCulture;
        double ds;
        string what;
        if (options.Level is { } level)
        {
            if (level >= slide.LevelCount)
                throw new ArgumentOutOfRangeException(nameof(options), level,
                    $"TilingOptions.Level {level} does not exist in '{slide.Path}' "
                    + $"(levels 0..{slide.LevelCount - 1}).");
            ds = slide.LevelDownsamples[level];
            what = $"level {level}";
        }
        else if (options.Mpp is { } mpp)
        {
            var mpp0 = slide.MppX ?? throw new ArgumentException(
                $"TilingOptions.Mpp {mpp.ToString(inv)} needs the slide's microns per pixel, but '{slide.Path}' does "
                + "not record them; set TilingOptions.Level instead.", nameof(options));
            ds = mpp / mpp0;
            what = $"{mpp.ToString(inv)} µm/px";
        }
        else
        {
            var mag = options.Magnification!.Value;
            var fromMpp = slide.MppX is { } m ? 10 / m : (double?)null;
            var mag0 = slide.ObjectiveMagnification ?? fromMpp ?? throw new ArgumentException(
                $"TilingOptions.Magnification {mag.ToString(inv)}× needs the slide's objective power or microns per "
                + $"pixel, but '{slide.Path}' records neither; set TilingOptions.Level (or Mpp) instead.",
                nameof(options));
            ds = mag0 / mag;
            what = $"{mag.ToString(inv)}× (slide {mag0.ToString(inv)}×)";
        }
        if (ds < 1 - 1e-6)
            throw new ArgumentException(
                $"Tiling '{slide.Path}' at {what} asks for {1 / ds:0.##}× the level-0 resolution; the slide has no "
                + "finer pixels. Request a magnification at most the slide's, or a larger Mpp.", nameof(options));
        var tile0 = (long)Math.Round(options.TileSize * ds);
        var step0 = Math.Max(1, (long)Math.Round(options.EffectiveStep * ds));
        if (tile0 > slide.Width || tile0 > slide.Height)
            throw new ArgumentException(
                $"A {options.TileSize} px tile at {what} covers {tile0}×{tile0} level-0 pixels, but '{slide.Path}' is "
                + $"{slide.Width}×{slide.Height} at level 0. Use a smaller TileSize or a lower magnification.",
                nameof(options));
        var readLevel = options.Level ?? slide.GetBestLevelForDownsample(ds);
        var readDs = slide.LevelDownsamples[readLevel];
        var readSize = (int)Math.Max(1, Math.Round(tile0 / readDs));
        var tissue = options.Tissue is { } t ? TissueDetector.Detect(slide, t) : null;
        var coords = new List<long>();
        for (long y = 0; y + tile0 <= slide.Height; y += step0)
            for (long x = 0; x + tile0 <= slide.Width; x += step0)
            {
                if (tissue is not null)
                {
                    var f = tissue.TissueFraction(x, y, tile0, tile0);
                    if (options.MinTissueFraction > 0 ? f < options.MinTissueFraction : f <= 0) continue;
                }
                coords.Add(x);
                coords.Add(y);
            }
        return new TileGrid(slide.Path, slide.Width, slide.Height, options.TileSize, ds, tile0, step0, readLevel,
            readDs, readSize, slide.ObjectiveMagnification, coords.ToArray(), tissue);
    }

    /// <summary>Reads the tile at level-0 origin (<paramref name="x"/>, <paramref name="y"/>) of
    /// <paramref name="grid"/>: RGBA bytes, TileSize × TileSize × 4 (read at the grid's level, resized when that
    /// level's size differs).</summary>
    public static byte[] ReadTile(WholeSlideImage slide, TileGrid grid, long x, long y)
    {
        ArgumentNullException.ThrowIfNull(slide);
        ArgumentNullException.ThrowIfNull(grid);
        var raw = slide.ReadRegion(x, y, grid.ReadLevel, grid.ReadSize, grid.ReadSize);
        return ImageOps.Resize(raw, grid.ReadSize, grid.ReadSize, grid.TileSize, grid.TileSize);
    }
}
