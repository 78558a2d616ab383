using MLNet.Attention.Gaussian;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks.Modules;

/// <summary>
/// GAAM / DAAM cases (bench/reference/modules/gaam.py has the same block/size strings): the paper's MultiHeadDAAM on
/// BERT-base-like stacked layer embeddings, the library's GaussianBlock on a token sequence, and the paper's full
/// classifier head at the IEMOCAP size.
/// </summary>
public sealed class GaamCases : IModuleBenchmarkCases
{
    /// <inheritdoc />
    public IEnumerable<ModuleBenchmarkCase> Cases { get; } = new[]
    {
        new ModuleBenchmarkCase("MultiHeadDAAM", "B 32, layers 13, D 768, H 13",
            () => new MultiHeadDensityAdaptiveAttention(layers: 13, features: 768, heads: 13),
            () => new[] { randn(32, 13, 768) },
            (m, x) => ((MultiHeadDensityAdaptiveAttention)m).call(x[0])),
        new ModuleBenchmarkCase("GaussianBlock", "B 32, T 128, D 256, axis 2, H 8, N 4",
            () => new GaussianBlock(new[] { 2 }, new[] { 8 }, new[] { 4 }, numLayers: 1),
            () => new[] { randn(32, 128, 256) },
            (m, x) => ((GaussianBlock)m).call(x[0])),
        new ModuleBenchmarkCase("DaamClassifier", "B 8, layers 24, D 1024 (32x32), H 8, 4 classes",
            () => new DaamClassifier(layers: 24, features: 1024, classes: 4, height: 32, width: 32, heads: 8),
            () => new[] { randn(8, 24, 1024) },
            (m, x) => ((DaamClassifier)m).call(x[0])),
    };
}
