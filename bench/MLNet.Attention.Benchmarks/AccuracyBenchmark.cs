using System.Diagnostics;
using System.Text;
using Microsoft.ML;
using MLNet.Attention.Forecasting;
using static MLNet.Attention.Benchmarks.Bench;

namespace MLNet.Attention.Benchmarks;

/// <summary>Test MSE/MAE of the paper's setting per dataset and horizon, over several seeds, against the paper (spec §8).</summary>
public static class AccuracyBenchmark
{
    /// <summary>iTransformer paper, lookback 96, MSE/MAE in scaled space.</summary>
    private static readonly Dictionary<(string, int), (double Mse, double Mae)> Paper = new()
    {
        [("ETTh1", 96)] = (0.386, 0.405), [("ETTh1", 192)] = (0.441, 0.436), [("ETTh1", 336)] = (0.487, 0.458), [("ETTh1", 720)] = (0.503, 0.491),
        [("ETTh2", 96)] = (0.297, 0.349), [("ETTh2", 192)] = (0.380, 0.400), [("ETTh2", 336)] = (0.428, 0.432), [("ETTh2", 720)] = (0.427, 0.445),
        [("ETTm1", 96)] = (0.334, 0.368), [("ETTm1", 192)] = (0.377, 0.391), [("ETTm1", 336)] = (0.426, 0.420), [("ETTm1", 720)] = (0.491, 0.459),
    };

    private sealed record SeedRun(int Seed, ForecastMetrics Test, ForecastMetrics Naive, int Epochs, int BestEpoch, double WindowsPerSecond, double Seconds);

    private sealed record Row(string Dataset, int Horizon, List<SeedRun> Runs);

    public static int Run(CommandLine options)
    {
        var datasets = options.List("datasets", "ETTh1,ETTh2,ETTm1");
        var horizons = options.Ints("horizons", "96,192,336,720");
        var seeds = options.Ints("seeds", "2023,2024,2025");
        int maxEpochs = options.Int("max-epochs", 10);
        int? threads = options.Int("threads");
        string dataDir = DataDir(options), outPath = OutPath(options);
        foreach (var d in datasets)
            if (!Paper.ContainsKey((d, 96))) throw new UsageException($"Unknown dataset '{d}'; use ETTh1, ETTh2 or ETTm1.");
        foreach (var h in horizons)
            if (!Paper.ContainsKey(("ETTh1", h))) throw new UsageException($"Horizon {h} has no paper value; use 96, 192, 336 or 720.");

        var present = datasets.Where(d => File.Exists(DataFile(dataDir, d))).ToArray();
        foreach (var d in datasets.Except(present))
            Console.WriteLine($"SKIP {d}: {DataFile(dataDir, d)} not found (pass --data-dir DIR holding {d}.csv.gz).");
        if (present.Length == 0)
        {
            Console.WriteLine("Accuracy benchmark skipped: no ETT data found.");
            return 0;
        }

        string command = $"accuracy --datasets {string.Join(',', present)} --horizons {string.Join(',', horizons)} --seeds {string.Join(',', seeds)} --max-epochs {maxEpochs}"
                         + (threads is null ? "" : $" --threads {threads}");
        Console.WriteLine($"{command}\n  data {dataDir}\n  out  {outPath}");
        var rows = new List<Row>();
        var started = DateTime.Now;
        try
        {
            foreach (var dataset in present)
            {
                string csv = Decompress(DataFile(dataDir, dataset));
                foreach (var horizon in horizons)
                {
                    var row = new Row(dataset, horizon, new List<SeedRun>());
                    rows.Add(row);
                    foreach (var seed in seeds)
                    {
                        var run = TrainAndEvaluate(csv, dataset, horizon, seed, maxEpochs, threads);
                        row.Runs.Add(run);
                        var paper = Paper[(dataset, horizon)];
                        Console.WriteLine($"{dataset} {horizon,3} seed {seed}: MSE {F(run.Test.MeanSquaredError, "F4")} MAE {F(run.Test.MeanAbsoluteError, "F4")} " +
                                          $"(paper {F(paper.Mse)}/{F(paper.Mae)}, {Percent(run.Test.MeanSquaredError / paper.Mse - 1)}%), " +
                                          $"naive {F(run.Naive.MeanSquaredError, "F4")}/{F(run.Naive.MeanAbsoluteError, "F4")}, " +
                                          $"{run.Epochs} epochs (best {run.BestEpoch}), {F(run.WindowsPerSecond, "F0")} windows/s, {F(run.Seconds, "F0")} s");
                        WriteSection(outPath, "accuracy", Markdown(rows, seeds, command, started, threads));
                    }
                }
            }
        }
        finally
        {
            CleanUp();
        }
        Console.WriteLine($"Wrote {outPath}");
        return 0;
    }

    private static SeedRun TrainAndEvaluate(string csv, string dataset, int horizon, int seed, int maxEpochs, int? threads)
    {
        var clock = Stopwatch.StartNew();
        var ml = new MLContext(seed);
        var data = Load(ml, csv);
        var (train, validation, test) = ForecastSplit.Ett(rowsPerHour: RowsPerHour(dataset)).Apply(ml, data, Lookback);
        var options = PaperOptions(dataset, horizon, seed, validation);
        options.MaxEpochs = maxEpochs;
        options.NumberOfThreads = threads;
        using var model = ml.Forecasting.Trainers.InvertedTransformer(options).Fit(train);
        var metrics = model.Evaluate(test);
        var naive = model.EvaluateLastValueBaseline(test);
        var summary = model.TrainingSummary!;
        return new SeedRun(seed, metrics, naive, summary.Epochs.Count, summary.BestEpoch,
            summary.Epochs.Average(e => e.TrainRowsPerSecond), clock.Elapsed.TotalSeconds);
    }

    private static string Markdown(List<Row> rows, int[] seeds, string command, DateTime started, int? threads)
    {
        var md = new StringBuilder();
        md.AppendLine("## Accuracy vs the paper (iTransformer, lookback 96)");
        md.AppendLine();
        md.AppendLine($"`dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- {command}`, started {started:yyyy-MM-dd HH:mm}, " +
                      $"last update {DateTime.Now:yyyy-MM-dd HH:mm}; {Machine()}; libtorch threads: {(threads is null ? "default" : threads.ToString())}.");
        md.AppendLine();
        md.AppendLine("Paper setting (spec §7): D = d_ff per dataset, 8 heads, 2 layers, dropout 0.1, Adam lr 1e-4 halved every epoch from the third, " +
                      "batch 32, early stopping (patience 3) on the validation months with the best weights restored, calendar covariates `Hourly` " +
                      "(freq 'h', also for 15-minute ETTm1), ETT 12/4/4-month split, train-only z-score. Test MSE/MAE over all test windows " +
                      "in scaled space; ours = mean ± sample std over the seeds. Δ MSE = ours / paper − 1; \"within 5 %\" = |Δ MSE| ≤ 5 %. " +
                      "Naive = last lookback value repeated (same windows). Windows/s = training throughput (training loop only) from the " +
                      "epoch reports, mean over epochs and seeds; s/run = load + train + both evaluations, mean over seeds.");
        md.AppendLine();
        md.AppendLine("| Dataset | S | D | Paper MSE | Paper MAE | Ours MSE | Ours MAE | Δ MSE | Within 5 % | Naive MSE | Naive MAE | Epochs run (best) | Train windows/s | s/run |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---|---:|---:|");
        foreach (var row in rows.Where(r => r.Runs.Count > 0))
        {
            var paper = Paper[(row.Dataset, row.Horizon)];
            var mse = row.Runs.Select(r => r.Test.MeanSquaredError).ToArray();
            var mae = row.Runs.Select(r => r.Test.MeanAbsoluteError).ToArray();
            double delta = mse.Average() / paper.Mse - 1;
            string within = Math.Abs(delta) <= 0.05 ? "yes" : delta > 0 ? "no (worse)" : "no (better)";
            md.AppendLine($"| {row.Dataset} | {row.Horizon} | {ModelWidth(row.Dataset, row.Horizon)} | {F(paper.Mse)} | {F(paper.Mae)} | " +
                          $"{MeanStd(mse)} | {MeanStd(mae)} | {Percent(delta)} % | {within} | " +
                          $"{F(row.Runs[0].Naive.MeanSquaredError)} | {F(row.Runs[0].Naive.MeanAbsoluteError)} | " +
                          $"{string.Join(", ", row.Runs.Select(r => $"{r.Epochs} ({r.BestEpoch})"))} | " +
                          $"{F(row.Runs.Average(r => r.WindowsPerSecond), "F0")} | {F(row.Runs.Average(r => r.Seconds), "F0")} |");
        }
        md.AppendLine();
        md.AppendLine($"Seeds: {string.Join(", ", seeds)}; a row whose epoch column lists fewer runs is unfinished.");
        return md.ToString();
    }

    private static string MeanStd(double[] values)
    {
        double mean = values.Average();
        if (values.Length < 2) return F(mean, "F4");
        double std = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1));
        return $"{F(mean, "F4")} ± {F(std, "F4")}";
    }

    /// <summary>A signed percentage with one decimal; values that round to zero print as +0.0 (never "-+0.0").</summary>
    private static string Percent(double ratio) => F(Math.Round(100 * ratio, 1) + 0.0, "+0.0;-0.0");
}
