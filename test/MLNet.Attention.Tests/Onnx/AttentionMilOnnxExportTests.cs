using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNet.Attention.MultipleInstance;
using MLNet.Attention.OnnxExport;

namespace MLNet.Attention.Tests.OnnxExport;

/// <summary>ONNX export of the attention-MIL bag classifiers (ABMIL, ACMIL): ONNX Runtime's Score, Probability,
/// Attention and BranchAttention equal the transformer's columns on bags of 1, 7 and 50 instances (one graph, dynamic
/// bag and instance dimensions), ApplyOnnxModel scores the variable-size bag column in a pipeline, and what cannot be
/// exported is refused.</summary>
[TestClass]
public sealed class AttentionMilOnnxExportTests
{
    private const int D = 6;
    private const double Tolerance = 1e-5;

    public sealed class Bag
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public bool Label { get; set; }
        public string Class { get; set; } = "";
    }

    /// <summary>Bags of <paramref name="sizes"/> noise instances; a bag of class "a" ("b") holds one instance with
    /// feature 0 (1) raised by 3, "none" holds neither; Label = it holds one.</summary>
    private static Bag[] Bags(int seed, params int[] sizes)
    {
        var random = new Random(seed);
        return sizes.Select((n, b) =>
        {
            var values = new float[n * D];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
            string kind = new[] { "a", "b", "none" }[b % 3];
            if (kind != "none") values[random.Next(n) * D + (kind == "a" ? 0 : 1)] += 3f;
            return new Bag { Features = values, Label = kind != "none", Class = kind };
        }).ToArray();
    }

    private static int[] TrainingSizes(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => random.Next(2, 12)).ToArray();
    }

    private static AttentionMilOptions Options(MilArchitecture architecture, string label) => new()
    {
        Architecture = architecture, LabelColumnName = label, InstanceSize = D, InnerSize = 16, AttentionSize = 8,
        Branches = 3, TopK = 2, Dropout = 0.1, MaxEpochs = 3, BatchSize = 4, LearningRate = 3e-3,
        ValidationFraction = 0, EarlyStoppingPatience = null, Seed = 7, NumberOfThreads = 1,
    };

    private static AttentionMilModel Train(MLContext ml, MilArchitecture architecture, bool binary)
    {
        var data = ml.Data.LoadFromEnumerable(Bags(1, TrainingSizes(36, 2)));
        if (binary) return ml.BinaryClassification.Trainers.AttentionMil(Options(architecture, "Label")).Fit(data);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Class").Fit(data).Transform(data);
        return ml.MulticlassClassification.Trainers.AttentionMil(Options(architecture, "Class")).Fit(keyed);
    }

    /// <summary>ONNX Runtime on bags [bags, instances, D] → the named outputs, flattened.</summary>
    private static Dictionary<string, float[]> RunOrt(byte[] model, float[] values, long bags, string[] outputs,
        int width = D)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(model, options);
        long instances = values.Length / width / bags;
        using var value = OrtValue.CreateTensorValueFromMemory(values, new[] { bags, instances, width });
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, new[] { "Features" }, new[] { value }, outputs);
        return outputs.Select((name, i) => (name, results[i].GetTensorDataAsSpan<float>().ToArray()))
            .ToDictionary(p => p.name, p => p.Item2);
    }

    private static double MaxAbsDiff(float[] a, float[] b)
    {
        Assert.AreEqual(a.Length, b.Length);
        return a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
    }

    /// <summary>The transformer's columns, one bag per row, flattened per row.</summary>
    private static Dictionary<string, float[][]> Columns(MLContext ml, AttentionMilModel model, Bag[] bags,
        string[] columns)
    {
        var scored = model.Transform(ml.Data.LoadFromEnumerable(bags));
        return columns.ToDictionary(c => c, c => scored.Schema[c].Type is VectorDataViewType
            ? scored.GetColumn<float[]>(c).ToArray()
            : scored.GetColumn<float>(c).Select(v => new[] { v }).ToArray());
    }

    [TestMethod]
    [DataRow(MilArchitecture.GatedAttention, true)]
    [DataRow(MilArchitecture.GatedAttention, false)]
    [DataRow(MilArchitecture.Acmil, true)]
    [DataRow(MilArchitecture.Acmil, false)]
    public void OnnxRuntimeEqualsTheTransformOnBagsOfAnySize(MilArchitecture architecture, bool binary)
    {
        var ml = new MLContext(seed: 1);
        using var model = Train(ml, architecture, binary);
        var outputs = new List<string> { "Score", "Attention" };
        if (binary) outputs.Insert(1, "Probability");
        if (architecture == MilArchitecture.Acmil) outputs.Add("BranchAttention");
        var bags = Bags(3, 1, 7, 50, 7);
        var expected = Columns(ml, model, bags, outputs.ToArray());
        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);
        var onnx = stream.ToArray();

        double worst = 0;
        for (int b = 0; b < 3; b++)   // one bag per run: 1, 7 and 50 instances through the same graph
        {
            var actual = RunOrt(onnx, bags[b].Features, 1, outputs.ToArray());
            foreach (var name in outputs) worst = Math.Max(worst, MaxAbsDiff(expected[name][b], actual[name]));
        }
        // Two bags of 7 instances in one run: the bags dimension.
        var pair = RunOrt(onnx, bags[1].Features.Concat(bags[3].Features).ToArray(), 2, outputs.ToArray());
        foreach (var name in outputs)
            worst = Math.Max(worst, MaxAbsDiff(expected[name][1].Concat(expected[name][3]).ToArray(), pair[name]));
        Console.WriteLine($"{architecture} ({(binary ? "binary" : "multiclass")}): max |ORT − Transform| over " +
            $"{string.Join(", ", outputs)} on bags of 1, 7, 50 (and 2 × 7) instances = {worst:E2}");
        Assert.IsTrue(worst <= Tolerance, $"max |Δ| = {worst}");
        Assert.AreEqual(1f, expected["Attention"][0].Single(), 1e-6f);
        Assert.IsTrue(expected["Attention"][2].Max() - expected["Attention"][2].Min() > 1e-4,
            "the attention should differ between the instances of a bag");
    }

    /// <summary>ML.NET 5 feeds a variable-size vector column to an input with dynamic dimensions as one
    /// [1, N, D] tensor per row, so the bag column goes to ApplyOnnxModel as it is.</summary>
    [TestMethod]
    public void ApplyOnnxModelScoresBagsOfAnySizeFoundInAPipeline()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Bags(1, TrainingSizes(36, 2)));
        using var chain = ml.Transforms.Conversion.MapValueToKey("Class")
            .Append(ml.MulticlassClassification.Trainers.AttentionMil(Options(MilArchitecture.Acmil, "Class")))
            .Fit(data);
        var test = ml.Data.LoadFromEnumerable(Bags(4, 1, 7, 50, 3, 12, 7));
        var scored = chain.Transform(test);
        string path = Path.Combine(Path.GetTempPath(), $"onnx-mil-{Environment.ProcessId}.onnx");
        try
        {
            ml.Model.ExportToOnnx(chain, path);
            var columns = new[] { "Score", "Attention", "BranchAttention" };
            var onnx = ml.Transforms.ApplyOnnxModel(columns, new[] { "Features" }, path).Fit(test);
            var applied = onnx.Transform(test);
            double worst = 0;
            foreach (var column in columns)
            {
                var expected = scored.GetColumn<float[]>(column).ToArray();
                var actual = applied.GetColumn<float[]>(column).ToArray();
                worst = Math.Max(worst, expected.Zip(actual, MaxAbsDiff).Max());
            }
            Console.WriteLine($"ACMIL ApplyOnnxModel vs Transform (bags of 1, 7, 50, 3, 12, 7): max |Δ| = {worst:E2}");
            Assert.IsTrue(worst <= Tolerance, $"max |Δ| = {worst}");
            (onnx as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void TheGraphDeclaresDynamicBagsAndInstancesAndItsMetadata()
    {
        var ml = new MLContext(seed: 1);
        using var model = Train(ml, MilArchitecture.Acmil, binary: false);
        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);
        using var session = new InferenceSession(stream.ToArray());
        var input = session.InputMetadata["Features"];
        CollectionAssert.AreEqual(new[] { -1, -1, D }, input.Dimensions);
        CollectionAssert.AreEqual(new[] { "bags", "instances", "" }, input.SymbolicDimensions);
        CollectionAssert.AreEquivalent(new[] { "Score", "Attention", "BranchAttention" },
            session.OutputMetadata.Keys.ToArray());
        var metadata = session.ModelMetadata.CustomMetadataMap;
        Assert.AreEqual("[\"a\",\"b\",\"none\"]", metadata["labels"]);
        Assert.AreEqual("Acmil", metadata["head"]);
        Assert.AreEqual(D.ToString(), metadata["feature_width"]);
        Assert.AreEqual("3", metadata["branches"]);
    }

    [TestMethod]
    public void ADisposedModelIsRefused()
    {
        var ml = new MLContext(seed: 1);
        var model = Train(ml, MilArchitecture.GatedAttention, binary: true);
        model.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => model.ExportToOnnx(new MemoryStream()));
    }

    /// <summary>Bags of 16 × 16 grey images through the LeNet encoder (pooled standardisation in front).</summary>
    [TestMethod]
    [DataRow(MilArchitecture.GatedAttention)]
    [DataRow(MilArchitecture.Acmil)]
    public void TheLeNetInstanceEncoderExportsWithTheAttention(MilArchitecture architecture)
    {
        const int side = 16, pixels = side * side;
        var ml = new MLContext(seed: 1);
        var random = new Random(1);
        Bag Images(int n, bool positive)
        {
            var values = Enumerable.Range(0, n * pixels).Select(_ => (float)random.NextDouble() * 0.5f).ToArray();
            if (positive)
            {
                int target = random.Next(n), top = random.Next(side - 4), left = random.Next(side - 4);
                for (int y = top; y < top + 4; y++)
                    for (int x = left; x < left + 4; x++) values[target * pixels + y * side + x] = 2f;
            }
            return new Bag { Features = values, Label = positive };
        }
        var train = Enumerable.Range(0, 8).Select(b => Images(2 + b % 4, b % 2 == 0)).ToArray();
        var options = Options(architecture, "Label");
        options.InstanceEncoder = MilInstanceEncoder.LeNet;
        options.InstanceImageHeight = side;
        options.InstanceImageWidth = side;
        options.InstanceSize = pixels;
        options.InnerSize = 8;
        options.MaxEpochs = 2;
        using var model = ml.BinaryClassification.Trainers.AttentionMil(options).Fit(ml.Data.LoadFromEnumerable(train));
        var bags = new[] { Images(1, true), Images(3, false), Images(9, true) };
        var outputs = new List<string> { "Score", "Probability", "Attention" };
        if (architecture == MilArchitecture.Acmil) outputs.Add("BranchAttention");
        var expected = Columns(ml, model, bags, outputs.ToArray());
        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);
        double worst = 0;
        for (int b = 0; b < bags.Length; b++)
        {
            var actual = RunOrt(stream.ToArray(), bags[b].Features, 1, outputs.ToArray(), pixels);
            foreach (var name in outputs) worst = Math.Max(worst, MaxAbsDiff(expected[name][b], actual[name]));
        }
        Console.WriteLine($"LeNet + {architecture}: max |ORT − Transform| over {string.Join(", ", outputs)} on bags " +
            $"of 1, 3, 9 images = {worst:E2}");
        Assert.IsTrue(worst <= Tolerance, $"max |Δ| = {worst}");
    }

    [TestMethod]
    public void ANetworkInTrainingModeIsRefused()
    {
        var ml = new MLContext(seed: 1);
        using var model = Train(ml, MilArchitecture.Acmil, binary: true);
        model.Network.train();
        try
        {
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => model.ExportToOnnx(new MemoryStream()));
            StringAssert.Contains(e.Message, "training mode");
        }
        finally
        {
            model.Network.eval();
        }
    }

    [TestMethod]
    public void AModuleWithoutAnExporterIsRefusedByItsPath()
    {
        var ml = new MLContext(seed: 1);
        using var model = Train(ml, MilArchitecture.GatedAttention, binary: true);
        var registry = new OnnxModuleRegistry();   // no exporter at all
        var e = Assert.ThrowsExactly<NotSupportedException>(() => OnnxModelExport.AttentionMil(model, registry));
        StringAssert.Contains(e.Message, "MilDimensionReduction");
        StringAssert.Contains(e.Message, "'mil.dimreduction'");
    }

    [TestMethod]
    public void ASavedAndLoadedModelExportsTheSameGraph()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Bags(1, TrainingSizes(36, 2)));
        using var model = ml.BinaryClassification.Trainers.AttentionMil(Options(MilArchitecture.Acmil, "Label"))
            .Fit(data);
        using var original = new MemoryStream();
        model.ExportToOnnx(original);
        string path = Path.Combine(Path.GetTempPath(), $"mil-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            try
            {
                using var again = new MemoryStream();
                ml.Model.ExportToOnnx(loaded, again);
                CollectionAssert.AreEqual(original.ToArray(), again.ToArray());
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
