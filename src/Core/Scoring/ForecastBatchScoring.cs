using System.Globalization;
using System.Text;
using Microsoft.ML;
using MLNet.Attention.Forecasting;

namespace MLNet.Attention.Scoring;

/// <summary>Ready-made item scorers for <see cref="BatchScoringJob.Run"/> with a forecaster: one series file in, its
/// forecast as a CSV file out.</summary>
public static class ForecastBatchScoring
{
    /// <summary>
    /// Scores a series file (<c>.csv</c> or <c>.csv.gz</c> with a header, read by <see cref="SeriesCsv.Load"/>) with
    /// <paramref name="model"/>: the forecast of the <see cref="ForecastingModel.Horizon"/> steps after its last row,
    /// written by <see cref="WriteCsv"/>. For a model with known-future covariates the file's last Horizon rows are
    /// the future: their covariate columns are read, their variate fields may be empty.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="model">A trained or loaded forecaster (it outlives the job).</param>
    /// <param name="coverage">Prediction-interval coverage (null: the trained one, or none).</param>
    public static Action<BatchScoringItem, Stream> SeriesCsvToForecastCsv(MLContext mlContext, ForecastingModel model,
        double? coverage = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(model);
        return (item, output) =>
        {
            var series = SeriesCsv.Load(mlContext, item.InputPath, model.TimestampColumnName);
            ForecastResult forecast;
            if (model.FutureCovariateColumnNames.Count == 0)
                forecast = model.Forecast(series.Data, coverage);
            else
            {
                long rows = ForecastSplit.CountRows(series.Data);
                if (rows <= model.Horizon)
                    throw new InvalidDataException($"'{item.InputPath}' has {rows} rows; this model reads known-future " +
                        $"covariates, so the file needs the history followed by {model.Horizon} future rows.");
                var history = mlContext.Data.TakeRows(series.Data, rows - model.Horizon);
                var future = mlContext.Data.SkipRows(series.Data, rows - model.Horizon);
                forecast = model.Forecast(history, future, coverage);
            }
            WriteCsv(forecast, output);
        };
    }

    /// <summary>
    /// Writes a forecast as CSV: a header, then one line per step: <c>Timestamp</c> (when the model knows the
    /// series' frequency), <c>Step</c> (1-based), one column per variate and, with intervals, <c>NAME_lower</c> and
    /// <c>NAME_upper</c> per variate. Numbers use the invariant culture and round-trip exactly.
    /// </summary>
    public static void WriteCsv(ForecastResult forecast, Stream output)
    {
        ArgumentNullException.ThrowIfNull(forecast);
        ArgumentNullException.ThrowIfNull(output);
        using var writer = new StreamWriter(output, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
        var columns = forecast.Columns;
        var header = new List<string>();
        if (forecast.Timestamps is not null) header.Add("Timestamp");
        header.Add("Step");
        header.AddRange(columns.Select(Quote));
        if (forecast.Lower is not null)
            foreach (string c in columns) { header.Add(Quote(c + "_lower")); header.Add(Quote(c + "_upper")); }
        writer.WriteLine(string.Join(',', header));
        var line = new StringBuilder();
        for (int step = 0; step < forecast.Horizon; step++)
        {
            line.Clear();
            if (forecast.Timestamps is { } stamps)
                line.Append(stamps[step].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)).Append(',');
            line.Append(step + 1);
            int row = step * columns.Count;
            for (int v = 0; v < columns.Count; v++)
                line.Append(',').Append(Number(forecast.Values[row + v]));
            if (forecast.Lower is { } lower && forecast.Upper is { } upper)
                for (int v = 0; v < columns.Count; v++)
                    line.Append(',').Append(Number(lower[row + v])).Append(',').Append(Number(upper[row + v]));
            writer.WriteLine(line);
        }
    }

    private static string Number(float value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Quote(string name) =>
        name.IndexOfAny(new[] { ',', '"', '\n' }) < 0 ? name : "\"" + name.Replace("\"", "\"\"") + "\"";
}
