using MLNet.Attention.Engine;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Sliding windows (a start at every row) over a scaled series kept as one tensor: a batch is gathered with one
/// index operation instead of copying windows, so memory stays at the size of the series.
/// Inputs are [lookback window [B, L, N], covariates [B, L, M] or null]; the target is [B, S, N].
/// </summary>
internal sealed class WindowBatchSource : BatchSource, IDisposable
{
    private readonly float[] _values;
    private readonly float[]? _covariates;
    private readonly int _variates, _covariateCount, _rows, _lookback, _horizon;
    private Tensor? _series, _calendar, _lookbackOffsets, _horizonOffsets;
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
        return new TrainingBatch(new[] { x, cov }, y, rows.Length);
    }

    private void EnsureOn(Device device)
    {
        if (_series is not null && _device == device) return;
        DisposeTensors();
        _device = device;
        _series = tensor(_values, new long[] { _rows, _variates }, device: device).DetachFromDisposeScope();
        if (_covariates is not null)
            _calendar = tensor(_covariates, new long[] { _rows, _covariateCount }, device: device).DetachFromDisposeScope();
        _lookbackOffsets = arange(Zero, Of(_lookback), One, dtype: ScalarType.Int64, device: device).unsqueeze(0).DetachFromDisposeScope();
        _horizonOffsets = arange(Of(_lookback), Of(_lookback + _horizon), One, dtype: ScalarType.Int64, device: device).unsqueeze(0).DetachFromDisposeScope();
    }

    private void DisposeTensors()
    {
        _series?.Dispose(); _calendar?.Dispose(); _lookbackOffsets?.Dispose(); _horizonOffsets?.Dispose();
        _series = _calendar = _lookbackOffsets = _horizonOffsets = null;
    }

    public void Dispose() => DisposeTensors();
}
