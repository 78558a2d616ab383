using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Data;
using MLNet.Attention.Interop;
using MLNet.Attention.MultipleInstance;
using TorchSharp;

namespace MLNet.Attention.Tests.MultipleInstance;

/// <summary>How bags reach libtorch: a batch of one bag is the getter's buffer itself (pinned, no copy), other batches
/// are padded with span copies; neither may change the caller's data or the pass-through column.</summary>
[TestClass]
public sealed class BagStagingTests
{
    [TestMethod]
    public void VBufferArraysReturnsTheArrayBehindADenseBuffer()
    {
        var values = new float[] { 1, 2, 3, 4 };
        var dense = new VBuffer<float>(3, values);
        Assert.AreSame(values, VBufferArrays.DenseValues(dense), "ML.NET 5.0.1's VBuffer<T>._values");
        var sparse = new VBuffer<float>(10, 2, new float[] { 1, 2 }, new[] { 3, 7 });
        Assert.IsNull(VBufferArrays.DenseValues(sparse));
        Assert.IsNull(VBufferArrays.DenseValues(default));
    }

    [TestMethod]
    public void TensorSpansCopyWholeRangesBothWays()
    {
        MLNet.Attention.Runtime.TorchRuntime.EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        var t = torch.zeros(3, 4);
        TensorSpans.Write(t, new float[] { 1, 2, 3 }, offset: 5);
        CollectionAssert.AreEqual(new float[] { 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0 }, TensorSpans.ToArray<float>(t));
        var part = new float[2];
        TensorSpans.Read(t, part, offset: 6);
        CollectionAssert.AreEqual(new float[] { 2, 3 }, part);
        CollectionAssert.AreEqual(new long[] { 0, 1, 2 }, TensorSpans.ToArray<long>(torch.arange(3)));
        // A transposed view is not contiguous: refused, not read in the wrong order.
        Assert.ThrowsExactly<ArgumentException>(() => TensorSpans.Of<float>(t.t(), 0, 4));
        Assert.ThrowsExactly<ArgumentException>(() => TensorSpans.Of<float>(t, 10, 4));
        Assert.ThrowsExactly<ArgumentException>(() => TensorSpans.Of<long>(t, 0, 1));
    }

    [TestMethod]
    public void ScoringOneBagInPlaceLeavesTheCallersDataAndThePassThroughColumnAlone()
    {
        var ml = new MLContext(seed: 1);
        var random = new Random(3);
        float[] Bag(int n, float shift) =>
            Enumerable.Range(0, n * 6).Select(i => (float)random.NextDouble() * 10 + shift + (i % 6)).ToArray();
        var rows = Enumerable.Range(0, 24).Select(i => new Row { Features = Bag(5 + i % 4, i % 2 * 3), Label = i % 2 == 0 })
            .ToArray();
        using var model = ml.BinaryClassification.Trainers.AttentionMil(new AttentionMilOptions
        {
            InstanceSize = 6, InnerSize = 16, AttentionSize = 8, MaxEpochs = 3, ValidationFraction = 0,
            EarlyStoppingPatience = null, Seed = 1, NumberOfThreads = 1,   // StandardizeFeatures: on (the default)
        }).Fit(ml.Data.LoadFromEnumerable(rows));

        var original = rows[5].Features.ToArray();
        var one = ml.Data.LoadFromEnumerable(new[] { rows[5] });
        var first = model.Transform(one);
        var passedThrough = first.GetColumn<float[]>("Features").Single();
        float score = first.GetColumn<float>("Score").Single();
        float again = model.Transform(one).GetColumn<float>("Score").Single();
        CollectionAssert.AreEqual(original, rows[5].Features, "the caller's array");
        CollectionAssert.AreEqual(original, passedThrough, "the Features column of the scored view");
        Assert.AreEqual(score, again, "a second pass over the same row");

        // The same bag inside a padded batch of several bags scores the same.
        var all = model.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float>("Score").ToArray();
        Assert.AreEqual(score, all[5], 1e-5);
    }

    private sealed class Row
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public bool Label { get; set; }
    }
}
