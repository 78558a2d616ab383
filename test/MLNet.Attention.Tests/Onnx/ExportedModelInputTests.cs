using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNet.Attention.Classification;
using MLNet.Attention.Tests.Classification;

namespace MLNet.Attention.Tests.OnnxExport;

/// <summary>Scoring an exported graph with inputs of the wrong shape fails with a message that names the graph's input,
/// the size it expects and the size it got, on both routes (ApplyOnnxModel, ONNX Runtime). The scoring app does not
/// reference this pack, so these are ML.NET's and ONNX Runtime's own messages: what the export controls is that the
/// graph's input carries the model's column name and a fixed feature size next to the dynamic batch.</summary>
[TestClass]
public sealed class ExportedModelInputTests
{
    public sealed class ShortRow
    {
        [VectorType(10)] public float[] Features { get; set; } = new float[10];
    }

    [TestMethod]
    public void WrongInputShapesAreNamedOnBothScoringRoutes()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(DensityAdaptiveAttentionClassifierTests.Blobs(60, 1));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        using var model = ml.MulticlassClassification.Trainers.DensityAdaptiveAttention(
            new DensityAdaptiveAttentionClassifierOptions
            {
                Layers = 4, Heads = 2, Hidden = 8, MaxEpochs = 1, BatchSize = 16, ValidationFraction = 0,
                EarlyStoppingPatience = null, NumberOfThreads = 1,
            }).Fit(keyed);
        string path = Path.Combine(Path.GetTempPath(), $"onnx-shape-{Environment.ProcessId}.onnx");
        try
        {
            model.ExportToOnnx(path);
            var wrong = ml.Data.LoadFromEnumerable(new[] { new ShortRow() });
            var mlnet = Assert.ThrowsExactly<InvalidOperationException>(() =>
                ml.Transforms.ApplyOnnxModel("Score", "Features", path).Fit(wrong).Transform(wrong)
                    .GetColumn<float[]>("Score").ToArray());
            Console.WriteLine($"ApplyOnnxModel: {mlnet.GetType().Name}: {mlnet.Message}");
            StringAssert.Contains(mlnet.Message, "Input 'Features' has shape 1,16, but input data is of length 10");

            using var session = new InferenceSession(path);
            using var value = OrtValue.CreateTensorValueFromMemory(new float[10], new long[] { 1, 10 });
            using var runOptions = new RunOptions();
            var ort = Assert.ThrowsExactly<OnnxRuntimeException>(() =>
                session.Run(runOptions, new[] { "Features" }, new[] { value }, new[] { "Score" }).Dispose());
            Console.WriteLine($"ONNX Runtime: {ort.Message}");
            StringAssert.Contains(ort.Message, "invalid dimensions for input: Features");
            StringAssert.Contains(ort.Message, "Got: 10 Expected: 16");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
