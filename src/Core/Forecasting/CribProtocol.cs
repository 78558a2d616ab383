using Microsoft.ML;

namespace MLNet.Attention.Forecasting;

/// <summary>The three series of <see cref="CribProtocol.Apply"/>, globally standardised, NaN where values were
/// removed; each holds exactly its split's windows (a start at every row).</summary>
/// <param name="Train">Rows of the training windows.</param>
/// <param name="Validation">Rows of the validation windows (they overlap the training rows, as in the reference).</param>
/// <param name="Test">Rows of the test windows.</param>
/// <param name="TrainWindows">Training windows (⌈0.6 W⌉ of the W windows by default).</param>
/// <param name="ValidationWindows">Validation windows.</param>
/// <param name="TestWindows">Test windows.</param>
/// <param name="Mean">The global scalar mean the values were shifted by (over the training windows' inputs, missing
/// entries counted as 0, as the reference does).</param>
/// <param name="Std">The global scalar standard deviation the values were divided by.</param>
/// <param name="MissingRate">Realised share of removed values over the whole series (blocks overlap: ≤ the nominal rate).</param>
public sealed record MissingDataSplit(IDataView Train, IDataView Validation, IDataView Test, int TrainWindows,
    int ValidationWindows, int TestWindows, float Mean, float Std, double MissingRate);

/// <summary>
/// The evaluation protocol of the CRIB paper's code (spec crib.md §3), as data: one mask over the whole series by a
/// <see cref="MissingPattern"/> and rate; windows of lookback + horizon at every start; the first 60 % of the windows
/// train, the next 20 % validate, the rest test (chronological, overlapping at the borders); one global scalar mean
/// and standard deviation over the training windows' inputs. Metrics in "original units" of a model trained on these
/// views (<see cref="ForecastMetrics.MeanAbsoluteErrorOriginal"/>, RMSE²) are then in the reference's scaled space.
/// Unlike the reference, missing targets are left out of the loss and the metrics (the reference scores the full
/// ground truth, which a user never has).
/// </summary>
public static class CribProtocol
{
    /// <summary>Applies the protocol to a complete series.</summary>
    /// <param name="series">The series, one row per timestamp.</param>
    /// <param name="variateColumnNames">Its numeric columns.</param>
    /// <param name="lookback">Input window length (the reference's 24).</param>
    /// <param name="horizon">Forecast length (24).</param>
    /// <param name="pattern">Missing pattern.</param>
    /// <param name="rate">Nominal missing rate in [0, 1).</param>
    /// <param name="seed">Seed of the mask.</param>
    /// <param name="timestampColumnName">Optional timestamp column, carried over as DateTime.</param>
    /// <param name="validationFraction">Share of windows that validate (0.2).</param>
    /// <param name="testFraction">Share of windows that test (0.2).</param>
    public static MissingDataSplit Apply(IDataView series, IReadOnlyList<string> variateColumnNames, int lookback,
        int horizon, MissingPattern pattern, double rate, int seed, string? timestampColumnName = null,
        double validationFraction = 0.2, double testFraction = 0.2)
    {
        if (lookback < 1 || horizon < 1)
            throw new ArgumentOutOfRangeException(nameof(lookback), $"{lookback} / {horizon}", "Lookback and horizon must be at least 1.");
        if (!(validationFraction > 0 && testFraction > 0 && validationFraction + testFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), $"{validationFraction} / {testFraction}",
                "The validation and test fractions must be positive and leave windows to train on.");
        var frame = TimeSeriesFrame.FromDataView(series, variateColumnNames, timestampColumnName, allowMissing: true,
            "CribProtocol series", $"more than lookback + horizon = {lookback + horizon} rows");
        int rows = frame.Rows, n = frame.Columns.Count, windows = rows - lookback - horizon + 1;
        int trainWindows = (int)Math.Ceiling(windows * (1 - validationFraction - testFraction));
        int validationWindows = (int)Math.Ceiling(windows * validationFraction);
        int testWindows = windows - trainWindows - validationWindows;
        if (trainWindows < 1 || validationWindows < 1 || testWindows < 1)
            throw new InvalidOperationException(
                $"CribProtocol: the series has {rows} rows, {Math.Max(0, windows)} windows of {lookback} + {horizon}; " +
                "each split needs at least one. Pass a longer series or a shorter lookback/horizon.");

        var mask = MissingValueSimulation.Mask(rows, n, pattern, rate, seed);
        var values = (float[])frame.Values.Clone();
        long removed = 0;
        for (int i = 0; i < values.Length; i++)
            if (!mask[i] || float.IsNaN(values[i])) { values[i] = float.NaN; removed++; }

        // Row t is an input row of training windows max(0, t − L + 1) … min(t, trainWindows − 1): weight each row by
        // that count, so the statistics equal the reference's over the stacked [windows, L, N] tensor.
        double sum = 0, weights = 0;
        for (int t = 0; t < trainWindows + lookback - 1; t++)
        {
            int count = Math.Min(t, trainWindows - 1) - Math.Max(0, t - lookback + 1) + 1;
            for (int k = 0; k < n; k++) { float v = values[t * n + k]; sum += count * (float.IsNaN(v) ? 0 : v); }
            weights += (double)count * n;
        }
        double mean = sum / weights, squares = 0;
        for (int t = 0; t < trainWindows + lookback - 1; t++)
        {
            int count = Math.Min(t, trainWindows - 1) - Math.Max(0, t - lookback + 1) + 1;
            for (int k = 0; k < n; k++)
            {
                float v = values[t * n + k];
                double d = (float.IsNaN(v) ? 0 : v) - mean;
                squares += count * d * d;
            }
        }
        double std = Math.Sqrt(squares / weights);
        if (!(std > 1e-12)) std = 1;
        for (int i = 0; i < values.Length; i++) values[i] = (float)((values[i] - mean) / std);

        var scaled = new TimeSeriesFrame(frame.Columns, values, frame.Timestamps);
        int span = lookback + horizon - 1;
        string time = timestampColumnName ?? "Date";
        return new MissingDataSplit(
            scaled.Slice(0, trainWindows + span).ToDataView(time),
            scaled.Slice(trainWindows, validationWindows + span).ToDataView(time),
            scaled.Slice(trainWindows + validationWindows, testWindows + span).ToDataView(time),
            trainWindows, validationWindows, testWindows, (float)mean, (float)std, (double)removed / values.Length);
    }
}
