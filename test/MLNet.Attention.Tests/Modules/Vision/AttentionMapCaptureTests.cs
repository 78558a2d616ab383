using MLNet.Attention.Runtime;
using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Vision;

/// <summary>Capturing ELA's and ULSAM's maps during a forward: same outputs, the maps the blocks really used.</summary>
[TestClass]
public sealed class AttentionMapCaptureTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    private static float[] Values(Tensor t) => t.contiguous().data<float>().ToArray();

    private static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        double max = (expected - actual).abs().max().item<float>();
        Assert.IsTrue(max <= tolerance, $"{what}: max |Δ| = {max}");
    }

    [TestMethod]
    public void ElaRecordsTheStripAttentionsItMultipliesBy()
    {
        using var scope = NewDisposeScope();
        using var generator = manual_seed(3);
        using var ela = new EfficientLocalAttention(32, ElaVariant.L);
        var x = randn(2, 32, 6, 5);
        var plain = ela.call(x);
        Tensor captured;
        using (var capture = new AttentionMapCapture())
        {
            captured = ela.call(x);
            Assert.AreEqual(1, capture.Maps.Count);
            var maps = capture.Maps[0];
            Assert.AreSame(ela, maps.Block);
            Assert.IsNull(maps.Subspaces);
            var (ah, aw) = ela.AttentionMaps(x);
            CollectionAssert.AreEqual(new long[] { 2, 32, 6, 1 }, maps.Height!.shape);
            CollectionAssert.AreEqual(new long[] { 2, 32, 1, 5 }, maps.Width!.shape);
            CollectionAssert.AreEqual(Values(ah), Values(maps.Height));
            CollectionAssert.AreEqual(Values(aw), Values(maps.Width));
            Assert.IsFalse(maps.Height.requires_grad, "captured maps are detached");
            AssertClose(x * ah * aw, plain, 1e-6, "forward = x·a_h·a_w");

            // SpatialMap: channel mean of a_h ⊗ a_w at the block's resolution; values in (0, 1).
            var own = maps.SpatialMap(6, 5);
            AssertClose(einsum("bci,bcj->bij", ah.squeeze(3), aw.squeeze(2)).div(TorchScalars.Of(32.0)), own, 1e-6, "spatial map");
            Assert.IsTrue(own.min().item<float>() > 0 && own.max().item<float>() < 1);
            CollectionAssert.AreEqual(new long[] { 2, 12, 10 }, maps.SpatialMap(12, 10).shape);
        }
        CollectionAssert.AreEqual(Values(plain), Values(captured), "capturing does not change the output");
    }

    [TestMethod]
    [DataRow(false, DisplayName = "eval (fused path)")]
    [DataRow(true, DisplayName = "train (per-subspace path)")]
    public void UlsamRecordsItsSubspaceSoftmaxMaps(bool train)
    {
        using var scope = NewDisposeScope();
        using var generator = manual_seed(5);
        using var ulsam = new UltraLightSubspaceAttention(16, subspaces: 4);
        using var twin = new UltraLightSubspaceAttention(16, subspaces: 4);
        twin.load_state_dict(ulsam.state_dict());
        ulsam.train(train);
        twin.train(train);
        var x = randn(3, 16, 5, 7);
        var plain = twin.call(x);
        using var capture = new AttentionMapCapture(ulsam);
        var captured = ulsam.call(x);
        CollectionAssert.AreEqual(Values(plain), Values(captured), "capturing does not change the output");
        Assert.AreEqual(1, capture.Maps.Count);
        var maps = capture.Maps[0].Subspaces!;
        CollectionAssert.AreEqual(new long[] { 3, 4, 5, 7 }, maps.shape);
        if (!train)
            AssertClose(ulsam.AttentionMaps(x).view(3, 4, 5, 7), maps, 1e-6, "maps = AttentionMaps(x)");
        AssertClose(ones(3, 4), maps.sum(new long[] { 2, 3 }), 1e-5, "each map sums to 1");
        AssertClose(maps.mean(new long[] { 1 }), capture.Maps[0].SpatialMap(5, 7), 1e-7, "spatial map = mean over subspaces");
    }

    [TestMethod]
    public void OnlyTheAskedBlocksOnThisThreadAreRecordedUntilDisposed()
    {
        using var scope = NewDisposeScope();
        using var net = MobileNetV2.WithEla(ElaVariant.B, numClasses: 3, widthMultiplier: 0.35, inputChannels: 3, cifarStem: true);
        net.eval();
        var blocks = net.modules().OfType<EfficientLocalAttention>().ToArray();
        Assert.AreEqual(16, blocks.Length);
        var x = randn(1, 3, 32, 32);
        using (var all = new AttentionMapCapture())
        {
            net.call(x);
            Assert.AreEqual(16, all.Maps.Count);
            CollectionAssert.AreEqual(blocks, all.Maps.Select(m => m.Block).ToArray(), "modules() lists the blocks in forward order");
            using var inner = new AttentionMapCapture(blocks[^1]);
            var other = Task.Run(() => { using var s = NewDisposeScope(); using var _ = inference_mode(); net.call(x); }).Wait(30_000);
            Assert.IsTrue(other);
            Assert.AreEqual(0, inner.Maps.Count, "another thread's forward is not recorded");
            net.call(x);
            Assert.AreEqual(1, inner.Maps.Count, "the inner capture takes the block it asks for");
            Assert.AreEqual(31, all.Maps.Count, "the outer one still takes the other blocks");
            CollectionAssert.AreEqual(new long[] { 1, blocks[^1].Channels, 4, 1 }, inner.Maps[0].Height!.shape, "deepest block: 4 × 4 at 32 × 32");
        }
        using var after = new AttentionMapCapture(blocks[0]);
        after.Dispose();
        net.call(x);
        Assert.AreEqual(0, after.Maps.Count);
        Assert.ThrowsExactly<ArgumentException>(() => new AttentionMapCapture(net));
    }
}
