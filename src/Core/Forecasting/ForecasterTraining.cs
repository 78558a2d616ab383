using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>What a forecasting trainer supplies, typed by its network: how to build it and how it forecasts scaled
/// windows. A new forecaster implements these two members; the toolkit does the rest.</summary>
/// <typeparam name="TNetwork">The network module.</typeparam>
internal abstract class ForecastingArchitecture<TNetwork> where TNetwork : nn.Module
{
    /// <summary>Builds a freshly initialised network for the model description (weights drawn after seeding).</summary>
    public abstract TNetwork CreateNetwork(ForecastingModelInfo info);

    /// <summary>Forward pass: scaled windows [B, L, N] and covariates [B, L, M] or null → [B, S, N].</summary>
    public abstract Tensor ForecastScaled(TNetwork network, Tensor windows, Tensor? covariates);
}

/// <summary>Turns a series view into a trained <see cref="ForecastScorer"/> through the shared training loop.</summary>
internal static class ForecasterTraining
{
    public static (ForecastScorer Scorer, TrainingSummary Summary) Train<TNetwork>(IHostEnvironment env, string name,
        ForecasterOptions options, IDataView data, ForecastingArchitecture<TNetwork> architecture) where TNetwork : nn.Module
    {
        ArgumentNullException.ThrowIfNull(data);
        options.Validate();
        int l = options.Lookback, s = options.Horizon;
        var frame = TimeSeriesFrame.FromDataView(data, options.VariateColumnNames, options.TimestampColumnName, allowMissing: false, $"{name} training data");

        TimeSeriesFrame train = frame, validation;
        string heldOut = "";
        if (options.ValidationSet is not null)
            validation = TimeSeriesFrame.FromDataView(options.ValidationSet, options.VariateColumnNames, options.TimestampColumnName, allowMissing: false, $"{name} validation data");
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
        var scaler = SeriesScaler.Fit(train.Values, train.Columns.Count, train.Rows);
        var info = new ForecastingModelInfo(options.VariateColumnNames.ToArray(), l, s, calendar, step,
            options.TimestampColumnName, options.LookbackColumnName, options.WindowTimestampColumnName, options.ForecastColumnName, scaler);

        var (seed, device) = TrainerSession.Start(env, name, options);

        var network = architecture.CreateNetwork(info);
        try
        {
            network.to(device);
            using var trainSource = Windows(train, scaler, calendar, l, s);
            using var validationSource = validation is null ? null : Windows(validation, scaler, calendar, l, s);
            var summary = TrainingLoop.Run(env, name, network,
                batch => nn.functional.mse_loss(architecture.ForecastScaled(network, batch.Inputs[0]!, batch.Inputs[1]), batch.Target),
                trainSource, validationSource, options, device, seed);
            var scorer = new ForecastScorer(info, network, device, (x, c) => architecture.ForecastScaled(network, x, c));
            return (scorer, summary);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

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

    internal static WindowBatchSource Windows(TimeSeriesFrame frame, SeriesScaler scaler, CalendarFeatures calendar, int lookback, int horizon)
    {
        float[]? covariates = calendar == CalendarFeatures.None ? null : CalendarFeatureEncoder.EncodeAll(calendar, frame.Timestamps!);
        return new WindowBatchSource(scaler.Transform(frame.Values), frame.Columns.Count, covariates, CalendarFeatureEncoder.Count(calendar), lookback, horizon);
    }
}
