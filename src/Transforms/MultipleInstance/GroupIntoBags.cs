using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Interop;
using MLNet.Attention.MultipleInstance;
using MLNet.Attention.Persistence;

namespace MLNet.Attention.Transforms;

/// <summary>Options of <see cref="GroupIntoBagsEstimator"/>: which column names the bag, which columns hold an
/// instance's features, and the optional label and coordinates.</summary>
public sealed class GroupIntoBagsOptions
{
    /// <summary>The bag id of each instance row (Text, a number, a Key or a Boolean). Rows of one bag need not be
    /// contiguous; bags come out in the order of their first row.</summary>
    public string BagIdColumnName { get; set; } = "BagId";

    /// <summary>The instance feature columns (Single scalars or known-size Single vectors), concatenated in this order
    /// into the instance's D features.</summary>
    public string[] FeatureColumnNames { get; set; } = { "Features" };

    /// <summary>Optional bag label column, copied to the bag row with its type (and key values); every instance of a
    /// bag must carry the same value. Null: no label.</summary>
    public string? LabelColumnName { get; set; }

    /// <summary>Optional instance coordinates: one known-size numeric vector of 2 (x, y), or two numeric scalar columns
    /// (x, then y). Null or empty: none.</summary>
    public string[]? CoordinateColumnNames { get; set; }

    /// <summary>The bag features output column: Vector&lt;Single&gt; of N × D (InstanceSize annotation = D).</summary>
    public string OutputFeatureColumnName { get; set; } = "Features";

    /// <summary>The coordinates output column: Vector&lt;Int64&gt; of N × 2 (with <see cref="CoordinateColumnNames"/>).</summary>
    public string OutputCoordinatesColumnName { get; set; } = "Coordinates";

    /// <summary>The output column with each bag's instance count N (Int32).</summary>
    public string InstanceCountColumnName { get; set; } = "InstanceCount";

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(BagIdColumnName))
            throw new ArgumentOutOfRangeException(nameof(BagIdColumnName), BagIdColumnName, "BagIdColumnName must name the bag id column.");
        if (FeatureColumnNames is not { Length: > 0 } || FeatureColumnNames.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentOutOfRangeException(nameof(FeatureColumnNames), "FeatureColumnNames must name at least one instance feature column.");
        if (CoordinateColumnNames is { Length: > 2 })
            throw new ArgumentOutOfRangeException(nameof(CoordinateColumnNames), "CoordinateColumnNames takes one vector column of 2 " +
                "values or two scalar columns (x, y).");
        foreach (var (name, value) in new[] { (nameof(OutputFeatureColumnName), OutputFeatureColumnName),
                     (nameof(OutputCoordinatesColumnName), OutputCoordinatesColumnName), (nameof(InstanceCountColumnName), InstanceCountColumnName) })
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentOutOfRangeException(name, value, $"{name} must name an output column.");
    }
}

/// <summary>
/// <c>mlContext.Transforms.GroupIntoBags</c>: rows of instances with a bag id → one row per bag (the layout of
/// <see cref="InstanceBags"/>), for the attention-MIL trainers. Works with Musk's <c>bag_label, bag_id, f1..f166</c>
/// as loaded by <c>LoadFromTextFile</c>. Nothing is learned: <c>Fit</c> checks the schema.
/// </summary>
public sealed class GroupIntoBagsEstimator : IEstimator<GroupIntoBagsTransformer>
{
    private readonly IHostEnvironment _env;
    private readonly GroupIntoBagsOptions _options;

    internal GroupIntoBagsEstimator(IHostEnvironment env, GroupIntoBagsOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
    }

    /// <summary>Checks the input columns and returns the transformer.</summary>
    public GroupIntoBagsTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var transformer = new GroupIntoBagsTransformer(_env, GroupIntoBagsSettings.From(_options));
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <summary>The bag columns: bag id (Text), features (variable vector), label, coordinates, instance count.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var byName = inputSchema.ToDictionary(c => c.Name);
        foreach (var name in new[] { _options.BagIdColumnName }.Concat(_options.FeatureColumnNames)
                     .Concat(_options.LabelColumnName is null ? Array.Empty<string>() : new[] { _options.LabelColumnName })
                     .Concat(_options.CoordinateColumnNames ?? Array.Empty<string>()))
            if (!byName.ContainsKey(name))
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"GroupIntoBags: column '{name}' was not found. Available " +
                    $"columns: {string.Join(", ", byName.Keys.Select(k => $"'{k}'"))}.");
        var columns = new List<SchemaShape.Column>
        {
            HostSettings.SchemaColumn(_options.BagIdColumnName, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance),
            HostSettings.SchemaColumn(_options.OutputFeatureColumnName, SchemaShape.Column.VectorKind.VariableVector, NumberDataViewType.Single),
            HostSettings.SchemaColumn(_options.InstanceCountColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Int32),
        };
        if (_options.LabelColumnName is { } label) columns.Add(byName[label]);
        if (_options.CoordinateColumnNames is { Length: > 0 })
            columns.Add(HostSettings.SchemaColumn(_options.OutputCoordinatesColumnName, SchemaShape.Column.VectorKind.VariableVector,
                NumberDataViewType.Int64));
        return new SchemaShape(columns);
    }
}

/// <summary>The persisted settings of <see cref="GroupIntoBagsTransformer"/>.</summary>
internal sealed record GroupIntoBagsSettings(string BagIdColumnName, string[] FeatureColumnNames, string? LabelColumnName,
    string[] CoordinateColumnNames, string OutputFeatureColumnName, string OutputCoordinatesColumnName, string InstanceCountColumnName)
{
    public static GroupIntoBagsSettings From(GroupIntoBagsOptions o) => new(o.BagIdColumnName, (string[])o.FeatureColumnNames.Clone(),
        o.LabelColumnName, (string[])(o.CoordinateColumnNames ?? Array.Empty<string>()).Clone(), o.OutputFeatureColumnName,
        o.OutputCoordinatesColumnName, o.InstanceCountColumnName);
}

/// <summary>
/// Groups instance rows into bag rows. <see cref="Transform"/> reads the input once and holds the bags in memory
/// (N × D floats per bag); a cohort larger than memory belongs in feature files (<c>mlContext.Data.LoadFeatureBags</c>,
/// read lazily). Errors name the bag: a label that differs between its instances, a missing label, a non-finite
/// feature (with the row).
/// </summary>
public sealed class GroupIntoBagsTransformer : ITorchPersistable
{
    private const int PayloadVersion = 1;
    private readonly IHostEnvironment _env;
    private readonly GroupIntoBagsSettings _settings;

    internal GroupIntoBagsTransformer(IHostEnvironment env, GroupIntoBagsSettings settings)
    {
        _env = env;
        _settings = settings;
    }

    /// <inheritdoc/>
    public bool IsRowToRowMapper => false;

    /// <summary>The bag schema; throws naming a missing or mistyped input column.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        using var probe = new Grouping(_settings, inputSchema);
        return BagView(probe, new List<Bag>()).Schema;
    }

    /// <summary>One row per bag of <paramref name="input"/>, in the order of each bag's first instance.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var grouping = new Grouping(_settings, input.Schema);
        var bags = grouping.Read(input);
        return BagView(grouping, bags);
    }

    /// <summary>Not available: a bag spans many instance rows.</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) =>
        throw new InvalidOperationException("GroupIntoBags turns many instance rows into one bag row, so it has no row-to-row " +
            "mapper (PredictionEngine). Group the instances first, then create the engine from the trained bag classifier.");

    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        TorchModelPersistence.Save(ctx, this, writer =>
        {
            writer.Write(PayloadVersion);
            ConfigPersistence.WriteConfig(writer, _settings);
        });

    /// <summary>Reads a saved transformer; called by the persistence bridge on mlContext.Model.Load.</summary>
    public static GroupIntoBagsTransformer Load(IHostEnvironment env, BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version != PayloadVersion)
            throw new InvalidDataException($"This GroupIntoBags transform has payload format {version}; this build reads format " +
                $"{PayloadVersion}. Load it with the MLNet.Attention version that saved it, or recreate it.");
        return new GroupIntoBagsTransformer(env, ConfigPersistence.ReadConfig<GroupIntoBagsSettings>(reader));
    }

    private IDataView BagView(Grouping grouping, List<Bag> bags)
    {
        var context = _env as MLContext ?? new MLContext();
        var definition = SchemaDefinition.Create(typeof(BagRow), SchemaDefinition.Direction.Read);
        var byMember = definition.ToDictionary(c => c.MemberName);
        byMember[nameof(BagRow.BagId)].ColumnName = _settings.BagIdColumnName;
        var features = byMember[nameof(BagRow.Features)];
        features.ColumnName = _settings.OutputFeatureColumnName;
        features.AddAnnotation(InstanceBags.InstanceSizeName, grouping.FeatureSize, NumberDataViewType.Int32);
        byMember[nameof(BagRow.InstanceCount)].ColumnName = _settings.InstanceCountColumnName;
        if (_settings.CoordinateColumnNames.Length > 0)
            byMember[nameof(BagRow.Coordinates)].ColumnName = _settings.OutputCoordinatesColumnName;
        else definition.Remove(byMember[nameof(BagRow.Coordinates)]);
        // The label keeps its type: one typed member per kind, the others dropped.
        foreach (var member in BagRow.LabelMembers)
            if (member != grouping.LabelMember) definition.Remove(byMember[member]);
        if (grouping.LabelMember is { } labelMember)
        {
            var label = byMember[labelMember];
            label.ColumnName = _settings.LabelColumnName!;
            label.ColumnType = grouping.LabelType!;
            grouping.CopyLabelAnnotations(label);
        }
        var rows = bags.Select(b => b.ToRow());
        return context.Data.LoadFromEnumerable(rows, definition);
    }

    internal sealed class Bag(string id, long firstRow)
    {
        public string Id { get; } = id;
        public long FirstRow { get; } = firstRow;
        public List<float> Features { get; } = new();
        public List<long> Coordinates { get; } = new();
        public int Count { get; set; }
        public object? Label { get; set; }

        public BagRow ToRow()
        {
            var row = new BagRow { BagId = Id, Features = Features.ToArray(), Coordinates = Coordinates.ToArray(), InstanceCount = Count };
            switch (Label)
            {
                case bool b: row.LabelBoolean = b; break;
                case float f: row.LabelSingle = f; break;
                case double d: row.LabelDouble = d; break;
                case int i: row.LabelInt32 = i; break;
                case long l: row.LabelInt64 = l; break;
                // LoadFromEnumerable adds 1 to a key-typed uint member (it holds the 0-based index): store key - 1.
                case uint k: row.LabelKey = k - 1; break;
                case string s: row.LabelText = s; break;
            }
            return row;
        }
    }

    /// <summary>The row type of the bag view (renamed and trimmed by a schema definition).</summary>
    internal sealed class BagRow
    {
        public static readonly string[] LabelMembers =
            { nameof(LabelBoolean), nameof(LabelSingle), nameof(LabelDouble), nameof(LabelInt32), nameof(LabelInt64), nameof(LabelKey), nameof(LabelText) };

        public string BagId { get; set; } = "";
        public float[] Features { get; set; } = Array.Empty<float>();
        public long[] Coordinates { get; set; } = Array.Empty<long>();
        public int InstanceCount { get; set; }
        public bool LabelBoolean { get; set; }
        public float LabelSingle { get; set; }
        public double LabelDouble { get; set; }
        public int LabelInt32 { get; set; }
        public long LabelInt64 { get; set; }
        public uint LabelKey { get; set; }
        public string LabelText { get; set; } = "";
    }

    /// <summary>The typed readers of one input schema and the pass that groups its rows.</summary>
    private sealed class Grouping : IDisposable
    {
        private readonly GroupIntoBagsSettings _settings;
        private readonly DataViewSchema _schema;
        private readonly DataViewSchema.Column _id;
        private readonly DataViewSchema.Column[] _features;
        private readonly int[] _sizes;
        private readonly DataViewSchema.Column? _label;
        private readonly DataViewSchema.Column[] _coordinates;

        public Grouping(GroupIntoBagsSettings settings, DataViewSchema schema)
        {
            _settings = settings;
            _schema = schema;
            _id = Find(settings.BagIdColumnName, "bag id");
            if (_id.Type is not (TextDataViewType or NumberDataViewType or KeyDataViewType or BooleanDataViewType))
                throw Error($"bag id column '{_id.Name}' has type {_id.Type}; expected Text, a number, a Key or a Boolean.");
            _features = settings.FeatureColumnNames.Select(n => Find(n, "feature")).ToArray();
            _sizes = new int[_features.Length];
            for (int i = 0; i < _features.Length; i++)
            {
                var type = _features[i].Type;
                if (type == NumberDataViewType.Single) _sizes[i] = 1;
                else if (type is VectorDataViewType { ItemType: var item, IsKnownSize: true, Size: var size } && item == NumberDataViewType.Single)
                    _sizes[i] = size;
                else
                    throw Error($"feature column '{_features[i].Name}' has type {type}; expected Single or a known-size vector of " +
                        $"Single. Convert it with mlContext.Transforms.Conversion.ConvertType(\"{_features[i].Name}\", outputKind: " +
                        "DataKind.Single), or load it with [VectorType(n)].");
            }
            FeatureSize = _sizes.Sum();
            if (settings.LabelColumnName is { } labelName)
            {
                _label = Find(labelName, "label");
                var type = _label.Value.Type;
                (LabelMember, LabelType) = type switch
                {
                    BooleanDataViewType => (nameof(BagRow.LabelBoolean), type),
                    KeyDataViewType { RawType: var raw } when raw == typeof(uint) => (nameof(BagRow.LabelKey), type),
                    _ when type == NumberDataViewType.Single => (nameof(BagRow.LabelSingle), type),
                    _ when type == NumberDataViewType.Double => (nameof(BagRow.LabelDouble), type),
                    _ when type == NumberDataViewType.Int32 => (nameof(BagRow.LabelInt32), type),
                    _ when type == NumberDataViewType.Int64 => (nameof(BagRow.LabelInt64), type),
                    TextDataViewType => (nameof(BagRow.LabelText), (DataViewType)TextDataViewType.Instance),
                    _ => throw Error($"label column '{labelName}' has type {type}; expected Boolean, Single, Double, Int32, Int64, " +
                        "a Key (uint) or Text."),
                };
            }
            _coordinates = settings.CoordinateColumnNames.Select(n => Find(n, "coordinate")).ToArray();
            if (_coordinates.Length == 1 && _coordinates[0].Type is not VectorDataViewType { IsKnownSize: true, Size: 2, ItemType: NumberDataViewType })
                throw Error($"coordinate column '{_coordinates[0].Name}' has type {_coordinates[0].Type}; expected a numeric vector of 2 " +
                    "values (x, y), or name two scalar columns.");
            if (_coordinates.Length == 2)
                foreach (var c in _coordinates)
                    if (c.Type is not NumberDataViewType)
                        throw Error($"coordinate column '{c.Name}' has type {c.Type}; expected a numeric scalar.");
        }

        public int FeatureSize { get; }
        public string? LabelMember { get; }
        public DataViewType? LabelType { get; }

        public void CopyLabelAnnotations(SchemaDefinition.Column target)
        {
            if (_label is not { } label || label.Type is not KeyDataViewType) return;
            var keyValues = label.Annotations.Schema.GetColumnOrNull("KeyValues");
            if (keyValues is not { } kv) return;
            VBuffer<ReadOnlyMemory<char>> values = default;
            label.Annotations.GetValue("KeyValues", ref values);
            target.AddAnnotation("KeyValues", values, kv.Type);
        }

        public List<Bag> Read(IDataView data)
        {
            var needed = new[] { _id }.Concat(_features).Concat(_label is { } l ? new[] { l } : Array.Empty<DataViewSchema.Column>())
                .Concat(_coordinates).ToArray();
            using var cursor = data.GetRowCursor(needed);
            var id = IdReader(cursor, _id);
            var features = _features.Select((c, i) => FeatureReader(cursor, c, _sizes[i])).ToArray();
            var label = _label is { } labelColumn ? LabelReader(cursor, labelColumn) : null;
            var coordinates = _coordinates.Length == 0 ? null : CoordinateReader(cursor);
            var bags = new List<Bag>();
            var byId = new Dictionary<string, Bag>(StringComparer.Ordinal);
            var instance = new float[FeatureSize];
            var xy = new long[2];
            while (cursor.MoveNext())
            {
                string bagId = id();
                if (!byId.TryGetValue(bagId, out var bag))
                {
                    byId[bagId] = bag = new Bag(bagId, cursor.Position);
                    bags.Add(bag);
                }
                int offset = 0;
                for (int i = 0; i < features.Length; i++)
                {
                    features[i](instance.AsSpan(offset, _sizes[i]));
                    offset += _sizes[i];
                }
                for (int k = 0; k < instance.Length; k++)
                    if (!float.IsFinite(instance[k]))
                        throw new InvalidOperationException($"GroupIntoBags: instance row {cursor.Position} of bag '{bagId}' has a non-finite " +
                            $"feature ({instance[k].ToString(CultureInfo.InvariantCulture)}) at index {k}. Bags must hold finite features: " +
                            "replace missing values first (mlContext.Transforms.ReplaceMissingValues) or filter those rows out.");
                bag.Features.AddRange(instance);
                if (coordinates is not null)
                {
                    coordinates(xy);
                    bag.Coordinates.Add(xy[0]);
                    bag.Coordinates.Add(xy[1]);
                }
                if (label is not null)
                {
                    var (value, missing) = label();
                    if (missing)
                        throw new InvalidOperationException($"GroupIntoBags: bag '{bagId}' has no label at instance row {cursor.Position} " +
                            $"(label column '{_label!.Value.Name}' is missing there). Every instance of a bag carries the bag's label; fill " +
                            "it in, or drop the bag.");
                    if (bag.Count == 0) bag.Label = value;
                    else if (!Equals(bag.Label, value))
                        throw new InvalidOperationException($"GroupIntoBags: bag '{bagId}' has conflicting labels: '{bag.Label}' from row " +
                            $"{bag.FirstRow} and '{value}' at row {cursor.Position} (label column '{_label!.Value.Name}'). A bag has one " +
                            "label; check the bag id column (two bags sharing an id?) or the label column.");
                }
                bag.Count++;
            }
            if (bags.Count == 0)
                throw new InvalidOperationException("GroupIntoBags: the input has no rows, so there are no bags.");
            return bags;
        }

        private static Func<string> IdReader(DataViewRow row, DataViewSchema.Column column)
        {
            switch (column.Type)
            {
                case TextDataViewType:
                {
                    var getter = row.GetGetter<ReadOnlyMemory<char>>(column);
                    ReadOnlyMemory<char> value = default;
                    return () => { getter(ref value); return value.ToString(); };
                }
                case BooleanDataViewType:
                {
                    var getter = row.GetGetter<bool>(column);
                    bool value = false;
                    return () => { getter(ref value); return value ? "True" : "False"; };
                }
                case KeyDataViewType:
                {
                    var getter = row.GetGetter<uint>(column);
                    uint value = 0;
                    return () => { getter(ref value); return value.ToString(CultureInfo.InvariantCulture); };
                }
                default:
                {
                    var number = NumberReader(row, column);
                    return () => number().ToString("R", CultureInfo.InvariantCulture);
                }
            }
        }

        private static Action<Span<float>> FeatureReader(DataViewRow row, DataViewSchema.Column column, int size)
        {
            if (column.Type is not VectorDataViewType)
            {
                var getter = row.GetGetter<float>(column);
                float value = 0;
                return destination => { getter(ref value); destination[0] = value; };
            }
            var vector = row.GetGetter<VBuffer<float>>(column);
            VBuffer<float> buffer = default;
            return destination => { vector(ref buffer); buffer.CopyTo(destination); };
        }

        private Func<(object Value, bool Missing)> LabelReader(DataViewRow row, DataViewSchema.Column column)
        {
            switch (LabelMember)
            {
                case nameof(BagRow.LabelBoolean):
                {
                    var g = row.GetGetter<bool>(column); bool v = false;
                    return () => { g(ref v); return (v, false); };
                }
                case nameof(BagRow.LabelKey):
                {
                    var g = row.GetGetter<uint>(column); uint v = 0;
                    return () => { g(ref v); return (v, v == 0); };
                }
                case nameof(BagRow.LabelSingle):
                {
                    var g = row.GetGetter<float>(column); float v = 0;
                    return () => { g(ref v); return (v, float.IsNaN(v)); };
                }
                case nameof(BagRow.LabelDouble):
                {
                    var g = row.GetGetter<double>(column); double v = 0;
                    return () => { g(ref v); return (v, double.IsNaN(v)); };
                }
                case nameof(BagRow.LabelInt32):
                {
                    var g = row.GetGetter<int>(column); int v = 0;
                    return () => { g(ref v); return (v, false); };
                }
                case nameof(BagRow.LabelInt64):
                {
                    var g = row.GetGetter<long>(column); long v = 0;
                    return () => { g(ref v); return (v, false); };
                }
                default:
                {
                    var g = row.GetGetter<ReadOnlyMemory<char>>(column); ReadOnlyMemory<char> v = default;
                    return () => { g(ref v); var s = v.ToString(); return (s, s.Trim().Length == 0); };
                }
            }
        }

        private Action<long[]> CoordinateReader(DataViewRow row)
        {
            if (_coordinates.Length == 2)
            {
                var x = NumberReader(row, _coordinates[0]);
                var y = NumberReader(row, _coordinates[1]);
                return xy => { xy[0] = ToCoordinate(x(), _coordinates[0]); xy[1] = ToCoordinate(y(), _coordinates[1]); };
            }
            var column = _coordinates[0];
            var item = ((VectorDataViewType)column.Type).ItemType.RawType;
            if (item == typeof(long))
            {
                var g = row.GetGetter<VBuffer<long>>(column); VBuffer<long> b = default;
                return xy => { g(ref b); b.CopyTo(xy); };
            }
            if (item == typeof(float))
            {
                var g = row.GetGetter<VBuffer<float>>(column); VBuffer<float> b = default;
                return xy => { g(ref b); var v = b.DenseValues().ToArray(); xy[0] = ToCoordinate(v[0], column); xy[1] = ToCoordinate(v[1], column); };
            }
            if (item == typeof(double))
            {
                var g = row.GetGetter<VBuffer<double>>(column); VBuffer<double> b = default;
                return xy => { g(ref b); var v = b.DenseValues().ToArray(); xy[0] = ToCoordinate(v[0], column); xy[1] = ToCoordinate(v[1], column); };
            }
            if (item == typeof(int))
            {
                var g = row.GetGetter<VBuffer<int>>(column); VBuffer<int> b = default;
                return xy => { g(ref b); var v = b.DenseValues().ToArray(); xy[0] = v[0]; xy[1] = v[1]; };
            }
            throw Error($"coordinate column '{column.Name}' has item type {item.Name}; expected Int64, Int32, Single or Double.");
        }

        private static long ToCoordinate(double value, DataViewSchema.Column column) =>
            double.IsFinite(value) ? (long)Math.Round(value)
            : throw new InvalidOperationException($"GroupIntoBags: coordinate column '{column.Name}' has a non-finite value; " +
                "coordinates are pixel positions.");

        private static Func<double> NumberReader(DataViewRow row, DataViewSchema.Column column)
        {
            var raw = column.Type.RawType;
            if (raw == typeof(float)) { var g = row.GetGetter<float>(column); float v = 0; return () => { g(ref v); return v; }; }
            if (raw == typeof(double)) { var g = row.GetGetter<double>(column); double v = 0; return () => { g(ref v); return v; }; }
            if (raw == typeof(int)) { var g = row.GetGetter<int>(column); int v = 0; return () => { g(ref v); return v; }; }
            if (raw == typeof(long)) { var g = row.GetGetter<long>(column); long v = 0; return () => { g(ref v); return v; }; }
            if (raw == typeof(uint)) { var g = row.GetGetter<uint>(column); uint v = 0; return () => { g(ref v); return v; }; }
            if (raw == typeof(short)) { var g = row.GetGetter<short>(column); short v = 0; return () => { g(ref v); return v; }; }
            if (raw == typeof(byte)) { var g = row.GetGetter<byte>(column); byte v = 0; return () => { g(ref v); return v; }; }
            throw new ArgumentOutOfRangeException(nameof(column), $"GroupIntoBags: column '{column.Name}' has type {column.Type}; " +
                "expected a number.");
        }

        private DataViewSchema.Column Find(string name, string role) =>
            _schema.GetColumnOrNull(name) ?? throw Error($"{role} column '{name}' was not found. Available columns: " +
                $"{string.Join(", ", _schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}.");

        private static ArgumentOutOfRangeException Error(string message) => new("inputSchema", "GroupIntoBags: " + message);

        public void Dispose()
        {
        }
    }
}
