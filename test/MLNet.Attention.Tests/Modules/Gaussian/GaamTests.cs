using MLNet.Attention.Gaussian;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Gaussian;

[TestClass]
public sealed class GaamTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    private static GoldenFile Golden => GoldenFile.Load("gaam_daam.md");

    /// <summary>Loads every golden parameter "prefix + our name"; our state-dict names equal the reference keys.</summary>
    private static void Load(nn.Module module, GoldenFile golden, string prefix)
    {
        var ours = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var fills = golden.Fills.Where(f => f.Key.StartsWith(prefix)).ToList();
        Assert.AreEqual(fills.Count, ours.Count, $"{prefix}: parameter count differs from the reference state dict");
        using var noGrad = no_grad();
        foreach (var (name, fill) in fills)
        {
            Assert.IsTrue(ours.TryGetValue(name[prefix.Length..], out var p), $"no parameter named {name[prefix.Length..]}");
            using var value = fill.Create();
            p!.copy_(value.reshape(p.shape));
        }
    }

    private static GoldenFile.Check Quantity(GoldenFile golden, int caseIndex, string startsWith)
        => golden.Cases[caseIndex].Checks.Single(c => c.Quantity.StartsWith(startsWith));

    // ---------------------------------------------------------------------------------------------- golden cases

    [TestMethod]
    public void MultiHeadDaamMatchesGolden()
    {
        var golden = Golden;
        using var daam = new MultiHeadDensityAdaptiveAttention(layers: 9, features: 7, heads: 3);
        Load(daam, golden, "daam.");
        using var x = golden.Fills["x_daam"].Create();
        using var y = daam.call(x);
        CollectionAssert.AreEqual(new long[] { 2, 9, 7 }, y.shape);
        GoldenFile.Verify(Quantity(golden, 0, "output"), y, 5e-5, 1e-4, golden.Cases[0].CaseTitle);
        using var w = daam.AttentionWeights(x);
        using var w0 = w[.., ..3].unsqueeze(2);   // head 0 = layers 0..2, as [B, 3, 1, D]
        GoldenFile.Verify(Quantity(golden, 0, "debug: head 0"), w0, 5e-5, 1e-4, golden.Cases[0].CaseTitle);
        // [B, L, 1, D] (the paper's stored layout) gives the same result.
        using var y4 = daam.call(x.unsqueeze(2));
        Assert.AreEqual(0.0, (y4 - y).abs().max().item<float>());
    }

    [TestMethod]
    public void SingleDaamHeadOnFourDimensionalInputMatchesGolden()
    {
        var golden = Golden;
        using var head = new DensityAdaptiveAttention(features: 7);
        Load(head, golden, "daam1.");
        using var x = golden.Fills["x_daam4"].Create();
        using var y = head.call(x);
        CollectionAssert.AreEqual(new long[] { 2, 3, 3, 7 }, y.shape);
        GoldenFile.Verify(Quantity(golden, 1, "output"), y, 5e-5, 1e-4, golden.Cases[1].CaseTitle);
        using var w = head.AttentionWeights(x).unsqueeze(2).expand(2, 3, 3, 7);
        GoldenFile.Verify(Quantity(golden, 1, "debug"), w, 5e-5, 1e-4, golden.Cases[1].CaseTitle);
    }

    [TestMethod]
    public void TwoLayerGaussianBlockMatchesGolden()
    {
        var golden = Golden;
        using var block = new GaussianBlock(new[] { 1, 2 }, new[] { 2, 3 }, new[] { 3, 2 }, numLayers: 2);
        Load(block, golden, "block.");
        using var x = golden.Fills["x_block"].Create();
        var (y, weights) = block.ForwardWithWeights(x);
        using var _ = y;
        GoldenFile.Verify(Quantity(golden, 2, "output"), y, 1e-5, 1e-4, golden.Cases[2].CaseTitle);
        GoldenFile.Verify(Quantity(golden, 2, "debug: layer 0"), weights[0], 1e-5, 1e-4, golden.Cases[2].CaseTitle);
        GoldenFile.Verify(Quantity(golden, 2, "debug: layer 1"), weights[1], 1e-5, 1e-4, golden.Cases[2].CaseTitle);
        using var plain = block.call(x);
        Assert.AreEqual(0.0, (plain - y).abs().max().item<float>());
        foreach (var w in weights) w.Dispose();
    }

    private static Tensor PaddedInput(GoldenFile golden)
    {
        using var raw = golden.Fills["x_pad_raw"].Create();
        var flat = raw.reshape(-1).clone();
        using (no_grad()) flat[TensorIndex.Slice(1, null, 7)] = tensor(-1.0f);   // flat index j mod 7 == 1 → padding value
        return flat.reshape(2, 6, 5);
    }

    [TestMethod]
    public void PaddedGaussianBlockMatchesGolden()
    {
        var golden = Golden;
        using var block = new GaussianBlock(new[] { 1 }, new[] { 2 }, new[] { 2 }, numLayers: 1, paddingValue: -1.0);
        Load(block, golden, "padblock.");
        using var x = PaddedInput(golden);
        var (y, weights) = block.ForwardWithWeights(x);
        using var _ = y;
        GoldenFile.Verify(Quantity(golden, 3, "output"), y, 1e-5, 1e-4, golden.Cases[3].CaseTitle);
        GoldenFile.Verify(Quantity(golden, 3, "debug"), weights[0], 1e-5, 1e-4, golden.Cases[3].CaseTitle);

        // The same pads given as an explicit mask (no padding value) give the same output.
        using var maskBlock = new GaussianBlock(new[] { 1 }, new[] { 2 }, new[] { 2 }, numLayers: 1);
        Load(maskBlock, golden, "padblock.");
        using var mask = x.eq(-1.0);
        using var yMask = maskBlock.forward(x, mask);
        Assert.IsTrue((yMask - y).abs().max().item<float>() < 1e-6);
        foreach (var w in weights) w.Dispose();
    }

    // ---------------------------------------------------------------------------------------------- spec §9 cases

    private static GaussianAdaptiveAttention SpecHead(double? paddingValue = null)
    {
        var head = new GaussianAdaptiveAttention(normAxis: 1, gaussians: 2, paddingValue: paddingValue);
        SetAHead(head);
        return head;
    }

    private static void SetAHead(nn.Module head)
    {
        using var noGrad = no_grad();
        var p = head.named_parameters().ToDictionary(q => q.name, q => q.parameter);
        p["c"].copy_(tensor(new[] { 1.0f, 2.0f }));
        p["mean_offsets"].copy_(tensor(new[] { 0.0f, 0.5f }));
    }

    private static void AssertClose(double[] expected, Tensor actual, double atol)
    {
        using var d = actual.to(float64).reshape(-1);
        var got = d.data<double>().ToArray();
        Assert.AreEqual(expected.Length, got.Length);
        for (int i = 0; i < got.Length; i++)
            Assert.IsTrue(Math.Abs(got[i] - expected[i]) <= atol, $"[{i}]: {got[i]} vs {expected[i]}");
    }

    private static readonly float[] SpecX = { 0.1f, -0.4f, 1.2f, 0.7f, -1.1f, 0.3f, 2.0f, 0.5f, -0.5f, 1.5f, 0.0f, -2.0f };

    [TestMethod]
    public void GaussianHeadMatchesSpecSectionNine()
    {
        using var head = SpecHead();
        using var x = tensor(SpecX).reshape(2, 6);
        var (y, w) = head.ForwardWithWeights(x);
        AssertClose(new[] { 0.0241417, -0.0671208, 0.121393, 0.1397803, -0.0499885, 0.0733471, 0.2168057, 0.1222368, -0.0989997, 0.2478952, 0.0, -0.0932821 }, y, 1e-6);
        AssertClose(new[] { 0.2414166, 0.1678019, 0.1011608, 0.1996861, 0.0454441, 0.2444904, 0.1084028, 0.2444736, 0.1979994, 0.1652634, 0.2372197, 0.046641 }, w, 1e-6);
        y.Dispose(); w.Dispose();

        using var multi = new MultiHeadGaussianAdaptiveAttention(normAxis: 1, heads: 2, gaussians: 2);
        foreach (var h in multi.HeadModules) SetAHead(h);
        using var ym = multi.call(x);
        AssertClose(new[] { 0.0455099, -0.1089801, 0.3269404, 0.2513151, -0.2017543, 0.1372696, 0.5347451, 0.2369536, -0.1293602, 0.4393533, 0.0, -0.4516245 }, ym, 1e-6);

        using var padHead = SpecHead(paddingValue: -9);
        using var xp = tensor(new[] { 1f, 2f, -9f, -9f, 0.5f, -1f, 3f, -9f }).reshape(2, 4);
        using var yp = padHead.call(xp);
        AssertClose(new[] { 0.7081392, 0.5837216, -9, -9, 0.2684211, -0.2855478, 0.5328295, -9 }, yp, 1e-6);
    }

    [TestMethod]
    public void DaamHeadMatchesSpecSectionNine()
    {
        using var head = new DensityAdaptiveAttention(features: 4);   // c = 2, δ = 0 (the defaults)
        using var x = tensor(new[] { 0.2f, -1.0f, 0.5f, 3.0f, 0.1f, 0.0f, 0.4f, -1.0f, -0.3f, 1.0f, 0.6f, 1.0f }).reshape(1, 3, 1, 4);
        using var y = head.call(x);
        CollectionAssert.AreEqual(new long[] { 1, 3, 1, 4 }, y.shape);
        AssertClose(new[] { 0.161431, -0.6872932, 0.5, 2.0618706, 0.0947849, 0.0, 0.2750707, -0.6872902, -0.1852568, 0.6872932, 0.4126059, 1.0 }, y, 1e-6);
    }

    [TestMethod]
    public void MeanTimePoolingAveragesOverTimeAndEqualsReferenceForOneStep()
    {
        using var reference = new DensityAdaptiveAttention(5);
        using var mean = new DensityAdaptiveAttention(5, timePooling: DaamTimePooling.Mean);
        using var x = randn(2, 3, 4, 5);
        using var expectedW = reference.AttentionWeights(x.mean(new long[] { 2 }));   // 3-D input: no time pooling at all
        using var w = mean.AttentionWeights(x);
        Assert.IsTrue((w - expectedW).abs().max().item<float>() < 1e-6);
        using var y = mean.call(x);
        Assert.IsTrue((y - x * expectedW.unsqueeze(2)).abs().max().item<float>() < 1e-6);
        using var x1 = x[.., .., ..1];
        using var a = reference.call(x1);
        using var b = mean.call(x1);
        Assert.IsTrue((a - b).abs().max().item<float>() < 1e-7);
    }

    // ---------------------------------------------------------------------------------------------- gradients

    [TestMethod]
    public void DaamGradientsMatchFiniteDifferences()
    {
        using var head = new DensityAdaptiveAttention(4);
        head.to(float64);
        RandomiseDaam(head);
        using var x4 = randn(2, 3, 2, 4, dtype: float64).requires_grad_(true);
        GradientCheck.Verify(head, () => head.call(x4), x4);

        using var multi = new MultiHeadDensityAdaptiveAttention(layers: 4, features: 3, heads: 2);
        multi.to(float64);
        RandomiseDaam(multi);
        using var x = randn(2, 4, 3, dtype: float64).requires_grad_(true);
        GradientCheck.Verify(multi, () => multi.call(x), x);
    }

    private static void RandomiseDaam(nn.Module m)
    {
        using var noGrad = no_grad();
        foreach (var (name, p) in m.named_parameters())
            p.copy_(name.EndsWith("c") ? rand_like(p) + 1.5 : randn_like(p) * 0.2);
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void ClosedFormMixtureEqualsGaussianByGaussianProduct(bool padded)
    {
        // The head computes Π_i g_i as one Gaussian (closed form); it must equal the library's Gaussian-by-Gaussian
        // product up to float rounding, in values (float32), in underflow to 0, and in gradients (float64).
        var gen = new Generator(11);
        using var head = new GaussianAdaptiveAttention(normAxis: 1, gaussians: 4, generator: gen);
        using (no_grad()) head.MeanOffsets.copy_(tensor(new[] { 0.3f, -0.5f, 1.2f, 0.0f }));
        using var x = randn(3, 24, 5, generator: gen) * 2 + 0.5;
        using (no_grad())
        {
            x[0, 3, 1] = tensor(60f);    // far outlier: its product underflows to 0
            x[1, 7, 2] = tensor(-40f);
        }
        using var pad = padded ? rand(3, 24, 5, generator: gen).lt(0.2) : null;
        using (no_grad())
        {
            var (yLoop, wLoop) = head.ApplyLoop(x, pad);
            var (yFused, wFused) = head.Apply(x, pad);
            Assert.IsTrue(wFused.allclose(wLoop, 1e-5, 1e-7), $"weights differ by {(wFused - wLoop).abs().max().item<float>()}");
            Assert.IsTrue(yFused.allclose(yLoop, 1e-5, 1e-6), $"outputs differ by {(yFused - yLoop).abs().max().item<float>()}");
            Assert.AreEqual(0f, wLoop[0, 3, 1].item<float>());
            Assert.AreEqual(0f, wFused[0, 3, 1].item<float>());
            // Relative agreement where the weights are not negligible.
            using var big = wLoop.gt(1e-3);
            Assert.IsTrue(((wFused - wLoop).abs() / wLoop.clamp_min(1e-3)).masked_select(big).max().item<float>() < 2e-6);

            // Offsets far from the data: most products underflow (and whole rows hit the eps clamp of the normaliser);
            // wherever the Gaussian-by-Gaussian product is 0 the closed form is 0 too (or a negligible denormal).
            head.MeanOffsets.fill_(30f);
            var wFarLoop = head.ApplyLoop(x, pad).Weights;
            var wFar = head.Apply(x, pad).Weights;
            Assert.IsTrue(wFarLoop.eq(0).sum().item<long>() > x.numel() / 2);
            Assert.IsTrue(wFar.masked_select(wFarLoop.eq(0)).abs().max().item<float>() < 1e-30);
            Assert.IsTrue(wFar.allclose(wFarLoop, 1e-5, 1e-7));
            head.MeanOffsets.copy_(tensor(new[] { 0.3f, -0.5f, 1.2f, 0.0f }));
        }

        head.to(float64);
        using var x64 = x.to(float64).requires_grad_(true);
        using var pad64 = pad?.clone();
        var grads = new List<Tensor[]>();
        foreach (var fused in new[] { false, true })
        {
            head.zero_grad();
            x64.grad?.zero_();
            var (y, _) = fused ? head.Apply(x64, pad64) : head.ApplyLoop(x64, pad64);
            (y * y).sum().backward();
            grads.Add(new[] { x64.grad!.clone(), head.MeanOffsets.grad!.clone(), head.Scales.grad!.clone() });
        }
        for (int i = 0; i < 3; i++)
            Assert.IsTrue(grads[1][i].allclose(grads[0][i], 1e-9, 1e-12), $"gradient {i} differs by {(grads[1][i] - grads[0][i]).abs().max().item<double>()}");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void AllHeadsAtOnceEqualsHeadByHeadLoop(bool padded)
    {
        var gen = new Generator(5);
        using var multi = new MultiHeadGaussianAdaptiveAttention(normAxis: 1, heads: 4, gaussians: 3, generator: gen);
        RandomiseHeads(multi);
        using var x = randn(3, 16, 2, 5, generator: gen) * 1.5;
        using var pad = padded ? rand(3, 16, 2, 5, generator: gen).lt(0.2) : null;
        using (no_grad())
        {
            var (yLoop, wLoop) = multi.ApplyLoop(x, pad, 1, 4);
            var (yFused, wFused) = multi.ApplyFused(x, pad, 1, 4);
            Assert.IsTrue(wFused.allclose(wLoop, 1e-6, 1e-7), $"weights differ by {(wFused - wLoop).abs().max().item<float>()}");
            Assert.IsTrue(yFused.allclose(yLoop, 1e-6, 1e-7), $"outputs differ by {(yFused - yLoop).abs().max().item<float>()}");
            Assert.IsTrue(multi.forward(x, pad).allclose(yFused, 0, 0), "forward takes the all-heads path when the axis splits evenly");
        }

        multi.to(float64);
        using var x64 = x.to(float64).requires_grad_(true);
        var grads = new List<Tensor[]>();
        foreach (var fused in new[] { false, true })
        {
            multi.zero_grad();
            x64.grad?.zero_();
            var (y, _) = fused ? multi.ApplyFused(x64, pad, 1, 4) : multi.ApplyLoop(x64, pad, 1, 4);
            (y * y).sum().backward();
            grads.Add(new[] { x64.grad!.clone() }.Concat(multi.parameters().Select(p => p.grad!.clone())).ToArray());
        }
        Assert.AreEqual(1 + 2 * 4, grads[0].Length);
        for (int i = 0; i < grads[0].Length; i++)
            Assert.IsTrue(grads[1][i].allclose(grads[0][i], 1e-9, 1e-12), $"gradient {i} differs by {(grads[1][i] - grads[0][i]).abs().max().item<double>()}");
    }

    private static void RandomiseHeads(MultiHeadGaussianAdaptiveAttention m)
    {
        using var noGrad = no_grad();
        foreach (var (name, p) in m.named_parameters())
            p.copy_(name.EndsWith("c") ? rand_like(p) + 0.5 : randn_like(p) * 0.4);
    }

    [TestMethod]
    public void GaussianGradientsMatchFiniteDifferences()
    {
        var gen = new Generator(3);
        using var head = new GaussianAdaptiveAttention(normAxis: -1, gaussians: 2, generator: gen);
        head.to(float64);
        using var xh = (randn(2, 5, dtype: float64) * 0.7).requires_grad_(true);
        // One pad given by an explicit mask (a padding value would flip the pad's status under the finite-difference
        // step): it is passed through, counts as zero in the statistics and its raw value still enters y_i.
        using var pad = zeros(2, 5, dtype: ScalarType.Bool);
        pad[0, 4] = tensor(true);
        GradientCheck.Verify(head, () => head.forward(xh, pad), xh);

        using var block = new GaussianBlock(new[] { 1, 2 }, new[] { 2, 2 }, new[] { 2, 1 }, numLayers: 2, generator: gen);
        block.to(float64);
        using var x = randn(2, 4, 5, dtype: float64).requires_grad_(true);
        GradientCheck.Verify(block, () => block.call(x), x);
    }

    [TestMethod]
    public void ClassifierGradientsMatchFiniteDifferences()
    {
        using var clf = new DaamClassifier(layers: 2, features: 4, classes: 3, height: 2, width: 2, heads: 2, hidden: 3, generator: new Generator(5));
        clf.to(float64);
        RandomiseDaam(clf.Attention);
        using var x = randn(2, 2, 4, dtype: float64).requires_grad_(true);
        GradientCheck.Verify(clf, () => clf.call(x), x);
    }

    // ---------------------------------------------------------------------------------------------- parameter counts

    [TestMethod]
    [DataRow(24, 1024, 8, 16_384)]
    [DataRow(40, 5120, 8, 81_920)]
    [DataRow(24, 1024, 1, 2_048)]
    [DataRow(40, 5120, 1, 10_240)]
    public void MultiHeadDaamParameterCountMatchesSpec(int layers, int features, int heads, int expected)
    {
        using var daam = new MultiHeadDensityAdaptiveAttention(layers, features, heads);
        Assert.AreEqual(expected, daam.parameters().Sum(p => p.numel()));
    }

    [TestMethod]
    [DataRow(24, 1024, 4, 32, 32, 8, 336_412)]      // IEMOCAP DAAMv1
    [DataRow(24, 1024, 4, 32, 32, 1, 322_076)]      // IEMOCAP DAAMv2
    [DataRow(24, 1024, 100, 32, 32, 8, 2_695_804)]  // CIFAR-100 DAAMv1
    [DataRow(24, 1024, 100, 32, 32, 1, 2_681_468)]  // CIFAR-100 DAAMv2
    [DataRow(40, 5120, 4, 64, 80, 8, 1_270_316)]    // AG News DAAMv1
    public void ClassifierParameterCountMatchesSpec(int layers, int features, int classes, int h, int w, int heads, int expected)
    {
        using var clf = new DaamClassifier(layers, features, classes, h, w, heads);
        Assert.AreEqual(expected, clf.parameters().Sum(p => p.numel()));
    }

    [TestMethod]
    public void GaussianBlockParameterCountMatchesReadme()
    {
        // README example: 3 layers × 4 heads × 5 Gaussians → 120 parameters.
        using var block = new GaussianBlock(new[] { -1, -1, -1 }, new[] { 4, 4, 4 }, new[] { 5, 5, 5 }, numLayers: 3);
        Assert.AreEqual(120, block.parameters().Sum(p => p.numel()));
    }

    [TestMethod]
    public void ClassifierRunsOnSequencesAndGeneratorMakesInitReproducible()
    {
        using var a = new DaamClassifier(4, 6, 3, 2, 3, heads: 2, hidden: 5, generator: new Generator(11));
        using var b = new DaamClassifier(4, 6, 3, 2, 3, heads: 2, hidden: 5, generator: new Generator(11));
        foreach (var ((name, p), (_, q)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.IsTrue(p.allclose(q, 0, 0), $"{name} differs for the same generator");
        using var x = randn(2, 4, 7, 6);
        using var logits = a.call(x);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, logits.shape);
        using var pooled = a.call(x.mean(new long[] { 2 }));
        Assert.IsTrue((logits - pooled).abs().max().item<float>() < 1e-6);
    }

    // ---------------------------------------------------------------------------------------------- importance factor

    [TestMethod]
    public void ImportanceFactorMatchesHandComputedValues()
    {
        // Two batches of weights [B 2, L 2, D 3]; batch maps are the per-batch means, DA is their mean.
        using var w1 = tensor(new[] { 0.9f, 0.5f, 0.1f, 0.3f, 0.7f, 0.5f, 0.7f, 0.5f, 0.3f, 0.1f, 0.5f, 0.7f }).reshape(2, 2, 3);
        using var w2 = tensor(new[] { 1.0f, 0.6f, 0.2f, 0.2f, 0.6f, 1.0f, 0.6f, 0.2f, 0.2f, 0.2f, 0.6f, 0.2f }).reshape(2, 2, 3);
        // batch map 1 = [[0.8, 0.5, 0.2], [0.2, 0.6, 0.6]]; batch map 2 = [[0.8, 0.4, 0.2], [0.2, 0.6, 0.6]]
        // DA = [[0.8, 0.45, 0.2], [0.2, 0.6, 0.6]]; min 0.2, max 0.8 → IF = [[1, 0.25/0.6, 0], [0, 0.4/0.6, 0.4/0.6]]
        using var importance = ImportanceFactor.Compute(new[] { w1, w2 });
        AssertClose(new[] { 1.0, 0.25 / 0.6, 0.0, 0.0, 0.4 / 0.6, 0.4 / 0.6 }, importance, 1e-6);
        using var perLayer = ImportanceFactor.PerLayer(importance);
        AssertClose(new[] { (1.0 + 0.25 / 0.6) / 3, (0.8 / 0.6) / 3 }, perLayer, 1e-6);
        // A constant map (max = min) gives zeros, not NaN.
        using var constant = ImportanceFactor.Compute(full(3, 4, 0.7f));
        Assert.AreEqual(0.0, constant.abs().max().item<float>());
    }

    [TestMethod]
    public void ImportanceFactorOfModelWeightsIsInUnitInterval()
    {
        using var daam = new MultiHeadDensityAdaptiveAttention(6, 5, heads: 3);
        using var x = randn(4, 6, 5);
        using var w = daam.AttentionWeights(x);
        using var importance = ImportanceFactor.Compute(ImportanceFactor.BatchMap(w));
        CollectionAssert.AreEqual(new long[] { 6, 5 }, importance.shape);
        Assert.AreEqual(0.0, importance.min().item<float>(), 1e-7);
        Assert.AreEqual(1.0, importance.max().item<float>(), 1e-7);
    }

    // ---------------------------------------------------------------------------------------------- invalid configurations

    [TestMethod]
    public void RejectsHeadsNotDividingLayers()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new MultiHeadDensityAdaptiveAttention(layers: 24, features: 8, heads: 5));
        StringAssert.Contains(ex.Message, "divide the number of layers 24");
        StringAssert.Contains(ex.Message, "divisors of 24");
    }

    [TestMethod]
    public void RejectsNonPositiveHeadsAndGaussians()
    {
        var heads = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MultiHeadGaussianAdaptiveAttention(1, heads: 0, gaussians: 2));
        StringAssert.Contains(heads.Message, "number of heads must be a positive integer");
        var gaussians = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new GaussianAdaptiveAttention(1, gaussians: 0));
        StringAssert.Contains(gaussians.Message, "number of Gaussians per head must be a positive integer");
        var daamHeads = Assert.ThrowsExactly<ArgumentException>(() => new MultiHeadDensityAdaptiveAttention(8, 4, heads: 0));
        StringAssert.Contains(daamHeads.Message, "must be positive and divide");
    }

    [TestMethod]
    public void RejectsNonPositiveInitialC()
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new DensityAdaptiveAttention(4, initialC: 0));
        StringAssert.Contains(ex.Message, "must be positive");
    }

    [TestMethod]
    public void RejectsNormAxisOutOfRange()
    {
        using var block = new GaussianBlock(new[] { 3 }, new[] { 1 }, new[] { 2 }, numLayers: 1);
        using var x = randn(2, 4, 5);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => block.call(x));
        StringAssert.Contains(ex.Message, "out of range for an input of rank 3");
        StringAssert.Contains(ex.Message, "[-3, 2]");
    }

    [TestMethod]
    public void RejectsLayerListsOfWrongLength()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new GaussianBlock(new[] { 1, 2 }, new[] { 2 }, new[] { 2, 2 }, numLayers: 2));
        StringAssert.Contains(ex.Message, "must each have numLayers = 2 entries");
    }

    [TestMethod]
    public void RejectsTooManyHeadsForTheAxis()
    {
        using var multi = new MultiHeadGaussianAdaptiveAttention(normAxis: 1, heads: 4, gaussians: 2);
        using var x = randn(2, 7, 3);   // chunk = 7 / 4 = 1 → NaN variance in the reference
        var ex = Assert.ThrowsExactly<ArgumentException>(() => multi.call(x));
        StringAssert.Contains(ex.Message, "too few for 4 heads");
        StringAssert.Contains(ex.Message, "Use at most 3 heads");
    }

    [TestMethod]
    public void RejectsPaddingMaskOfWrongShape()
    {
        using var head = new GaussianAdaptiveAttention(normAxis: 1, gaussians: 2);
        using var x = randn(2, 6);
        using var mask = zeros(2, 5, dtype: ScalarType.Bool);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => head.forward(x, mask));
        StringAssert.Contains(ex.Message, "padding mask has shape [2, 5]");
        StringAssert.Contains(ex.Message, "equal to the input's or 1");
        using var broadcast = zeros(2, 1, dtype: ScalarType.Bool);   // broadcastable masks are accepted
        using var y = head.forward(x, broadcast);
        using var plain = head.call(x);
        Assert.IsTrue(y.allclose(plain, 0, 0));
    }

    [TestMethod]
    public void RejectsRankOneInputToGaussianHead()
    {
        using var head = new GaussianAdaptiveAttention(normAxis: 0, gaussians: 2);
        using var x = randn(6);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => head.call(x));
        StringAssert.Contains(ex.Message, "rank 2 or more");
    }

    [TestMethod]
    public void RejectsWrongDaamInputShape()
    {
        using var daam = new MultiHeadDensityAdaptiveAttention(layers: 6, features: 4, heads: 2);
        using var x = randn(2, 5, 4);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => daam.call(x));
        StringAssert.Contains(ex.Message, "[batch, 6 (layers), 4 (features)]");
        using var head = new DensityAdaptiveAttention(4);
        using var x2 = randn(2, 3, 5);
        var ex2 = Assert.ThrowsExactly<ArgumentException>(() => head.call(x2));
        StringAssert.Contains(ex2.Message, "[batch, layers, 4 (features)]");
    }

    [TestMethod]
    public void RejectsClassifierImageShapeNotMatchingFeatures()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new DaamClassifier(24, 1024, 4, height: 32, width: 30));
        StringAssert.Contains(ex.Message, "must equal the feature size 1024");
    }

    [TestMethod]
    public void RejectsEmptyImportanceInputs()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => ImportanceFactor.Compute(Array.Empty<Tensor>()));
        StringAssert.Contains(ex.Message, "pass at least one");
    }
}
