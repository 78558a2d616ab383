// Sweep sample: iTransformer's width, depth and learning rate on ETTh1 (96 → 96), random search, trials scored on
// the validation months, a CSV trial log, a time budget; the best options are then scored on the test months.
// Arguments: [output folder] [trials, default 6] [epochs per trial, default 2] [budget in minutes, default 20].
using System.Globalization;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Sweeps;

string outputDir = args.Length > 0 ? args[0] : Path.Combine(Directory.GetCurrentDirectory(), "sweep-output");
int trials = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 6;
int epochs = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 2;
double minutes = args.Length > 3 ? double.Parse(args[3], CultureInfo.InvariantCulture) : 20;
Directory.CreateDirectory(outputDir);
string csv = Path.Combine(outputDir, "ETTh1.csv");
using (var gz = new GZipStream(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "data", "ETTh1.csv.gz")), CompressionMode.Decompress))
using (var file = File.Create(csv)) gz.CopyTo(file);

var mlContext = new MLContext(seed: 2023);
var data = mlContext.Data.LoadFromTextFile<EttRow>(csv, hasHeader: true, separatorChar: ',');
const int Lookback = 96, Horizon = 96;
var (train, validation, test) = ForecastSplit.Ett(rowsPerHour: 1).Apply(mlContext, data, Lookback);

// What to vary: three of the attributes InvertedTransformerOptions carries ([Choice] ModelWidth, [Range] Layers and
// a log-scale [Range] LearningRate); everything else comes from the factory below, fresh for every trial.
var space = SearchSpace<InvertedTransformerOptions>.FromAttributes("ModelWidth", "Layers", "LearningRate");
InvertedTransformerOptions Baseline() => new()
{
    VariateColumnNames = new[] { "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT" },
    TimestampColumnName = nameof(EttRow.Date),
    Lookback = Lookback, Horizon = Horizon, MaxEpochs = epochs, ValidationSet = validation,
};
string log = Path.Combine(outputDir, "trials.csv");
Console.WriteLine($"Sweeping {string.Join(", ", space.Parameters.Select(p => p.Name))}: {trials} trials of {epochs} epochs, " +
    $"budget {minutes} min, log {log}");
using var result = ParameterSweep.Run(mlContext, space, Baseline, o => mlContext.Forecasting.Trainers.InvertedTransformer(o),
    train, validation, SweepEvaluator.Forecasting(), new SweepOptions
    {
        MetricName = "MeanSquaredError", MaxTrials = trials, TimeBudget = TimeSpan.FromMinutes(minutes), Seed = 1, LogPath = log,
        TrialCallback = t => Console.WriteLine($"  trial {t.Settings.TrialId}: {t.Settings} → " +
            (t.Metric is { } m ? $"validation MSE {m:F4}" : t.Error ?? "cancelled") + $" ({t.Duration.TotalSeconds:F0} s)"),
    });
Console.WriteLine();
Console.Write(result.ToTable());
Console.WriteLine($"Stopped by: {result.StoppedBy}.");
if (result.BestModel is ForecastingModel best)
{
    var metrics = best.Evaluate(test);
    Console.WriteLine($"Best: {result.Best!.Settings}; test MSE {metrics.MeanSquaredError:F4}, MAE {metrics.MeanAbsoluteError:F4} " +
        "(paper, full recipe: 0.386 / 0.405)");
}

internal sealed class EttRow
{
    [LoadColumn(0)] public string Date { get; set; } = "";
    [LoadColumn(1)] public float HUFL { get; set; }
    [LoadColumn(2)] public float HULL { get; set; }
    [LoadColumn(3)] public float MUFL { get; set; }
    [LoadColumn(4)] public float MULL { get; set; }
    [LoadColumn(5)] public float LUFL { get; set; }
    [LoadColumn(6)] public float LULL { get; set; }
    [LoadColumn(7)] public float OT { get; set; }
}
