using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks.Modules;

/// <summary>
/// ULSAM (eval mode, float32) at the two MobileNet-V1 insertion points of the spec: g = 4 on the 512-channel 14×14 map
/// and g = 16 on the 1024-channel 7×7 map, batch 32. Matches <c>bench/reference/modules/ulsam.py</c>.
/// </summary>
public sealed class UlsamCases : IModuleBenchmarkCases
{
    public IEnumerable<ModuleBenchmarkCase> Cases
    {
        get
        {
            yield return Case(4, 512, 14);
            yield return Case(16, 1024, 7);
        }
    }

    private static ModuleBenchmarkCase Case(int g, int channels, int side) => new(
        $"ULSAM g={g}", $"B 32, C {channels}, {side}×{side}",
        () => { var m = new UltraLightSubspaceAttention(channels, g); m.eval(); return m; },
        () => [randn(32, channels, side, side)],
        (m, x) => ((UltraLightSubspaceAttention)m).call(x[0]));
}
