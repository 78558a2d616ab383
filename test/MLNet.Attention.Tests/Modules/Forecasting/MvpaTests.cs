using MLNet.Attention.Forecasting;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Forecasting;

[TestClass]
public sealed class MvpaTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    private static readonly string[] InputNames = { "x", "positional_embedding", "channel_embedding" };

    /// <summary>The golden configuration (goldens/mvpa.md "Configuration"): d 20, H 4, H_kv 2, n_inner 41.</summary>
    private static MvpFormerBlock GoldenBlock(GoldenFile golden)
    {
        var block = new MvpFormerBlock(20, 4, kvHeads: 2, innerWidth: 41);
        var ours = block.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var reference = golden.Fills.Where(f => !InputNames.Contains(f.Key)).ToList();
        Assert.AreEqual(reference.Count, ours.Count, "parameter count differs from the reference state dict");
        CollectionAssert.AreEqual(reference.Select(f => f.Key).ToList(), ours.Keys.ToList(), "names or order differ from the reference state dict");
        using (no_grad())
            foreach (var (name, fill) in reference)
            {
                using var value = fill.Create();
                ours[name].copy_(value);
            }
        block.eval();
        return block;
    }

    [TestMethod]
    public void AttentionMatchesGoldenValuesAndProbabilities()
    {
        var golden = GoldenFile.Load("mvpa.md");
        using var block = GoldenBlock(golden);
        using var x = golden.Fills["x"].Create();
        using var pos = golden.Fills["positional_embedding"].Create();
        using var chan = golden.Fills["channel_embedding"].Create();
        var (output, w) = block.Attention.ForwardWithProbabilities(x, pos, chan);
        using var _o = output;
        using var _w = w;
        var (title, checks) = golden.Cases.Single(c => c.CaseTitle.StartsWith("attention layer alone"));
        GoldenFile.Verify(checks.Single(c => c.Quantity.StartsWith("attention output")), output, 1e-5, 1e-4, title);
        CollectionAssert.AreEqual(new long[] { 2, 4, 45, 45 }, w.shape);
        GoldenFile.Verify(checks.Single(c => c.Quantity.StartsWith("attention probabilities")), w, 1e-5, 1e-4, title);

        // Probability slices and checksum of goldens/mvpa.md (their index syntax ":6" / "-6:" is not parsed by GoldenFile).
        void Expect(Tensor actual, double[] expected, string label)
        {
            using var d = actual.to(float64).contiguous();
            var got = d.data<double>().ToArray();
            Assert.AreEqual(expected.Length, got.Length, label);
            for (int i = 0; i < got.Length; i++)
                Assert.IsTrue(Math.Abs(got[i] - expected[i]) <= 1e-5 + 1e-4 * Math.Abs(expected[i]), $"{label}[{i}]: {got[i]} vs golden {expected[i]}");
        }
        Expect(w[0, 0, 33, ..6], new[] { 0.033019789, 0.033138879, 0.017019738, 0.03201424, 0.045434408, 0.014130566 }, "w[0, 0, 33, :6]");
        Expect(w[0, 0, 42, ..6], new[] { 0.023246028, 0.015473995, 0.022145145, 0.039563321, 0.01072415, 0.020644955 }, "w[0, 0, 42, :6]");
        Expect(w[1, 3, 44, 39..], new[] { 0.016851252, 0.014685588, 0.017490689, 0.0167241, 0.014588742, 0.016497053 }, "w[-1, -1, -1, -6:]");
        using var keyIndex = arange(45, dtype: float64);
        double checksum = (w.to(float64) * keyIndex).sum().item<double>();
        Assert.AreEqual(3847.599, checksum, 1e-5 * 3847.599, "checksum sum w[b,h,r,k]·k");
    }

    [TestMethod]
    public void BlockMatchesGoldenValues()
    {
        var golden = GoldenFile.Load("mvpa.md");
        using var block = GoldenBlock(golden);
        using var x = golden.Fills["x"].Create();
        using var pos = golden.Fills["positional_embedding"].Create();
        using var chan = golden.Fills["channel_embedding"].Create();
        using var y = block.call(x, pos, chan);
        var (title, checks) = golden.Cases.Single(c => c.CaseTitle.StartsWith("full block"));
        GoldenFile.Verify(checks.Single(c => c.Quantity.StartsWith("block output")), y, 1e-5, 1e-4, title);
    }

    [TestMethod]
    public void Ln2IsRegisteredButUnused()
    {
        using var block = new MvpFormerBlock(8, 2, 1, 12);
        block.eval();
        using var x = randn(1, 3, 2, 8);
        using var pos = randn(1, 3, 8);
        using var chan = randn(1, 2, 8);
        using var before = block.call(x, pos, chan);
        var ln2 = block.named_parameters().Single(p => p.name == "ln_2.weight").parameter;
        using (no_grad()) ln2.mul_(3.0);
        using var after = block.call(x, pos, chan);
        Assert.IsTrue(before.allclose(after, rtol: 0, atol: 0), "ln_2 must not influence the output (reference quirk)");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void IsCausalInTime(bool wholeBlock)
    {
        manual_seed(3);
        using var block = new MvpFormerBlock(16, 4, 2, 24, window: 2);
        block.eval();
        using var x = randn(2, 6, 3, 16);
        using var pos = randn(1, 6, 16);
        using var chan = randn(1, 3, 16);
        using var changed = x.clone();
        using (no_grad()) changed[.., 4..].add_(randn(2, 2, 3, 16));
        Tensor Run(Tensor input) => wholeBlock ? block.call(input, pos, chan) : block.Attention.call(input, pos, chan);
        using var a = Run(x);
        using var b = Run(changed);
        Assert.IsTrue(a[.., ..4].allclose(b[.., ..4], rtol: 0, atol: 1e-6), "segments before the change must not move");
        Assert.IsTrue((a[.., 4..] - b[.., 4..]).abs().max().item<float>() > 1e-3, "later segments must see the change");
        if (!wholeBlock)
        {
            var (o, w) = block.Attention.ForwardWithProbabilities(x, pos, chan);
            using var _o = o;
            using var _w = w;
            // Query segment 1 (tokens 3..5) gives exactly zero weight to keys of segments 2.. (tokens 6..).
            Assert.AreEqual(0.0, w[.., .., 3..6, 6..].abs().max().item<float>());
            // Same segment, other channels: visible (bidirectional across channels).
            Assert.IsTrue(w[.., .., 3, 5].min().item<float>() > 0);
        }
    }

    /// <summary>The content window zeroes the content term only for |t − t′| &gt; window, except in the last segment.</summary>
    [TestMethod]
    public void ContentWindowAffectsOnlyDistantPairsBeforeTheLastSegment()
    {
        manual_seed(5);
        using var narrow = new MultiVariateParallelAttention(8, 2, 1, window: 1);
        using var wide = new MultiVariateParallelAttention(8, 2, 1, window: 100);
        using (no_grad()) foreach (var p in narrow.parameters()) p.mul_(20.0); // make the content term matter
        wide.load_state_dict(narrow.state_dict());
        narrow.eval(); wide.eval();
        using var x = randn(1, 5, 2, 8);
        using var pos = randn(5, 8);
        using var chan = randn(2, 8);
        using var a = narrow.call(x, pos, chan);
        using var b = wide.call(x, pos, chan);
        // Segments 0 and 1 only see keys within distance 1; segment 4 (the last) sees all content: identical.
        Assert.IsTrue(a[.., ..2].allclose(b[.., ..2], rtol: 0, atol: 1e-6));
        Assert.IsTrue(a[.., 4].allclose(b[.., 4], rtol: 0, atol: 1e-6), "the last segment sees the content of every key");
        Assert.IsTrue((a[.., 2..4] - b[.., 2..4]).abs().max().item<float>() > 1e-4, "segments 2 and 3 have keys outside the window");
    }

    /// <summary>
    /// The reference's global_att = false leaves the content term (q + u)·k out entirely (layers/mvpa.py computes and adds
    /// global_att only under `if self.global_att`), so the keys and u have no influence; time and channel terms remain.
    /// (An earlier version windowed the last segment instead, which is not a reference behaviour.)
    /// </summary>
    [TestMethod]
    public void WithoutGlobalAttentionTheContentTermIsLeftOut()
    {
        manual_seed(5);
        using var noGlobal = new MultiVariateParallelAttention(8, 2, 1, window: 1, globalAttention: false, attentionDropout: 0, residualDropout: 0);
        using var withGlobal = new MultiVariateParallelAttention(8, 2, 1, window: 1, attentionDropout: 0, residualDropout: 0);
        using (no_grad()) foreach (var p in noGlobal.parameters()) p.mul_(20.0);
        withGlobal.load_state_dict(noGlobal.state_dict());
        Assert.IsFalse(noGlobal.GlobalAttention);
        using var x = randn(1, 5, 2, 8);
        using var pos = randn(5, 8);
        using var chan = randn(2, 8);
        using var before = noGlobal.call(x, pos, chan);
        using var full = withGlobal.call(x, pos, chan);
        Assert.IsTrue((before - full).abs().max().item<float>() > 1e-4, "the content term matters when global_att is on");
        var named = noGlobal.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using (no_grad())
        {
            named["c_attn.weight"][..4].add_(1.0);   // key rows (kv width 4): only used by the content term
            named["attn_bias"][..4].add_(1.0);       // u: only used by the content term
        }
        using var after = noGlobal.call(x, pos, chan);
        Assert.AreEqual(0f, (after - before).abs().max().item<float>(), 1e-6f, "keys and u must not matter without global_att");
    }

    [TestMethod]
    public void AttentionGradientsMatchFiniteDifferences()
    {
        manual_seed(11);
        using var attn = new MultiVariateParallelAttention(8, 4, 2, window: 1, attentionDropout: 0, residualDropout: 0);
        attn.to(float64).eval();
        using (no_grad()) foreach (var p in attn.parameters()) p.mul_(10.0); // N(0, 0.02) is too flat to exercise the softmax
        using var x = randn(1, 4, 2, 8, dtype: float64).requires_grad_(true);
        using var pos = randn(1, 4, 8, dtype: float64).requires_grad_(true);
        using var chan = randn(1, 2, 8, dtype: float64).requires_grad_(true);
        GradientCheck.Verify(attn, () => attn.call(x, pos, chan), x, pos, chan);
    }

    [TestMethod]
    public void BlockGradientsMatchFiniteDifferences()
    {
        manual_seed(12);
        using var block = new MvpFormerBlock(8, 2, 1, 6, window: 1, attentionDropout: 0, residualDropout: 0);
        block.to(float64).eval();
        using (no_grad()) foreach (var (name, p) in block.named_parameters()) if (!name.StartsWith("ln_")) p.mul_(10.0);
        using var x = randn(1, 4, 2, 8, dtype: float64).requires_grad_(true);
        using var pos = randn(4, 8, dtype: float64).requires_grad_(true);
        using var chan = randn(2, 8, dtype: float64).requires_grad_(true);
        // ln_2 is unused by the reference forward (no gradient reaches it), so it is left out of the check.
        var wrt = block.named_parameters().Where(p => p.name != "ln_2.weight").Select(p => (p.name, (Tensor)p.parameter))
            .Concat(new[] { ("x", x), ("positions", pos), ("channels", chan) }).ToList();
        GradientCheck.Verify(() => block.call(x, pos, chan), wrt);
        Assert.IsNull(block.named_parameters().Single(p => p.name == "ln_2.weight").parameter.grad);
    }

    [TestMethod]
    public void ParameterCountsMatchSpec()
    {
        // Golden configuration: the 11 reference tensors, 4130 numbers.
        using (var block = new MvpFormerBlock(20, 4, 2, 41))
        {
            Assert.AreEqual(4130L, MvpFormerBlock.ParameterCount(20, 4, 2, 41));
            Assert.AreEqual(4130L, block.parameters().Sum(p => p.numel()));
        }
        // MVPFormer-S block (d 768, H 12, H_kv 4, n_inner 1728), built for real.
        using (var block = new MvpFormerBlock(768, 12, 4, 1728))
            Assert.AreEqual(MvpFormerBlock.ParameterCount(768, 12, 4, 1728), block.parameters().Sum(p => p.numel()));
        using (var emb = new MvpFormerEmbeddings(768))
            Assert.AreEqual(MvpFormerEmbeddings.ParameterCount(768), emb.parameters().Sum(p => p.numel()));

        // mvpa.md §4: whole generative model = WaveEncoder (RMSNorm 2610 + Linear 2610→d) + embeddings (110 + 128 rows)
        // + layers × block + final RMSNorm + head Linear(d→d) + seizure embeddings [3, 2560]; classification swaps the
        // head for Linear(d→2).
        static long Model(int d, int h, int hkv, int inner, int layers, bool generative)
            => 2610 + 2610L * d + MvpFormerEmbeddings.ParameterCount(d) + layers * MvpFormerBlock.ParameterCount(d, h, hkv, inner)
               + d + (generative ? (long)d * d : 2L * d) + 3 * 2560;
        Assert.AreEqual(74_184_498L, Model(768, 12, 4, 1728, 12, true), "MVPFormer-S, generative");
        Assert.AreEqual(73_596_210L, Model(768, 12, 4, 1728, 12, false), "MVPFormer-S, classification");
        Assert.AreEqual(1_243_336_754L, Model(2048, 16, 8, 5632, 24, true), "MVPFormer-M, generative");
        Assert.AreEqual(1_239_146_546L, Model(2048, 16, 8, 5632, 24, false), "MVPFormer-M, classification");
    }

    [TestMethod]
    public void EmbeddingsHandOutLeadingRowsAndDriveTheBlock()
    {
        manual_seed(4);
        using var emb = new MvpFormerEmbeddings(16, maxSegments: 8, maxChannels: 4);
        using var block = new MvpFormerBlock(16, 4, 2, 32);
        block.eval();
        using var x = randn(2, 5, 3, 16);
        var (pos, chan) = emb.call(x);
        CollectionAssert.AreEqual(new long[] { 1, 5, 16 }, pos.shape);
        CollectionAssert.AreEqual(new long[] { 1, 3, 16 }, chan.shape);
        using var y = block.call(x, pos, chan);
        CollectionAssert.AreEqual(x.shape, y.shape);
        // Batch-sized rows give the same result as broadcast [1, ·, d] rows and as plain [T, d] rows.
        using var y2 = block.call(x, pos.expand(2, 5, 16), chan[0]);
        Assert.IsTrue(y.allclose(y2, rtol: 0, atol: 1e-6));
    }

    [TestMethod]
    public void TrainingDropoutIsReproducibleWithASeed()
    {
        manual_seed(1);
        using var block = new MvpFormerBlock(8, 2, 1, 12);
        block.train();
        using var x = randn(1, 3, 2, 8);
        using var pos = randn(3, 8);
        using var chan = randn(2, 8);
        manual_seed(42);
        using var a = block.call(x, pos, chan);
        manual_seed(42);
        using var b = block.call(x, pos, chan);
        Assert.IsTrue(a.allclose(b, rtol: 0, atol: 0));
    }

    [TestMethod]
    public void RejectsHeadsNotDividingTheWidth()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new MultiVariateParallelAttention(20, 3));
        StringAssert.Contains(ex.Message, "divide the model width 20");
        StringAssert.Contains(ex.Message, "Choose heads among the divisors");
        ex = Assert.ThrowsExactly<ArgumentException>(() => new MvpFormerBlock(20, 6, 2, 41));
        StringAssert.Contains(ex.Message, "divide the model width 20");
    }

    [TestMethod]
    public void RejectsKvHeadsNotDividingTheHeads()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new MultiVariateParallelAttention(24, 4, 3));
        StringAssert.Contains(ex.Message, "kvHeads = 3 must be positive and divide heads = 4");
        StringAssert.Contains(ex.Message, "Choose kvHeads among the divisors of 4");
    }

    [TestMethod]
    public void RejectsNegativeWindowAndBadDropout()
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MultiVariateParallelAttention(8, 2, window: -1));
        StringAssert.Contains(ex.Message, "0 or more segments");
        var d = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MultiVariateParallelAttention(8, 2, attentionDropout: 1.0));
        StringAssert.Contains(d.Message, "[0, 1)");
        var inner = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MvpFormerBlock(8, 2, innerWidth: 0));
        StringAssert.Contains(inner.Message, "inner width must be positive");
    }

    [TestMethod]
    public void RejectsWrongInputRankOrWidth()
    {
        using var attn = new MultiVariateParallelAttention(8, 2);
        using var pos = zeros(3, 8);
        using var chan = zeros(2, 8);
        using var rank3 = zeros(2, 6, 8);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => attn.call(rank3, pos, chan));
        StringAssert.Contains(ex.Message, "[batch, segments T, channels C, 8 (model width)]; got [2, 6, 8]");
        using var wide = zeros(2, 3, 2, 9);
        ex = Assert.ThrowsExactly<ArgumentException>(() => attn.call(wide, pos, chan));
        StringAssert.Contains(ex.Message, "got [2, 3, 2, 9]");
        using var block = new MvpFormerBlock(8, 2);
        using var rank3b = zeros(2, 6, 8);
        ex = Assert.ThrowsExactly<ArgumentException>(() => block.call(rank3b, pos, chan));
        StringAssert.Contains(ex.Message, "Reshape the token grid to rank 4");
    }

    [TestMethod]
    public void RejectsPositionalRowsThatDoNotMatchTheSegments()
    {
        using var attn = new MultiVariateParallelAttention(8, 2);
        using var x = zeros(2, 3, 2, 8);
        using var pos = zeros(1, 4, 8);
        using var chan = zeros(1, 2, 8);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => attn.call(x, pos, chan));
        StringAssert.Contains(ex.Message, "positional embedding has 4 rows but the input has segments T = 3");
        StringAssert.Contains(ex.Message, "Pass rows 0..2");
        using var badWidth = zeros(1, 3, 7);
        ex = Assert.ThrowsExactly<ArgumentException>(() => attn.call(x, badWidth, chan));
        StringAssert.Contains(ex.Message, "must have shape [3, 8] or [1 or 2 (batch), 3, 8]; got [1, 3, 7]");
    }

    [TestMethod]
    public void RejectsChannelRowsThatDoNotMatchTheChannels()
    {
        using var attn = new MultiVariateParallelAttention(8, 2);
        using var x = zeros(2, 3, 2, 8);
        using var pos = zeros(1, 3, 8);
        using var chan = zeros(1, 5, 8);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => attn.call(x, pos, chan));
        StringAssert.Contains(ex.Message, "channel embedding has 5 rows but the input has channels C = 2");
        using var wrongBatch = zeros(3, 2, 8);
        ex = Assert.ThrowsExactly<ArgumentException>(() => attn.call(x, pos, wrongBatch));
        StringAssert.Contains(ex.Message, "[1 or 2 (batch), 2, 8]; got [3, 2, 8]");
    }

    [TestMethod]
    public void EmbeddingsRejectTooManySegmentsOrChannels()
    {
        using var emb = new MvpFormerEmbeddings(8, maxSegments: 4, maxChannels: 3);
        using var tooLong = zeros(1, 5, 2, 8);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => emb.call(tooLong));
        StringAssert.Contains(ex.Message, "5 segments but the positional table has 4 rows");
        StringAssert.Contains(ex.Message, "larger maxSegments");
        using var tooWide = zeros(1, 2, 4, 8);
        ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => emb.call(tooWide));
        StringAssert.Contains(ex.Message, "4 channels but the channel table has 3 rows");
        using var rank3 = zeros(1, 2, 8);
        var rank = Assert.ThrowsExactly<ArgumentException>(() => emb.call(rank3));
        StringAssert.Contains(rank.Message, "token grid [batch, segments T, channels C, width]");
    }
}
