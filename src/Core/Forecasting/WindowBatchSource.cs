using MLNet.Attention.Engine;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Sliding windows (a start at every row) over a scaled series kept as one tensor: a batch is gathered with one
/// index operation instead of copying windows, so memory stays at the size of the series.
/// Inputs are [lookback window [B, L, C], covariates [B, L, M] or null, observed mask of the window [B, L, C] or
/// null (, with known-future covariates their horizon values [B, S, F])]; the target is [B, S, N] (the first N
/// channels) with <see cref="TrainingBatch.TargetMask"/>. Missing (NaN) values become 0 in the window and the target,
/// and the masks (1 = observed) say where they were; without NaN both masks are null.
/// </summary>
internal sealed class WindowBatchSource : BatchSource, IDisposable
{
    private readonly float[] _values;
    private readonly float[]? _covariates;
    private readonly int _channels, _variates, _future, _covariateCount, _rows, _lookback, _horizon;
    private readonly bool _hasMissing, _withTargets;
    private Tensor? _series, _observed, _calendar, _lookbackOffsets, _horizonOffsets;
    private Device? _device;

    /// <param name="scaledValues">Row-major [rows × channels], NaN = missing.</param>
    /// <param name="channels">Channels per row C: the variates, then past, then future covariates.</param>
    /// <param name="variates">The first N channels: forecast (the target).</param>
    /// <param name="futureCovariates">The last F channels: known-future covariates, served over the horizon too.</param>
    /// <param name="covariates">Calendar features [rows × M], or null.</param>
    /// <param name="covariateCount">M.</param>
    /// <param name="lookback">L.</param>
    /// <param name="horizon">S: rows after each window (target and future covariates); 0 for scoring windows without
    /// future covariates.</param>
    /// <param name="withTargets">False for scoring windows whose horizon rows hold only the future covariates (their
    /// targets are not looked at).</param>
    public WindowBatchSource(float[] scaledValues, int channels, int variates, int futureCovariates, float[]? covariates,
        int covariateCount, int lookback, int horizon, bool withTargets = true)
    {
        _values = scaledValues;
        _channels = channels;
        _variates = variates;
        _future = futureCovariates;
        _covariates = covariates;
        _covariateCount = covariateCount;
        _rows = scaledValues.Length / channels;
        _lookback = lookback;
        _horizon = horizon;
        _withTargets = withTargets && horizon > 0;
        _hasMissing = Array.Exists(scaledValues, float.IsNaN);
    }

    public override int Count => Math.Max(0, _rows - _lookback - _horizon + 1);

    public override TrainingBatch CreateBatch(ReadOnlySpan<int> rows, Device device)
    {
        EnsureOn(device);
        var starts = tensor(rows.ToArray(), dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var inputIndex = starts.add(_lookbackOffsets!, One);          // [B, L]
        var targetIndex = starts.add(_horizonOffsets!, One);          // [B, S]
        var x = _series![inputIndex];                           // [B, L, C]
        var ahead = _series[targetIndex];                       // [B, S, C]
        var y = _channels == _variates ? ahead : ahead.narrow(2, 0, _variates);   // [B, S, N]
        var cov = _calendar is null ? null : _calendar[inputIndex];
        var observed = _observed?[inputIndex];
        var inputs = _future > 0
            ? new[] { x, cov, observed, ahead.narrow(2, _channels - _future, _future) }
            : new[] { x, cov, observed };
        if (_observed is null || !_withTargets) return new TrainingBatch(inputs, y, rows.Length);
        var targetMask = _observed[targetIndex];
        return new TrainingBatch(inputs, y, rows.Length)
        {
            TargetMask = _channels == _variates ? targetMask : targetMask.narrow(2, 0, _variates),
        };
    }

    /// <summary>Windows whose lookback has no observed value (in any channel) or whose target has none (in the
    /// variates), so nothing can be forecast or scored: the evaluation skips and counts them. Scoring windows
    /// (no targets) are judged by the lookback only.</summary>
    public bool[] UnusableWindows()
    {
        var unusable = new bool[Count];
        if (!_hasMissing) return unusable;
        int c = _channels;
        // Prefix sums of observed values per row (all channels; the variates alone) make each window's count O(1).
        var observedUpTo = new int[_rows + 1];
        var targetsUpTo = new int[_rows + 1];
        for (int t = 0; t < _rows; t++)
        {
            int observed = 0, targets = 0;
            for (int k = 0; k < c; k++)
                if (!float.IsNaN(_values[t * c + k]))
                {
                    observed++;
                    if (k < _variates) targets++;
                }
            observedUpTo[t + 1] = observedUpTo[t] + observed;
            targetsUpTo[t + 1] = targetsUpTo[t] + targets;
        }
        for (int w = 0; w < unusable.Length; w++)
            unusable[w] = observedUpTo[w + _lookback] == observedUpTo[w]
                || (_withTargets && targetsUpTo[w + _lookback + _horizon] == targetsUpTo[w + _lookback]);
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
            _series = tensor(filled, new long[] { _rows, _channels }, device: device).DetachFromDisposeScope();
            _observed = tensor(observed, new long[] { _rows, _channels }, device: device).DetachFromDisposeScope();
        }
        else _series = tensor(_values, new long[] { _rows, _channels }, device: device).DetachFromDisposeScope();
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
