using MLNet.Attention.Forecasting;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Forecasting;

/// <summary>
/// CRIB and MVPA in configurations other than the golden files' (odd patch length, one patch, one variate, widths and
/// head counts not used elsewhere, grouped-query heads, T = 1 / C = 1, T past the content window, global_att off,
/// batch-specific positional rows, masks with many missing values, float64, training mode with dropout 0).
/// </summary>
/// <remarks>
/// Expected values were produced by the reviewer with PyTorch 1.13.1 CPU (OPENBLAS_NUM_THREADS=1) running a
/// line-by-line transcription of the reference code — CRIB: <c>TSL_models/CRIB.py</c>, <c>CRIB_module.py</c>,
/// <c>CRIB_embedding.py</c> (symmetric-pad + chomp convolutions with <c>torch.nn.utils.weight_norm</c>, einsum attention
/// with the permute/reshape head merge, KL through <c>torch.distributions.kl_divergence</c> of MultivariateNormal);
/// MVPA: <c>MVPFormerGQAAttention._rel_attn</c> (with the Transformer-XL <c>_rel_shift</c>, <c>_rel_shift_chan</c>,
/// <c>repeat_kv</c>) and <c>MVPFormerBlock.forward</c>. Both transcriptions reproduce the golden files' values before
/// being used here. Parameters: the k-th tensor in <c>named_parameters</c> order is filled with
/// <c>v[j] = c0 + a·sin((0.31 + 0.013k)·j + 0.7k)</c> (double, rounded to float32), where weight_g: c0 0.8, a 0.3;
/// norm weights and RevIN γ: c0 1, a 0.1; tensors of rank ≥ 2: c0 0, a = 1/√fan_in; other vectors: c0 0, a 0.2.
/// Inputs use the golden files' formula (<see cref="GoldenFile.Fill"/>) with the constants written below.
/// </remarks>
[TestClass]
public sealed class ReferenceConfigurationTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    private static void FillParameters(nn.Module module)
    {
        using var noGrad = no_grad();
        int k = 0;
        foreach (var (name, p) in module.named_parameters())
        {
            double c0, a;
            if (name.EndsWith("weight_g")) (c0, a) = (0.8, 0.3);
            else if (name.EndsWith("affine_weight") || ((name.Contains("norm") || name.Contains("ln_")) && name.EndsWith("weight"))) (c0, a) = (1.0, 0.1);
            else if (p.dim() >= 2) (c0, a) = (0.0, 1.0 / Math.Sqrt(p.numel() / p.shape[0]));
            else (c0, a) = (0.0, 0.2);
            using var v = new GoldenFile.Fill(name, p.shape, c0, a, 0.31 + 0.013 * k, 0.0, 0.7 * k).Create();
            p.copy_(v);
            k++;
        }
    }

    private static Tensor Input(long[] shape, double c0, double a, double f, double g, double p) => new GoldenFile.Fill("input", shape, c0, a, f, g, p).Create();

    private static void Near(double expected, Tensor actual, double atol, double rtol, string label)
    {
        double got = actual.to(ScalarType.Float64).item<double>();
        Assert.IsTrue(Math.Abs(got - expected) <= atol + rtol * Math.Abs(expected), $"{label}: {got:G10} vs reference {expected:G10}");
    }

    private static void Near(double[] expected, Tensor actual, double atol, double rtol, string label)
    {
        var got = actual.to(ScalarType.Float64).contiguous().data<double>().ToArray();
        Assert.AreEqual(expected.Length, got.Length, label);
        for (int i = 0; i < got.Length; i++)
            Assert.IsTrue(Math.Abs(got[i] - expected[i]) <= atol + rtol * Math.Abs(expected[i]), $"{label}[{i}]: {got[i]:G10} vs reference {expected[i]:G10}");
    }

    private static void SumsNear(double sum, double sumAbs, Tensor t, double rtol, string label)
    {
        using var s = t.sum();
        using var sa = t.abs().sum();
        Near(sum, s, 1e-5, rtol, label + " sum");
        Near(sumAbs, sa, 0, rtol, label + " sum|.|");
    }

    // ---------------------------------------------------------------- CRIB

    /// <summary>
    /// Config A: B 3, L_in 10, patch 5 (odd: PE table width 6 cut to 5), P 2, N 4, D 6, H 3 (head width 2), E 3, S 7.
    /// Mask over [B, L_in, N] flat index j: missing iff (3j + 1) mod 5 &lt; 2, and variate 1 of batch 0 entirely missing
    /// (54 of 120 missing). Series x_raw: (0.2, 1.3, 0.37, 0.0011, 0.4) over [3, 10, 4]; y: (0.1, 1.1, 0.53, 0.0007, 1.3)
    /// over [3, 7, 4]; ε: (0, 1.2, 0.71, 0.0023, 0.15) over [3, 2, 4, 5].
    /// </summary>
    private static (CribNetwork Net, Tensor Series, Tensor Mask, Tensor Target, Tensor Draws) CribCaseA(double dropout)
    {
        var net = new CribNetwork(new CribConfig(Lookback: 10, Horizon: 7, PatchLength: 5, ModelWidth: 6, Heads: 3, Layers: 3, Dropout: dropout));
        FillParameters(net);
        var m = new float[3 * 10 * 4];
        for (int j = 0; j < m.Length; j++)
        {
            int b = j / 40, n = j % 4;
            m[j] = (3 * j + 1) % 5 < 2 || (b == 0 && n == 1) ? 0f : 1f;
        }
        return (net, Input(new long[] { 3, 10, 4 }, 0.2, 1.3, 0.37, 0.0011, 0.4), tensor(m).reshape(3, 10, 4),
            Input(new long[] { 3, 7, 4 }, 0.1, 1.1, 0.53, 0.0007, 1.3), Input(new long[] { 3, 2, 4, 5 }, 0, 1.2, 0.71, 0.0023, 0.15));
    }

    [TestMethod]
    public void CribOddPatchManyMissingValuesMatchesReferenceInEvalAndTraining()
    {
        var (net, series, mask, target, draws) = CribCaseA(dropout: 0.1);
        using var _n = net; using var _s = series; using var _m = mask; using var _t = target; using var _d = draws;
        Assert.AreEqual(54, (int)mask.eq(0).sum().item<long>());
        net.eval();   // dropout 0.1 is inactive in eval mode
        using (var o = net.ForwardDetailed(series, mask))
        {
            SumsNear(17.8290862, 21.2366058, o.Forecast, 1e-4, "forecast");
            Near(new[] { 0.361768991, 0.166936681, 0.364287913, 0.64203006, 0.540571928, 0.2230151, 0.209748045 }, o.Forecast[0, .., 0], 2e-5, 1e-4, "forecast[0,:,0]");
            Near(new[] { 0.367693752, -0.137530237, 0.457743734, -0.181727499 }, o.Forecast[-1, -1, ..], 2e-5, 1e-4, "forecast[-1,-1,:]");
            SumsNear(-0.192764814, 131.244798, o.EncoderTokens, 1e-4, "e1");
            Near(new[] { 0.465889096, -0.0773099661, -0.891025007, 2.1382513, -0.529229939, -1.14547813 }, o.EncoderTokens[0, 0, ..], 2e-5, 1e-4, "e1[0,0,:]");
            Near(new[] { -0.545816541, 0.616292179, -0.999123752, 1.88135505, 0.362272173, -1.32438648 }, o.EncoderTokens[-1, -1, ..], 2e-5, 1e-4, "e1[-1,-1,:]");
            SumsNear(3.43192711, 16.3722064, o.PosteriorMean, 1e-4, "loc");
            SumsNear(51.7090425, 51.7090425, o.PosteriorVariance, 1e-4, "variance");
            Near(4.78071404, o.Kl, 0, 1e-4, "KL");
        }

        // Training mode with dropout 0 and the injected ε.
        var (trainNet, _, _, _, _) = CribCaseA(dropout: 0);
        using var _tn = trainNet;
        trainNet.train();
        using var loss = trainNet.ComputeLoss(series, mask, target, secondViewDraws: draws);
        SumsNear(17.8290862, 21.2366058, loss.Output.Forecast, 1e-4, "train forecast");
        SumsNear(-0.192492157, 131.262118, loss.Output.SecondViewTokens!, 1e-4, "e2");
        Near(0.708900094, loss.Prediction, 0, 1e-4, "L_pred");
        Near(5.79406924e-06, loss.Consistency, 0, 1e-3, "L_cons");
        Near(4.78071404, loss.Kl, 0, 1e-4, "train KL");
        Near(0.708910644, loss.Total, 0, 1e-4, "total");
    }

    [TestMethod]
    public void CribFloat64MatchesReferenceRunInFloat64()
    {
        var (net, series, mask, target, draws) = CribCaseA(dropout: 0);
        using var _n = net; using var _m = mask;
        net.to(float64);
        using var s64 = series.to(float64); using var t64 = target.to(float64); using var d64 = draws.to(float64);
        series.Dispose(); target.Dispose(); draws.Dispose();
        net.train();
        using var loss = net.ComputeLoss(s64, mask, t64, secondViewDraws: d64);
        var o = loss.Output;
        Assert.AreEqual(ScalarType.Float64, o.Forecast.dtype);
        SumsNear(17.8290856, 21.2366061, o.Forecast, 1e-8, "forecast");
        Near(new[] { 0.361768916, 0.166936782, 0.364287981, 0.642029944, 0.540571851, 0.223015174, 0.209748118 }, o.Forecast[0, .., 0], 1e-8, 1e-7, "forecast[0,:,0]");
        Near(new[] { -0.545816592, 0.616292126, -0.999123683, 1.88135487, 0.362272526, -1.32438655 }, o.EncoderTokens[-1, -1, ..], 1e-8, 1e-7, "e1[-1,-1,:]");
        SumsNear(-0.192765144, 131.244799, o.EncoderTokens, 1e-7, "e1");
        SumsNear(-0.192492366, 131.26212, o.SecondViewTokens!, 1e-7, "e2");
        Near(4.78071432, loss.Kl, 0, 1e-7, "KL");
        Near(0.708900032, loss.Prediction, 0, 1e-7, "L_pred");
        Near(5.79433561e-06, loss.Consistency, 0, 1e-6, "L_cons");
        Near(0.708910607, loss.Total, 0, 1e-7, "total");
    }

    /// <summary>Config B: one patch (L_in = patch = 4, so the TCN sees width 1), one variate, D 4, H 1, E 1, S 3, B 2; series[0,2,0] missing.</summary>
    [TestMethod]
    public void CribSinglePatchSingleVariateMatchesReference()
    {
        using var net = new CribNetwork(new CribConfig(Lookback: 4, Horizon: 3, PatchLength: 4, ModelWidth: 4, Heads: 1, Layers: 1, Dropout: 0));
        FillParameters(net);
        using var series = Input(new long[] { 2, 4, 1 }, 0.2, 1.3, 0.37, 0.0011, 0.4);
        using var mask = ones(2, 4, 1);
        mask[0, 2, 0] = tensor(0f);
        using var target = Input(new long[] { 2, 3, 1 }, 0.1, 1.1, 0.53, 0.0007, 1.3);
        using var draws = Input(new long[] { 2, 1, 1, 4 }, 0, 1.2, 0.71, 0.0023, 0.15);
        net.eval();
        using (var o = net.ForwardDetailed(series, mask))
        {
            Near(new[] { 0.785758257, 0.752644658, 0.87721616 }, o.Forecast[0, .., 0], 2e-5, 1e-4, "forecast[0,:,0]");
            Near(1.02560699, o.Forecast[-1, -1, 0], 2e-5, 1e-4, "forecast[-1,-1,0]");
            SumsNear(5.21396333, 5.21396333, o.Forecast, 1e-4, "forecast");
            SumsNear(1.16649875, 8.10866848, o.EncoderTokens, 1e-4, "e1");
            Near(new[] { -1.30399454, 1.61946893, 0.548047602, -0.273323148 }, o.EncoderTokens[0, 0, ..], 2e-5, 1e-4, "e1[0,0,:]");
            Near(0.306554675, o.Kl, 0, 1e-4, "KL");
        }
        net.train();
        using var loss = net.ComputeLoss(series, mask, target, secondViewDraws: draws);
        SumsNear(1.16639614, 8.14989102, loss.Output.SecondViewTokens!, 1e-4, "e2");
        Near(0.690525591, loss.Prediction, 0, 1e-4, "L_pred");
        Near(0.000191976273, loss.Consistency, 0, 1e-3, "L_cons");
        Near(0.690717876, loss.Total, 0, 1e-4, "total");
    }

    // ---------------------------------------------------------------- MVPA

    /// <summary>
    /// Runs the attention layer and the block of one configuration; x: (0.1, 1.3, 0.31, 0.00071, 0.9) over [B, T, C, d];
    /// positional rows: (0, 0.6, 0.53, 0.0013, 2.2) over [posBatch, T, d]; channel rows: (0, 0.7, 0.67, 0.0029, 0.35) over [1, C, d].
    /// </summary>
    private static (Tensor Attention, Tensor Probabilities, Tensor Block) RunMvpa(int b, int t, int c, int d, int h, int hkv, int inner, int posBatch,
        bool globalAttention = true, ScalarType dtype = ScalarType.Float32, bool trainWithZeroDropout = false)
    {
        double p = trainWithZeroDropout ? 0.0 : 0.1;
        using var block = new MvpFormerBlock(d, h, hkv, inner, globalAttention: globalAttention, attentionDropout: p, residualDropout: p);
        FillParameters(block);
        block.to(dtype);
        if (trainWithZeroDropout) block.train(); else block.eval();
        using var x = Input(new long[] { b, t, c, d }, 0.1, 1.3, 0.31, 0.00071, 0.9).to(dtype);
        using var pos = Input(new long[] { posBatch, t, d }, 0, 0.6, 0.53, 0.0013, 2.2).to(dtype);
        using var chan = Input(new long[] { 1, c, d }, 0, 0.7, 0.67, 0.0029, 0.35).to(dtype);
        var (attention, probabilities) = block.Attention.ForwardWithProbabilities(x, pos, chan);
        var y = block.call(x, pos, chan);
        return (attention, probabilities, y);
    }

    private static double Checksum(Tensor w)
    {
        long n = w.shape[^1];
        using var k = arange(n, dtype: ScalarType.Float64);
        using var s = (w.to(ScalarType.Float64) * k).sum();
        return s.item<double>();
    }

    /// <summary>M1: B 2, T 14 (content window active: |t − t′| &gt; 10 before the last segment), C 4, d 12, H 6, H_kv 3 (groups of 2, head width 2), n_inner 30, per-batch positional rows [2, 14, 12].</summary>
    [TestMethod]
    public void MvpaGroupedHeadsLongWindowBatchPositionsMatchReference()
    {
        foreach (bool train in new[] { false, true })
        {
            var (a, w, y) = RunMvpa(2, 14, 4, 12, 6, 3, 30, posBatch: 2, trainWithZeroDropout: train);
            using var _a = a; using var _w = w; using var _y = y;
            string mode = train ? "train, dropout 0" : "eval";
            SumsNear(3.23595014, 129.097479, a, 1e-4, $"M1 {mode} attention");
            Near(new[] { 0.447476983, 0.326253384, -0.484251678, -0.271669358, 0.514873862, 0.213633701, -0.538954198, -0.152883857, 0.556186974, 0.0901914313, -0.566353142, -0.0263530221 }, a[0, 0, 0], 1e-5, 1e-4, "M1 attention[0,0,0,:]");
            Near(new[] { 0.0137138814, 0.0268435292, -0.0167396292, -0.0249566678, 0.0195527077, 0.0227527265, -0.0221173465, -0.0202597007, 0.0244009867, 0.017509263, -0.026374599, -0.0145363649 }, a[-1, -1, -1], 1e-5, 1e-4, "M1 attention[-1,-1,-1,:]");
            CollectionAssert.AreEqual(new long[] { 2, 6, 56, 56 }, w.shape);
            Assert.AreEqual(9482.098502, Checksum(w), 9482.098502 * 1e-5, "M1 probability checksum");
            Near(new[] { 0.0171511378, 0.0187461693, 0.0171755292, 0.0185471307, 0.0171035547, 0.0181466155, 0.0181832574, 0.0173773523 }, w[-1, -1, -1, ..8], 1e-6, 1e-4, "M1 w[-1,-1,-1,:8]");
            SumsNear(180.354325, 1120.52197, y, 1e-4, $"M1 {mode} block");
            Near(new[] { 1.17649734, -1.10013604, 0.483154744, 0.829330206, -1.17599928, 0.912102699, 0.43190071, -1.1436559, 1.22227371, 0.0285837539, -0.911891818, 1.35721636 }, y[-1, -1, -1], 1e-5, 1e-4, "M1 block[-1,-1,-1,:]");
        }
    }

    [TestMethod]
    public void MvpaFloat64MatchesReferenceRunInFloat64()
    {
        var (a, w, y) = RunMvpa(2, 14, 4, 12, 6, 3, 30, posBatch: 2, dtype: ScalarType.Float64);
        using var _a = a; using var _w = w; using var _y = y;
        Assert.AreEqual(ScalarType.Float64, y.dtype);
        SumsNear(3.23595017, 129.097481, a, 1e-8, "attention");
        Near(new[] { 0.447476901, 0.326253474, -0.484251574, -0.27166947, 0.514873696, 0.213633829, -0.538954148, -0.152883947, 0.556186905, 0.0901915558, -0.566353101, -0.0263531599 }, a[0, 0, 0], 1e-9, 1e-7, "attention[0,0,0,:]");
        Assert.AreEqual(9482.098512, Checksum(w), 1e-5, "probability checksum");
        SumsNear(180.354323, 1120.52196, y, 1e-8, "block");
        Near(new[] { 1.17649739, -1.10013609, 0.483154791, 0.829330237, -1.1759993, 0.91210267, 0.431900701, -1.14365587, 1.2222738, 0.0285837399, -0.911891796, 1.35721641 }, y[-1, -1, -1], 1e-9, 1e-7, "block[-1,-1,-1,:]");
    }

    /// <summary>M2: a single token (T 1, C 1), d 8, H 2, H_kv 1, n_inner 16, B 2.</summary>
    [TestMethod]
    public void MvpaSingleTokenMatchesReference()
    {
        var (a, w, y) = RunMvpa(2, 1, 1, 8, 2, 1, 16, posBatch: 1);
        using var _a = a; using var _w = w; using var _y = y;
        SumsNear(0.0179615617, 7.5923602, a, 1e-4, "attention");
        Near(new[] { -0.602552712, 0.5944556, -0.58551842, 0.575753927, -0.565175891, 0.553799212, -0.541639864, 0.528715312 }, a[0, 0, 0], 1e-5, 1e-4, "attention[0,0,0,:]");
        Near(new[] { 0.431353539, -0.417981058, 0.404017895, -0.389483899, 0.374399602, -0.358786225, 0.342665792, -0.326061249 }, a[-1, -1, -1], 1e-5, 1e-4, "attention[-1,-1,-1,:]");
        Assert.AreEqual(4.0, w.to(ScalarType.Float64).sum().item<double>(), 1e-6);
        SumsNear(-0.264626801, 27.8154814, y, 1e-4, "block");
        Near(new[] { 2.78878593, 0.836015582, -0.143553376, -3.09727383, -3.2653327, -3.69044018, -1.12664652, 0.26994884 }, y[-1, -1, -1], 1e-5, 1e-4, "block[-1,-1,-1,:]");
    }

    /// <summary>M3: one channel (C 1), T 13 (the pair t = 11, t′ = 0 is outside the window and not in the last segment), d 8, H 2 = H_kv 2, n_inner 8, B 1.</summary>
    [TestMethod]
    public void MvpaSingleChannelPastTheWindowMatchesReference()
    {
        var (a, w, y) = RunMvpa(1, 13, 1, 8, 2, 2, 8, posBatch: 1);
        using var _a = a; using var _w = w; using var _y = y;
        SumsNear(0.0541017894, 17.9057169, a, 1e-4, "attention");
        Near(new[] { 0.0810290426, -0.077705875, 0.0742729455, -0.0707350224, 0.0670972317, -0.0633646101, 0.0595424026, -0.0556360222 }, a[0, 0, 0], 1e-5, 1e-4, "attention[0,0,0,:]");
        Near(new[] { 0.167974636, -0.160811335, 0.153420746, -0.145813435, 0.138000056, -0.129991725, 0.12179967, -0.11343547 }, a[-1, -1, -1], 1e-5, 1e-4, "attention[-1,-1,-1,:]");
        Assert.AreEqual(53.62928432, Checksum(w), 53.62928432 * 1e-5, "probability checksum");
        Near(new[] { 0.755625486, 0.00082767714, 0.0405284017, 0.00114756403, 0.0371193774, 0.0612807348, 0.00457988633, 0.0105905393 }, w[-1, -1, -1, ..8], 1e-6, 1e-4, "w[-1,-1,-1,:8]");
        SumsNear(19.8792862, 123.823422, y, 1e-4, "block");
        Near(new[] { 1.61828649, -2.54979944, 3.30829978, -1.39023733, 3.26385307, 0.265756696, 1.32806635, 1.44634938 }, y[-1, -1, -1], 1e-5, 1e-4, "block[-1,-1,-1,:]");
    }

    /// <summary>M4: the reference's global_att = False (no content term), T 14, C 2, d 8, H 4, H_kv 2, n_inner 8, B 1.</summary>
    [TestMethod]
    public void MvpaWithoutGlobalAttentionMatchesReference()
    {
        var (a, w, y) = RunMvpa(1, 14, 2, 8, 4, 2, 8, posBatch: 1, globalAttention: false);
        using var _a = a; using var _w = w; using var _y = y;
        SumsNear(0.0365134635, 11.781642, a, 1e-4, "attention");
        Near(new[] { -0.069400318, 0.0773336366, -0.0851576775, 0.0928613693, -0.100433856, 0.107864417, -0.115142576, 0.122258022 }, a[0, 0, 0], 1e-5, 1e-4, "attention[0,0,0,:]");
        Near(new[] { -0.0369781405, 0.0371227562, -0.0372148305, 0.0372543484, -0.0372412801, 0.0371755362, -0.0370572805, 0.0368866473 }, a[-1, -1, -1], 1e-5, 1e-4, "attention[-1,-1,-1,:]");
        Assert.AreEqual(750.5120417, Checksum(w), 750.5120417 * 1e-5, "probability checksum");
        Near(new[] { 0.00241838978, 0.00442410959, 0.00513560651, 0.00939487852, 0.077937305, 0.142575502, 0.0196790919, 0.0360001624 }, w[-1, -1, -1, ..8], 1e-6, 1e-4, "w[-1,-1,-1,:8]");
        SumsNear(36.3634239, 268.000102, y, 1e-4, "block");
        Near(new[] { 0.508092344, 1.87143075, 0.377541423, 2.31850219, -0.963545144, 0.80030942, -1.968611, -0.649927795 }, y[-1, -1, -1], 1e-5, 1e-4, "block[-1,-1,-1,:]");
    }
}
