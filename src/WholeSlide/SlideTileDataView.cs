using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace MLNet.Attention.WholeSlide;

/// <summary>
/// A streaming <see cref="IDataView"/> of the tiles of one or more slides: one row per tile, slide after slide. A
/// cursor opens a slide (and detects its tissue) when it reaches it and reads a tile only when that row's
/// <c>Image</c> or <c>Pixels</c> value is asked for, so no more than one tile is held at a time. Columns:
/// <c>SlideId</c> (Text, the file name without extension), <c>TileX</c>, <c>TileY</c> (Int64 level-0 origin),
/// <c>Image</c> (<see cref="MLImage"/>, TileSize², RGBA; feeds <c>ResizeImages</c>/<c>ExtractPixels</c> without
/// <c>LoadImages</c>) and, with <see cref="TilingOptions.IncludePixels"/>, <c>Pixels</c> (Vector&lt;Single&gt;
/// [3, TileSize, TileSize]). An <c>Image</c> value is disposed when its cursor moves to the next row: copy it to keep
/// it.
/// </summary>
public sealed class SlideTileDataView : IDataView
{
    /// <summary>Column names.</summary>
    public const string SlideIdColumn = "SlideId", TileXColumn = "TileX", TileYColumn = "TileY", ImageColumn = "Image",
        PixelsColumn = "Pixels";

    private readonly string[] _paths;
    private readonly TilingOptions _options;
    private readonly IProgress<TilingProgress>? _progress;

    /// <summary>A view over <paramref name="slidePaths"/> tiled with <paramref name="options"/>; progress (tiles done
    /// per slide) goes to <paramref name="progress"/> as the cursor advances.</summary>
    public SlideTileDataView(IEnumerable<string> slidePaths, TilingOptions? options = null,
        IProgress<TilingProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(slidePaths);
        _paths = slidePaths.Select(Path.GetFullPath).ToArray();
        if (_paths.Length == 0) throw new ArgumentException("Pass at least one slide path.", nameof(slidePaths));
        foreach (var p in _paths)
            if (!File.Exists(p))
                throw new FileNotFoundException($"Slide file '{p}' does not exist; pass existing slide paths.", p);
        _options = options ?? new TilingOptions();
        _options.Validate();
        _progress = progress;
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(SlideIdColumn, TextDataViewType.Instance);
        builder.AddColumn(TileXColumn, NumberDataViewType.Int64);
        builder.AddColumn(TileYColumn, NumberDataViewType.Int64);
        if (!_options.ExcludeImage)
            builder.AddColumn(ImageColumn, new ImageDataViewType(_options.TileSize, _options.TileSize));
        if (_options.IncludePixels)
            builder.AddColumn(PixelsColumn,
                new VectorDataViewType(NumberDataViewType.Single, 3, _options.TileSize, _options.TileSize));
        Schema = builder.ToSchema();
    }

    /// <summary>The slide paths, in row order.</summary>
    public IReadOnlyList<string> SlidePaths => _paths;

    /// <inheritdoc/>
    public bool CanShuffle => false;

    /// <inheritdoc/>
    public DataViewSchema Schema { get; }

    /// <summary>Unknown until the slides are tiled (tissue detection decides the count): null.</summary>
    public long? GetRowCount() => null;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, columnsNeeded.Select(c => c.Index).ToHashSet());

    /// <inheritdoc/>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n,
        Random? rand = null) => [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly SlideTileDataView _view;
        private readonly HashSet<int> _active;
        private int _slide = -1;
        private WholeSlideImage? _current;
        private TileGrid? _grid;
        private ReadOnlyMemory<char> _slideId;
        private int _tile = -1;
        private long _position = -1;
        private byte[]? _rgba; // this row's tile, read on first request
        private MLImage? _image;

        internal Cursor(SlideTileDataView view, HashSet<int> active)
        {
            _view = view;
            _active = active;
        }

        public override DataViewSchema Schema => _view.Schema;
        public override long Position => _position;
        public override long Batch => 0;

        public override ValueGetter<DataViewRowId> GetIdGetter() =>
            (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override bool MoveNext()
        {
            _rgba = null;
            _image?.Dispose();
            _image = null;
            while (true)
            {
                if (_grid is not null && _tile + 1 < _grid.Count)
                {
                    _tile++;
                    _position++;
                    Report(_tile + 1);
                    return true;
                }
                _current?.Dispose();
                _current = null;
                _grid = null;
                if (++_slide >= _view._paths.Length) return false;
                var path = _view._paths[_slide];
                _current = WholeSlideImage.Open(path);
                _grid = SlideTiler.CreateGrid(_current, _view._options);
                _slideId = Path.GetFileNameWithoutExtension(path).AsMemory();
                _tile = -1;
                Report(0);
            }
        }

        private void Report(int done) => _view._progress?.Report(new TilingProgress(_slideId.ToString(), _slide,
            _view._paths.Length, done, _grid!.Count));

        private byte[] Tile()
        {
            if (_rgba is not null) return _rgba;
            var coords = _grid!.Coordinates;
            return _rgba = SlideTiler.ReadTile(_current!, _grid, coords[2 * _tile], coords[2 * _tile + 1]);
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column))
                throw new InvalidOperationException(
                    $"Column '{column.Name}' was not requested when this cursor was created; include it in "
                    + "columnsNeeded.");
            Delegate getter = column.Name switch
            {
                SlideIdColumn => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = _slideId),
                TileXColumn => (ValueGetter<long>)((ref long v) => v = _grid!.Coordinates[2 * _tile]),
                TileYColumn => (ValueGetter<long>)((ref long v) => v = _grid!.Coordinates[2 * _tile + 1]),
                ImageColumn => (ValueGetter<MLImage>)((ref MLImage v) =>
                {
                    var size = _view._options.TileSize;
                    _image ??= MLImage.CreateFromPixels(size, size, MLPixelFormat.Rgba32, Tile());
                    v = _image;
                }),
                PixelsColumn => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) =>
                {
                    var size = _view._options.TileSize;
                    var plane = size * size;
                    var editor = VBufferEditor.Create(ref v, 3 * plane);
                    var rgba = Tile();
                    float scale = _view._options.PixelScale, offset = _view._options.PixelOffset;
                    for (var i = 0; i < plane; i++)
                    {
                        editor.Values[i] = rgba[4 * i] * scale + offset;
                        editor.Values[plane + i] = rgba[4 * i + 1] * scale + offset;
                        editor.Values[2 * plane + i] = rgba[4 * i + 2] * scale + offset;
                    }
                    v = editor.Commit();
                }),
                _ => throw new ArgumentOutOfRangeException(nameof(column), column.Name, "Not a column of this view."),
            };
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException(
                $"Column '{column.Name}' is {column.Type}; asked for a getter of {typeof(TValue).Name}.");
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _image?.Dispose();
                _image = null;
                _current?.Dispose();
                _current = null;
            }
            base.Dispose(disposing);
        }
    }
}
