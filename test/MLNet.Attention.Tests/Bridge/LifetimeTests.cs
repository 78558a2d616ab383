using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.LoadProbe;
using TorchSharp;
using static MLNet.Attention.Tests.Bridge.BridgeTestHelpers;

namespace MLNet.Attention.Tests.Bridge;

[TestClass]
public sealed class LifetimeTests
{
    [ClassCleanup]
    public static void Cleanup() => DeleteTempFiles();

    [TestMethod]
    public void Dispose_DisposesModuleOnce_ThenEveryUseThrowsObjectDisposed()
    {
        var ml = NewContext();
        var data = ProbeData.View(ml, 10, Features);
        var t = ProbeLinearTransformer.Create(ml, batchSize: 4);
        var scored = t.Transform(data);
        using var cursor = scored.GetRowCursor(scored.Schema);
        Assert.IsTrue(cursor.MoveNext());   // first batch scored before disposal

        t.Dispose();
        t.Dispose();
        Assert.IsTrue(t.IsDisposed);
        Assert.IsTrue(t.ModuleDisposed);

        Assert.ThrowsExactly<ObjectDisposedException>(() => t.GetOutputSchema(data.Schema));
        Assert.ThrowsExactly<ObjectDisposedException>(() => t.Transform(data));
        Assert.ThrowsExactly<ObjectDisposedException>(() => t.GetRowToRowMapper(data.Schema));
        Assert.ThrowsExactly<ObjectDisposedException>(() => ml.Model.Save(t, data.Schema, TempFile("disposed.zip")));
        // The open cursor serves the batch it already has, then refuses to run the module again.
        for (int i = 1; i < 4; i++)
            Assert.IsTrue(cursor.MoveNext());
        Assert.ThrowsExactly<ObjectDisposedException>(() => cursor.MoveNext());
    }

    [TestMethod]
    public void ChainsDisposeTheTransformer_PredictionEnginesDoNot()
    {
        var ml = NewContext();
        var t = ProbeLinearTransformer.Create(ml);
        var chain = new TransformerChain<ITransformer>(t);
        chain.Dispose();
        Assert.IsTrue(t.ModuleDisposed);

        // ML.NET's engine disposes the transformer it was made from (OwnsTransformer defaults to true): ignored.
        var model = ProbeLinearTransformer.Create(ml);
        var engine = ml.Model.CreatePredictionEngine<ProbeRow, ScoreRow>(model, inputSchemaDefinition: ProbeData.SchemaFor(Features));
        engine.Dispose();
        Assert.IsFalse(model.ModuleDisposed);
        var engineOverChain = ml.Model.CreatePredictionEngine<ProbeRow, ScoreRow>(new TransformerChain<ITransformer>(model), inputSchemaDefinition: ProbeData.SchemaFor(Features));
        engineOverChain.Dispose();
        Assert.IsFalse(model.ModuleDisposed, "an engine disposing a chain leaves the model in it alive");
        using (var again = ml.Model.CreatePredictionEngine<ProbeRow, ScoreRow>(model, inputSchemaDefinition: ProbeData.SchemaFor(Features)))
            Assert.IsNotNull(again.Predict(ProbeData.Rows(1, Features)[0]));
        model.Dispose();
        Assert.IsTrue(model.ModuleDisposed, "the model's own Dispose frees it");
    }

    [TestMethod]
    public void UndisposedInstances_AreCollectedWithoutTouchingTorchOnTheFinalizerThread()
    {
        var weak = CreateAndDrop();
        for (int i = 0; i < 5 && weak.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.IsFalse(weak.IsAlive);
        // Still usable afterwards.
        using var t = ProbeLinearTransformer.Create(NewContext());
        Assert.IsFalse(t.IsDisposed);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference CreateAndDrop()
    {
        var t = ProbeLinearTransformer.Create(NewContext());
        t.GetOutputSchema(ProbeData.View(NewContext(), 1, Features).Schema);
        return new WeakReference(t);
    }

    [TestMethod]
    [Timeout(60_000)]
    public void PredictionEngine_TenThousandRows_DoesNotGrowNativeMemory()
    {
        var ml = NewContext();
        using var t = ProbeLinearTransformer.Create(ml, inputDims: new[] { 16, 8 }, outputSize: 3);
        var definition = SchemaDefinitionFor(128);
        using var engine = ml.Model.CreatePredictionEngine<ProbeRow, ScoreRow>(t, inputSchemaDefinition: definition);
        var rows = ProbeData.Rows(64, 128);
        var output = new ScoreRow();

        for (int i = 0; i < 1000; i++)   // warm-up: allocator pools, JIT
            engine.Predict(rows[i % rows.Count], ref output);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long rssBefore = Rss();
        var stats = DisposeScopeManager.Statistics;
        stats.Reset();

        var watch = Stopwatch.StartNew();
        for (int i = 0; i < 10_000; i++)
            engine.Predict(rows[i % rows.Count], ref output);
        watch.Stop();

        long created = stats.CreatedInScopeCount, disposed = stats.DisposedInScopeCount;
        long createdOutside = stats.CreatedOutsideScopeCount;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long rssAfter = Rss();

        Assert.IsTrue(created >= 10_000 * 2, $"each prediction creates its tensors inside the scope: {stats}");
        Assert.AreEqual(created, disposed, $"every tensor created while scoring is disposed: {stats}");
        Assert.AreEqual(0, createdOutside, $"no tensor escapes the dispose scope: {stats}");
        long growthMb = (rssAfter - rssBefore) / (1024 * 1024);
        Assert.IsTrue(growthMb < 64, $"RSS grew by {growthMb} MB over 10,000 predictions ({rssBefore >> 20} -> {rssAfter >> 20} MB)");
        Assert.AreEqual(11_000, t.ForwardCalls);
        Console.WriteLine($"10,000 predictions in {watch.ElapsedMilliseconds} ms; RSS {rssBefore >> 20} -> {rssAfter >> 20} MB; {stats}");
    }

    private static SchemaDefinition SchemaDefinitionFor(int features) => ProbeData.SchemaFor(features);

    private static long Rss()
    {
        using var p = Process.GetCurrentProcess();
        p.Refresh();
        return p.WorkingSet64;
    }
}
