using MLNet.Attention.Engine;

namespace MLNet.Attention.Forecasting;

/// <summary>Options shared by every forecasting trainer (iTransformer, CRIB, MVPA).</summary>
public abstract class ForecasterOptions : TorchTrainerOptions
{
    /// <summary>Numeric scalar columns holding the series, one row per timestamp. Forecasts come out in this order.</summary>
    public string[] VariateColumnNames { get; set; } = Array.Empty<string>();

    /// <summary>
    /// Exogenous inputs known only up to the forecast origin (numeric scalar columns beside the variates, e.g. a
    /// measured temperature): the network reads their lookback values; they are not forecast, not in the loss and not
    /// in the metrics. Missing values follow <see cref="MissingValues"/> like the series'. Supported by the
    /// iTransformer (extra variate tokens) and the MVPA-inspired forecaster (extra variables).
    /// </summary>
    public string[] PastCovariateColumnNames { get; set; } = Array.Empty<string>();

    /// <summary>
    /// Exogenous inputs known for the horizon too (a price plan, a schedule, a weather forecast): training reads their
    /// values over the lookback and the horizon; scoring needs their horizon values — in a window row the
    /// <see cref="FutureCovariatesColumnName"/> column, for <c>Forecast</c> a view of the next rows
    /// (<c>model.Forecast(history, future)</c>), and a series view is scored for the windows whose horizon it covers.
    /// Supported by the iTransformer (one token per covariate embedded from lookback + horizon values).
    /// </summary>
    public string[] FutureCovariateColumnNames { get; set; } = Array.Empty<string>();

    /// <summary>Window-scoring input column with the future covariates' horizon values: Vector&lt;Single, S, F&gt;
    /// (time-major, original units; only with <see cref="FutureCovariateColumnNames"/>).</summary>
    public string FutureCovariatesColumnName { get; set; } = "FutureCovariates";

    /// <summary>Optional timestamp column (DateTime or date text); needed for calendar covariates and dated forecasts.</summary>
    public string? TimestampColumnName { get; set; }

    /// <summary>Input window length L (rows of history per forecast).</summary>
    public int Lookback { get; set; } = 96;

    /// <summary>Forecast length S (rows forecast at once).</summary>
    public int Horizon { get; set; } = 96;

    /// <summary>Calendar covariates; null picks <see cref="Forecasting.CalendarFeatures.Hourly"/> when a timestamp column is named, else none.</summary>
    public CalendarFeatures? CalendarFeatures { get; set; }

    /// <summary>
    /// When no <see cref="TorchTrainerOptions.ValidationSet"/> is given, the last fraction of the training rows (plus
    /// <see cref="Lookback"/> rows of context) validates; the scaler is fitted on the rows before it only.
    /// 0 trains on everything without validation (set EarlyStoppingPatience = null then).
    /// </summary>
    public double ValidationFraction { get; set; } = 0.2;

    /// <summary>Name of the model's input column when scoring windows: Vector&lt;Single, L, N&gt; (time-major, original units).</summary>
    public string LookbackColumnName { get; set; } = "Lookback";

    /// <summary>Name of the scoring input column with the timestamp of each window's last lookback row (only with calendar covariates).</summary>
    public string WindowTimestampColumnName { get; set; } = "Timestamp";

    /// <summary>Name of the output column: Vector&lt;Single, S, N&gt; in original units.</summary>
    public string ForecastColumnName { get; set; } = "Forecast";

    /// <summary>
    /// What training does when consecutive timestamps (of the training data or the validation set) are further apart
    /// than the series step, which is inferred as the most common interval between them: a window across such a gap
    /// treats non-consecutive rows as consecutive, and scoring dates the lookback rows as if the step were regular.
    /// <see cref="Forecasting.TimestampGapPolicy.Warn"/> (default) trains and writes a warning naming the count and the
    /// first gap rows to <c>mlContext.Log</c>; <see cref="Forecasting.TimestampGapPolicy.Refuse"/> throws an
    /// <see cref="InvalidOperationException"/> naming them instead; <see cref="Forecasting.TimestampGapPolicy.Ignore"/>
    /// trains silently. Needs <see cref="TimestampColumnName"/>; without it rows are assumed evenly spaced.
    /// </summary>
    public TimestampGapPolicy TimestampGapPolicy { get; set; } = TimestampGapPolicy.Warn;

    /// <summary>
    /// Missing values (NaN) in the series: <see cref="MissingValuePolicy.Refuse"/> (default; CRIB's options default to
    /// <see cref="MissingValuePolicy.ZeroFill"/>) throws naming the column and row; <see cref="MissingValuePolicy.ZeroFill"/>
    /// trains, evaluates and forecasts through them (zero after scaling, an observed mask with every window, missing
    /// targets masked out of the loss and the metrics). The fitted model keeps the policy for scoring.
    /// </summary>
    public MissingValuePolicy MissingValues { get; set; } = MissingValuePolicy.Refuse;

    /// <summary>Rows whose timestamp repeats the previous row's: refuse (default), keep them (the papers keep
    /// Weather's duplicate) or drop all but the first. Needs <see cref="TimestampColumnName"/>.</summary>
    public DuplicateTimestampPolicy DuplicateTimestamps { get; set; } = DuplicateTimestampPolicy.Refuse;

    /// <summary>
    /// Conformal prediction intervals: null (default) for none; a coverage such as 0.9 calibrates split-conformal
    /// intervals after training on the validation windows (or <see cref="IntervalCalibrationSet"/>): per horizon step and
    /// variate, the ⌈(m + 1)·coverage⌉-th smallest absolute residual of m calibration windows. The model then writes
    /// <see cref="LowerColumnName"/> and <see cref="UpperColumnName"/> beside the forecast, <c>Forecast(history)</c> returns
    /// the bounds (any coverage from 0.05 to 0.999 through <c>Forecast(history, coverage)</c>), and <c>Evaluate</c>
    /// reports the empirical coverage. When early stopping also used the validation windows, coverage can fall slightly
    /// short of the nominal; a separate <see cref="IntervalCalibrationSet"/> avoids that.
    /// </summary>
    public double? IntervalCoverage { get; set; }

    /// <summary>Series (one row per timestamp, at least lookback + horizon rows) whose windows calibrate the intervals;
    /// null uses the validation windows.</summary>
    public Microsoft.ML.IDataView? IntervalCalibrationSet { get; set; }

    /// <summary>Output column of the intervals' lower bounds: Vector&lt;Single, S, N&gt; in original units.</summary>
    public string LowerColumnName { get; set; } = "Lower";

    /// <summary>Output column of the intervals' upper bounds: Vector&lt;Single, S, N&gt; in original units.</summary>
    public string UpperColumnName { get; set; } = "Upper";

    /// <summary>
    /// Optional missing-value indicator columns, one per variate in <see cref="VariateColumnNames"/> order: Boolean
    /// (true = missing, as <c>mlContext.Transforms.IndicateMissingValues</c> writes) or numeric (non-zero = missing). A
    /// value whose indicator is set is missing whatever its column holds (a sentinel such as -999 or 0 from a sensor
    /// outage), then handled by <see cref="MissingValues"/>. The fitted model reads the same columns from the series it
    /// scores, evaluates and forecasts from; window rows carry missing values as NaN. Null or empty for none.
    /// </summary>
    public string[]? MissingIndicatorColumnNames { get; set; }

    internal ForecastingPolicies Policies => new(MissingValues, DuplicateTimestamps,
        MissingIndicatorColumnNames is { Length: > 0 } indicators ? indicators.ToArray() : null);

    /// <summary>Every column a window reads, in channel order: variates, past covariates, future covariates.</summary>
    internal string[] ChannelColumnNames =>
        ForecastColumns.Channels(VariateColumnNames, PastCovariateColumnNames, FutureCovariateColumnNames);

    public override void Validate()
    {
        base.Validate();
        if (!Enum.IsDefined(MissingValues))
            throw new ArgumentOutOfRangeException(nameof(MissingValues), MissingValues, "MissingValues must be Refuse or ZeroFill.");
        if (!Enum.IsDefined(DuplicateTimestamps))
            throw new ArgumentOutOfRangeException(nameof(DuplicateTimestamps), DuplicateTimestamps,
                "DuplicateTimestamps must be Refuse, Keep or Drop.");
        if (VariateColumnNames is null || VariateColumnNames.Length == 0)
            throw new ArgumentException("Name at least one variate column (VariateColumnNames).", nameof(VariateColumnNames));
        ForecastColumns.Check(VariateColumnNames, PastCovariateColumnNames, FutureCovariateColumnNames,
            MissingIndicatorColumnNames);
        if ((FutureCovariateColumnNames?.Length ?? 0) > 0 && (string.IsNullOrWhiteSpace(FutureCovariatesColumnName)
                || FutureCovariatesColumnName == LookbackColumnName || FutureCovariatesColumnName == ForecastColumnName))
            throw new ArgumentException($"FutureCovariatesColumnName ('{FutureCovariatesColumnName}') must be a non-empty " +
                "name different from LookbackColumnName and ForecastColumnName.", nameof(FutureCovariatesColumnName));
        if (Lookback < 1) throw new ArgumentOutOfRangeException(nameof(Lookback), Lookback, "Lookback must be at least 1.");
        if (Horizon < 1) throw new ArgumentOutOfRangeException(nameof(Horizon), Horizon, "Horizon must be at least 1.");
        if (ValidationFraction is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(ValidationFraction), ValidationFraction, "ValidationFraction must be in [0, 1).");
        if (!Enum.IsDefined(TimestampGapPolicy))
            throw new ArgumentOutOfRangeException(nameof(TimestampGapPolicy), TimestampGapPolicy,
                "TimestampGapPolicy must be Warn, Refuse or Ignore.");
        if (IntervalCoverage is { } coverage && !(coverage >= ConformalIntervals.Grid[0] && coverage <= ConformalIntervals.Grid[^1]))
            throw new ArgumentOutOfRangeException(nameof(IntervalCoverage), coverage,
                $"IntervalCoverage must be between {ConformalIntervals.Grid[0]} and {ConformalIntervals.Grid[^1]} (e.g. 0.9 for 90 % intervals), or null for none.");
        if (IntervalCoverage is not null && (string.IsNullOrWhiteSpace(LowerColumnName) || string.IsNullOrWhiteSpace(UpperColumnName)
                                             || LowerColumnName == UpperColumnName || LowerColumnName == ForecastColumnName || UpperColumnName == ForecastColumnName))
            throw new ArgumentException($"LowerColumnName ('{LowerColumnName}'), UpperColumnName ('{UpperColumnName}') and " +
                $"ForecastColumnName ('{ForecastColumnName}') must be three different non-empty names.", nameof(LowerColumnName));
        if (CalendarFeatures is not null and not Forecasting.CalendarFeatures.None && TimestampColumnName is null)
            throw new ArgumentException($"CalendarFeatures = {CalendarFeatures} needs TimestampColumnName.", nameof(CalendarFeatures));
    }

    internal CalendarFeatures ResolvedCalendar => CalendarFeatures ?? (TimestampColumnName is null ? Forecasting.CalendarFeatures.None : Forecasting.CalendarFeatures.Hourly);
}

/// <summary>What forecasting training does with timestamp gaps larger than the series step
/// (<see cref="ForecasterOptions.TimestampGapPolicy"/>).</summary>
public enum TimestampGapPolicy
{
    /// <summary>Train, and write a warning naming the gap count and the first gap rows to <c>mlContext.Log</c>.</summary>
    Warn = 0,
    /// <summary>Throw an <see cref="InvalidOperationException"/> naming the gap count and the first gap rows.</summary>
    Refuse = 1,
    /// <summary>Train without a word (for series with known, intended gaps such as trading days).</summary>
    Ignore = 2,
}
