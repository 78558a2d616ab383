using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>Column names of a window view (one row per window of a series).</summary>
/// <param name="Lookback">Vector&lt;Single, L, N&gt; of the lookback rows, time-major.</param>
/// <param name="Timestamp">DateTime of the window's last lookback row (only when the series has timestamps).</param>
/// <param name="Target">Vector&lt;Single, S, N&gt; of the next S rows (only when a horizon is given).</param>
internal sealed record WindowColumnNames(string Lookback, string Timestamp, string Target);

/// <summary>
/// The windows of a <see cref="TimeSeriesFrame"/> served as an <see cref="IDataView"/> without copying the series: a
/// window ends at every row from L − 1 on (windows slide by one, the papers' protocol), and with a horizon S only
/// windows with a complete target are served. Missing values stay NaN.
/// </summary>
internal sealed class WindowDataView : IDataView
{
    private readonly TimeSeriesFrame _frame;
    private readonly int _lookback, _horizon, _count;

    public WindowDataView(TimeSeriesFrame frame, int lookback, int horizon, WindowColumnNames names)
    {
        _frame = frame;
        _lookback = lookback;
        _horizon = horizon;
        _count = Math.Max(0, frame.Rows - lookback - horizon + 1);
        int n = frame.Columns.Count;
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(names.Lookback, new VectorDataViewType(NumberDataViewType.Single, lookback, n));
        if (frame.Timestamps is not null) builder.AddColumn(names.Timestamp, DateTimeDataViewType.Instance);
        if (horizon > 0) builder.AddColumn(names.Target, new VectorDataViewType(NumberDataViewType.Single, horizon, n));
        Schema = builder.ToSchema();
    }

    /// <summary>The schema of the windows of a series with <paramref name="variates"/> columns.</summary>
    public static DataViewSchema SchemaOf(int variates, int lookback, int horizon, bool timestamps, WindowColumnNames names)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(names.Lookback, new VectorDataViewType(NumberDataViewType.Single, lookback, variates));
        if (timestamps) builder.AddColumn(names.Timestamp, DateTimeDataViewType.Instance);
        if (horizon > 0) builder.AddColumn(names.Target, new VectorDataViewType(NumberDataViewType.Single, horizon, variates));
        return builder.ToSchema();
    }

    public DataViewSchema Schema { get; }

    public bool CanShuffle => false;

    public long? GetRowCount() => _count;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, columnsNeeded);

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly WindowDataView _view;
        private readonly bool[] _active;
        private long _position = -1;

        public Cursor(WindowDataView view, IEnumerable<DataViewSchema.Column> columnsNeeded)
        {
            _view = view;
            _active = new bool[view.Schema.Count];
            foreach (var column in columnsNeeded) _active[column.Index] = true;
        }

        public override DataViewSchema Schema => _view.Schema;
        public override long Position => _position;
        public override long Batch => 0;

        public override bool MoveNext()
        {
            if (_position + 1 >= _view._count) { _position = _view._count; return false; }
            _position++;
            return true;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active[column.Index])
                throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");
            var frame = _view._frame;
            int n = frame.Columns.Count, l = _view._lookback, s = _view._horizon;
            if (column.Type is VectorDataViewType)
            {
                if (typeof(TValue) != typeof(VBuffer<float>))
                    throw new InvalidOperationException($"Column '{column.Name}' is a Single vector; asked for {typeof(TValue).Name}.");
                // Lookback rows start at the window start; target rows right after the lookback.
                bool target = column.Index == Schema.Count - 1 && s > 0;
                int rows = target ? s : l, offset = target ? l : 0;
                ValueGetter<VBuffer<float>> getter = (ref VBuffer<float> value) =>
                {
                    var editor = VBufferEditor.Create(ref value, rows * n);
                    frame.Values.AsSpan((checked((int)_position) + offset) * n, rows * n).CopyTo(editor.Values);
                    value = editor.Commit();
                };
                return (ValueGetter<TValue>)(Delegate)getter;
            }
            if (typeof(TValue) != typeof(DateTime))
                throw new InvalidOperationException($"Column '{column.Name}' is DateTime; asked for {typeof(TValue).Name}.");
            ValueGetter<DateTime> time = (ref DateTime value) => value = frame.Timestamps![checked((int)_position) + l - 1];
            return (ValueGetter<TValue>)(Delegate)time;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() =>
            (ref DataViewRowId value) => value = new DataViewRowId((ulong)_position, 0);
    }
}
