using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>A <see cref="TimeSeriesFrame"/> served as an <see cref="IDataView"/> (no copy): one Single column per
/// variate and, with timestamps, one DateTime column. Cursors read the frame in row order.</summary>
internal sealed class FrameDataView : IDataView
{
    private readonly TimeSeriesFrame _frame;

    public FrameDataView(TimeSeriesFrame frame, string timestampColumnName)
    {
        _frame = frame;
        var builder = new DataViewSchema.Builder();
        foreach (var name in frame.Columns) builder.AddColumn(name, NumberDataViewType.Single);
        if (frame.Timestamps is not null)
        {
            if (frame.Columns.Contains(timestampColumnName))
                throw new ArgumentException($"The timestamp column name '{timestampColumnName}' is also a variate's name; " +
                    "pass another timestampColumnName.", nameof(timestampColumnName));
            builder.AddColumn(timestampColumnName, DateTimeDataViewType.Instance);
        }
        Schema = builder.ToSchema();
    }

    public DataViewSchema Schema { get; }

    public bool CanShuffle => false;

    public long? GetRowCount() => _frame.Rows;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, columnsNeeded);

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly FrameDataView _view;
        private readonly bool[] _active;
        private long _position = -1;

        public Cursor(FrameDataView view, IEnumerable<DataViewSchema.Column> columnsNeeded)
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
            if (_position + 1 >= _view._frame.Rows) { _position = _view._frame.Rows; return false; }
            _position++;
            return true;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active[column.Index])
                throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");
            var frame = _view._frame;
            int variates = frame.Columns.Count;
            if (column.Index < variates)
            {
                if (typeof(TValue) != typeof(float))
                    throw new InvalidOperationException($"Column '{column.Name}' is Single; asked for {typeof(TValue).Name}.");
                int n = column.Index;
                ValueGetter<float> getter = (ref float value) => value = frame.Values[checked((int)_position) * variates + n];
                return (ValueGetter<TValue>)(Delegate)getter;
            }
            if (typeof(TValue) != typeof(DateTime))
                throw new InvalidOperationException($"Column '{column.Name}' is DateTime; asked for {typeof(TValue).Name}.");
            ValueGetter<DateTime> time = (ref DateTime value) => value = frame.Timestamps![checked((int)_position)];
            return (ValueGetter<TValue>)(Delegate)time;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() =>
            (ref DataViewRowId value) => value = new DataViewRowId((ulong)_position, 0);
    }
}
