using MLNet.Attention.Gaussian;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules.Gaussian;

/// <summary>The DAAM classifier's baseline heads: shapes, parameter counts, gradients, invalid configurations.</summary>
[TestClass]
public sealed class LayerHeadsTests
{
    [TestMethod]
    public void ParameterCountsAreThoseOfTheirLayers()
    {
        // Linear: L·D·C + C. MHA: layer embedding L·D, four D×D projections with bias, Linear(D → C).
        using var linear = new LinearLayerClassifier(layers: 4, features: 512, classes: 10);
        Assert.AreEqual(4 * 512 * 10 + 10, linear.parameters().Sum(p => p.numel()));
        using var mha = new AttentionLayerClassifier(layers: 4, features: 512, classes: 10, heads: 8);
        Assert.AreEqual(4 * 512 + 4 * (512 * 512 + 512) + 512 * 10 + 10, mha.parameters().Sum(p => p.numel()));
    }

    [TestMethod]
    public void GradientsMatchFiniteDifferences()
    {
        using var linear = new LinearLayerClassifier(3, 4, 2, new Generator(3));
        linear.to(float64);
        using var x = randn(2, 3, 4, dtype: float64).requires_grad_(true);
        GradientCheck.Verify(linear, () => linear.call(x), x);

        using var mha = new AttentionLayerClassifier(3, 4, 2, heads: 2, generator: new Generator(4));
        mha.to(float64);
        using (no_grad()) foreach (var p in mha.parameters()) p.normal_(0, 0.3);   // a non-zero layer embedding too
        GradientCheck.Verify(mha, () => mha.call(x), x);
    }

    [TestMethod]
    public void SequencesAreAveragedOverTimeAndLayersAreToldApart()
    {
        using var mha = new AttentionLayerClassifier(3, 4, 2, heads: 2, generator: new Generator(5));
        using (no_grad()) foreach (var p in mha.parameters()) p.normal_(0, 0.5);
        using var x = randn(2, 3, 5, 4);
        using var logits = mha.call(x);
        CollectionAssert.AreEqual(new long[] { 2, 2 }, logits.shape);
        using var pooled = mha.call(x.mean(new long[] { 2 }));
        Assert.IsTrue(logits.allclose(pooled, 1e-5, 1e-6));
        // The layer embedding makes the head sensitive to the order of the layers (plain self-attention with mean
        // pooling would not be).
        using var swapped = mha.call(x.mean(new long[] { 2 }).flip(1));
        Assert.IsFalse(pooled.allclose(swapped, 1e-4, 1e-5));
    }

    [TestMethod]
    public void InvalidConfigurationsAndShapesAreRefused()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new AttentionLayerClassifier(4, 6, 2, heads: 4)).Message,
            "divide the feature size D = 6");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LinearLayerClassifier(0, 4, 2));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LinearLayerClassifier(2, 4, 0));
        using var linear = new LinearLayerClassifier(2, 4, 3);
        using var wrong = zeros(5, 3, 4);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => linear.call(wrong)).Message, "[batch, 2 (layers), 4 (features)]");
    }
}
