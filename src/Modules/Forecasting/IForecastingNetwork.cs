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
