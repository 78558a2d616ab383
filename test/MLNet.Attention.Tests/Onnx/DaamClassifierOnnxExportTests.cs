using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNet.Attention.Classification;
using MLNet.Attention.Tests.Classification;
using Row = MLNet.Attention.Tests.Classification.DensityAdaptiveAttentionClassifierTests.Row;

namespace MLNet.Attention.Tests.OnnxExport;

/// <summary>ONNX export of the GAAM/DAAM classifier: ONNX Runtime's Score (and a binary model's Probability) equals
/// the transformer's, ApplyOnnxModel in a pipeline gives the same Score, and the MHA baseline head is refused.</summary>
[TestClass]
public sealed class DaamClassifierOnnxExportTests
{
    private const double Tolerance = 1e-5;

    public sealed class BinaryRow
    {
        [VectorType(16)] public float[] Features { get; set; } = new float[16];
        public bool Label { get; set; }
    }

    private static DensityAdaptiveAttentionClassifierOptions Options(int layers, int heads, ClassifierHead head) => new()
    {
        Layers = layers, Heads = heads, Head = head, Hidden = 8, MaxEpochs = 3, BatchSize = 16, LearningRate = 3e-3,
        NumberOfThreads = 1, Seed = 3, EarlyStoppingPatience = null, ValidationFraction = 0,
    };

    private static float[] RunOrt(byte[] model, string input, float[] rows, int n, string output)
    {
        using var session = new InferenceSession(model, new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 });
        using var value = OrtValue.CreateTensorValueFromMemory(rows, new long[] { n, rows.Length / n });
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, new[] { input }, new[] { value }, new[] { output });
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static double MaxAbsDiff(float[] a, float[] b)
    {
        Assert.AreEqual(a.Length, b.Length);
        return a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
    }

    [TestMethod]
    [DataRow(4, 2, ClassifierHead.Daam)]     // 4 layers × 4 features (2 × 2 view), two DAAM heads
    [DataRow(2, 1, ClassifierHead.Daam)]     // 2 layers × 8 features (2 × 4 view), one head
    [DataRow(4, 1, ClassifierHead.Linear)]
    public void OnnxRuntimeScoresEqualTheTransformer(int layers, int heads, ClassifierHead head)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(DensityAdaptiveAttentionClassifierTests.Blobs(90, 1));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        using var model = ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(Options(layers, heads, head))
            .Fit(keyed);
        var rows = DensityAdaptiveAttentionClassifierTests.Blobs(12, 2);
        var expected = model.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score")
            .SelectMany(s => s).ToArray();

        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);
        var actual = RunOrt(stream.ToArray(), "Features", rows.SelectMany(r => r.Features).ToArray(), rows.Length, "Score");
        double delta = MaxAbsDiff(expected, actual);
        Console.WriteLine($"DAAM classifier ({head}, {layers} layers, {heads} heads): max |ORT − Transform| Score = " +
            $"{delta:E2} over {rows.Length} rows × 3 classes");
        Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");
        Assert.IsTrue(expected.Max() - expected.Min() > 1e-3, "the scores should differ between classes and rows");
    }

    [TestMethod]
    public void ABinaryModelExportsScoreAndProbability()
    {
        var ml = new MLContext(seed: 1);
        BinaryRow[] Rows(int n, int seed) => DensityAdaptiveAttentionClassifierTests.Blobs(n, seed)
            .Select(r => new BinaryRow { Features = r.Features, Label = r.Label == "cat" }).ToArray();
        using var model = ml.BinaryClassification.Trainers.DensityAdaptiveAttention(Options(4, 2, ClassifierHead.Daam))
            .Fit(ml.Data.LoadFromEnumerable(Rows(90, 1)));
        var rows = Rows(10, 2);
        var scored = model.Transform(ml.Data.LoadFromEnumerable(rows));
        var bytes = new MemoryStream();
        model.ExportToOnnx(bytes);
        var pixels = rows.SelectMany(r => r.Features).ToArray();
        foreach (var column in new[] { "Score", "Probability" })
        {
            var expected = scored.GetColumn<float>(column).ToArray();
            var actual = RunOrt(bytes.ToArray(), "Features", pixels, rows.Length, column);
            double delta = MaxAbsDiff(expected, actual);
            Console.WriteLine($"Binary DAAM classifier: max |ORT − Transform| {column} = {delta:E2}");
            Assert.IsTrue(delta <= Tolerance, $"{column}: max |Δ| = {delta}");
        }
    }

    [TestMethod]
    public void ApplyOnnxModelInAPipelineGivesTheTransformersScore()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(DensityAdaptiveAttentionClassifierTests.Blobs(90, 1));
        using var chain = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(Options(4, 2, ClassifierHead.Daam)))
            .Fit(data);
        var test = ml.Data.LoadFromEnumerable(DensityAdaptiveAttentionClassifierTests.Blobs(9, 3));
        var expected = chain.Transform(test).GetColumn<float[]>("Score").ToArray();
        string path = Path.Combine(Path.GetTempPath(), $"onnx-daam-{Environment.ProcessId}.onnx");
        try
        {
            ml.Model.ExportToOnnx(chain, path);
            var onnx = ml.Transforms.ApplyOnnxModel("Score", "Features", path).Fit(test);
            var actual = onnx.Transform(test).GetColumn<float[]>("Score").ToArray();
            double delta = expected.Zip(actual, MaxAbsDiff).Max();
            Console.WriteLine($"DAAM ApplyOnnxModel vs Transform: max |Δ| = {delta:E2}");
            Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");
            (onnx as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>The MHA baseline head (layer embedding, self-attention with a residual, mean over the layers,
    /// Linear): ONNX Runtime's Score equals the transformer's, multiclass and binary.</summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void TheMultiHeadAttentionBaselineExportsEqually(int attentionHeads)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(DensityAdaptiveAttentionClassifierTests.Blobs(60, 1));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var options = Options(4, 1, ClassifierHead.MultiHeadAttention);
        options.AttentionHeads = attentionHeads;
        using var model = ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(options).Fit(keyed);
        var rows = DensityAdaptiveAttentionClassifierTests.Blobs(12, 2);
        var expected = model.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score")
            .SelectMany(s => s).ToArray();
        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);
        var actual = RunOrt(stream.ToArray(), "Features", rows.SelectMany(r => r.Features).ToArray(), rows.Length,
            "Score");
        double delta = MaxAbsDiff(expected, actual);
        Console.WriteLine($"DAAM classifier (MHA baseline, {attentionHeads} heads): max |ORT − Transform| Score = " +
            $"{delta:E2}");
        Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");
        Assert.IsTrue(expected.Max() - expected.Min() > 1e-3, "the scores should differ between classes and rows");

        var binaryData = ml.Data.LoadFromEnumerable(DensityAdaptiveAttentionClassifierTests.Blobs(60, 1)
            .Select(r => new BinaryRow { Features = r.Features, Label = r.Label == "cat" }).ToArray());
        using var binary = ml.BinaryClassification.Trainers.DensityAdaptiveAttention(options).Fit(binaryData);
        var binaryRows = ml.Data.LoadFromEnumerable(rows.Select(r => new BinaryRow { Features = r.Features }).ToArray());
        var probability = binary.Transform(binaryRows).GetColumn<float>("Probability").ToArray();
        using var binaryStream = new MemoryStream();
        binary.ExportToOnnx(binaryStream);
        var onnxProbability = RunOrt(binaryStream.ToArray(), "Features", rows.SelectMany(r => r.Features).ToArray(),
            rows.Length, "Probability");
        Assert.IsTrue(MaxAbsDiff(probability, onnxProbability) <= Tolerance);
    }
}
