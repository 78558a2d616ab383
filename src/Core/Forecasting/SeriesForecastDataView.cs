using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// A forecasting model's output for a series view: one row per lookback window (ending at rows L − 1 … T − 1) with
/// the window, its last timestamp, the forecast and the interval bounds. Forecasts are computed lazily, a batch of
/// <see cref="Data.TorchTransformerBase.BatchSize"/> windows at a time, with covariates from the real timestamps.
/// </summary>
internal sealed class SeriesForecastDataView : IndexedDataView
{
    private readonly ForecastingModel _model;
    private readonly TimeSeriesFrame _frame;
    private readonly int _firstOutput;

    public SeriesForecastDataView(ForecastingModel model, TimeSeriesFrame frame, DataViewSchema schema)
        : base(schema, frame.Rows - model.Lookback + 1)
    {
        _model = model;
        _frame = frame;
        _firstOutput = frame.Timestamps is null ? 1 : 2;
    }

    protected override IDisposable CreateCursorState() => new Batches(this);

    protected override Delegate CreateGetter(DataViewSchema.Column column, Func<long> position, IDisposable? state)
    {
        var frame = _frame;
        int n = frame.Columns.Count, l = _model.Lookback, size = _model.Horizon * n;
        if (column.Index == 0)
            return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
            {
                var editor = VBufferEditor.Create(ref value, l * n);
                frame.Values.AsSpan(checked((int)position()) * n, l * n).CopyTo(editor.Values);
                value = editor.Commit();
            });
        if (column.Index < _firstOutput)
            return (ValueGetter<DateTime>)((ref DateTime value) => value = frame.Timestamps![checked((int)position()) + l - 1]);
        int output = column.Index - _firstOutput;
        var batches = (Batches)state!;
        return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
        {
            int w = checked((int)position());
            var scores = batches.At(w);
            var source = output switch { 0 => scores.Forecast, 1 => scores.Lower!, _ => scores.Upper! };
            var editor = VBufferEditor.Create(ref value, size);
            source.AsSpan((w - batches.Start) * size, size).CopyTo(editor.Values);
            value = editor.Commit();
        });
    }

    /// <summary>One cursor's scoring windows and its current batch of forecasts.</summary>
    private sealed class Batches(SeriesForecastDataView view) : IDisposable
    {
        private WindowBatchSource? _windows;
        private bool[]? _unusable;
        private (float[] Forecast, float[]? Lower, float[]? Upper) _batch;

        public int Start { get; private set; } = -1;

        public (float[] Forecast, float[]? Lower, float[]? Upper) At(int window)
        {
            int size = view._model.BatchSize;
            if (Start >= 0 && window >= Start && window < Start + size) return _batch;
            if (_windows is null)
            {
                _windows = view._model.ScoringWindows(view._frame);
                _unusable = _windows.UnusableWindows();
            }
            Start = window - window % size;
            int count = (int)Math.Min(size, view.GetRowCount()!.Value - Start);
            int l = view._model.Lookback;
            _batch = view._model.ForecastWindows(_windows, _unusable!, Start, count,
                k => $"the lookback of the window ending at row {k + l - 1} (rows {k} to {k + l - 1})");
            return _batch;
        }

        public void Dispose()
        {
            _windows?.Dispose();
            _windows = null;
        }
    }
}
