using MLNet.Attention.MultipleInstance;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks.Modules;

/// <summary>
/// Attention MIL at whole-slide scale: one bag of 8000 instances × 1024 features (ResNet/UNI-sized patch features,
/// D_in 512 as ACMIL's UNI configuration) and a padded batch of 8 bags of up to 2000 instances. ABMIL runs in eval
/// mode and returns its logits; ACMIL runs in training mode (STKIM, M 5, K 10, p 0.6) and returns the total of its
/// three losses. Matches bench/reference/modules/mil.py (same block and size strings).
/// </summary>
public sealed class MilCases : IModuleBenchmarkCases
{
    private static readonly long[] PaddedLengths = { 2000, 1500, 1800, 900, 2000, 1200, 600, 1700 };

    private static Tensor[] OneBag() => new[] { randn(1, 8000, 1024) };

    private static Tensor[] PaddedBatch()
    {
        long nMax = PaddedLengths.Max();
        using var lengths = tensor(PaddedLengths);
        return new[] { randn(PaddedLengths.Length, nMax, 1024), arange(nMax).unsqueeze(0) < lengths.unsqueeze(1) };
    }

    private static nn.Module Abmil()
    {
        var net = new GatedAttentionMil(new GatedAttentionMilConfig(1024, 512, 2));
        net.eval();
        return net;
    }

    private static nn.Module AcmilTrain()
    {
        var net = new Acmil(new AcmilConfig(1024, 512, 2, Branches: 5, TopK: 10, MaskRatio: 0.6));
        net.train();
        return net;
    }

    private static Tensor AbmilForward(nn.Module module, Tensor[] inputs)
    {
        using var y = ((GatedAttentionMil)module).call(inputs[0], inputs.Length > 1 ? inputs[1] : null);
        return y.Logits.clone();
    }

    private static Tensor AcmilForward(nn.Module module, Tensor[] inputs)
    {
        var net = (Acmil)module;
        using var y = net.call(inputs[0], inputs.Length > 1 ? inputs[1] : null);
        using var labels = zeros(y.SlideLogits.shape[0], ScalarType.Int64, y.SlideLogits.device);
        using var losses = net.Losses(y, labels);
        return losses.Total.clone();
    }

    /// <inheritdoc />
    public IEnumerable<ModuleBenchmarkCase> Cases => new[]
    {
        new ModuleBenchmarkCase("ABMIL (gated)", "bag N 8000, D 1024→512, C 2", Abmil, OneBag, AbmilForward),
        new ModuleBenchmarkCase("ACMIL (train, STKIM, 3 losses)", "bag N 8000, D 1024→512, M 5, K 10, p 0.6, C 2", AcmilTrain, OneBag, AcmilForward),
        new ModuleBenchmarkCase("ABMIL (gated)", "8 padded bags N≤2000, D 1024→512, C 2", Abmil, PaddedBatch, AbmilForward),
        new ModuleBenchmarkCase("ACMIL (train, STKIM, 3 losses)", "8 padded bags N≤2000, D 1024→512, M 5, K 10, p 0.6, C 2", AcmilTrain, PaddedBatch, AcmilForward),
    };
}
