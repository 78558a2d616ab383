using MLNet.Attention.Forecasting;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks.Modules;

/// <summary>
/// MVPA and one MVPFormer block (eval mode, float32) on a 16-segment × 16-channel token grid of width 128 with 8 query
/// and 4 key/value heads (512 attention-matrix rows per sample). Matches <c>bench/reference/modules/mvpa.py</c>.
/// </summary>
public sealed class MvpaCases : IModuleBenchmarkCases
{
    private const int Batch = 4, Segments = 16, Channels = 16, Width = 128, Heads = 8, KvHeads = 4, Inner = 320;
    private const string Size = "B 4, T 16, C 16, d 128, H 8, H_kv 4";

    public IEnumerable<ModuleBenchmarkCase> Cases
    {
        get
        {
            yield return new ModuleBenchmarkCase("MVPA", Size,
                () => { var m = new MultiVariateParallelAttention(Width, Heads, KvHeads); m.eval(); return m; },
                Inputs,
                (m, xs) => ((MultiVariateParallelAttention)m).call(xs[0], xs[1], xs[2]));
            yield return new ModuleBenchmarkCase("MVPFormer block", Size,
                () => { var m = new MvpFormerBlock(Width, Heads, KvHeads, Inner); m.eval(); return m; },
                Inputs,
                (m, xs) => ((MvpFormerBlock)m).call(xs[0], xs[1], xs[2]));
        }
    }

    /// <summary>Token grid [B, T, C, d], positional rows [1, T, d] and channel rows [1, C, d] (table init scale 0.02).</summary>
    private static Tensor[] Inputs() => new[]
    {
        randn(Batch, Segments, Channels, Width),
        randn(1, Segments, Width) * 0.02,
        randn(1, Channels, Width) * 0.02,
    };
}
