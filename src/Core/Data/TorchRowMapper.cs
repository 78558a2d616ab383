using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Data;

/// <summary>Row-to-row mapper of <see cref="TorchTransformerBase"/>: scores each row as a batch of one, caching the
/// result per row position, so every output getter of a row shares one forward pass.</summary>
internal sealed class TorchRowMapper : IRowToRowMapper
{
    private readonly TorchTransformerBase _owner;
    private readonly BoundSchema _bound;

    internal TorchRowMapper(TorchTransformerBase owner, BoundSchema bound)
    {
        _owner = owner;
        _bound = bound;
    }

    public DataViewSchema InputSchema => _bound.InputSchema;

    public DataViewSchema OutputSchema => _bound.OutputSchema;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        ArgumentNullException.ThrowIfNull(dependingColumns);
        var needed = new bool[_bound.InputCount];
        foreach (var column in dependingColumns)
        {
            if (column.Index < _bound.InputCount)
            {
                needed[column.Index] = true;
            }
            else
            {
                foreach (int index in _bound.ModelInputIndices)
                    needed[index] = true;
            }
        }
        return InputSchema.Where(c => needed[c.Index]).ToArray();
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(activeColumns);
        var bound = ReferenceEquals(input.Schema, _bound.InputSchema) ? _bound : _owner.Bind(input.Schema);
        var active = new bool[bound.OutputSchema.Count];
        foreach (var column in activeColumns)
        {
            if (column.Index >= 0 && column.Index < active.Length)
                active[column.Index] = true;
        }
        if (input is not DataViewRowCursor)
            _owner.OnPredictionEngineRow();   // a prediction engine's row: that engine will dispose the transformer once
        return new TorchRow(_owner, bound, input, active);
    }
}

internal sealed class TorchRow : DataViewRow
{
    private readonly TorchTransformerBase _owner;
    private readonly BoundSchema _bound;
    private readonly DataViewRow _input;
    private readonly bool[] _active;
    private BatchScorer? _scorer;
    private long _scoredPosition = long.MinValue;

    internal TorchRow(TorchTransformerBase owner, BoundSchema bound, DataViewRow input, bool[] active)
    {
        _owner = owner;
        _bound = bound;
        _input = input;
        _active = active;
    }

    public override DataViewSchema Schema => _bound.OutputSchema;

    public override long Position => _input.Position;

    public override long Batch => _input.Batch;

    public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

    public override bool IsColumnActive(DataViewSchema.Column column)
    {
        CheckColumn(column);
        if (column.Index < _bound.InputCount)
            return _input.IsColumnActive(_input.Schema[column.Index]);
        return _active[column.Index];
    }

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
    {
        CheckColumn(column);
        if (column.Index < _bound.InputCount)
            return _input.GetGetter<TValue>(_input.Schema[column.Index]);

        int output = column.Index - _bound.InputCount;
        var spec = _owner.OutputColumns[output];
        _scorer ??= new BatchScorer(_owner, _bound, _input, capacity: 1, predictionEngine: _input is not DataViewRowCursor);
        return BatchScorer.OutputGetter<TValue>(_scorer, spec, output, column, () =>
        {
            EnsureScored();
            return 0;
        });
    }

    private void EnsureScored()
    {
        long position = _input.Position;
        if (position == _scoredPosition)
            return;
        _scoredPosition = long.MinValue;
        _scorer!.ReadRow(0, position);
        _scorer.Run(1);
        _scoredPosition = position;
    }

    private void CheckColumn(DataViewSchema.Column column)
    {
        if (column.Index < 0 || column.Index >= Schema.Count || Schema[column.Index].Name != column.Name)
            throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' (index {column.Index}) does not belong to this row's schema.");
    }

}
