using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks.Modules;

/// <summary>
/// ELA cases (pairs with <c>bench/reference/modules/ela.py</c>): the standalone ELA-L block on an early-stage ResNet-size
/// map, and one MobileNetV2 inverted-residual block with ELA-L (the official <c>mbv2_ela72</c> placement) at the
/// 14×14 stage of a 224×224 ImageNet input, in training mode (BatchNorm on batch statistics).
/// </summary>
public sealed class ElaCases : IModuleBenchmarkCases
{
    /// <inheritdoc />
    public IEnumerable<ModuleBenchmarkCase> Cases
    {
        get
        {
            yield return new ModuleBenchmarkCase(
                "ELA-L", "B 32, C 64, 56×56",
                () => new EfficientLocalAttention(64, ElaVariant.L),
                () => new[] { randn(32, 64, 56, 56) },
                (m, x) => ((EfficientLocalAttention)m).call(x[0]));
            yield return new ModuleBenchmarkCase(
                "MobileNetV2 IR block + ELA-L", "B 32, 64→64 ch, t 6 (E 384), 14×14, train",
                () =>
                {
                    var block = new InvertedResidual(64, 64, 1, 6, c => new EfficientLocalAttention(c, ElaVariant.L));
                    block.train();
                    return block;
                },
                () => new[] { randn(32, 64, 14, 14) },
                (m, x) => ((InvertedResidual)m).call(x[0]));
        }
    }
}
