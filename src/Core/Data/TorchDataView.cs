using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Data;

/// <summary>The lazy result of <see cref="TorchTransformerBase.Transform"/>.</summary>
internal sealed class TorchDataView : IDataView
{
    internal TorchDataView(TorchTransformerBase owner, IDataView source, BoundSchema bound)
    {
        Owner = owner;
        Source = source;
        Bound = bound;
    }

    internal TorchTransformerBase Owner { get; }
    internal IDataView Source { get; }
    internal BoundSchema Bound { get; }

    public DataViewSchema Schema => Bound.OutputSchema;

    public bool CanShuffle => Source.CanShuffle;

    public long? GetRowCount() => Source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        ArgumentNullException.ThrowIfNull(columnsNeeded);
        var active = new bool[Schema.Count];
        foreach (var column in columnsNeeded)
        {
            if (column.Index < 0 || column.Index >= Schema.Count)
                throw new ArgumentOutOfRangeException(nameof(columnsNeeded), $"Column '{column.Name}' (index {column.Index}) is not in this view's schema.");
            active[column.Index] = true;
        }

        int inputCount = Bound.InputCount;
        bool compute = false;
        for (int j = inputCount; j < active.Length; j++)
            compute |= active[j];

        var sourceActive = new bool[inputCount];
        for (int i = 0; i < inputCount; i++)
            sourceActive[i] = active[i];
        if (compute)
        {
            foreach (int index in Bound.ModelInputIndices)
                sourceActive[index] = true;
        }
        var sourceColumns = Source.Schema.Where(c => sourceActive[c.Index]).ToList();
        var cursor = SingleCursor.Open(Source, sourceColumns, rand);
        try
        {
            return new TorchCursor(this, cursor, active, compute);
        }
        catch
        {
            cursor.Dispose();
            throw;
        }
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };
}

/// <summary>
/// Cursor of <see cref="TorchDataView"/>. Without requested output columns it forwards to the source cursor. Otherwise
/// it pulls up to <c>BatchSize</c> source rows, buffering their pass-through values and staging their model inputs,
/// runs one forward pass, and serves the buffered rows.
/// </summary>
internal sealed class TorchCursor : DataViewRowCursor
{
    private readonly TorchDataView _view;
    private readonly DataViewRowCursor _source;
    private readonly bool[] _active;
    private readonly bool _compute;
    private readonly BatchScorer? _scorer;
    private readonly ColumnBuffer?[] _buffers;
    private readonly DataViewRowId[]? _ids;
    private readonly ValueGetter<DataViewRowId>? _sourceId;
    private int _slot = -1;
    private int _count;
    private long _position = -1;
    private bool _done;

    internal TorchCursor(TorchDataView view, DataViewRowCursor source, bool[] active, bool compute)
    {
        _view = view;
        _source = source;
        _active = active;
        _compute = compute;
        int inputCount = view.Bound.InputCount;
        _buffers = new ColumnBuffer?[inputCount];
        if (compute)
        {
            int capacity = view.Owner.BatchSize;
            _scorer = new BatchScorer(view.Owner, view.Bound, source, capacity);
            for (int i = 0; i < inputCount; i++)
            {
                if (active[i])
                    _buffers[i] = ColumnBuffer.Create(source, source.Schema[i], capacity);
            }
            _ids = new DataViewRowId[capacity];
            _sourceId = source.GetIdGetter();
        }
    }

    public override DataViewSchema Schema => _view.Schema;

    public override long Position => _position;

    public override long Batch => _compute ? 0 : _source.Batch;

    public override bool IsColumnActive(DataViewSchema.Column column)
    {
        CheckColumn(column);
        return _active[column.Index];
    }

    public override bool MoveNext()
    {
        if (_done)
            return false;
        if (!_compute)
        {
            if (_source.MoveNext())
            {
                _position++;
                return true;
            }
            _done = true;
            return false;
        }

        if (_slot + 1 < _count)
        {
            _slot++;
            _position++;
            return true;
        }
        if (!FillBatch())
        {
            _done = true;
            _slot = -1;
            return false;
        }
        _slot = 0;
        _position++;
        return true;
    }

    private bool FillBatch()
    {
        var scorer = _scorer!;
        int n = 0;
        while (n < scorer.Capacity && _source.MoveNext())
        {
            scorer.ReadRow(n, _position + 1 + n);
            foreach (var buffer in _buffers)
                buffer?.Capture(n);
            _sourceId!(ref _ids![n]);
            n++;
        }
        _count = n;
        if (n == 0)
            return false;
        scorer.Run(n);
        return true;
    }

    private int CurrentSlot()
    {
        if (_slot < 0 || _slot >= _count)
            throw new InvalidOperationException("The cursor is not positioned on a row: call MoveNext and check that it returned true.");
        return _slot;
    }

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
    {
        CheckColumn(column);
        if (!_active[column.Index])
            throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor; request it when creating the cursor.");

        int inputCount = _view.Bound.InputCount;
        if (column.Index < inputCount)
        {
            if (!_compute)
                return _source.GetGetter<TValue>(_source.Schema[column.Index]);
            return _buffers[column.Index]!.GetGetter<TValue>(CurrentSlot, column);
        }

        int output = column.Index - inputCount;
        return BatchScorer.OutputGetter<TValue>(_scorer!, _view.Owner.OutputColumns[output], output, column, CurrentSlot);
    }

    public override ValueGetter<DataViewRowId> GetIdGetter()
    {
        if (!_compute)
            return _source.GetIdGetter();
        var ids = _ids!;
        return (ref DataViewRowId value) => value = ids[CurrentSlot()];
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _source.Dispose();
            _scorer?.Dispose();
        }
        base.Dispose(disposing);
    }

    private void CheckColumn(DataViewSchema.Column column)
    {
        if (column.Index < 0 || column.Index >= _active.Length || Schema[column.Index].Name != column.Name)
            throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' (index {column.Index}) does not belong to this cursor's schema.");
    }

}
