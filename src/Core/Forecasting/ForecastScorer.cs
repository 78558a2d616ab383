using MLNet.Attention.Data;
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

/// <summary>Exogenous inputs of a forecasting model (<see cref="ForecasterOptions.PastCovariateColumnNames"/>,
/// <see cref="ForecasterOptions.FutureCovariateColumnNames"/>) and their z-score fitted on the training rows; saved
/// after the prediction intervals from payload version 5 on (older models have none).</summary>
internal sealed record ForecastingCovariates(string[] Past, string[] Future, string FutureColumnName, SeriesScaler? Scaler)
{
    public static ForecastingCovariates None { get; } =
        new(Array.Empty<string>(), Array.Empty<string>(), "FutureCovariates", null);

    public int Count => Past.Length + Future.Length;

    /// <summary>The channels of a window after the variates: past, then future covariates.</summary>
    public IEnumerable<string> Columns => Past.Concat(Future);

    public void Validate()
    {
        if (Past is null || Future is null || (Count > 0) != (Scaler is not null)
            || (Scaler is not null && (Scaler.Mean.Count != Count || Scaler.Std.Count != Count)))
            throw new InvalidDataException(
                $"Corrupted forecasting model: {Past?.Length ?? 0} past and {Future?.Length ?? 0} future covariates with " +
                $"a scaler for {Scaler?.Mean.Count ?? 0}. Re-save or re-download it.");
    }

    /// <summary>One scaler for every window channel: the variates' then the covariates'.</summary>
    public SeriesScaler InputScaler(SeriesScaler variates) => Scaler is null ? variates
        : new SeriesScaler(variates.Mean.Concat(Scaler.Mean).ToArray(), variates.Std.Concat(Scaler.Std).ToArray());
}

/// <summary>
/// Runs a trained forecasting network on windows in original units: scale, add calendar covariates, forecast in
/// scaled space, unscale. Shared by Transform, Forecast and Evaluate so they cannot disagree.
/// </summary>
internal sealed class ForecastScorer : IDisposable
{
    private readonly IForecastingNetwork _forecaster;
    // What scores: the network's inference copy when it makes one (fused / precomputed weights), made at the first
    // scored batch and disposed with the scorer; else the network itself. Training and saving use the network.
    private readonly Lazy<IForecastingNetwork> _scoring;
    private readonly Tensor _mean, _std, _inputMean, _inputStd;

    public ForecastingModelInfo Info { get; }
    public ForecastingPolicies Policies { get; }
    public ForecastingCovariates Covariates { get; }

    /// <summary>Every column a window reads, in channel order (variates, past covariates, future covariates).</summary>
    public string[] ChannelColumns { get; }

    /// <summary>Channels per window row C (variates + covariates).</summary>
    public int Channels => ChannelColumns.Length;

    /// <summary>The scaler of every window channel.</summary>
    public SeriesScaler InputScaler { get; }
    public nn.Module Network { get; }

    /// <summary>The network that scores: <see cref="Network"/>'s inference copy when it makes one, else the network.
    /// </summary>
    internal IForecastingNetwork Scoring => _scoring.Value;
    public Device Device { get; }

    /// <summary>Scaler means [N] on the device.</summary>
    public Tensor Mean => _mean;

    /// <summary>Scaler standard deviations [N] on the device.</summary>
    public Tensor Std => _std;

    /// <param name="info">Model description (variates, sizes, scaler, calendar).</param>
    /// <param name="network">The trained network; owned (disposed) by the scorer.</param>
    /// <param name="device">Device the network lives on.</param>
    /// <param name="policies">Missing-value and duplicate-timestamp policies the model was trained with.</param>
    /// <param name="covariates">Exogenous inputs (<see cref="ForecastingCovariates.None"/> for none).</param>
    public ForecastScorer(ForecastingModelInfo info, ForecastingPolicies policies, ForecastingCovariates covariates,
        nn.Module network, Device device)
    {
        Info = info;
        Policies = policies;
        Covariates = covariates;
        Network = network;
        Device = device;
        _forecaster = (IForecastingNetwork)network;
        _scoring = new Lazy<IForecastingNetwork>(() => _forecaster is IInferenceCopyForecastingNetwork copyable
            ? copyable.CreateInferenceCopy(device) : _forecaster, LazyThreadSafetyMode.ExecutionAndPublication);
        CheckReadsFutureCovariates(_forecaster, covariates.Future.Length, "The model");
        ChannelColumns = info.Variates.Concat(covariates.Columns).ToArray();
        InputScaler = covariates.InputScaler(info.Scaler);
        _mean = tensor(info.Scaler.Mean.ToArray(), device: device).DetachFromDisposeScope();
        _std = tensor(info.Scaler.Std.ToArray(), device: device).DetachFromDisposeScope();
        _inputMean = tensor(InputScaler.Mean.ToArray(), device: device).DetachFromDisposeScope();
        _inputStd = tensor(InputScaler.Std.ToArray(), device: device).DetachFromDisposeScope();
        network.eval();
    }

    /// <summary>Throws unless <paramref name="network"/> reads exactly <paramref name="count"/> known-future covariates
    /// (nothing to check when there are none); <paramref name="who"/> names the trainer or model.</summary>
    public static void CheckReadsFutureCovariates(IForecastingNetwork network, int count, string who)
    {
        if (count > 0 && (network as IFutureCovariateForecastingNetwork)?.FutureCovariates != count)
            throw new InvalidOperationException($"{who}: the network does not read the {count} known-future covariates " +
                "of FutureCovariateColumnNames (it must implement IFutureCovariateForecastingNetwork built for them).");
    }

    /// <summary>The network's forward on scaled inputs (window [B, L, C], calendar [B, L, M] or null, observed mask or
    /// null, future covariates [B, S, F] or null) → [B, S, N]: the first N output channels.</summary>
    public static Tensor Forward(IForecastingNetwork network, int variates, Tensor windows, Tensor? covariates,
        Tensor? observedMask, Tensor? futureCovariates)
    {
        var y = futureCovariates is null ? network.ForecastScaled(windows, covariates, observedMask)
            : ((IFutureCovariateForecastingNetwork)network).ForecastScaled(windows, covariates, observedMask,
                futureCovariates);
        return y.size(2) == variates ? y : y.narrow(2, 0, variates);
    }

    /// <summary><see cref="Forward(IForecastingNetwork, int, Tensor, Tensor?, Tensor?, Tensor?)"/> of a toolkit batch's
    /// inputs (window, calendar, observed mask[, future covariates]).</summary>
    public static Tensor Forward(IForecastingNetwork network, int variates, IReadOnlyList<Tensor?> inputs) =>
        Forward(network, variates, inputs[0]!, inputs[1], inputs[2], inputs.Count > 3 ? inputs[3] : null);

    /// <summary>Windows [B, L, C] in original units (any device), with known-future covariates their horizon values
    /// [B, S, F], and with calendar covariates the last lookback timestamp of each window as
    /// <see cref="DateTime.Ticks"/> → forecasts [B, S, N] in original units on the CPU.</summary>
    public Tensor ForecastOriginal(Tensor windows, Tensor? future, ReadOnlySpan<long> lastTicks, bool hasTimestamps)
    {
        using var scope = NewDisposeScope();
        var onDevice = windows.device == Device ? windows : windows.to(Device);
        var scaled = (onDevice - _inputMean) / _inputStd;
        Tensor? scaledFuture = null;
        if (Covariates.Future.Length > 0)
        {
            if (future is null)
                throw new InvalidOperationException($"This model reads known-future covariates " +
                    $"({string.Join(", ", Covariates.Future.Select(c => $"'{c}'"))}): every window needs their next " +
                    $"{Info.Horizon} values (column '{Covariates.FutureColumnName}').");
            int f = Covariates.Future.Length, first = Channels - f;
            var onDeviceFuture = future.device == Device ? future : future.to(Device);
            scaledFuture = onDeviceFuture.sub(_inputMean.narrow(0, first, f)).div(_inputStd.narrow(0, first, f));
            var missingFuture = scaledFuture.isnan();
            if (missingFuture.any().item<bool>())
            {
                if (!Policies.AllowsMissing)
                {
                    long at = missingFuture.flatten().nonzero()[0, 0].item<long>();
                    long window = at / ((long)Info.Horizon * f), step = at / f % Info.Horizon;
                    throw new InvalidOperationException($"Known-future covariate '{Covariates.Future[at % f]}' (column " +
                        $"'{Covariates.FutureColumnName}') is missing (NaN) at horizon step {step} of window {window} of " +
                        "this batch (0-based), and this model refuses missing values (MissingValues = Refuse). Give every " +
                        "future covariate value, or train with MissingValues = MissingValuePolicy.ZeroFill.");
                }
                scaledFuture = scaledFuture.masked_fill(missingFuture, Zero);
            }
        }
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
                        $"{Channels} lookback values are missing (NaN), so there is nothing to forecast from. " +
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
        var y = CheckFinite(Forward(Scoring, Info.VariateCount, scaled, covariates, observed, scaledFuture))
            .mul(_std).add(_mean, One);
        return (y.device_type == DeviceType.CPU ? y : y.cpu()).MoveToOuterDisposeScope();
    }

    /// <summary>Forecasts [B, S, N] in scaled space from a toolkit batch's already-scaled, zero-filled inputs (window,
    /// calendar, observed mask[, future covariates]; evaluation and scoring paths).</summary>
    public Tensor ForecastScaled(IReadOnlyList<Tensor?> inputs) =>
        CheckFinite(Forward(Scoring, Info.VariateCount, inputs));

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
            TensorSpans.Write(result, new ReadOnlySpan<float>(features, 0, size));
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
        _inputMean.Dispose();
        _inputStd.Dispose();
        if (_scoring.IsValueCreated && !ReferenceEquals(_scoring.Value, _forecaster))
            ((nn.Module)_scoring.Value).Dispose();
        Network.Dispose();
    }
}
