// Package smoke test for MLNet.Attention.Modules alone: build each block, run forward and backward, check shapes.
using MLNet.Attention.Forecasting;
using MLNet.Attention.Gaussian;
using MLNet.Attention.MultipleInstance;
using MLNet.Attention.Runtime;
using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;

TorchRuntime.EnsureLoaded();
TorchRuntime.Seed(1);
var failures = new List<string>();

void Check(string name, Func<nn.Module> create, Func<nn.Module, Tensor> forward, long[] expectedShape)
{
    using var scope = NewDisposeScope();
    try
    {
        using var module = create();
        var y = forward(module);
        y.sum().backward();
        if (!y.shape.SequenceEqual(expectedShape)) failures.Add($"{name}: shape [{string.Join(", ", y.shape)}], expected [{string.Join(", ", expectedShape)}]");
        else if (!y.isfinite().all().item<bool>()) failures.Add($"{name}: non-finite output");
        else Console.WriteLine($"{name}: [{string.Join(", ", y.shape)}] ok");
    }
    catch (Exception ex) { failures.Add($"{name}: {ex.GetType().Name}: {ex.Message}"); }
}

Check("iTransformer", () => new InvertedTransformerNetwork(new InvertedTransformerConfig(24, 6, ModelWidth: 16, Heads: 2, Layers: 1, FeedForwardWidth: 16)),
    m => ((InvertedTransformerNetwork)m).call(randn(2, 24, 3), null), [2, 6, 3]);

Check("ELA", () => new EfficientLocalAttention(32, ElaVariant.B), m => ((EfficientLocalAttention)m).call(randn(2, 32, 8, 8)), [2, 32, 8, 8]);
Check("MobileNetV2 + ELA", () => MobileNetV2.WithEla(ElaVariant.L, numClasses: 10, widthMultiplier: 0.5), m => ((MobileNetV2)m).call(randn(2, 3, 32, 32)), [2, 10]);
Check("ResNet-18 + ELA", () => ResNet.ResNet18WithEla(ElaVariant.B, numClasses: 10), m => ((ResNet)m).call(randn(2, 3, 32, 32)), [2, 10]);
Check("MobileNetV2 + ULSAM", () => MobileNetV2.WithUlsam(UlsamMobileNetV2Placements.TwoEach, numClasses: 10), m => ((MobileNetV2)m).call(randn(2, 3, 32, 32)), [2, 10]);
Check("ULSAM", () => new UltraLightSubspaceAttention(16, 4), m => ((UltraLightSubspaceAttention)m).call(randn(2, 16, 8, 8)), [2, 16, 8, 8]);
Check("MobileNetV1 + ULSAM", () => new MobileNetV1(10, 0.25, UlsamPlacement.ReplacingRepeated512(4)), m => ((MobileNetV1)m).call(randn(2, 3, 64, 64)), [2, 10]);
Check("MultiHeadDAAM", () => new MultiHeadDensityAdaptiveAttention(4, 12, heads: 2), m => ((MultiHeadDensityAdaptiveAttention)m).call(randn(2, 4, 12)), [2, 4, 12]);
Check("GaussianBlock", () => new GaussianBlock([1], [2], [3], 1), m => ((GaussianBlock)m).call(randn(2, 6, 8)), [2, 6, 8]);
Check("ACMIL", () => new Acmil(new AcmilConfig(FeatureSize: 32, InnerSize: 16, Classes: 2, Branches: 3, TopK: 2)),
    m => ((Acmil)m).call(randn(2, 20, 32), null).SlideLogits, [2, 2]);
Check("ABMIL", () => new GatedAttentionMil(new GatedAttentionMilConfig(FeatureSize: 32, InnerSize: 16, Classes: 2)),
    m => ((GatedAttentionMil)m).call(randn(2, 20, 32), null).Logits, [2, 2]);
Check("CRIB", () => new CribNetwork(new CribConfig(Lookback: 24, Horizon: 24, PatchLength: 8, ModelWidth: 16, Heads: 2, Layers: 1)),
    m => ((CribNetwork)m).call(randn(2, 24, 3), ones(2, 24, 3)), [2, 24, 3]);
Check("MVPA", () => new MvpFormerBlock(16, 4, 2), m => ((MvpFormerBlock)m).call(randn(2, 5, 3, 16), randn(1, 5, 16), randn(1, 3, 16)), [2, 5, 3, 16]);

if (failures.Count > 0) { foreach (var f in failures) Console.WriteLine($"MODULES SMOKE FAILED: {f}"); return 1; }
Console.WriteLine("MODULES SMOKE OK");
return 0;
