// Package smoke test: Microsoft.ML.TorchSharp 0.23.1 (built against TorchSharp 0.102) next to MLNet.Attention
// (TorchSharp 0.107) in one app and one process. NuGet resolves a single TorchSharp, 0.107, for both.
//  1. JIT-compiles every non-generic method of Microsoft.ML.TorchSharp against the loaded TorchSharp 0.107 and lists
//     those that cannot bind (expected: the two ObjectDetection (AutoFormerV2) forwards calling the pre-0.107
//     functional.interpolate overload; any other failure fails the test).
//  2. Constructs its TextClassification and ObjectDetection trainers.
//  3. Trains, scores, saves and reloads an MLNet.Attention iTransformer in the same process.
//  4. Fits its TextClassification, which first fetches pretrained NAS-BERT weights from aka.ms: with network (or the
//     weights in MICROSOFTML_RESOURCE_PATH) it must train and score; without, it must fail with ML.NET's download
//     error or still be retrying when the bounded wait ends; any other exception fails the test.
using System.Reflection;
using System.Runtime.CompilerServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.TorchSharp;
using MLNet.Attention;
using MLNet.Attention.Forecasting;

var failures = new List<string>();
var ml = new MLContext(seed: 1);

// 1. Binding of Microsoft.ML.TorchSharp against TorchSharp 0.107.
Assembly theirs = typeof(TorchSharpCatalog).Assembly;
static string VersionOf(Assembly a) =>
    a.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "?";
string torchSharpVersion = VersionOf(typeof(TorchSharp.torch).Assembly);
Console.WriteLine($"{theirs.GetName().Name} {VersionOf(theirs)} with TorchSharp {torchSharpVersion}");
const BindingFlags All = BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic
    | BindingFlags.Instance | BindingFlags.Static;
int compiled = 0, skippedGeneric = 0;
var unbound = new List<string>();
foreach (Type type in theirs.GetTypes())
{
    IEnumerable<MethodBase> methods = type.GetMethods(All).Cast<MethodBase>().Concat(type.GetConstructors(All));
    foreach (MethodBase method in methods)
    {
        if (method.IsAbstract || method.GetMethodBody() is null) continue;
        if (type.ContainsGenericParameters || method.ContainsGenericParameters) { skippedGeneric++; continue; }
        try { RuntimeHelpers.PrepareMethod(method.MethodHandle); compiled++; }
        catch (Exception e) { unbound.Add($"{type.FullName}.{method.Name}: {e.GetType().Name}: {e.Message}"); }
    }
}
Console.WriteLine($"JIT-compiled {compiled} methods ({skippedGeneric} generic ones not instantiable, skipped); " +
    $"{unbound.Count} cannot bind:");
foreach (string u in unbound) Console.WriteLine($"  {u}");
string[] expectedUnbound = { "Microsoft.ML.TorchSharp.AutoFormerV2.AutoFormerV2Block.forward",
    "Microsoft.ML.TorchSharp.AutoFormerV2.FPN.forward" };
foreach (string u in unbound)
    if (!expectedUnbound.Any(e => u.StartsWith(e + ":")) || !u.Contains("functional.interpolate"))
        failures.Add($"unexpected binding failure: {u}");
foreach (string e in expectedUnbound)
    if (!unbound.Any(u => u.StartsWith(e + ":")))
        failures.Add($"{e} binds now: update README's section on Microsoft.ML.TorchSharp");

// 2. Their trainers.
var texts = ml.Data.LoadFromEnumerable(new[]
{
    new TextRow { Text = "a fine, moving film", Label = "positive" },
    new TextRow { Text = "dull and far too long", Label = "negative" },
    new TextRow { Text = "I loved every minute", Label = "positive" },
    new TextRow { Text = "a waste of an evening", Label = "negative" },
});
var textClassification = ml.MulticlassClassification.Trainers.TextClassification(
    labelColumnName: "Label", sentence1ColumnName: "Text", batchSize: 2, maxEpochs: 1);
Console.WriteLine($"constructed {textClassification.GetType().Name}");
var objectDetection = ml.MulticlassClassification.Trainers.ObjectDetection(
    "Labels", boundingBoxColumnName: "Boxes", imageColumnName: "Image", maxEpoch: 1);
Console.WriteLine($"constructed {objectDetection.GetType().Name}");

// 3. Ours, in the same process.
var rows = Enumerable.Range(0, 240).Select(t => new SeriesRow
{
    Time = new DateTime(2024, 1, 1).AddHours(t),
    Load = (float)(10 + 3 * Math.Sin(2 * Math.PI * t / 24)),
    Temperature = (float)(20 + 5 * Math.Cos(2 * Math.PI * t / 24)),
}).ToArray();
var series = ml.Data.LoadFromEnumerable(rows);
var trainer = ml.Forecasting.Trainers.InvertedTransformer(new InvertedTransformerOptions
{
    VariateColumnNames = new[] { "Load", "Temperature" }, TimestampColumnName = "Time",
    Lookback = 24, Horizon = 6, ModelWidth = 16, Heads = 2, Layers = 1, FeedForwardWidth = 16, MaxEpochs = 2,
});
using var model = trainer.Fit(series);
ForecastMetrics metrics = model.Evaluate(series);
IDataView windows = model.CreateWindows(ml, series);
float[][] forecasts = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
string path = Path.Combine(Path.GetTempPath(), $"torchsharp-smoke-{Guid.NewGuid():N}.zip");
ml.Model.Save(model, series.Schema, path);
using (var loaded = (ForecastingModel)new MLContext().Model.Load(path, out _))
    if (!loaded.Forecast(series).Values.SequenceEqual(model.Forecast(series).Values))
        failures.Add("iTransformer: reloaded forecasts differ");
File.Delete(path);
Console.WriteLine($"iTransformer: trained, scored {forecasts.Length} windows, saved and reloaded: {metrics}");
if (forecasts.Length != 240 - 24 - 6 + 1 || forecasts.Any(f => f.Length != 6 * 2 || f.Any(v => !float.IsFinite(v))))
    failures.Add("iTransformer: unexpected scoring output");

// 4. Fitting their TextClassification: it first fetches pretrained NAS-BERT weights from aka.ms (into
// MICROSOFTML_RESOURCE_PATH). Offline that fails after ML.NET's retries, which took from under 1 s to about 100 s
// here, so the wait is bounded (SMOKE_FIT_SECONDS, default 20): then it is reported, not waited for.
int fitSeconds = int.TryParse(Environment.GetEnvironmentVariable("SMOKE_FIT_SECONDS"), out int n) ? n : 20;
var clock = System.Diagnostics.Stopwatch.StartNew();
var fit = Task.Run(() => ml.Transforms.Conversion.MapValueToKey("Label").Append(textClassification).Fit(texts));
if (Task.WaitAny(new Task[] { fit }, TimeSpan.FromSeconds(fitSeconds)) < 0)
    Console.WriteLine($"TextClassification.Fit: still retrying the weight download after {fitSeconds} s (no network " +
        "here); not waited for");
else if (fit.IsCompletedSuccessfully)
{
    int scored = fit.Result.Transform(texts).GetColumn<uint>("PredictedLabel").Count();
    Console.WriteLine($"TextClassification: trained and scored {scored} rows in {clock.Elapsed.TotalSeconds:F1} s");
    if (scored != 4) failures.Add($"TextClassification scored {scored} rows, expected 4");
}
else if (fit.Exception!.InnerException is InvalidOperationException e
    && e.Message.Contains("Error downloading resource"))
{
    string first = e.Message.Split('\n')[0];
    first = first[..Math.Min(first.Length, 200)];
    Console.WriteLine($"TextClassification.Fit after {clock.Elapsed.TotalSeconds:F1} s: {e.GetType().Name} " +
        $"(no network here): {first}");
}
else failures.Add($"TextClassification.Fit: {fit.Exception.InnerException}");

if (failures.Count > 0) { foreach (string f in failures) Console.WriteLine($"TORCHSHARP SMOKE FAILED: {f}"); return 1; }
Console.WriteLine("TORCHSHARP SMOKE OK");
return 0;

public sealed class TextRow
{
    public string Text { get; set; } = "";
    public string Label { get; set; } = "";
}

public sealed class SeriesRow
{
    public DateTime Time { get; set; }
    public float Load { get; set; }
    public float Temperature { get; set; }
}
