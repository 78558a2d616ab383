using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// One training step's CRIB loss terms (the reference code's version, <c>loss_type '123'</c>):
/// <c>Total = w_pred·Prediction + w_cons·Consistency + w_KL·Kl</c> with defaults 1, 1, 1e-6. Dispose to free the tensors.
/// </summary>
public sealed class CribLossTerms : IDisposable
{
    internal CribLossTerms(Tensor prediction, Tensor consistency, Tensor kl, Tensor total, CribOutput output)
    {
        Prediction = prediction;
        Consistency = consistency;
        Kl = kl;
        Total = total;
        Output = output;
    }

    /// <summary>L_pred = mean |ŷ − y| (L1 / MAE) against the full, never-masked target.</summary>
    public Tensor Prediction { get; }

    /// <summary>L_cons = mean (e₁ − e₂)² over [B, P·N, D]; gradients flow through both views.</summary>
    public Tensor Consistency { get; }

    /// <summary>L_KL = Σ_{b,n} KL(q(z|x) ‖ N(0, I)) (a sum, not a mean).</summary>
    public Tensor Kl { get; }

    /// <summary>The weighted total to back-propagate.</summary>
    public Tensor Total { get; }

    /// <summary>The forward pass the terms were computed from (forecast, both views' tokens, posterior).</summary>
    public CribOutput Output { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Prediction.Dispose();
        Consistency.Dispose();
        Total.Dispose();
        Output.Dispose(); // owns Kl
    }
}

/// <summary>CRIB's loss functions (spec §5; the README's α(L_Comp + β L_Pred) + γ L_Consis is not what the code trains).</summary>
public static class CribLosses
{
    /// <summary>L1 forecast loss mean |ŷ − y|.</summary>
    public static Tensor Prediction(Tensor forecast, Tensor target) => (forecast - target).abs().mean();

    /// <summary>Consistency loss mean (e₁ − e₂)² between the two views' encoder tokens.</summary>
    public static Tensor Consistency(Tensor firstView, Tensor secondView) => (firstView - secondView).pow(Of(2L)).mean();

    /// <summary>Total = w_pred·L_pred + w_cons·L_cons + w_KL·KL with the weights of <paramref name="config"/>.</summary>
    public static Tensor Total(CribConfig config, Tensor prediction, Tensor consistency, Tensor kl)
    {
        ArgumentNullException.ThrowIfNull(config);
        using var scope = NewDisposeScope();
        return prediction.mul(Of(config.PredictionWeight)).add(consistency.mul(Of(config.ConsistencyWeight)), One).add(kl.mul(Of(config.KlWeight)), One).MoveToOuterDisposeScope();
    }
}
