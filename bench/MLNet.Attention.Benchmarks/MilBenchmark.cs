using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.MultipleInstance;
using static MLNet.Attention.Benchmarks.Bench;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// `mil`: Musk1 / Musk2 bag classification, the MIL benchmarks' protocol (Ilse et al. 2018): bag-level stratified
/// 10-fold cross-validation repeated 5 times, features standardised on the training folds (the trainer's
/// StandardizeFeatures), fixed epochs, no validation split. Gated-attention MIL and ACMIL through the public API
/// (GroupIntoBags → BagFolds → BinaryClassification.Trainers.AttentionMil / Acmil → Evaluate).
/// </summary>
internal static class MilBenchmark
{
    private sealed class Instance
    {
        [LoadColumn(0)] public bool Label { get; set; }
        [LoadColumn(1)] public float BagId { get; set; }
        [LoadColumn(2, 167), VectorType(166)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    public static int Run(CommandLine options)
    {
        string dataDir = Path.GetFullPath(Path.Combine(DataDir(options), "..", "mil"));
        var datasets = options.List("datasets", "musk1,musk2");
        var architectures = options.List("architectures", "abmil,acmil");
        int repeats = options.Int("repeats", 5), folds = options.Int("folds", 10), epochs = options.Int("epochs", 40);
        double lr = double.Parse(options.Get("lr", "5e-4"), System.Globalization.CultureInfo.InvariantCulture);
        double wd = double.Parse(options.Get("weight-decay", "5e-4"), System.Globalization.CultureInfo.InvariantCulture);
        int threads = options.Int("threads", 2);
        var table = new StringBuilder();
        table.AppendLine("| dataset | model | accuracy (mean ± std over the 5 repeats) | accuracy (± std over all folds) | AUC | paper | time |");
        table.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var dataset in datasets)
        {
            string file = Path.Combine(dataDir, dataset + ".csv.gz");
            if (!File.Exists(file))
            {
                Console.WriteLine($"mil: {file} is absent (shared/data/mil); skipping {dataset}.");
                continue;
            }
            string csv = Path.Combine(Path.GetTempPath(), $"{dataset}-{Environment.ProcessId}.csv");
            using (var gz = new GZipStream(File.OpenRead(file), CompressionMode.Decompress))
            using (var output = File.Create(csv)) gz.CopyTo(output);
            var ml = new MLContext(seed: 1);
            var instances = ml.Data.LoadFromTextFile<Instance>(csv, hasHeader: true, separatorChar: ',');
            var bags = ml.Data.Cache(ml.Transforms.GroupIntoBags("BagId", new[] { "Features" }, "Label").Fit(instances).Transform(instances));
            foreach (var architecture in architectures)
            {
                var repeatAccuracy = new List<double>();
                var foldAccuracy = new List<double>();
                var foldAuc = new List<double>();
                var clock = Stopwatch.StartNew();
                for (int repeat = 0; repeat < repeats; repeat++)
                {
                    var accuracies = new List<double>();
                    foreach (var fold in BagFolds.Stratified(bags, folds, "Label", seed: 100 + repeat))
                    {
                        var trainer = ml.BinaryClassification.Trainers.AttentionMil(new AttentionMilOptions
                        {
                            Architecture = architecture == "acmil" ? MilArchitecture.Acmil : MilArchitecture.GatedAttention,
                            MaxEpochs = epochs,
                            LearningRate = lr,
                            WeightDecay = wd,
                            ValidationFraction = 0,
                            EarlyStoppingPatience = null,
                            Seed = 1000 * repeat + fold.Fold,
                            NumberOfThreads = threads,
                            Branches = options.Int("branches", 5),
                            TopK = options.Int("top-k", 10),
                            ShufflePoolSize = 1024,   // a full shuffle of every training fold (the table's setting)
                        });
                        using var model = trainer.Fit(fold.Train);
                        var metrics = ml.BinaryClassification.EvaluateNonCalibrated(model.Transform(fold.Test));
                        accuracies.Add(metrics.Accuracy);
                        foldAccuracy.Add(metrics.Accuracy);
                        if (!double.IsNaN(metrics.AreaUnderRocCurve)) foldAuc.Add(metrics.AreaUnderRocCurve);
                    }
                    repeatAccuracy.Add(accuracies.Average());
                    Console.WriteLine($"  {dataset} {architecture} repeat {repeat + 1}: accuracy {F(accuracies.Average())} ({F(clock.Elapsed.TotalSeconds, "F0")} s)");
                }
                string paper = architecture == "abmil" ? (dataset == "musk1" ? "0.900 ± 0.050" : "0.863 ± 0.042") : "—";
                string row = $"| {dataset} | {(architecture == "abmil" ? "gated-attention MIL" : "ACMIL")} | {MeanStd(repeatAccuracy.ToArray())} | " +
                             $"{MeanStd(foldAccuracy.ToArray())} | {MeanStd(foldAuc.ToArray())} | {paper} | {F(clock.Elapsed.TotalSeconds, "F0")} s |";
                Console.WriteLine(row);
                table.AppendLine(row);
            }
            File.Delete(csv);
        }
        string content = $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Machine()}; {repeats} × stratified {folds}-fold bag-level CV, " +
                         $"{epochs} epochs, one bag per step, lr {lr}, weight decay {wd}, features standardised on the training " +
                         $"folds. Command: `dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- mil`.\n\n{table}";
        Console.WriteLine(content);
        if (options.Get("out") is not null || options.Get("write") is not null) WriteSection(OutPath(options), "mil-musk", content);
        return 0;
    }
}
