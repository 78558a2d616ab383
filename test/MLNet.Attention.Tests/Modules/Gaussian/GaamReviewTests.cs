using MLNet.Attention.Gaussian;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Gaussian;

/// <summary>
/// Independent review of GAAM/DAAM: configurations the golden file does not cover (a padded 2-layer block whose second
/// layer no longer sees the doubled pads, a negative norm axis, a head split along axis 0 with a remainder, float64
/// inputs with float32 parameters, a single head with its own eps, one encoder layer per DAAM head, a batch of one).
/// Expected values: produced once by the reviewer with PyTorch 1.13 CPU running a line-by-line transcription (kept
/// outside the repository, which ships only spec-written references) of the
/// reference forward code described in shared/spec/gaam.md), printed to 9 significant digits. Parameters are set by
/// their reference state-dict names in state-dict order (k = index in that order), which also pins the order.
/// </summary>
[TestClass]
public sealed class GaamReviewTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    /// <summary>v[j] = c0 + a·sin(f·j + p) over the row-major flat index, evaluated in double, rounded to float32.</summary>
    private static Tensor Fill(long[] shape, double c0, double a, double f, double p, ScalarType dtype = ScalarType.Float32)
    {
        long n = shape.Aggregate(1L, (x, y) => x * y);
        var v = new float[n];
        for (long j = 0; j < n; j++) v[j] = (float)(c0 + a * Math.Sin(f * j + p));
        return tensor(v).reshape(shape).to(dtype);
    }

    /// <summary>The script's set_params: c = 1.1 + 0.4 sin(0.7j + 0.3k + φ), offsets = 0.3 sin(0.9j + 0.5k + φ).</summary>
    private static void SetParams(nn.Module module, double phase)
    {
        using var noGrad = no_grad();
        int k = 0;
        foreach (var (name, p) in module.named_parameters())
        {
            using var value = name.EndsWith("mean_offsets") || name.EndsWith("mean_offset")
                ? Fill(p.shape, 0.0, 0.3, 0.9, 0.5 * k + phase)
                : name.EndsWith("c") ? Fill(p.shape, 1.1, 0.4, 0.7, 0.3 * k + phase)
                : throw new AssertFailedException($"unexpected parameter {name}");
            p.copy_(value);
            k++;
        }
    }

    private static void AssertClose(double[] expected, Tensor actual, double atol, string label)
    {
        using var d = actual.to(float64).reshape(-1);
        var got = d.data<double>().ToArray();
        Assert.AreEqual(expected.Length, got.Length, $"{label}: size");
        for (int i = 0; i < got.Length; i++)
            Assert.IsTrue(Math.Abs(got[i] - expected[i]) <= atol + 1e-5 * Math.Abs(expected[i]), $"{label}[{i}]: {got[i]} vs {expected[i]}");
    }

    [TestMethod]
    public void PaddedTwoLayerBlockOnNegativeAxisMatchesReference()
    {
        // GaussianBlock([-1, 1], [2, 1], [2, 3], 2 layers, padding -1) on [2, 4, 6]. Layer 0 splits the last axis into
        // chunks 3 + 3 and passes pads through; the residual turns them into -2, which layer 1 (axis 1, one head) no
        // longer recognises as padding, so they are reweighted there (library behaviour).
        using var block = new GaussianBlock(new[] { -1, 1 }, new[] { 2, 1 }, new[] { 2, 3 }, numLayers: 2, paddingValue: -1.0);
        var names = block.named_parameters().Select(p => p.name).ToArray();
        CollectionAssert.AreEqual(new[]
        {
            "layers.0.attention_heads.0.mean_offsets", "layers.0.attention_heads.0.c",
            "layers.0.attention_heads.1.mean_offsets", "layers.0.attention_heads.1.c",
            "layers.1.attention_heads.0.mean_offsets", "layers.1.attention_heads.0.c",
        }, names, "library state-dict keys and order");
        SetParams(block, 0.1);
        using var x = Fill(new long[] { 2, 4, 6 }, 0.3, 1.4, 0.53, 0.2);
        using (var flat = x.view(-1))
            foreach (long j in new long[] { 1, 8, 9, 20, 33, 47 }) flat[j].fill_(-1.0f);
        var (y, w) = block.ForwardWithWeights(x);
        AssertClose(new[]
        {
            1.10364866, -2.37944579, 2.82137561, 2.97416711, 2.34305477, 0.951452911, -0.0698108822, -1.13315713, -2.50307798, -2.38308525, -1.00797129, -0.108933955,
            1.02339864, 2.0454998, 2.83397746, 2.92578053, 2.25508523, 0.879307151, -0.275851816, -1.24933672, -2.50307798, -1.59826756, -1.05905294, 0.101973683,
            1.16072464, 2.53505969, 2.898736, 2.82219458, 2.05604506, 0.727499545, -0.405237496, -1.46109581, -1.68892622, -2.36663961, -0.770659089, 0.395970762,
            1.24565232, 2.6135602, 2.92965651, 2.75845623, 1.9569788, 0.585602462, -0.549856842, -1.53916609, -1.70214593, -1.50148368, -0.870672226, -2.11952901,
        }, y, 1e-5, "output");
        AssertClose(new[]
        {
            0.579418182, 0.0377830863, 0.382798791, 0.435376078, 0.432192683, 0.132431284, 0.738892794, 0.224681124, 0.0364260636, 0.0296018459, 0.164808571, 0.805589616,
            0.172987953, 0.459944844, 0.367067188, 0.425676227, 0.432393193, 0.141930625, 0.712197244, 0.223187506, 0.0646152273, 0.190478891, 0.395640433, 0.413880646,
            0.164487094, 0.458941817, 0.376571089, 0.417282015, 0.432536364, 0.150181621, 0.341086894, 0.422365487, 0.236547559, 0.00694896327, 0.161003143, 0.832047939,
            0.154531866, 0.457646221, 0.387821943, 0.410070062, 0.432578146, 0.157351732, 0.351382107, 0.409950316, 0.238667667, 0.212936237, 0.614472032, 0.172591656,
        }, w[0], 1e-5, "layer 0 weights");
        AssertClose(new[]
        {
            0.208656609, 0.189722866, 0.249497235, 0.243353277, 0.234594896, 0.19604671, 0.311237276, 0.374865502, 0.251538992, 0.191542596, 0.258226752, 0.190332904,
            0.278140217, 0.0687745214, 0.247424752, 0.252025902, 0.260555327, 0.286832035, 0.201965928, 0.366637141, 0.251538992, 0.313078225, 0.246623039, 0.326788366,
            0.270049602, 0.257068664, 0.251387507, 0.241581932, 0.229709953, 0.284186125, 0.286381304, 0.259527326, 0.252904624, 0.183319747, 0.26604417, 0.343693614,
            0.220248148, 0.238923401, 0.245057926, 0.253334224, 0.264582366, 0.312355697, 0.223320901, 0.24448058, 0.250649929, 0.321764052, 0.239663512, 0.0597645342,
        }, w[1], 1e-5, "layer 1 weights");
        y.Dispose();
        foreach (var t in w) t.Dispose();
    }

    [TestMethod]
    public void HeadSplitAlongAxisZeroWithRemainderFollowsFloat64Input()
    {
        // MultiHead(axis 0, 2 heads, 1 Gaussian) on float64 [5, 3]: chunks of 2 and 3 rows; float32 parameters, float64 math.
        using var multi = new MultiHeadGaussianAdaptiveAttention(normAxis: 0, heads: 2, gaussians: 1);
        SetParams(multi, 0.7);
        using var x = Fill(new long[] { 5, 3 }, -0.2, 1.1, 0.91, 0.4, ScalarType.Float64);
        using var y = multi.call(x);
        Assert.AreEqual(ScalarType.Float64, y.dtype);
        AssertClose(new[] { 0.139480706, 0.452389416, 0.354374856, -0.0728784485, -0.504486419, -0.604023682, -0.239524923, 0.126198168,
            0.322319858, 0.211012181, -0.098767855, -0.277804527, -0.359759181, -0.140451587, 0.153370289 }, y, 1e-7, "multi-head");

        // A single head uses its own eps (1e-3 here) for the variance and the clamp; norm axis -1, 3 Gaussians.
        using var head = new GaussianAdaptiveAttention(normAxis: -1, gaussians: 3, eps: 1e-3);
        SetParams(head, 1.3);
        using var ys = head.call(x);
        Assert.AreEqual(ScalarType.Float64, ys.dtype);
        AssertClose(new[] { 0.0141102333, 0.388765354, 0.329743925, -0.0602994237, -0.450206208, -0.321684882, -0.0862615211, 0.164904314,
            0.303412222, 0.185484716, -0.148867873, -0.191934634, -0.235772705, -0.290403441, 0.116906744 }, ys, 1e-7, "single head eps 1e-3");
    }

    [TestMethod]
    public void DaamWithOneLayerPerHeadAndBatchOfOneMatchesReference()
    {
        // MultiHeadDAAM(L 4, D 3, H 4): one layer per head, so var = |y² − y²| + 1e-8 = 1e-8 and ŷ = −δ / √(1e-8 + 1e-5);
        // a batch of one (the reference's squeeze branch). Offsets scaled by 0.01 as in the script.
        using var daam = new MultiHeadDensityAdaptiveAttention(layers: 4, features: 3, heads: 4);
        var names = daam.named_parameters().Select(p => p.name).ToArray();
        CollectionAssert.AreEqual(new[] { "gcts.0.c", "gcts.0.mean_offset", "gcts.1.c", "gcts.1.mean_offset", "gcts.2.c", "gcts.2.mean_offset", "gcts.3.c", "gcts.3.mean_offset" }, names);
        SetParams(daam, 0.2);
        using (no_grad())
            foreach (var (name, p) in daam.named_parameters())
                if (name.EndsWith("mean_offset")) p.mul_(0.01);
        using var x = Fill(new long[] { 1, 4, 3 }, 0.1, 1.3, 0.77, 0.9);
        using var y = daam.call(x);
        CollectionAssert.AreEqual(new long[] { 1, 4, 3 }, y.shape);
        AssertClose(new[] { 0.95471257, 1.01419091, 0.843475044, 0.00809926912, -0.800264776, -1.15337276, -0.755891502, 0.102426298,
            0.714011729, 1.2840035, 0.743795395, 0.136785403 }, y, 1e-5, "H = L, batch 1");

        // MultiHeadDAAM(L 4, D 3, H 2) on a float64 batch of two with float32 parameters.
        using var daam2 = new MultiHeadDensityAdaptiveAttention(layers: 4, features: 3, heads: 2);
        SetParams(daam2, 0.5);
        using var x2 = Fill(new long[] { 2, 4, 3 }, -0.3, 1.2, 0.41, 1.1, ScalarType.Float64);
        using var y2 = daam2.call(x2);
        Assert.AreEqual(ScalarType.Float64, y2.dtype);
        AssertClose(new[] { 0.308555063, 0.88304014, 0.658040901, 0.0045190337, 0.0577284597, -0.19415351, -0.773357861, -1.17086174,
            -1.43301937, -0.510688249, -0.450236488, -0.253318108, -0.290302661, -0.0540935519, 0.176561834, 0.595005485, 0.823305119,
            0.763764717, 0.598252154, 0.237978129, -0.0801278449, -0.320231194, -0.709846535, -1.14319324 }, y2, 1e-7, "H 2, float64");
    }

    [TestMethod]
    public void ModulesHaveNoTrainEvalDependence()
    {
        // gaam_daam.md: "Neither module has train/eval-dependent behaviour".
        using var block = new GaussianBlock(new[] { 1 }, new[] { 2 }, new[] { 2 }, 1, generator: new torch.Generator(3));
        using var daam = new MultiHeadDensityAdaptiveAttention(4, 3, 2);
        using var x = Fill(new long[] { 2, 4, 3 }, 0.1, 1.0, 0.37, 0.2);
        block.train(); daam.train();
        using var a = block.call(x);
        using var b = daam.call(x);
        block.eval(); daam.eval();
        using var c = block.call(x);
        using var d = daam.call(x);
        Assert.IsTrue(a.allclose(c, 0, 0) && b.allclose(d, 0, 0));
    }
}
