namespace MLNet.Attention.Forecasting;

/// <summary>
/// Per-variate z-score (mean and population standard deviation, ddof 0) fitted on training rows only — the
/// protocol of the forecasting papers. Metrics "in scaled space" are computed after this transform.
/// </summary>
public sealed class SeriesScaler
{
    /// <summary>Per-variate means.</summary>
    public IReadOnlyList<float> Mean { get; }

    /// <summary>Per-variate population standard deviations (constant columns get 1, so they pass through centred).</summary>
    public IReadOnlyList<float> Std { get; }

    public SeriesScaler(float[] mean, float[] std)
    {
        if (mean.Length != std.Length) throw new ArgumentException("Mean and std need the same length.");
        Mean = mean;
        Std = std;
    }

    /// <summary>The scaler of variates [start, start + count).</summary>
    internal SeriesScaler Slice(int start, int count) =>
        new(Mean.Skip(start).Take(count).ToArray(), Std.Skip(start).Take(count).ToArray());

    /// <summary>Fits on rows [0, rows) of a row-major [rows × variates] array; NaN values are ignored.</summary>
    public static SeriesScaler Fit(ReadOnlySpan<float> values, int variates, int rows)
    {
        var mean = new float[variates];
        var std = new float[variates];
        for (int n = 0; n < variates; n++)
        {
            double sum = 0; long count = 0;
            for (int t = 0; t < rows; t++) { float v = values[t * variates + n]; if (!float.IsNaN(v)) { sum += v; count++; } }
            double m = count > 0 ? sum / count : 0;
            double sq = 0;
            for (int t = 0; t < rows; t++) { float v = values[t * variates + n]; if (!float.IsNaN(v)) sq += (v - m) * (v - m); }
            double s = count > 0 ? Math.Sqrt(sq / count) : 0;
            mean[n] = (float)m;
            std[n] = s > 1e-12 ? (float)s : 1f;
        }
        return new SeriesScaler(mean, std);
    }

    /// <summary>Returns a scaled copy of a row-major [rows × variates] array (NaN stays NaN).</summary>
    public float[] Transform(ReadOnlySpan<float> values)
    {
        int n = Mean.Count;
        var result = new float[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = (values[i] - Mean[i % n]) / Std[i % n];
        return result;
    }

    /// <summary>Maps scaled values back to original units in place.</summary>
    public void InverseTransformInPlace(Span<float> values)
    {
        int n = Mean.Count;
        for (int i = 0; i < values.Length; i++) values[i] = values[i] * Std[i % n] + Mean[i % n];
    }

    /// <summary>Reads the scaler as payload version 1 wrote it (newer payloads use ConfigPersistence).</summary>
    internal static SeriesScaler ReadVersion1(BinaryReader r)
    {
        int n = r.ReadInt32();
        if (n is < 1 or > 1_000_000) throw new InvalidDataException($"Corrupted scaler: {n} variates.");
        var mean = new float[n];
        var std = new float[n];
        for (int i = 0; i < n; i++) mean[i] = r.ReadSingle();
        for (int i = 0; i < n; i++) std[i] = r.ReadSingle();
        return new SeriesScaler(mean, std);
    }
}
