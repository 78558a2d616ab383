using MLNet.Attention.Forecasting;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks.Modules;

/// <summary>
/// CRIB at the spec's ETTh1 setting (the reference log): batch 32, L_in 24 → S 24, 7 variates, patch 8, D 32, H 4,
/// E 3, dropout 0.1, 20 % point-missing mask. Case 1: eval forecast. Case 2: one training step's loss (both views).
/// Paired with bench/reference/modules/crib.py.
/// </summary>
public sealed class CribCases : IModuleBenchmarkCases
{
    private static readonly CribConfig Etth1 = new(Lookback: 24, Horizon: 24, PatchLength: 8, ModelWidth: 32, Heads: 4, Layers: 3, Dropout: 0.1);

    private static Tensor[] Inputs(bool withTarget)
    {
        var series = randn(32, 24, 7);
        var mask = rand(32, 24, 7).ge(0.2).to(ScalarType.Float32);
        return withTarget ? [series, mask, randn(32, 24, 7)] : [series, mask];
    }

    public IEnumerable<ModuleBenchmarkCase> Cases =>
    [
        new("CRIB", "B 32, L_in 24->24, N 7, patch 8, D 32, E 3 (eval forecast)",
            () =>
            {
                var net = new CribNetwork(Etth1);
                net.eval();
                return net;
            },
            () => Inputs(withTarget: false),
            (m, x) => ((CribNetwork)m).call(x[0], x[1])),
        new("CRIB-train-loss", "B 32, L_in 24->24, N 7, patch 8, D 32, E 3 (two views + loss)",
            () =>
            {
                var net = new CribNetwork(Etth1);
                net.train();
                return net;
            },
            () => Inputs(withTarget: true),
            (m, x) =>
            {
                using var terms = ((CribNetwork)m).ComputeLoss(x[0], x[1], x[2]);
                return terms.Total.alias();
            }),
    ];
}
