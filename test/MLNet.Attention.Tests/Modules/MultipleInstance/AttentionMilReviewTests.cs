using MLNet.Attention.MultipleInstance;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.MultipleInstance;

/// <summary>
/// Independent review of ACMIL: configurations the golden file does not cover (K larger than the bag, a bag of one
/// instance with p = 1, one class, two branches, STKIM driven by the seeded global generator exactly as the reference's
/// torch.rand, float64). Expected values: produced once by the reviewer with PyTorch 1.13 CPU running a line-by-line
/// transcription (kept outside the repository, which ships only spec-written references) of ACMIL_GA's forward and the training script's losses, shared/spec/acmil.md §4–§5), printed to 9
/// significant digits. Parameters are set by reference state-dict order (k = index): matrices
/// sin(0.61j + 0.4k)/√fan_in, vectors 0.1·sin(0.37j + 0.4k).
/// </summary>
[TestClass]
public sealed class AttentionMilReviewTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    private static Tensor Fill(long[] shape, double c0, double a, double f, double p)
    {
        long n = shape.Aggregate(1L, (x, y) => x * y);
        var v = new float[n];
        for (long j = 0; j < n; j++) v[j] = (float)(c0 + a * Math.Sin(f * j + p));
        return tensor(v).reshape(shape);
    }

    private static Acmil Network(AcmilConfig config)
    {
        var net = new Acmil(config);
        using var noGrad = no_grad();
        int k = 0;
        foreach (var (_, p) in net.named_parameters())
        {
            using var value = p.dim() == 2 ? Fill(p.shape, 0, 1 / Math.Sqrt(p.shape[1]), 0.61, 0.4 * k) : Fill(p.shape, 0, 0.1, 0.37, 0.4 * k);
            p.copy_(value);
            k++;
        }
        return net;
    }

    private static void AssertClose(double[] expected, Tensor actual, string label, double atol = 1e-5)
    {
        using var d = actual.to(float64).reshape(-1);
        var got = d.data<double>().ToArray();
        Assert.AreEqual(expected.Length, got.Length, $"{label}: size");
        for (int i = 0; i < got.Length; i++)
            Assert.IsTrue(Math.Abs(got[i] - expected[i]) <= atol + 1e-4 * Math.Abs(expected[i]), $"{label}[{i}]: {got[i]} vs {expected[i]}");
    }

    private static void AssertLosses(AcmilLosses l, double lp, double lb, double ld, double total)
    {
        AssertClose(new[] { lp }, l.Branch, "L_p");
        AssertClose(new[] { lb }, l.Slide, "L_b");
        AssertClose(new[] { ld }, l.Diversity, "L_d");
        AssertClose(new[] { total }, l.Total, "total");
    }

    private static readonly AcmilConfig TwoBranches = new(5, 4, 2, Branches: 2, TopK: 10, MaskRatio: 0.6, AttentionSize: 3);
    private static Tensor ThreeInstanceBag() => Fill(new long[] { 1, 3, 5 }, 0.1, 0.9, 0.47, 0.3);

    [TestMethod]
    public void TopKLargerThanTheBagMasksFloorOfBagSizeTimesRatio()
    {
        using var net = Network(TwoBranches);
        using var x = ThreeInstanceBag();
        using var labels = tensor(new[] { 1L });

        net.eval();
        using (var y = net.call(x, null))
        {
            AssertClose(new[] { -0.263595462, -0.166410506, -0.583791316, 0.199685678 }, y.BranchLogits, "eval branch");
            AssertClose(new[] { -0.574358404, 0.445555985 }, y.SlideLogits, "eval slide");
            AssertClose(new[] { 0.341917008, 0.198496103, 0.117466837, -0.0311343633, -0.0947664231, -0.0345225222 }, y.AttentionLogits, "eval A_out");
            using var l = net.Losses(y, labels);
            AssertLosses(l, 0.510993719, 0.307944715, 0.995826125, 1.8147645);
        }

        // kk = min(10, 3) = 3, int(3·0.6) = 1 instance masked per branch; R [2, 3] = 0.5 + 0.45 sin(1.7j + 0.2).
        long[]? requested = null;
        net.Draws = (rows, cols, device) => { requested = new[] { rows, cols }; return Fill(new long[] { 2, 3 }, 0.5, 0.45, 1.7, 0.2); };
        net.train();
        using (var y = net.call(x, null))
        {
            CollectionAssert.AreEqual(new long[] { 2, 3 }, requested, "one draw of [M, kk]");
            AssertClose(new[] { -0.346088469, -0.219447941, -0.393720537, 0.172121897 }, y.BranchLogits, "train branch");
            AssertClose(new[] { -0.53144151, 0.438049912 }, y.SlideLogits, "train slide");
            AssertClose(new[] { 0.341917008, 0.198496103, -1e9, -1e9, -0.0947664231, -0.0345225222 }, y.AttentionLogits, "train A_out");
            AssertClose(new[] { 0.5357939, 0.464206129, 0, 0, 0.484943599, 0.515056431 }, y.BranchAttention, "train P");
            using var l = net.Losses(y, labels);
            AssertLosses(l, 0.540777862, 0.321558654, 0.448874831, 1.31121135);
        }
    }

    [TestMethod]
    public void BagOfOneInstanceWithRatioOneIsMaskedButKeepsFullAttention()
    {
        // M 3, K 2, p 1: kk = 1, int(1·1.0) = 1, so the only instance gets −1e9 in every branch; softmax of one logit is 1.
        using var net = Network(new AcmilConfig(5, 4, 2, Branches: 3, TopK: 2, MaskRatio: 1.0, AttentionSize: 3));
        net.Draws = (_, _, _) => tensor(new[] { 0.3f, 0.6f, 0.9f }).reshape(3, 1);
        net.train();
        using var x = Fill(new long[] { 1, 1, 5 }, -0.2, 1.0, 0.83, 0.6);
        using var y = net.call(x, null);
        AssertClose(new[] { -1e9, -1e9, -1e9 }, y.AttentionLogits, "A_out");
        AssertClose(new[] { 1.0, 1.0, 1.0 }, y.BranchAttention, "P");
        AssertClose(new[] { -0.0465459228, -0.0495454222, -0.147495657, -0.0477326103, -0.158976525, -0.0169658363 }, y.BranchLogits, "branch");
        AssertClose(new[] { -0.0740243495, 0.02409219 }, y.SlideLogits, "slide");
        using var labels = tensor(new[] { 0L });
        using var l = net.Losses(y, labels);
        AssertLosses(l, 0.734197378, 0.743408322, 1.0, 2.47760582);
    }

    [TestMethod]
    public void OneClassRunsLikeTheReference()
    {
        // The reference ACMIL_GA accepts n_class = 1 (logits [M, 1], [1, 1]); both cross-entropies are then 0.
        using var net = Network(TwoBranches with { Classes = 1 });
        net.eval();
        using var x = ThreeInstanceBag();
        using var y = net.call(x, null);
        AssertClose(new[] { -0.263595462, -0.583791316 }, y.BranchLogits, "branch");
        AssertClose(new[] { -0.574358404 }, y.SlideLogits, "slide");
        using var labels = tensor(new[] { 0L });
        using var l = net.Losses(y, labels);
        AssertLosses(l, 0, 0, 0.995826125, 0.995826125);
    }

    [TestMethod]
    public void DefaultDrawsUseTheGlobalGeneratorLikeTorchRand()
    {
        // The reference draws torch.rand(M, kk) from the global generator once per training forward. After
        // manual_seed(123), PyTorch's torch.rand(3, 4) is the list below; the same seed must give the same masking here.
        torch.manual_seed(123);
        using (var r = rand(3, 4))
            AssertClose(new[] { 0.29611194133758545, 0.516562283039093, 0.2516707181930542, 0.6885567903518677, 0.07397246360778809, 0.866521954536438,
                0.13657987117767334, 0.10247904062271118, 0.18405646085739136, 0.7264467477798462, 0.3152539134025574, 0.6871066689491272 }, r, "rand", 1e-7);

        using var net = Network(new AcmilConfig(5, 4, 3, Branches: 3, TopK: 4, MaskRatio: 0.5, AttentionSize: 3));
        using var x = Fill(new long[] { 1, 8, 5 }, 0.05, 1.1, 0.29, 1.2);
        net.train();
        torch.manual_seed(123);
        using var y = net.call(x, null);
        AssertClose(new[] { 0.367340118, 0.150753617, -1e9, 0.121648252, -1e9, 0.161772817, 0.296892107, 0.172390878,
            -0.0264727063, -0.0598647706, -0.182864711, -1e9, -0.0277736522, -1e9, -0.184657142, -0.0561552979,
            -0.26745075, -0.0337467603, -0.121810399, -1e9, -0.285595357, -0.0636815205, -0.115913957, -1e9 }, y.AttentionLogits, "A_out");
        AssertClose(new[] { -0.29343316, -0.12189693, 0.338723451, -0.864059389, 0.394730866, -0.058481589, -0.737568319, 0.669210851, -0.589064062 }, y.BranchLogits, "branch");
        AssertClose(new[] { -0.195403397, 0.517955542, -0.700354278 }, y.SlideLogits, "slide");
        using var labels = tensor(new[] { 2L });
        using var l = net.Losses(y, labels);
        AssertLosses(l, 1.18648207, 1.79813445, 0.731112599, 3.71572924);
    }

    [TestMethod]
    public void NoDrawsInEvalOrWithTopKZeroAndDropoutOnlyInTraining()
    {
        using var x = ThreeInstanceBag();
        int calls = 0;
        UniformDraws counting = (rows, cols, device) => { calls++; return rand(rows, cols, device: device); };

        // Eval: no masking, no draw, dropout inactive → the eval values above even with dropout 0.5.
        using var withDropout = Network(TwoBranches with { Dropout = 0.5 });
        withDropout.Draws = counting;
        withDropout.eval();
        using (var y = withDropout.call(x, null))
            AssertClose(new[] { -0.574358404, 0.445555985 }, y.SlideLogits, "eval slide with dropout 0.5");

        // K = 0 in training: the reference skips STKIM entirely (no torch.rand call).
        using var noMask = Network(TwoBranches with { TopK = 0 });
        noMask.Draws = counting;
        noMask.train();
        using (var y = noMask.call(x, null))
            AssertClose(new[] { 0.341917008, 0.198496103, 0.117466837, -0.0311343633, -0.0947664231, -0.0345225222 }, y.AttentionLogits, "K = 0 train");
        Assert.AreEqual(0, calls, "no draws in eval or with K = 0");
    }

    [TestMethod]
    public void Float64NetworkMatchesTheFloat32Reference()
    {
        using var net = Network(TwoBranches);
        net.to(ScalarType.Float64);
        net.Draws = (_, _, device) => Fill(new long[] { 2, 3 }, 0.5, 0.45, 1.7, 0.2).to(float64).to(device);
        net.train();
        using var x = ThreeInstanceBag().to(float64);
        using var y = net.call(x, null);
        Assert.AreEqual(ScalarType.Float64, y.SlideLogits.dtype);
        AssertClose(new[] { -0.346088469, -0.219447941, -0.393720537, 0.172121897 }, y.BranchLogits, "train branch");
        AssertClose(new[] { -0.53144151, 0.438049912 }, y.SlideLogits, "train slide");
        using var labels = tensor(new[] { 1L });
        using var l = net.Losses(y, labels);
        Assert.AreEqual(ScalarType.Float64, l.Total.dtype);
        AssertLosses(l, 0.540777862, 0.321558654, 0.448874831, 1.31121135);
    }
}
