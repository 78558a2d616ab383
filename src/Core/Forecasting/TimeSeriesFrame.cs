using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// A multivariate series read from an <see cref="IDataView"/> with one row per timestamp: the named variate
/// columns as a row-major [rows × variates] float array, plus the timestamps when a timestamp column is named.
/// </summary>
public sealed class TimeSeriesFrame
{
    /// <summary>Variate (column) names, in the order of <see cref="Values"/>'s columns.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Row-major values: <c>Values[t * Columns.Count + n]</c>.</summary>
    public float[] Values { get; }

    /// <summary>Timestamps per row, or null when no timestamp column was named.</summary>
    public DateTime[]? Timestamps { get; }

    /// <summary>Number of rows (time steps).</summary>
    public int Rows => Values.Length / Columns.Count;

    public TimeSeriesFrame(IReadOnlyList<string> columns, float[] values, DateTime[]? timestamps)
    {
        if (columns.Count == 0) throw new ArgumentException("At least one variate column is needed.", nameof(columns));
        if (values.Length % columns.Count != 0) throw new ArgumentException("The value count is not a multiple of the column count.", nameof(values));
        if (timestamps is not null && timestamps.Length != values.Length / columns.Count) throw new ArgumentException("One timestamp per row is needed.", nameof(timestamps));
        Columns = columns;
        Values = values;
        Timestamps = timestamps;
    }

    /// <summary>
    /// Reads <paramref name="variateColumns"/> (numeric scalar columns: Single, Double or integer types) and, when
    /// given, <paramref name="timestampColumn"/> (DateTime, DateTimeOffset or parseable Text) from <paramref name="data"/>.
    /// </summary>
    /// <param name="data">The series, one row per timestamp, in time order.</param>
    /// <param name="variateColumns">Columns to read, in order.</param>
    /// <param name="timestampColumn">Optional timestamp column; its values must increase strictly.</param>
    /// <param name="allowMissing">When false, NaN values are rejected with the column and row; when true they are kept (models with missing-value support). Infinity is always rejected.</param>
    /// <param name="purpose">Names the caller in messages, e.g. "InvertedTransformer training data".</param>
    /// <param name="rowsNeeded">What the caller needs, for the message on an empty view, e.g. "at least 96 rows (the
    /// model's lookback)"; null means at least lookback + horizon rows (one complete training window).</param>
    /// <param name="duplicateTimestamps">Rows whose timestamp equals the previous row's: refused (default), kept, or
    /// dropped (all but the first of each run). Timestamps that decrease are always refused.</param>
    /// <param name="missingIndicators">Optional indicator columns for the first variates, in order (Boolean: true =
    /// missing; numeric: non-zero = missing): where set, the value is read as missing (NaN) whatever it holds.</param>
    public static TimeSeriesFrame FromDataView(IDataView data, IReadOnlyList<string> variateColumns, string? timestampColumn,
        bool allowMissing, string purpose, string? rowsNeeded = null,
        DuplicateTimestampPolicy duplicateTimestamps = DuplicateTimestampPolicy.Refuse,
        IReadOnlyList<string>? missingIndicators = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(variateColumns);
        if (variateColumns.Count == 0)
            throw new ArgumentException($"{purpose}: name at least one variate column.", nameof(variateColumns));
        var duplicate = variateColumns.GroupBy(c => c).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"{purpose}: variate column '{duplicate.Key}' is named twice.", nameof(variateColumns));

        var schema = data.Schema;
        var columns = variateColumns.Select(name => CheckNumericColumn(schema, name, purpose)).ToArray();
        DataViewSchema.Column? timeColumn = timestampColumn is null ? null : CheckTimestampColumn(schema, timestampColumn, purpose);
        var indicators = (missingIndicators ?? Array.Empty<string>()).Select((name, n) =>
            CheckIndicatorColumn(schema, name, variateColumns[n], purpose)).ToArray();

        var values = new List<float>(4096);
        var times = timeColumn is null ? null : new List<DateTime>(1024);
        var active = (timeColumn is null ? columns : columns.Append(timeColumn.Value)).Concat(indicators).ToArray();
        using (var cursor = data.GetRowCursor(active))
        {
            var getters = columns.Select(c => NumericGetter(cursor, c)).ToArray();
            var missingFlags = indicators.Select(c => IndicatorGetter(cursor, c, purpose)).ToArray();
            var timeGetter = timeColumn is null ? null : TimestampGetter(cursor, timeColumn.Value, purpose);
            long row = 0;
            while (cursor.MoveNext())
            {
                for (int n = 0; n < getters.Length; n++)
                {
                    double v = getters[n]();
                    if (n < missingFlags.Length && missingFlags[n](row))
                    {
                        if (!allowMissing)
                            throw new InvalidOperationException($"{purpose}: column '{columns[n].Name}' is missing at row " +
                                $"{row} (indicator column '{indicators[n].Name}'), and this model refuses missing values " +
                                "(MissingValues = Refuse). Train with MissingValues = MissingValuePolicy.ZeroFill in the " +
                                "trainer's options, or use the CRIB forecaster, which reads them natively.");
                        values.Add(float.NaN);
                        continue;
                    }
                    if (double.IsInfinity(v))
                        throw new InvalidOperationException($"{purpose}: column '{columns[n].Name}' holds {(v > 0 ? "+infinity" : "-infinity")} at row {row}. Remove or clip infinite values before training or scoring.");
                    if (double.IsNaN(v) && !allowMissing)
                        throw new InvalidOperationException($"{purpose}: column '{columns[n].Name}' is missing (NaN) at row {row}, and this model refuses missing values (MissingValues = Refuse). Train with MissingValues = MissingValuePolicy.ZeroFill in the trainer's options (the model then trains, evaluates and forecasts through them) or use the CRIB forecaster, which reads them natively; or fill them first (interpolation, mlContext.Transforms.ReplaceMissingValues).");
                    if (Math.Abs(v) > float.MaxValue)
                        throw new InvalidOperationException($"{purpose}: column '{columns[n].Name}' holds {v} at row {row}, beyond the float32 range. Rescale the column.");
                    values.Add((float)v);
                }
                if (timeGetter is not null) times!.Add(timeGetter(row));
                row++;
            }
        }
        if (values.Count == 0)
        {
            string need = rowsNeeded ?? "at least lookback + horizon rows (one complete window)";
            throw new InvalidOperationException(
                $"{purpose}: the data view has no rows; expected {need}. Pass a view with {need}.");
        }
        if (times is null) return new TimeSeriesFrame(variateColumns.ToArray(), values.ToArray(), null);
        var duplicates = new List<int>();
        for (int t = 1; t < times.Count; t++)
        {
            if (times[t] < times[t - 1])
                throw new InvalidOperationException($"{purpose}: timestamp column '{timestampColumn}' goes back in time at row {t} ({times[t - 1]:s} then {times[t]:s}); expected rows in time order. Sort the rows by time (e.g. order them before loading).");
            if (times[t] == times[t - 1]) duplicates.Add(t);
        }
        if (duplicates.Count == 0 || duplicateTimestamps == DuplicateTimestampPolicy.Keep)
            return new TimeSeriesFrame(variateColumns.ToArray(), values.ToArray(), times.ToArray());
        if (duplicateTimestamps == DuplicateTimestampPolicy.Refuse)
            throw new InvalidOperationException(
                $"{purpose}: timestamp column '{timestampColumn}' repeats a timestamp in {duplicates.Count} row(s), first " +
                string.Join(", ", duplicates.Take(3).Select(t => $"row {t} ({times[t]:s})")) + "; expected one row per " +
                "timestamp. Set DuplicateTimestamps = DuplicateTimestampPolicy.Keep (the papers keep such rows) or Drop " +
                "(keep the first of each) in the trainer's options, or remove the duplicates first.");
        int width = variateColumns.Count, kept = 0, next = 0;
        var keptValues = new float[(times.Count - duplicates.Count) * width];
        var keptTimes = new DateTime[times.Count - duplicates.Count];
        for (int t = 0; t < times.Count; t++)
        {
            if (next < duplicates.Count && duplicates[next] == t) { next++; continue; }
            System.Runtime.InteropServices.CollectionsMarshal.AsSpan(values).Slice(t * width, width)
                .CopyTo(keptValues.AsSpan(kept * width, width));
            keptTimes[kept++] = times[t];
        }
        return new TimeSeriesFrame(variateColumns.ToArray(), keptValues, keptTimes);
    }

    /// <summary>True when some value is NaN (missing).</summary>
    public bool HasMissingValues => Array.Exists(Values, float.IsNaN);

    /// <summary>Observed (non-NaN) values of variate <paramref name="column"/>.</summary>
    internal int ObservedCount(int column)
    {
        int n = Columns.Count, count = 0;
        for (int i = column; i < Values.Length; i += n) if (!float.IsNaN(Values[i])) count++;
        return count;
    }

    /// <summary>The frame as an <see cref="IDataView"/>: one Single column per variate (NaN where missing) and, when
    /// the frame has timestamps, a DateTime column named <paramref name="timestampColumnName"/>.</summary>
    public IDataView ToDataView(string timestampColumnName = "Date") => new FrameDataView(this, timestampColumnName);

    /// <summary>As <see cref="ToDataView(string)"/> plus Boolean missing-value indicator columns (true where the value
    /// is NaN) named <paramref name="missingIndicators"/>, for the first variates in order.</summary>
    internal IDataView ToDataView(string timestampColumnName, IReadOnlyList<string>? missingIndicators) =>
        new FrameDataView(this, timestampColumnName, missingIndicators);

    /// <summary>Rows whose timestamp is more than <paramref name="step"/> after the previous row's, in order
    /// (row <c>t</c> means the gap lies between rows <c>t − 1</c> and <c>t</c>); empty without timestamps.</summary>
    internal int[] GapRows(TimeSpan step)
    {
        if (Timestamps is null) return Array.Empty<int>();
        var rows = new List<int>();
        for (int t = 1; t < Timestamps.Length; t++)
            if (Timestamps[t] - Timestamps[t - 1] > step)
                rows.Add(t);
        return rows.ToArray();
    }

    /// <summary>Rows [start, start + count) as a new frame.</summary>
    public TimeSeriesFrame Slice(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Rows) throw new ArgumentOutOfRangeException(nameof(start), $"Rows [{start}, {start + count}) are outside [0, {Rows}).");
        int n = Columns.Count;
        return new TimeSeriesFrame(Columns, Values.AsSpan(start * n, count * n).ToArray(), Timestamps?.AsSpan(start, count).ToArray());
    }

    private static DataViewSchema.Column CheckNumericColumn(DataViewSchema schema, string name, string purpose)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException("data", $"{purpose}: column '{name}' was not found. Available columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => c.Name))}. Check the variate column names.");
        var type = column.Type;
        if (type is VectorDataViewType)
            throw new ArgumentOutOfRangeException("data", $"{purpose}: column '{name}' has type {type}; expected a numeric scalar (one value per row, Single preferred). Name the individual series columns instead of a vector column.");
        if (!IsNumeric(type.RawType))
            throw new ArgumentOutOfRangeException("data", $"{purpose}: column '{name}' has type {type}, which is not numeric; expected Single (or Double/integer). Load it as a number (e.g. a float field in LoadFromTextFile, or mlContext.Transforms.Conversion.ConvertType).");
        return column;
    }

    private static DataViewSchema.Column CheckIndicatorColumn(DataViewSchema schema, string name, string variate, string purpose)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException("data", $"{purpose}: missing-value indicator column '{name}' (for " +
                $"'{variate}') was not found. Available columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => c.Name))}.");
        var type = column.Type;
        if (type is not BooleanDataViewType && (type is VectorDataViewType || type is KeyDataViewType || !IsNumeric(type.RawType)))
            throw new ArgumentOutOfRangeException("data", $"{purpose}: missing-value indicator column '{name}' (for " +
                $"'{variate}') has type {type}; expected a Boolean scalar (true = missing, as " +
                "mlContext.Transforms.IndicateMissingValues writes) or a numeric scalar (non-zero = missing). Convert it " +
                "(e.g. mlContext.Transforms.Conversion.ConvertType to Boolean) or name another column.");
        return column;
    }

    private static Func<long, bool> IndicatorGetter(DataViewRow row, DataViewSchema.Column column, string purpose)
    {
        if (column.Type is BooleanDataViewType)
        {
            var g = row.GetGetter<bool>(column);
            bool flag = false;
            return _ => { g(ref flag); return flag; };
        }
        var number = NumericGetter(row, column);
        return r =>
        {
            double v = number();
            if (double.IsNaN(v))
                throw new InvalidOperationException($"{purpose}: missing-value indicator column '{column.Name}' holds NaN " +
                    $"at row {r}; expected 0 (observed) or non-zero (missing).");
            return v != 0;
        };
    }

    private static DataViewSchema.Column CheckTimestampColumn(DataViewSchema schema, string name, string purpose)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException("data", $"{purpose}: timestamp column '{name}' was not found. Available columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => c.Name))}.");
        var raw = column.Type.RawType;
        if (raw != typeof(DateTime) && raw != typeof(DateTimeOffset) && raw != typeof(ReadOnlyMemory<char>))
            throw new ArgumentOutOfRangeException("data", $"{purpose}: timestamp column '{name}' has type {column.Type}; expected DateTime, DateTimeOffset or Text holding a date such as 2016-07-01 00:00:00.");
        return column;
    }

    private static bool IsNumeric(Type t) => t == typeof(float) || t == typeof(double) || t == typeof(int) || t == typeof(long)
        || t == typeof(short) || t == typeof(byte) || t == typeof(sbyte) || t == typeof(uint) || t == typeof(ulong) || t == typeof(ushort);

    private static Func<double> NumericGetter(DataViewRow row, DataViewSchema.Column column)
    {
        Type t = column.Type.RawType;
        if (t == typeof(float)) { var g = row.GetGetter<float>(column); float v = 0; return () => { g(ref v); return v; }; }
        if (t == typeof(double)) { var g = row.GetGetter<double>(column); double v = 0; return () => { g(ref v); return v; }; }
        if (t == typeof(int)) { var g = row.GetGetter<int>(column); int v = 0; return () => { g(ref v); return v; }; }
        if (t == typeof(long)) { var g = row.GetGetter<long>(column); long v = 0; return () => { g(ref v); return v; }; }
        if (t == typeof(short)) { var g = row.GetGetter<short>(column); short v = 0; return () => { g(ref v); return v; }; }
        if (t == typeof(byte)) { var g = row.GetGetter<byte>(column); byte v = 0; return () => { g(ref v); return v; }; }
        if (t == typeof(sbyte)) { var g = row.GetGetter<sbyte>(column); sbyte v = 0; return () => { g(ref v); return v; }; }
        if (t == typeof(uint)) { var g = row.GetGetter<uint>(column); uint v = 0; return () => { g(ref v); return v; }; }
        if (t == typeof(ushort)) { var g = row.GetGetter<ushort>(column); ushort v = 0; return () => { g(ref v); return v; }; }
        { var g = row.GetGetter<ulong>(column); ulong v = 0; return () => { g(ref v); return v; }; }
    }

    private static Func<long, DateTime> TimestampGetter(DataViewRow row, DataViewSchema.Column column, string purpose)
    {
        Type t = column.Type.RawType;
        if (t == typeof(DateTime)) { var g = row.GetGetter<DateTime>(column); DateTime v = default; return _ => { g(ref v); return v; }; }
        if (t == typeof(DateTimeOffset)) { var g = row.GetGetter<DateTimeOffset>(column); DateTimeOffset v = default; return _ => { g(ref v); return v.DateTime; }; }
        var text = row.GetGetter<ReadOnlyMemory<char>>(column);
        ReadOnlyMemory<char> s = default;
        return r =>
        {
            text(ref s);
            if (DateTime.TryParse(s.Span, CultureInfo.InvariantCulture, DateTimeStyles.AllowWhiteSpaces, out var d)) return d;
            throw new FormatException($"{purpose}: timestamp column '{column.Name}' holds '{s}' at row {r}, which is not a date. Use a format such as 2016-07-01 00:00:00 or load the column as DateTime.");
        };
    }
}
