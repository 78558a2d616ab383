using System.Collections.Concurrent;
using Microsoft.ML;
using Microsoft.ML.Data;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;

namespace MLNet.Attention.Tests.Forecasting;

/// <summary>One model, many short-lived engines: the ML.NET pattern of an engine per thread or per request.</summary>
[TestClass]
public sealed class PredictionEngineLifetimeTests
{
    [TestMethod]
    public void FourThreadsCreatingUsingAndDisposingEnginesLeaveTheSharedModelIntact()
    {
        var ml = new MLContext(seed: 4);
        var data = ml.Data.LoadFromEnumerable(Series(200));
        var model = TrainTiny(ml, data, o => o.MaxEpochs = 1);
        var windows = model.CreateWindows(ml, data, includeTargets: false);
        var rows = ml.Data.CreateEnumerable<WindowInput>(windows, reuseRowObject: false).ToArray();
        var expected = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        var parameterCount = model.Network.parameters().Count();

        var errors = new ConcurrentQueue<Exception>();
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            try
            {
                for (int round = 0; round < 40; round++)
                {
                    using var engine = ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(model);
                    for (int k = 0; k < 5; k++)
                    {
                        int i = (t * 131 + round * 17 + k * 7) % rows.Length;
                        var forecast = engine.Predict(rows[i]).Forecast;
                        for (int j = 0; j < forecast.Length; j++)
                            if (Math.Abs(forecast[j] - expected[i][j]) > 1e-5f)
                                throw new InvalidOperationException($"thread {t} round {round}: window {i} differs");
                    }
                }
            }
            catch (Exception ex)
            {
                errors.Enqueue(ex);
            }
        })).ToArray();
        foreach (var thread in threads) thread.Start();
        foreach (var thread in threads) thread.Join();
        Assert.AreEqual(0, errors.Count, string.Join("\n", errors));

        // 160 engines were disposed: the model still has its weights and scores the same.
        Assert.IsFalse(model.IsDisposed);
        Assert.AreEqual(parameterCount, model.Network.parameters().Count());
        var after = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        for (int i = 0; i < after.Length; i++) CollectionAssert.AreEqual(expected[i], after[i]);

        // The model's own Dispose still frees it.
        model.Dispose();
        Assert.IsTrue(model.IsDisposed);
        Assert.ThrowsExactly<ObjectDisposedException>(() => model.Transform(windows));
        Assert.ThrowsExactly<ObjectDisposedException>(() => ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(model));
    }

    [TestMethod]
    public void APredictionAllocatesLittleManagedMemory()
    {
        var ml = new MLContext(seed: 6);
        var data = ml.Data.LoadFromEnumerable(Series(200));
        using var model = TrainTiny(ml, data, o => { o.MaxEpochs = 1; o.Layers = 2; });
        var rows = ml.Data.CreateEnumerable<WindowInput>(model.CreateWindows(ml, data, includeTargets: false), reuseRowObject: false).ToArray();
        var engine = ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(model);
        var output = new WindowOutput();
        for (int i = 0; i < 100; i++) engine.Predict(rows[i % rows.Length], ref output);
        const int n = 1_000;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < n; i++) engine.Predict(rows[i % rows.Length], ref output);
        double perPrediction = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)n;
        Console.WriteLine($"{perPrediction:F0} managed bytes per prediction");
        // 15.6 KB before the staging tensors, pooled covariates, size(i) and eval-mode dropout skips; 11.3 KB after,
        // of which ~9 KB are TorchSharp's one managed wrapper per tensor op of the network (2 layers, ~65 ops).
        Assert.IsTrue(perPrediction < 12_500, $"{perPrediction:F0} bytes per prediction");
    }

    /// <summary>
    /// The shape of Microsoft.Extensions.ML's PredictionEnginePool: engines are created on demand, rented by concurrent
    /// requests, returned, and disposed when the pool is (on shutdown or model reload); the model is then reloaded or
    /// disposed by its owner.
    /// </summary>
    private sealed class EnginePool : IDisposable
    {
        private readonly ConcurrentBag<PredictionEngine<WindowInput, WindowOutput>> _idle = new();
        private readonly Func<PredictionEngine<WindowInput, WindowOutput>> _create;
        private int _created;

        public EnginePool(Func<PredictionEngine<WindowInput, WindowOutput>> create) => _create = create;

        public int Created => _created;

        public float[] Predict(WindowInput input)
        {
            if (!_idle.TryTake(out var engine))
            {
                Interlocked.Increment(ref _created);
                engine = _create();
            }
            try
            {
                return engine.Predict(input).Forecast;
            }
            finally
            {
                _idle.Add(engine);
            }
        }

        public void Dispose()
        {
            while (_idle.TryTake(out var engine)) engine.Dispose();
        }
    }

    [TestMethod]
    public void AnEnginePoolServesConcurrentRequestsAndItsDisposalKeepsTheModel()
    {
        var ml = new MLContext(seed: 5);
        var data = ml.Data.LoadFromEnumerable(Series(200));
        using var model = TrainTiny(ml, data, o => o.MaxEpochs = 1);
        var windows = model.CreateWindows(ml, data, includeTargets: false);
        var rows = ml.Data.CreateEnumerable<WindowInput>(windows, reuseRowObject: false).ToArray();
        var expected = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();

        for (int reload = 0; reload < 3; reload++)
        {
            using var pool = new EnginePool(() => ml.Model.CreatePredictionEngine<WindowInput, WindowOutput>(model));
            Parallel.For(0, 400, new ParallelOptions { MaxDegreeOfParallelism = 4 }, request =>
            {
                int i = request % rows.Length;
                var forecast = pool.Predict(rows[i]);
                for (int j = 0; j < forecast.Length; j++) Assert.AreEqual(expected[i][j], forecast[j], 1e-5f);
            });
            Assert.IsTrue(pool.Created >= 1);
        }
        Assert.IsFalse(model.IsDisposed, "disposing pooled engines leaves the model alive");
        CollectionAssert.AreEqual(expected[0], model.Transform(windows).GetColumn<float[]>("Forecast").First());
    }
}
