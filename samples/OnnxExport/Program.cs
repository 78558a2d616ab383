// ONNX export sample, the training side of a libtorch-free deployment: trains an ELA-MobileNetV2 image classifier on
// the shipped CIFAR-10 subset and an iTransformer forecaster (with 90 % prediction intervals) on the shipped ETTh1,
// exports both with mlContext.Model.ExportToOnnx, and writes the transformers' own outputs so that
// samples/OnnxScoring (Microsoft.ML + OnnxTransformer only) can check that it gets the same.
// Usage: dotnet run -c Release --project samples/OnnxExport [outputDir, default onnx-output] [epochs, default 3]
//        [training images per class, default all 250]
using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention;
using MLNet.Attention.Classification;
using MLNet.Attention.Engine;
using MLNet.Attention.Forecasting;
using KeyOrdinality = Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality;

var clock = Stopwatch.StartNew();
string outputDir = Path.GetFullPath(args.Length > 0 ? args[0] : "onnx-output");
int epochs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;
int perClass = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : int.MaxValue;
Directory.CreateDirectory(outputDir);
var mlContext = new MLContext(seed: 1);

// --- Image classifier -------------------------------------------------------------------------------------------
string images = Path.Combine(outputDir, "cifar10-subset");
if (!Directory.Exists(images))
    ZipFile.ExtractToDirectory(Path.Combine(AppContext.BaseDirectory, "data", "cifar10-subset.zip"), images);
ImageFile[] Files(string split) => Directory.GetFiles(Path.Combine(images, split), "*.jpg", SearchOption.AllDirectories)
    .Order(StringComparer.Ordinal)
    .Select(f => new ImageFile { ImagePath = Path.GetRelativePath(images, f), Label = Path.GetFileName(Path.GetDirectoryName(f))! })
    .ToArray();
var trainFiles = Files("train").GroupBy(f => f.Label).SelectMany(g => g.Take(perClass)).ToArray();
var train = mlContext.Data.ShuffleRows(mlContext.Data.LoadFromEnumerable(trainFiles), seed: 1);
var test = mlContext.Data.LoadFromEnumerable(Files("test"));

var pipeline = mlContext.Transforms.LoadRawImageBytes("ImageBytes", images, nameof(ImageFile.ImagePath))
    .Append(mlContext.Transforms.Conversion.MapValueToKey("Label", keyOrdinality: KeyOrdinality.ByValue))
    .Append(mlContext.MulticlassClassification.Trainers.ImageClassifier(new ImageClassifierOptions
    {
        FeatureColumnName = "ImageBytes", Backbone = ImageBackbone.MobileNetV2, Attention = ImageAttention.ElaL,
        WidthMultiplier = 0.35, ImageHeight = 32, ImageWidth = 32, MaxEpochs = epochs, BatchSize = 64,
        Optimizer = OptimizerKind.Sgd, Momentum = 0.9, Nesterov = true, LearningRate = 0.05, WeightDecay = 5e-4,
        LearningRateSchedule = LearningRateSchedule.Cosine, EpochCallback = e => Console.WriteLine($"  {e}"),
    }));
Console.WriteLine($"Training ELA-L MobileNetV2 (width 0.35) on {trainFiles.Length} images of {images} for {epochs} " +
    "epochs...");
var model = pipeline.Fit(train);

// The model took JPEG bytes; its graph takes the 32 × 32 planar RGB pixels (0–255) the scoring app extracts.
string imageOnnx = Path.Combine(outputDir, "image-classifier.onnx");
mlContext.Model.ExportToOnnx(model, imageOnnx);
var scored = model.Transform(test);
var paths = scored.GetColumn<string>(nameof(ImageFile.ImagePath)).ToArray();
var scores = scored.GetColumn<float[]>("Score").ToArray();
using (var writer = new StreamWriter(Path.Combine(outputDir, "image-expected.csv")))
{
    writer.WriteLine("ImagePath," + string.Join(',', Enumerable.Range(0, scores[0].Length).Select(k => $"Score{k}")));
    for (int i = 0; i < paths.Length; i++)
        writer.WriteLine(paths[i] + "," + string.Join(',', scores[i].Select(s => s.ToString("R", CultureInfo.InvariantCulture))));
}
var metrics = mlContext.MulticlassClassification.Evaluate(scored);
Console.WriteLine($"Image classifier: test accuracy {metrics.MicroAccuracy:P1}; exported {imageOnnx} " +
    $"({new FileInfo(imageOnnx).Length / 1024} KB) and its scores of {paths.Length} test images (image-expected.csv).");
(model as IDisposable)?.Dispose();

// --- Forecaster --------------------------------------------------------------------------------------------------
string csv = Path.Combine(outputDir, "ETTh1.csv");
using (var gz = new GZipStream(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "data", "ETTh1.csv.gz")),
    CompressionMode.Decompress))
using (var file = File.Create(csv)) gz.CopyTo(file);
var series = SeriesCsv.Load(mlContext, csv);
var (seriesTrain, seriesValidation, seriesTest) = ForecastSplit.Ett().Apply(mlContext, series.Data, lookback: 96);
Console.WriteLine($"Training an iTransformer 96 → 24 on ETTh1 for {epochs} epochs...");
using var forecaster = mlContext.Forecasting.Trainers.InvertedTransformer(new InvertedTransformerOptions
{
    VariateColumnNames = series.VariateColumnNames.ToArray(), TimestampColumnName = series.TimestampColumnName,
    Lookback = 96, Horizon = 24, ModelWidth = 128, FeedForwardWidth = 128, MaxEpochs = epochs,
    ValidationSet = seriesValidation, IntervalCoverage = 0.9,   // calibrated on the validation windows
}).Fit(seriesTrain);
// The graph scales, forecasts and unscales; the hourly calendar features are a second input (ONNX has no calendar).
string forecasterOnnx = Path.Combine(outputDir, "forecaster.onnx");
mlContext.Model.ExportToOnnx(forecaster, forecasterOnnx);
var windows = mlContext.Data.TakeRows(forecaster.CreateWindows(mlContext, seriesTest, includeTargets: false), 500);
var forecasts = forecaster.Transform(windows);
var stamps = forecasts.GetColumn<DateTime>("Timestamp").ToArray();
var lookbacks = forecasts.GetColumn<float[]>("Lookback").ToArray();
var expectedForecasts = forecasts.GetColumn<float[]>("Forecast").ToArray();
var lower = forecasts.GetColumn<float[]>("Lower").ToArray();
var upper = forecasts.GetColumn<float[]>("Upper").ToArray();
static string Row(IEnumerable<float> values) => string.Join(',', values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
using (var writer = new StreamWriter(Path.Combine(outputDir, "forecast-windows.csv")))
    for (int i = 0; i < stamps.Length; i++)
        writer.WriteLine(stamps[i].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "," + Row(lookbacks[i]));
using (var writer = new StreamWriter(Path.Combine(outputDir, "forecast-expected.csv")))
    for (int i = 0; i < stamps.Length; i++)
        writer.WriteLine(Row(expectedForecasts[i].Concat(lower[i]).Concat(upper[i])));
var forecastMetrics = forecaster.Evaluate(seriesTest);
Console.WriteLine($"Forecaster: test MSE {forecastMetrics.MeanSquaredError:F3} (scaled); exported {forecasterOnnx} " +
    $"({new FileInfo(forecasterOnnx).Length / 1024} KB) and its forecasts of {stamps.Length} test windows " +
    "(forecast-windows.csv: last timestamp + the 96 × 7 lookback values; forecast-expected.csv: Forecast, Lower, Upper).");

Console.WriteLine($"Done in {clock.Elapsed.TotalSeconds:F0} s. Now score without libtorch:\n" +
    $"  dotnet run -c Release --project samples/OnnxScoring -- {outputDir}");

/// <summary>An image file and its class (the folder name).</summary>
public sealed class ImageFile
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}
