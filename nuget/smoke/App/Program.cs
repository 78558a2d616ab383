// Package smoke test: train a tiny iTransformer from the packed NuGet packages, save, reload in a new context, compare.
using Microsoft.ML;
using MLNet.Attention;
using MLNet.Attention.Forecasting;

var ml = new MLContext(seed: 1);
var rows = Enumerable.Range(0, 300).Select(t => new Row
{
    Time = new DateTime(2024, 1, 1).AddHours(t),
    Load = (float)(10 + 3 * Math.Sin(2 * Math.PI * t / 24)),
    Temperature = (float)(20 + 5 * Math.Cos(2 * Math.PI * t / 24)),
}).ToArray();
var data = ml.Data.LoadFromEnumerable(rows);
var trainer = ml.Forecasting.Trainers.InvertedTransformer(new InvertedTransformerOptions
{
    VariateColumnNames = new[] { "Load", "Temperature" },
    TimestampColumnName = "Time",
    Lookback = 24, Horizon = 6, ModelWidth = 16, Heads = 2, Layers = 1, FeedForwardWidth = 16, MaxEpochs = 2,
});
using var model = trainer.Fit(data);
string path = Path.Combine(Path.GetTempPath(), $"smoke-{Guid.NewGuid():N}.zip");
ml.Model.Save(model, data.Schema, path);
using var loaded = (ForecastingModel)new MLContext().Model.Load(path, out _);
File.Delete(path);
var a = model.Forecast(data).Values;
var b = loaded.Forecast(data).Values;
if (!a.SequenceEqual(b)) { Console.WriteLine("SMOKE FAILED: reloaded forecasts differ"); return 1; }
// A classifier written from the packages' public API (ThirdPartyClassifier.cs).
var (accuracy, same) = ThirdParty.Mlp.MlpDemo.Run();
if (accuracy < 0.9 || !same) { Console.WriteLine($"SMOKE FAILED: third-party classifier accuracy {accuracy}, same after reload {same}"); return 1; }
Console.WriteLine($"Third-party classifier: macro accuracy {accuracy:F3}, same after reload");
// A forecaster written from the packages' public API (ThirdPartyForecaster.cs).
var (ratio, sameForecast) = ThirdParty.LinearForecast.LinearDemo.Run();
if (ratio > 0.5 || !sameForecast) { Console.WriteLine($"SMOKE FAILED: third-party forecaster MSE/naive {ratio}, same after reload {sameForecast}"); return 1; }
Console.WriteLine($"Third-party forecaster: MSE {ratio:F3} x the naive forecast's, same after reload");
Console.WriteLine($"SMOKE OK: {model.Evaluate(data)}");
return 0;

public sealed class Row
{
    public DateTime Time { get; set; }
    public float Load { get; set; }
    public float Temperature { get; set; }
}
