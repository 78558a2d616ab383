using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// The skeleton of the toolkit's in-memory views (a frame, its windows, its forecasts): a fixed schema, a known row
/// count, one cursor that walks rows 0 … count − 1 in order. A subclass supplies the getters of a row, and optionally a
/// per-cursor state (e.g. a batch of forecasts) that the cursor disposes.
/// </summary>
internal abstract class IndexedDataView : IDataView
{
    private readonly long _rows;

    protected IndexedDataView(DataViewSchema schema, long rows)
    {
        Schema = schema;
        _rows = rows;
    }

    public DataViewSchema Schema { get; }

    public bool CanShuffle => false;

    public long? GetRowCount() => _rows;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, columnsNeeded, CreateCursorState());

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    /// <summary>State one cursor owns (disposed with it); null by default.</summary>
    protected virtual IDisposable? CreateCursorState() => null;

    /// <summary>The getter of <paramref name="column"/>: a <c>ValueGetter&lt;T&gt;</c> of the column's own type that
    /// reads row <c>position()</c>, with the cursor's <paramref name="state"/>.</summary>
    protected abstract Delegate CreateGetter(DataViewSchema.Column column, Func<long> position, IDisposable? state);

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly IndexedDataView _view;
        private readonly bool[] _active;
        private IDisposable? _state;
        private long _position = -1;

        public Cursor(IndexedDataView view, IEnumerable<DataViewSchema.Column> columnsNeeded, IDisposable? state)
        {
            _view = view;
            _state = state;
            _active = new bool[view.Schema.Count];
            foreach (var column in columnsNeeded) _active[column.Index] = true;
        }

        public override DataViewSchema Schema => _view.Schema;
        public override long Position => _position;
        public override long Batch => 0;

        public override bool MoveNext()
        {
            if (_position + 1 >= _view._rows) { _position = _view._rows; return false; }
            _position++;
            return true;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active[column.Index])
                throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");
            return _view.CreateGetter(column, () => _position, _state) as ValueGetter<TValue>
                ?? throw new InvalidOperationException(
                    $"Column '{column.Name}' has type {column.Type}; asked for a getter of {typeof(TValue).Name}.");
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() =>
            (ref DataViewRowId value) => value = new DataViewRowId((ulong)_position, 0);

        protected override void Dispose(bool disposing)
        {
            if (disposing) _state?.Dispose();
            _state = null;
            base.Dispose(disposing);
        }
    }
}
