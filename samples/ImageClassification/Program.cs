// Image classification sample: ELA-MobileNetV2 on a CIFAR-10 subset shipped in samples/data (2,500 training and
// 500 test JPEGs, 32 × 32). The pipeline is the one ML.NET's ImageClassificationTrainer uses — LoadRawImageBytes
// → MapValueToKey → trainer → MapKeyToValue — with per-epoch progress; then Evaluate with the confusion matrix, save
// and reload, predict single images, and write attention-overlay PNGs.
// Usage: dotnet run -c Release --project samples/ImageClassification [outputDir] [epochs]
using System.Diagnostics;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using KeyOrdinality = Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality;
using MLNet.Attention;
using MLNet.Attention.Classification;
using MLNet.Attention.Engine;

var clock = Stopwatch.StartNew();
string outputDir = args.Length > 0 ? args[0] : Path.Combine(Directory.GetCurrentDirectory(), "image-output");
int epochs = args.Length > 1 ? int.Parse(args[1]) : 6;
Directory.CreateDirectory(outputDir);

// Unpack the shipped subset: train/<class>/*.jpg and test/<class>/*.jpg.
string images = Path.Combine(outputDir, "cifar10-subset");
if (!Directory.Exists(images))
    ZipFile.ExtractToDirectory(Path.Combine(AppContext.BaseDirectory, "data", "cifar10-subset.zip"), images);
ImageFile[] Files(string split) => Directory.GetFiles(Path.Combine(images, split), "*.jpg", SearchOption.AllDirectories)
    .Order(StringComparer.Ordinal)
    .Select(f => new ImageFile
    {
        ImagePath = Path.GetRelativePath(images, f),
        Label = Path.GetFileName(Path.GetDirectoryName(f))!,
    })
    .ToArray();

var mlContext = new MLContext(seed: 1);
var train = mlContext.Data.ShuffleRows(mlContext.Data.LoadFromEnumerable(Files("train")), seed: 1);
var testFiles = Files("test");
var test = mlContext.Data.LoadFromEnumerable(testFiles);
Console.WriteLine($"CIFAR-10 subset: {Files("train").Length} training and {testFiles.Length} test images in {images}");

var options = new ImageClassifierOptions
{
    FeatureColumnName = "ImageBytes",
    Backbone = ImageBackbone.MobileNetV2,
    Attention = ImageAttention.ElaL,          // the official ELA placement in MobileNetV2
    WidthMultiplier = 0.35,
    ImageHeight = 32,
    ImageWidth = 32,
    MaxEpochs = epochs,
    BatchSize = 64,
    Optimizer = OptimizerKind.Sgd,
    Momentum = 0.9,
    Nesterov = true,
    LearningRate = 0.05,
    WeightDecay = 5e-4,
    NoWeightDecayOnNormsAndBiases = true,
    LearningRateSchedule = LearningRateSchedule.Cosine,
    WarmupEpochs = epochs > 1 ? 1 : 0,
    ValidationFraction = 0.1,                 // stratified; early stopping on validation accuracy
    EarlyStoppingMetric = EarlyStoppingMetric.Accuracy,
    EarlyStoppingPatience = 3,
    AttentionMapColumnName = "AttentionMap",  // ELA's map of the deepest block, for the overlays below
    EpochCallback = e => Console.WriteLine($"  {e}"),
};
var pipeline = mlContext.Transforms.LoadRawImageBytes("ImageBytes", images, nameof(ImageFile.ImagePath))
    .Append(mlContext.Transforms.Conversion.MapValueToKey("Label", keyOrdinality: KeyOrdinality.ByValue))
    .Append(mlContext.MulticlassClassification.Trainers.ImageClassifier(options))
    .Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

Console.WriteLine($"Training ELA-L MobileNetV2 (width 0.35) for up to {epochs} epochs...");
var model = pipeline.Fit(train);

var scored = model.Transform(test);
var metrics = mlContext.MulticlassClassification.Evaluate(scored);
Console.WriteLine($"Test: micro accuracy {metrics.MicroAccuracy:P1}, macro accuracy {metrics.MacroAccuracy:P1}, " +
                  $"log-loss {metrics.LogLoss:F3} (chance: 10 %)");
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

string modelPath = Path.Combine(outputDir, "ela-mobilenetv2.zip");
mlContext.Model.Save(model, train.Schema, modelPath);
var loaded = mlContext.Model.Load(modelPath, out _);
Console.WriteLine($"Saved and reloaded {modelPath} ({new FileInfo(modelPath).Length / 1024} KB).");

using (var engine = mlContext.Model.CreatePredictionEngine<ImageFile, ImagePrediction>(loaded))
{
    foreach (var file in testFiles.Where((_, i) => i % 100 == 0))
    {
        var prediction = engine.Predict(file);
        Console.WriteLine($"  {file.ImagePath,-24} true {file.Label,-10} predicted {prediction.PredictedLabel,-10} " +
                          $"p = {prediction.Score.Max():F2}");
        string name = $"attention-{Path.GetFileNameWithoutExtension(file.ImagePath)}-{file.Label}.png";
        string overlay = Path.Combine(outputDir, name);
        AttentionOverlay.Save(overlay, Path.Combine(images, file.ImagePath), prediction.AttentionMap, 32, 32);
    }
}
Console.WriteLine($"Attention overlays written to {outputDir}/attention-*.png. " +
                  $"Done in {clock.Elapsed.TotalSeconds:F0} s.");
(loaded as IDisposable)?.Dispose();
(model as IDisposable)?.Dispose();

/// <summary>An image file and its class (the folder name).</summary>
public sealed class ImageFile
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

/// <summary>The classifier's outputs a prediction engine fills.</summary>
public sealed class ImagePrediction
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = Array.Empty<float>();
    public float[] AttentionMap { get; set; } = Array.Empty<float>();
}
