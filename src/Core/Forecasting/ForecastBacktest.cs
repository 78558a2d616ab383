using Microsoft.ML;

namespace MLNet.Attention.Forecasting;

/// <summary>One forecast origin of a backtest.</summary>
/// <param name="Fold">0-based fold, in time order.</param>
/// <param name="Cutoff">Row index of the first forecast row (the model saw the rows before it).</param>
/// <param name="CutoffTime">Timestamp of that row, when the series has timestamps.</param>
/// <param name="Metrics">Accuracy of this fold's Horizon × variates forecast.</param>
/// <param name="MeanAbsoluteScaledError">MASE: MAE over the in-sample MAE of the seasonal naive forecast on the rows
/// before the cutoff, averaged over variates (NaN where that scale is 0 or unknown).</param>
public sealed record BacktestFold(int Fold, int Cutoff, DateTime? CutoffTime, ForecastMetrics Metrics,
    double MeanAbsoluteScaledError);

/// <summary>What a backtest measured.</summary>
/// <param name="Folds">Per-fold results, in time order.</param>
/// <param name="Overall">All folds' targets pooled (original-unit metrics exact; with refits the scaled ones pool each
/// fold's own scaled space).</param>
/// <param name="MeanAbsoluteScaledError">Mean of the folds' MASE.</param>
/// <param name="Refitted">True when a model was trained per fold on the rows before its cutoff.</param>
public sealed record BacktestResult(IReadOnlyList<BacktestFold> Folds, ForecastMetrics Overall,
    double MeanAbsoluteScaledError, bool Refitted)
{
    /// <summary>One line per fold and the overall line.</summary>
    public override string ToString() =>
        string.Join(Environment.NewLine, Folds.Select(f =>
                $"fold {f.Fold} (cutoff row {f.Cutoff}{(f.CutoffTime is { } t ? $", {t:s}" : "")}): {f.Metrics}, MASE {f.MeanAbsoluteScaledError:F3}")
            .Append($"overall ({Folds.Count} folds{(Refitted ? ", refitted" : "")}): {Overall}, MASE {MeanAbsoluteScaledError:F3}"));
}

/// <summary>
/// Rolling-origin evaluation (backtesting) of forecasters, as NeuralForecast's <c>cross_validation</c> and Darts'
/// <c>historical_forecasts</c>: <c>folds</c> origins, the last at <c>rows − horizon</c>, each earlier one <c>step</c>
/// rows before. Without a refit use <see cref="ForecastingModel.Backtest(Microsoft.ML.IDataView, int, int?, int)"/>; <see cref="Run{TModel}"/> trains a new
/// model per fold on the rows before its cutoff.
/// </summary>
public static class ForecastBacktest
{
    /// <summary>
    /// Trains <paramref name="trainer"/> once per fold on the rows before the fold's cutoff and scores the horizon after
    /// it (the expanding-window protocol). Each model is disposed after its fold.
    /// </summary>
    /// <param name="trainer">A forecasting trainer (its options name the columns, lookback and horizon); give it no
    /// fixed ValidationSet (each fold's training rows are validated by the trainer's ValidationFraction).</param>
    /// <param name="series">The whole series.</param>
    /// <param name="folds">Number of origins.</param>
    /// <param name="step">Rows between origins; null: the model's horizon.</param>
    /// <param name="seasonality">Lag of the naive forecast that scales MASE.</param>
    public static BacktestResult Run<TModel>(IEstimator<TModel> trainer, IDataView series, int folds = 5, int? step = null,
        int seasonality = 1) where TModel : ForecastingModel
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(series);
        var options = (trainer as IForecastingTrainer)?.Options ?? throw new ArgumentException(
            $"{trainer.GetType().Name} is not a forecasting trainer of this package (mlContext.Forecasting.Trainers.*); " +
            "backtest a fitted model with model.Backtest(series) instead.", nameof(trainer));
        if (options.ValidationSet is not null)
            throw new ArgumentException("The trainer has a fixed ValidationSet, which would lie after some folds' cutoffs " +
                "(leaking the future). Leave ValidationSet null: each fold then validates on the last ValidationFraction " +
                "of its own training rows.", nameof(trainer));
        var policies = options.Policies;
        var frame = TimeSeriesFrame.FromDataView(series, options.ChannelColumnNames, options.TimestampColumnName,
            policies.AllowsMissing, "backtest series", "enough rows for the folds", policies.DuplicateTimestamps,
            policies.MissingIndicators);
        int stride = step ?? options.Horizon;
        var cutoffs = Cutoffs("backtest", frame.Rows, options.Lookback, options.Horizon, folds, stride, seasonality);
        string time = options.TimestampColumnName ?? "Date";
        TModel? current = null;
        try
        {
            // Each fold's model trains on the rows before its cutoff; the first fold's model anchors the result.
            var first = trainer.Fit(frame.Slice(0, cutoffs[0]).ToDataView(time, policies.MissingIndicators));
            try
            {
                return first.Backtest(frame, folds, stride, seasonality, refitted: true, fold =>
                {
                    if (fold.Fold == 0) return first;
                    current?.Dispose();
                    return current = trainer.Fit(frame.Slice(0, fold.Cutoff).ToDataView(time, policies.MissingIndicators));
                });
            }
            finally
            {
                first.Dispose();
            }
        }
        finally
        {
            current?.Dispose();
        }
    }

    /// <summary>The cutoffs (first forecast rows) of the folds, checked against the series length.</summary>
    internal static int[] Cutoffs(string name, int rows, int lookback, int horizon, int folds, int step, int seasonality)
    {
        if (folds < 1) throw new ArgumentOutOfRangeException(nameof(folds), folds, "A backtest needs at least one fold.");
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "The step between origins must be at least 1 row.");
        if (seasonality < 1) throw new ArgumentOutOfRangeException(nameof(seasonality), seasonality, "The MASE seasonality must be at least 1.");
        int first = rows - horizon - (folds - 1) * step;
        if (first < lookback)
            throw new InvalidOperationException(
                $"{name}: {folds} folds {step} rows apart with lookback {lookback} and horizon {horizon} need at least " +
                $"{lookback + (folds - 1) * step + horizon} rows; the series has {rows}. Use fewer folds, a smaller step, " +
                "or a longer series.");
        return Enumerable.Range(0, folds).Select(k => first + k * step).ToArray();
    }

    /// <summary>MASE of one fold: per variate, its MAE over the mean |y_t − y_{t−m}| of the rows before the cutoff
    /// (observed pairs only), averaged over the variates where that scale is positive.</summary>
    internal static double Mase(TimeSeriesFrame frame, int cutoff, int seasonality, IReadOnlyList<double> maePerVariate)
    {
        // The variates are the frame's first channels (covariates follow them and are not scored).
        int n = frame.Columns.Count;
        double sum = 0; int used = 0;
        for (int k = 0; k < maePerVariate.Count; k++)
        {
            double scale = 0; long pairs = 0;
            for (int t = seasonality; t < cutoff; t++)
            {
                float a = frame.Values[t * n + k], b = frame.Values[(t - seasonality) * n + k];
                if (float.IsNaN(a) || float.IsNaN(b)) continue;
                scale += Math.Abs(a - b);
                pairs++;
            }
            if (pairs == 0 || scale <= 0 || !double.IsFinite(maePerVariate[k])) continue;
            sum += maePerVariate[k] / (scale / pairs);
            used++;
        }
        return used > 0 ? sum / used : double.NaN;
    }
}

/// <summary>Implemented by this package's forecasting trainers, so that backtests can read their options.</summary>
internal interface IForecastingTrainer
{
    ForecasterOptions Options { get; }
}
