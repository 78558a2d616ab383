using MLNet.Attention.Runtime;
using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Vision;

/// <summary>ELA (spec shared/spec/ela.md, goldens shared/spec/goldens/ela.md) and the inverted-residual block carrying it.</summary>
[TestClass]
public sealed class ElaTests
{
    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    /// <summary>Copies every golden fill named <paramref name="prefix"/>* into the parameter or buffer of the same (stripped) name.</summary>
    private static void LoadGolden(nn.Module module, GoldenFile golden, string prefix)
    {
        var parameters = module.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var buffers = module.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        var fills = golden.Fills.Where(f => f.Key.StartsWith(prefix)).ToList();
        Assert.AreEqual(fills.Count(f => !f.Key.Contains("running_")), parameters.Count,
            $"{prefix}: parameter count differs from the reference state dict ({string.Join(", ", parameters.Keys)})");
        using var noGrad = no_grad();
        foreach (var (key, fill) in fills)
        {
            string name = key[prefix.Length..];
            Assert.IsTrue(parameters.TryGetValue(name, out var target) || buffers.TryGetValue(name, out target), $"no parameter or buffer named {name}");
            using var value = fill.Create();
            CollectionAssert.AreEqual(fill.Shape, target!.shape, $"shape of {name}");
            target.copy_(value);
        }
    }

    /// <summary>Largest |mine − golden| over the check's slices (reported in the test log).</summary>
    private static double MaxSliceDeviation(GoldenFile.Check check, Tensor actual)
        => check.Slices.SelectMany(s => GoldenFile.Slice(actual, s.Index).Zip(s.Values, (a, b) => Math.Abs(a - b))).DefaultIfEmpty(0).Max();

    private void VerifyAndLog(GoldenFile.Check check, Tensor actual, string title)
    {
        GoldenFile.Verify(check, actual, 1e-5, 1e-4, title);
        using var d = actual.to(ScalarType.Float64);
        double sumRel = check.Sum is { } s ? Math.Abs(d.sum().item<double>() - s) / Math.Max(1, Math.Abs(s)) : 0;
        TestContext.WriteLine($"{title} / {check.Quantity}: max slice |Δ| = {MaxSliceDeviation(check, actual):E2}, sum rel. error = {sumRel:E2}");
    }

    [TestMethod]
    [DataRow(0, "blk0.", 8, 8, 1, 6, false, DisplayName = "block 0 (stride 1, identity), eval")]
    [DataRow(1, "blk0.", 8, 8, 1, 6, true, DisplayName = "block 0 (stride 1, identity), train")]
    [DataRow(2, "blk1.", 16, 24, 2, 4, false, DisplayName = "block 1 (stride 2), eval")]
    [DataRow(3, "blk1.", 16, 24, 2, 4, true, DisplayName = "block 1 (stride 2), train")]
    public void InvertedResidualWithElaMatchesGolden(int caseIndex, string prefix, int inp, int oup, int stride, int t, bool train)
    {
        var golden = GoldenFile.Load("ela.md");
        using var block = new InvertedResidual(inp, oup, stride, t, c => new EfficientLocalAttention(c, ElaVariant.L));
        LoadGolden(block, golden, prefix);
        block.train(train);
        using var x = golden.Fills[prefix == "blk0." ? "x0" : "x1"].Create();
        var seen = new Dictionary<string, Tensor>();
        using var y = block.Run(x, (k, v) => seen[k] = v.detach().clone().DetachFromDisposeScope());
        var (title, checks) = golden.Cases[caseIndex];
        Assert.AreEqual(train, title.Contains("train mode"), $"case {caseIndex} is '{title}'");
        VerifyAndLog(checks.Single(c => c.Quantity == "block output"), y, title);
        if (!train)
        {
            VerifyAndLog(checks.Single(c => c.Quantity.StartsWith("debug: ELA input")), seen["attention input"], title);
            VerifyAndLog(checks.Single(c => c.Quantity.StartsWith("debug: ELA output")), seen["attention output"], title);
        }
        else
        {
            // One train-mode forward updates the depthwise BN's running statistics (momentum 0.1, unbiased variance).
            var buffers = block.named_buffers().ToDictionary(b => b.name, b => b.buffer);
            VerifyAndLog(checks.Single(c => c.Quantity.Contains("running_mean")), buffers["conv.4.running_mean"], title);
            VerifyAndLog(checks.Single(c => c.Quantity.Contains("running_var")), buffers["conv.4.running_var"], title);
            Assert.AreEqual(1L, buffers["conv.4.num_batches_tracked"].item<long>());
        }
        foreach (var v in seen.Values) v.Dispose();
    }

    [TestMethod]
    public void StandaloneElaMatchesGolden()
    {
        var golden = GoldenFile.Load("ela.md");
        // custom_att(48, 48): k 7, Conv1d groups 48/8 = 6, GroupNorm(16, 48) = ELA-L.
        using var att = new EfficientLocalAttention(48, ElaVariant.L);
        Assert.AreEqual(new ElaSettings(7, 6, 16), att.Settings);
        LoadGolden(att, golden, "att.");
        using var x = golden.Fills["x_att"].Create();
        var (title, checks) = golden.Cases[4];
        StringAssert.Contains(title, "standalone");
        foreach (bool train in new[] { false, true })
        {
            att.train(train); // no train-specific behaviour: both modes must give the golden output
            using var y = att.forward(x);
            VerifyAndLog(checks.Single(), y, $"{title} ({(train ? "train" : "eval")})");
        }
    }

    /// <summary>
    /// spec ela.md §7: x[i] = sin(0.37 i) on [1, 32, 4, 5], w[j] = 0.3 cos(0.11 j), GroupNorm at (1, 0); 1e-5 per element,
    /// sums 1e-4. The published numbers were produced with float32 arguments (<c>torch.sin(0.37 * arange(float32))</c>):
    /// filling x and w from double-precision sin/cos instead moves ELA-L's Σy by 4e-4 (checked with PyTorch 1.13), so the
    /// fill is done the same way here, with libtorch's float32 ops.
    /// </summary>
    [TestMethod]
    [DataRow(ElaVariant.T, 1.7944736, 100.1438446, new[] { 0, 0.0755701, 0.2589193, 0.4161523, 0.4691267 }, new[] { 0.0481815, 0.0152097, -0.0025369, -0.0398012, -0.092831 })]
    [DataRow(ElaVariant.B, 2.5078981, 118.8172226, new[] { 0, 0.0711259, 0.148772, 0.2160452, 0.3424072 }, new[] { 0.1634125, 0.0273696, -0.0082677, -0.0638458, -0.1268872 })]
    [DataRow(ElaVariant.S, 0.5096387, 103.5812836, new[] { 0, 0.062115, 0.1191503, 0.1440466, 0.1426605 }, new[] { 0.0551232, 0.0215415, -0.006122, -0.0799183, -0.186733 })]
    [DataRow(ElaVariant.L, 2.0118656, 103.8259430, new[] { 0, 0.038311, 0.0779796, 0.1082024, 0.0660831 }, new[] { 0.1032747, 0.1195319, -0.0358128, -0.2547149, -0.4822164 })]
    public void PresetsMatchSpecSectionSeven(ElaVariant variant, double sum, double sumAbs, double[] first, double[] last)
    {
        using var att = new EfficientLocalAttention(32, variant);
        var w = att.get_parameter("conv.weight")!;
        using (no_grad())
        {
            using var wt = (0.3 * (0.11 * arange(w.numel(), dtype: float32)).cos()).reshape(w.shape);
            w.copy_(wt);
        }
        using var x = (0.37 * arange(32 * 4 * 5, dtype: float32)).sin().reshape(1, 32, 4, 5);
        using var y = att.forward(x);
        var check = new GoldenFile.Check("y", sum, sumAbs, new() { ("0, 0, 0, :", first), ("0, 31, 3, :", last) });
        GoldenFile.Verify(check, y, 1e-5, 0, $"ELA-{variant} §7");
        using var d = y.to(float64);
        TestContext.WriteLine($"ELA-{variant} §7: max slice |Δ| = {MaxSliceDeviation(check, y):E2}, |ΔΣy| = {Math.Abs(d.sum().item<double>() - sum):E2}");
    }

    [TestMethod]
    [DataRow(64, 320, 448, 2560, 3584)]
    [DataRow(128, 640, 896, 5120, 7168)]
    [DataRow(256, 1280, 1792, 10240, 14336)]
    [DataRow(512, 2560, 3584, 20480, 28672)]
    [DataRow(1024, 5120, 7168, 40960, 57344)]
    public void ParameterCountsMatchSpecTable(int channels, int t, int b, int s, int l)
    {
        // spec ela.md §4: conv parameters per preset, plus 2C for GroupNorm γ, β.
        foreach (var (variant, conv) in new[] { (ElaVariant.T, t), (ElaVariant.B, b), (ElaVariant.S, s), (ElaVariant.L, l) })
        {
            long expected = conv + 2L * channels;
            Assert.AreEqual(expected, EfficientLocalAttention.ParameterCount(channels, variant), $"ELA-{variant} C {channels}");
            using var att = new EfficientLocalAttention(channels, variant);
            Assert.AreEqual(expected, att.parameters().Sum(p => p.numel()), $"ELA-{variant} C {channels} (module)");
        }
    }

    /// <summary>PyTorch defaults (spec §3): Conv1d U(±1/√fan_in), GroupNorm (1, 0); BatchNorm (1, 0) with running stats (0, 1).</summary>
    [TestMethod]
    public void DefaultInitialisationIsPyTorchs()
    {
        manual_seed(23);
        using var att = new EfficientLocalAttention(64); // ELA-B: fan_in = 1·7
        var p = att.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        Assert.IsTrue(p["conv.weight"].abs().max().item<float>() <= 1 / Math.Sqrt(7) + 1e-6);
        Assert.IsTrue(p["conv.weight"].abs().max().item<float>() > 0.8 / Math.Sqrt(7));
        Assert.AreEqual(0f, (p["gn.weight"] - 1).abs().max().item<float>());
        Assert.AreEqual(0f, p["gn.bias"].abs().max().item<float>());
        using var block = new InvertedResidual(16, 16, 1, 6, c => new EfficientLocalAttention(c, ElaVariant.L));
        foreach (var (name, t) in block.named_parameters().Select(x => (x.name, (Tensor)x.parameter)).Concat(block.named_buffers().Select(b => (b.name, b.buffer))))
        {
            if (name is "conv.1.weight" or "conv.4.weight" or "conv.8.weight" or "conv.6.gn.weight" || name.EndsWith("running_var"))
                Assert.AreEqual(0f, (t - 1).abs().max().item<float>(), name);
            else if (name.EndsWith(".bias") || name.EndsWith("running_mean"))
                Assert.AreEqual(0f, t.abs().max().item<float>(), name);
        }
    }

    [TestMethod]
    public void StateDictNamesAreTheReferenceKeys()
    {
        using var att = new EfficientLocalAttention(48, ElaVariant.L);
        CollectionAssert.AreEquivalent(new[] { "conv.weight", "gn.weight", "gn.bias" }, att.named_parameters().Select(p => p.name).ToArray());
        using var block = new InvertedResidual(8, 8, 1, 6, c => new EfficientLocalAttention(c, ElaVariant.L));
        var names = block.named_parameters().Select(p => p.name).ToList();
        CollectionAssert.AreEqual(new[]
        {
            "conv.0.weight", "conv.1.weight", "conv.1.bias", "conv.3.weight", "conv.4.weight", "conv.4.bias",
            "conv.6.conv.weight", "conv.6.gn.weight", "conv.6.gn.bias", "conv.7.weight", "conv.8.weight", "conv.8.bias",
        }, names);
        // Without attention the projection moves up to conv.6 / conv.7 (the plain flat-layout MobileNetV2 keys); t = 1 has no expansion.
        using var plain = new InvertedResidual(8, 8, 1, 6);
        CollectionAssert.Contains(plain.named_parameters().Select(p => p.name).ToList(), "conv.7.bias");
        using var first = new InvertedResidual(32, 16, 1, 1, c => new EfficientLocalAttention(c));
        Assert.IsNull(first.Attention, "blocks with expansion 1 carry no attention");
        CollectionAssert.AreEqual(new[] { "conv.0.weight", "conv.1.weight", "conv.1.bias", "conv.3.weight", "conv.4.weight", "conv.4.bias" },
            first.named_parameters().Select(p => p.name).ToArray());
    }

    [TestMethod]
    public void ElaIsXTimesOuterProductOfStripSigmoids()
    {
        manual_seed(17);
        // Independent check of the forward definition (H ≠ W catches the width-branch axis bug) and of extraResidual.
        using var att = new EfficientLocalAttention(16, kernelSize: 3, convGroups: 2, normGroups: 4);
        using var res = new EfficientLocalAttention(16, kernelSize: 3, convGroups: 2, normGroups: 4, extraResidual: true);
        res.load_state_dict(att.state_dict());
        att.to(float64); res.to(float64);
        using var x = randn(2, 16, 3, 5, dtype: float64);
        var w = att.get_parameter("conv.weight")!;
        Tensor Branch(Tensor z) => nn.functional.group_norm(nn.functional.conv1d(z, w, padding: 1, groups: 2), 4, eps: 1e-5).sigmoid();
        using var ah = Branch(x.mean(new long[] { 3 }));
        using var aw = Branch(x.mean(new long[] { 2 }));
        using var expected = x * ah.unsqueeze(3) * aw.unsqueeze(2);
        using var y = att.forward(x);
        using var yr = res.forward(x);
        Assert.IsTrue((y - expected).abs().max().item<double>() < 1e-12);
        Assert.IsTrue((yr - (x + expected)).abs().max().item<double>() < 1e-12);
    }

    [TestMethod]
    public void ChannelsLastInputGivesTheSameOutputGradientsAndMapsAsContiguousInput()
    {
        // The image classifier runs channels-last (NHWC strides); ELA then pools and rescales in the NHWC view.
        manual_seed(23);
        using var scope = NewDisposeScope();
        using var att = new EfficientLocalAttention(16, kernelSize: 3, convGroups: 2, normGroups: 4, extraResidual: true);
        att.to(float64);
        using (no_grad()) foreach (var p in att.parameters()) p.add_(randn_like(p) * 0.1);
        var x = randn(2, 16, 3, 5, dtype: float64);
        var xc = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2).requires_grad_(true);
        var xn = x.clone().requires_grad_(true);
        Assert.IsFalse(xc.is_contiguous(), "the test input must carry NHWC strides");

        var w = att.get_parameter("conv.weight")!;
        var yn = att.forward(xn);
        yn.pow(TorchScalars.Of(2.0)).sum().backward();
        var gradN = xn.grad!.clone();
        var gradW = w.grad!.clone();
        w.grad!.zero_();
        var yc = att.forward(xc);
        yc.pow(TorchScalars.Of(2.0)).sum().backward();
        Assert.IsTrue((yc - yn).abs().max().item<double>() < 1e-12, "forward");
        Assert.IsTrue((xc.grad! - gradN).abs().max().item<double>() < 1e-12, "input gradient");
        Assert.IsTrue((w.grad! - gradW).abs().max().item<double>() < 1e-12, "conv weight gradient");
        Assert.IsTrue(yc.permute(0, 2, 3, 1).is_contiguous(), "the output keeps the channels-last layout");

        using (no_grad())
        {
            var evalY = att.forward(xc.detach());
            Assert.IsTrue((evalY - yn.detach()).abs().max().item<double>() < 1e-12, "forward without autograd (in-place path)");
            using var capture = new AttentionMapCapture();
            att.forward(xc.detach());
            var (ah, aw) = att.AttentionMaps(xn.detach());
            CollectionAssert.AreEqual(ah.shape, capture.Maps[0].Height!.shape);
            CollectionAssert.AreEqual(aw.shape, capture.Maps[0].Width!.shape);
            Assert.IsTrue((capture.Maps[0].Height! - ah).abs().max().item<double>() < 1e-12, "captured a_h");
            Assert.IsTrue((capture.Maps[0].Width! - aw).abs().max().item<double>() < 1e-12, "captured a_w");
        }
    }

    [TestMethod]
    public void ElaGradientsMatchFiniteDifferences()
    {
        manual_seed(19);
        using var att = new EfficientLocalAttention(16, ElaVariant.L); // k 7, groups 2, GroupNorm(16)
        using var wide = new EfficientLocalAttention(16, kernelSize: 3, convGroups: 4, normGroups: 4, extraResidual: true);
        foreach (var m in new[] { att, wide })
        {
            m.to(float64);
            using (no_grad()) foreach (var p in m.parameters()) p.add_(randn_like(p) * 0.1); // move γ, β off (1, 0)
            using var x = randn(2, 16, 3, 4, dtype: float64).requires_grad_(true);
            GradientCheck.Verify(m, () => m.forward(x), x);
        }
    }

    [TestMethod]
    [DataRow(1, false)]
    [DataRow(2, true)]
    public void InvertedResidualWithElaGradientsMatchFiniteDifferences(int stride, bool train)
    {
        manual_seed(20 + stride);
        using var block = new InvertedResidual(4, 4, stride, 4, c => new EfficientLocalAttention(c, ElaVariant.L));
        block.to(float64).train(train);
        if (!train)
        {
            using var noGrad = no_grad();
            foreach (var (name, buffer) in block.named_buffers().Where(b => b.name.Contains("running_")))
                buffer.copy_(name.EndsWith("var") ? rand_like(buffer) + 0.5 : randn_like(buffer) * 0.1);
        }
        using var x = randn(2, 4, 5, 3, dtype: float64).requires_grad_(true);
        var wrt = block.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Append(("x", x)).ToList();
        GradientCheck.Verify(() => block.forward(x), wrt, maxElementsPerTensor: 8);
    }

    // ---- invalid configurations: each message says what is wrong and what to change ----

    [TestMethod]
    public void RejectsChannelsNotDivisibleByGroupNormGroups()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new EfficientLocalAttention(24, ElaVariant.B));
        StringAssert.Contains(ex.Message, "GroupNorm(16) needs the channel count to be divisible by 16; got C = 24");
        StringAssert.Contains(ex.Message, "normGroups = a divisor of 24 (e.g. 12)");
    }

    [TestMethod]
    public void RejectsElaTOnChannelsNotDivisibleBy32()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new EfficientLocalAttention(48, ElaVariant.T));
        StringAssert.Contains(ex.Message, "ELA-T: GroupNorm(32) needs the channel count to be divisible by 32; got C = 48");
    }

    [TestMethod]
    public void RejectsEighthGroupPresetOnChannelsNotDivisibleBy8()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new EfficientLocalAttention(20, ElaVariant.L));
        StringAssert.Contains(ex.Message, "ELA-L uses Conv1d groups = C/8");
        StringAssert.Contains(ex.Message, "got C = 20. Use a channel count that is a multiple of 16");
    }

    [TestMethod]
    public void RejectsConvGroupsNotDividingChannels()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new EfficientLocalAttention(48, kernelSize: 7, convGroups: 5, normGroups: 16));
        StringAssert.Contains(ex.Message, "Conv1d groups = 5 must be positive and divide the channel count C = 48");
        Assert.AreEqual("convGroups", ex.ParamName);
    }

    [TestMethod]
    public void RejectsEvenKernel()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new EfficientLocalAttention(48, kernelSize: 4, convGroups: 48, normGroups: 16));
        StringAssert.Contains(ex.Message, "kernelSize = 4 must be a positive odd number");
    }

    [TestMethod]
    public void RejectsNonPositiveChannels()
        => Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new EfficientLocalAttention(0));

    [TestMethod]
    public void RejectsInputWithWrongChannelsOrRank()
    {
        using var att = new EfficientLocalAttention(48);
        using var wrongChannels = zeros(1, 32, 4, 5);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => att.forward(wrongChannels));
        StringAssert.Contains(ex.Message, "expects an input of shape [batch, 48 (channels), height, width]; got [1, 32, 4, 5]");
        using var rank3 = zeros(48, 4, 5);
        ex = Assert.ThrowsExactly<ArgumentException>(() => att.forward(rank3));
        StringAssert.Contains(ex.Message, "got [48, 4, 5]");
    }

    [TestMethod]
    public void InvertedResidualRejectsBadStride()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new InvertedResidual(8, 8, 3, 6));
        StringAssert.Contains(ex.Message, "stride = 3 is not supported");
    }

    [TestMethod]
    public void InvertedResidualNamesTheBlockWhenTheAttentionDoesNotFit()
    {
        // hidden width 4·6 = 24 is not divisible by 16 (GroupNorm of ELA-B).
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new InvertedResidual(4, 4, 1, 6, c => new EfficientLocalAttention(c)));
        StringAssert.Contains(ex.Message, "hidden width 24");
        StringAssert.Contains(ex.Message, "GroupNorm(16) needs the channel count to be divisible by 16");
    }

    [TestMethod]
    public void InvertedResidualRejectsWrongInput()
    {
        using var block = new InvertedResidual(8, 8, 1, 6);
        using var x = zeros(1, 4, 5, 5);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => block.forward(x));
        StringAssert.Contains(ex.Message, "[batch, 8 (channels), height, width]; got [1, 4, 5, 5]");
    }
}
