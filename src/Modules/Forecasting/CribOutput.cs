using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// Everything one <see cref="CribNetwork"/> pass computes (the quantities the golden tests check). Dispose it to free
/// the tensors. Tensors keep their autograd history (so losses built on them can be back-propagated).
/// </summary>
public sealed class CribOutput : IDisposable
{
    internal CribOutput(Tensor forecast, Tensor encoderTokens, Tensor posteriorMean, Tensor posteriorVariance, Tensor kl,
        Tensor seriesMean, Tensor seriesStd, Tensor? secondViewTokens, Tensor? noiseMean, Tensor? noiseStd)
    {
        Forecast = forecast;
        EncoderTokens = encoderTokens;
        PosteriorMean = posteriorMean;
        PosteriorVariance = posteriorVariance;
        Kl = kl;
        SeriesMean = seriesMean;
        SeriesStd = seriesStd;
        SecondViewTokens = secondViewTokens;
        NoiseMean = noiseMean;
        NoiseStd = noiseStd;
    }

    /// <summary>Forecast ŷ [B, S, N] in the input's units.</summary>
    public Tensor Forecast { get; }

    /// <summary>Clean-view encoder tokens e₁ [B, P·N, D] (token r = p·N + n).</summary>
    public Tensor EncoderTokens { get; }

    /// <summary>Mean (loc) of the posterior q(z|x) [B, N, D].</summary>
    public Tensor PosteriorMean { get; }

    /// <summary>Diagonal variance of q(z|x) [B, N, D] (softplus output + 1e-9).</summary>
    public Tensor PosteriorVariance { get; }

    /// <summary>Standard deviation √variance of q(z|x) [B, N, D] (computed on access; the caller owns the result).</summary>
    public Tensor PosteriorStd() => PosteriorVariance.sqrt();

    /// <summary>Σ_{b,n} KL(q(z|x) ‖ N(0, I)) (scalar, a sum over batch and variates).</summary>
    public Tensor Kl { get; }

    /// <summary>RevIN mean per (batch, variate) of the zero-filled window [B, 1, N] (constant).</summary>
    public Tensor SeriesMean { get; }

    /// <summary>RevIN √(biased variance + 1e-5) per (batch, variate) [B, 1, N] (constant).</summary>
    public Tensor SeriesStd { get; }

    /// <summary>Encoder tokens e₂ of the noise-perturbed second view [B, P·N, D]; null unless the loss was computed.</summary>
    public Tensor? SecondViewTokens { get; }

    /// <summary>Scalar mean m of the first view x₁ used for the second view's noise; null unless the loss was computed.</summary>
    public Tensor? NoiseMean { get; }

    /// <summary>Scalar unbiased std s of x₁ used for the second view's noise; null unless the loss was computed.</summary>
    public Tensor? NoiseStd { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in new[] { Forecast, EncoderTokens, PosteriorMean, PosteriorVariance, Kl, SeriesMean, SeriesStd, SecondViewTokens, NoiseMean, NoiseStd })
            t?.Dispose();
    }
}
