using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;

namespace MLNet.Attention.Sweeps;

/// <summary>
/// Scores one trial's model on held-out data: the metrics it reports by name and, for each, whether higher is better.
/// Ready-made ones wrap ML.NET's evaluators (<see cref="Multiclass"/>, <see cref="Binary"/>) and the forecasters'
/// <see cref="ForecastingModel.Evaluate"/> (<see cref="Forecasting"/>); any other is a list of names and a delegate.
/// </summary>
public sealed class SweepEvaluator
{
    private readonly Func<ITransformer, IDataView, IReadOnlyDictionary<string, double>> _evaluate;

    /// <param name="higherIsBetter">Every metric the delegate reports → true when larger values are better.</param>
    /// <param name="evaluate">(trained model, held-out data) → metric values by name.</param>
    /// <param name="randomFoldsAllowed">False where rows must not be shuffled into folds (time series).</param>
    public SweepEvaluator(IReadOnlyDictionary<string, bool> higherIsBetter,
        Func<ITransformer, IDataView, IReadOnlyDictionary<string, double>> evaluate, bool randomFoldsAllowed = true)
    {
        ArgumentNullException.ThrowIfNull(higherIsBetter);
        ArgumentNullException.ThrowIfNull(evaluate);
        if (higherIsBetter.Count == 0) throw new ArgumentException("Name at least one metric.", nameof(higherIsBetter));
        HigherIsBetter = higherIsBetter;
        _evaluate = evaluate;
        RandomFoldsAllowed = randomFoldsAllowed;
    }

    /// <summary>The metrics by name, each with its direction.</summary>
    public IReadOnlyDictionary<string, bool> HigherIsBetter { get; }

    /// <summary>Whether k random folds are a valid protocol for this task (not for forecasting).</summary>
    public bool RandomFoldsAllowed { get; }

    internal IReadOnlyDictionary<string, double> Evaluate(ITransformer model, IDataView data) => _evaluate(model, data);

    /// <summary>ML.NET's multiclass metrics of the Score/PredictedLabel columns: MicroAccuracy, MacroAccuracy,
    /// LogLoss (lower is better), LogLossReduction.</summary>
    public static SweepEvaluator Multiclass(MLContext mlContext, string labelColumnName = "Label")
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return new(new Dictionary<string, bool>
        {
            ["MicroAccuracy"] = true, ["MacroAccuracy"] = true, ["LogLoss"] = false, ["LogLossReduction"] = true,
        }, (model, data) =>
        {
            var m = mlContext.MulticlassClassification.Evaluate(model.Transform(data), labelColumnName);
            return new Dictionary<string, double>
            {
                ["MicroAccuracy"] = m.MicroAccuracy, ["MacroAccuracy"] = m.MacroAccuracy, ["LogLoss"] = m.LogLoss,
                ["LogLossReduction"] = m.LogLossReduction,
            };
        });
    }

    /// <summary>ML.NET's binary metrics (calibrated: the Probability column our binary classifiers write): Accuracy,
    /// AreaUnderRocCurve, AreaUnderPrecisionRecallCurve, F1Score, LogLoss (lower is better).</summary>
    public static SweepEvaluator Binary(MLContext mlContext, string labelColumnName = "Label")
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return new(new Dictionary<string, bool>
        {
            ["Accuracy"] = true, ["AreaUnderRocCurve"] = true, ["AreaUnderPrecisionRecallCurve"] = true, ["F1Score"] = true,
            ["LogLoss"] = false,
        }, (model, data) =>
        {
            var m = mlContext.BinaryClassification.Evaluate(model.Transform(data), labelColumnName);
            return new Dictionary<string, double>
            {
                ["Accuracy"] = m.Accuracy, ["AreaUnderRocCurve"] = m.AreaUnderRocCurve,
                ["AreaUnderPrecisionRecallCurve"] = m.AreaUnderPrecisionRecallCurve, ["F1Score"] = m.F1Score,
                ["LogLoss"] = m.LogLoss,
            };
        });
    }

    /// <summary>The forecast metrics of <see cref="ForecastingModel.Evaluate"/> on a held-out series (every window of
    /// it; all lower is better): MeanSquaredError, MeanAbsoluteError (scaled space, as the papers report),
    /// MeanAbsoluteErrorOriginal, RootMeanSquaredErrorOriginal, SymmetricMeanAbsolutePercentageError. The model is
    /// the forecaster or a chain ending with one (the transforms before it are applied to the series first).</summary>
    public static SweepEvaluator Forecasting() => new(new Dictionary<string, bool>
    {
        ["MeanSquaredError"] = false, ["MeanAbsoluteError"] = false, ["MeanAbsoluteErrorOriginal"] = false,
        ["RootMeanSquaredErrorOriginal"] = false, ["SymmetricMeanAbsolutePercentageError"] = false,
    }, (model, series) =>
    {
        var (forecaster, before) = FindForecaster(model);
        var m = forecaster.Evaluate(before.Aggregate(series, (view, t) => t.Transform(view)));
        return new Dictionary<string, double>
        {
            ["MeanSquaredError"] = m.MeanSquaredError, ["MeanAbsoluteError"] = m.MeanAbsoluteError,
            ["MeanAbsoluteErrorOriginal"] = m.MeanAbsoluteErrorOriginal,
            ["RootMeanSquaredErrorOriginal"] = m.RootMeanSquaredErrorOriginal,
            ["SymmetricMeanAbsolutePercentageError"] = m.SymmetricMeanAbsolutePercentageError,
        };
    }, randomFoldsAllowed: false);

    private static (ForecastingModel, IReadOnlyList<ITransformer>) FindForecaster(ITransformer model)
    {
        if (model is ForecastingModel f) return (f, Array.Empty<ITransformer>());
        if (model is IEnumerable<ITransformer> chain)
        {
            var list = chain.ToList();
            int at = list.FindLastIndex(t => t is ForecastingModel);
            if (at >= 0) return ((ForecastingModel)list[at], list.Take(at).ToList());
        }
        throw new InvalidOperationException($"SweepEvaluator.Forecasting needs a forecaster (or a chain ending with one); " +
            $"the trial produced {model.GetType().Name}. Use SweepEvaluator.Multiclass/Binary or your own evaluator.");
    }
}
