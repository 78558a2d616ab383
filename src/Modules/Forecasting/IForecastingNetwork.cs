using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// A network the forecasting toolkit can train and score: it maps a scaled window to a scaled forecast. The toolkit
/// scales the series, zero-fills missing entries and supplies the observed mask; a network that cannot use the mask or
/// the covariates simply ignores them.
/// </summary>
public interface IForecastingNetwork
{
    /// <summary>Input window length L the network was built for.</summary>
    int Lookback { get; }

    /// <summary>Forecast length S the network was built for.</summary>
    int Horizon { get; }

    /// <summary>Forecasts from scaled windows.</summary>
    /// <param name="windows">[B, L, C], scaled per channel, missing entries 0: the N forecast variates, then the
    /// past covariates (C = N without them).</param>
    /// <param name="covariates">[B, L, M] calendar covariates, or null when the model has none.</param>
    /// <param name="observedMask">[B, L, C] with 1 = observed and 0 = missing, or null when nothing is missing.</param>
    /// <returns>[B, S, N] or [B, S, C], scaled (the toolkit keeps the first N channels).</returns>
    Tensor ForecastScaled(Tensor windows, Tensor? covariates, Tensor? observedMask);
}

/// <summary>
/// A forecasting network that also reads known-future covariates (values known for the forecast horizon: planned
/// promotions, a weather forecast, a schedule). Their lookback values are the last channels of the window; the toolkit
/// passes their horizon values beside it.
/// </summary>
public interface IFutureCovariateForecastingNetwork : IForecastingNetwork
{
    /// <summary>Known-future covariates F the network was built for (the last F channels of the window).</summary>
    int FutureCovariates { get; }

    /// <summary>Forecasts from scaled windows and the covariates' horizon values.</summary>
    /// <param name="windows">[B, L, C], scaled per channel, missing entries 0: the forecast variates first, then the
    /// past covariates, then the F future covariates' lookback values.</param>
    /// <param name="covariates">[B, L, M] calendar covariates, or null.</param>
    /// <param name="observedMask">[B, L, C] with 1 = observed, or null when nothing is missing.</param>
    /// <param name="futureCovariates">[B, S, F] the future covariates over the horizon, scaled, missing entries 0.</param>
    /// <returns>[B, S, C'] with C' ≥ the forecast variates, scaled; the toolkit keeps the first N channels.</returns>
    Tensor ForecastScaled(Tensor windows, Tensor? covariates, Tensor? observedMask, Tensor futureCovariates);
}

/// <summary>
/// A network that makes an evaluation-only copy of itself for scoring: the same forecasts within float rounding with
/// fewer tensor ops (fused or precomputed weights). The toolkit scores with the copy; the trainable network, its saved
/// weights and its exporters stay as they are.
/// </summary>
internal interface IInferenceCopyForecastingNetwork : IForecastingNetwork
{
    /// <summary>An evaluation-mode copy with the current weights on <paramref name="device"/>; it cannot be trained.
    /// The global random generator's state is unchanged (building the copy's modules would otherwise draw from it).
    /// </summary>
    IForecastingNetwork CreateInferenceCopy(Device device);
}

/// <summary>Builds inference copies (<see cref="IInferenceCopyForecastingNetwork"/>) the same way for every network.
/// </summary>
internal static class InferenceCopies
{
    /// <summary>A fresh network from <paramref name="create"/> with <paramref name="source"/>'s weights and buffers,
    /// on <paramref name="device"/>, in evaluation mode, after <paramref name="prepare"/> (the copy's rewrites); the
    /// global generator's state is restored, and the copy disposed if a step fails.</summary>
    public static T Create<T>(TorchSharp.torch.nn.Module source, Func<T> create, Device device, Action<T> prepare)
        where T : TorchSharp.torch.nn.Module
    {
        // Made outside inference mode even when the first scored batch asks for it: inference tensors would refuse to
        // take part in any later forward that autograd records.
        using var normalMode = TorchSharp.torch.inference_mode(false);
        // The copy outlives the caller's dispose scope (the scored batch's): its parameters and buffers, made in a
        // scope of their own, are detached from it; the temporaries of building it are disposed with that scope.
        using var scope = NewDisposeScope();
        T copy;
        using (var rng = TorchSharp.torch.random.get_rng_state())
        {
            try { copy = create(); }
            finally { TorchSharp.torch.random.set_rng_state(rng); }
        }
        try
        {
            using var noGrad = no_grad();
            copy.to(device);
            copy.load_state_dict(source.state_dict());
            copy.eval();
            prepare(copy);
            foreach (var parameter in copy.parameters()) parameter.DetachFromDisposeScope();
            foreach (var buffer in copy.buffers()) buffer.DetachFromDisposeScope();
            return copy;
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }
}
