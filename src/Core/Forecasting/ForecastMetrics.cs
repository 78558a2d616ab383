namespace MLNet.Attention.Forecasting;

/// <summary>
/// Accuracy of forecasts over all windows × horizon steps × variates. <see cref="MeanSquaredError"/> and
/// <see cref="MeanAbsoluteError"/> are in scaled space (z-scored with the training statistics), as the papers report;
/// the others are in original units.
/// </summary>
public sealed record ForecastMetrics
{
    /// <summary>Number of forecast windows evaluated.</summary>
    public int Windows { get; init; }
    /// <summary>MSE in scaled space (paper metric).</summary>
    public double MeanSquaredError { get; init; }
    /// <summary>MAE in scaled space (paper metric).</summary>
    public double MeanAbsoluteError { get; init; }
    /// <summary>MAE in original units.</summary>
    public double MeanAbsoluteErrorOriginal { get; init; }
    /// <summary>RMSE in original units.</summary>
    public double RootMeanSquaredErrorOriginal { get; init; }
    /// <summary>
    /// Mean absolute percentage error in percent, over points whose actual value is not zero. It explodes for series
    /// that pass close to zero (e.g. ETT's MULL); prefer <see cref="SymmetricMeanAbsolutePercentageError"/> there.
    /// </summary>
    public double MeanAbsolutePercentageError { get; init; }
    /// <summary>Symmetric MAPE in percent (0–200), points where both actual and forecast are zero count as 0.</summary>
    public double SymmetricMeanAbsolutePercentageError { get; init; }
    /// <summary>MSE in scaled space per variate, in column order (NaN for a variate with no observed target).</summary>
    public IReadOnlyList<double> MeanSquaredErrorPerVariate { get; init; } = Array.Empty<double>();
    /// <summary>MAE in original units per variate, in column order (NaN for a variate with no observed target).</summary>
    public IReadOnlyList<double> MeanAbsoluteErrorPerVariateOriginal { get; init; } = Array.Empty<double>();
    /// <summary>Target values (window × step × variate) that entered the metrics: the observed ones.</summary>
    public long ObservedTargets { get; init; }
    /// <summary>Target values left out because they are missing (NaN in the series).</summary>
    public long MissingTargets { get; init; }
    /// <summary>Windows not scored because their lookback or their target holds no observed value at all.</summary>
    public int SkippedWindows { get; init; }
    /// <summary>Nominal coverage of the model's prediction intervals, or null without intervals.</summary>
    public double? IntervalCoverage { get; init; }
    /// <summary>Fraction of the observed targets inside their prediction interval (compare with
    /// <see cref="IntervalCoverage"/>), or null without intervals.</summary>
    public double? EmpiricalCoverage { get; init; }
    /// <summary>Mean interval width (upper − lower) in scaled space, or null without intervals.</summary>
    public double? MeanIntervalWidth { get; init; }
    /// <summary>Mean pinball (quantile) loss in scaled space of the interval bounds read as the (1 − c)/2 and
    /// (1 + c)/2 quantiles, averaged over both; null without intervals.</summary>
    public double? QuantileLoss { get; init; }

    /// <summary>The paper metrics and the bounded original-unit ones. MAPE is left out on purpose: one actual value
    /// near zero makes it arbitrarily large (401,637,460 % on ETTm2), so a summary line shows sMAPE (0–200 %) instead;
    /// <see cref="MeanAbsolutePercentageError"/> still holds it.</summary>
    public override string ToString() =>
        $"windows {Windows}: MSE {MeanSquaredError:F4}, MAE {MeanAbsoluteError:F4} (scaled); " +
        $"MAE {MeanAbsoluteErrorOriginal:G4}, RMSE {RootMeanSquaredErrorOriginal:G4}, " +
        $"sMAPE {SymmetricMeanAbsolutePercentageError:F2}% (original units)" +
        (MissingTargets > 0 || SkippedWindows > 0
            ? $"; {MissingTargets} missing targets left out, {SkippedWindows} windows skipped" : "") +
        (EmpiricalCoverage is { } covered
            ? $"; {100 * IntervalCoverage:F0} % intervals cover {100 * covered:F1} %, width {MeanIntervalWidth:F3} (scaled)" : "");
}

/// <summary>Accumulates forecast errors batch by batch (in double) and produces <see cref="ForecastMetrics"/>.</summary>
internal sealed class ForecastMetricsAccumulator
{
    private readonly SeriesScaler _scaler;
    private readonly int _variates;
    private readonly double[] _sqPerVariate;
    private readonly long[] _countPerVariate;
    private readonly double[] _absOrigPerVariate;
    private double _sq, _abs, _absOrig, _sqOrig, _ape, _smape;
    private long _count, _apeCount, _missing, _covered;
    private double _width, _pinball;
    private double? _coverage;
    private float[]? _halfWidths;
    private int _windows, _skipped;

    public ForecastMetricsAccumulator(SeriesScaler scaler)
    {
        _scaler = scaler;
        _variates = scaler.Mean.Count;
        _sqPerVariate = new double[_variates];
        _countPerVariate = new long[_variates];
        _absOrigPerVariate = new double[_variates];
    }

    /// <summary>Also scores prediction intervals ŷ ± <paramref name="halfWidths"/> ([horizon × variates], scaled).</summary>
    public void TrackIntervals(double coverage, float[] halfWidths)
    {
        _coverage = coverage;
        _halfWidths = halfWidths;
    }

    /// <summary>Counts windows that could not be scored (no observed lookback or target value).</summary>
    public void SkipWindows(int windows) => _skipped += windows;

    /// <summary>Adds windows given in scaled space, each [horizon × variates] row-major; entries where
    /// <paramref name="observed"/> is 0 (missing targets) are left out.</summary>
    /// <param name="forecast">Forecasts, scaled.</param>
    /// <param name="actual">Targets, scaled (missing entries any value).</param>
    /// <param name="windows">Number of windows in the spans.</param>
    /// <param name="observed">1 where the target was observed; empty when all were.</param>
    /// <param name="scaler">The scaler of the model that produced these windows when it is not the accumulator's
    /// (backtests with refits); original-unit metrics then stay exact.</param>
    public void AddScaled(ReadOnlySpan<float> forecast, ReadOnlySpan<float> actual, int windows, ReadOnlySpan<float> observed = default,
        SeriesScaler? scaler = null)
    {
        var units = scaler ?? _scaler;
        bool masked = !observed.IsEmpty;
        long counted = 0;
        for (int i = 0; i < forecast.Length; i++)
        {
            if (masked && observed[i] == 0) { _missing++; continue; }
            counted++;
            int n = i % _variates;
            _countPerVariate[n]++;
            double f = forecast[i], a = actual[i], e = f - a;
            _sq += e * e; _abs += Math.Abs(e); _sqPerVariate[n] += e * e;
            double fo = f * units.Std[n] + units.Mean[n], ao = a * units.Std[n] + units.Mean[n], eo = fo - ao;
            _absOrig += Math.Abs(eo); _sqOrig += eo * eo; _absOrigPerVariate[n] += Math.Abs(eo);
            if (ao != 0) { _ape += Math.Abs(eo / ao); _apeCount++; }
            double denominator = Math.Abs(ao) + Math.Abs(fo);
            if (denominator > 0) _smape += 2 * Math.Abs(eo) / denominator;
            if (_halfWidths is { } widths)
            {
                double h = widths[i % widths.Length], lower = f - h, upper = f + h;
                if (a >= lower && a <= upper) _covered++;
                _width += 2 * h;
                double tauLow = (1 - _coverage!.Value) / 2, tauHigh = 1 - tauLow;
                _pinball += (Pinball(a - lower, tauLow) + Pinball(a - upper, tauHigh)) / 2;
            }
        }
        _count += counted;
        _windows += windows;
    }

    private static double Pinball(double residual, double tau) => residual >= 0 ? tau * residual : (tau - 1) * residual;

    public ForecastMetrics Result()
    {
        if (_count == 0)
            throw new InvalidOperationException(_skipped > 0 || _missing > 0
                ? $"No observed target could be scored: {_skipped} windows have no observed lookback or target value " +
                  $"and {_missing} target values are missing. Evaluate on a series with observed values."
                : "No forecast windows were evaluated: the series must have at least lookback + horizon rows.");
        return new ForecastMetrics
        {
            Windows = _windows,
            MeanSquaredError = _sq / _count,
            MeanAbsoluteError = _abs / _count,
            MeanAbsoluteErrorOriginal = _absOrig / _count,
            RootMeanSquaredErrorOriginal = Math.Sqrt(_sqOrig / _count),
            MeanAbsolutePercentageError = _apeCount == 0 ? double.NaN : 100 * _ape / _apeCount,
            SymmetricMeanAbsolutePercentageError = 100 * _smape / _count,
            MeanSquaredErrorPerVariate = _sqPerVariate.Select((s, n) => _countPerVariate[n] > 0 ? s / _countPerVariate[n] : double.NaN).ToArray(),
            MeanAbsoluteErrorPerVariateOriginal = _absOrigPerVariate.Select((s, n) => _countPerVariate[n] > 0 ? s / _countPerVariate[n] : double.NaN).ToArray(),
            ObservedTargets = _count,
            MissingTargets = _missing,
            SkippedWindows = _skipped,
            IntervalCoverage = _coverage,
            EmpiricalCoverage = _halfWidths is null ? null : (double)_covered / _count,
            MeanIntervalWidth = _halfWidths is null ? null : _width / _count,
            QuantileLoss = _halfWidths is null ? null : _pinball / _count,
        };
    }
}
