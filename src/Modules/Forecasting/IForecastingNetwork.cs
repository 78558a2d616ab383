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
    /// <param name="windows">[B, L, N], scaled per variate, missing entries 0.</param>
    /// <param name="covariates">[B, L, M] calendar covariates, or null when the model has none.</param>
    /// <param name="observedMask">[B, L, N] with 1 = observed and 0 = missing, or null when nothing is missing.</param>
    /// <returns>[B, S, N], scaled.</returns>
    Tensor ForecastScaled(Tensor windows, Tensor? covariates, Tensor? observedMask);
}
