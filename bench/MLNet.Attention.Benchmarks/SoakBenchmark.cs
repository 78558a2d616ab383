using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Runtime;
using static MLNet.Attention.Benchmarks.Bench;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// Soak under GC stress (not a test): iTransformer on ETTh1 96→96 trained for many epochs, then millions of windows
/// scored through Transform and a PredictionEngine, while a background thread forces garbage collections and
/// finalizers non-stop (the conditions of TorchSharp's Scalar finalizer race). Every error is counted, not thrown,
/// so the run gives a failure rate. Also reports managed bytes allocated per PredictionEngine prediction.
/// </summary>
public static class SoakBenchmark
{
    public static int Run(CommandLine options)
    {
        int epochs = options.Int("epochs", 20), threads = options.Int("threads", 2), width = options.Int("width", 128);
        long windowsTarget = options.Int("windows", 2_000_000), predictions = options.Int("predictions", 200_000);
        bool stress = options.Get("gc-stress", "on") != "off";
        string dataDir = DataDir(options);
        string file = DataFile(dataDir, "ETTh1");
        if (!File.Exists(file)) file = Path.Combine(RepoRoot(), "samples", "data", "ETTh1.csv.gz");
        if (!File.Exists(file))
        {
            Console.WriteLine($"Soak skipped: ETTh1.csv.gz not found in {dataDir} or samples/data.");
            return 0;
        }
        Console.WriteLine($"soak: ETTh1 96->96, D = d_ff = {width}, {epochs} epochs, {windowsTarget:N0} windows through Transform, " +
                          $"{predictions:N0} PredictionEngine predictions, GC stress {(stress ? "on" : "off")}, {threads} threads");
        TorchRuntime.SetThreads(threads);
        var ml = new MLContext(2023);
        var data = Load(ml, Decompress(file));
        var (train, validation, test) = ForecastSplit.Ett().Apply(ml, data, Lookback);

        var hammer = stress ? new GcHammer() : null;
        var total = Stopwatch.StartNew();

        // (1) Training: every epoch runs; a failed Fit is counted and retried, so the rate covers all epochs.
        var trainerOptions = PaperOptions("ETTh1", 96, 2023, validation);
        trainerOptions.ModelWidth = width;
        trainerOptions.FeedForwardWidth = width;
        trainerOptions.MaxEpochs = epochs;
        trainerOptions.EarlyStoppingPatience = null;
        trainerOptions.LearningRateSchedule = Engine.LearningRateSchedule.Constant;
        trainerOptions.NumberOfThreads = threads;
        trainerOptions.ScoringBatchSize = 32;
        int trainingFailures = 0, epochsRun = 0;
        trainerOptions.EpochCallback = e => { epochsRun++; Console.WriteLine($"  {e}"); };
        InvertedTransformerModel? model = null;
        var clock = Stopwatch.StartNew();
        while (model is null && trainingFailures < 5)
        {
            try
            {
                model = ml.Forecasting.Trainers.InvertedTransformer(trainerOptions).Fit(train);
            }
            catch (Exception ex)
            {
                trainingFailures++;
                Console.WriteLine($"  training failed after {epochsRun} epochs: {Describe(ex)}");
            }
        }
        if (model is null)
        {
            // Keep measuring the scoring paths: train once without the GC thread (reported as such).
            Console.WriteLine($"(1) training: {trainingFailures} failed Fit calls in a row under GC stress; training once without it");
            hammer?.Pause();
            trainerOptions.MaxEpochs = Math.Min(epochs, 2);
            epochsRun = 0;
            model = ml.Forecasting.Trainers.InvertedTransformer(trainerOptions).Fit(train);
            hammer?.Resume();
        }
        using var _ = model;
        Console.WriteLine($"(1) training: {epochsRun} epochs run, {trainingFailures} failed Fit calls, {clock.Elapsed.TotalSeconds:F0} s");

        // (2) Transform, batch 32, until the window target.
        var windows = model.CreateWindows(ml, test, includeTargets: false);
        hammer?.Pause();   // the reference values, computed without GC pressure
        var expected = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        var inputs = ml.Data.CreateEnumerable<EngineInput>(windows, reuseRowObject: false).ToArray();
        var engine = ml.Model.CreatePredictionEngine<EngineInput, EngineOutput>(model, inputSchemaDefinition: EngineInput.Definition(model));
        hammer?.Resume();
        long scored = 0, transformFailures = 0, mismatches = 0;
        clock.Restart();
        while (scored < windowsTarget)
        {
            try
            {
                int i = 0;
                foreach (var forecast in model.Transform(windows).GetColumn<float[]>("Forecast"))
                {
                    if (!forecast.AsSpan().SequenceEqual(expected[i++])) mismatches++;
                    scored++;
                }
            }
            catch (Exception ex)
            {
                if (transformFailures++ < 3) Console.WriteLine($"  Transform failed: {Describe(ex)}");
            }
        }
        Console.WriteLine($"(2) Transform: {scored:N0} windows in {clock.Elapsed.TotalSeconds:F0} s ({scored / clock.Elapsed.TotalSeconds:F0}/s), " +
                          $"{transformFailures} failed passes, {mismatches} windows with changed values");

        // (3) PredictionEngine, one window at a time, Predict(ref output) reusing the output object.
        var output = new EngineOutput();
        long engineFailures = 0, engineMismatches = 0;
        hammer?.Pause();   // allocation per prediction, measured without GC pressure
        for (int i = 0; i < 200; i++) engine.Predict(inputs[i % inputs.Length], ref output);   // warm-up
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        const int allocationSample = 2_000;
        for (int i = 0; i < allocationSample; i++) engine.Predict(inputs[i % inputs.Length], ref output);
        double bytesPerPrediction = (GC.GetAllocatedBytesForCurrentThread() - allocatedBefore) / (double)allocationSample;
        hammer?.Resume();
        clock.Restart();
        for (long k = 0; k < predictions; k++)
        {
            int i = (int)(k % inputs.Length);
            try
            {
                engine.Predict(inputs[i], ref output);
                if (!output.Forecast.AsSpan().SequenceEqual(expected[i]) &&
                    output.Forecast.Zip(expected[i]).Any(p => Math.Abs(p.First - p.Second) > 1e-4f)) engineMismatches++;
            }
            catch (Exception ex)
            {
                if (engineFailures++ < 3) Console.WriteLine($"  Predict failed: {Describe(ex)}");
            }
        }
        Console.WriteLine($"(3) PredictionEngine: {predictions:N0} predictions in {clock.Elapsed.TotalSeconds:F0} s " +
                          $"({predictions / clock.Elapsed.TotalSeconds:F0}/s), {engineFailures} failures, {engineMismatches} changed, " +
                          $"{bytesPerPrediction:F0} managed bytes allocated per prediction");
        hammer?.Dispose();
        Console.WriteLine($"soak total {total.Elapsed.TotalMinutes:F1} min, {hammer?.Collections ?? 0} forced collections; " +
                          $"errors: training {trainingFailures}, Transform {transformFailures}, PredictionEngine {engineFailures}");
        return trainingFailures + transformFailures + engineFailures == 0 ? 0 : 1;
    }

    private static string Describe(Exception ex)
    {
        var inner = ex;
        while (inner.InnerException is not null) inner = inner.InnerException;
        return $"{inner.GetType().Name}: {inner.Message.Split('\n')[0]}";
    }

    public sealed class EngineInput
    {
        public float[] Lookback { get; set; } = Array.Empty<float>();
        public DateTime Timestamp { get; set; }

        public static SchemaDefinition Definition(ForecastingModel model)
        {
            var definition = SchemaDefinition.Create(typeof(EngineInput));
            definition[nameof(Lookback)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, model.Lookback, model.VariateColumnNames.Count);
            return definition;
        }
    }

    public sealed class EngineOutput
    {
        public float[] Forecast { get; set; } = Array.Empty<float>();
    }

    private sealed class GcHammer : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Thread _thread;

        public GcHammer()
        {
            _thread = new Thread(() =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    if (_paused)
                    {
                        Thread.Sleep(10);
                        continue;
                    }
                    // Gen-0 collections: a temporary Scalar dies young, and a full collection per loop would stall
                    // the measured threads far more than the race needs.
                    GC.Collect(0, GCCollectionMode.Forced, blocking: true);
                    GC.WaitForPendingFinalizers();
                    Collections++;
                }
            }) { IsBackground = true };
            _thread.Start();
        }

        private volatile bool _paused;

        public long Collections { get; private set; }

        public void Pause() => _paused = true;

        public void Resume() => _paused = false;

        public void Dispose()
        {
            if (_stop.IsCancellationRequested) return;
            _stop.Cancel();
            _thread.Join();
        }
    }
}
