using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML;
using MLNet.Attention.Engine;

namespace MLNet.Attention.Sweeps;

/// <summary>How a sweep runs.</summary>
public sealed class SweepOptions
{
    /// <summary>The metric to optimise, one of the evaluator's (its direction comes from the evaluator).</summary>
    public string MetricName { get; set; } = "";

    /// <summary>At most this many trials.</summary>
    public int MaxTrials { get; set; } = 10;

    /// <summary>Wall-clock budget: no trial starts after it, and a trial still running when it ends is cancelled
    /// (for our trainers, through their CancellationToken). Null: no budget.</summary>
    public TimeSpan? TimeBudget { get; set; }

    /// <summary>0: fit on the training data, score on the validation data. k ≥ 2: k random folds of the training
    /// data (mean metric over folds), then the best options are refitted on all of it.</summary>
    public int Folds { get; set; }

    /// <summary>Seed of the folds.</summary>
    public int Seed { get; set; }

    /// <summary>CSV trial log, rewritten after every trial (so an interrupted sweep leaves its trials); null: none.</summary>
    public string? LogPath { get; set; }

    /// <summary>Called after every trial.</summary>
    public Action<TrialResult>? TrialCallback { get; set; }

    /// <summary>Stops the sweep; the trials finished so far are returned.</summary>
    public CancellationToken CancellationToken { get; set; }
}

/// <summary>One finished trial.</summary>
/// <param name="Settings">The values it tried.</param>
/// <param name="Metric">The optimised metric (mean over folds), or null when the trial failed or was cancelled.</param>
/// <param name="MetricStandardDeviation">Its standard deviation over folds (0 without folds).</param>
/// <param name="Metrics">Every metric of the evaluator (means over folds).</param>
/// <param name="Duration">Training and evaluation time.</param>
/// <param name="Error">Why it failed, or null.</param>
public sealed record TrialResult(TrialSettings Settings, double? Metric, double MetricStandardDeviation,
    IReadOnlyDictionary<string, double> Metrics, TimeSpan Duration, string? Error);

/// <summary>What a sweep found. Dispose it to release the best model (the other trials' models are already released).</summary>
/// <typeparam name="TOptions">The trainer's options class.</typeparam>
public sealed class SweepResult<TOptions> : IDisposable where TOptions : class
{
    internal SweepResult(string metricName, bool higherIsBetter, IReadOnlyList<TrialResult> trials, TrialResult? best,
        TOptions? bestOptions, ITransformer? bestModel, string stoppedBy)
    {
        MetricName = metricName;
        HigherIsBetter = higherIsBetter;
        Trials = trials;
        Best = best;
        BestOptions = bestOptions;
        BestModel = bestModel;
        StoppedBy = stoppedBy;
    }

    /// <summary>The optimised metric.</summary>
    public string MetricName { get; }

    /// <summary>Its direction.</summary>
    public bool HigherIsBetter { get; }

    /// <summary>Every trial, in order.</summary>
    public IReadOnlyList<TrialResult> Trials { get; }

    /// <summary>The best trial, or null when none succeeded.</summary>
    public TrialResult? Best { get; }

    /// <summary>The best trial's options.</summary>
    public TOptions? BestOptions { get; }

    /// <summary>The model of the best trial (with folds: refitted on all training data). Owned by this result.</summary>
    public ITransformer? BestModel { get; }

    /// <summary>Why the sweep ended: "MaxTrials", "TimeBudget", "Cancelled" or "Tuner" (no proposals left).</summary>
    public string StoppedBy { get; }

    /// <summary>The trials as a console table, best marked with *.</summary>
    public string ToTable()
    {
        var names = Trials.SelectMany(t => t.Settings.Values.Keys).Distinct().ToList();
        var header = new[] { "trial" }.Concat(names).Append(MetricName).Append("seconds").ToList();
        var rows = Trials.Select(t => new[] { (t == Best ? "*" : "") + t.Settings.TrialId }
            .Concat(names.Select(n => t.Settings.Values.TryGetValue(n, out var v) ? TrialSettings.Format(v) : ""))
            .Append(t.Metric is { } m ? m.ToString("G5", CultureInfo.InvariantCulture) +
                (t.MetricStandardDeviation > 0 ? " ± " + t.MetricStandardDeviation.ToString("G2", CultureInfo.InvariantCulture) : "")
                : t.Error is null ? "-" : "failed")
            .Append(t.Duration.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)).ToList()).ToList();
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToList();
        var text = new StringBuilder();
        text.AppendLine(string.Join("  ", header.Select((h, i) => h.PadLeft(widths[i]))));
        foreach (var r in rows) text.AppendLine(string.Join("  ", r.Select((c, i) => c.PadLeft(widths[i]))));
        return text.ToString();
    }

    /// <inheritdoc/>
    public void Dispose() => (BestModel as IDisposable)?.Dispose();
}

/// <summary>
/// Hyper-parameter sweeps over any trainer of this pack (or any ML.NET estimator built from an options object): a
/// <see cref="SearchSpace{TOptions}"/>, a tuner (<see cref="RandomSearchTuner"/>, <see cref="GridSearchTuner"/> or
/// your <see cref="ISweepTuner"/>), trials scored on a validation set or k folds by a <see cref="SweepEvaluator"/>,
/// a time budget and cancellation, a CSV trial log; returns every trial, the best options and the best model.
/// </summary>
public static class ParameterSweep
{
    /// <summary>Runs a sweep.</summary>
    /// <param name="mlContext">The context (its seed does not drive the tuner: give the tuner a seed).</param>
    /// <param name="space">What to vary.</param>
    /// <param name="createOptions">Fresh options with everything the sweep does not vary (called once per trial).</param>
    /// <param name="createEstimator">The estimator (trainer, or a pipeline ending with it) for one trial's options.</param>
    /// <param name="train">Training data.</param>
    /// <param name="validation">Held-out data the trials are scored on; null with <see cref="SweepOptions.Folds"/> ≥ 2.</param>
    /// <param name="evaluator">Scores a trial's model.</param>
    /// <param name="options">Metric, trial count, budget, folds, log.</param>
    /// <param name="tuner">Proposes trials; default: <see cref="RandomSearchTuner"/> seeded with <see cref="SweepOptions.Seed"/>.</param>
    public static SweepResult<TOptions> Run<TOptions>(MLContext mlContext, SearchSpace<TOptions> space,
        Func<TOptions> createOptions, Func<TOptions, IEstimator<ITransformer>> createEstimator, IDataView train,
        IDataView? validation, SweepEvaluator evaluator, SweepOptions options, ISweepTuner? tuner = null)
        where TOptions : class
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(space);
        ArgumentNullException.ThrowIfNull(createOptions);
        ArgumentNullException.ThrowIfNull(createEstimator);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(evaluator);
        ArgumentNullException.ThrowIfNull(options);
        if (space.Parameters.Count == 0)
            throw new ArgumentException($"The search space over {typeof(TOptions).Name} is empty; add Range(...)/Choice(...) " +
                "or annotate options with [Range]/[Choice]/[BooleanChoice] and use SearchSpace.FromAttributes().", nameof(space));
        if (!evaluator.HigherIsBetter.TryGetValue(options.MetricName, out bool higherIsBetter))
            throw new ArgumentException($"Metric '{options.MetricName}' is not reported by this evaluator; use one of " +
                $"{string.Join(", ", evaluator.HigherIsBetter.Keys)} (SweepOptions.MetricName).", nameof(options));
        if (options.MaxTrials < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxTrials, "SweepOptions.MaxTrials must be at least 1.");
        if (options.Folds is 1 or < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.Folds, "SweepOptions.Folds is 0 (validation set) or at least 2.");
        if (options.Folds >= 2 && !evaluator.RandomFoldsAllowed)
            throw new ArgumentException("Random folds shuffle the rows of a series into each other; forecasting sweeps need a " +
                "validation series (SweepOptions.Folds = 0 and the validation argument).", nameof(options));
        if (options.Folds == 0 && validation is null)
            throw new ArgumentNullException(nameof(validation), "Pass validation data, or set SweepOptions.Folds to 2 or more.");
        if (options.Folds >= 2 && validation is not null)
            throw new ArgumentException("Give either validation data or SweepOptions.Folds, not both.", nameof(validation));
        tuner ??= new RandomSearchTuner(options.Seed);

        using var budget = options.TimeBudget is { } b ? new CancellationTokenSource(b) : new CancellationTokenSource();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken, budget.Token);
        var folds = options.Folds >= 2 ? mlContext.Data.CrossValidationSplit(train, options.Folds, seed: options.Seed) : null;
        var trials = new List<TrialResult>();
        TrialResult? best = null;
        TOptions? bestOptions = null;
        ITransformer? bestModel = null;
        string stoppedBy = "MaxTrials";
        string Interrupted() => budget.IsCancellationRequested ? "TimeBudget" : "Cancelled";
        try
        {
            for (int id = 1; id <= options.MaxTrials; id++)
            {
                if (stop.IsCancellationRequested) { stoppedBy = Interrupted(); break; }
                var settings = tuner.Propose(space.Parameters, id);
                if (settings is null) { stoppedBy = "Tuner"; break; }
                var (result, trialOptions, model) = RunTrial(space, createOptions, createEstimator, train, validation, folds,
                    evaluator, options.MetricName, settings, stop.Token);
                trials.Add(result);
                tuner.Update(result);
                bool better = result.Metric is { } m && (best?.Metric is not { } current
                    || (higherIsBetter ? m > current : m < current));
                if (better)
                {
                    (bestModel as IDisposable)?.Dispose();
                    (best, bestOptions, bestModel) = (result, trialOptions, model);
                }
                else (model as IDisposable)?.Dispose();
                if (options.LogPath is { } path) WriteLog(path, trials, evaluator);
                options.TrialCallback?.Invoke(result);
            }
            if (trials.Count > 0 && stop.IsCancellationRequested && trials[^1].Metric is null && trials[^1].Error is null)
                stoppedBy = Interrupted();   // the last trial was cancelled while it ran
            if (best is null && trials.Count > 0 && trials.All(t => t.Error is not null))
                throw new InvalidOperationException($"Every trial failed; the first: {trials[0].Error}");
            if (folds is not null && bestOptions is not null)
                bestModel = createEstimator(space.Apply(createOptions, best!.Settings.Values)).Fit(train);
            return new SweepResult<TOptions>(options.MetricName, higherIsBetter, trials, best, bestOptions, bestModel, stoppedBy);
        }
        catch
        {
            (bestModel as IDisposable)?.Dispose();
            throw;
        }
    }

    private static (TrialResult, TOptions?, ITransformer?) RunTrial<TOptions>(SearchSpace<TOptions> space,
        Func<TOptions> createOptions, Func<TOptions, IEstimator<ITransformer>> createEstimator, IDataView train,
        IDataView? validation, IReadOnlyList<DataOperationsCatalog.TrainTestData>? folds, SweepEvaluator evaluator,
        string metricName, TrialSettings settings, CancellationToken stop) where TOptions : class
    {
        var clock = Stopwatch.StartNew();
        TOptions? trialOptions = null;
        ITransformer? model = null;
        try
        {
            trialOptions = space.Apply(createOptions, settings.Values);
            if (trialOptions is TorchTrainerOptions torch) torch.CancellationToken = stop;
            var perFold = new List<IReadOnlyDictionary<string, double>>();
            foreach (var (fit, score) in folds?.Select(f => (f.TrainSet, f.TestSet)) ?? new[] { (train, validation!) })
            {
                model = createEstimator(trialOptions).Fit(fit);
                perFold.Add(evaluator.Evaluate(model, score));
                if (folds is not null) { (model as IDisposable)?.Dispose(); model = null; }
            }
            var metrics = perFold[0].Keys.ToDictionary(k => k, k => perFold.Average(f => f[k]));
            double mean = metrics[metricName];
            double std = perFold.Count < 2 ? 0
                : Math.Sqrt(perFold.Sum(f => (f[metricName] - mean) * (f[metricName] - mean)) / (perFold.Count - 1));
            return (new TrialResult(settings, double.IsFinite(mean) ? mean : null, std, metrics, clock.Elapsed,
                double.IsFinite(mean) ? null : $"{metricName} was {mean}"), trialOptions, model);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            (model as IDisposable)?.Dispose();
            return (new TrialResult(settings, null, 0, new Dictionary<string, double>(), clock.Elapsed, null), null, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            (model as IDisposable)?.Dispose();
            return (new TrialResult(settings, null, 0, new Dictionary<string, double>(), clock.Elapsed,
                $"{e.GetType().Name}: {e.Message}"), null, null);
        }
    }

    private static void WriteLog(string path, IReadOnlyList<TrialResult> trials, SweepEvaluator evaluator)
    {
        static string Cell(string s) => s.Contains(',') || s.Contains('"') ? $"\"{s.Replace("\"", "\"\"")}\"" : s;
        var names = trials.SelectMany(t => t.Settings.Values.Keys).Distinct().ToList();
        var metrics = evaluator.HigherIsBetter.Keys.ToList();
        var text = new StringBuilder();
        text.AppendLine(string.Join(",", new[] { "trial" }.Concat(names).Concat(metrics).Append("seconds").Append("error")));
        foreach (var t in trials)
            text.AppendLine(string.Join(",", new[] { t.Settings.TrialId.ToString(CultureInfo.InvariantCulture) }
                .Concat(names.Select(n => t.Settings.Values.TryGetValue(n, out var v) ? TrialSettings.Format(v) : ""))
                .Concat(metrics.Select(m => t.Metrics.TryGetValue(m, out var v) ? v.ToString("R", CultureInfo.InvariantCulture) : ""))
                .Append(t.Duration.TotalSeconds.ToString("F2", CultureInfo.InvariantCulture))
                .Append(Cell(t.Error ?? (t.Metric is null ? "cancelled" : "")))));
        string temporary = path + ".tmp";
        File.WriteAllText(temporary, text.ToString());
        File.Move(temporary, path, overwrite: true);
    }
}
