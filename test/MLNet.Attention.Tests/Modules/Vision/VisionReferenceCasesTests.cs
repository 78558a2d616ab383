using MLNet.Attention.Runtime;
using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Vision;

/// <summary>
/// Reference values for configurations the golden files do not cover: other ELA presets, channel counts and explicit
/// (k, G, NG), the extra residual, H = 1, odd and non-square maps, batch 1 and 3, float64; t = 1 and stride-2
/// inverted-residual blocks in train mode (running statistics); ResNet basic blocks with ELA as <c>out + ELA(out)</c> and
/// a downsample; ULSAM with g = 1 and g = 4, two train-mode forwards in a row (momentum 0.9 compounding) and eval after
/// training; whole MobileNetV2 + ELA-L (<c>mbv2_ela72</c> layout), a small CIFAR ResNet + ELA-B and MobileNet-V1 + ULSAM.
/// </summary>
/// <remarks>
/// Expected values produced with PyTorch 1.13.1 (CPU, float32 unless stated) by
/// <c>OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/reference/review/vision_cases.py</c>, which builds the
/// modules from <c>bench/reference/modules/ela.py</c> / <c>ulsam.py</c> (independent implementations written from
/// shared/spec/ela.md and ulsam.md; they reproduce goldens/ela.md and goldens/ulsam.md to &lt; 5e-8) and the reference
/// layouts of Xuwei86/ELA_Code (mbv2_ela72.py, semantic/network/backbone/resnet.py BasicBlock).
/// Parameter fill (<see cref="FillByRule"/>): the state-dict keys without num_batches_tracked are sorted ordinally;
/// key number i is filled as in the golden files, v[j] = c0 + a·sin(f·j + g·j² + p) in double rounded once to float32,
/// with f = 0.1 + 0.013·i, g = 0.0003 (0 above 100,000 elements), p = 0.7·i, and (c0, a) = (1, 0.3) for running_var,
/// (0, 0.2) running_mean, (1, 0.2) a 1-D weight, (0, 0.1) a 1-D bias, (0, 1.5/√(numel/shape[0])) any other weight.
/// Inputs: c0 0.1, a 1.5, f 0.31, g 0.0007, p 0.4. Tolerance: atol 1e-5 + rtol 1e-4 per element, sums 1e-4 relative
/// (float64 cases: 1e-10 to 1e-9).
/// </remarks>
[TestClass]
public sealed class VisionReferenceCasesTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    /// <summary>Fills every parameter and BatchNorm running statistic by the rule above (sorted key index i).</summary>
    internal static void FillByRule(nn.Module module)
    {
        var state = module.state_dict().Where(kv => !kv.Key.EndsWith("num_batches_tracked"))
            .OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        using var noGrad = no_grad();
        for (int i = 0; i < state.Count; i++)
        {
            var (key, t) = (state[i].Key, state[i].Value);
            (double c0, double a) = key.EndsWith("running_var") ? (1.0, 0.3)
                : key.EndsWith("running_mean") ? (0.0, 0.2)
                : t.dim() == 1 && key.EndsWith("weight") ? (1.0, 0.2)
                : t.dim() == 1 && key.EndsWith("bias") ? (0.0, 0.1)
                : (0.0, 1.5 / Math.Sqrt(t.numel() / t.shape[0]));
            double g = t.numel() <= 100_000 ? 0.0003 : 0.0;
            using var v = new GoldenFile.Fill(key, t.shape, c0, a, 0.1 + 0.013 * i, g, 0.7 * i).Create();
            t.copy_(v);
        }
    }

    private static Tensor Input(params long[] shape) => new GoldenFile.Fill("x", shape, 0.1, 1.5, 0.31, 0.0007, 0.4).Create();

    /// <summary>The input fill evaluated in double and kept in float64 (not rounded to float32).</summary>
    private static Tensor InputFloat64(params long[] shape)
    {
        long n = shape.Aggregate(1L, (x, y) => x * y);
        var v = new double[n];
        for (long j = 0; j < n; j++) v[j] = 0.1 + 1.5 * Math.Sin(0.31 * j + 0.0007 * j * j + 0.4);
        return tensor(v).reshape(shape);
    }

    /// <summary>Runs <paramref name="forwards"/> forwards in the given mode and checks the output ("y") and the named buffers.</summary>
    private static void RunAndVerify(string name, nn.Module<Tensor, Tensor> module, Tensor x, bool train, int forwards = 1, double atol = 1e-5, double rtol = 1e-4)
    {
        module.train(train);
        Tensor? y = null;
        for (int k = 0; k < forwards; k++)
        {
            y?.Dispose();
            using (no_grad()) y = module.call(x);
        }
        var buffers = module.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        foreach (var check in Expected[name])
        {
            var actual = check.Quantity == "y" ? y! : buffers[check.Quantity];
            if (atol < 1e-6)
            {
                // float64 case: tight sums as well (GoldenFile.Verify uses 1e-4 relative on sums).
                using var d = actual.to(float64);
                Assert.AreEqual(check.Sum!.Value, d.sum().item<double>(), 1e-9 * Math.Max(1, Math.Abs(check.Sum.Value)), $"{name} Σ");
                Assert.AreEqual(check.SumAbs!.Value, d.abs().sum().item<double>(), 1e-9 * Math.Abs(check.SumAbs.Value), $"{name} Σ|.|");
            }
            GoldenFile.Verify(check, actual, atol, rtol, name);
        }
        y!.Dispose();
    }

    // ---------------------------------------------------------------- ELA

    [TestMethod]
    public void ElaTOnOddNonSquareMapBatchOne()
    {
        using var m = new EfficientLocalAttention(32, ElaVariant.T);
        Assert.AreEqual(new ElaSettings(5, 32, 32), m.Settings);
        FillByRule(m);
        using var x = Input(1, 32, 5, 3);
        RunAndVerify("ela_T_1x32x5x3", m, x, train: false);
    }

    [TestMethod]
    public void ElaBWithExtraResidualBatchThreeTrainMode()
    {
        using var m = new EfficientLocalAttention(48, ElaVariant.B, extraResidual: true);
        FillByRule(m);
        using var x = Input(3, 48, 7, 4);
        RunAndVerify("ela_B_residual_3x48x7x4", m, x, train: true);   // no train-specific behaviour
    }

    [TestMethod]
    public void ElaSOnSingleRowMapKernelLongerThanStrip()
    {
        using var m = new EfficientLocalAttention(16, ElaVariant.S);
        Assert.AreEqual(new ElaSettings(5, 2, 16), m.Settings);
        FillByRule(m);
        using var x = Input(2, 16, 1, 6);
        RunAndVerify("ela_S_2x16x1x6", m, x, train: false);
    }

    /// <summary>The official MbV2 <c>ELA73</c> settings: k 5, one full conv (G = 1), GroupNorm(32).</summary>
    [TestMethod]
    public void ElaExplicitFullConvSettings()
    {
        using var m = new EfficientLocalAttention(64, kernelSize: 5, convGroups: 1, normGroups: 32);
        FillByRule(m);
        using var x = Input(2, 64, 3, 3);
        RunAndVerify("ela_k5_g1_ng32_2x64x3x3", m, x, train: false);
    }

    [TestMethod]
    public void ElaLInFloat64()
    {
        using var m = new EfficientLocalAttention(32, ElaVariant.L);
        FillByRule(m);
        m.to(float64);
        using var x = InputFloat64(2, 32, 6, 5);
        RunAndVerify("ela_L_float64_2x32x6x5", m, x, train: false, atol: 1e-10, rtol: 0);
    }

    // ---------------------------------------------------------------- inverted-residual blocks

    [TestMethod]
    public void InvertedResidualExpansionOneHasNoElaEval()
    {
        using var m = new InvertedResidual(16, 8, 1, 1, c => new EfficientLocalAttention(c, ElaVariant.L));
        FillByRule(m);
        using var x = Input(2, 16, 5, 6);
        RunAndVerify("ir_t1_16to8_eval", m, x, train: false);
    }

    [TestMethod]
    public void InvertedResidualStrideTwoOddMapTrainUpdatesEveryBatchNorm()
    {
        using var m = new InvertedResidual(8, 16, 2, 6, c => new EfficientLocalAttention(c, ElaVariant.L));
        FillByRule(m);
        using var x = Input(1, 8, 7, 9);
        RunAndVerify("ir_8to16_s2_train_1x8x7x9", m, x, train: true);
    }

    [TestMethod]
    public void InvertedResidualWithElaBEval()
    {
        using var m = new InvertedResidual(16, 16, 1, 2, c => new EfficientLocalAttention(c, ElaVariant.B));
        FillByRule(m);
        using var x = Input(2, 16, 6, 5);
        RunAndVerify("ir_B_16to16_t2_eval", m, x, train: false);
    }

    // ---------------------------------------------------------------- ResNet basic blocks

    [TestMethod]
    public void BasicBlockWithDownsampleAndElaBTrain()
    {
        using var m = new BasicBlock(16, 32, 2, c => new EfficientLocalAttention(c, ElaVariant.B));
        FillByRule(m);
        using var x = Input(2, 16, 7, 5);
        RunAndVerify("bb_16to32_s2_B_train", m, x, train: true);
    }

    [TestMethod]
    public void BasicBlockWithElaSEval()
    {
        using var m = new BasicBlock(32, 32, 1, c => new EfficientLocalAttention(c, ElaVariant.S));
        FillByRule(m);
        using var x = Input(1, 32, 4, 6);
        RunAndVerify("bb_32_S_eval", m, x, train: false);
    }

    // ---------------------------------------------------------------- ULSAM

    [TestMethod]
    [DataRow(false, "ulsam_g1_eval")]
    [DataRow(true, "ulsam_g1_train")]
    public void UlsamOneSubspace(bool train, string name)
    {
        using var m = new UltraLightSubspaceAttention(6, 1);
        FillByRule(m);
        using var x = Input(1, 6, 5, 7);
        RunAndVerify(name, m, x, train);
    }

    [TestMethod]
    public void UlsamFourSubspacesTwoTrainForwardsThenEval()
    {
        using var m = new UltraLightSubspaceAttention(16, 4);
        FillByRule(m);
        using var x = Input(3, 16, 4, 9);
        RunAndVerify("ulsam_g4_two_train_forwards", m, x, train: true, forwards: 2);
        RunAndVerify("ulsam_g4_eval_after_training", m, x, train: false);
    }

    // ---------------------------------------------------------------- whole networks

    [TestMethod]
    public void MobileNetV2WithElaLEval()
    {
        using var m = MobileNetV2.WithEla(ElaVariant.L, numClasses: 10, dropout: 0.0);
        FillByRule(m);
        using var x = Input(1, 3, 33, 29);
        RunAndVerify("mbv2_ela_L_eval_1x3x33x29", m, x, train: false);
    }

    /// <summary>
    /// Train mode of a whole network on a small map is ill-conditioned (BatchNorm over 2–4 values per channel near the
    /// end: the reference's own float32 and float64 runs differ by 1e-2), so the train-mode network cases run in float64.
    /// </summary>
    [TestMethod]
    public void MobileNetV2WithElaLTrainFloat64()
    {
        using var m = MobileNetV2.WithEla(ElaVariant.L, numClasses: 10, dropout: 0.0);
        FillByRule(m);
        m.to(float64);
        using var x = InputFloat64(2, 3, 33, 29);
        RunAndVerify("mbv2_ela_L_train_float64_2x3x33x29", m, x, train: true, atol: 1e-9, rtol: 0);
    }

    [TestMethod]
    public void SmallCifarResNetWithElaB()
    {
        using var m = new ResNet(10, c => new EfficientLocalAttention(c, ElaVariant.B), attentionResidual: true,
            blocksPerStage: new[] { 1, 1, 1, 1 }, baseWidth: 16);
        FillByRule(m);
        using var x = Input(2, 3, 12, 10);
        RunAndVerify("resnet_base16_B_eval", m, x, train: false);
    }

    [TestMethod]
    public void MobileNetV1WithUlsam()
    {
        using (var m = new MobileNetV1(10, 0.25, UlsamPlacement.Replacing(8, 4)))
        {
            FillByRule(m);
            using var x = Input(2, 3, 32, 32);
            RunAndVerify("mv1_025_ulsam_replace8_eval", m, x, train: false);
        }
        using (var m = new MobileNetV1(10, 0.25, UlsamPlacement.AddedAfter(12, 2)))
        {
            FillByRule(m);
            m.to(float64);   // train mode on a 1×1 final map: float64 for the reason given at MobileNetV2WithElaLTrainFloat64
            using var x = InputFloat64(2, 3, 32, 32);
            RunAndVerify("mv1_025_ulsam_add12_train_float64", m, x, train: true, atol: 1e-9, rtol: 0);
        }
    }

    // ---------------------------------------------------------------- parameter order (= the reference's named_parameters order)

    [TestMethod]
    public void ParameterOrderIsThePyTorchOrder()
    {
        using var ela = new EfficientLocalAttention(32, ElaVariant.L);
        CollectionAssert.AreEqual(new[] { "conv.weight", "gn.weight", "gn.bias" }, ela.named_parameters().Select(p => p.name).ToArray());
        using var ir = new InvertedResidual(8, 16, 2, 6, c => new EfficientLocalAttention(c, ElaVariant.L));
        CollectionAssert.AreEqual(new[]
        {
            "conv.0.weight", "conv.1.weight", "conv.1.bias", "conv.3.weight", "conv.4.weight", "conv.4.bias", "conv.6.conv.weight",
            "conv.6.gn.weight", "conv.6.gn.bias", "conv.7.weight", "conv.8.weight", "conv.8.bias",
        }, ir.named_parameters().Select(p => p.name).ToArray());
        // torchvision / ELA_Code BasicBlock: conv1, bn1, conv2, bn2, downsample (assigned before feat0), feat0.
        using var bb = new BasicBlock(16, 32, 2, c => new EfficientLocalAttention(c, ElaVariant.B));
        CollectionAssert.AreEqual(new[]
        {
            "conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias", "downsample.0.weight",
            "downsample.1.weight", "downsample.1.bias", "feat0.conv.weight", "feat0.gn.weight", "feat0.gn.bias",
        }, bb.named_parameters().Select(p => p.name).ToArray());
        using var ulsam = new UltraLightSubspaceAttention(16, 4);
        var expected = Enumerable.Range(0, 4).SelectMany(n => new[] { "conv_dws.weight", "conv_dws.bias", "bn_dws.weight", "bn_dws.bias",
            "conv_point.weight", "conv_point.bias", "bn_point.weight", "bn_point.bias" }.Select(s => $"subspaces.{n}.{s}")).ToArray();
        CollectionAssert.AreEqual(expected, ulsam.named_parameters().Select(p => p.name).ToArray());
    }

    // ---------------------------------------------------------------- expected values (generated, see the class remarks)

    private static readonly Dictionary<string, List<GoldenFile.Check>> Expected = new()
    {
        ["ela_T_1x32x5x3"] = new()
        {
            new("y", 17.8477154918, 119.205780363, new() { ("0, 0, 0, :", new[] { 0.496584058, 0.493388236, 0.240956664 }), ("-1, -1, -1, :", new[] { -0.0444137268, 0.194011033, 0.52298367 }), ("0, 31, :, 2", new[] { 0.161912039, -0.522673786, 0.324329168, -0.733138025, 0.52298367 }) }),
        },
        ["ela_B_residual_3x48x7x4"] = new()
        {
            new("y", 529.380136226, 4963.03524151, new() { ("0, 0, 0, :", new[] { 0.929599941, 1.43858027, 1.79403532, 1.9592613 }), ("-1, -1, -1, :", new[] { 1.19515264, 1.50792229, 1.67817235, 1.68638206 }), ("1, 17, :, 0", new[] { -0.947645426, -1.44079638, -0.23000145, 1.27908015, 1.57061982, 0.39885062, -1.04582691 }) }),
        },
        ["ela_S_2x16x1x6"] = new()
        {
            new("y", 9.95389785431, 51.1252800291, new() { ("0, 0, 0, :", new[] { 0.105766922, 0.1295681, 0.174281955, 0.49254933, 0.638434649, 0.662500858 }), ("-1, -1, -1, :", new[] { 0.0915350765, 0.214369401, 0.444442123, 0.472535491, 0.176783741, -0.120523974 }) }),
        },
        ["ela_k5_g1_ng32_2x64x3x3"] = new()
        {
            new("y", 46.4564393161, 291.527975295, new() { ("0, 0, 0, :", new[] { 0.461272001, 0.661151826, 0.750402451 }), ("-1, -1, -1, :", new[] { -0.206303462, 0.209211975, 0.111873552 }) }),
        },
        ["ela_L_float64_2x32x6x5"] = new()
        {
            new("y", 56.1492831675, 487.478410359, new() { ("0, 0, 0, :", new[] { 0.033177336105468191, 0.050412143306198108, 0.052547081194543044, 0.04764349217474128, 0.034508159444768163 }), ("-1, -1, -1, :", new[] { 0.12451676022132115, -0.066163137064342029, 0.10842349715587232, -0.031549976676487991, 0.014180870133885011 }) }),
        },
        ["ir_t1_16to8_eval"] = new()
        {
            new("y", -18.2311696298, 601.681589706, new() { ("0, 0, 0, :", new[] { -1.25684702, -1.48136592, -1.21488667, -1.34161222, -1.28219223, -0.801240087 }), ("-1, -1, -1, :", new[] { 1.69703817, 1.6867919, 0.486786008, 0.356222481, 0.521295369, 1.05878854 }) }),
        },
        ["ir_8to16_s2_train_1x8x7x9"] = new()
        {
            new("y", -6.25991858193, 263.203181565, new() { ("0, 0, 0, :", new[] { 1.20661426, 0.214955732, -0.301427335, -0.395291269, 0.326822519 }), ("-1, -1, -1, :", new[] { -0.544619083, 1.12926912, 0.383201361, 0.414622366, 0.264086127 }) }),
            new("conv.1.running_mean", 0.636108251289, 5.82969287597, new() { (":4", new[] { 0.190578163, 0.219964653, 0.219404012, 0.185837373 }) }),
            new("conv.4.running_var", 48.2919564247, 48.2919564247, new() { (":4", new[] { 0.821997523, 0.829397261, 0.913305044, 0.90114522 }) }),
            new("conv.8.running_mean", 0.0896151401103, 2.06962037459, new() { (":4", new[] { -0.164489284, -0.183920026, -0.170947596, -0.169010282 }) }),
            new("conv.8.running_var", 15.2808179259, 15.2808179259, new() { (":4", new[] { 0.636959136, 0.667380273, 0.718453646, 0.787248671 }) }),
        },
        ["ir_B_16to16_t2_eval"] = new()
        {
            new("y", 130.629139684, 955.02324336, new() { ("0, 0, 0, :", new[] { 0.55692184, 0.911832869, 1.41435552, 1.77165043, 1.79019332 }), ("-1, -1, -1, :", new[] { -1.45017374, 0.502705514, 1.59468424, -0.407788157, -1.02732027 }) }),
        },
        ["bb_16to32_s2_B_train"] = new()
        {
            new("y", 490.12000794, 490.12000794, new() { ("0, 0, 0, :", new[] { 1.17796159, 0.469859779, 0 }), ("-1, -1, -1, :", new[] { 0.683073163, 0, 0.912915289 }) }),
            new("bn2.running_mean", -0.246673924848, 4.0030970294, new() { (":4", new[] { -0.0738362372, -0.0772874579, -0.133401796, -0.138719395 }) }),
            new("bn2.running_var", 30.0688843727, 30.0688843727, new() { (":4", new[] { 0.677106023, 0.670457304, 0.657919109, 0.661179125 }) }),
            new("downsample.1.running_var", 31.9000374675, 31.9000374675, new() { (":4", new[] { 1.16658723, 1.14027238, 0.971654773, 0.877075016 }) }),
        },
        ["bb_32_S_eval"] = new()
        {
            new("y", 448.414739415, 448.414739415, new() { ("0, 0, 0, :", new[] { 0.974192381, 1.29128575, 1.93581724, 2.39141679, 2.79587197, 2.14835048 }), ("-1, -1, -1, :", new[] { 0.44213587, 0, 0, 0.183368266, 1.8560009, 1.16741824 }) }),
        },
        ["ulsam_g1_eval"] = new()
        {
            new("y", 27.1908669919, 208.031169869, new() { ("0, 0, 0, :", new[] { 0.697892308, 1.1101954, 1.42522621, 1.61020827, 1.64316988, 1.53432119, 1.26532531 }), ("-1, -1, -1, :", new[] { -1.22685432, -1.42120445, -1.0889405, -0.329665333, 0.586089551, 1.32603633, 1.62758029 }) }),
        },
        ["ulsam_g1_train"] = new()
        {
            new("y", 27.129219505, 208.096263305, new() { ("0, 0, 0, :", new[] { 0.697284877, 1.10180271, 1.41588366, 1.61296403, 1.65233767, 1.54463768, 1.25694382 }), ("-1, -1, -1, :", new[] { -1.2392664, -1.42014468, -1.09444571, -0.332849443, 0.583804846, 1.31551242, 1.62871504 }) }),
            new("subspaces.0.bn_dws.running_mean", 0.498567682691, 0.644754272886, new() { ("", new[] { -0.0407612324, 0.00176241715, 0.163280293, -0.0323320627, 0.128115773, 0.278502494 }) }),
            new("subspaces.0.bn_dws.running_var", 5.5379434526, 5.5379434526, new() { ("", new[] { 0.130265906, 0.249539748, 0.579266727, 0.968648136, 1.55668724, 2.0535357 }) }),
            new("subspaces.0.bn_point.running_var", 0.303258508444, 0.303258508444, new() { ("", new[] { 0.303258508 }) }),
        },
        ["ulsam_g4_two_train_forwards"] = new()
        {
            new("y", 181.423235531, 1697.45475704, new() { ("0, 0, 0, :", new[] { 0.695810735, 1.09696555, 1.40392816, 1.58557022, 1.6223954, 1.52754188, 1.28234172, 0.886868775, 0.42986545 }), ("-1, -1, -1, :", new[] { 0.865967155, -0.050184112, -0.40148133, 1.16846156, -1.30748177, 1.62897694, -1.28644216, 1.13135028, -0.364723086 }), ("2, 13, :, 8", new[] { -1.22569406, 1.17621422, 1.11029279, -1.02026367 }) }),
            new("subspaces.3.bn_dws.running_mean", 0.527812175453, 0.610198818147, new() { ("", new[] { -0.0411933213, 0.0845000967, 0.232524619, 0.251980782 }) }),
            new("subspaces.3.bn_dws.running_var", 5.59996522963, 5.59996522963, new() { ("", new[] { 0.0308826119, 1.21627796, 2.54348421, 1.80932045 }) }),
            new("subspaces.3.bn_point.running_mean", 1.91285228729, 1.91285228729, new() { ("", new[] { 1.91285229 }) }),
            new("subspaces.1.bn_point.running_var", 0.316173344851, 0.316173344851, new() { ("", new[] { 0.316173345 }) }),
        },
        ["ulsam_g4_eval_after_training"] = new()
        {
            new("y", 181.407679066, 1697.47527605, new() { ("0, 0, 0, :", new[] { 0.70313108, 1.10850632, 1.41869831, 1.60225129, 1.6394639, 1.52471805, 1.26748228, 0.891821265, 0.434387892 }), ("-1, -1, -1, :", new[] { 0.874123812, -0.050656803, -0.386863023, 1.1476388, -1.31355846, 1.64432049, -1.29855931, 1.12502718, -0.36815846 }) }),
        },
        ["mbv2_ela_L_eval_1x3x33x29"] = new()
        {
            new("y", 0.0685550849885, 0.749909559265, new() { ("0, :", new[] { -0.0395351611, -0.0177983474, 0.0593252294, -0.0571321175, -0.0449302532, 0.06575986, 0.144951135, 0.139196098, -0.153943002, -0.0273383558 }) }),
        },
        ["mbv2_ela_L_train_float64_2x3x33x29"] = new()
        {
            new("y", -1.32182859707, 7.38530537257, new() { ("0, :", new[] { 0.17746535454516515, 0.14422276940631229, 0.039841090588150489, 0.78268374669702856, 1.0549620306737357, 0.098705997233603113, 0.19636649141456936, 0.12754279348057751, -1.4958747369103922, 0.14639809639595427 }), ("1, :", new[] { -0.00213071164214855, -0.070759579656103244, -0.02377950447765434, -0.56536166810207389, -0.9433541596966093, -0.049654256751998083, -0.14678662438838497, 0.2447057696906827, -1.0558657431964282, 0.018844247626359938 }) }),
            new("features.17.conv.4.running_mean", 0.836095981581, 110.209110587, new() { (":4", new[] { 0.20822795784159825, -0.069862597282556976, -0.032375156060546785, 0.1998015901152575 }) }),
            new("conv.1.running_var", 1159.89901027, 1159.89901027, new() { (":4", new[] { 0.81352156771570527, 0.76805176618153159, 0.7303231183576212, 0.70235151128243767 }) }),
        },
        ["resnet_base16_B_eval"] = new()
        {
            new("y", 2.67064030841, 4.69952397421, new() { ("0, :", new[] { 0.29543218, 0.0608860292, 0.219291389, 0.0434371158, -0.152928084, -0.30141747, 0.132295221, 0.0146655366, 0.321098566, 0.523384213 }), ("1, :", new[] { 0.00175502896, 0.32994622, 0.451478481, -0.0861179382, -0.12689206, 0.207128927, -0.216505066, -0.130581215, 0.224766016, 0.859517217 }) }),
        },
        ["mv1_025_ulsam_replace8_eval"] = new()
        {
            new("y", 1.70949842036, 2.71077571809, new() { ("0, :", new[] { -0.131663546, 0.0639495328, 0.139347538, 0.0976001099, -0.0951080993, 0.133778483, 0.365069628, 0.190223396, -0.0236032382, 0.114800885 }), ("1, :", new[] { -0.131575122, 0.0639265627, 0.139323473, 0.0977897197, -0.0950801745, 0.134096295, 0.365160078, 0.190186366, -0.0236084685, 0.114885002 }) }),
        },
        ["mv1_025_ulsam_add12_train_float64"] = new()
        {
            new("y", 2.21458348076, 16.9335276314, new() { ("0, :", new[] { -1.7952701086447838, 0.21785096996192782, 0.41996174781772111, 0.77481334271058655, 0.95471589133242429, 0.84881019921745038, -0.75968994995680683, 0.58898223771132441, 1.3323222755736255, 0.35794551425203947 }), ("1, :", new[] { 3.1327874082993099, -0.18456378576256754, -0.38869822687103689, 0.087860871197052881, -1.2930509772934951, -0.79505948624873168, 0.85800509799107738, -0.68914533034435721, -1.3749790388333385, -0.079015171344739565 }) }),
            new("features.14.subspaces.1.bn_point.running_mean", -0.0253757496487, 0.0253757496487, new() { ("", new[] { -0.025375749648675568 }) }),
        },
    };
}
