using MLNet.Attention.Layers;
using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;
using BatchNorm2d = MLNet.Attention.Layers.BatchNorm2d;

namespace MLNet.Attention.Tests.Modules.Vision;

/// <summary>Folding evaluation-mode batch norms into the convolution in front of them (the scoring copies of the image
/// classifiers) keeps every backbone's outputs, and a folded network refuses to train.</summary>
[TestClass]
public sealed class BatchNormFoldingTests
{
    private static IEnumerable<object[]> Backbones()
    {
        yield return new object[] { "MobileNetV2" };
        yield return new object[] { "MobileNetV2+ELA-L" };
        yield return new object[] { "MobileNetV2+ULSAM" };
        yield return new object[] { "ResNet-18" };
        yield return new object[] { "ResNet-18+ELA-B" };
        yield return new object[] { "MobileNetV1" };
        yield return new object[] { "MobileNetV1+ULSAM" };
    }

    private static nn.Module<Tensor, Tensor> Build(string name) => name switch
    {
        "MobileNetV2" => new MobileNetV2(10, 0.25, cifarStem: true),
        "MobileNetV2+ELA-L" => MobileNetV2.WithEla(ElaVariant.L, 10, 0.25, cifarStem: true),
        "MobileNetV2+ULSAM" => MobileNetV2.WithUlsam(new[] { 12 }, 4, 10, 0.25, cifarStem: true),
        "ResNet-18" => new ResNet(10),
        "ResNet-18+ELA-B" => ResNet.ResNet18WithEla(ElaVariant.B, 10),
        "MobileNetV1" => new MobileNetV1(10, 0.25),
        "MobileNetV1+ULSAM" => new MobileNetV1(10, 0.25, UlsamPlacement.ReplacingRepeated512(4)),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [TestMethod]
    [DynamicData(nameof(Backbones))]
    public void AFoldedCopyScoresAsTheNetworkWithItsBatchNorms(string backbone)
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var network = Build(backbone);
        RandomiseNorms(network);
        network.eval();
        var copy = Build(backbone);
        copy.load_state_dict(network.state_dict());
        copy.eval();
        int folded = BatchNormFolding.Fold(copy);

        // Every backbone norm sits right behind its convolution; ULSAM keeps its subspaces' own two (its fused
        // evaluation path reads their statistics).
        int expected = copy.named_modules().Count(m => m.module is BatchNorm2d && !m.name.EndsWith("bn_dws", StringComparison.Ordinal)
            && !m.name.EndsWith("bn_point", StringComparison.Ordinal));
        Assert.IsTrue(expected > 0);
        Assert.AreEqual(expected, folded, backbone);
        var x = randn(4, 3, 32, 32);
        using var noGrad = no_grad();
        var reference = network.call(x);
        var actual = copy.call(x);
        double error = (actual - reference).abs().max().item<float>(), size = reference.abs().max().item<float>();
        Assert.IsTrue(error <= 1e-5 * Math.Max(1, size), $"{backbone}: max |folded − original| = {error:E2} (scale {size:G3})");
        Assert.AreEqual(0, BatchNormFolding.Fold(copy), "folding twice must not fold again");
    }

    [TestMethod]
    public void AFoldedNetworkRefusesToTrainAndFoldingNeedsEvaluationMode()
    {
        using var scope = NewDisposeScope();
        var network = new MobileNetV2(10, 0.25, cifarStem: true);
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => BatchNormFolding.Fold(network));
        StringAssert.Contains(error.Message, "eval()");
        network.eval();
        BatchNormFolding.Fold(network);
        network.train();
        var training = Assert.ThrowsExactly<InvalidOperationException>(() => network.call(randn(2, 3, 32, 32)));
        StringAssert.Contains(training.Message, "cannot train");
    }

    /// <summary>Non-trivial running statistics and affine parameters, as after training (fresh ones are 0/1).</summary>
    private static void RandomiseNorms(nn.Module network)
    {
        using var noGrad = no_grad();
        foreach (var norm in network.modules().OfType<BatchNorm2d>())
        {
            norm.running_mean!.copy_(randn_like(norm.running_mean).mul(0.1));
            norm.running_var!.copy_(rand_like(norm.running_var).add(0.5));
            norm.weight!.copy_(rand_like(norm.weight).add(0.5));
            norm.bias!.copy_(randn_like(norm.bias).mul(0.1));
        }
    }
}
