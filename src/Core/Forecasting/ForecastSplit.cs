using Microsoft.ML;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Chronological train / validation / test borders of a series, in rows. Validation and test views start
/// <c>lookback</c> rows early so that their first forecast starts exactly at the border (the papers' protocol).
/// </summary>
/// <param name="TrainEnd">First row after the training rows.</param>
/// <param name="ValidationEnd">First row after the validation rows.</param>
/// <param name="TestEnd">First row after the test rows (later rows are unused).</param>
public sealed record ForecastSplit(int TrainEnd, int ValidationEnd, int TestEnd)
{
    /// <summary>The ETT protocol: 12 / 4 / 4 months of 30 days (ETTh: 8640 / 11520 / 14400 rows; ETTm: ×4).</summary>
    /// <param name="rowsPerHour">1 for ETTh1/ETTh2, 4 for ETTm1/ETTm2.</param>
    public static ForecastSplit Ett(int rowsPerHour = 1)
    {
        if (rowsPerHour < 1) throw new ArgumentOutOfRangeException(nameof(rowsPerHour), rowsPerHour, "rowsPerHour must be at least 1.");
        int month = 30 * 24 * rowsPerHour;
        return new ForecastSplit(12 * month, 16 * month, 20 * month);
    }

    /// <summary>The custom-dataset protocol: train ⌊train·rows⌋, test ⌊test·rows⌋, validation the rest in between.</summary>
    public static ForecastSplit FromFractions(int rows, double train = 0.7, double test = 0.2)
    {
        if (rows < 1) throw new ArgumentOutOfRangeException(nameof(rows), rows, "The series must have rows.");
        if (train <= 0 || test < 0 || train + test >= 1) throw new ArgumentOutOfRangeException(nameof(train), "Fractions must satisfy train > 0, test ≥ 0 and train + test < 1.");
        int trainRows = (int)(rows * train), testRows = (int)(rows * test);
        return new ForecastSplit(trainRows, rows - testRows, rows);
    }

    /// <summary>The custom-dataset protocol on a loaded series: its rows are counted (a text-loaded view does not know
    /// its row count), then as <see cref="FromFractions(int, double, double)"/>.</summary>
    public static ForecastSplit FromFractions(IDataView data, double train = 0.7, double test = 0.2)
    {
        ArgumentNullException.ThrowIfNull(data);
        return FromFractions(checked((int)CountRows(data)), train, test);
    }

    /// <summary>Cuts <paramref name="data"/> into the three views (validation and test start <paramref name="lookback"/> rows early).</summary>
    /// <exception cref="ArgumentException">The series is shorter than <see cref="TestEnd"/> rows.</exception>
    public (IDataView Train, IDataView Validation, IDataView Test) Apply(MLContext mlContext, IDataView data, int lookback)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(data);
        if (lookback < 1 || lookback > TrainEnd) throw new ArgumentOutOfRangeException(nameof(lookback), lookback, $"The lookback must be in [1, {TrainEnd}].");
        if (!(0 < TrainEnd && TrainEnd < ValidationEnd && ValidationEnd < TestEnd))
            throw new InvalidOperationException($"Split borders must increase: train end {TrainEnd}, validation end {ValidationEnd}, test end {TestEnd}.");
        long rows = CountRows(data);
        if (rows < TestEnd)
            throw new ArgumentException($"This split needs {TestEnd} rows (training ends at row {TrainEnd}, validation at " +
                $"{ValidationEnd}, test at {TestEnd}) but the series has {rows}. For a series of another length use " +
                $"ForecastSplit.FromFractions(data) (70 / 10 / 20 %) or give the borders: new ForecastSplit(trainEnd, " +
                "validationEnd, testEnd).", nameof(data));
        IDataView Rows(int start, int end) => mlContext.Data.TakeRows(start == 0 ? data : mlContext.Data.SkipRows(data, start), end - start);
        return (Rows(0, TrainEnd), Rows(TrainEnd - lookback, ValidationEnd), Rows(ValidationEnd - lookback, TestEnd));
    }

    /// <summary>Rows of a view: its row count when known, else counted with a column-less cursor.</summary>
    internal static long CountRows(IDataView data)
    {
        if (data.GetRowCount() is long known) return known;
        long rows = 0;
        using var cursor = data.GetRowCursor(Array.Empty<Microsoft.ML.DataViewSchema.Column>());
        while (cursor.MoveNext()) rows++;
        return rows;
    }
}
