// Libtorch-free scoring sample: scores the models samples/OnnxExport exported, with Microsoft.ML's OnnxTransformer
// (ApplyOnnxModel) and ONNX Runtime only — no MLNet.Attention, TorchSharp or libtorch in this app or its output
// folder (checked below) — and compares every score with the one the TorchSharp model gave.
// Usage: dotnet run -c Release --project samples/OnnxScoring [exportDir, default onnx-output]
// Exit code: 0 when all outputs match (max |Δ| ≤ 1e-4) and the output folder holds no libtorch, else 1.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;

string exportDir = Path.GetFullPath(args.Length > 0 ? args[0] : "onnx-output");
if (!File.Exists(Path.Combine(exportDir, "image-classifier.onnx")))
{
    Console.Error.WriteLine($"No exported models in {exportDir}: run samples/OnnxExport first " +
        $"(dotnet run -c Release --project samples/OnnxExport -- {exportDir}).");
    return 1;
}
bool ok = CheckNoLibtorch();
var mlContext = new MLContext(seed: 1);
ok &= ScoreImages(mlContext, exportDir);
Console.WriteLine(ok ? "OK: every output matches the TorchSharp model's, scored without libtorch."
    : "FAILED: see the messages above.");
return ok ? 0 : 1;

// This app's own folder (what a deployment ships): no TorchSharp assembly, no libtorch library; and none loaded.
static bool CheckNoLibtorch()
{
    var files = Directory.GetFiles(AppContext.BaseDirectory, "*", SearchOption.AllDirectories);
    var torch = files.Where(f => Path.GetFileName(f).Contains("torch", StringComparison.OrdinalIgnoreCase) ||
        Path.GetFileName(f).StartsWith("MLNet.Attention.", StringComparison.Ordinal) &&
        !Path.GetFileName(f).StartsWith("MLNet.Attention.Samples.OnnxScoring", StringComparison.Ordinal)).ToArray();
    long bytes = files.Sum(f => new FileInfo(f).Length);
    Console.WriteLine($"Output folder {AppContext.BaseDirectory}: {files.Length} files, {bytes / (1024.0 * 1024):F0} MB, " +
        $"TorchSharp/libtorch/MLNet.Attention files: {torch.Length}");
    foreach (string f in torch) Console.Error.WriteLine($"  unexpected: {f}");
    return torch.Length == 0 && !AppDomain.CurrentDomain.GetAssemblies().Any(a =>
        a.GetName().Name is { } name && (name.StartsWith("TorchSharp", StringComparison.Ordinal) ||
        name.StartsWith("MLNet.Attention.", StringComparison.Ordinal) && name != "MLNet.Attention.Samples.OnnxScoring"));
}

static bool ScoreImages(MLContext mlContext, string exportDir)
{
    string onnx = Path.Combine(exportDir, "image-classifier.onnx"), images = Path.Combine(exportDir, "cifar10-subset");
    var expected = File.ReadLines(Path.Combine(exportDir, "image-expected.csv")).Skip(1).Select(l => l.Split(','))
        .ToDictionary(f => f[0], f => f[1..].Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray());

    // The graph's metadata says what it takes: the input's name, the image size, the class names in Score order.
    string input;
    string[] labels;
    int side;
    using (var session = new InferenceSession(onnx))
    {
        input = session.InputMetadata.Keys.Single();
        var meta = session.ModelMetadata.CustomMetadataMap;
        labels = JsonSerializer.Deserialize<string[]>(meta["labels"])!;
        side = int.Parse(meta["image"].Split('x')[1], CultureInfo.InvariantCulture);
    }
    var rows = expected.Keys.Select(p => new ImageRow { ImagePath = p }).ToArray();
    var data = mlContext.Data.LoadFromEnumerable(rows);
    var pipeline = mlContext.Transforms.LoadImages("Image", images, nameof(ImageRow.ImagePath))
        .Append(mlContext.Transforms.ResizeImages("Image", side, side))
        .Append(mlContext.Transforms.ExtractPixels(input, "Image"))     // planar RGB, 0–255: what the graph takes
        .Append(mlContext.Transforms.ApplyOnnxModel("Score", input, onnx));
    var model = pipeline.Fit(data);

    var clock = Stopwatch.StartNew();
    var scores = model.Transform(data).GetColumn<float[]>("Score").ToArray();
    double seconds = clock.Elapsed.TotalSeconds;
    double maxDelta = 0;
    int correct = 0;
    for (int i = 0; i < rows.Length; i++)
    {
        var want = expected[rows[i].ImagePath];
        for (int k = 0; k < want.Length; k++) maxDelta = Math.Max(maxDelta, Math.Abs(want[k] - scores[i][k]));
        string truth = Path.GetFileName(Path.GetDirectoryName(rows[i].ImagePath))!;
        if (labels[Array.IndexOf(scores[i], scores[i].Max())] == truth) correct++;
    }
    using var engine = mlContext.Model.CreatePredictionEngine<ImageRow, ImageScore>(model);
    engine.Predict(rows[0]);
    clock.Restart();
    foreach (var row in rows.Take(100)) engine.Predict(row);
    double latency = clock.Elapsed.TotalMilliseconds / 100;
    Console.WriteLine($"Image classifier ({labels.Length} classes, {side}×{side}): {rows.Length} test images, accuracy " +
        $"{(double)correct / rows.Length:P1}, max |ONNX − TorchSharp| Score = {maxDelta:E2}; Transform " +
        $"{rows.Length / seconds:F0} images/s (decoding included), PredictionEngine {latency:F2} ms/image");
    (model as IDisposable)?.Dispose();
    return maxDelta <= 1e-4;
}

/// <summary>An image to score.</summary>
public sealed class ImageRow
{
    public string ImagePath { get; set; } = "";
}

/// <summary>The graph's output.</summary>
public sealed class ImageScore
{
    public float[] Score { get; set; } = Array.Empty<float>();
}
