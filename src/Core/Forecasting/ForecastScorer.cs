using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>What a forecasting model knows besides its weights; saved before them (with
/// <see cref="Interop.ConfigPersistence"/>, see <see cref="ForecastingModel"/> for the payload layout).</summary>
internal sealed record ForecastingModelInfo(
    string[] Variates, int Lookback, int Horizon, CalendarFeatures Calendar, TimeSpan? Frequency, string? TimestampColumnName,
    string LookbackColumnName, string WindowTimestampColumnName, string ForecastColumnName, SeriesScaler Scaler)
{
    public int VariateCount => Variates.Length;
    public int CovariateCount => CalendarFeatureEncoder.Count(Calendar);

    public ForecastingShape Shape => new(VariateCount, Lookback, Horizon, CovariateCount);

    /// <summary>Throws <see cref="InvalidDataException"/> naming the first value a trained model cannot have (called
    /// when a saved model is read: by <see cref="Interop.ConfigPersistence"/> and by
    /// <see cref="ReadVersion1"/>).</summary>
    public void Validate()
    {
        const string corrupted = "Corrupted forecasting model header";
        if (Variates is null || Variates.Length is < 1 or > 1_000_000)
            throw new InvalidDataException($"{corrupted}: {Variates?.Length ?? 0} variates; expected 1 to 1,000,000.");
        if (Lookback < 1 || Horizon < 1)
            throw new InvalidDataException(
                $"{corrupted}: lookback {Lookback} and horizon {Horizon}; expected both >= 1.");
        if (!Enum.IsDefined(Calendar))
            throw new InvalidDataException($"{corrupted}: unknown calendar features {(int)Calendar}.");
        if (Frequency is { } step && step <= TimeSpan.Zero)
            throw new InvalidDataException($"{corrupted}: series frequency {step}; expected a positive step or none.");
        if (Scaler is null || Scaler.Mean.Count != Variates.Length)
            throw new InvalidDataException(
                $"{corrupted}: the scaler has {Scaler?.Mean.Count ?? 0} variates, the model {Variates.Length}.");
    }

    /// <summary>Reads the hand-written layout of payload version 1 (MLNet.Attention 0.1.0) after its first field, the
    /// variate count <paramref name="n"/>; newer versions store the record with <see cref="Interop.ConfigPersistence"/>.
    /// </summary>
    public static ForecastingModelInfo ReadVersion1(BinaryReader r, int n)
    {
        if (n is < 1 or > 1_000_000) throw new InvalidDataException($"Corrupted forecasting model: {n} variates.");
        var variates = new string[n];
        for (int i = 0; i < n; i++) variates[i] = r.ReadString();
        int lookback = r.ReadInt32(), horizon = r.ReadInt32(), calendar = r.ReadInt32();
        long frequency = r.ReadInt64();
        string timestamp = r.ReadString(), lookbackColumn = r.ReadString();
        string windowTimestamp = r.ReadString(), forecastColumn = r.ReadString();
        var scaler = SeriesScaler.ReadVersion1(r);
        var info = new ForecastingModelInfo(variates, lookback, horizon, (CalendarFeatures)calendar,
            frequency > 0 ? TimeSpan.FromTicks(frequency) : null, timestamp.Length == 0 ? null : timestamp,
            lookbackColumn, windowTimestamp, forecastColumn, scaler);
        info.Validate();
        return info;
    }

    /// <summary>The most common step between consecutive timestamps (robust to a few gaps).</summary>
    public static TimeSpan? InferFrequency(IReadOnlyList<DateTime>? times)
    {
        if (times is null || times.Count < 2) return null;
        return Enumerable.Range(1, times.Count - 1).Select(i => times[i] - times[i - 1])
            .GroupBy(d => d).OrderByDescending(g => g.Count()).First().Key;
    }
}

/// <summary>
/// Runs a trained forecasting network on windows in original units: scale, add calendar covariates, forecast in
/// scaled space, unscale. Shared by Transform, Forecast and Evaluate so they cannot disagree.
/// </summary>
internal sealed class ForecastScorer : IDisposable
{
    private readonly Func<Tensor, Tensor?, Tensor?, Tensor> _forecastScaled;
    private readonly Tensor _mean, _std;

    public ForecastingModelInfo Info { get; }
    public ForecastingPolicies Policies { get; }
    public nn.Module Network { get; }
    public Device Device { get; }

    /// <summary>Scaler means [N] on the device.</summary>
    public Tensor Mean => _mean;

    /// <summary>Scaler standard deviations [N] on the device.</summary>
    public Tensor Std => _std;

    /// <param name="info">Model description (variates, sizes, scaler, calendar).</param>
    /// <param name="network">The trained network; owned (disposed) by the scorer.</param>
    /// <param name="device">Device the network lives on.</param>
    /// <param name="policies">Missing-value and duplicate-timestamp policies the model was trained with.</param>
    /// <param name="forecastScaled">Network forward on scaled windows [B, L, N] (missing entries 0, + covariates
    /// [B, L, M], + observed mask [B, L, N] or null) → [B, S, N], on <paramref name="device"/>.</param>
    public ForecastScorer(ForecastingModelInfo info, ForecastingPolicies policies, nn.Module network, Device device,
        Func<Tensor, Tensor?, Tensor?, Tensor> forecastScaled)
    {
        Info = info;
        Policies = policies;
        Network = network;
        Device = device;
        _forecastScaled = forecastScaled;
        _mean = tensor(info.Scaler.Mean.ToArray(), device: device).DetachFromDisposeScope();
        _std = tensor(info.Scaler.Std.ToArray(), device: device).DetachFromDisposeScope();
        network.eval();
    }

    /// <summary>Windows [B, L, N] in original units (any device) and, with calendar covariates, the last lookback timestamp of each window → forecasts [B, S, N] in original units on the CPU.</summary>
    public Tensor ForecastOriginal(Tensor windows, IReadOnlyList<DateTime>? lastTimestamps)
    {
        if (lastTimestamps is null) return ForecastOriginal(windows, ReadOnlySpan<long>.Empty, hasTimestamps: false);
        var ticks = new long[lastTimestamps.Count];
        for (int i = 0; i < ticks.Length; i++) ticks[i] = lastTimestamps[i].Ticks;
        return ForecastOriginal(windows, ticks, hasTimestamps: true);
    }

    /// <summary>As <see cref="ForecastOriginal(Tensor, IReadOnlyList{DateTime}?)"/> with the timestamps as
    /// <see cref="DateTime.Ticks"/> (the scoring path: no per-call arrays).</summary>
    public Tensor ForecastOriginal(Tensor windows, ReadOnlySpan<long> lastTicks, bool hasTimestamps)
    {
        using var scope = NewDisposeScope();
        var onDevice = windows.device == Device ? windows : windows.to(Device);
        var scaled = (onDevice - _mean) / _std;
        Tensor? observed = null;
        if (Policies.AllowsMissing)
        {
            var missing = scaled.isnan();
            if (missing.any().item<bool>())
            {
                var usable = missing.logical_not().flatten(1).any(1);
                if (!usable.all().item<bool>())
                {
                    long first = usable.logical_not().nonzero()[0, 0].item<long>();
                    throw new InvalidOperationException(
                        $"Window {first} of this batch (0-based) has no observed value: all {Info.Lookback} × " +
                        $"{Info.VariateCount} lookback values are missing (NaN), so there is nothing to forecast from. " +
                        "Drop such windows, or give the model a longer history that reaches observed values.");
                }
                observed = missing.logical_not().to(ScalarType.Float32);
                scaled = scaled.masked_fill(missing, Zero);
            }
        }
        Tensor? covariates = null;
        if (Info.Calendar != CalendarFeatures.None)
        {
            if (!hasTimestamps)
                throw new InvalidOperationException($"This model uses calendar covariates: every window needs the timestamp of its last lookback row (column '{Info.WindowTimestampColumnName}').");
            covariates = WindowCovariates(lastTicks, (int)windows.size(0));
        }
        var y = CheckFinite(_forecastScaled(scaled, covariates, observed)).mul(_std).add(_mean, One);
        return (y.device_type == DeviceType.CPU ? y : y.cpu()).MoveToOuterDisposeScope();
    }

    /// <summary>Forecasts in scaled space for already-scaled, zero-filled windows with covariates and observed mask
    /// (evaluation path).</summary>
    public Tensor ForecastScaled(Tensor scaledWindows, Tensor? covariates, Tensor? observedMask) =>
        CheckFinite(_forecastScaled(scaledWindows, covariates, observedMask));

    // A forecast is never NaN: a non-finite output means diverged weights, not a missing input (those are handled).
    private static Tensor CheckFinite(Tensor forecast)
    {
        if (!forecast.isfinite().all().item<bool>())
            throw new InvalidOperationException(
                "The network produced a non-finite forecast (NaN or infinity) from finite inputs: its weights have " +
                "diverged. Retrain with a lower LearningRate or with GradientClipNorm set.");
        return forecast;
    }

    private Tensor WindowCovariates(ReadOnlySpan<long> lastTicks, int batch)
    {
        if (lastTicks.Length != batch)
            throw new InvalidOperationException($"This model uses calendar covariates: every window needs the timestamp of its last lookback row (column '{Info.WindowTimestampColumnName}').");
        var step = Info.Frequency ?? throw new InvalidOperationException("The model does not know the series frequency needed to date the lookback rows.");
        int l = Info.Lookback, m = Info.CovariateCount, size = batch * l * m;
        // A pooled staging buffer: scoring one window at a time (PredictionEngine) would otherwise allocate L·M floats per call.
        var features = System.Buffers.ArrayPool<float>.Shared.Rent(size);
        try
        {
            for (int b = 0; b < batch; b++)
            {
                var last = new DateTime(lastTicks[b]);
                for (int t = 0; t < l; t++)
                    CalendarFeatureEncoder.Encode(Info.Calendar, last - (l - 1 - t) * step, features.AsSpan((b * l + t) * m, m));
            }
            var result = empty(new long[] { batch, l, m }, ScalarType.Float32);
            result.data<float>().CopyFrom(new ReadOnlySpan<float>(features, 0, size), 0, 0);
            return Device.type == DeviceType.CPU ? result : result.to(Device);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(features);
        }
    }

    /// <summary>The conformal intervals, when the model was trained with a coverage.</summary>
    public ConformalIntervals? Intervals { get; private set; }

    /// <summary>[1, S, N] half-widths in original units at the trained coverage (on the device), with intervals.</summary>
    public Tensor? HalfWidthsOriginal { get; private set; }

    /// <summary>Half-widths [S × N] in original units at <paramref name="coverage"/>.</summary>
    public float[] HalfWidthsOriginalAt(double coverage, string modelName)
    {
        var scaled = Intervals!.HalfWidthsAt(coverage, modelName);
        int n = Info.VariateCount;
        for (int i = 0; i < scaled.Length; i++) scaled[i] *= Info.Scaler.Std[i % n];
        return scaled;
    }

    /// <summary>Attaches calibrated intervals (after training, or when loading).</summary>
    public void SetIntervals(ConformalIntervals intervals)
    {
        if (intervals.Horizon != Info.Horizon || intervals.Variates != Info.VariateCount)
            throw new InvalidDataException(
                $"Corrupted forecasting model: prediction intervals for {intervals.Horizon} × {intervals.Variates} " +
                $"targets, the model forecasts {Info.Horizon} × {Info.VariateCount}. Re-save or re-download it.");
        Intervals = intervals;
        HalfWidthsOriginal?.Dispose();
        HalfWidthsOriginal = tensor(HalfWidthsOriginalAt(intervals.Coverage, "model"), new long[] { 1, Info.Horizon, Info.VariateCount },
            device: Device).DetachFromDisposeScope();
    }

    public void Dispose()
    {
        HalfWidthsOriginal?.Dispose();
        _mean.Dispose();
        _std.Dispose();
        Network.Dispose();
    }
}
