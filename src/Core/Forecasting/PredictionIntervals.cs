using MLNet.Attention.Runtime;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Split-conformal prediction intervals of a forecaster (persisted with the model): for each horizon step s and
/// variate n, the conformal quantile of the absolute calibration residuals |y − ŷ| (scaled space) at a grid of
/// coverage levels, so that <c>Forecast(history, coverage)</c> can give any coverage in the grid's range.
/// </summary>
/// <param name="Coverage">The coverage the model was trained for (its <c>Lower</c>/<c>Upper</c> columns).</param>
/// <param name="CalibrationWindows">Windows whose residuals calibrated the intervals.</param>
/// <param name="Horizon">S.</param>
/// <param name="Variates">N.</param>
/// <param name="Levels">Coverage levels, ascending.</param>
/// <param name="HalfWidths">[levels × S × N] half-widths in scaled units; NaN where the calibration windows are too
/// few for the level.</param>
/// <param name="LowerColumnName">Output column of the lower bounds.</param>
/// <param name="UpperColumnName">Output column of the upper bounds.</param>
internal sealed record ConformalIntervals(double Coverage, int CalibrationWindows, int Horizon, int Variates, double[] Levels,
    float[] HalfWidths, string LowerColumnName, string UpperColumnName)
{
    /// <summary>Levels stored besides the trained coverage: 0.05 … 0.45 by 0.05, 0.50 … 0.99 by 0.01, 0.995, 0.999.</summary>
    public static readonly double[] Grid = Enumerable.Range(1, 9).Select(k => k * 0.05)
        .Concat(Enumerable.Range(50, 50).Select(k => k / 100.0)).Concat(new[] { 0.995, 0.999 }).ToArray();

    /// <summary>Windows used at most (evenly spaced): the residuals of overlapping windows are strongly dependent, so
    /// more add memory rather than information.</summary>
    public const int MaxCalibrationWindows = 2000;

    public void Validate()
    {
        const string corrupted = "Corrupted forecasting model: prediction intervals";
        if (Levels is null || Levels.Length == 0 || HalfWidths is null || HalfWidths.Length != (long)Levels.Length * Horizon * Variates)
            throw new InvalidDataException($"{corrupted} have {HalfWidths?.Length ?? 0} half-widths for {Levels?.Length ?? 0} levels × {Horizon} × {Variates}.");
        if (!(Coverage > 0 && Coverage < 1) || Array.IndexOf(Levels, Coverage) < 0)
            throw new InvalidDataException($"{corrupted}: coverage {Coverage} is not among the stored levels.");
    }

    /// <summary>Half-widths [S × N] (scaled) at <paramref name="coverage"/>: exact at a stored level, linear between the
    /// two nearest levels otherwise.</summary>
    public float[] HalfWidthsAt(double coverage, string modelName)
    {
        if (!(coverage >= Levels[0] && coverage <= Levels[^1]))
            throw new ArgumentOutOfRangeException(nameof(coverage), coverage,
                $"{modelName}: prediction intervals are stored for coverages {Levels[0]} to {Levels[^1]}; ask for one in that range.");
        int size = Horizon * Variates;
        int hi = Array.FindIndex(Levels, l => l >= coverage - 1e-12);
        var result = new float[size];
        if (Math.Abs(Levels[hi] - coverage) <= 1e-12) Array.Copy(HalfWidths, (long)hi * size, result, 0, size);
        else
        {
            int lo = hi - 1;
            double t = (coverage - Levels[lo]) / (Levels[hi] - Levels[lo]);
            for (int i = 0; i < size; i++)
                result[i] = (float)((1 - t) * HalfWidths[(long)lo * size + i] + t * HalfWidths[(long)hi * size + i]);
        }
        if (Array.Exists(result, float.IsNaN))
            throw new InvalidOperationException(
                $"{modelName}: coverage {coverage} needs at least {MinimumWindows(coverage)} calibration residuals per " +
                $"horizon step and variate (conformal quantile rank ⌈(m + 1)·coverage⌉ ≤ m), but the model was calibrated " +
                $"on {CalibrationWindows} windows with missing targets. Ask for a lower coverage, or retrain with more " +
                "validation rows (ValidationFraction, ValidationSet or IntervalCalibrationSet).");
        return result;
    }

    /// <summary>The fewest residuals m with ⌈(m + 1)·c⌉ ≤ m.</summary>
    public static int MinimumWindows(double coverage) => (int)Math.Ceiling(coverage / (1 - coverage) - 1e-9);

    /// <summary>
    /// Calibrates on every usable window of <paramref name="frame"/> (at most <see cref="MaxCalibrationWindows"/>,
    /// evenly spaced): absolute residuals of the observed targets per (step, variate), conformal quantiles at every
    /// level. A (step, variate) with too few observed residuals for a level uses its variate's residuals over all steps.
    /// </summary>
    public static ConformalIntervals Calibrate(string name, ForecastScorer scorer, TimeSeriesFrame frame, double coverage,
        string lowerColumnName, string upperColumnName)
    {
        var info = scorer.Info;
        int l = info.Lookback, s = info.Horizon, n = info.VariateCount, size = s * n;
        using var windows = ForecasterTraining.Windows(frame, scorer, s);
        var unusable = windows.UnusableWindows();
        var usable = Enumerable.Range(0, windows.Count).Where(w => !unusable[w]).ToArray();
        int m = Math.Min(usable.Length, MaxCalibrationWindows);
        if (m < MinimumWindows(coverage))
            throw new InvalidOperationException(
                $"{name}: IntervalCoverage = {coverage} needs at least {MinimumWindows(coverage)} calibration windows " +
                $"(conformal quantile rank ⌈(m + 1)·coverage⌉ ≤ m), but the calibration data has {usable.Length} usable " +
                "windows. Lower IntervalCoverage, or give more validation rows (ValidationFraction, ValidationSet or " +
                "IntervalCalibrationSet).");
        var chosen = Enumerable.Range(0, m).Select(k => usable[(int)((long)k * usable.Length / m)]).ToArray();
        var residuals = new float[(long)m * size];
        using (inference_mode())
            for (int start = 0; start < m; start += 256)
            {
                using var scope = NewDisposeScope();
                int count = Math.Min(256, m - start);
                var batch = windows.CreateBatch(chosen.AsSpan(start, count), scorer.Device);
                var forecast = scorer.ForecastScaled(batch.Inputs);
                var error = forecast.sub(batch.Target).abs();
                if (batch.TargetMask is { } mask) error = error.masked_fill(mask.eq(TorchScalars.Zero), TorchScalars.Of(double.NaN));
                error.cpu().contiguous().data<float>().CopyTo(residuals.AsSpan((int)((long)start * size), count * size));
            }

        var levels = Grid.Append(coverage).Distinct().OrderBy(v => v).ToArray();
        var halfWidths = new float[(long)levels.Length * size];
        var perVariate = Enumerable.Range(0, n).Select(v => Sorted(residuals, m, size, Enumerable.Range(0, s).Select(t => t * n + v))).ToArray();
        for (int i = 0; i < size; i++)
        {
            var own = Sorted(residuals, m, size, new[] { i });
            var pooled = perVariate[i % n];
            for (int k = 0; k < levels.Length; k++)
            {
                float q = Quantile(own, levels[k]);
                if (float.IsNaN(q)) q = Quantile(pooled, levels[k]);
                halfWidths[(long)k * size + i] = q;
            }
        }
        var result = new ConformalIntervals(coverage, m, s, n, levels, halfWidths, lowerColumnName, upperColumnName);
        result.HalfWidthsAt(coverage, name);   // the trained coverage must be available for every step and variate
        return result;
    }

    private static float[] Sorted(float[] residuals, int windows, int size, IEnumerable<int> entries)
    {
        var values = new List<float>();
        foreach (int i in entries)
            for (int w = 0; w < windows; w++)
            {
                float r = residuals[(long)w * size + i];
                if (!float.IsNaN(r)) values.Add(r);
            }
        var array = values.ToArray();
        Array.Sort(array);
        return array;
    }

    /// <summary>The split-conformal quantile: the ⌈(m + 1)·c⌉-th smallest of m scores; NaN when that rank exceeds m.</summary>
    private static float Quantile(float[] sorted, double coverage)
    {
        int m = sorted.Length;
        long rank = (long)Math.Ceiling((m + 1) * coverage - 1e-9);
        return rank >= 1 && rank <= m ? sorted[rank - 1] : m > 0 && rank < 1 ? sorted[0] : float.NaN;
    }
}
