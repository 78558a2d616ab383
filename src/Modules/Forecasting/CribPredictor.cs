using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// CRIB's prediction head on the clean view's encoder tokens: <c>[B, P·N, D] → [B, N, P·D]</c> →
/// <c>prediction_1</c> Linear(P·D→D) → ReLU → <c>prediction_2</c> Linear(D→S) → <c>[B, S, N]</c>.
/// <c>prediction_3</c> (TCN D → [D/2, D/2]), <c>prediction_4</c> Linear(P·D/2→D) and <c>prediction_5</c> Linear(D→S) are
/// the reference's second prediction path, created but never used in forward: kept so checkpoints map 1:1 and the
/// parameter count equals the reference's.
/// </summary>
public sealed class CribPredictor : nn.Module<Tensor, Tensor>
{
    private readonly Linear prediction_1, prediction_2;
    private readonly CribTemporalConvNet prediction_3;
    private readonly Linear prediction_4, prediction_5;
    private readonly int _patches;

    /// <param name="config">Network hyper-parameters.</param>
    public CribPredictor(CribConfig config) : base(nameof(CribPredictor))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        int d = config.ModelWidth, p = config.Patches;
        _patches = p;
        prediction_1 = nn.Linear((long)p * d, d);
        prediction_2 = nn.Linear(d, config.Horizon);
        prediction_3 = new CribTemporalConvNet(d, new[] { d / 2, d / 2 }, 3, config.Dropout);
        prediction_4 = nn.Linear((long)p * d / 2, d);
        prediction_5 = nn.Linear(d, config.Horizon);
        RegisterComponents();
    }

    /// <summary>tokens [B, P·N, D] → normalised forecast [B, S, N].</summary>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var grouped = CribInformationBottleneck.RegroupByVariate(tokens, _patches);  // [B, N, P·D]
        var y = prediction_2.call(nn.functional.relu(prediction_1.call(grouped)));  // [B, N, S]
        return y.permute(0, 2, 1).MoveToOuterDisposeScope();
    }
}
