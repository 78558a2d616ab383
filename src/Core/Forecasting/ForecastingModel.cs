using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// A trained multivariate forecaster. As an ML.NET transformer it scores windows row by row: input column
/// <c>Lookback</c> (Vector&lt;Single, L, N&gt;, time-major, original units; plus <c>Timestamp</c> of the last lookback row
/// when the model uses calendar covariates) → output <c>Forecast</c> (Vector&lt;Single, S, N&gt;). <see cref="CreateWindows"/>
/// turns a series into such rows; <see cref="Forecast(IDataView, double?)"/> and <see cref="Evaluate"/> work on the series directly.
/// </summary>
public abstract class ForecastingModel : TorchTransformerBase
{
    private protected ForecastScorer Scorer { get; }

    /// <summary>The scorer (scalers, intervals, network) for the ONNX exporter.</summary>
    internal ForecastScorer ExportScorer => Scorer;

    /// <summary>The series columns the model reads and forecasts, in order.</summary>
    public IReadOnlyList<string> VariateColumnNames => Scorer.Info.Variates;

    /// <summary>Exogenous columns read over the lookback only (not forecast); empty without them.</summary>
    public IReadOnlyList<string> PastCovariateColumnNames => Scorer.Covariates.Past;

    /// <summary>Exogenous columns read over the lookback and the horizon (their future values are needed to forecast:
    /// <see cref="Forecast(IDataView, IDataView, double?)"/>); empty without them.</summary>
    public IReadOnlyList<string> FutureCovariateColumnNames => Scorer.Covariates.Future;

    /// <summary>Rows of history per forecast (L).</summary>
    public int Lookback => Scorer.Info.Lookback;

    /// <summary>Steps forecast at once (S).</summary>
    public int Horizon => Scorer.Info.Horizon;

    /// <summary>Calendar covariates the model was trained with.</summary>
    public CalendarFeatures CalendarFeatures => Scorer.Info.Calendar;

    /// <summary>The per-variate z-score fitted on the training rows (scaled-space metrics use it).</summary>
    public SeriesScaler Scaler => Scorer.Info.Scaler;

    /// <summary>Step between rows inferred from the training timestamps, or null without a timestamp column.</summary>
    public TimeSpan? Frequency => Scorer.Info.Frequency;

    /// <summary>The timestamp column of the series the model was trained on, or null when it had none.</summary>
    public string? TimestampColumnName => Scorer.Info.TimestampColumnName;

    /// <summary>Per-epoch history of the training run; null for a model loaded from a file.</summary>
    public TrainingSummary? TrainingSummary { get; internal set; }

    private protected ForecastingModel(IHostEnvironment env, string name, ForecastScorer scorer, int scoringBatchSize)
        : base(env, name, ScoringInputs(scorer), ScoringOutputs(scorer.Info, scorer.Intervals), scoringBatchSize)
    {
        Scorer = scorer;
        // A NaN in a window would silently turn its whole forecast into NaN unless the model was trained to treat it
        // as missing (MissingValues = ZeroFill); infinity is always refused.
        RejectNonFinite = true;
        AllowNaN = scorer.Policies.AllowsMissing;
    }

    /// <summary>What the model does with missing (NaN) values in windows and series (from the training options).</summary>
    public MissingValuePolicy MissingValues => Scorer.Policies.MissingValues;

    /// <summary>The missing-value indicator columns the model reads beside its variates (empty without them).</summary>
    public IReadOnlyList<string> MissingIndicatorColumnNames => Scorer.Policies.MissingIndicators ?? Array.Empty<string>();

    /// <summary>What the model does with rows whose timestamp repeats the previous row's (from the training options).</summary>
    public DuplicateTimestampPolicy DuplicateTimestamps => Scorer.Policies.DuplicateTimestamps;

    /// <inheritdoc />
    protected override string? NonFiniteHint => Scorer.Policies.AllowsMissing ? null
        : "This model was trained with MissingValues = Refuse; train it with MissingValues = MissingValuePolicy.ZeroFill " +
          "(or use the CRIB forecaster) to score windows with missing values.";

    /// <inheritdoc />
    protected override string? MissingColumnHint(TorchInputColumn column) =>
        $"{Name} scores one window per row. Turn a series (one row per timestamp) into windows with " +
        "model.CreateWindows(mlContext, series), or call model.Forecast(history) / model.Evaluate(series) on the series directly.";

    private static TorchInputColumn[] ScoringInputs(ForecastScorer scorer)
    {
        var info = scorer.Info;
        var inputs = new List<TorchInputColumn>
        {
            TorchInputColumn.Single(info.LookbackColumnName, info.Lookback, scorer.Channels),
        };
        if (info.Calendar != CalendarFeatures.None) inputs.Add(TorchInputColumn.DateTime(info.WindowTimestampColumnName));
        if (scorer.Covariates.Future.Length > 0)
            inputs.Add(TorchInputColumn.Single(scorer.Covariates.FutureColumnName, info.Horizon,
                scorer.Covariates.Future.Length));
        return inputs.ToArray();
    }

    private static TorchOutputColumn[] ScoringOutputs(ForecastingModelInfo info, ConformalIntervals? intervals) =>
        (intervals is null ? new[] { info.ForecastColumnName }
            : new[] { info.ForecastColumnName, intervals.LowerColumnName, intervals.UpperColumnName })
        .Select(name => new TorchOutputColumn(name, info.Horizon, info.VariateCount)).ToArray();

    /// <summary>The coverage of the model's prediction intervals (its <c>Lower</c>/<c>Upper</c> columns), or null when
    /// it was trained without <see cref="ForecasterOptions.IntervalCoverage"/>.</summary>
    public double? IntervalCoverage => Scorer.Intervals?.Coverage;

    /// <summary>Windows whose residuals calibrated the prediction intervals (0 without intervals).</summary>
    public int IntervalCalibrationWindows => Scorer.Intervals?.CalibrationWindows ?? 0;

    /// <inheritdoc />
    protected override Tensor[] Forward(Tensor[] inputs)
    {
        Tensor forecast;
        var future = Scorer.Covariates.Future.Length > 0 ? inputs[^1] : null;
        if (Scorer.Info.Calendar == CalendarFeatures.None)
            forecast = Scorer.ForecastOriginal(inputs[0], future, ReadOnlySpan<long>.Empty, hasTimestamps: false);
        else
        {
            int batch = (int)inputs[1].size(0);
            Span<long> ticks = batch <= 256 ? stackalloc long[batch] : new long[batch];
            inputs[1].data<long>().CopyTo(ticks, 0, 0);
            forecast = Scorer.ForecastOriginal(inputs[0], future, ticks, hasTimestamps: true);
        }
        if (Scorer.HalfWidthsOriginal is not { } halfWidths) return new[] { forecast };
        var width = halfWidths.device == forecast.device ? halfWidths : halfWidths.to(forecast.device);
        return new[] { forecast, forecast.sub(width), forecast.add(width, Runtime.TorchScalars.One) };
    }

    /// <summary>
    /// Forecasts the <see cref="Horizon"/> steps that follow the last row of <paramref name="history"/>, which needs
    /// the variate columns (and the timestamp column when the model uses one) and at least <see cref="Lookback"/> rows.
    /// </summary>
    /// <param name="history">The series up to the forecast origin.</param>
    /// <param name="coverage">Coverage of the returned <see cref="ForecastResult.Lower"/>/<see cref="ForecastResult.Upper"/>
    /// bounds (0.05 to 0.999); null: the trained <see cref="IntervalCoverage"/>, or no bounds without intervals.</param>
    public ForecastResult Forecast(IDataView history, double? coverage = null)
    {
        ThrowIfDisposed();
        if (Scorer.Covariates.Future.Length > 0)
            throw new InvalidOperationException(
                $"{Name} reads known-future covariates ({string.Join(", ", Scorer.Covariates.Future.Select(c => $"'{c}'"))}): " +
                $"their values over the {Horizon} forecast steps are missing. Call model.Forecast(history, future) with a " +
                $"view of the next {Horizon} rows holding those columns.");
        return ForecastCore(history, null, coverage);
    }

    /// <summary>
    /// As <see cref="Forecast(IDataView, double?)"/> for a model with known-future covariates
    /// (<see cref="FutureCovariateColumnNames"/>): <paramref name="futureCovariates"/> holds their values for the
    /// <see cref="Horizon"/> rows after the history (its first Horizon rows are used; other columns are ignored).
    /// </summary>
    /// <param name="history">The series up to the forecast origin (variates and every covariate column).</param>
    /// <param name="futureCovariates">At least Horizon rows with the future covariate columns.</param>
    /// <param name="coverage">As in <see cref="Forecast(IDataView, double?)"/>.</param>
    public ForecastResult Forecast(IDataView history, IDataView futureCovariates, double? coverage = null)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(futureCovariates);
        if (Scorer.Covariates.Future.Length == 0)
            throw new ArgumentException($"{Name} has no known-future covariates (FutureCovariateColumnNames was empty in " +
                "training); call model.Forecast(history) without a future view.", nameof(futureCovariates));
        return ForecastCore(history, futureCovariates, coverage);
    }

    private ForecastResult ForecastCore(IDataView history, IDataView? futureCovariates, double? coverage)
    {
        if (coverage is not null && Scorer.Intervals is null)
            throw new InvalidOperationException(
                $"{Name}: this model has no prediction intervals; train it with IntervalCoverage set (e.g. 0.9) to ask " +
                "for a coverage.");
        var info = Scorer.Info;
        // Only the lookback is needed: the horizon is what gets forecast.
        string need = $"at least {info.Lookback} rows (the model's lookback; the horizon is forecast, not read)";
        var frame = ReadSeries(history, $"{Name} history", need);
        if (frame.Rows < info.Lookback)
            throw new InvalidOperationException(
                $"{Name}: the history has {frame.Rows} rows; expected {need}. Pass a longer history.");
        var window = frame.Slice(frame.Rows - info.Lookback, info.Lookback);
        if (Array.TrueForAll(window.Values, float.IsNaN))
            throw new InvalidOperationException(
                $"{Name}: the last {info.Lookback} rows of the history (rows {frame.Rows - info.Lookback} to " +
                $"{frame.Rows - 1}) are all missing (NaN), so there is nothing to forecast from. Pass a history whose " +
                "lookback holds observed values.");
        DateTime? last = window.Timestamps?[^1];
        if (futureCovariates is not null) window = WithFutureRows(window, futureCovariates);
        // The same windows as training and Evaluate: covariates from the history's real timestamps.
        using var source = ScoringWindows(window);
        var values = ForecastWindows(source, new bool[1], 0, 1, _ => "").Forecast;
        var dates = last is not null && info.Frequency is { } step
            ? Enumerable.Range(1, info.Horizon).Select(k => last.Value + k * step).ToArray() : null;
        if (Scorer.Intervals is not { } intervals) return new ForecastResult(info.Variates, values, dates);
        double level = coverage ?? intervals.Coverage;
        var halfWidths = Scorer.HalfWidthsOriginalAt(level, Name);
        return new ForecastResult(info.Variates, values, dates, level,
            values.Select((v, i) => v - halfWidths[i]).ToArray(), values.Select((v, i) => v + halfWidths[i]).ToArray());
    }

    /// <summary>The lookback rows followed by <see cref="Horizon"/> rows holding the future covariates' values (the
    /// variates and past covariates of those rows are never read: 0).</summary>
    private TimeSeriesFrame WithFutureRows(TimeSeriesFrame window, IDataView futureCovariates)
    {
        var future = Scorer.Covariates.Future;
        int s = Horizon, c = Scorer.Channels, f = future.Length;
        string need = $"at least {s} rows (the model's horizon) with the future covariate columns " +
                      string.Join(", ", future);
        var ahead = TimeSeriesFrame.FromDataView(futureCovariates, future, null, Scorer.Policies.AllowsMissing,
            $"{Name} future covariates", need);
        if (ahead.Rows < s)
            throw new InvalidOperationException(
                $"{Name}: the future covariates view has {ahead.Rows} rows; expected {need}. Pass the covariates' values " +
                $"for all {s} forecast steps.");
        var values = new float[(window.Rows + s) * c];
        window.Values.CopyTo(values, 0);
        for (int t = 0; t < s; t++)
            ahead.Values.AsSpan(t * f, f).CopyTo(values.AsSpan((window.Rows + t) * c + c - f, f));
        DateTime[]? times = null;
        if (window.Timestamps is { } stamps)
        {
            var step = Frequency ?? TimeSpan.FromTicks(1);
            times = stamps.Concat(Enumerable.Range(1, s).Select(k => stamps[^1] + k * step)).ToArray();
        }
        return new TimeSeriesFrame(window.Columns, values, times);
    }

    /// <summary>
    /// Scores every window of <paramref name="series"/> (a start at every row, windows sliding by one, the papers'
    /// protocol) and returns MSE/MAE in scaled space plus MAE/RMSE/MAPE/sMAPE in original units.
    /// Pass a test view that starts <see cref="Lookback"/> rows before its first forecast (see <see cref="ForecastSplit.Apply"/>).
    /// With missing values (a model trained with MissingValues = ZeroFill) missing targets are left out of every
    /// metric, and windows whose lookback or target holds no observed value are skipped and counted.
    /// </summary>
    public ForecastMetrics Evaluate(IDataView series, int batchSize = 256) =>
        EvaluateWith(series, batchSize, batch => Scorer.ForecastScaled(batch.Inputs), withIntervals: true);

    /// <summary>
    /// The naive baseline under exactly the protocol of <see cref="Evaluate"/>: every variate's last observed lookback
    /// value repeated over the horizon (its training mean when the whole lookback of that variate is missing). A model
    /// that does not beat it has learnt nothing useful.
    /// </summary>
    public ForecastMetrics EvaluateLastValueBaseline(IDataView series, int batchSize = 256) =>
        EvaluateWith(series, batchSize, LastObservedValue, withIntervals: false);

    private Tensor LastObservedValue(TrainingBatch batch)
    {
        int n = Scorer.Info.VariateCount;
        var x = batch.Inputs[0]!.narrow(2, 0, n);
        if (batch.Inputs[2] is not { } observedChannels) return x[.., ^1.., ..].expand(-1, Horizon, -1);
        var observed = observedChannels.narrow(2, 0, n);
        // Index of the last observed row per (window, variate): argmax of observed · (t + 1); 0 when none is observed.
        var positions = arange(Runtime.TorchScalars.One, Runtime.TorchScalars.Of(Lookback + 1), Runtime.TorchScalars.One, dtype: ScalarType.Float32,
            device: x.device).view(1, -1, 1);
        var last = observed.mul(positions).argmax(1, keepdim: true);                    // [B, 1, N]
        var value = x.gather(1, last).mul(observed.amax(new long[] { 1 }, keepdim: true));  // 0 (the mean) if none
        return value.expand(-1, Horizon, -1);
    }

    private ForecastMetrics EvaluateWith(IDataView series, int batchSize, Func<TrainingBatch, Tensor> forecastScaled, bool withIntervals)
    {
        ThrowIfDisposed();
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batchSize must be at least 1.");
        var info = Scorer.Info;
        var frame = ReadSeries(series, $"{Name} evaluation data",
            $"at least lookback + horizon = {info.Lookback + info.Horizon} rows (one complete window)");
        if (frame.Rows < info.Lookback + info.Horizon)
            throw new InvalidOperationException($"{Name}: the evaluation data has {frame.Rows} rows, fewer than lookback + horizon = {info.Lookback + info.Horizon}; it holds no complete window.");
        var metrics = new ForecastMetricsAccumulator(info.Scaler);
        if (withIntervals && Scorer.Intervals is { } intervals)
            metrics.TrackIntervals(intervals.Coverage, intervals.HalfWidthsAt(intervals.Coverage, Name));
        Accumulate(frame, batchSize, forecastScaled, metrics);
        return metrics.Result();
    }

    /// <summary>Scores every usable window of <paramref name="frame"/> into <paramref name="metrics"/> (windows with no
    /// observed lookback or target value are counted as skipped).</summary>
    private void Accumulate(TimeSeriesFrame frame, int batchSize, Func<TrainingBatch, Tensor> forecastScaled,
        ForecastMetricsAccumulator metrics)
    {
        var info = Scorer.Info;
        using var windows = ForecasterTraining.Windows(frame, Scorer, info.Horizon);
        using var inference = inference_mode();
        var unusable = windows.UnusableWindows();
        var rows = Enumerable.Range(0, windows.Count).Where(w => !unusable[w]).ToArray();
        metrics.SkipWindows(windows.Count - rows.Length);
        for (int start = 0; start < rows.Length; start += batchSize)
        {
            using var scope = NewDisposeScope();
            int count = Math.Min(batchSize, rows.Length - start);
            var batch = windows.CreateBatch(rows.AsSpan(start, count), Scorer.Device);
            var forecast = forecastScaled(batch).cpu().contiguous();
            metrics.AddScaled(forecast.data<float>().ToArray(), batch.Target.cpu().contiguous().data<float>().ToArray(), count,
                batch.TargetMask?.cpu().contiguous().data<float>().ToArray(), info.Scaler);
        }
    }

    /// <summary>
    /// Rolling-origin evaluation without refitting (NeuralForecast's <c>cross_validation(refit=False)</c>, Darts'
    /// <c>historical_forecasts(retrain=False)</c>): <paramref name="folds"/> forecast origins (cutoffs), the last at
    /// <c>rows − Horizon</c> and each earlier one <paramref name="step"/> rows before; fold k forecasts the Horizon rows
    /// after its cutoff from the Lookback rows before it. Returns per-fold and overall metrics with MASE (the
    /// forecast's MAE over the in-sample MAE of the seasonal naive forecast of lag <paramref name="seasonality"/> on
    /// the rows before the cutoff, averaged over variates). Use <see cref="ForecastBacktest.Run"/> to refit per fold.
    /// </summary>
    /// <param name="series">The series (one row per timestamp), at least Lookback + (folds − 1)·step + Horizon rows.</param>
    /// <param name="folds">Number of forecast origins (≥ 1).</param>
    /// <param name="step">Rows between consecutive origins; null: the horizon (non-overlapping test windows).</param>
    /// <param name="seasonality">Lag of the naive forecast that scales MASE (1: last value; 24: same hour yesterday).</param>
    public BacktestResult Backtest(IDataView series, int folds = 5, int? step = null, int seasonality = 1)
    {
        ThrowIfDisposed();
        var frame = ReadSeries(series, $"{Name} backtest series", "enough rows for the folds");
        return Backtest(frame, folds, step ?? Horizon, seasonality, refitted: false, fold => this);
    }

    internal BacktestResult Backtest(TimeSeriesFrame frame, int folds, int step, int seasonality, bool refitted,
        Func<(int Fold, int Cutoff), ForecastingModel> modelForFold)
    {
        var cutoffs = ForecastBacktest.Cutoffs(Name, frame.Rows, Lookback, Horizon, folds, step, seasonality);
        var overall = new ForecastMetricsAccumulator(Scorer.Info.Scaler);
        var results = new List<BacktestFold>();
        double maseSum = 0; int maseCount = 0;
        for (int k = 0; k < cutoffs.Length; k++)
        {
            int cutoff = cutoffs[k];
            var model = modelForFold((k, cutoff));
            var window = frame.Slice(cutoff - Lookback, Lookback + Horizon);
            var fold = new ForecastMetricsAccumulator(model.Scorer.Info.Scaler);
            Func<TrainingBatch, Tensor> forecast = b => model.Scorer.ForecastScaled(b.Inputs);
            model.Accumulate(window, 1, forecast, fold);
            // Original-unit metrics pool exactly across folds; with refits the scaled ones pool each fold's own scaled space.
            model.Accumulate(window, 1, forecast, overall);
            var metrics = fold.Result();
            double mase = ForecastBacktest.Mase(frame, cutoff, seasonality, metrics.MeanAbsoluteErrorPerVariateOriginal);
            if (double.IsFinite(mase)) { maseSum += mase; maseCount++; }
            results.Add(new BacktestFold(k, cutoff, frame.Timestamps?[cutoff], metrics, mase));
        }
        return new BacktestResult(results, overall.Result(), maseCount > 0 ? maseSum / maseCount : double.NaN, refitted);
    }

    /// <summary>
    /// Turns a series into one row per window, ready for <see cref="ITransformer.Transform"/> or a prediction engine:
    /// <c>Lookback</c> (Vector&lt;Single, L, N&gt;), <c>Timestamp</c> (last lookback row, when the series has timestamps) and,
    /// when <paramref name="includeTargets"/>, <c>Target</c> (Vector&lt;Single, S, N&gt;, the actual next S rows; windows without
    /// a complete target are then skipped). Without targets a window ends at every row from L − 1 on.
    /// </summary>
    public IDataView CreateWindows(MLContext mlContext, IDataView series, bool includeTargets = true)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(mlContext);
        return Windows(series, includeTargets);
    }

    private IDataView Windows(IDataView series, bool includeTargets)
    {
        ArgumentNullException.ThrowIfNull(series);
        var layout = Layout(includeTargets);
        int l = layout.Lookback, s = layout.RowsAfter;
        var frame = ReadSeries(series, $"{Name} series", includeTargets
                ? $"at least lookback + horizon = {l + s} rows (one window with its target)"
                : s > 0 ? $"at least lookback + horizon = {l + s} rows (one lookback window and its future covariates)"
                : $"at least {l} rows (one lookback window)");
        if (frame.Rows < l + s)
            throw new InvalidOperationException($"{Name}: the series has {frame.Rows} rows, fewer than the {l + s} one window needs.");
        return new WindowDataView(frame, layout, WindowNames);
    }

    /// <summary>The windows this model scores: every channel in the lookback, the future covariates over the horizon,
    /// and with <paramref name="withTargets"/> the variates' next rows.</summary>
    private WindowLayout Layout(bool withTargets) =>
        new(Scorer.Channels, Scorer.Info.VariateCount, Scorer.Covariates.Future.Length, Lookback, Horizon, withTargets);

    private WindowColumnNames WindowNames =>
        new(Scorer.Info.LookbackColumnName, Scorer.Info.WindowTimestampColumnName, "Target", Scorer.Covariates.FutureColumnName);

    /// <summary>True when <paramref name="schema"/> is a series view (the variate and covariate columns, no window
    /// column).</summary>
    private bool IsSeries(DataViewSchema schema) =>
        schema.GetColumnOrNull(Scorer.Info.LookbackColumnName) is null
        && Scorer.ChannelColumns.All(v => schema.GetColumnOrNull(v) is not null);

    /// <summary>
    /// A series view (one row per timestamp with the variate columns, as the model was trained on) is scored as its
    /// windows, as <c>ForecastBySsa</c> scores its series: one output row per lookback window ending at rows
    /// L − 1 … T − 1, with <c>Lookback</c> (and <c>Timestamp</c>), the forecast of the following rows (and the interval
    /// bounds). Calendar covariates come from the series' real timestamps, as in training, <see cref="Evaluate"/> and
    /// <see cref="Forecast(IDataView, double?)"/>. A window view (the <c>Lookback</c> column) is scored row by row; its covariates are
    /// dated back from the window's last timestamp by the series step.
    /// </summary>
    protected override IDataView? TransformOtherView(IDataView input)
    {
        ThrowIfDisposed();
        if (!IsSeries(input.Schema)) return null;
        var info = Scorer.Info;
        int need = info.Lookback + Layout(false).RowsAfter;
        var frame = ReadSeries(input, $"{Name} series", need > info.Lookback
            ? $"at least {need} rows (one lookback window and its future covariates)" : $"at least {need} rows (one lookback window)");
        if (frame.Rows < need)
            throw new InvalidOperationException($"{Name}: the series has {frame.Rows} rows, fewer than the {need} one window needs.");
        return new SeriesForecastDataView(this, frame, Layout(false), WindowNames, SeriesOutputSchema(frame.Timestamps is not null));
    }

    /// <inheritdoc/>
    protected override DataViewSchema? OtherViewOutputSchema(DataViewSchema inputSchema) =>
        IsSeries(inputSchema) ? SeriesOutputSchema(TimestampColumnForReading is not null) : null;

    private DataViewSchema SeriesOutputSchema(bool timestamps)
    {
        var info = Scorer.Info;
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(WindowDataView.SchemaOf(Layout(false), timestamps, WindowNames));
        var forecast = new VectorDataViewType(NumberDataViewType.Single, info.Horizon, info.VariateCount);
        builder.AddColumn(info.ForecastColumnName, forecast);
        if (Scorer.Intervals is { } intervals)
        {
            builder.AddColumn(intervals.LowerColumnName, forecast);
            builder.AddColumn(intervals.UpperColumnName, forecast);
        }
        return builder.ToSchema();
    }

    /// <summary>The scoring windows (no target) of a series, covariates from its timestamps.</summary>
    internal WindowBatchSource ScoringWindows(TimeSeriesFrame frame) =>
        ForecasterTraining.Windows(frame, Scorer, Layout(false).RowsAfter, withTargets: false);

    /// <summary>
    /// Forecasts in original units of windows <paramref name="start"/> … start + count − 1 of
    /// <paramref name="windows"/> (from <see cref="ScoringWindows"/>): [count × S × N], and the interval bounds when the
    /// model has them. A window whose lookback is entirely missing cannot be forecast and is refused.
    /// </summary>
    internal (float[] Forecast, float[]? Lower, float[]? Upper) ForecastWindows(WindowBatchSource windows, bool[] unusable,
        int start, int count, Func<int, string> describeWindow)
    {
        ThrowIfDisposed();
        for (int w = start; w < start + count; w++)
            if (unusable[w])
                throw new InvalidOperationException($"{Name}: {describeWindow(w)} are all missing (NaN), so there is nothing " +
                    "to forecast from. Pass a history whose lookback holds observed values.");
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var batch = windows.CreateBatch(Enumerable.Range(start, count).ToArray(), Scorer.Device);
        var scaled = Scorer.ForecastScaled(batch.Inputs);
        var original = scaled.mul(Scorer.Std).add(Scorer.Mean, Runtime.TorchScalars.One);
        var forecast = original.cpu().contiguous().data<float>().ToArray();
        if (Scorer.HalfWidthsOriginal is not { } halfWidths) return (forecast, null, null);
        var widths = halfWidths.cpu().contiguous().data<float>().ToArray();
        int size = widths.Length;
        var lower = new float[forecast.Length];
        var upper = new float[forecast.Length];
        for (int i = 0; i < forecast.Length; i++)
        {
            lower[i] = forecast[i] - widths[i % size];
            upper[i] = forecast[i] + widths[i % size];
        }
        return (forecast, lower, upper);
    }

    private string? TimestampColumnForReading => Scorer.Info.Calendar == CalendarFeatures.None ? null : Scorer.Info.TimestampColumnName;

    private TimeSeriesFrame ReadSeries(IDataView series, string purpose, string rowsNeeded) =>
        TimeSeriesFrame.FromDataView(series, Scorer.ChannelColumns, TimestampColumnForReading, Scorer.Policies.AllowsMissing,
            purpose, rowsNeeded, Scorer.Policies.DuplicateTimestamps, Scorer.Policies.MissingIndicators);

    /// <summary>
    /// Writes the payload: a header shared by every forecaster, then the architecture's part
    /// (<see cref="SaveNetwork"/>). From payload version 2 on:
    /// <code>
    /// int32   0 (a version-1 payload starts with its variate count, at least 1, instead)
    /// int32   payload version of the model type (<see cref="PayloadVersion"/>)
    /// string  "MLNet.Attention.Core 0.1.0": the build that saved it, named when a build too old to read it refuses
    /// config  ForecastingModelInfo (variates, sizes, calendar, frequency, column names, scaler) by ConfigPersistence
    /// config  ForecastingPolicies (missing values, duplicate timestamps), from payload version 3 on
    /// bool    + config ConformalIntervals when true (prediction intervals), from payload version 4 on
    /// config  ForecastingCovariates (past and future covariate columns, their scaler), from payload version 5 on
    /// ...     what SaveNetwork writes (for the iTransformer: its config, the scoring batch size, the weights)
    /// </code>
    /// The first three fields keep their meaning in every later version.
    /// </summary>
    protected override void SavePayload(BinaryWriter writer)
    {
        writer.Write(0);
        writer.Write(PayloadVersion);
        writer.Write(BuildLabel);
        ConfigPersistence.WriteConfig(writer, Scorer.Info);
        ConfigPersistence.WriteConfig(writer, Scorer.Policies);
        writer.Write(Scorer.Intervals is not null);
        if (Scorer.Intervals is { } intervals) ConfigPersistence.WriteConfig(writer, intervals);
        ConfigPersistence.WriteConfig(writer, Scorer.Covariates);
        SaveNetwork(writer);
    }

    /// <summary>The payload version this build writes for the model type (the newest it reads).</summary>
    private protected abstract int PayloadVersion { get; }

    /// <summary>Writes the architecture's hyper-parameters and weights (after the shared model description).</summary>
    private protected abstract void SaveNetwork(BinaryWriter writer);

    /// <summary>
    /// Reads the shared header written by <see cref="SavePayload"/> and returns the payload version with the model
    /// description. Version 1 (MLNet.Attention 0.1.0, no leading 0) wrote the description by hand first and the
    /// architecture's version after it; both are read here, so the caller continues at the architecture's fields.
    /// </summary>
    /// <param name="reader">The payload, at its start.</param>
    /// <param name="modelName">The model's name for messages, e.g. "InvertedTransformer".</param>
    /// <param name="newestVersion">The caller's <see cref="PayloadVersion"/>: newer payloads are refused with the
    /// version of the build that saved them.</param>
    private protected static (int Version, ForecastingModelInfo Info, ForecastingPolicies Policies, ConformalIntervals? Intervals,
        ForecastingCovariates Covariates) ReadHeader(
        BinaryReader reader, string modelName, int newestVersion)
    {
        int first = reader.ReadInt32();
        if (first > 0)
        {
            var legacy = ForecastingModelInfo.ReadVersion1(reader, first);
            int version = reader.ReadInt32();
            if (version != 1)
                throw new InvalidDataException(
                    $"This {modelName} model has the version-1 layout but declares network format {version}; the " +
                    "model file is corrupted. Re-save or re-download it.");
            return (1, legacy, ForecastingPolicies.Strict, null, ForecastingCovariates.None);
        }
        if (first < 0)
            throw new InvalidDataException(
                $"This {modelName} model starts with {first}, which no MLNet.Attention version writes; the model " +
                "file is corrupted. Re-save or re-download it.");
        int payloadVersion = reader.ReadInt32();
        string savedBy = reader.ReadString();
        if (payloadVersion > newestVersion)
            throw new InvalidDataException(
                $"This {modelName} model was saved by {savedBy} with payload format {payloadVersion}, but this " +
                $"build ({BuildLabel}) reads {modelName} payload formats up to {newestVersion}. Upgrade the " +
                "MLNet.Attention packages to the version that saved it (or later) to load this model, or retrain " +
                "it with this version.");
        if (payloadVersion < 2)
            throw new InvalidDataException(
                $"This {modelName} model declares payload format {payloadVersion}, which no MLNet.Attention version " +
                "writes in this layout; the model file is corrupted. Re-save or re-download it.");
        var info = ConfigPersistence.ReadConfig<ForecastingModelInfo>(reader);
        // Payload 2 predates the policies: its models refused missing values and duplicate timestamps.
        var policies = payloadVersion >= 3 ? ConfigPersistence.ReadConfig<ForecastingPolicies>(reader) : ForecastingPolicies.Strict;
        // Payload 4 adds the (optional) conformal prediction intervals.
        var intervals = payloadVersion >= 4 && reader.ReadBoolean() ? ConfigPersistence.ReadConfig<ConformalIntervals>(reader) : null;
        // Payload 5 adds the exogenous covariates.
        var covariates = payloadVersion >= 5 ? ConfigPersistence.ReadConfig<ForecastingCovariates>(reader) : ForecastingCovariates.None;
        return (payloadVersion, info, policies, intervals, covariates);
    }

    /// <summary>"MLNet.Attention.Core 0.1.0": the package version written into every payload.</summary>
    private static string BuildLabel { get; } = "MLNet.Attention.Core " + (typeof(ForecastingModel).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion
        .Split('+')[0] ?? "?");

    /// <inheritdoc />
    protected override void DisposeModule() => Scorer.Dispose();

}
