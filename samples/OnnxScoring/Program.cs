// Libtorch-free scoring sample: scores the models samples/OnnxExport exported, with Microsoft.ML's OnnxTransformer
// (ApplyOnnxModel) and ONNX Runtime only — no MLNet.Attention, TorchSharp or libtorch in this app or its output
// folder (checked below) — and compares every score with the one the TorchSharp model gave.
// Scores an image classifier (pixels from ML.NET's image transforms) and a forecaster (raw windows plus calendar
// features computed here), both through ApplyOnnxModel in an ML.NET pipeline and a PredictionEngine.
// Usage: dotnet run -c Release --project samples/OnnxScoring [exportDir, default onnx-output] [gpu]
//   gpu: score on CUDA device 0 (falling back to the CPU when it is not there); build with -p:OnnxRuntimeGpu=true so
//   that the app carries ONNX Runtime's CUDA package (Microsoft.ML.OnnxRuntime.Gpu.Linux: CUDA 13 and cuDNN 9).
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
if (args.Length > 1 && args[1] == "gpu")
{
    // ApplyOnnxModel without a device id takes the context's; FallbackToCpu: CPU when CUDA cannot be used.
    mlContext.GpuDeviceId = 0;
    mlContext.FallbackToCpu = true;
    var providers = OrtEnv.Instance().GetAvailableProviders();
    Console.WriteLine($"GPU requested; ONNX Runtime's providers: {string.Join(", ", providers)}" +
        (providers.Contains("CUDAExecutionProvider") ? "" : " (no CUDA provider in this build: scoring on the CPU; " +
        "build with -p:OnnxRuntimeGpu=true)"));
}
ok &= ScoreImages(mlContext, exportDir);
ok &= ScoreForecasts(mlContext, exportDir);
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

static bool ScoreForecasts(MLContext mlContext, string exportDir)
{
    string onnx = Path.Combine(exportDir, "forecaster.onnx");
    string lookbackInput, calendar;
    int lookback, horizon, variates, calendarWidth;
    TimeSpan step;
    using (var session = new InferenceSession(onnx))
    {
        var meta = session.ModelMetadata.CustomMetadataMap;
        lookbackInput = session.InputMetadata.Keys.First(k => k != "CalendarFeatures");
        lookback = int.Parse(meta["lookback"], CultureInfo.InvariantCulture);
        horizon = int.Parse(meta["horizon"], CultureInfo.InvariantCulture);
        variates = JsonSerializer.Deserialize<string[]>(meta["variates"])!.Length;
        calendar = meta["calendar"];
        calendarWidth = int.Parse(meta["calendar_features"], CultureInfo.InvariantCulture);
        step = TimeSpan.Parse(meta["frequency"], CultureInfo.InvariantCulture);
    }
    if (calendar != "Hourly")
        throw new NotSupportedException($"This sample computes hourly calendar features; the model uses {calendar}.");

    // A window: its last timestamp and L × N raw values. The graph scales them itself; the calendar features of the
    // L lookback steps are computed here (Time-Series-Library's "timeF", as the metadata's calendar names them).
    var windows = File.ReadLines(Path.Combine(exportDir, "forecast-windows.csv")).Select(line =>
    {
        var fields = line.Split(',');
        var last = DateTime.ParseExact(fields[0], "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
        var features = new float[lookback * calendarWidth];
        for (int t = 0; t < lookback; t++)
            HourlyCalendar(last - (lookback - 1 - t) * step, features.AsSpan(t * calendarWidth, calendarWidth));
        return new ForecastWindow
        {
            Lookback = fields[1..].Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray(),
            CalendarFeatures = features,
        };
    }).ToArray();
    var expected = File.ReadLines(Path.Combine(exportDir, "forecast-expected.csv"))
        .Select(l => l.Split(',').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray();

    var definition = SchemaDefinition.Create(typeof(ForecastWindow));
    definition[nameof(ForecastWindow.Lookback)].ColumnName = lookbackInput;
    definition[nameof(ForecastWindow.Lookback)].ColumnType =
        new VectorDataViewType(NumberDataViewType.Single, lookback * variates);
    definition[nameof(ForecastWindow.CalendarFeatures)].ColumnType =
        new VectorDataViewType(NumberDataViewType.Single, lookback * calendarWidth);
    var data = mlContext.Data.LoadFromEnumerable(windows, definition);
    var model = mlContext.Transforms.ApplyOnnxModel(new[] { "Forecast", "Lower", "Upper" },
        new[] { lookbackInput, "CalendarFeatures" }, onnx).Fit(data);

    var clock = Stopwatch.StartNew();
    var scored = model.Transform(data);
    var outputs = new[] { "Forecast", "Lower", "Upper" }.Select(c => scored.GetColumn<float[]>(c).ToArray()).ToArray();
    double seconds = clock.Elapsed.TotalSeconds;
    int width = horizon * variates;
    double maxDelta = 0, maxRelative = 0, covered = 0;
    for (int i = 0; i < windows.Length; i++)
        for (int o = 0; o < 3; o++)
            for (int k = 0; k < width; k++)
            {
                double want = expected[i][o * width + k], delta = Math.Abs(want - outputs[o][i][k]);
                maxDelta = Math.Max(maxDelta, delta);
                maxRelative = Math.Max(maxRelative, delta / (1 + Math.Abs(want)));
            }
    for (int i = 0; i < windows.Length; i++)
        for (int k = 0; k < width; k++)
            if (outputs[1][i][k] <= outputs[0][i][k] && outputs[0][i][k] <= outputs[2][i][k]) covered++;
    var engine = mlContext.Model.CreatePredictionEngine<ForecastWindow, ForecastOutput>(model,
        inputSchemaDefinition: definition);
    var prediction = new ForecastOutput();
    engine.Predict(windows[0], ref prediction);
    clock.Restart();
    foreach (var window in windows) engine.Predict(window, ref prediction);
    double latency = clock.Elapsed.TotalMilliseconds / windows.Length;
    Console.WriteLine($"Forecaster ({lookback} → {horizon}, {variates} variates, {calendar} calendar, intervals): " +
        $"{windows.Length} test windows, max |ONNX − TorchSharp| = {maxDelta:E2} (relative {maxRelative:E2}) over " +
        $"Forecast, Lower, Upper; Lower ≤ Forecast ≤ Upper in {covered / (windows.Length * width):P0}; Transform " +
        $"{windows.Length / seconds:F0} windows/s, PredictionEngine {latency:F2} ms/window");
    engine.Dispose();
    model.Dispose();
    return maxRelative <= 1e-4;
}

// Hour of day, day of week (Monday = 0), day of month, day of year, each scaled to [−0.5, 0.5].
static void HourlyCalendar(DateTime time, Span<float> into)
{
    into[0] = (float)(time.Hour / 23.0 - 0.5);
    into[1] = (float)(((int)time.DayOfWeek + 6) % 7 / 6.0 - 0.5);
    into[2] = (float)((time.Day - 1) / 30.0 - 0.5);
    into[3] = (float)((time.DayOfYear - 1) / 365.0 - 0.5);
}

/// <summary>A forecast window as the graph takes it.</summary>
public sealed class ForecastWindow
{
    public float[] Lookback { get; set; } = Array.Empty<float>();
    public float[] CalendarFeatures { get; set; } = Array.Empty<float>();
}

/// <summary>The graph's outputs.</summary>
public sealed class ForecastOutput
{
    public float[] Forecast { get; set; } = Array.Empty<float>();
    public float[] Lower { get; set; } = Array.Empty<float>();
    public float[] Upper { get; set; } = Array.Empty<float>();
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
