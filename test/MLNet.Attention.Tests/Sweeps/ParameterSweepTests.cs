using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Sweeps;
using MLNet.Attention.Tests.Forecasting;

namespace MLNet.Attention.Tests.Sweeps;

/// <summary>Search spaces from the SearchSpace attributes, the random and grid tuners, and sweeps over our trainers and
/// over any ML.NET trainer's options: validation set or folds, CSV log, budget, cancellation, bad input.</summary>
[TestClass]
public sealed class ParameterSweepTests
{
    public sealed class Point
    {
        [VectorType(2)] public float[] Features { get; set; } = new float[2];
        public string Label { get; set; } = "";
    }

    private static IDataView Points(MLContext ml, int count, int seed)
    {
        var rng = new Random(seed);
        var rows = Enumerable.Range(0, count).Select(i =>
        {
            int c = i % 3;
            return new Point
            {
                Features = new[] { (float)(c + 0.6 * rng.NextDouble()), (float)(c * c * 0.5 + 0.6 * rng.NextDouble()) },
                Label = $"c{c}",
            };
        }).ToList();
        return ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows))
            .Transform(ml.Data.LoadFromEnumerable(rows));
    }

    private static SweepResult<SdcaMaximumEntropyMulticlassTrainer.Options> SweepSdca(MLContext ml, SweepOptions options,
        ISweepTuner? tuner = null, bool folds = false)
    {
        var space = new SearchSpace<SdcaMaximumEntropyMulticlassTrainer.Options>()
            .Range(nameof(SdcaMaximumEntropyMulticlassTrainer.Options.L2Regularization), 1e-6, 10, logScale: true)
            .Choice(nameof(SdcaMaximumEntropyMulticlassTrainer.Options.MaximumNumberOfIterations), 1, 20);
        return ParameterSweep.Run(ml, space, () => new SdcaMaximumEntropyMulticlassTrainer.Options(),
            o => ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(o), Points(ml, 150, 1), folds ? null : Points(ml, 90, 2),
            SweepEvaluator.Multiclass(ml), options, tuner);
    }

    [TestMethod]
    public void TheAttributesOfAnOptionsClassMakeItsSearchSpace()
    {
        var all = SearchSpace<InvertedTransformerOptions>.FromAttributes();
        var names = all.Parameters.Select(p => p.Name).ToArray();
        CollectionAssert.IsSubsetOf(new[] { "BatchSize", "Dropout", "Layers", "LearningRate", "ModelWidth", "WeightDecay" }, names);
        var width = (ChoiceParameter)all.Parameters.Single(p => p.Name == "ModelWidth");
        CollectionAssert.AreEqual(new object[] { 64, 128, 256, 512 }, width.Candidates.ToArray());
        var layers = (RangeParameter)all.Parameters.Single(p => p.Name == "Layers");
        Assert.IsTrue(layers.Integer && layers.Min == 1 && layers.Max == 4 && !layers.LogScale);
        var rate = (RangeParameter)all.Parameters.Single(p => p.Name == "LearningRate");
        Assert.IsTrue(rate.LogScale && !rate.Integer);

        var some = SearchSpace<InvertedTransformerOptions>.FromAttributes("Layers", "LearningRate");
        CollectionAssert.AreEqual(new[] { "Layers", "LearningRate" }, some.Parameters.Select(p => p.Name).ToArray());
        var unknown = Assert.ThrowsExactly<ArgumentException>(() => SearchSpace<InvertedTransformerOptions>.FromAttributes("Heads"));
        StringAssert.Contains(unknown.Message, "'Heads'");
        StringAssert.Contains(unknown.Message, "Range(...)");
        foreach (var space in new[] { SearchSpace<MLNet.Attention.Classification.ImageClassifierOptions>.FromAttributes().Parameters,
            SearchSpace<MLNet.Attention.MultipleInstance.AttentionMilOptions>.FromAttributes().Parameters,
            SearchSpace<CribOptions>.FromAttributes().Parameters })
            Assert.IsTrue(space.Count >= 5, string.Join(", ", space.Select(p => p.Name)));
    }

    [TestMethod]
    public void TunersProposeReproducibleValuesInsideTheSpaceAndTheGridEnds()
    {
        var space = new SearchSpace<InvertedTransformerOptions>()
            .Range("LearningRate", 1e-4, 1e-2, logScale: true).Range("Layers", 1, 3).Choice("UseNorm", true, false);
        var a = new RandomSearchTuner(5);
        var b = new RandomSearchTuner(5);
        for (int i = 1; i <= 50; i++)
        {
            var x = a.Propose(space.Parameters, i)!;
            Assert.AreEqual(x.ToString(), b.Propose(space.Parameters, i)!.ToString());
            double lr = (double)x.Values["LearningRate"];
            Assert.IsTrue(lr >= 1e-4 && lr <= 1e-2, $"{lr}");
            Assert.IsInstanceOfType<int>(x.Values["Layers"]);
        }
        var grid = new GridSearchTuner(stepsPerRange: 3);
        Assert.AreEqual(3 * 3 * 2, grid.Size(space.Parameters));
        var seen = Enumerable.Range(1, 18).Select(i => grid.Propose(space.Parameters, i)!.ToString()).ToHashSet();
        Assert.AreEqual(18, seen.Count, "every grid point once");
        Assert.IsNull(grid.Propose(space.Parameters, 19));
        var middle = (RangeParameter)space.Parameters[0];
        Assert.AreEqual(1e-3, (double)middle.GridValues(3)[1], 1e-12, "log-spaced grid");
    }

    [TestMethod]
    public void ASweepOverAnyMLNetTrainerLogsEveryTrialAndKeepsTheBestModel()
    {
        var ml = new MLContext(seed: 1);
        string log = Path.Combine(Path.GetTempPath(), $"sweep-{Environment.ProcessId}.csv");
        try
        {
            var seen = new List<TrialResult>();
            using var result = SweepSdca(ml, new SweepOptions
            {
                MetricName = "MicroAccuracy", MaxTrials = 10, LogPath = log, TrialCallback = seen.Add,
            }, new GridSearchTuner(2));
            Assert.AreEqual("Tuner", result.StoppedBy, "a 2 × 2 grid ends after 4 trials");
            Assert.AreEqual(4, result.Trials.Count);
            CollectionAssert.AreEqual(result.Trials.ToArray(), seen.ToArray());
            Assert.AreEqual(result.Trials.Max(t => t.Metric), result.Best!.Metric);
            Assert.IsTrue(result.Best.Metric > 0.8, result.ToTable());
            // The model returned is the best trial's: it scores the validation data to the same metric.
            var again = ml.MulticlassClassification.Evaluate(result.BestModel!.Transform(Points(ml, 90, 2)));
            Assert.AreEqual(result.Best.Metric!.Value, again.MicroAccuracy, 1e-12);
            double l2 = (double)result.Best.Settings.Values["L2Regularization"];
            Assert.AreEqual(l2, (double)result.BestOptions!.L2Regularization!, 1e-6 * l2);
            var lines = File.ReadAllLines(log);
            Assert.AreEqual(5, lines.Length);
            StringAssert.StartsWith(lines[0], "trial,L2Regularization,MaximumNumberOfIterations,MicroAccuracy");
            StringAssert.Contains(result.ToTable(), "*" + result.Best.Settings.TrialId);
        }
        finally
        {
            File.Delete(log);
        }
    }

    [TestMethod]
    public void FoldsScoreEachTrialAsAMeanAndTheBestOptionsAreRefittedOnAllRows()
    {
        var ml = new MLContext(seed: 1);
        using var result = SweepSdca(ml, new SweepOptions { MetricName = "LogLoss", MaxTrials = 3, Folds = 3, Seed = 2 },
            folds: true);
        Assert.AreEqual(3, result.Trials.Count);
        Assert.IsFalse(result.HigherIsBetter);
        Assert.AreEqual(result.Trials.Min(t => t.Metric), result.Best!.Metric, "LogLoss: lower is better");
        Assert.IsTrue(result.Trials.All(t => t.MetricStandardDeviation > 0), "three folds differ");
        Assert.IsNotNull(result.BestModel);
    }

    [TestMethod]
    public void ForecasterSweepOnAValidationSeriesReturnsAForecaster()
    {
        var ml = new MLContext(seed: 3);
        var all = ml.Data.LoadFromEnumerable(InvertedTransformerTrainerTests.Series(500));
        var train = ml.Data.TakeRows(all, 380);
        var validation = ml.Data.SkipRows(all, 380 - InvertedTransformerTrainerTests.L);
        var space = new SearchSpace<InvertedTransformerOptions>().Choice("ModelWidth", 8, 16).Range("LearningRate", 1e-3, 1e-2, true);
        using var result = ParameterSweep.Run(ml, space, () => InvertedTransformerTrainerTests.TinyOptions(o => o.MaxEpochs = 2),
            o => ml.Forecasting.Trainers.InvertedTransformer(o), train, validation, SweepEvaluator.Forecasting(),
            new SweepOptions { MetricName = "MeanSquaredError", MaxTrials = 2, Seed = 4 });
        Assert.AreEqual(2, result.Trials.Count);
        var model = (ForecastingModel)result.BestModel!;
        Assert.AreEqual(result.Best!.Metric!.Value, model.Evaluate(validation).MeanSquaredError, 1e-9);
    }

    [TestMethod]
    public void ABudgetOrACancellationEndsTheSweepWithTheTrialsSoFar()
    {
        var ml = new MLContext(seed: 1);
        using (var none = SweepSdca(ml, new SweepOptions { MetricName = "MicroAccuracy", TimeBudget = TimeSpan.Zero }))
        {
            Assert.AreEqual("TimeBudget", none.StoppedBy);
            Assert.AreEqual(0, none.Trials.Count);
            Assert.IsNull(none.Best);
        }
        using var cancel = new CancellationTokenSource();
        using var one = SweepSdca(ml, new SweepOptions
        {
            MetricName = "MicroAccuracy", MaxTrials = 5, CancellationToken = cancel.Token, TrialCallback = _ => cancel.Cancel(),
        });
        Assert.AreEqual("Cancelled", one.StoppedBy);
        Assert.AreEqual(1, one.Trials.Count);
        Assert.IsNotNull(one.BestModel);
    }

    [TestMethod]
    public void BadSweepsAreRefusedNamingTheFix()
    {
        var ml = new MLContext(seed: 1);
        var data = Points(ml, 30, 1);
        var evaluator = SweepEvaluator.Multiclass(ml);
        SweepResult<SdcaMaximumEntropyMulticlassTrainer.Options> Run(SearchSpace<SdcaMaximumEntropyMulticlassTrainer.Options> space,
            SweepOptions options, IDataView? validation) => ParameterSweep.Run(ml, space,
            () => new SdcaMaximumEntropyMulticlassTrainer.Options(), o => ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(o),
            data, validation, evaluator, options);
        var space = new SearchSpace<SdcaMaximumEntropyMulticlassTrainer.Options>().Range("L2Regularization", 1e-4, 1, true);

        var empty = Assert.ThrowsExactly<ArgumentException>(() =>
            Run(new SearchSpace<SdcaMaximumEntropyMulticlassTrainer.Options>(), new SweepOptions { MetricName = "MicroAccuracy" }, data));
        StringAssert.Contains(empty.Message, "empty");
        var metric = Assert.ThrowsExactly<ArgumentException>(() => Run(space, new SweepOptions { MetricName = "Accuracy" }, data));
        StringAssert.Contains(metric.Message, "'Accuracy'");
        StringAssert.Contains(metric.Message, "MicroAccuracy, MacroAccuracy");
        Assert.ThrowsExactly<ArgumentNullException>(() => Run(space, new SweepOptions { MetricName = "LogLoss" }, null));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Run(space, new SweepOptions { MetricName = "LogLoss", Folds = 1 }, null));
        var folds = Assert.ThrowsExactly<ArgumentException>(() => ParameterSweep.Run(ml, new SearchSpace<InvertedTransformerOptions>()
            .Range("LearningRate", 1e-4, 1e-3), () => new InvertedTransformerOptions(), o => ml.Forecasting.Trainers.InvertedTransformer(o),
            data, null, SweepEvaluator.Forecasting(), new SweepOptions { MetricName = "MeanSquaredError", Folds = 3 }));
        StringAssert.Contains(folds.Message, "validation series");

        var noProperty = Assert.ThrowsExactly<ArgumentException>(() => space.Range("Learning", 0, 1));
        StringAssert.Contains(noProperty.Message, "no public settable property 'Learning'");
        var notNumeric = Assert.ThrowsExactly<ArgumentException>(() =>
            new SearchSpace<InvertedTransformerOptions>().Range("TimestampColumnName", 0, 1));
        StringAssert.Contains(notNumeric.Message, "Use Choice");
        var badCandidate = Assert.ThrowsExactly<ArgumentException>(() =>
            new SearchSpace<InvertedTransformerOptions>().Choice("Layers", "two"));
        StringAssert.Contains(badCandidate.Message, "'two'");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new SearchSpace<InvertedTransformerOptions>().Range("LearningRate", 0, 1, true));

        // A trial that fails is recorded with its error and the sweep goes on; when all fail the sweep says why.
        var failing = new SearchSpace<InvertedTransformerOptions>().Choice("Heads", 3);
        var all = Assert.ThrowsExactly<InvalidOperationException>(() => ParameterSweep.Run(ml, failing,
            () => InvertedTransformerTrainerTests.TinyOptions(), o => ml.Forecasting.Trainers.InvertedTransformer(o),
            ml.Data.LoadFromEnumerable(InvertedTransformerTrainerTests.Series(200)),
            ml.Data.LoadFromEnumerable(InvertedTransformerTrainerTests.Series(100)), SweepEvaluator.Forecasting(),
            new SweepOptions { MetricName = "MeanSquaredError", MaxTrials = 2 }));
        StringAssert.Contains(all.Message, "Every trial failed");
        StringAssert.Contains(all.Message, "Heads");
    }
}
