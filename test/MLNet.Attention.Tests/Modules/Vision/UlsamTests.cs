using MLNet.Attention.Runtime;
using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Vision;

[TestClass]
public sealed class UlsamTests
{
    private const double Atol = 1e-5, Rtol = 1e-4;   // goldens/ulsam.md: suggested element-wise tolerance of every case

    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    /// <summary>The harness of goldens/ulsam.md ("Configuration"): a Sequential whose index 6 is ULSAM(12, g = 3).</summary>
    private static nn.Module<Tensor, Tensor>[] StageLayers() => new nn.Module<Tensor, Tensor>[]
    {
        nn.Conv2d(5, 5, 3, stride: 1, padding: 1, groups: 5, bias: false), nn.BatchNorm2d(5), nn.ReLU(),
        nn.Conv2d(5, 12, 1, bias: false), nn.BatchNorm2d(12), nn.ReLU(),
        new UltraLightSubspaceAttention(12, 3),
        nn.Conv2d(12, 12, 3, stride: 2, padding: 1, groups: 12, bias: false), nn.BatchNorm2d(12), nn.ReLU(),
        nn.Conv2d(12, 10, 1, bias: false), nn.BatchNorm2d(10), nn.ReLU(),
    };

    /// <summary>Fills every parameter and running statistic of <paramref name="module"/> from the golden keys "prefix + name".</summary>
    private static void LoadGolden(nn.Module module, GoldenFile golden, string prefix)
    {
        var state = module.state_dict().Where(kv => !kv.Key.EndsWith("num_batches_tracked")).ToList();
        Assert.AreEqual(golden.Fills.Keys.Count(k => k.StartsWith(prefix)), state.Count, "state-dict size differs from the reference");
        using var noGrad = no_grad();
        foreach (var (name, t) in state)
        {
            Assert.IsTrue(golden.Fills.TryGetValue(prefix + name, out var fill), $"no golden fill for {prefix}{name}");
            using var value = fill!.Create();
            t.copy_(value.reshape(t.shape));
        }
    }

    private static Tensor Buffer(nn.Module module, string name) => module.named_buffers().Single(b => b.name == name).buffer;

    private static GoldenFile.Check Quantity(List<GoldenFile.Check> checks, string prefix) => checks.Single(c => c.Quantity.StartsWith(prefix));

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void StandaloneMatchesGolden(bool train)
    {
        var golden = GoldenFile.Load("ulsam.md");
        var (title, checks) = golden.Cases[train ? 1 : 0];
        using var ulsam = new UltraLightSubspaceAttention(12, 3);
        LoadGolden(ulsam, golden, "stage.6.");
        ulsam.train(train);
        using var x = golden.Fills["x_ulsam"].Create();
        if (!train)
        {
            using var maps = ulsam.AttentionMaps(x);            // [B, g, H·W]; eval mode: no state change
            using var a0 = maps[.., 0..1, ..];
            GoldenFile.Verify(Quantity(checks, "debug: subspace 0 attention map"), a0, Atol, Rtol, title);
        }
        using var y = ulsam.call(x);
        GoldenFile.Verify(Quantity(checks, "output"), y, Atol, Rtol, title);
        if (train)
        {
            // Momentum 0.9: running = 0.1·running + 0.9·batch statistic (unbiased variance).
            GoldenFile.Verify(Quantity(checks, "subspace 0 bn_dws running_mean"), Buffer(ulsam, "subspaces.0.bn_dws.running_mean"), Atol, Rtol, title);
            GoldenFile.Verify(Quantity(checks, "subspace 0 bn_dws running_var"), Buffer(ulsam, "subspaces.0.bn_dws.running_var"), Atol, Rtol, title);
            GoldenFile.Verify(Quantity(checks, "subspace 0 bn_point running_mean"), Buffer(ulsam, "subspaces.0.bn_point.running_mean"), Atol, Rtol, title);
        }
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void ConvStageMatchesGolden(bool train)
    {
        var golden = GoldenFile.Load("ulsam.md");
        var (title, checks) = golden.Cases[train ? 3 : 2];
        var layers = StageLayers();
        using var stage = nn.Sequential(layers);
        LoadGolden(stage, golden, "stage.");
        stage.train(train);
        using var x = golden.Fills["x_stage"].Create();
        using var y = stage.call(x);
        GoldenFile.Verify(Quantity(checks, "stage output"), y, Atol, Rtol, title);
        if (train)
            GoldenFile.Verify(Quantity(checks, "ULSAM subspace 0 bn_dws running_mean"), Buffer(layers[6], "subspaces.0.bn_dws.running_mean"), Atol, Rtol, title);
        else
        {
            using var scope = NewDisposeScope();
            var u = x;
            for (int i = 0; i <= 6; i++) u = layers[i].call(u);   // eval mode: re-running the prefix changes nothing
            GoldenFile.Verify(Quantity(checks, "debug: ULSAM output"), u, Atol, Rtol, title);
        }
    }

    /// <summary>ulsam.md §7 (spec): 8 channels, g = 2, hand-set parameters, x[i] = cos(0.23·i) of shape [2, 8, 3, 4].</summary>
    [TestMethod]
    [DataRow(false, 0.8330089, 132.7615051, new[] { 1.0807452, 1.0522853, 0.9688661, 0.8351458 })]
    [DataRow(true, 0.6477507, 133.3795319, new[] { 1.0809731, 1.0525072, 0.9686086, 0.8336962 })]
    public void MatchesSpecSectionSevenCase(bool train, double sum, double sumAbs, double[] firstRow)
    {
        using var ulsam = new UltraLightSubspaceAttention(8, 2);
        using (no_grad())
        {
            foreach (var (name, p) in ulsam.named_parameters())
            {
                if (name.EndsWith("conv_dws.weight")) p.fill_(0.5);
                else if (name.EndsWith("conv_dws.bias")) p.fill_(0.1);
                else if (name.EndsWith("conv_point.weight")) p.copy_(linspace(-0.5, 0.5, 4).reshape(1, 4, 1, 1));
                else if (name.EndsWith("conv_point.bias")) p.fill_(0.2);
            }
        }
        ulsam.train(train);
        var xs = Enumerable.Range(0, 2 * 8 * 3 * 4).Select(i => (float)Math.Cos(0.23 * i)).ToArray();
        using var x = tensor(xs).reshape(2, 8, 3, 4);
        using var y = ulsam.call(x);
        GoldenFile.Verify(new GoldenFile.Check("y", sum, sumAbs, new() { ("0, 0, 0, :", firstRow) }), y, 1e-5, 0, "§7");
        if (train)
            Assert.AreEqual(0.1037665, Buffer(ulsam, "subspaces.0.bn_dws.running_mean")[0].item<float>(), 1e-6, "momentum-0.9 running mean");
    }

    [TestMethod]
    public void AttentionMapsSumToOneAndUniformMapScalesByOnePlusOneOverHw()
    {
        using var ulsam = new UltraLightSubspaceAttention(16, 4);
        ulsam.eval();
        using var x = randn(3, 16, 5, 7);
        using var maps = ulsam.AttentionMaps(x);
        CollectionAssert.AreEqual(new long[] { 3, 4, 35 }, maps.shape);
        Assert.IsTrue((maps.sum(-1) - 1).abs().max().item<float>() < 1e-5);
        // A pointwise bias far below zero makes the ReLU output 0 everywhere: uniform map, y = x·(1 + 1/(H·W)).
        using (no_grad())
            foreach (var (name, p) in ulsam.named_parameters().Where(p => p.name.EndsWith("conv_point.bias"))) p.fill_(-1e3);
        using var y = ulsam.call(x);
        Assert.IsTrue((y - x * (1 + 1.0 / 35)).abs().max().item<float>() < 1e-5);
    }

    /// <summary>
    /// spec ulsam.md §3: PyTorch's default initialisation — conv weights kaiming-uniform(a = √5) = U(±1/√fan_in), conv
    /// biases U(±1/√fan_in) with fan_in 1 (depthwise 1×1) and G (pointwise G→1), BatchNorm γ = 1, β = 0, running (0, 1);
    /// and the behaviour at init: a map that is flat over the positions gives A = 1/(H·W), so y = x·(1 + 1/(H·W)).
    /// </summary>
    [TestMethod]
    public void DefaultInitialisationIsPyTorchs()
    {
        manual_seed(5);
        using var ulsam = new UltraLightSubspaceAttention(64, 4);   // G = 16
        var p = ulsam.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        var b = ulsam.named_buffers().ToDictionary(x => x.name, x => x.buffer);
        for (int n = 0; n < 4; n++)
        {
            foreach (var (name, bound) in new[] { ("conv_dws.weight", 1.0), ("conv_dws.bias", 1.0), ("conv_point.weight", 0.25), ("conv_point.bias", 0.25) })
            {
                float max = p[$"subspaces.{n}.{name}"].abs().max().item<float>();
                Assert.IsTrue(max <= bound + 1e-6, $"{name}: |w| ≤ 1/√fan_in = {bound}, got {max}");
                if (!name.EndsWith("point.bias")) Assert.IsTrue(max > 0.5 * bound, $"{name} looks like U(±{bound}), got max {max}");
            }
            foreach (var bn in new[] { "bn_dws", "bn_point" })
            {
                Assert.AreEqual(0f, (p[$"subspaces.{n}.{bn}.weight"] - 1).abs().max().item<float>(), $"{bn}.weight");
                Assert.AreEqual(0f, p[$"subspaces.{n}.{bn}.bias"].abs().max().item<float>(), $"{bn}.bias");
                Assert.AreEqual(0f, b[$"subspaces.{n}.{bn}.running_mean"].abs().max().item<float>(), $"{bn}.running_mean");
                Assert.AreEqual(0f, (b[$"subspaces.{n}.{bn}.running_var"] - 1).abs().max().item<float>(), $"{bn}.running_var");
            }
        }
        ulsam.eval();
        using var x = randn(2, 64, 1, 1).expand(2, 64, 5, 7).contiguous();   // flat over the 35 positions
        using var y = ulsam.call(x);
        Assert.IsTrue((y - x * (1 + 1.0 / 35)).abs().max().item<float>() < 1e-5);
    }

    /// <summary>A 1×1 map: the softmax over one position is 1, so every subspace returns 2·F (train and eval).</summary>
    [TestMethod]
    public void SinglePositionMapDoublesTheInput()
    {
        using var ulsam = new UltraLightSubspaceAttention(8, 2);
        using var x = randn(3, 8, 1, 1);
        foreach (bool train in new[] { false, true })
        {
            ulsam.train(train);
            using var y = ulsam.call(x);
            Assert.IsTrue((y - 2 * x).abs().max().item<float>() < 1e-6, train ? "train" : "eval");
        }
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void GradientsMatchFiniteDifferences(bool train)
    {
        using var ulsam = new UltraLightSubspaceAttention(6, 2);
        ulsam.to(float64).train(train);
        using (no_grad())
            foreach (var (name, p) in ulsam.named_parameters().Where(p => p.name.Contains("bn_")))
                p.add_(randn_like(p) * 0.2);   // move BN γ/β off (1, 0)
        if (!train)
            foreach (var (name, b) in ulsam.named_buffers().Where(b => b.name.Contains("running")))
                b.copy_(name.EndsWith("var") ? rand_like(b) + 0.5 : randn_like(b) * 0.2);
        using var x = (randn(2, 6, 4, 5, dtype: float64) * 1.5).requires_grad_(true);
        GradientCheck.Verify(ulsam, () => ulsam.call(x), x);
    }

    [TestMethod]
    [DataRow(12, 3)]
    [DataRow(8, 1)]
    [DataRow(32, 16)]
    public void FusedEvaluationPathEqualsSubspaceLoop(int channels, int g)
    {
        // Evaluation mode runs all subspaces at once (folded BN affines, one grouped pointwise conv); it must equal the
        // per-subspace modules up to float rounding, in value and in the gradients of the input and of every parameter.
        using var ulsam = new UltraLightSubspaceAttention(channels, g);
        using (no_grad())
        {
            foreach (var (_, p) in ulsam.named_parameters()) p.add_(randn_like(p) * 0.3);
            foreach (var (name, b) in ulsam.named_buffers().Where(b => b.name.Contains("running")))
                b.copy_(name.EndsWith("var") ? rand_like(b) + 0.5 : randn_like(b) * 0.2);
        }
        ulsam.eval();
        using var x = (randn(3, channels, 5, 6) * 1.5).requires_grad_(true);
        using var weight = randn(3, channels, 5, 6);

        (Tensor Y, Tensor Maps, Dictionary<string, Tensor> Grads) Run(Tensor input, Func<Tensor, Tensor> forward, Func<Tensor, Tensor> maps)
        {
            ulsam.zero_grad();
            input.grad?.zero_();
            var y = forward(input);
            (y * weight.to(input.dtype)).sum().backward();
            var grads = ulsam.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
            grads["x"] = input.grad!.clone();
            using (no_grad()) return (y.detach(), maps(input).detach(), grads);
        }
        // Values in float32 (rounding of the folded affines only) ...
        var loop = Run(x, ulsam.ForwardLoop, ulsam.AttentionMapsLoop);
        var fused = Run(x, ulsam.ForwardFused, ulsam.AttentionMapsFused);
        Assert.IsTrue(fused.Y.allclose(loop.Y, 1e-6, 1e-6), $"output differs by {(fused.Y - loop.Y).abs().max().item<float>()}");
        Assert.IsTrue(fused.Maps.allclose(loop.Maps, 1e-6, 1e-7), "attention maps differ");
        // ... gradients in float64, where rounding cannot hide a wrong or missing path to a subspace's parameter.
        ulsam.to(float64);
        using var x64 = x.detach().to(float64).requires_grad_(true);
        var loop64 = Run(x64, ulsam.ForwardLoop, ulsam.AttentionMapsLoop);
        var fused64 = Run(x64, ulsam.ForwardFused, ulsam.AttentionMapsFused);
        Assert.AreEqual(8 * g + 1, loop64.Grads.Count);   // 8 parameter tensors per subspace, plus x
        foreach (var (name, expected) in loop64.Grads)
            Assert.IsTrue(fused64.Grads[name].allclose(expected, 1e-10, 1e-12), $"gradient of {name} differs by {(fused64.Grads[name] - expected).abs().max().item<double>()}");
        ulsam.to(float32);

        // forward/AttentionMaps take the fused path in evaluation mode and the loop in training mode.
        using (no_grad())
        {
            Assert.IsTrue(ulsam.call(x).allclose(fused.Y, 0, 0));
            Assert.IsTrue(ulsam.AttentionMaps(x).allclose(fused.Maps, 0, 0));
            ulsam.train();
            Assert.IsTrue(ulsam.call(x).allclose(ulsam.ForwardLoop(x), 0, 0));
        }
    }

    [TestMethod]
    public void ChannelsLastMaxPoolEqualsPlainMaxPoolIncludingGradientRouting()
    {
        // Ties are frequent after ReLU (zeros) and are made frequent among positives here by rounding: the channels-last
        // kernel must pick the same argmax as the NCHW one, so values and gradients are bit-identical.
        using var d = nn.functional.relu((randn(4, 6, 7, 5) * 2).round());
        using var g = randn(4, 6, 7, 5);
        Tensor Grad(bool channelsLast)
        {
            var x = d.clone().requires_grad_(true);
            var y = nn.functional.max_pool2d(channelsLast ? UltraLightSubspaceAttention.ChannelsLast(x) : x, 3, stride: 1, padding: 1);
            (y * g).sum().backward();
            return x.grad!;
        }
        using (no_grad())
            Assert.IsTrue(nn.functional.max_pool2d(UltraLightSubspaceAttention.ChannelsLast(d), 3, 1, 1).allclose(nn.functional.max_pool2d(d, 3, 1, 1), 0, 0));
        Assert.IsTrue(Grad(true).allclose(Grad(false), 0, 0));
    }

    [TestMethod]
    [DataRow(64, 4, 332)]   // spec §3 [REF-RUN]: m = 64, g = 4 → 5m + 3g = 332
    [DataRow(12, 3, 69)]    // the golden harness' module
    [DataRow(512, 4, 2_572)]
    [DataRow(1024, 16, 5_168)]
    [DataRow(96, 4, 492)]
    [DataRow(160, 4, 812)]
    public void ParameterCountIsFiveCPlusThreeG(int channels, int g, int expected)
    {
        Assert.AreEqual(expected, UltraLightSubspaceAttention.ParameterCount(channels, g));
        using var ulsam = new UltraLightSubspaceAttention(channels, g);
        Assert.AreEqual(expected, ulsam.parameters().Sum(p => p.numel()));
        // Paper-style count (DW + PW weights only) is 2m: one DW weight and one PW weight per channel.
        Assert.AreEqual(2L * channels, ulsam.named_parameters().Where(p => p.name.EndsWith("conv_dws.weight") || p.name.EndsWith("conv_point.weight")).Sum(p => p.parameter.numel()));
    }

    [TestMethod]
    public void StateDictNamesMatchReference()
    {
        using var ulsam = new UltraLightSubspaceAttention(8, 2);
        var names = ulsam.state_dict().Keys.ToList();
        CollectionAssert.IsSubsetOf(new[]
        {
            "subspaces.0.conv_dws.weight", "subspaces.0.conv_dws.bias", "subspaces.0.bn_dws.weight", "subspaces.0.bn_dws.bias",
            "subspaces.0.bn_dws.running_mean", "subspaces.0.bn_dws.running_var", "subspaces.0.conv_point.weight",
            "subspaces.0.conv_point.bias", "subspaces.1.bn_point.weight", "subspaces.1.bn_point.bias", "subspaces.1.bn_point.running_var",
        }, names);
    }

    [TestMethod]
    public void RejectsChannelsNotDivisibleBySubspaces()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new UltraLightSubspaceAttention(10, 4));
        StringAssert.Contains(ex.Message, "channels = 10 is not divisible by subspaces g = 4");
        StringAssert.Contains(ex.Message, "Choose g among the divisors of 10 (1, 2, 5, 10)");
    }

    [TestMethod]
    public void RejectsNonPositiveSubspaces()
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new UltraLightSubspaceAttention(8, 0));
        StringAssert.Contains(ex.Message, "g = 0 must be at least 1");
    }

    [TestMethod]
    public void RejectsNonPositiveChannels()
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new UltraLightSubspaceAttention(0, 1));
        StringAssert.Contains(ex.Message, "channel count must be at least 1");
    }

    [TestMethod]
    public void RejectsWrongInputRank()
    {
        using var ulsam = new UltraLightSubspaceAttention(8, 2);
        using var x = zeros(8, 4, 4);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => ulsam.call(x));
        StringAssert.Contains(ex.Message, "expects a 4-D input [batch, 8 (channels), height, width]; got rank 3");
    }

    [TestMethod]
    public void RejectsWrongChannelCount()
    {
        using var ulsam = new UltraLightSubspaceAttention(8, 2);
        using var x = zeros(1, 6, 4, 4);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => ulsam.call(x));
        StringAssert.Contains(ex.Message, "built for 8 channels but the input has 6");
    }

    // ------------------------------------------------------------------ MobileNet-V1

    /// <summary>
    /// Parameter counts (all trainable parameters, BN γ/β included) at 1000 classes. Vanilla α = 1:
    /// stem 3·32·9 + 2·32 = 928; layer i (cin → cout): 9·cin + 2·cin + cin·cout + 2·cout, Σ = 3,205,976; classifier
    /// 1024·1000 + 1000 = 1,025,000; total 4,231,976 (the paper's 4.2M). Replacing a 512→512 layer removes
    /// 9·512 + 512² + 4·512 = 268,800 and adds ULSAM's 5·512 + 3g (g = 4: 2,572) → 3,965,748. At α = 0.75 (C = 384):
    /// −(9·384 + 384² + 4·384) + 5·384 + 12 = −150,516; at α = 0.5 (C = 256): −68,864 + 1,292 = −67,572. Adding ULSAM
    /// only adds 5C + 3g. The slides' rounded values (4.2M / 3.9M, 2.6M / 2.4M, 1.3M / 1.2M) count conv weights and
    /// the classifier without BN: see <see cref="MobileNetV1PaperStyleCountsRoundToSlides"/>.
    /// </summary>
    [TestMethod]
    [DataRow(1.0, 4_231_976, 3_965_748, 4_234_548, 4_237_108)]
    [DataRow(0.75, 2_585_560, 2_435_044, 2_587_492, 2_589_412)]
    [DataRow(0.5, 1_331_592, 1_264_020, 1_332_884, 1_334_164)]
    public void MobileNetV1ParameterCounts(double alpha, long vanilla, long replaced, long added14, long added7)
    {
        static long Count(MobileNetV1 m) { using (m) return m.parameters().Sum(p => p.numel()); }
        Assert.AreEqual(vanilla, Count(new MobileNetV1(1000, alpha)));
        int c = (int)(512 * alpha);
        long removed = 9L * c + (long)c * c + 4L * c;   // depthwise 3×3 + pointwise + two BNs of the 512α→512α layer
        foreach (int layer in new[] { 6, 10 })           // any of the five repeated layers: same count
            Assert.AreEqual(replaced, Count(new MobileNetV1(1000, alpha, UlsamPlacement.Replacing(layer, 4))));
        Assert.AreEqual(vanilla - removed + UltraLightSubspaceAttention.ParameterCount(c, 4), replaced);
        Assert.AreEqual(added14, Count(new MobileNetV1(1000, alpha, UlsamPlacement.AddedAt14x14(4))));
        Assert.AreEqual(vanilla + UltraLightSubspaceAttention.ParameterCount(c, 4), added14);
        Assert.AreEqual(added7, Count(new MobileNetV1(1000, alpha, UlsamPlacement.AddedAt7x7(4))));
        Assert.AreEqual(vanilla + UltraLightSubspaceAttention.ParameterCount(2 * c, 4), added7);
        // g changes the count by 3 per subspace only.
        Assert.AreEqual(replaced + 3 * 12, Count(new MobileNetV1(1000, alpha, UlsamPlacement.ReplacingRepeated512(16))));
    }

    /// <summary>
    /// Slides' #Params, counted as the papers do (conv weights + classifier; BN parameters excluded): α 1: 4,210,088 →
    /// 4.2M, replaced 3,944,360 → 3.9M; α 0.75: 2,569,144 → 2.6M, replaced 2,419,000 → 2.4M; α 0.5: 1,320,648 → 1.3M.
    /// (α 0.5 replaced: 1,253,320 → 1.3M, whereas the slides print 1.2M — not asserted.)
    /// </summary>
    [TestMethod]
    [DataRow(1.0, false, 4.2)]
    [DataRow(1.0, true, 3.9)]
    [DataRow(0.75, false, 2.6)]
    [DataRow(0.75, true, 2.4)]
    [DataRow(0.5, false, 1.3)]
    public void MobileNetV1PaperStyleCountsRoundToSlides(double alpha, bool replaced, double millions)
    {
        using var net = new MobileNetV1(1000, alpha, replaced ? UlsamPlacement.ReplacingRepeated512(4) : null);
        long count = net.named_parameters().Where(p => !p.name.Contains("bn_") && (p.parameter.dim() > 1 || p.name.StartsWith("classifier") || p.name.Contains("conv_")))
            .Sum(p => p.parameter.numel());
        Assert.AreEqual(millions, Math.Round(count / 1e6, 1), 1e-9, $"count {count}");
    }

    /// <summary>
    /// Multiply-adds at 224×224 against the slides (spec §5): vanilla 569M / 325M / 149M; one 512α→512α layer replaced
    /// removes (512α)²·196 + 512α·9·196 and adds 2·512α·196: 517M / 296M / 136M; ULSAM added at 14×14 adds 2·512·196 ≈ 0.2M,
    /// at 7×7 2·1024·49 ≈ 0.1M (the slides' 569.2M / 569.1M add these to the rounded 569M).
    /// </summary>
    [TestMethod]
    [DataRow(1.0, 568_740_352L, 569, 516_657_664L, 517)]
    [DataRow(0.75, 325_400_448L, 325, 295_972_224L, 296)]
    [DataRow(0.5, 149_497_088L, 149, 136_300_800L, 136)]
    public void MobileNetV1MultiplyAddsMatchSlides(double alpha, long vanilla, int vanillaM, long replaced, int replacedM)
    {
        using var plain = new MobileNetV1(1000, alpha);
        using var rep = new MobileNetV1(1000, alpha, UlsamPlacement.ReplacingRepeated512(4));
        Assert.AreEqual(vanilla, plain.MultiplyAdds());
        Assert.AreEqual(replaced, rep.MultiplyAdds());
        Assert.AreEqual(vanillaM, (int)Math.Round(vanilla / 1e6));
        Assert.AreEqual(replacedM, (int)Math.Round(replaced / 1e6));
        int c = (int)(512 * alpha);
        using var add14 = new MobileNetV1(1000, alpha, UlsamPlacement.AddedAt14x14(4));
        using var add7 = new MobileNetV1(1000, alpha, UlsamPlacement.AddedAt7x7(4));
        Assert.AreEqual(vanilla + 2L * c * 196, add14.MultiplyAdds());
        Assert.AreEqual(vanilla + 2L * 2 * c * 49, add7.MultiplyAdds());
    }

    [TestMethod]
    public void MobileNetV1ForwardSmoke()
    {
        foreach (var placement in new[] { null, UlsamPlacement.AddedAt14x14(4), UlsamPlacement.Replacing(8, 8), UlsamPlacement.AddedAt7x7(16) })
        {
            using var net = new MobileNetV1(numClasses: 10, widthMultiplier: 0.5, ulsam: placement);
            net.eval();
            using var scope = NewDisposeScope();
            var x = randn(2, 3, 64, 64);
            var features = net.Features(x);
            CollectionAssert.AreEqual(new long[] { 2, 512, 2, 2 }, features.shape, placement?.ToString());
            var y = net.call(x);
            CollectionAssert.AreEqual(new long[] { 2, 10 }, y.shape);
            Assert.IsTrue(y.isfinite().all().item<bool>());
        }
    }

    [TestMethod]
    public void MobileNetV1ModuleNamesShiftAfterAnAddedBlock()
    {
        using var added = new MobileNetV1(10, 0.5, UlsamPlacement.AddedAfter(10, 4));
        var names = added.named_parameters().Select(p => p.name).ToList();
        CollectionAssert.Contains(names, "features.12.subspaces.3.conv_point.weight");   // layer 10 is features.11
        CollectionAssert.Contains(names, "features.14.3.weight");                         // layer 12 moved to entry 14
        using var replaced = new MobileNetV1(10, 0.5, UlsamPlacement.Replacing(6, 4));
        CollectionAssert.Contains(replaced.named_parameters().Select(p => p.name).ToList(), "features.7.subspaces.0.conv_dws.weight");
    }

    [TestMethod]
    public void MobileNetV1RejectsReplacingALayerThatChangesShape()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new MobileNetV1(10, 1.0, UlsamPlacement.Replacing(5, 4)));
        StringAssert.Contains(ex.Message, "cannot replace layer 5 (256→512 channels, stride 2)");
    }

    [TestMethod]
    public void MobileNetV1RejectsSubspacesNotDividingTheLayer()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new MobileNetV1(10, 0.75, UlsamPlacement.AddedAfter(8, 5)));
        StringAssert.Contains(ex.Message, "g = 5 must be positive and divide the 384 channels of layer 8");
    }

    [TestMethod]
    public void MobileNetV1RejectsLayerOutOfRange()
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MobileNetV1(10, 1.0, UlsamPlacement.AddedAfter(13, 4)));
        StringAssert.Contains(ex.Message, "depthwise-separable layer 0…12");
    }

    [TestMethod]
    public void MobileNetV1RejectsBadWidthAndImages()
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MobileNetV1(10, 0.0));
        StringAssert.Contains(ex.Message, "width multiplier must be positive");
        using var net = new MobileNetV1(10, 0.25, inputChannels: 1);
        using var x = zeros(2, 3, 32, 32);
        var shape = Assert.ThrowsExactly<ArgumentException>(() => net.call(x));
        StringAssert.Contains(shape.Message, "expects images [batch, 1 (channels), height, width]; got shape [2, 3, 32, 32]");
    }
}
