using Microsoft.ML;

namespace MLNet.Attention.Forecasting;

/// <summary>How <see cref="MissingValueSimulation"/> removes values (the CRIB protocol's patterns, spec §3).</summary>
public enum MissingPattern
{
    /// <summary>Missing completely at random: exactly ⌊rows · variates · rate⌋ values at uniformly random positions.</summary>
    Point = 0,

    /// <summary>⌊rows · variates · rate⌋ / (h · w) blocks (at least one) of h rows × w variates at uniformly random
    /// corners; blocks may overlap, so the realised rate can be below the nominal one.</summary>
    Block = 1,

    /// <summary>⌊variates · rate⌋ whole variates (at least one) missing over the entire series.</summary>
    Column = 2,
}

/// <summary>
/// Removes values from a complete series by a missing pattern and rate, reproducibly from a seed, to measure how a
/// forecaster copes with incomplete data (the protocol of the CRIB paper). Removed values become NaN, which the
/// forecasters read as missing (<see cref="MissingValuePolicy.ZeroFill"/>).
/// </summary>
public static class MissingValueSimulation
{
    /// <summary>The observed mask [rows × variates], row-major: true = kept, false = removed.</summary>
    /// <param name="rows">Time steps.</param>
    /// <param name="variates">Variates.</param>
    /// <param name="pattern">Point, block or column.</param>
    /// <param name="rate">Nominal missing rate in [0, 1).</param>
    /// <param name="seed">Seed of the draws.</param>
    /// <param name="blockRows">Block height h in rows (time), for <see cref="MissingPattern.Block"/>.</param>
    /// <param name="blockVariates">Block width w in variates, for <see cref="MissingPattern.Block"/>.</param>
    public static bool[] Mask(int rows, int variates, MissingPattern pattern, double rate, int seed, int blockRows = 5,
        int blockVariates = 5)
    {
        if (rows < 1) throw new ArgumentOutOfRangeException(nameof(rows), rows, "The series needs at least one row.");
        if (variates < 1) throw new ArgumentOutOfRangeException(nameof(variates), variates, "The series needs at least one variate.");
        if (!(rate >= 0 && rate < 1))
            throw new ArgumentOutOfRangeException(nameof(rate), rate,
                "The missing rate must be in [0, 1): at 1 or more nothing would be left to learn from.");
        if (!Enum.IsDefined(pattern)) throw new ArgumentOutOfRangeException(nameof(pattern), pattern, "Use Point, Block or Column.");
        if (blockRows < 1 || blockVariates < 1)
            throw new ArgumentOutOfRangeException(nameof(blockRows), $"{blockRows} × {blockVariates}", "Blocks need at least 1 × 1.");
        long size = (long)rows * variates;
        var observed = new bool[size];
        Array.Fill(observed, true);
        if (rate == 0) return observed;
        var random = new Random(seed);
        switch (pattern)
        {
            case MissingPattern.Point:
            {
                long missing = (long)Math.Floor(size * rate);
                // Partial Fisher–Yates: the first `missing` positions of a random permutation.
                var order = new int[size];
                for (int i = 0; i < order.Length; i++) order[i] = i;
                for (int i = 0; i < missing; i++)
                {
                    int j = i + random.Next(order.Length - i);
                    (order[i], order[j]) = (order[j], order[i]);
                    observed[order[i]] = false;
                }
                break;
            }
            case MissingPattern.Column:
            {
                int missing = Math.Max(1, (int)Math.Floor(variates * rate));
                if (missing >= variates)
                    throw new ArgumentOutOfRangeException(nameof(rate), rate,
                        $"Column missingness at rate {rate} removes all {variates} variates; use a lower rate.");
                var columns = Enumerable.Range(0, variates).OrderBy(_ => random.Next()).Take(missing).ToArray();
                foreach (int n in columns)
                    for (int t = 0; t < rows; t++) observed[(long)t * variates + n] = false;
                break;
            }
            default:
            {
                int h = Math.Min(blockRows, rows), w = Math.Min(blockVariates, variates);
                long blocks = Math.Max(1, (long)Math.Floor(size * rate) / (h * w));
                for (long k = 0; k < blocks; k++)
                {
                    int top = random.Next(rows - h + 1), left = random.Next(variates - w + 1);
                    for (int t = top; t < top + h; t++)
                        for (int n = left; n < left + w; n++) observed[(long)t * variates + n] = false;
                }
                break;
            }
        }
        return observed;
    }

    /// <summary>A copy of <paramref name="frame"/> with the values removed by the pattern set to NaN.</summary>
    public static TimeSeriesFrame Apply(TimeSeriesFrame frame, MissingPattern pattern, double rate, int seed,
        int blockRows = 5, int blockVariates = 5)
    {
        ArgumentNullException.ThrowIfNull(frame);
        var mask = Mask(frame.Rows, frame.Columns.Count, pattern, rate, seed, blockRows, blockVariates);
        var values = (float[])frame.Values.Clone();
        for (int i = 0; i < values.Length; i++) if (!mask[i]) values[i] = float.NaN;
        return new TimeSeriesFrame(frame.Columns, values, frame.Timestamps);
    }

    /// <summary>
    /// Reads <paramref name="variateColumnNames"/> (and the timestamp column, when named) from <paramref name="series"/>
    /// and returns them as a new view with the removed values set to NaN: Single columns of the same names and the
    /// timestamp as DateTime. Other columns are not carried over.
    /// </summary>
    public static IDataView Apply(IDataView series, IReadOnlyList<string> variateColumnNames, MissingPattern pattern,
        double rate, int seed, string? timestampColumnName = null, int blockRows = 5, int blockVariates = 5)
    {
        var frame = TimeSeriesFrame.FromDataView(series, variateColumnNames, timestampColumnName, allowMissing: true,
            "MissingValueSimulation input", "at least one row");
        return Apply(frame, pattern, rate, seed, blockRows, blockVariates).ToDataView(timestampColumnName ?? "Date");
    }
}
