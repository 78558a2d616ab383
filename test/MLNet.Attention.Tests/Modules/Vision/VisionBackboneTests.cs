using MLNet.Attention.Runtime;
using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Vision;

/// <summary>MobileNetV2 (with ELA / block replacement) and the CIFAR ResNet-18 (with ELA after bn2).</summary>
[TestClass]
public sealed class VisionBackboneTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    private static long Count(nn.Module m) => m.parameters().Sum(p => p.numel());

    // ---------------- MobileNetV2 ----------------

    /// <summary>spec ela.md §5: torchvision-style MobileNetV2 3,504,872; mbv2_ela72 (ELA-L) 3,916,904 = + 58·7104; S + 42·7104; B + 9·7104.</summary>
    [TestMethod]
    public void MobileNetV2ParameterCountsMatchSpec()
    {
        using (var plain = new MobileNetV2()) Assert.AreEqual(3_504_872L, Count(plain));
        using (var l = MobileNetV2.WithEla(ElaVariant.L)) Assert.AreEqual(3_916_904L, Count(l));
        using (var s = MobileNetV2.WithEla(ElaVariant.S)) Assert.AreEqual(3_504_872L + 298_368, Count(s));
        using (var b = MobileNetV2.WithEla(ElaVariant.B)) Assert.AreEqual(3_504_872L + 63_936, Count(b));
    }

    /// <summary>
    /// ELA-T's GroupNorm(32) cannot be built on the 144-channel blocks (PyTorch raises too), so the spec's [DERIVED]
    /// T delta (+49,728 = 7·7104) is only reachable with T's conv (k 5, depthwise) and a GroupNorm that divides 144;
    /// GroupNorm's parameter count does not depend on its group count.
    /// </summary>
    [TestMethod]
    public void MobileNetV2ElaTDeltaAndItsGroupNormLimit()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => MobileNetV2.WithEla(ElaVariant.T));
        StringAssert.Contains(ex.Message, "hidden width 144");
        StringAssert.Contains(ex.Message, "GroupNorm(32) needs the channel count to be divisible by 32; got C = 144");
        using var t = new MobileNetV2(attention: s => new EfficientLocalAttention(s.HiddenChannels, kernelSize: 5,
            convGroups: s.HiddenChannels, normGroups: s.HiddenChannels % 32 == 0 ? 32 : 16));
        Assert.AreEqual(3_504_872L + 49_728, Count(t));
    }

    [TestMethod]
    public void MobileNetV2BlockTableAndElaPositions()
    {
        using var net = MobileNetV2.WithEla(ElaVariant.L);
        Assert.AreEqual(17, net.Blocks.Count);
        var hidden = net.Blocks.Where(b => b.ExpandRatio != 1).Select(b => b.HiddenChannels).ToArray();
        CollectionAssert.AreEqual(new[] { 96, 144, 144, 192, 192, 192, 384, 384, 384, 384, 576, 576, 576, 960, 960, 960 }, hidden);
        Assert.AreEqual(7104, hidden.Sum());
        CollectionAssert.AreEqual(new[] { 2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32 }, net.Blocks.Select(b => b.OutputStride).ToArray());
        var names = net.named_parameters().Select(p => p.name).ToHashSet();
        // Reference (mbv2_ela72) keys: stem features.0, t = 1 block without ELA, ELA at conv.6, final conv, classifier.1.
        foreach (var key in new[] { "features.0.0.weight", "features.0.1.bias", "features.1.conv.0.weight", "features.1.conv.4.bias",
                     "features.2.conv.6.conv.weight", "features.2.conv.6.gn.weight", "features.17.conv.8.bias", "conv.0.weight", "conv.1.weight",
                     "classifier.1.weight", "classifier.1.bias" })
            Assert.IsTrue(names.Contains(key), $"missing {key}");
        Assert.IsFalse(names.Any(n => n.StartsWith("features.1.conv.6")), "the t = 1 block has no attention");
        Assert.AreEqual(16, names.Count(n => n.EndsWith("conv.6.gn.weight")));
    }

    [TestMethod]
    public void MobileNetV2InitialisationLeavesElaAtItsDefaults()
    {
        manual_seed(11);
        using var net = MobileNetV2.WithEla(ElaVariant.L);
        var p = net.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        // ELA Conv1d keeps kaiming-uniform(a = √5): U(±1/√fan_in), fan_in = 8·7; GroupNorm keeps (1, 0).
        var ela = p["features.17.conv.6.conv.weight"];
        double bound = 1 / Math.Sqrt(8 * 7);
        Assert.IsTrue(ela.abs().max().item<float>() <= bound + 1e-6);
        Assert.IsTrue(ela.std().item<float>() > 0.8 * bound / Math.Sqrt(3), "a uniform init, not the backbone's N(0, √(2/n))");
        Assert.AreEqual(0.0, (p["features.17.conv.6.gn.weight"] - 1).abs().max().item<float>(), 0.0);
        Assert.AreEqual(0.0, p["features.17.conv.6.gn.bias"].abs().max().item<float>(), 0.0);
        // Backbone: Conv2d N(0, √(2/(k·k·out))), BN (1, 0), Linear N(0, 0.01) with bias 0.
        Assert.AreEqual(Math.Sqrt(2.0 / 1280), p["conv.0.weight"].std().item<float>(), 0.05 * Math.Sqrt(2.0 / 1280));
        Assert.AreEqual(Math.Sqrt(2.0 / (9 * 960)), p["features.17.conv.3.weight"].std().item<float>(), 0.1 * Math.Sqrt(2.0 / (9 * 960)));
        Assert.AreEqual(0.01, p["classifier.1.weight"].std().item<float>(), 0.0005);
        Assert.AreEqual(0.0, p["classifier.1.bias"].abs().max().item<float>(), 0.0);
        Assert.AreEqual(0.0, (p["features.3.conv.4.weight"] - 1).abs().max().item<float>(), 0.0);
    }

    /// <summary>The ULSAM placement: chosen t = 6 identity blocks are replaced by a shape-preserving module (here a 1×1 conv stand-in).</summary>
    [TestMethod]
    public void MobileNetV2ReplacesChosenBlocks()
    {
        var seen = new List<InvertedResidualSpec>();
        using var net = new MobileNetV2(numClasses: 10, replaceBlock: spec =>
        {
            seen.Add(spec);
            // "one 96-ch block @14×14 + one 160-ch block @7×7": the last block of each of those stages.
            bool replace = spec.HasIdentity && spec.ExpandRatio == 6 && spec.OutputChannels is 96 or 160 && spec.IndexInStage == 2;
            return replace ? nn.Conv2d(spec.InputChannels, spec.OutputChannels, 1, bias: false) : null;
        });
        Assert.AreEqual(17, seen.Count);
        var replaced = seen.Where(s => s.HasIdentity && s.OutputChannels is 96 or 160 && s.IndexInStage == 2).ToList();
        CollectionAssert.AreEqual(new[] { 13, 16 }, replaced.Select(s => s.FeatureIndex).ToArray());
        using var plain = new MobileNetV2(numClasses: 10);
        // Removed: the two blocks (E = 576 and 960: expand + BN, depthwise + BN, project + BN); added: two 1×1 convs.
        long Block(int c, int e) => (long)c * e + 2 * e + 9L * e + 2 * e + (long)e * c + 2 * c;
        Assert.AreEqual(Count(plain) - Block(96, 576) - Block(160, 960) + 96 * 96 + 160 * 160, Count(net));
        var names = net.named_parameters().Select(p => p.name).ToHashSet();
        Assert.IsTrue(names.Contains("features.13.weight") && names.Contains("features.16.weight") && !names.Any(n => n.StartsWith("features.13.conv")));
        net.eval();
        using var x = randn(1, 3, 64, 64);
        using var y = net.forward(x);
        CollectionAssert.AreEqual(new long[] { 1, 10 }, y.shape);
    }

    [TestMethod]
    public void MobileNetV2WithElaForwardAndBackwardSmoke()
    {
        manual_seed(3);
        using var net = MobileNetV2.WithEla(ElaVariant.L, numClasses: 10);
        using var x = randn(2, 3, 32, 32);
        net.train();
        using var logits = net.forward(x);
        CollectionAssert.AreEqual(new long[] { 2, 10 }, logits.shape);
        using (var loss = logits.square().mean()) loss.backward();
        var elaGrad = net.named_parameters().Single(p => p.name == "features.5.conv.6.conv.weight").parameter.grad;
        Assert.IsNotNull(elaGrad);
        Assert.IsTrue(elaGrad!.abs().sum().item<float>() > 0, "the gradient reaches the ELA conv");
        net.eval();
        using var features = net.ForwardFeatures(x);
        CollectionAssert.AreEqual(new long[] { 2, 1280 }, features.shape);
        Assert.IsTrue(features.isfinite().all().item<bool>());
        using var map = net.ForwardFeatureMap(x);
        CollectionAssert.AreEqual(new long[] { 2, 1280, 1, 1 }, map.shape);
        using var again = net.Classifier.call(features);
        using var direct = net.forward(x);
        Assert.IsTrue((again - direct).abs().max().item<float>() < 1e-5, "forward = classifier(ForwardFeatures) in eval mode");
    }

    [TestMethod]
    public void MobileNetV2WidthMultiplierAndGreyInput()
    {
        using var half = new MobileNetV2(numClasses: 10, widthMultiplier: 0.5, inputChannels: 1,
            attention: s => new EfficientLocalAttention(s.HiddenChannels, ElaVariant.B));
        CollectionAssert.AreEqual(new[] { 8, 16, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 48, 80, 80, 80, 160 },
            half.Blocks.Select(b => b.OutputChannels).ToArray());
        Assert.AreEqual(1280, half.FeatureWidth);
        half.eval();
        using var x = randn(2, 1, 28, 28);
        using var y = half.forward(x);
        CollectionAssert.AreEqual(new long[] { 2, 10 }, y.shape);
        Assert.AreEqual(1600, MobileNetV2.MakeDivisible(1280 * 1.25, 8));
    }

    [TestMethod]
    public void MobileNetV2RejectsWrongInputChannels()
    {
        using var net = new MobileNetV2(numClasses: 10);
        using var x = zeros(1, 1, 32, 32);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => net.forward(x));
        StringAssert.Contains(ex.Message, "[batch, 3 (channels), height, width]; got [1, 1, 32, 32]. Pass inputChannels");
    }

    [TestMethod]
    public void MobileNetV2RejectsInvalidSettings()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MobileNetV2(numClasses: 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MobileNetV2(widthMultiplier: 0));
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MobileNetV2(dropout: 1.0));
        StringAssert.Contains(ex.Message, "Dropout must be in [0, 1)");
    }

    // ---------------- ResNet-18 (CIFAR stem) ----------------

    /// <summary>
    /// Own arithmetic (3×3 convs without bias, BN 2C, 1×1 conv + BN shortcuts at the first block of stages 2–4):
    /// stem 3·64·9 + 128 = 1,856; layer1 2·(2·36,864 + 256) = 147,968; layer2 230,144 + 295,424 = 525,568;
    /// layer3 919,040 + 1,180,672 = 2,099,712; layer4 3,673,088 + 4,720,640 = 8,393,728; fc 512·10 + 10 = 5,130;
    /// total 11,173,962 (the usual CIFAR ResNet-18). ELA per block adds (conv + 2C): B 9C, L 58C, T 7C, S 42C over the
    /// eight blocks' C = 2·(64 + 128 + 256 + 512) = 1,920 → B +17,280, L +111,360, T +13,440, S +80,640.
    /// </summary>
    [TestMethod]
    [DataRow(null, 11_173_962L)]
    [DataRow(ElaVariant.B, 11_191_242L)]
    [DataRow(ElaVariant.L, 11_285_322L)]
    [DataRow(ElaVariant.T, 11_187_402L)]
    [DataRow(ElaVariant.S, 11_254_602L)]
    public void ResNet18ParameterCounts(ElaVariant? variant, long expected)
    {
        using var net = variant is { } v ? ResNet.ResNet18WithEla(v) : new ResNet();
        Assert.AreEqual(expected, Count(net));
    }

    [TestMethod]
    public void ResNet18StateDictNames()
    {
        using var net = ResNet.ResNet18WithEla(ElaVariant.B);
        var names = net.named_parameters().Select(p => p.name).ToHashSet();
        foreach (var key in new[] { "conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.1.bn2.bias", "layer1.0.feat0.conv.weight",
                     "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer4.1.feat0.gn.bias", "fc.weight", "fc.bias" })
            Assert.IsTrue(names.Contains(key), $"missing {key}");
        Assert.IsFalse(names.Contains("layer1.0.downsample.0.weight"), "layer1 keeps the shape: no projection shortcut");
    }

    [TestMethod]
    public void BasicBlockAppliesElaWithExtraIdentity()
    {
        manual_seed(5);
        using var block = new BasicBlock(16, 16, 1, c => new EfficientLocalAttention(c));
        block.eval();
        using var x = randn(2, 16, 6, 5);
        // out + ELA(out) through the block equals a plain block whose output before the add is out ⊙ (1 + a_h ⊙ a_w).
        using var withoutResidual = new BasicBlock(16, 16, 1, c => new EfficientLocalAttention(c), attentionResidual: false);
        withoutResidual.load_state_dict(block.state_dict());
        withoutResidual.eval();
        using var bare = new BasicBlock(16, 16, 1);
        bare.load_state_dict(block.state_dict(), strict: false);
        bare.eval();
        using var y = block.forward(x);
        using var y2 = withoutResidual.forward(x);
        using var y0 = bare.forward(x);
        Assert.IsTrue((y - y2).abs().max().item<float>() > 1e-3, "the extra identity changes the output");
        Assert.IsTrue((y - y0).abs().max().item<float>() > 1e-3, "the attention changes the output");
        Assert.IsTrue(y.min().item<float>() >= 0, "ReLU after the add");
    }

    [TestMethod]
    public void ResNet18WithElaForwardAndBackwardOn32x32()
    {
        manual_seed(7);
        using var net = ResNet.ResNet18WithEla(ElaVariant.B, numClasses: 10);
        net.train();
        using var x = randn(2, 3, 32, 32);
        using var logits = net.forward(x);
        CollectionAssert.AreEqual(new long[] { 2, 10 }, logits.shape);
        using (var loss = logits.square().mean()) loss.backward();
        var g = net.named_parameters().Single(p => p.name == "layer4.1.feat0.conv.weight").parameter.grad;
        Assert.IsNotNull(g);
        Assert.IsTrue(g!.abs().sum().item<float>() > 0);
        net.eval();
        using var f = net.ForwardFeatures(x);
        CollectionAssert.AreEqual(new long[] { 2, 512 }, f.shape);
    }

    [TestMethod]
    public void BasicBlockGradientsMatchFiniteDifferences()
    {
        using var block = new BasicBlock(4, 16, 2, c => new EfficientLocalAttention(c, kernelSize: 3, convGroups: 2, normGroups: 4));
        block.to(float64).train();
        using var x = randn(2, 4, 5, 6, dtype: float64).requires_grad_(true);
        GradientCheck.Verify(block, () => block.forward(x), x);
    }

    [TestMethod]
    public void ResNetRejectsInvalidSettings()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new ResNet(blocksPerStage: new[] { 2, 2, 2 }));
        StringAssert.Contains(ex.Message, "blocksPerStage must list four positive block counts");
        StringAssert.Contains(ex.Message, "Use [2, 2, 2, 2] for ResNet-18");
        using var net = new ResNet(numClasses: 10);
        using var x = zeros(1, 1, 32, 32);
        var shape = Assert.ThrowsExactly<ArgumentException>(() => net.forward(x));
        StringAssert.Contains(shape.Message, "[batch, 3 (channels), height, width]; got [1, 1, 32, 32]");
        var att = Assert.ThrowsExactly<ArgumentException>(() => new ResNet(attention: c => new EfficientLocalAttention(c, ElaVariant.T), baseWidth: 8));
        StringAssert.Contains(att.Message, "basic block (8 → 8 channels)");
    }

    // ---------------- MobileNetV2 with ULSAM (spec ulsam.md §5) ----------------

    /// <summary>
    /// ULSAM replacing t = 6 blocks: each replaced block loses its parameters (96 ch: 118,272; 160 ch: 320,000; 64 ch: 54,272)
    /// and gains ULSAM's 5C + 3g (g = 4: 492 / 812 / 332) — 3,504,872 − 118,272 + 492 = 3,387,092, etc.
    /// </summary>
    [TestMethod]
    public void MobileNetV2WithUlsamParameterCountsFollowTheReplacedBlocks()
    {
        (IReadOnlyCollection<int> Blocks, long Expected)[] rows =
        [
            (UlsamMobileNetV2Placements.OneAt14x14, 3_387_092),
            (UlsamMobileNetV2Placements.OneAt7x7, 3_185_684),
            (UlsamMobileNetV2Placements.OneEach, 3_067_904),
            (UlsamMobileNetV2Placements.TwoAt7x7, 2_866_496),
            (UlsamMobileNetV2Placements.TwoEach, 2_630_936),
            (UlsamMobileNetV2Placements.OneAt14x14AndOne64, 3_333_152),
        ];
        foreach (var (blocks, expected) in rows)
        {
            using var net = MobileNetV2.WithUlsam(blocks);
            Assert.AreEqual(expected, Count(net), $"blocks {string.Join(",", blocks)}");
            foreach (int f in blocks)
                Assert.IsInstanceOfType<UltraLightSubspaceAttention>(net.Features[f], $"features.{f}");
        }
    }

    [TestMethod]
    public void MobileNetV2WithUlsamRunsForwardAndBackward()
    {
        using var net = MobileNetV2.WithUlsam(UlsamMobileNetV2Placements.TwoEach, subspaces: 4, numClasses: 5, widthMultiplier: 0.5);
        using var x = randn(2, 3, 32, 32);
        using var y = net.call(x);
        CollectionAssert.AreEqual(new long[] { 2, 5 }, y.shape);
        using var loss = y.sum();
        loss.backward();
        Assert.IsTrue(net.parameters().All(p => p.grad is not null));
    }

    [TestMethod]
    public void MobileNetV2WithUlsamRejectsBlocksThatChangeShapeOrDoNotExist()
    {
        var shape = Assert.ThrowsExactly<ArgumentException>(() => MobileNetV2.WithUlsam([11]));
        StringAssert.Contains(shape.Message, "features.11 (64→96 channels, stride 1) changes the shape");
        StringAssert.Contains(shape.Message, "choose a block with the identity shortcut");
        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MobileNetV2.WithUlsam([12, 40]));
        StringAssert.Contains(missing.Message, "No inverted-residual block at features.40");
        var groups = Assert.ThrowsExactly<ArgumentException>(() => MobileNetV2.WithUlsam([12], subspaces: 5));
        StringAssert.Contains(groups.Message, "96");
        Assert.ThrowsExactly<ArgumentException>(() => MobileNetV2.WithUlsam([]));
    }
}
