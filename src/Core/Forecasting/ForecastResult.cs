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

    internal ForecastResult(IReadOnlyList<string> columns, float[] values, IReadOnlyList<DateTime>? timestamps)
    {
        Columns = columns;
        Values = values;
        Timestamps = timestamps;
    }

    /// <summary>The forecast of <paramref name="column"/> at 0-based step <paramref name="step"/>.</summary>
    public float this[int step, string column] => Values[step * Columns.Count + IndexOf(column)];

    /// <summary>The forecast path of one variate.</summary>
    public float[] Series(string column)
    {
        int n = IndexOf(column), count = Columns.Count;
        return Enumerable.Range(0, Horizon).Select(s => Values[s * count + n]).ToArray();
    }

    private int IndexOf(string column)
    {
        for (int i = 0; i < Columns.Count; i++) if (Columns[i] == column) return i;
        throw new ArgumentException($"'{column}' is not a forecast variate; the model forecasts {string.Join(", ", Columns)}.", nameof(column));
    }
}
