using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// A forecasting model's output for a series view: one row per lookback window (ending at rows L − 1 … T − 1) with
/// the window, its last timestamp, the forecast and the interval bounds. Forecasts are computed lazily, a batch of
/// <see cref="Data.TorchTransformerBase.BatchSize"/> windows at a time, with covariates from the real timestamps.
/// </summary>
internal sealed class SeriesForecastDataView : IDataView
{
    private readonly ForecastingModel _model;
    private readonly TimeSeriesFrame _frame;
    private readonly int _count;

    public SeriesForecastDataView(ForecastingModel model, TimeSeriesFrame frame, DataViewSchema schema)
    {
        _model = model;
        _frame = frame;
        _count = frame.Rows - model.Lookback + 1;
        Schema = schema;
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
        private readonly SeriesForecastDataView _view;
        private readonly bool[] _active;
        private readonly int _firstOutput, _batchSize;
        private WindowBatchSource? _windows;
        private bool[]? _unusable;
        private (float[] Forecast, float[]? Lower, float[]? Upper) _batch;
        private int _batchStart = -1;
        private long _position = -1;

        public Cursor(SeriesForecastDataView view, IEnumerable<DataViewSchema.Column> columnsNeeded)
        {
            _view = view;
            _active = new bool[view.Schema.Count];
            foreach (var column in columnsNeeded) _active[column.Index] = true;
            _firstOutput = view._frame.Timestamps is null ? 1 : 2;
            _batchSize = view._model.BatchSize;
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

        private (float[] Forecast, float[]? Lower, float[]? Upper) Scores()
        {
            int w = checked((int)_position);
            if (_batchStart >= 0 && w >= _batchStart && w < _batchStart + _batchSize) return _batch;
            if (_windows is null)
            {
                _windows = _view._model.ScoringWindows(_view._frame);
                _unusable = _windows.UnusableWindows();
            }
            _batchStart = w - w % _batchSize;
            int count = Math.Min(_batchSize, _view._count - _batchStart);
            int l = _view._model.Lookback;
            _batch = _view._model.ForecastWindows(_windows, _unusable!, _batchStart, count,
                k => $"the lookback of the window ending at row {k + l - 1} (rows {k} to {k + l - 1})");
            return _batch;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active[column.Index])
                throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");
            var frame = _view._frame;
            int n = frame.Columns.Count, l = _view._model.Lookback, size = _view._model.Horizon * n;
            if (column.Index == 0)
                return Vector((ref VBuffer<float> value) =>
                {
                    var editor = VBufferEditor.Create(ref value, l * n);
                    frame.Values.AsSpan(checked((int)_position) * n, l * n).CopyTo(editor.Values);
                    value = editor.Commit();
                });
            if (column.Index < _firstOutput)
            {
                if (typeof(TValue) != typeof(DateTime))
                    throw new InvalidOperationException($"Column '{column.Name}' is DateTime; asked for {typeof(TValue).Name}.");
                ValueGetter<DateTime> time = (ref DateTime value) => value = frame.Timestamps![checked((int)_position) + l - 1];
                return (ValueGetter<TValue>)(Delegate)time;
            }
            int output = column.Index - _firstOutput;
            return Vector((ref VBuffer<float> value) =>
            {
                var scores = Scores();
                var source = output switch { 0 => scores.Forecast, 1 => scores.Lower!, _ => scores.Upper! };
                var editor = VBufferEditor.Create(ref value, size);
                source.AsSpan(checked((int)_position - _batchStart) * size, size).CopyTo(editor.Values);
                value = editor.Commit();
            });

            ValueGetter<TValue> Vector(ValueGetter<VBuffer<float>> getter) =>
                typeof(TValue) == typeof(VBuffer<float>)
                    ? (ValueGetter<TValue>)(Delegate)getter
                    : throw new InvalidOperationException($"Column '{column.Name}' is a Single vector; asked for {typeof(TValue).Name}.");
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() =>
            (ref DataViewRowId value) => value = new DataViewRowId((ulong)_position, 0);

        protected override void Dispose(bool disposing)
        {
            if (disposing) _windows?.Dispose();
            _windows = null;
            base.Dispose(disposing);
        }
    }
}
