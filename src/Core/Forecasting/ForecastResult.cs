namespace MLNet.Attention.Forecasting;

/// <summary>A forecast of the next <see cref="Horizon"/> steps of every variate, in original units.</summary>
public sealed class ForecastResult
{
    /// <summary>Variate names, in column order of <see cref="Values"/>.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Row-major [horizon × variates] forecast values.</summary>
    public float[] Values { get; }

    /// <summary>Timestamps of the forecast steps when the model knows the series' frequency, else null.</summary>
    public IReadOnlyList<DateTime>? Timestamps { get; }

    /// <summary>Number of forecast steps.</summary>
    public int Horizon => Values.Length / Columns.Count;

    /// <summary>Coverage of <see cref="Lower"/>/<see cref="Upper"/>, or null for a model without prediction intervals.</summary>
    public double? Coverage { get; }

    /// <summary>Row-major [horizon × variates] lower bounds of the conformal prediction intervals, or null.</summary>
    public float[]? Lower { get; }

    /// <summary>Row-major [horizon × variates] upper bounds of the conformal prediction intervals, or null.</summary>
    public float[]? Upper { get; }

    internal ForecastResult(IReadOnlyList<string> columns, float[] values, IReadOnlyList<DateTime>? timestamps,
        double? coverage = null, float[]? lower = null, float[]? upper = null)
    {
        Columns = columns;
        Values = values;
        Timestamps = timestamps;
        Coverage = coverage;
        Lower = lower;
        Upper = upper;
    }

    /// <summary>The forecast of <paramref name="column"/> at 0-based step <paramref name="step"/>.</summary>
    public float this[int step, string column] => Values[step * Columns.Count + IndexOf(column)];

    /// <summary>The forecast path of one variate.</summary>
    public float[] Series(string column) => Path(Values, column);

    /// <summary>The lower-bound path of one variate (a model with prediction intervals).</summary>
    public float[] LowerSeries(string column) => Path(Lower ?? throw NoIntervals(), column);

    /// <summary>The upper-bound path of one variate (a model with prediction intervals).</summary>
    public float[] UpperSeries(string column) => Path(Upper ?? throw NoIntervals(), column);

    private float[] Path(float[] values, string column)
    {
        int n = IndexOf(column), count = Columns.Count;
        return Enumerable.Range(0, Horizon).Select(s => values[s * count + n]).ToArray();
    }

    private static InvalidOperationException NoIntervals() =>
        new("This forecast has no prediction intervals: train the model with IntervalCoverage set (e.g. 0.9).");

    private int IndexOf(string column)
    {
        for (int i = 0; i < Columns.Count; i++) if (Columns[i] == column) return i;
        throw new ArgumentException($"'{column}' is not a forecast variate; the model forecasts {string.Join(", ", Columns)}.", nameof(column));
    }
}
