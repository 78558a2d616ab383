using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>What the toolkit needs from a forecasting trainer, typed by its network (the public face is
/// <see cref="ForecastingTrainer{TOptions, TConfig, TNetwork, TModel}"/>).</summary>
/// <typeparam name="TNetwork">The network module.</typeparam>
internal abstract class ForecastingArchitecture<TNetwork> where TNetwork : nn.Module, IForecastingNetwork
{
    /// <summary>Builds a freshly initialised network for the model description (weights drawn after seeding).</summary>
    public abstract TNetwork CreateNetwork(ForecastingModelInfo info);

    /// <summary>Training loss of a batch (inputs: window, covariates, observed mask): MSE over the observed targets.</summary>
    public virtual TrainingLoss Loss(TNetwork network, TrainingBatch batch) =>
        new(MaskedLoss.SquaredError(ForecastScorer.Forward(network, (int)batch.Target.size(2), batch.Inputs),
            batch.Target, batch.TargetMask));

    /// <summary>True when <see cref="ValidationLoss"/> replaces the training objective on validation batches.</summary>
    public virtual bool HasValidationLoss => false;

    /// <summary>The validation loss of a batch when <see cref="HasValidationLoss"/> (e.g. the forecast error alone).</summary>
    public virtual Tensor ValidationLoss(TNetwork network, TrainingBatch batch) => Loss(network, batch).Total;
}

/// <summary>Turns a series view into a trained <see cref="ForecastScorer"/> through the shared training loop.</summary>
internal static class ForecasterTraining
{
    public static (ForecastScorer Scorer, TrainingSummary Summary) Train<TNetwork>(IHostEnvironment env, string name,
        ForecasterOptions options, IDataView data, ForecastingArchitecture<TNetwork> architecture) where TNetwork : nn.Module, IForecastingNetwork
    {
        ArgumentNullException.ThrowIfNull(data);
        options.Validate();
        int l = options.Lookback, s = options.Horizon;
        var policies = options.Policies;
        var channels = options.ChannelColumnNames;
        int variates = options.VariateColumnNames.Length, futureCount = options.FutureCovariateColumnNames?.Length ?? 0;
        var frame = TimeSeriesFrame.FromDataView(data, channels, options.TimestampColumnName,
            policies.AllowsMissing, $"{name} training data", duplicateTimestamps: policies.DuplicateTimestamps,
            missingIndicators: policies.MissingIndicators);

        TimeSeriesFrame train = frame, validation;
        string heldOut = "";
        if (options.ValidationSet is not null)
            validation = TimeSeriesFrame.FromDataView(options.ValidationSet, channels,
                options.TimestampColumnName, policies.AllowsMissing, $"{name} validation data",
                duplicateTimestamps: policies.DuplicateTimestamps, missingIndicators: policies.MissingIndicators);
        else if (options.ValidationFraction > 0)
        {
            int validationRows = (int)Math.Ceiling(frame.Rows * options.ValidationFraction);
            int trainRows = frame.Rows - validationRows;
            heldOut = $" ({validationRows} of {frame.Rows} rows are held out for validation by ValidationFraction = {options.ValidationFraction})";
            if (trainRows < l + s)
                throw new InvalidOperationException($"{name}: the training data has {trainRows} rows after the validation split{heldOut}, fewer than lookback + horizon = {l + s}. Provide more rows, a shorter Lookback/Horizon, or a separate ValidationSet.");
            train = frame.Slice(0, trainRows);
            validation = frame.Slice(trainRows - l, validationRows + l);
        }
        else validation = null!;

        if (train.Rows < l + s)
            throw new InvalidOperationException($"{name}: the training data has {train.Rows} rows, fewer than lookback + horizon = {l} + {s} = {l + s}. Provide more rows or a shorter Lookback/Horizon.");
        if (validation is not null && validation.Rows < l + s)
            throw new InvalidOperationException($"{name}: the validation data has {validation.Rows} rows{heldOut}, fewer than lookback + horizon = {l + s}, so it holds no complete window. Use a larger ValidationFraction or ValidationSet, or a shorter Lookback/Horizon.");

        // A variate never observed in training (the CRIB protocol's column pattern) is kept: its inputs are all
        // masked, its targets never enter the loss, and the scaler leaves it at mean 0, std 1. Say so, since its
        // forecasts then carry no information from its own history.
        var unobserved = Enumerable.Range(0, variates).Where(n => train.ObservedCount(n) == 0)
            .Select(n => $"'{train.Columns[n]}'").ToArray();
        if (unobserved.Length > 0)
        {
            using var channel = env.Start(name);
            channel.Warning(MessageSensitivity.None,
                $"{name} training data: column(s) {string.Join(", ", unobserved)} have no observed value in the " +
                $"{train.Rows} training rows{heldOut}. They are trained as fully missing (masked out of the loss; " +
                "forecasts for them come from the other variates only). Remove them from VariateColumnNames if " +
                "that is not intended.");
        }
        var calendar = options.ResolvedCalendar;
        if (calendar != CalendarFeatures.None && frame.Timestamps is null)
            throw new ArgumentException($"{name}: calendar covariates need TimestampColumnName.");
        var step = ForecastingModelInfo.InferFrequency(frame.Timestamps);
        if (step is { } regular && options.TimestampGapPolicy != TimestampGapPolicy.Ignore)
        {
            CheckTimestampGaps(env, name, $"{name} training data", frame, regular, options);
            if (options.ValidationSet is not null)
                CheckTimestampGaps(env, name, $"{name} validation data", validation!, regular, options);
        }
        var inputScaler = SeriesScaler.Fit(train.Values, train.Columns.Count, train.Rows);
        var scaler = inputScaler.Slice(0, variates);
        var info = new ForecastingModelInfo(options.VariateColumnNames.ToArray(), l, s, calendar, step,
            options.TimestampColumnName, options.LookbackColumnName, options.WindowTimestampColumnName, options.ForecastColumnName, scaler);
        var covariates = channels.Length == variates ? ForecastingCovariates.None
            : new ForecastingCovariates(options.PastCovariateColumnNames.ToArray(),
                (options.FutureCovariateColumnNames ?? Array.Empty<string>()).ToArray(), options.FutureCovariatesColumnName,
                inputScaler.Slice(variates, channels.Length - variates));

        var (seed, device) = TrainerSession.Start(env, name, options);

        var network = architecture.CreateNetwork(info);
        try
        {
            if (network.Lookback != l || network.Horizon != s)
                throw new InvalidOperationException(
                    $"{name}: the network was built for lookback {network.Lookback} and horizon {network.Horizon}, " +
                    $"but the options ask for {l} and {s}. Build the network from the options' Lookback and Horizon.");
            ForecastScorer.CheckReadsFutureCovariates(network, futureCount, name);
            network.to(device);
            using var trainSource = Windows(train, inputScaler, variates, futureCount, calendar, l, s);
            using var validationSource = validation is null ? null
                : Windows(validation, inputScaler, variates, futureCount, calendar, l, s);
            var summary = TrainingLoop.Run(env, name, network,
                new TrainingHooks(batch => architecture.Loss(network, batch))
                {
                    ValidationLoss = architecture.HasValidationLoss ? batch => architecture.ValidationLoss(network, batch) : null,
                },
                trainSource, validationSource, options, device, seed);
            var scorer = new ForecastScorer(info, policies, covariates, network, device);
            if (options.IntervalCoverage is { } coverage)
            {
                var calibration = options.IntervalCalibrationSet is null ? validation
                    : TimeSeriesFrame.FromDataView(options.IntervalCalibrationSet, channels,
                        options.TimestampColumnName, policies.AllowsMissing, $"{name} interval calibration data",
                        $"at least lookback + horizon = {l + s} rows", policies.DuplicateTimestamps,
                        policies.MissingIndicators);
                if (calibration is null)
                    throw new InvalidOperationException(
                        $"{name}: IntervalCoverage = {coverage} calibrates on held-out windows, but there are none: " +
                        "ValidationFraction is 0 and no ValidationSet or IntervalCalibrationSet is given. Set one of them.");
                scorer.SetIntervals(ConformalIntervals.Calibrate(name, scorer, calibration, coverage,
                    options.LowerColumnName, options.UpperColumnName));
            }
            return (scorer, summary);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>The sizes of the network the options describe.</summary>
    public static ForecastingShape Shape(ForecasterOptions options) =>
        new(options.VariateColumnNames.Length, options.Lookback, options.Horizon,
            CalendarFeatureEncoder.Count(options.ResolvedCalendar), options.PastCovariateColumnNames?.Length ?? 0,
            options.FutureCovariateColumnNames?.Length ?? 0);

    /// <summary>Applies <see cref="ForecasterOptions.TimestampGapPolicy"/> (Warn or Refuse) to the gaps of one series.</summary>
    private static void CheckTimestampGaps(IHostEnvironment env, string name, string purpose, TimeSeriesFrame frame,
        TimeSpan step, ForecasterOptions options)
    {
        var gaps = frame.GapRows(step);
        if (gaps.Length == 0) return;
        var times = frame.Timestamps!;
        string first = string.Join(", ", gaps.Take(3).Select(t => $"row {t} ({times[t - 1]:s} then {times[t]:s})"));
        string what = $"{purpose}: timestamp column '{options.TimestampColumnName}' has {gaps.Length} gap(s) longer than " +
                      $"the series step {step} (the most common interval), first at {first}";
        if (options.TimestampGapPolicy == TimestampGapPolicy.Refuse)
            throw new InvalidOperationException(
                $"{what}; expected one row every {step}, because TimestampGapPolicy = Refuse. Insert the missing rows " +
                "(filling their values, e.g. by interpolation), or set TimestampGapPolicy = Warn to train across the gaps.");
        using var channel = env.Start(name);
        channel.Warning(MessageSensitivity.None,
            $"{what}. Windows across a gap treat non-consecutive rows as consecutive. Insert the missing rows (e.g. by " +
            "interpolation), or set TimestampGapPolicy = Refuse to make this an error, or Ignore to silence it.");
    }

    /// <summary>The estimator contract shared by every forecaster: checks that the series columns exist and are
    /// numeric, and describes the fitted model's window-scoring columns (<c>Lookback</c> [+ <c>Timestamp</c>] in,
    /// <c>Forecast</c> out).</summary>
    public static SchemaShape OutputSchema(string name, ForecasterOptions options, SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var byName = inputSchema.ToDictionary(c => c.Name);
        var past = options.PastCovariateColumnNames ?? Array.Empty<string>();
        var future = options.FutureCovariateColumnNames ?? Array.Empty<string>();
        foreach (var variate in options.ChannelColumnNames)
        {
            string role = past.Contains(variate) ? "past covariate" : future.Contains(variate) ? "future covariate" : "variate";
            if (!byName.TryGetValue(variate, out var column))
                throw new ArgumentOutOfRangeException(nameof(inputSchema),
                    $"{name}: {role} column '{variate}' was not found in the input schema.");
            if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.ItemType is not NumberDataViewType)
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{name}: {role} column '{variate}' has type " +
                    $"{column.ItemType} ({column.Kind}); expected a numeric scalar (Single).");
        }
        foreach (var indicator in options.MissingIndicatorColumnNames ?? Array.Empty<string>())
        {
            if (!byName.TryGetValue(indicator, out var column))
                throw new ArgumentOutOfRangeException(nameof(inputSchema),
                    $"{name}: missing-value indicator column '{indicator}' was not found in the input schema.");
            if (column.Kind != SchemaShape.Column.VectorKind.Scalar
                || (column.ItemType is not BooleanDataViewType && column.ItemType is not NumberDataViewType))
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{name}: missing-value indicator column " +
                    $"'{indicator}' has type {column.ItemType} ({column.Kind}); expected a Boolean (true = missing) or " +
                    "numeric (non-zero = missing) scalar.");
        }
        var result = new List<SchemaShape.Column>
        {
            HostSettings.SchemaColumn(options.LookbackColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single),
            HostSettings.SchemaColumn(options.ForecastColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single),
        };
        if (options.ResolvedCalendar != CalendarFeatures.None)
            result.Insert(1, HostSettings.SchemaColumn(options.WindowTimestampColumnName, SchemaShape.Column.VectorKind.Scalar, DateTimeDataViewType.Instance));
        if (future.Length > 0)
            result.Insert(result.Count - 1, HostSettings.SchemaColumn(options.FutureCovariatesColumnName,
                SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single));
        if (options.IntervalCoverage is not null)
            foreach (var bound in new[] { options.LowerColumnName, options.UpperColumnName })
                result.Add(HostSettings.SchemaColumn(bound, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single));
        return new SchemaShape(result);
    }

    /// <summary>The windows of <paramref name="frame"/> (every channel: variates, then covariates), scaled with
    /// <paramref name="inputScaler"/>; calendar covariates from its timestamps.</summary>
    internal static WindowBatchSource Windows(TimeSeriesFrame frame, SeriesScaler inputScaler, int variates,
        int futureCovariates, CalendarFeatures calendar, int lookback, int horizon, bool withTargets = true)
    {
        float[]? covariates = calendar == CalendarFeatures.None ? null : CalendarFeatureEncoder.EncodeAll(calendar, frame.Timestamps!);
        return new WindowBatchSource(inputScaler.Transform(frame.Values), frame.Columns.Count, variates, futureCovariates,
            covariates, CalendarFeatureEncoder.Count(calendar), lookback, horizon, withTargets);
    }

    /// <summary>The windows of a series for a trained model (its channels, scaler and calendar) with
    /// <paramref name="horizon"/> rows after each.</summary>
    internal static WindowBatchSource Windows(TimeSeriesFrame frame, ForecastScorer scorer, int horizon,
        bool withTargets = true) =>
        Windows(frame, scorer.InputScaler, scorer.Info.VariateCount, scorer.Covariates.Future.Length, scorer.Info.Calendar,
            scorer.Info.Lookback, horizon, withTargets);
}
