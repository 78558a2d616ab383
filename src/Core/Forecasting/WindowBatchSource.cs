using MLNet.Attention.Engine;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Sliding windows (a start at every row) over a scaled series kept as one tensor: a batch is gathered with one
/// index operation instead of copying windows, so memory stays at the size of the series.
/// Inputs are [lookback window [B, L, N], covariates [B, L, M] or null, observed mask of the window [B, L, N] or
/// null]; the target is [B, S, N] with <see cref="TrainingBatch.TargetMask"/>. Missing (NaN) values become 0 in the
/// window and the target, and the masks (1 = observed) say where they were; without NaN both masks are null.
/// </summary>
internal sealed class WindowBatchSource : BatchSource, IDisposable
{
    private readonly float[] _values;
    private readonly float[]? _covariates;
    private readonly int _variates, _covariateCount, _rows, _lookback, _horizon;
    private readonly bool _hasMissing;
    private Tensor? _series, _observed, _calendar, _lookbackOffsets, _horizonOffsets;
    private Device? _device;

    public WindowBatchSource(float[] scaledValues, int variates, float[]? covariates, int covariateCount, int lookback, int horizon)
    {
        _values = scaledValues;
        _variates = variates;
        _covariates = covariates;
        _covariateCount = covariateCount;
        _rows = scaledValues.Length / variates;
        _lookback = lookback;
        _horizon = horizon;
        _hasMissing = Array.Exists(scaledValues, float.IsNaN);
    }

    public override int Count => Math.Max(0, _rows - _lookback - _horizon + 1);

    public override TrainingBatch CreateBatch(ReadOnlySpan<int> rows, Device device)
    {
        EnsureOn(device);
        var starts = tensor(rows.ToArray(), dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var inputIndex = starts.add(_lookbackOffsets!, One);          // [B, L]
        var targetIndex = starts.add(_horizonOffsets!, One);          // [B, S]
        var x = _series![inputIndex];                           // [B, L, N]
        var y = _series[targetIndex];                           // [B, S, N]
        var cov = _calendar is null ? null : _calendar[inputIndex];
        if (_observed is null) return new TrainingBatch(new[] { x, cov, null }, y, rows.Length);
        return new TrainingBatch(new[] { x, cov, _observed[inputIndex] }, y, rows.Length) { TargetMask = _observed[targetIndex] };
    }

    /// <summary>Windows whose lookback has no observed value or whose target has none (so nothing can be forecast or
    /// scored): the evaluation skips and counts them. With horizon 0 (scoring windows) only the lookback counts.</summary>
    public bool[] UnusableWindows()
    {
        var unusable = new bool[Count];
        if (!_hasMissing) return unusable;
        int n = _variates;
        // Prefix sums of observed values per row make each window's count O(1).
        var observedUpTo = new int[_rows + 1];
        for (int t = 0; t < _rows; t++)
        {
            int observed = 0;
            for (int k = 0; k < n; k++) if (!float.IsNaN(_values[t * n + k])) observed++;
            observedUpTo[t + 1] = observedUpTo[t] + observed;
        }
        for (int w = 0; w < unusable.Length; w++)
            unusable[w] = observedUpTo[w + _lookback] == observedUpTo[w]
                || (_horizon > 0 && observedUpTo[w + _lookback + _horizon] == observedUpTo[w + _lookback]);
        return unusable;
    }

    private void EnsureOn(Device device)
    {
        if (_series is not null && _device == device) return;
        DisposeTensors();
        _device = device;
        if (_hasMissing)
        {
            var filled = new float[_values.Length];
            var observed = new float[_values.Length];
            for (int i = 0; i < filled.Length; i++)
            {
                bool missing = float.IsNaN(_values[i]);
                filled[i] = missing ? 0f : _values[i];
                observed[i] = missing ? 0f : 1f;
            }
            _series = tensor(filled, new long[] { _rows, _variates }, device: device).DetachFromDisposeScope();
            _observed = tensor(observed, new long[] { _rows, _variates }, device: device).DetachFromDisposeScope();
        }
        else _series = tensor(_values, new long[] { _rows, _variates }, device: device).DetachFromDisposeScope();
        if (_covariates is not null)
            _calendar = tensor(_covariates, new long[] { _rows, _covariateCount }, device: device).DetachFromDisposeScope();
        _lookbackOffsets = arange(Zero, Of(_lookback), One, dtype: ScalarType.Int64, device: device).unsqueeze(0).DetachFromDisposeScope();
        _horizonOffsets = arange(Of(_lookback), Of(_lookback + _horizon), One, dtype: ScalarType.Int64, device: device).unsqueeze(0).DetachFromDisposeScope();
    }

    private void DisposeTensors()
    {
        _series?.Dispose(); _observed?.Dispose(); _calendar?.Dispose(); _lookbackOffsets?.Dispose(); _horizonOffsets?.Dispose();
        _series = _observed = _calendar = _lookbackOffsets = _horizonOffsets = null;
    }

    public void Dispose() => DisposeTensors();
}
