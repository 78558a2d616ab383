using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Classification;

namespace MLNet.Attention.Tests.Classification;

/// <summary>The DAAM classifier through ML.NET's public API: pipelines, evaluators, engines, save/load, bad input.</summary>
[TestClass]
public sealed class DensityAdaptiveAttentionClassifierTests
{
    private const int D = 16;

    public sealed class Row
    {
        [VectorType(D)] public float[] Features { get; set; } = new float[D];
        public string Label { get; set; } = "";
    }

    public sealed class Prediction
    {
        public string PredictedLabel { get; set; } = "";
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    /// <summary>Three Gaussian blobs in 16 dimensions named "cat", "dog", "owl".</summary>
    internal static Row[] Blobs(int rows, int seed)
    {
        var rng = new Random(seed);
        string[] names = { "cat", "dog", "owl" };
        return Enumerable.Range(0, rows).Select(r =>
        {
            int c = r % 3;
            var f = new float[D];
            for (int k = 0; k < D; k++) f[k] = (float)((k % 3 == c ? 2.0 : 0.0) + 0.6 * Normal(rng));
            return new Row { Features = f, Label = names[c] };
        }).ToArray();
    }

    private static double Normal(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    private static DensityAdaptiveAttentionClassifierOptions Tiny() => new()
    {
        // 16 features as 4 stacked "layers" of 4: the density attention weighs layers against each other (with a single
        // layer its weights are all 1).
        Layers = 4, Hidden = 8, MaxEpochs = 8, BatchSize = 16, LearningRate = 3e-3, NumberOfThreads = 1, Seed = 3,
        EarlyStoppingPatience = null,
    };

    [TestMethod]
    public void TrainsEvaluatesPredictsAndRoundTripsAsAnMLNetMulticlassTrainer()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Blobs(240, 1));
        var test = ml.Data.LoadFromEnumerable(Blobs(90, 2));
        var reports = new List<MLNet.Attention.Engine.EpochReport>();
        var options = Tiny();
        options.EpochCallback = reports.Add;
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var model = pipeline.Fit(train);
        Assert.AreEqual(8, reports.Count);
        Assert.IsTrue(reports[^1].ValidationMetrics.ContainsKey("Accuracy"), "validation accuracy is reported");

        var scored = model.Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.IsTrue(metrics.MacroAccuracy > 0.9, $"macro accuracy {metrics.MacroAccuracy}");
        Assert.AreEqual(3, metrics.ConfusionMatrix.NumberOfClasses);
        // The score column carries the class names as slot names, as ML.NET's own classifiers do.
        VBuffer<ReadOnlyMemory<char>> slots = default;
        scored.Schema["Score"].GetSlotNames(ref slots);
        CollectionAssert.AreEqual(new[] { "cat", "dog", "owl" }, slots.DenseValues().Select(s => s.ToString()).ToArray());

        using var engine = ml.Model.CreatePredictionEngine<Row, Prediction>(model);
        var sample = Blobs(3, 9);
        var predictions = sample.Select(r => engine.Predict(r)).ToArray();
        CollectionAssert.AreEqual(sample.Select(r => r.Label).ToArray(), predictions.Select(p => p.PredictedLabel).ToArray());
        Assert.IsTrue(predictions.All(p => p.Score.Length == 3 && Math.Abs(p.Score.Sum() - 1) < 1e-5));

        var path = Path.Combine(Path.GetTempPath(), $"daam-{Environment.ProcessId}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var loaded = ml.Model.Load(path, out _);
            var before = scored.GetColumn<float[]>("Score").ToArray();
            var after = loaded.Transform(test).GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i]);
            (loaded as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
        (model as IDisposable)?.Dispose();
    }

    [TestMethod]
    public void CrossValidatesAndGivesTheImportanceFactor()
    {
        var ml = new MLContext(seed: 2);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Blobs(150, 3)))
            .Transform(ml.Data.LoadFromEnumerable(Blobs(150, 3)));
        var options = Tiny();
        options.MaxEpochs = 4;
        options.ValidationFraction = 0;
        var folds = ml.MulticlassClassification.CrossValidate(data, ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(options), numberOfFolds: 2);
        Assert.AreEqual(2, folds.Count);
        Assert.IsTrue(folds.All(f => f.Metrics.MicroAccuracy > 0.6), string.Join(", ", folds.Select(f => f.Metrics.MicroAccuracy)));

        using var model = ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(options).Fit(data);
        var factor = model.ImportanceFactor(data);
        Assert.AreEqual(4, factor.GetLength(0));
        Assert.AreEqual(D / 4, factor.GetLength(1));
        var values = factor.Cast<float>().ToArray();
        Assert.AreEqual(0f, values.Min(), 1e-6f);
        Assert.AreEqual(1f, values.Max(), 1e-6f);
    }

    [TestMethod]
    public void BadInputGetsAnErrorNamingTheColumnAndTheFix()
    {
        var ml = new MLContext(seed: 3);
        var rows = ml.Data.LoadFromEnumerable(Blobs(60, 4));
        var trainer = ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(Tiny());
        // Label not a Key.
        var notKey = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(rows));
        StringAssert.Contains(notKey.Message, "MapValueToKey(\"Label\")");
        // One class only.
        var oneClass = ml.Data.LoadFromEnumerable(Blobs(60, 4).Where(r => r.Label == "cat"));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(oneClass).Transform(oneClass);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Fit(keyed)).Message, "only one class ('cat')");
        // A class with no training row (key map fitted on more data than the training rows).
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(rows);
        var noOwl = keys.Transform(ml.Data.LoadFromEnumerable(Blobs(60, 4).Where(r => r.Label != "owl")));
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Fit(noOwl)).Message, "'owl'");
        // Empty view.
        var empty = keys.Transform(ml.Data.LoadFromEnumerable(Array.Empty<Row>()));
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Fit(empty)).Message, "no rows");
        // Missing feature column.
        var options = Tiny();
        options.FeatureColumnName = "Pixels";
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(options).Fit(keys.Transform(rows))).Message, "'Pixels' was not found");
        // NaN features name the column and the row.
        var nanRows = Blobs(60, 4);
        nanRows[7].Features[2] = float.NaN;
        var nan = keys.Transform(ml.Data.LoadFromEnumerable(nanRows));
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Fit(nan)).Message,
            "Column 'Features' has a non-finite value (NaN) at row 7, element 2");
        // Wrong vector size at scoring.
        using var model = trainer.Fit(keys.Transform(rows));
        var wide = ml.Data.LoadFromEnumerable(new[] { new { Features = new float[D + 1] } }.Select(x => new WideRow { Features = x.Features }));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(wide)).Message, "Column 'Features'");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new DensityAdaptiveAttentionClassifierOptions { Heads = 3, Layers = 4 }.Validate()).Message, "Heads");
    }

    [TestMethod]
    [DataRow(ClassifierHead.Daam)]
    [DataRow(ClassifierHead.Linear)]
    [DataRow(ClassifierHead.MultiHeadAttention)]
    public void EveryHeadTrainsOnStackedLayersAndRoundTrips(ClassifierHead head)
    {
        // Vector<Single, 4 layers, 4 features>: the class is in which features are high, in every layer.
        var ml = new MLContext(seed: 11);
        var train = ml.Data.LoadFromEnumerable(Blobs(240, 21));
        var test = ml.Data.LoadFromEnumerable(Blobs(90, 22));
        var options = Tiny();
        options.Head = head;
        options.AttentionHeads = 2;   // divides D = 4
        if (head == ClassifierHead.MultiHeadAttention)
        {
            // Its mean over the layers blurs which layer a high value came from; the layer embedding and the
            // attention have to learn it back, which takes more steps than the other heads need.
            options.MaxEpochs = 30;
            options.LearningRate = 1e-2;
        }
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(options)).Fit(train);
        var classifier = model.LastTransformer;
        Assert.AreEqual(head, classifier.Head);
        Assert.AreEqual(head, classifier.Config.Head);
        Assert.AreEqual(2, classifier.Config.AttentionHeads);
        Type expected = head switch
        {
            ClassifierHead.Daam => typeof(MLNet.Attention.Gaussian.DaamClassifier),
            ClassifierHead.Linear => typeof(MLNet.Attention.Gaussian.LinearLayerClassifier),
            _ => typeof(MLNet.Attention.Gaussian.AttentionLayerClassifier),
        };
        Assert.IsInstanceOfType(classifier.Network, expected);
        var scored = model.Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.IsTrue(metrics.MacroAccuracy > 0.9, $"{head}: macro accuracy {metrics.MacroAccuracy} on unseen rows");

        if (head == ClassifierHead.Daam)
            Assert.AreEqual(4, classifier.ImportanceFactor(test).GetLength(0));
        else
        {
            var error = Assert.ThrowsExactly<InvalidOperationException>(() => classifier.ImportanceFactor(test));
            StringAssert.Contains(error.Message, $"Head = {head}");
            StringAssert.Contains(error.Message, "Head = ClassifierHead.Daam");
        }

        var path = Path.Combine(Path.GetTempPath(), $"daam-{head}-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var loaded = ml.Model.Load(path, out _);
            var loadedClassifier = ((TransformerChain<ITransformer>)loaded).OfType<DensityAdaptiveAttentionClassifierModel>().Single();
            Assert.AreEqual(classifier.Config, loadedClassifier.Config);
            Assert.IsInstanceOfType(loadedClassifier.Network, expected);
            var before = scored.GetColumn<float[]>("Score").ToArray();
            var after = loaded.Transform(test).GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i]);
            (loaded as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
        model.Dispose();
    }

    [TestMethod]
    public void AttentionHeadsThatDoNotDivideTheLayerWidthAreRefusedNamingTheColumn()
    {
        var ml = new MLContext(seed: 12);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Blobs(30, 1)))
            .Transform(ml.Data.LoadFromEnumerable(Blobs(30, 1)));
        var options = Tiny();
        options.Head = ClassifierHead.MultiHeadAttention;
        options.AttentionHeads = 3;   // D = 16 / 4 layers = 4
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(options).Fit(data));
        StringAssert.Contains(error.Message, "AttentionHeads = 3 must divide the per-layer feature size D = 4 of column 'Features'");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new DensityAdaptiveAttentionClassifierOptions { Head = (ClassifierHead)7 }.Validate()).Message, "Head must be");
    }

    [TestMethod]
    public void AModelSavedBeforeTheHeadOptionLoadsAsADaamHeadAndScoresAsBefore()
    {
        string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);
        var expected = File.ReadAllLines(Fixture("daam-v1.scores.txt")).Single(l => l.StartsWith("score ")).Split(' ').Skip(1)
            .Select(h => BitConverter.Int32BitsToSingle(int.Parse(h, System.Globalization.NumberStyles.HexNumber))).ToArray();
        var ml = new MLContext(seed: 1);
        var test = ml.Data.LoadFromEnumerable(Blobs(30, 2));
        int threads = TorchSharp.torch.get_num_threads();
        TorchSharp.torch.set_num_threads(1);   // as when the fixture was written
        string resaved = Path.Combine(Path.GetTempPath(), $"daam-v2-{Guid.NewGuid():N}.zip");
        try
        {
            var v1 = ml.Model.Load(Fixture("daam-v1.zip"), out var schema);
            var classifier = ((TransformerChain<ITransformer>)v1).OfType<DensityAdaptiveAttentionClassifierModel>().Single();
            Assert.AreEqual(new DaamClassifierConfig(4, 4, 3, 2, 2, Heads: 2, Hidden: 4, InitialVariance: 2.0,
                ClassifierHead.Daam, AttentionHeads: 8), classifier.Config);
            var scores = v1.Transform(test).GetColumn<float[]>("Score").SelectMany(v => v).ToArray();
            Assert.AreEqual(expected.Length, scores.Length);
            for (int i = 0; i < scores.Length; i++) Assert.AreEqual(expected[i], scores[i], 1e-5f, $"score[{i}]");
            Assert.AreEqual(4, classifier.ImportanceFactor(test).GetLength(0));

            ml.Model.Save(v1, schema, resaved);   // payload version 2
            var v2 = new MLContext().Model.Load(resaved, out _);
            Assert.AreEqual(classifier.Config, ((TransformerChain<ITransformer>)v2).OfType<DensityAdaptiveAttentionClassifierModel>().Single().Config);
            CollectionAssert.AreEqual(scores, v2.Transform(test).GetColumn<float[]>("Score").SelectMany(v => v).ToArray());
            (v1 as IDisposable)?.Dispose();
            (v2 as IDisposable)?.Dispose();
        }
        finally
        {
            TorchSharp.torch.set_num_threads(threads);
            File.Delete(resaved);
        }
    }

    public sealed class BinaryRow
    {
        [VectorType(D)] public float[] Features { get; set; } = new float[D];
        public bool Label { get; set; }
    }

    public sealed class BinaryPrediction
    {
        public bool PredictedLabel { get; set; }
        public float Probability { get; set; }
        public float Score { get; set; }
    }

    [TestMethod]
    public void BinaryTrainerGivesScoreProbabilityAndABooleanPrediction()
    {
        var ml = new MLContext(seed: 5);
        BinaryRow[] Rows(int n, int seed) => Blobs(n, seed).Where(r => r.Label != "owl")
            .Select(r => new BinaryRow { Features = r.Features, Label = r.Label == "dog" }).ToArray();
        var train = ml.Data.LoadFromEnumerable(Rows(240, 1));
        var test = ml.Data.LoadFromEnumerable(Rows(120, 2));
        var model = ml.BinaryClassification.Trainers.DensityAdaptiveAttention(Tiny()).Fit(train);
        Assert.IsTrue(model.IsBinary);
        var scored = model.Transform(test);
        Assert.AreEqual(BooleanDataViewType.Instance, scored.Schema["PredictedLabel"].Type);
        var metrics = ml.BinaryClassification.Evaluate(scored);
        Assert.IsTrue(metrics.AreaUnderRocCurve > 0.95 && metrics.Accuracy > 0.9, $"AUC {metrics.AreaUnderRocCurve}, accuracy {metrics.Accuracy}");
        Assert.IsTrue(ml.BinaryClassification.EvaluateNonCalibrated(scored).AreaUnderRocCurve > 0.95);

        using var engine = ml.Model.CreatePredictionEngine<BinaryRow, BinaryPrediction>(model);
        foreach (var row in Rows(12, 7))
        {
            var p = engine.Predict(row);
            Assert.AreEqual(row.Label, p.PredictedLabel);
            Assert.AreEqual(1 / (1 + Math.Exp(-p.Score)), p.Probability, 1e-5, "Probability = sigmoid(Score)");
        }
        var folds = ml.BinaryClassification.CrossValidateNonCalibrated(train, ml.BinaryClassification.Trainers.DensityAdaptiveAttention(Tiny()), numberOfFolds: 2);
        Assert.IsTrue(folds.All(f => f.Metrics.AreaUnderRocCurve > 0.9));

        var path = Path.Combine(Path.GetTempPath(), $"daam-binary-{Environment.ProcessId}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            using var loaded = (DensityAdaptiveAttentionClassifierModel)ml.Model.Load(path, out _);
            Assert.IsTrue(loaded.IsBinary);
            CollectionAssert.AreEqual(scored.GetColumn<float>("Probability").ToArray(), loaded.Transform(test).GetColumn<float>("Probability").ToArray());
        }
        finally
        {
            File.Delete(path);
        }
        model.Dispose();

        // Three classes cannot train a binary classifier.
        var threeClasses = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Blobs(30, 1)))
            .Transform(ml.Data.LoadFromEnumerable(Blobs(30, 1)));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.BinaryClassification.Trainers.DensityAdaptiveAttention(Tiny()).Fit(threeClasses)).Message, "needs a Boolean label");
    }

    public sealed class WideRow
    {
        [VectorType(D + 1)] public float[] Features { get; set; } = new float[D + 1];
    }
}
