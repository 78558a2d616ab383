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
    private readonly WindowLayout _layout;
    private readonly WindowColumnNames _names;
    private readonly int _firstOutput;

    /// <param name="model">The model scoring the windows.</param>
    /// <param name="frame">The series (every channel the model reads).</param>
    /// <param name="layout">The model's scoring windows (with known-future covariates the horizon rows must be in the
    /// series, so the last window ends Horizon rows before its end).</param>
    /// <param name="names">The window columns' names.</param>
    /// <param name="schema">The window columns, then the forecast (and the bounds).</param>
    public SeriesForecastDataView(ForecastingModel model, TimeSeriesFrame frame, WindowLayout layout, WindowColumnNames names,
        DataViewSchema schema)
        : base(schema, frame.Rows - layout.Lookback - layout.RowsAfter + 1)
    {
        _model = model;
        _frame = frame;
        _layout = layout;
        _names = names;
        _firstOutput = (frame.Timestamps is null ? 1 : 2) + (layout.FutureCovariates > 0 ? 1 : 0);
    }

    protected override IDisposable CreateCursorState() => new Batches(this);

    protected override Delegate CreateGetter(DataViewSchema.Column column, Func<long> position, IDisposable? state)
    {
        int size = _model.Horizon * _layout.Variates;
        if (column.Index < _firstOutput) return WindowDataView.Getter(_frame, _layout, _names, column, position);
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
