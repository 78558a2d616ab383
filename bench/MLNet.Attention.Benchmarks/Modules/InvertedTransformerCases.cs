using MLNet.Attention.Forecasting;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks.Modules;

/// <summary>iTransformer at the paper's ETTh1 96→96 size (the speed benchmark's setting), dropout off.</summary>
public sealed class InvertedTransformerCases : IModuleBenchmarkCases
{
    public IEnumerable<ModuleBenchmarkCase> Cases =>
    [
        new("iTransformer", "B 32, L 96→96, N 7 + 4 marks, D 256, 2 layers",
            () =>
            {
                var net = new InvertedTransformerNetwork(new InvertedTransformerConfig(96, 96, ModelWidth: 256, Heads: 8, Layers: 2, FeedForwardWidth: 256));
                net.eval();
                return net;
            },
            () => [randn(32, 96, 7), randn(32, 96, 4)],
            (m, x) => ((InvertedTransformerNetwork)m).call(x[0], x[1])),
    ];
}
