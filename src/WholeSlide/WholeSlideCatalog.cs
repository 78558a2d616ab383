using Microsoft.ML;

namespace MLNet.Attention.WholeSlide;

/// <summary>Whole-slide entries on <see cref="MLContext.Data"/>.</summary>
public static class WholeSlideCatalog
{
    /// <summary>
    /// The tiles of <paramref name="slidePaths"/> as a streaming <see cref="IDataView"/> (see
    /// <see cref="SlideTileDataView"/>): <c>SlideId</c>, <c>TileX</c>, <c>TileY</c> (level-0), <c>Image</c> and,
    /// with <see cref="TilingOptions.IncludePixels"/>, <c>Pixels</c>.
    /// </summary>
    /// <param name="catalog">mlContext.Data.</param>
    /// <param name="slidePaths">Slide files, read in this order.</param>
    /// <param name="options">Tile size, magnification, step, tissue detection; default 256 px at 20×.</param>
    /// <param name="progress">Receives tiles done/total per slide as a cursor advances.</param>
    public static SlideTileDataView LoadSlideTiles(this DataOperationsCatalog catalog, IEnumerable<string> slidePaths,
        TilingOptions? options = null, IProgress<TilingProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new SlideTileDataView(slidePaths, options, progress);
    }
}
