using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// A cohort of CLAM/TRIDENT feature files as an <see cref="IDataView"/>, one row per file (slide), read lazily: a
/// cursor opens a file only when a row's <see cref="FeaturesColumnName"/>, <see cref="CoordinatesColumnName"/> or
/// <see cref="InstanceCountColumnName"/> value is fetched and closes it again, so memory holds one bag at a time
/// whatever the cohort size. Columns: <see cref="SlideIdColumnName"/> (Text: the file name without <c>.h5</c>), with
/// a CLAM CSV <see cref="LabelColumnName"/> (Text: map it with <c>MapValueToKey</c>), <see cref="FeaturesColumnName"/>
/// (variable-size <c>Vector&lt;Single&gt;</c>, N × D row-major, annotated with <see cref="InstanceBags.InstanceSizeName"/>
/// = D), <see cref="CoordinatesColumnName"/> (variable-size <c>Vector&lt;Int64&gt;</c>, N × 2 level-0 x, y; empty for
/// a file without <c>coords</c>) and <see cref="InstanceCountColumnName"/> (Int32, N). D is read from the first file;
/// a file of another feature size is refused when its row is read. Shuffling cursors visit the files in a random order
/// (a full permutation), so the trainers shuffle a cohort with one bag in memory, without a shuffle pool.
/// Create it with <c>mlContext.Data.LoadFeatureBags(...)</c>.
/// </summary>
public sealed class FeatureBagDataView : IDataView, MLNet.Attention.Data.IRandomOrderDataView
{
    /// <summary>The slide id column (Text): the file name without extension, or the CSV's <c>slide_id</c>.</summary>
    public const string SlideIdColumnName = "SlideId";

    /// <summary>The label column (Text) of a view loaded from a CLAM dataset CSV.</summary>
    public const string LabelColumnName = "Label";

    /// <summary>The bag column: variable-size Vector&lt;Single&gt; of N × D values with the InstanceSize annotation.</summary>
    public const string FeaturesColumnName = "Features";

    /// <summary>The coordinates column: variable-size Vector&lt;Int64&gt; of N × 2 values.</summary>
    public const string CoordinatesColumnName = "Coordinates";

    /// <summary>The instance count column (Int32).</summary>
    public const string InstanceCountColumnName = "InstanceCount";

    private readonly string[] _paths;
    private readonly string[] _slideIds;
    private readonly string[]? _labels;

    internal FeatureBagDataView(IReadOnlyList<string> paths, IReadOnlyList<string>? slideIds, IReadOnlyList<string>? labels)
    {
        if (paths.Count == 0)
            throw new ArgumentException("LoadFeatureBags: no feature files were given; expected at least one CLAM/TRIDENT " +
                ".h5 file (e.g. Directory.GetFiles(featureDirectory, \"*.h5\")).", nameof(paths));
        _paths = paths.ToArray();
        for (int i = 0; i < _paths.Length; i++)
            if (string.IsNullOrWhiteSpace(_paths[i]))
                throw new ArgumentException($"LoadFeatureBags: feature file path {i} is empty.", nameof(paths));
        _slideIds = slideIds?.ToArray() ?? _paths.Select(p => Path.GetFileNameWithoutExtension(p)).ToArray();
        _labels = labels?.ToArray();
        using (var first = FeatureFileReader.Open(_paths[0]))
            FeatureSize = first.FeatureSize;

        var builder = new DataViewSchema.Builder();
        builder.AddColumn(SlideIdColumnName, TextDataViewType.Instance);
        if (_labels is not null) builder.AddColumn(LabelColumnName, TextDataViewType.Instance);
        builder.AddColumn(FeaturesColumnName, new VectorDataViewType(NumberDataViewType.Single),
            InstanceBags.InstanceSizeAnnotations(FeatureSize));
        builder.AddColumn(CoordinatesColumnName, new VectorDataViewType(NumberDataViewType.Int64));
        builder.AddColumn(InstanceCountColumnName, NumberDataViewType.Int32);
        Schema = builder.ToSchema();
    }

    /// <summary>The feature files, one per row.</summary>
    public IReadOnlyList<string> Paths => _paths;

    /// <summary>D, the instance feature size (of the first file; every file must have it).</summary>
    public int FeatureSize { get; }

    /// <inheritdoc/>
    public bool CanShuffle => true;

    /// <inheritdoc/>
    public DataViewSchema Schema { get; }

    /// <summary>The number of files.</summary>
    public long? GetRowCount() => _paths.Length;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        ArgumentNullException.ThrowIfNull(columnsNeeded);
        var active = new bool[Schema.Count];
        foreach (var column in columnsNeeded) active[column.Index] = true;
        var order = Enumerable.Range(0, _paths.Length).ToArray();
        if (rand is not null)
            for (int i = order.Length - 1; i > 0; i--)
            {
                int j = rand.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        return new Cursor(this, active, order);
    }

    /// <inheritdoc/>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    /// <summary>The view of a CLAM dataset CSV (<c>case_id,slide_id,label</c>): one row per CSV row, the features of
    /// <c>&lt;featureDirectory&gt;/&lt;slide_id&gt;.h5</c> (or CLAM's <c>&lt;featureDirectory&gt;/h5_files/&lt;slide_id&gt;.h5</c>).</summary>
    internal static FeatureBagDataView FromClamCsv(string csvPath, string featureDirectory, string? labelColumn)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(csvPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(featureDirectory);
        if (!File.Exists(csvPath))
            throw new FileNotFoundException($"LoadFeatureBags: the dataset CSV '{csvPath}' was not found; expected CLAM's " +
                "dataset CSV with a header 'case_id,slide_id,label'.", csvPath);
        if (!Directory.Exists(featureDirectory))
            throw new DirectoryNotFoundException($"LoadFeatureBags: the feature directory '{featureDirectory}' was not " +
                "found; expected the folder holding <slide_id>.h5 (CLAM: the --feat_dir of extract_features_fp.py).");
        var lines = File.ReadAllLines(csvPath, Encoding.UTF8).Where(l => !string.IsNullOrWhiteSpace(l)).ToArray();
        if (lines.Length == 0)
            throw new InvalidDataException($"LoadFeatureBags: the dataset CSV '{csvPath}' is empty; expected a header " +
                "'case_id,slide_id,label' and one row per slide.");
        var header = SplitCsv(lines[0]).Select(h => h.Trim()).ToArray();
        int slideIndex = Array.IndexOf(header, "slide_id");
        int labelIndex = labelColumn is null ? -1 : Array.IndexOf(header, labelColumn);
        if (slideIndex < 0 || (labelColumn is not null && labelIndex < 0))
            throw new InvalidDataException($"LoadFeatureBags: the dataset CSV '{csvPath}' has the columns " +
                $"{string.Join(", ", header.Select(h => $"'{h}'"))}; expected 'slide_id'" +
                (labelColumn is null ? "" : $" and the label column '{labelColumn}'") + " (CLAM: case_id,slide_id,label).");
        var paths = new List<string>();
        var ids = new List<string>();
        var labels = new List<string>();
        var missing = new List<string>();
        for (int row = 1; row < lines.Length; row++)
        {
            var fields = SplitCsv(lines[row]);
            int need = Math.Max(slideIndex, labelIndex) + 1;
            if (fields.Count < need)
                throw new InvalidDataException($"LoadFeatureBags: line {row + 1} of '{csvPath}' has {fields.Count} " +
                    $"fields; expected at least {need} (the header has {header.Length}).");
            var id = fields[slideIndex].Trim();
            var path = Path.Combine(featureDirectory, id + ".h5");
            if (!File.Exists(path) && Path.Combine(featureDirectory, "h5_files", id + ".h5") is var clam && File.Exists(clam))
                path = clam;
            if (!File.Exists(path)) missing.Add(id);
            paths.Add(path);
            ids.Add(id);
            if (labelIndex >= 0) labels.Add(fields[labelIndex].Trim());
        }
        if (missing.Count > 0)
            throw new FileNotFoundException($"LoadFeatureBags: {missing.Count} of the {ids.Count} slides of '{csvPath}' " +
                $"have no feature file in '{featureDirectory}' (looked for <slide_id>.h5 there and in h5_files/): " +
                string.Join(", ", missing.Take(20)) + (missing.Count > 20 ? $", … ({missing.Count - 20} more)" : "") +
                ". Extract their features, or remove those rows from the CSV.");
        return new FeatureBagDataView(paths, ids, labelIndex >= 0 ? labels : null);
    }

    private static List<string> SplitCsv(string line)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(c);
        }
        fields.Add(field.ToString());
        return fields;
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly FeatureBagDataView _view;
        private readonly bool[] _active;
        private readonly int[] _order;
        private readonly int _featuresIndex, _coordinatesIndex, _countIndex, _slideIndex, _labelIndex;
        private long _position = -1;
        private bool _loaded;
        private int _instances;
        private long[] _coordinates = Array.Empty<long>();
        private int _coordinateCount;

        public Cursor(FeatureBagDataView view, bool[] active, int[] order)
        {
            _view = view;
            _active = active;
            _order = order;
            var schema = view.Schema;
            _slideIndex = schema[SlideIdColumnName].Index;
            _labelIndex = schema.GetColumnOrNull(LabelColumnName)?.Index ?? -1;
            _featuresIndex = schema[FeaturesColumnName].Index;
            _coordinatesIndex = schema[CoordinatesColumnName].Index;
            _countIndex = schema[InstanceCountColumnName].Index;
        }

        public override DataViewSchema Schema => _view.Schema;

        public override long Position => _position;

        public override long Batch => 0;

        private int File => _order[_position];

        public override bool MoveNext()
        {
            if (_position + 1 >= _order.Length)
            {
                _position = _order.Length;
                CloseFile();
                return false;
            }
            _position++;
            CloseFile();
            return true;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) =>
        {
            CheckRow();
            value = new DataViewRowId((ulong)File, 0);
        };

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < 0 || column.Index >= _active.Length || !_active[column.Index])
                throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' was not requested when " +
                    "this cursor was created: pass it in columnsNeeded.");
            Delegate getter;
            if (column.Index == _slideIndex)
                getter = (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) =>
                {
                    CheckRow();
                    value = _view._slideIds[File].AsMemory();
                });
            else if (column.Index == _labelIndex)
                getter = (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) =>
                {
                    CheckRow();
                    value = _view._labels![File].AsMemory();
                });
            else if (column.Index == _featuresIndex)
                getter = (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
                {
                    Load();
                    // Straight from the file into the caller's buffer (as h5py reads into a NumPy array): a
                    // slide's bag is copied once on its way to the model, which then reads that buffer in place.
                    int length = _instances * _view.FeatureSize;
                    var editor = VBufferEditor.Create(ref value, length);
                    _reader!.ReadFeatures(editor.Values, 0, _instances);
                    value = editor.Commit();
                });
            else if (column.Index == _coordinatesIndex)
                getter = (ValueGetter<VBuffer<long>>)((ref VBuffer<long> value) =>
                {
                    Load();
                    var editor = VBufferEditor.Create(ref value, _coordinateCount);
                    _coordinates.AsSpan(0, _coordinateCount).CopyTo(editor.Values);
                    value = editor.Commit();
                });
            else if (column.Index == _countIndex)
                getter = (ValueGetter<int>)((ref int value) =>
                {
                    Load();
                    value = _instances;
                });
            else
                throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is not in this view.");
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException($"Column '{column.Name}' has " +
                $"type {column.Type}; it was asked for as {typeof(TValue).Name}.");
        }

        private FeatureFileReader? _reader;

        private void CloseFile()
        {
            _reader?.Dispose();
            _reader = null;
            _loaded = false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) CloseFile();
            base.Dispose(disposing);
        }

        private void CheckRow()
        {
            if (_position < 0 || _position >= _order.Length)
                throw new InvalidOperationException("The cursor is not on a row: call MoveNext first (and check that " +
                    "it returned true).");
        }

        /// <summary>Reads the current row's file once: its header and whatever the active columns need.</summary>
        private void Load()
        {
            CheckRow();
            if (_loaded) return;
            var path = _view._paths[File];
            // The file stays open until the cursor moves on: the features getter reads from this same handle.
            _reader?.Dispose();   // a failed Load of this row (e.g. another feature size) left it open
            var reader = _reader = FeatureFileReader.Open(path);
            if (reader.FeatureSize != _view.FeatureSize)
                throw new InvalidDataException($"LoadFeatureBags: '{path}' has {reader.FeatureSize} features per instance " +
                    $"but '{_view._paths[0]}' (the first file, which sets the Features column) has {_view.FeatureSize}; " +
                    "every slide of one view needs the same encoder. Re-extract the slide with that encoder, or load " +
                    "the two feature sets as separate views.");
            _instances = reader.InstanceCount;
            _coordinateCount = 0;
            if (_active[_coordinatesIndex] && reader.HasCoordinates)
            {
                _coordinateCount = _instances * 2;
                if (_coordinates.Length < _coordinateCount) _coordinates = new long[_coordinateCount];
                reader.ReadCoordinates(_coordinates.AsSpan(0, _coordinateCount), 0, _instances);
            }
            _loaded = true;
        }
    }
}
