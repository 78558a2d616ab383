using System.Globalization;

namespace MLNet.Attention.WholeSlide;

/// <summary>
/// Tissue segmentation settings, as CLAM's <c>segmentTissue</c>: HSV saturation of a low-resolution view, median
/// blur, a fixed or Otsu threshold, a morphological close, then connected tissue regions kept by net area and holes
/// kept by area. Areas are in units of a reference patch (<see cref="ReferencePatchSize"/>² level-0 pixels), as CLAM's
/// <c>a_t</c> and <c>a_h</c>, so one setting suits any mask resolution.
/// </summary>
public sealed record TissueDetectionOptions
{
    /// <summary>Saturation threshold (0–255): a pixel is tissue when its median-blurred saturation is above it
    /// (CLAM <c>sthresh</c> 8). Ignored when <see cref="UseOtsu"/>.</summary>
    public int SaturationThreshold { get; init; } = 8;

    /// <summary>Pick the saturation threshold by Otsu's method on the blurred saturation (CLAM <c>use_otsu</c>).
    /// </summary>
    public bool UseOtsu { get; init; }

    /// <summary>Median blur kernel size in mask pixels, odd (CLAM <c>mthresh</c> 7).</summary>
    public int MedianBlurSize { get; init; } = 7;

    /// <summary>Morphological close kernel size in mask pixels; 0 turns it off (CLAM <c>close</c> 4).</summary>
    public int CloseSize { get; init; } = 4;

    /// <summary>Minimum net tissue area of a region, in reference patches (CLAM <c>a_t</c> 100).</summary>
    public double MinTissueArea { get; init; } = 100;

    /// <summary>Holes at most this large (reference patches) are filled; larger ones stay holes (CLAM <c>a_h</c> 16).
    /// </summary>
    public double MaxHoleArea { get; init; } = 16;

    /// <summary>At most this many holes (the largest) are kept per region (CLAM <c>max_n_holes</c> 8).</summary>
    public int MaxHolesPerRegion { get; init; } = 8;

    /// <summary>The reference patch side in level-0 pixels that areas are counted in (CLAM <c>ref_patch_size</c>
    /// 512).</summary>
    public int ReferencePatchSize { get; init; } = 512;

    /// <summary>The mask's downsample from level 0 (CLAM segments at the level nearest 64×).</summary>
    public double MaskDownsample { get; init; } = 64;

    /// <summary>The mask's longer side is at least this many pixels (or the slide's size), so small slides still get
    /// a usable mask.</summary>
    public int MinMaskSize { get; init; } = 512;

    internal void Validate()
    {
        if (SaturationThreshold is < 0 or > 254)
            throw new ArgumentOutOfRangeException(nameof(SaturationThreshold), SaturationThreshold,
                "The saturation threshold must be in 0..254 (8 is CLAM's default).");
        if (MedianBlurSize < 1 || MedianBlurSize % 2 == 0)
            throw new ArgumentOutOfRangeException(nameof(MedianBlurSize), MedianBlurSize,
                "The median blur size must be a positive odd number (7 is CLAM's default; 1 turns it off).");
        if (CloseSize < 0)
            throw new ArgumentOutOfRangeException(nameof(CloseSize), CloseSize, "The close size must be ≥ 0.");
        if (MinTissueArea < 0 || MaxHoleArea < 0 || MaxHolesPerRegion < 0)
            throw new ArgumentOutOfRangeException(nameof(MinTissueArea),
                "MinTissueArea, MaxHoleArea and MaxHolesPerRegion must be ≥ 0.");
        if (ReferencePatchSize <= 0 || MaskDownsample <= 0 || MinMaskSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(ReferencePatchSize),
                "ReferencePatchSize, MaskDownsample and MinMaskSize must be positive.");
    }
}

/// <summary>A connected tissue region of a <see cref="TissueMask"/>, in level-0 pixels.</summary>
/// <param name="X">Bounding box left.</param>
/// <param name="Y">Bounding box top.</param>
/// <param name="Width">Bounding box width.</param>
/// <param name="Height">Bounding box height.</param>
/// <param name="Area">Net tissue area (holes kept as holes excluded), level-0 pixels².</param>
/// <param name="HoleCount">Holes kept (not filled) in the region.</param>
/// <param name="HoleArea">Their total area, level-0 pixels².</param>
public sealed record TissueRegion(long X, long Y, long Width, long Height, double Area, int HoleCount, double HoleArea);

/// <summary>No tissue was found; the message gives the thresholds used and which option to change.</summary>
public sealed class NoTissueFoundException(string message) : InvalidOperationException(message);

/// <summary>
/// A binary tissue mask over the whole slide at a low resolution (1 = tissue), with its regions and the threshold
/// used. <see cref="TissueFraction(long, long, long, long)"/> answers how much of a level-0 rectangle is tissue.
/// </summary>
public sealed class TissueMask
{
    private readonly int[] _integral; // (Width + 1) × (Height + 1) summed-area table

    internal TissueMask(int width, int height, double dsx, double dsy, byte[] mask, IReadOnlyList<TissueRegion> regions,
        int threshold)
    {
        Width = width;
        Height = height;
        DownsampleX = dsx;
        DownsampleY = dsy;
        Mask = mask;
        Regions = regions;
        Threshold = threshold;
        _integral = new int[(width + 1) * (height + 1)];
        for (var y = 0; y < height; y++)
        {
            var row = 0;
            for (var x = 0; x < width; x++)
            {
                row += mask[y * width + x];
                _integral[(y + 1) * (width + 1) + x + 1] = _integral[y * (width + 1) + x + 1] + row;
            }
        }
    }

    /// <summary>Mask width in pixels.</summary>
    public int Width { get; }

    /// <summary>Mask height in pixels.</summary>
    public int Height { get; }

    /// <summary>Level-0 pixels per mask pixel along x.</summary>
    public double DownsampleX { get; }

    /// <summary>Level-0 pixels per mask pixel along y.</summary>
    public double DownsampleY { get; }

    /// <summary>Width × Height bytes, row-major: 1 tissue, 0 background.</summary>
    public byte[] Mask { get; }

    /// <summary>The tissue regions kept, largest first.</summary>
    public IReadOnlyList<TissueRegion> Regions { get; }

    /// <summary>The saturation threshold applied (the fixed one, or Otsu's).</summary>
    public int Threshold { get; }

    /// <summary>The fraction of the slide that is tissue.</summary>
    public double TissueFractionOfSlide => _integral[^1] / (double)(Width * Height);

    /// <summary>
    /// The fraction of the level-0 rectangle (<paramref name="x"/>, <paramref name="y"/>, <paramref name="width"/>,
    /// <paramref name="height"/>) that is tissue: the mean of the mask pixels whose centres fall in it (the pixel
    /// under its centre when it is smaller than a mask pixel).
    /// </summary>
    public double TissueFraction(long x, long y, long width, long height)
    {
        var x0 = (int)Math.Clamp(Math.Ceiling(x / DownsampleX - 0.5), 0, Width);
        var y0 = (int)Math.Clamp(Math.Ceiling(y / DownsampleY - 0.5), 0, Height);
        var x1 = (int)Math.Clamp(Math.Ceiling((x + width) / DownsampleX - 0.5), 0, Width);
        var y1 = (int)Math.Clamp(Math.Ceiling((y + height) / DownsampleY - 0.5), 0, Height);
        if (x1 <= x0 || y1 <= y0)
        {
            var cx = (int)Math.Clamp((x + width / 2.0) / DownsampleX, 0, Width - 1);
            var cy = (int)Math.Clamp((y + height / 2.0) / DownsampleY, 0, Height - 1);
            return Mask[cy * Width + cx];
        }
        var w1 = Width + 1;
        var sum = _integral[y1 * w1 + x1] - _integral[y0 * w1 + x1] - _integral[y1 * w1 + x0] + _integral[y0 * w1 + x0];
        return sum / (double)((x1 - x0) * (y1 - y0));
    }
}

/// <summary>CLAM-style tissue detection (see <see cref="TissueDetectionOptions"/>).</summary>
public static class TissueDetector
{
    /// <summary>Detects tissue on <paramref name="slide"/>.</summary>
    /// <exception cref="NoTissueFoundException">Nothing passed the thresholds and area filters.</exception>
    public static TissueMask Detect(WholeSlideImage slide, TissueDetectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(slide);
        options ??= new TissueDetectionOptions();
        options.Validate();
        var longer = Math.Max(slide.Width, slide.Height);
        var coarse = (long)Math.Ceiling(longer / options.MaskDownsample);
        var target = Math.Min(longer, Math.Max(options.MinMaskSize, coarse));
        var scale = target / (double)longer;
        var mw = (int)Math.Max(1, Math.Round(slide.Width * scale));
        var mh = (int)Math.Max(1, Math.Round(slide.Height * scale));
        var raster = slide.ReadScaled(mw, mh);
        return Detect(raster, slide.Width / (double)mw, slide.Height / (double)mh, options, slide.Path);
    }

    /// <summary>Detects tissue on a low-resolution RGBA view of a slide whose pixels stand for
    /// <paramref name="downsampleX"/> × <paramref name="downsampleY"/> level-0 pixels.</summary>
    public static TissueMask Detect(SlideRaster raster, double downsampleX, double downsampleY,
        TissueDetectionOptions? options = null, string? slideName = null)
    {
        ArgumentNullException.ThrowIfNull(raster);
        options ??= new TissueDetectionOptions();
        options.Validate();
        int w = raster.Width, h = raster.Height, n = w * h;
        var sat = new byte[n];
        var px = raster.Rgba;
        for (var i = 0; i < n; i++)
        {
            int r = px[4 * i], g = px[4 * i + 1], b = px[4 * i + 2], a = px[4 * i + 3];
            var max = Math.Max(r, Math.Max(g, b));
            var min = Math.Min(r, Math.Min(g, b));
            sat[i] = a == 0 || max == 0 ? (byte)0 : (byte)((255 * (max - min) + max / 2) / max);
        }
        var blurred = options.MedianBlurSize > 1 ? MedianBlur(sat, w, h, options.MedianBlurSize) : sat;
        var threshold = options.UseOtsu ? Otsu(blurred) : options.SaturationThreshold;
        var mask = new byte[n];
        var foreground = 0;
        var maxSat = 0;
        for (var i = 0; i < n; i++)
        {
            if (blurred[i] > maxSat) maxSat = blurred[i];
            if (blurred[i] > threshold) { mask[i] = 1; foreground++; }
        }
        if (options.CloseSize > 1)
        {
            mask = MorphMax(mask, w, h, options.CloseSize, dilate: true);
            mask = MorphMax(mask, w, h, options.CloseSize, dilate: false);
        }
        var pixelArea = downsampleX * downsampleY;
        var refArea = (double)options.ReferencePatchSize * options.ReferencePatchSize;
        var minTissue = options.MinTissueArea * refArea;
        var maxHole = options.MaxHoleArea * refArea;
        var (final, regions, rejected) = FilterRegions(mask, w, h, pixelArea, downsampleX, downsampleY, minTissue,
            maxHole, options.MaxHolesPerRegion);
        if (regions.Count == 0)
        {
            var inv = CultureInfo.InvariantCulture;
            var thr = options.UseOtsu ? $"Otsu threshold {threshold}" : $"fixed threshold {threshold}";
            var ds = downsampleX.ToString("0.##", inv);
            var minArea = minTissue.ToString("0", inv);
            var minPatches = options.MinTissueArea.ToString(inv);
            throw new NoTissueFoundException(
                $"No tissue found in '{slideName ?? "the slide"}': saturation (HSV S, 0–255) median-blurred with "
                + $"kernel {options.MedianBlurSize} on a {w}×{h} mask (downsample {ds}), {thr} "
                + $"(SaturationThreshold {options.SaturationThreshold}, UseOtsu {options.UseOtsu}); highest blurred "
                + $"saturation {maxSat}, {foreground} pixel(s) above the threshold, {rejected} region(s) below "
                + $"MinTissueArea {minPatches} reference patches of {options.ReferencePatchSize}² "
                + $"(= {minArea} level-0 px²). Expected a stained slide; if this one is faint lower "
                + "TissueDetectionOptions.SaturationThreshold (or set UseOtsu), if its tissue is small lower "
                + "MinTissueArea or ReferencePatchSize, or tile without tissue detection "
                + "(TilingOptions.Tissue = null).");
        }
        return new TissueMask(w, h, downsampleX, downsampleY, final, regions, threshold);
    }

    /// <summary>Median filter (replicated borders, as OpenCV's medianBlur) with a sliding histogram per row.</summary>
    internal static byte[] MedianBlur(byte[] src, int w, int h, int k)
    {
        var r = k / 2;
        var dst = new byte[src.Length];
        var hist = new int[256];
        var half = k * k / 2; // the median is the value with `half` values below it
        for (var y = 0; y < h; y++)
        {
            Array.Clear(hist);
            for (var dy = -r; dy <= r; dy++)
            {
                var row = Math.Clamp(y + dy, 0, h - 1) * w;
                for (var dx = -r; dx <= r; dx++) hist[src[row + Math.Clamp(dx, 0, w - 1)]]++;
            }
            int m = 0, below = 0;
            while (below + hist[m] <= half) below += hist[m++];
            dst[y * w] = (byte)m;
            for (var x = 1; x < w; x++)
            {
                var outX = Math.Clamp(x - r - 1, 0, w - 1);
                var inX = Math.Clamp(x + r, 0, w - 1);
                for (var dy = -r; dy <= r; dy++)
                {
                    var row = Math.Clamp(y + dy, 0, h - 1) * w;
                    var vo = src[row + outX];
                    hist[vo]--;
                    if (vo < m) below--;
                    var vi = src[row + inX];
                    hist[vi]++;
                    if (vi < m) below++;
                }
                while (below > half) below -= hist[--m];
                while (below + hist[m] <= half) below += hist[m++];
                dst[y * w + x] = (byte)m;
            }
        }
        return dst;
    }

    /// <summary>Otsu's threshold of 8-bit values (values above it are foreground).</summary>
    internal static int Otsu(byte[] values)
    {
        var hist = new long[256];
        foreach (var v in values) hist[v]++;
        double total = values.Length, sumAll = 0;
        for (var i = 0; i < 256; i++) sumAll += i * (double)hist[i];
        double wB = 0, sumB = 0, best = -1;
        var threshold = 0;
        for (var t = 0; t < 256; t++)
        {
            wB += hist[t];
            if (wB == 0) continue;
            var wF = total - wB;
            if (wF == 0) break;
            sumB += t * (double)hist[t];
            var mB = sumB / wB;
            var mF = (sumAll - sumB) / wF;
            var between = wB * wF * (mB - mF) * (mB - mF);
            if (between > best) { best = between; threshold = t; }
        }
        return threshold;
    }

    /// <summary>Binary dilation (max) or erosion (min) with a k × k square (anchor at k/2, as OpenCV).</summary>
    internal static byte[] MorphMax(byte[] src, int w, int h, int k, bool dilate)
    {
        var a = k / 2;
        var tmp = new byte[src.Length];
        var dst = new byte[src.Length];
        byte hit = dilate ? (byte)1 : (byte)0;
        for (var y = 0; y < h; y++)
            for (var x = 0; x < w; x++)
            {
                var v = (byte)(1 - hit);
                for (var d = 0; d < k && v != hit; d++)
                {
                    var xx = x + d - a;
                    if (xx < 0 || xx >= w) continue; // outside counts as neutral for both operations
                    if (src[y * w + xx] == hit) v = hit;
                }
                tmp[y * w + x] = v;
            }
        for (var y = 0; y < h; y++)
            for (var x = 0; x < w; x++)
            {
                var v = (byte)(1 - hit);
                for (var d = 0; d < k && v != hit; d++)
                {
                    var yy = y + d - a;
                    if (yy < 0 || yy >= h) continue;
                    if (tmp[yy * w + x] == hit) v = hit;
                }
                dst[y * w + x] = v;
            }
        return dst;
    }

    /// <summary>Connected tissue regions (8-connected) and their holes (4-connected background not reaching the
    /// border), filtered as CLAM's <c>filter_contours</c>.</summary>
    private static (byte[] Mask, List<TissueRegion> Regions, int Rejected) FilterRegions(byte[] mask, int w, int h,
        double pixelArea, double dsx, double dsy, double minTissue, double maxHole, int maxHoles)
    {
        var n = w * h;
        var fgLabel = Label(mask, w, h, 1, eight: true, out var fgCount);
        var bgLabel = Label(mask, w, h, 0, eight: false, out var bgCount);
        var fgArea = new long[fgCount + 1];
        var minX = Enumerable.Repeat(int.MaxValue, fgCount + 1).ToArray();
        var minY = Enumerable.Repeat(int.MaxValue, fgCount + 1).ToArray();
        var maxX = new int[fgCount + 1];
        var maxY = new int[fgCount + 1];
        var bgArea = new long[bgCount + 1];
        var bgBorder = new bool[bgCount + 1];
        var bgOwner = new int[bgCount + 1];
        for (var y = 0; y < h; y++)
            for (var x = 0; x < w; x++)
            {
                var i = y * w + x;
                if (mask[i] == 1)
                {
                    var l = fgLabel[i];
                    fgArea[l]++;
                    minX[l] = Math.Min(minX[l], x);
                    minY[l] = Math.Min(minY[l], y);
                    maxX[l] = Math.Max(maxX[l], x);
                    maxY[l] = Math.Max(maxY[l], y);
                }
                else
                {
                    var l = bgLabel[i];
                    bgArea[l]++;
                    if (x == 0 || y == 0 || x == w - 1 || y == h - 1) bgBorder[l] = true;
                    // The first pixel in scan order: the pixel above it is on the enclosing region's rim.
                    else if (bgOwner[l] == 0) bgOwner[l] = fgLabel[i - w];
                }
            }
        // Holes per region: keep the largest `maxHoles` above `maxHole`, fill the rest.
        var keepHole = new bool[bgCount + 1];
        var holeArea = new double[fgCount + 1];
        var holeCount = new int[fgCount + 1];
        foreach (var group in Enumerable.Range(1, bgCount).Where(l => !bgBorder[l] && bgOwner[l] > 0)
                     .GroupBy(l => bgOwner[l]))
            foreach (var l in group.Where(l => bgArea[l] * pixelArea > maxHole).OrderByDescending(l => bgArea[l])
                         .Take(maxHoles))
            {
                keepHole[l] = true;
                holeArea[group.Key] += bgArea[l] * pixelArea;
                holeCount[group.Key]++;
            }
        // Net area of a region: its pixels plus its filled holes (the contour's area) less its kept holes.
        var gross = fgArea.Select(a => a * pixelArea).ToArray();
        for (var l = 1; l <= bgCount; l++)
            if (!bgBorder[l] && bgOwner[l] > 0 && !keepHole[l]) gross[bgOwner[l]] += bgArea[l] * pixelArea;
        var keep = new bool[fgCount + 1];
        var regions = new List<TissueRegion>();
        var rejected = 0;
        for (var l = 1; l <= fgCount; l++)
        {
            if (gross[l] <= 0 || gross[l] < minTissue) { rejected++; continue; }
            keep[l] = true;
            regions.Add(new TissueRegion((long)(minX[l] * dsx), (long)(minY[l] * dsy),
                (long)Math.Ceiling((maxX[l] - minX[l] + 1) * dsx), (long)Math.Ceiling((maxY[l] - minY[l] + 1) * dsy),
                gross[l], holeCount[l], holeArea[l]));
        }
        var result = new byte[n];
        for (var i = 0; i < n; i++)
        {
            if (mask[i] == 1) result[i] = keep[fgLabel[i]] ? (byte)1 : (byte)0;
            else
            {
                var b = bgLabel[i];
                if (!bgBorder[b] && bgOwner[b] > 0 && !keepHole[b] && keep[bgOwner[b]]) result[i] = 1;
            }
        }
        regions.Sort((a, b) => b.Area.CompareTo(a.Area));
        return (result, regions, rejected);
    }

    /// <summary>Labels the connected components of pixels equal to <paramref name="value"/> (labels from 1).</summary>
    private static int[] Label(byte[] mask, int w, int h, byte value, bool eight, out int count)
    {
        var labels = new int[mask.Length];
        var stack = new Stack<int>();
        count = 0;
        for (var start = 0; start < mask.Length; start++)
        {
            if (mask[start] != value || labels[start] != 0) continue;
            labels[start] = ++count;
            stack.Push(start);
            while (stack.Count > 0)
            {
                var i = stack.Pop();
                int x = i % w, y = i / w;
                for (var dy = -1; dy <= 1; dy++)
                    for (var dx = -1; dx <= 1; dx++)
                    {
                        if ((dx == 0 && dy == 0) || (!eight && dx != 0 && dy != 0)) continue;
                        int xx = x + dx, yy = y + dy;
                        if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                        var j = yy * w + xx;
                        if (mask[j] != value || labels[j] != 0) continue;
                        labels[j] = count;
                        stack.Push(j);
                    }
            }
        }
        return labels;
    }
}
