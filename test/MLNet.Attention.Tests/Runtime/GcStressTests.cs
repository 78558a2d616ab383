using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Tests.Forecasting;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;

namespace MLNet.Attention.Tests.Runtime;

/// <summary>
/// Training, batched Transform and PredictionEngine next to a thread that forces garbage collections and finalizers
/// non-stop: the conditions under which TorchSharp's implicitly created Scalars failed (see TorchScalars). Zero errors
/// and unchanged numbers are required. The long version is the benchmark command `soak`.
/// </summary>
[TestClass]
public sealed class GcStressTests
{
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
                    // Gen-0 collections: a temporary Scalar dies young, and a full collection per loop would stall
                    // the measured threads far more than the race needs.
                    GC.Collect(0, GCCollectionMode.Forced, blocking: true);
                    GC.WaitForPendingFinalizers();
                    Collections++;
                }
            }) { IsBackground = true, Name = "GC hammer" };
            _thread.Start();
        }

        public long Collections { get; private set; }

        public void Dispose()
        {
            _stop.Cancel();
            _thread.Join();
            _stop.Dispose();
        }
    }

    [TestMethod]
    [Timeout(180_000, CooperativeCancellation = true)]
    public void TrainingTransformAndPredictionEngineSurviveForcedCollections()
    {
        var ml = new MLContext(seed: 21);
        var data = ml.Data.LoadFromEnumerable(Series(320));

        // Reference numbers without GC pressure.
        using var reference = TrainTiny(ml, data, o => { o.MaxEpochs = 2; o.ValidationFraction = 0; o.EarlyStoppingPatience = null; });
        var windows = reference.CreateWindows(ml, data, includeTargets: false);
        var rows = ml.Data.CreateEnumerable<WindowInput>(windows, reuseRowObject: false).ToArray();
        var expected = reference.Transform(windows).GetColumn<float[]>("Forecast").ToArray();

        using var hammer = new GcHammer();
        // 1. Training (forward, loss, backward, optimizer) under collections: finite, usable weights.
        using var model = TrainTiny(ml, data, o => { o.MaxEpochs = 2; o.ValidationFraction = 0; o.EarlyStoppingPatience = null; });
        // 2. Batched Transform and 3. PredictionEngine, concurrently on two threads.
        var transform = Task.Run(() =>
        {
            for (int pass = 0; pass < 12; pass++)
            {
                var scored = reference.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
                for (int i = 0; i < scored.Length; i++)
                    CollectionAssert.AreEqual(expected[i], scored[i], $"Transform pass {pass}, window {i}");
            }
        });
        var engineTask = Task.Run(() =>
        {
            using var engine = ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(reference);
            var output = new WindowOutput();
            for (int k = 0; k < 2_500; k++)
            {
                int i = k % rows.Length;
                engine.Predict(rows[i], ref output);
                for (int j = 0; j < output.Forecast.Length; j++)
                    Assert.AreEqual(expected[i][j], output.Forecast[j], 1e-5f, $"prediction {k}");
            }
        });
        Task.WaitAll(transform, engineTask);
        Assert.IsTrue(hammer.Collections > 10, $"the GC thread ran ({hammer.Collections} collections)");
        Console.WriteLine($"{hammer.Collections} forced collections, {12 * rows.Length} windows transformed, 2,500 predictions");
        var retrained = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        Assert.AreEqual(expected.Length, retrained.Length);
        Assert.IsTrue(retrained.All(f => f.All(float.IsFinite)));
    }
}
