using MLNet.Attention.Forecasting;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Forecasting;

[TestClass]
public sealed class CribNetworkTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    private static readonly string[] InputNames = { "x_raw", "y", "Z" };

    /// <summary>The golden file's configuration (crib.md "Configuration").</summary>
    private static CribConfig GoldenConfig(double dropout) =>
        new(Lookback: 12, Horizon: 5, PatchLength: 3, ModelWidth: 12, Heads: 4, Layers: 2, Dropout: dropout);

    private static void LoadGoldenParameters(nn.Module module, GoldenFile golden)
    {
        var ours = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var fills = golden.Fills.Where(f => !InputNames.Contains(f.Key)).ToList();
        Assert.AreEqual(82, fills.Count, "the golden file lists 82 reference parameters");
        Assert.AreEqual(fills.Count, ours.Count, "parameter tensors differ from the reference state dict");
        using var noGrad = no_grad();
        foreach (var (name, fill) in fills)
        {
            Assert.IsTrue(ours.TryGetValue(name, out var p), $"no parameter named {name}");
            using var value = fill.Create();
            CollectionAssert.AreEqual(fill.Shape, p!.shape, $"shape of {name}");
            p.copy_(value);
        }
    }

    /// <summary>Golden input: x = x_raw ⊙ mask with mask[j] = 0 iff j mod 7 = 3 over [B, P, N, L]; converted to [B, T, N].</summary>
    private static (Tensor Series, Tensor Mask) GoldenInput(GoldenFile golden)
    {
        using var raw = golden.Fills["x_raw"].Create();
        var m = new float[raw.numel()];
        for (int j = 0; j < m.Length; j++) m[j] = j % 7 == 3 ? 0f : 1f;
        using var maskPatches = tensor(m).reshape(raw.shape);
        return (CribPatching.ToSeries(raw), CribPatching.ToSeries(maskPatches));
    }

    private static GoldenFile.Check Find(List<GoldenFile.Check> checks, string prefix) => checks.Single(c => c.Quantity.StartsWith(prefix));

    private static void AssertScalar(double expected, Tensor actual, double rtol, string label)
    {
        double got = actual.to(ScalarType.Float64).item<double>();
        Assert.IsTrue(Math.Abs(got - expected) <= rtol * Math.Abs(expected), $"{label}: {got:G9} vs golden {expected:G9}");
    }

    [TestMethod]
    public void EvalForwardMatchesGolden()
    {
        var golden = GoldenFile.Load("crib.md");
        using var net = new CribNetwork(GoldenConfig(0.1));
        LoadGoldenParameters(net, golden);
        net.eval();
        var (series, mask) = GoldenInput(golden);
        using var _s = series;
        using var _m = mask;
        using var output = net.ForwardDetailed(series, mask);
        var (title, checks) = golden.Cases[0];
        StringAssert.StartsWith(title, "eval mode");
        GoldenFile.Verify(Find(checks, "preds"), output.Forecast, 2e-5, 1e-4, title);
        GoldenFile.Verify(Find(checks, "enc_out_1"), output.EncoderTokens, 2e-5, 1e-4, title);
        GoldenFile.Verify(Find(checks, "q(z|x) loc"), output.PosteriorMean, 2e-5, 1e-4, title);
        GoldenFile.Verify(Find(checks, "q(z|x) variance"), output.PosteriorVariance, 2e-5, 1e-4, title);
        // crib.md, eval case: "KL(q(z|x) || N(0, I)) summed (scalar) = 13.941632".
        AssertScalar(13.941632, output.Kl, 1e-4, "KL");
        // forward() returns the same forecast.
        using var y = net.forward(series, mask);
        Assert.AreEqual(0.0, (y - output.Forecast).abs().max().item<float>(), 0.0);
    }

    [TestMethod]
    public void TrainingStepLossTermsMatchGoldenWithInjectedNoise()
    {
        var golden = GoldenFile.Load("crib.md");
        using var net = new CribNetwork(GoldenConfig(0.0));
        LoadGoldenParameters(net, golden);
        net.train();
        var (series, mask) = GoldenInput(golden);
        using var _s = series;
        using var _m = mask;
        using var target = golden.Fills["y"].Create();
        using var z = golden.Fills["Z"].Create();
        using var loss = net.ComputeLoss(series, mask, target, secondViewDraws: z);
        var (title, checks) = golden.Cases[1];
        StringAssert.StartsWith(title, "train mode");
        // Scalars of crib.md, train case (not in the parseable "sum =" format).
        AssertScalar(0.084130645, loss.Output.NoiseMean!, 1e-4, "x_1.mean()");
        AssertScalar(1.1183406, loss.Output.NoiseStd!, 1e-4, "x_1.std()");
        GoldenFile.Verify(Find(checks, "preds"), loss.Output.Forecast, 2e-5, 1e-4, title);
        GoldenFile.Verify(Find(checks, "enc_out_1"), loss.Output.EncoderTokens, 2e-5, 1e-4, title);
        GoldenFile.Verify(Find(checks, "enc_out_2"), loss.Output.SecondViewTokens!, 2e-5, 1e-4, title);
        AssertScalar(0.77389181, loss.Prediction, 1e-4, "L_pred");
        AssertScalar(0.00018615735, loss.Consistency, 1e-3, "L_consis"); // difference of near-equal tensors: rtol 1e-3 per the golden file
        AssertScalar(13.941632, loss.Kl, 1e-4, "KL");
        AssertScalar(0.7740919, loss.Total, 1e-4, "total loss");
    }

    [TestMethod]
    public void StateDictKeysAndBuffersMatchReference()
    {
        var golden = GoldenFile.Load("crib.md");
        using var net = new CribNetwork(GoldenConfig(0.1));
        var names = net.named_parameters().Select(p => p.name).ToList();
        var expected = golden.Fills.Keys.Where(k => !InputNames.Contains(k)).ToList();
        CollectionAssert.AreEqual(expected, names, "named_parameters order must be the reference's");
        var buffers = net.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        // PE width 2⌈L/2⌉ = 4 for patch length 3; the unused decoder table is D wide.
        CollectionAssert.AreEqual(new long[] { 1, 5000, 4 }, buffers["enc_pos_emded.pe"].shape);
        CollectionAssert.AreEqual(new long[] { 1, 5000, 12 }, buffers["dec_pos_emded.pe"].shape);
        var pe = buffers["enc_pos_emded.pe"];
        Assert.AreEqual(Math.Sin(7 * Math.Exp(-2 * Math.Log(10000.0) / 4)), pe[0, 7, 2].item<float>(), 1e-6);
        Assert.AreEqual(Math.Cos(7.0), pe[0, 7, 1].item<float>(), 1e-6);
    }

    [TestMethod]
    [DataRow(24, 24, 8, 32, 81_570L, 67_034L)]
    [DataRow(24, 24, 8, 128, 942_642L, 727_898L)]
    [DataRow(12, 5, 3, 12, -1L, -1L)]
    public void ParameterCountMatchesSpec(int lookback, int horizon, int patch, int width, long total, long used)
    {
        var config = new CribConfig(lookback, horizon, patch, width, Heads: 4, Layers: width == 12 ? 2 : 3);
        using var net = new CribNetwork(config);
        long actual = net.parameters().Sum(p => p.numel());
        Assert.AreEqual(config.ParameterCount, actual);
        if (total > 0)
        {
            Assert.AreEqual(total, config.ParameterCount);
            Assert.AreEqual(used, config.ForwardParameterCount);
        }
    }

    [TestMethod]
    public void DeadModulesReceiveNoGradientAndForwardParametersDo()
    {
        var config = new CribConfig(Lookback: 4, Horizon: 2, PatchLength: 2, ModelWidth: 4, Heads: 2, Layers: 1, Dropout: 0, TcnHiddenChannels: 3);
        using var net = new CribNetwork(config);
        using var x = randn(2, 4, 3);
        using var y = randn(2, 2, 3);
        using var loss = net.ComputeLoss(x, null, y);
        loss.Total.backward();
        long withGrad = net.named_parameters().Where(p => p.parameter.grad is not null).Sum(p => p.parameter.numel());
        Assert.AreEqual(config.ForwardParameterCount, withGrad);
        foreach (var (name, p) in net.named_parameters())
            Assert.AreEqual(IsDead(name), p.grad is null, name);
    }

    private static bool IsDead(string name) =>
        name.StartsWith("ini_embedding.") || name.StartsWith("encoder.enc_embedding_1.") || name.Contains(".key_projection.")
        || name.Contains(".value_projection.") || name.StartsWith("predictor.prediction_3.") || name.StartsWith("predictor.prediction_4.")
        || name.StartsWith("predictor.prediction_5.");

    private static CribNetwork TinyFloat64Network(double seed)
    {
        manual_seed((long)seed);
        var net = new CribNetwork(new CribConfig(Lookback: 4, Horizon: 2, PatchLength: 2, ModelWidth: 4, Heads: 2, Layers: 1, Dropout: 0, TcnHiddenChannels: 3));
        net.to(float64);
        return net;
    }

    private static List<(string, Tensor)> Used(nn.Module net, Func<string, bool>? exclude = null) =>
        net.named_parameters().Where(p => !IsDead(p.name) && !(exclude?.Invoke(p.name) ?? false)).Select(p => (p.name, (Tensor)p.parameter)).ToList();

    [TestMethod]
    public void ForecastAndKlGradientsMatchFiniteDifferences()
    {
        using var net = TinyFloat64Network(3);
        net.eval();
        using var x = randn(2, 4, 3, dtype: float64);
        using var mask = ones(2, 4, 3, dtype: float64);
        mask[0, 1, 2] = tensor(0.0, float64);
        // The input is not checked: RevIN's mean/std are detached in the reference, so d/dx is deliberately not the true
        // derivative. Every forward-path parameter (weight-norm g and v, RevIN γ/β included) is checked exactly; the
        // dead modules get no gradient at all (DeadModulesReceiveNoGradientAndForwardParametersDo).
        // The IB projector feeds only the KL term (z is not used for prediction), so it is checked on the KL below.
        GradientCheck.Verify(() => net.forward(x, mask), Used(net, n => n.StartsWith("encoder.projector.")), maxElementsPerTensor: 3);
        GradientCheck.Verify(() => { using var o = net.ForwardDetailed(x, mask); return o.Kl.alias(); },
            Used(net, n => n.StartsWith("predictor.") || n.StartsWith("revinlayer.")), maxElementsPerTensor: 3);
    }

    [TestMethod]
    public void TrainingLossGradientsMatchFiniteDifferences()
    {
        using var net = TinyFloat64Network(5);
        net.train(); // dropout 0: deterministic
        using var x = randn(2, 4, 3, dtype: float64);
        using var y = randn(2, 2, 3, dtype: float64);
        using var draws = randn(2, 2, 3, 2, dtype: float64);
        // RevIN γ/β are left out: the noise moments m = mean(x₁), s = std(x₁) depend on them but are constants for
        // autograd (the reference draws the noise without a gradient path), so only there autograd ≠ finite difference.
        GradientCheck.Verify(() => { using var l = net.ComputeLoss(x, null, y, draws); return l.Total.alias(); },
            Used(net, n => n.StartsWith("revinlayer.")), maxElementsPerTensor: 3);
    }

    [TestMethod]
    public void WeightNormConvGradientsMatchFiniteDifferences()
    {
        manual_seed(11);
        using var conv = new WeightNormConv2d(3, 4, 3, 2);
        conv.to(float64);
        using var x = randn(2, 3, 2, 6, dtype: float64).requires_grad_(true);
        GradientCheck.Verify(conv, () => conv.call(x), x);
        // Causal: output column t depends on input columns ≤ t only.
        using var y1 = conv.call(x);
        using var x2 = x.detach().clone();
        x2[.., .., .., 5] = zeros(2, 3, 2, dtype: float64);
        using var y2 = conv.call(x2);
        Assert.AreEqual(0.0, (y1[.., .., .., ..5] - y2[.., .., .., ..5]).abs().max().item<double>(), 1e-12);
    }

    [TestMethod]
    public void MissingEntriesAreZeroFilledAndNaNThereDoesNotLeak()
    {
        manual_seed(1);
        using var net = new CribNetwork(new CribConfig(Lookback: 8, Horizon: 3, PatchLength: 4, ModelWidth: 8, Heads: 2, Layers: 1, TcnHiddenChannels: 6));
        net.eval();
        using var x = randn(2, 8, 3);
        using var mask = ones(2, 8, 3);
        mask[0, 2, 1] = tensor(0f);
        mask[1, 7, 0] = tensor(0f);
        using var zeroFilled = x * mask;
        using var withNaN = x.clone();
        withNaN[0, 2, 1] = tensor(float.NaN);
        withNaN[1, 7, 0] = tensor(float.PositiveInfinity);
        using var expected = net.ForwardDetailed(zeroFilled, null);
        using var got = net.ForwardDetailed(withNaN, mask);
        Assert.AreEqual(0f, (got.Forecast - expected.Forecast).abs().max().item<float>());
        Assert.IsTrue(got.Kl.isfinite().item<bool>());
        // RevIN statistics include the zero-filled entries.
        using var mean = zeroFilled.mean(new long[] { 1 }, keepdim: true);
        Assert.AreEqual(0f, (got.SeriesMean - mean).abs().max().item<float>(), 1e-6f);
        // A bool mask works the same; the gradient never reaches a missing entry.
        using var leaf = withNaN.clone().requires_grad_(true);
        using var boolMask = mask.gt(0.5);
        using var s = net.forward(leaf, boolMask).sum();
        s.backward();
        Assert.AreEqual(0f, leaf.grad![0, 2, 1].item<float>());
        Assert.IsTrue(leaf.grad!.isfinite().all().item<bool>());
    }

    [TestMethod]
    public void KlEqualsGaussianClosedFormPerDimension()
    {
        using var mean = randn(2, 3, 5, dtype: float64);
        using var variance = rand(2, 3, 5, dtype: float64) + 0.1;
        using var kl = CribInformationBottleneck.KlToStandardNormal(mean, variance);
        var m = mean.data<double>().ToArray();
        var v = variance.data<double>().ToArray();
        // KL(N(μ, σ²) ‖ N(0, 1)) = −ln σ + (σ² + μ²)/2 − ½, summed over every dimension, batch and variate.
        double expected = m.Zip(v, (mu, var) => -Math.Log(Math.Sqrt(var)) + (var + mu * mu) / 2 - 0.5).Sum();
        Assert.AreEqual(expected, kl.item<double>(), 1e-10);
        // Non-finite rows are zeroed, not propagated.
        variance[0, 0, 0] = tensor(0.0, float64);
        using var kl2 = CribInformationBottleneck.KlToStandardNormal(mean, variance);
        Assert.IsTrue(double.IsFinite(kl2.item<double>()));
    }

    [TestMethod]
    public void SecondViewNoiseIsReproducibleWithAGenerator()
    {
        manual_seed(2);
        using var net = new CribNetwork(new CribConfig(Lookback: 8, Horizon: 3, PatchLength: 4, ModelWidth: 8, Heads: 2, Layers: 1, Dropout: 0, TcnHiddenChannels: 6));
        net.train();
        using var x = randn(2, 8, 3);
        using var y = randn(2, 3, 3);
        double Consistency(ulong seed)
        {
            using var l = net.ComputeLoss(x, null, y, generator: new Generator(seed));
            return l.Consistency.item<float>();
        }
        Assert.AreEqual(Consistency(42), Consistency(42));
        Assert.AreNotEqual(Consistency(42), Consistency(43));
    }

    [TestMethod]
    public void TokenOrderIsPatchMajorAndPatchingRoundTrips()
    {
        using var series = arange(2 * 6 * 3, dtype: float32).reshape(2, 6, 3);
        using var patches = CribPatching.ToPatches(series, 2);                    // [2, 3, 3, 2]
        Assert.AreEqual(series[1, 2 * 2 + 1, 2].item<float>(), patches[1, 2, 2, 1].item<float>());
        using var back = CribPatching.ToSeries(patches);
        Assert.AreEqual(0f, (back - series).abs().max().item<float>());
        using var tokens = arange(2 * 3 * 2 * 4, dtype: float32).reshape(2, 3 * 2, 4);  // P 3, N 2, D 4
        using var grouped = CribInformationBottleneck.RegroupByVariate(tokens, 3);      // [2, 2, 12]
        // grouped[b, n, p·D + d] = tokens[b, p·N + n, d]
        Assert.AreEqual(tokens[1, 2 * 2 + 1, 3].item<float>(), grouped[1, 1, 2 * 4 + 3].item<float>());
    }

    [TestMethod]
    public void ReferenceAttentionQuirksCanBeSwitchedOff()
    {
        var baseConfig = new CribConfig(Lookback: 8, Horizon: 3, PatchLength: 4, ModelWidth: 8, Heads: 2, Layers: 1, Dropout: 0, TcnHiddenChannels: 6);
        using var x = randn(2, 8, 3);
        var results = new List<Tensor>();
        foreach (var config in new[] { baseConfig, baseConfig with { StandardHeadMerge = true }, baseConfig with { SeparateKeyValueProjections = true } })
        {
            manual_seed(9);
            using var net = new CribNetwork(config);
            net.eval();
            results.Add(net.forward(x, null));
        }
        Assert.IsTrue((results[0] - results[1]).abs().max().item<float>() > 1e-5, "the scrambled head merge must differ from the standard one");
        Assert.IsTrue((results[0] - results[2]).abs().max().item<float>() > 1e-5, "Q = K = V must differ from separate projections");
        foreach (var r in results) r.Dispose();
    }

    // ---- invalid configurations and inputs: one test per path, asserting the message says what to change ----

    [TestMethod]
    public void RejectsLookbackNotDivisibleByPatchLength()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new CribNetwork(new CribConfig(Lookback: 25, PatchLength: 8)));
        StringAssert.Contains(ex.Message, "Lookback = 25 is not divisible by PatchLength = 8");
        StringAssert.Contains(ex.Message, "multiple of 8");
    }

    [TestMethod]
    public void RejectsHeadsNotDividingWidth()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new CribNetwork(new CribConfig(ModelWidth: 30, Heads: 4)));
        StringAssert.Contains(ex.Message, "Heads = 4 must be positive and divide ModelWidth = 30");
    }

    [TestMethod]
    public void RejectsOddModelWidth()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new CribNetwork(new CribConfig(ModelWidth: 9, Heads: 3)));
        StringAssert.Contains(ex.Message, "must be a positive even number");
    }

    [TestMethod]
    public void RejectsNonPositiveSizesAndUnknownActivation()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CribNetwork(new CribConfig(Layers: 0)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CribNetwork(new CribConfig(Horizon: 0)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CribNetwork(new CribConfig(Dropout: 1.0)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CribNetwork(new CribConfig(KlWeight: -1)));
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new CribNetwork(new CribConfig(Activation: "tanh")));
        StringAssert.Contains(ex.Message, "use \"relu\"");
    }

    private static CribNetwork SmallNetwork() =>
        new(new CribConfig(Lookback: 8, Horizon: 3, PatchLength: 4, ModelWidth: 8, Heads: 2, Layers: 1, TcnHiddenChannels: 6));

    [TestMethod]
    public void RejectsSeriesOfWrongShape()
    {
        using var net = SmallNetwork();
        using var x = zeros(2, 7, 3);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => net.forward(x, null));
        StringAssert.Contains(ex.Message, "[batch, 8 (lookback), variates]");
        using var patched = zeros(2, 2, 3, 4);
        ex = Assert.ThrowsExactly<ArgumentException>(() => net.forward(patched, null));
        StringAssert.Contains(ex.Message, "CribPatching.ToSeries");
    }

    [TestMethod]
    public void RejectsMaskOfWrongShape()
    {
        using var net = SmallNetwork();
        using var x = zeros(2, 8, 3);
        using var mask = ones(2, 8, 4);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => net.forward(x, mask));
        StringAssert.Contains(ex.Message, "observedMask must have the series' shape [2, 8, 3]");
    }

    [TestMethod]
    public void RejectsNonBinaryMask()
    {
        using var net = SmallNetwork();
        using var x = zeros(2, 8, 3);
        using var mask = full(2, 8, 3, 0.5f);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => net.forward(x, mask));
        StringAssert.Contains(ex.Message, "only 0 (missing) and 1 (observed)");
    }

    [TestMethod]
    public void RejectsNaNAtObservedPositions()
    {
        using var net = SmallNetwork();
        using var x = zeros(2, 8, 3);
        x[1, 3, 2] = tensor(float.NaN);
        using var mask = ones(2, 8, 3);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => net.forward(x, mask));
        StringAssert.Contains(ex.Message, "NaN or infinite values at observed positions");
        ex = Assert.ThrowsExactly<ArgumentException>(() => net.forward(x, null));
        StringAssert.Contains(ex.Message, "pass an observedMask with 0 at the missing positions");
    }

    [TestMethod]
    public void RejectsTargetAndInjectedDrawsOfWrongShape()
    {
        using var net = SmallNetwork();
        using var x = zeros(2, 8, 3);
        using var badTarget = zeros(2, 4, 3);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => net.ComputeLoss(x, null, badTarget));
        StringAssert.Contains(ex.Message, "target must have shape [2 (batch), 3 (horizon), 3 (variates)]");
        using var target = zeros(2, 3, 3);
        using var badDraws = zeros(2, 8, 3);
        ex = Assert.ThrowsExactly<ArgumentException>(() => net.ComputeLoss(x, null, target, badDraws));
        StringAssert.Contains(ex.Message, "patch shape [2, 2, 3, 4]");
    }

    [TestMethod]
    public void RejectsTooManyTokensForThePositionalTable()
    {
        using var net = SmallNetwork();
        using var x = zeros(1, 8, 2501);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => net.forward(x, null));
        StringAssert.Contains(ex.Message, "5002 tokens exceed");
    }
}
