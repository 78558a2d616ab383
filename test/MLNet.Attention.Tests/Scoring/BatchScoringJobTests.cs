using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using Microsoft.ML;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Scoring;

namespace MLNet.Attention.Tests.Scoring;

/// <summary>The resumable, sharded batch scorer: the partition, skip-if-done, write-then-rename, failures, locks,
/// cancellation and resuming, and a real forecaster scoring series files.</summary>
[TestClass]
public sealed class BatchScoringJobTests
{
    private string _root = "";

    [TestInitialize]
    public void CreateFolder()
    {
        _root = Path.Combine(Path.GetTempPath(), "mlnet-attention-batch-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_root);
    }

    [TestCleanup]
    public void RemoveFolder()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private string Inputs => Path.Combine(_root, "in");
    private string Outputs => Path.Combine(_root, "out");

    private string[] WriteInputs(int count, string folder = "")
    {
        var paths = new string[count];
        for (int i = 0; i < count; i++)
        {
            string path = Path.Combine(Inputs, folder, $"item-{i:D3}.txt");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, i.ToString(CultureInfo.InvariantCulture));
            paths[i] = path;
        }
        return paths;
    }

    // Doubles the number in the input: the output says which input it came from.
    private static void Double(BatchScoringItem item, Stream output)
    {
        int value = int.Parse(File.ReadAllText(item.InputPath), CultureInfo.InvariantCulture);
        output.Write(Encoding.UTF8.GetBytes((2 * value).ToString(CultureInfo.InvariantCulture)));
    }

    [TestMethod]
    public void ShardsAreParsedFromTheCommandLineAndTheSchedulersEnvironment()
    {
        Assert.AreEqual(new ShardSpec(2, 8), ShardSpec.Parse("2/8"));
        Assert.AreEqual("0/1", ShardSpec.All.ToString());
        var notAShard = Assert.ThrowsExactly<FormatException>(() => ShardSpec.Parse("2 of 8"));
        StringAssert.Contains(notAShard.Message, "0-based");
        var oneBased = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ShardSpec.Parse("8/8"));
        StringAssert.Contains(oneBased.Message, "0 … 7");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ShardSpec.Parse("0/0"));

        Assert.IsNull(ShardSpec.FromEnvironment(environment: new Dictionary<string, string?>()));
        Assert.AreEqual(new ShardSpec(3, 4), ShardSpec.FromEnvironment(4,
            new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = "3" }));
        var noCount = Assert.ThrowsExactly<InvalidOperationException>(() => ShardSpec.FromEnvironment(null,
            new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = "3" }));
        StringAssert.Contains(noCount.Message, "completions");
        // Slurm arrays are often 1-based (--array=1-10): the index is relative to SLURM_ARRAY_TASK_MIN.
        Assert.AreEqual(new ShardSpec(4, 10), ShardSpec.FromEnvironment(environment: new Dictionary<string, string?>
            { ["SLURM_ARRAY_TASK_ID"] = "5", ["SLURM_ARRAY_TASK_MIN"] = "1", ["SLURM_ARRAY_TASK_COUNT"] = "10" }));
        Assert.AreEqual(new ShardSpec(1, 3), ShardSpec.FromEnvironment(environment: new Dictionary<string, string?>
            { ["MLNET_ATTENTION_SHARD"] = "1/3", ["SLURM_ARRAY_TASK_ID"] = "0" }));
    }

    [TestMethod]
    public void ShardsPartitionTheInputsByTheirRelativePathsAlone()
    {
        var inputs = WriteInputs(400);
        var shards = Enumerable.Range(0, 4)
            .Select(i => new BatchScoringJob(Inputs, inputs, Outputs, new() { Shard = new ShardSpec(i, 4) }))
            .ToArray();
        var keys = shards.SelectMany(s => s.ShardItems.Select(item => item.Key)).ToArray();
        Assert.AreEqual(400, keys.Length, "every input in exactly one shard");
        Assert.AreEqual(400, keys.Distinct().Count());
        foreach (var shard in shards)
            Assert.IsTrue(shard.ShardItems.Count is > 70 and < 130, $"shard sizes {shard.ShardItems.Count} of 400");

        // The same inputs under another mount point, listed in another order, with more inputs added: each input keeps
        // its shard (the key is relative and the hash fixed: FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c).
        Assert.AreEqual(0xaf63dc4c8601ec8cUL, ShardSpec.StableHash("a"));
        string moved = Path.Combine(_root, "elsewhere");
        Directory.Move(Inputs, moved);
        var more = Directory.GetFiles(moved).Reverse().Append(Path.Combine(moved, "extra.txt")).ToArray();
        File.WriteAllText(more[^1], "1");
        var again = new BatchScoringJob(moved, more, Outputs, new() { Shard = new ShardSpec(2, 4) });
        CollectionAssert.IsSubsetOf(shards[2].ShardItems.Select(i => i.Key).ToArray(),
            again.ShardItems.Select(i => i.Key).ToArray());
    }

    [TestMethod]
    public void OutputsKeepTheFolderStructureAndASecondRunSkipsWhatIsDone()
    {
        WriteInputs(3, "a");
        WriteInputs(2, Path.Combine("b", "c"));
        var job = BatchScoringJob.FromPattern(Path.Combine(Inputs, "**", "*.txt"), Outputs);
        Assert.AreEqual(5, job.AllItems.Count);
        var first = job.Run(Double);
        Assert.AreEqual(5, first.Scored);
        Assert.IsTrue(first.Succeeded, first.ToString());
        Assert.AreEqual("4", File.ReadAllText(Path.Combine(Outputs, "a", "item-002.csv")));
        Assert.AreEqual("2", File.ReadAllText(Path.Combine(Outputs, "b", "c", "item-001.csv")));
        Assert.AreEqual(0, Directory.GetFiles(Outputs, "*partial*", SearchOption.AllDirectories).Length);

        int calls = 0;
        var second = job.Run((item, output) => { calls++; Double(item, output); });
        Assert.AreEqual((0, 5, 0), (second.Scored, second.AlreadyDone, calls));

        // A top-level pattern does not recurse; outputs under the input root are never taken as inputs.
        Assert.AreEqual(0, BatchScoringJob.FromPattern(Path.Combine(Inputs, "*.txt"), Outputs).AllItems.Count);
        var nested = BatchScoringJob.FromPattern(Path.Combine(_root, "**", "*.csv"), Path.Combine(_root, "again"));
        Assert.AreEqual(5, nested.AllItems.Count, "outputs of the first job are inputs of this one");
        Assert.AreEqual(0, BatchScoringJob.FromPattern(Path.Combine(_root, "**", "*.csv"), Outputs).AllItems.Count);
    }

    [TestMethod]
    public void AFailedInputLeavesNoOutputAndTheNextRunRetriesOnlyIt()
    {
        var inputs = WriteInputs(6);
        var job = new BatchScoringJob(Inputs, inputs, Outputs);
        var summary = job.Run((item, output) =>
        {
            output.Write(new byte[100]); // half-written when it throws
            if (item.Key == "item-003.txt") throw new InvalidDataException("row 7 of item-003 is not a number");
            output.SetLength(0);
            Double(item, output);
        });
        Assert.IsFalse(summary.Succeeded);
        Assert.AreEqual(5, summary.Scored);
        Assert.AreEqual("item-003.txt", summary.Failures.Single().Item.Key);
        string output3 = Path.Combine(Outputs, "item-003.csv");
        Assert.IsFalse(File.Exists(output3), "no output for a failed input");
        Assert.AreEqual(0, Directory.GetFiles(Outputs, "*partial*").Length, "no temporary file left behind");
        StringAssert.Contains(File.ReadAllText(output3 + ".error.txt"), "row 7 of item-003 is not a number");

        var keys = new List<string>();
        var retry = job.Run((item, output) => { keys.Add(item.Key); Double(item, output); });
        CollectionAssert.AreEqual(new[] { "item-003.txt" }, keys);
        Assert.IsTrue(retry.Succeeded);
        Assert.AreEqual("6", File.ReadAllText(output3));
        Assert.IsFalse(File.Exists(output3 + ".error.txt"), "the error file goes once the input is scored");

        var stopping = new BatchScoringJob(Inputs, inputs, Path.Combine(_root, "stop"), new() { StopOnFirstFailure = true });
        var stopped = stopping.Run((_, _) => throw new InvalidOperationException("broken model"));
        Assert.AreEqual((1, 5), (stopped.Failures.Count, stopped.NotReached));
    }

    [TestMethod]
    public void AKilledRunResumesWhereItStoppedAndScoresEveryInputOnce()
    {
        var inputs = WriteInputs(20);
        var job = new BatchScoringJob(Inputs, inputs, Outputs);
        var counts = new ConcurrentDictionary<string, int>();
        using var cancel = new CancellationTokenSource();
        var reports = new List<BatchScoringProgress>();
        var progress = new DirectProgress(p => { reports.Add(p); if (p.Completed == 8) cancel.Cancel(); });
        var stopped = job.Run((item, output) => { counts.AddOrUpdate(item.Key, 1, (_, n) => n + 1); Double(item, output); },
            progress, cancel.Token);
        Assert.IsTrue(stopped.Cancelled);
        Assert.AreEqual((8, 12), (stopped.Scored, stopped.NotReached));
        Assert.AreEqual(8, reports.Count);
        Assert.AreEqual(20, reports[^1].Total);
        StringAssert.Contains(reports[^1].ToString(), "[shard 0/1] 8/20");

        var resumed = job.Run((item, output) => { counts.AddOrUpdate(item.Key, 1, (_, n) => n + 1); Double(item, output); });
        Assert.AreEqual((12, 8), (resumed.Scored, resumed.AlreadyDone));
        Assert.AreEqual(20, counts.Count);
        Assert.IsTrue(counts.Values.All(n => n == 1), "no input scored twice");
    }

    [TestMethod]
    public void ALiveLockIsRespectedAndAStaleOneIsTakenOver()
    {
        var inputs = WriteInputs(2);
        Directory.CreateDirectory(Outputs);
        string live = Path.Combine(Outputs, "item-000.csv.lock"), stale = Path.Combine(Outputs, "item-001.csv.lock");
        File.WriteAllText(live, "other-host pid 1");
        File.WriteAllText(stale, "dead-host pid 2");
        File.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddHours(-1));
        var job = new BatchScoringJob(Inputs, inputs, Outputs,
            new() { UseLockFiles = true, StaleLockAge = TimeSpan.FromMinutes(5) });
        var summary = job.Run(Double);
        Assert.AreEqual((1, 1), (summary.Scored, summary.Locked));
        Assert.IsTrue(summary.Succeeded, "an input a live worker holds is not a failure");
        Assert.IsTrue(File.Exists(Path.Combine(Outputs, "item-001.csv")));
        Assert.IsFalse(File.Exists(stale), "the taken-over lock is released");
        Assert.IsTrue(File.Exists(live), "another worker's lock is left alone");
        Assert.IsFalse(File.Exists(Path.Combine(Outputs, "item-000.csv")));
    }

    [TestMethod]
    public void ParallelWorkersWithOverlappingShardsScoreEachInputExactlyOnce()
    {
        var inputs = WriteInputs(40);
        var counts = new ConcurrentDictionary<string, int>();
        void Slow(BatchScoringItem item, Stream output)
        {
            counts.AddOrUpdate(item.Key, 1, (_, n) => n + 1);
            Thread.Sleep(5);
            Double(item, output);
        }
        // Four shards, and a second worker started on each shard by mistake (a rerun while the first still runs).
        var workers = Enumerable.Range(0, 8).Select(w => Task.Run(() =>
            new BatchScoringJob(Inputs, inputs, Outputs, new() { Shard = new ShardSpec(w % 4, 4), UseLockFiles = true })
                .Run(Slow))).ToArray();
        Task.WaitAll(workers);
        Assert.AreEqual(40, counts.Count);
        Assert.IsTrue(counts.Values.All(n => n == 1), $"scored twice: {string.Join(", ", counts.Where(c => c.Value > 1))}");
        Assert.AreEqual(40, workers.Sum(w => w.Result.Scored));
        Assert.IsTrue(workers.All(w => w.Result.Succeeded));
        Assert.AreEqual(40, Directory.GetFiles(Outputs).Length, "outputs only: no lock or temporary file is left");
    }

    [TestMethod]
    public void InputsThatCannotBeMappedToOneOutputEachAreRefused()
    {
        Directory.CreateDirectory(Inputs);
        string csv = Path.Combine(Inputs, "s.csv"), gz = Path.Combine(Inputs, "s.csv.gz");
        File.WriteAllText(csv, "");
        File.WriteAllText(gz, "");
        var collision = Assert.ThrowsExactly<ArgumentException>(() =>
            new BatchScoringJob(Inputs, new[] { csv, gz }, Outputs));
        StringAssert.Contains(collision.Message, "would both write");
        var outside = Assert.ThrowsExactly<ArgumentException>(() =>
            new BatchScoringJob(Path.Combine(_root, "other"), new[] { csv }, Outputs));
        StringAssert.Contains(outside.Message, "not under the input root");
        var overwrite = Assert.ThrowsExactly<ArgumentException>(() => new BatchScoringJob(Inputs, new[] { csv }, Inputs));
        StringAssert.Contains(overwrite.Message, "would be the input");
        Assert.ThrowsExactly<DirectoryNotFoundException>(() =>
            BatchScoringJob.FromPattern(Path.Combine(_root, "missing", "*.csv"), Outputs));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new BatchScoringJob(Inputs, new[] { csv }, Outputs, new() { Shard = new ShardSpec(4, 4) }));
    }

    /// <summary>A trained forecaster (the iTransformer format fixture, hourly calendar covariates) scores series
    /// files, plain and gzipped, across two shards: each output CSV holds the forecast that model.Forecast gives for
    /// that file's history.</summary>
    [TestMethod]
    public void AForecasterScoresSeriesFilesIntoForecastCsvs()
    {
        var ml = new MLContext(seed: 1);
        using var model = (InvertedTransformerModel)ml.Model.Load(
            Path.Combine(AppContext.BaseDirectory, "Fixtures", "itransformer-v1.zip"), out _);
        var lines = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Fixtures", "itransformer-v1.series.csv"));
        Directory.CreateDirectory(Inputs);
        for (int end = 20; end <= 120; end += 20)
        {
            var text = string.Join('\n', lines.Take(end + 1)) + "\n";
            if (end % 40 == 0)
            {
                using var file = File.Create(Path.Combine(Inputs, $"series-{end}.csv.gz"));
                using var gzip = new GZipStream(file, CompressionLevel.Fastest);
                gzip.Write(Encoding.UTF8.GetBytes(text));
            }
            else File.WriteAllText(Path.Combine(Inputs, $"series-{end}.csv"), text);
        }
        var summaries = Enumerable.Range(0, 2).Select(i => BatchScoringJob
            .FromPattern(Path.Combine(Inputs, "series-*"), Outputs, new() { Shard = new ShardSpec(i, 2) })
            .Run(ForecastBatchScoring.SeriesCsvToForecastCsv(ml, model))).ToArray();
        Assert.AreEqual(6, summaries.Sum(s => s.Scored), string.Join("; ", summaries.Select(s => s.ToString())));

        foreach (string input in Directory.GetFiles(Inputs))
        {
            string name = Path.GetFileName(input).Replace(".csv.gz", "").Replace(".csv", "");
            var expected = model.Forecast(SeriesCsv.Load(ml, input).Data);
            var output = File.ReadAllLines(Path.Combine(Outputs, name + ".csv"));
            Assert.AreEqual("Timestamp,Step,A,B,C", output[0]);
            Assert.AreEqual(model.Horizon + 1, output.Length);
            for (int step = 0; step < model.Horizon; step++)
            {
                var fields = output[step + 1].Split(',');
                Assert.AreEqual(expected.Timestamps![step].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
                    fields[0]);
                for (int v = 0; v < 3; v++)
                    Assert.AreEqual(expected.Values[step * 3 + v], float.Parse(fields[2 + v], CultureInfo.InvariantCulture),
                        $"{name} step {step} variate {v}");
            }
        }
        // A series too short for the lookback fails with the forecaster's own message, and only that file fails.
        File.WriteAllText(Path.Combine(Inputs, "series-short.csv"), string.Join('\n', lines.Take(5)) + "\n");
        var rerun = BatchScoringJob.FromPattern(Path.Combine(Inputs, "series-*"), Outputs)
            .Run(ForecastBatchScoring.SeriesCsvToForecastCsv(ml, model));
        Assert.AreEqual((0, 6), (rerun.Scored, rerun.AlreadyDone));
        Assert.AreEqual("series-short.csv", rerun.Failures.Single().Item.Key);
        StringAssert.Contains(rerun.Failures[0].Exception.Message, "12");
    }

    [TestMethod]
    public void AForecastWithIntervalsWritesLowerAndUpperColumnsPerVariate()
    {
        var forecast = new ForecastResult(new[] { "a", "max. wv (m/s), avg" }, new[] { 1f, 2f, 3f, 4f },
            new[] { new DateTime(2020, 1, 1, 0, 0, 0), new DateTime(2020, 1, 1, 1, 0, 0) }, 0.9,
            new[] { 0.5f, 1.5f, 2.5f, 3.5f }, new[] { 1.5f, 2.5f, 3.5f, 4.5f });
        using var stream = new MemoryStream();
        ForecastBatchScoring.WriteCsv(forecast, stream);
        var lines = Encoding.UTF8.GetString(stream.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        CollectionAssert.AreEqual(new[]
        {
            "Timestamp,Step,a,\"max. wv (m/s), avg\",a_lower,a_upper," +
            "\"max. wv (m/s), avg_lower\",\"max. wv (m/s), avg_upper\"",
            "2020-01-01 00:00:00,1,1,2,0.5,1.5,1.5,2.5",
            "2020-01-01 01:00:00,2,3,4,2.5,3.5,3.5,4.5",
        }, lines.Select(l => l.TrimEnd('\r')).ToArray());
    }

    private sealed class DirectProgress(Action<BatchScoringProgress> report) : IProgress<BatchScoringProgress>
    {
        public void Report(BatchScoringProgress value) => report(value);
    }
}
