using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// CRIB — Consistency-Regularized Information Bottleneck (Yang et al., "Revisiting Multivariate Time Series
/// Forecasting with Missing Values", arXiv 2509.23494): forecasts directly from a partially observed window without
/// imputing it. Missing entries are zero-filled; RevIN (statistics include the zeros); non-overlapping patches with a
/// sinusoidal encoding over the token index p·N + n; a causal weight-normed TCN embeds each (patch, variate) token;
/// a Transformer attends over all P·N tokens jointly; a linear head forecasts. Training adds an information-bottleneck
/// KL term and a consistency loss between the clean view and a noise-perturbed second view
/// (<see cref="ComputeLoss"/>).
/// </summary>
/// <remarks>
/// <para>Parameters are named as the reference's state-dict keys (<c>ini_embedding.*</c>, <c>encoder.enc_embedding_2.net.0.conv1.weight_g</c>,
/// <c>encoder.encoder.attn_layers.0.attention.query_projection.weight</c>, <c>predictor.prediction_1.*</c>,
/// <c>revinlayer.affine_weight</c>, …) and the buffers <c>enc_pos_emded.pe</c> / <c>dec_pos_emded.pe</c> [1, 5000, ·].
/// The reference's <b>dead modules</b> — <c>ini_embedding</c>, <c>encoder.enc_embedding_1</c>, the attention key/value
/// projections, <c>predictor.prediction_3/4/5</c> and <c>dec_pos_emded</c> — are created and counted but never used in
/// forward, so checkpoints map 1:1 and <see cref="CribConfig.ParameterCount"/> equals the reference (81,570 for the ETTh1
/// default). The reference's duplicate weight-norm aliases <c>net.0.*</c> / <c>net.4.*</c> inside each temporal block
/// are not repeated (same tensors as <c>conv1.*</c> / <c>conv2.*</c>).</para>
/// <para>Reference quirks reproduced: Q = K = V via the query projection, the scrambled head merge, the encoder layer's
/// norm placement, the softplus output used as a variance, KL summed (not averaged), z not used for prediction.
/// The latent sample z that the reference draws in training (and never uses) is not drawn.
/// The second view's noise moments m, s are constants (no gradient), as the reference's torch.normal draw.</para>
/// <para>Missing values: <c>observedMask</c> has the series' shape with 1 (or true) = observed, 0 = missing; missing
/// entries are replaced by 0 before use (so NaN there never reaches the outputs); a NaN or infinity at an observed
/// position is an error. The network forecasts in the units of its input (the reference feeds globally standardised
/// data; that scaling belongs to the data pipeline).</para>
/// </remarks>
public sealed class CribNetwork : nn.Module<Tensor, Tensor?, Tensor>, IForecastingNetwork,
    IInferenceCopyForecastingNetwork
{
    // Field order = the reference's named_parameters order.
    private readonly Linear ini_embedding;               // dead: Linear(L → D)
    private readonly CribEncoder encoder;
    private readonly CribPredictor predictor;
    private readonly CribRevIN revinlayer;
    private readonly CribPositionalTable enc_pos_emded;
    private readonly CribPositionalTable dec_pos_emded;  // dead: D-wide table
    // Inference copies only (CreateInferenceCopy): the positional encoding in patch layout [P, N, L] for the last
    // variate count seen, and whether the inputs are trusted (the toolkit validates and zero-fills them).
    private bool _inference;
    private Tensor? _patchPositions;
    private readonly object _patchPositionsLock = new();   // prediction engines on several threads share the copy
    private readonly List<Tensor> _stalePatchPositions = new();

    /// <summary>The hyper-parameters this network was built with.</summary>
    public CribConfig Config { get; }

    /// <param name="config">Hyper-parameters; validated here (<see cref="CribConfig.Validate"/>).</param>
    public CribNetwork(CribConfig config) : base(nameof(CribNetwork))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        ini_embedding = nn.Linear(config.PatchLength, config.ModelWidth);
        encoder = new CribEncoder(config);
        predictor = new CribPredictor(config);
        revinlayer = new CribRevIN();
        enc_pos_emded = new CribPositionalTable((config.PatchLength + 1) / 2 * 2);
        dec_pos_emded = new CribPositionalTable(config.ModelWidth);
        RegisterComponents();
    }

    /// <summary>
    /// Forecasts from <paramref name="series"/> [B, Lookback, N] with <paramref name="observedMask"/> [B, Lookback, N]
    /// (1/true = observed, 0/false = missing; null = all observed). Returns [B, Horizon, N].
    /// </summary>
    public override Tensor forward(Tensor series, Tensor? observedMask)
    {
        // The forecast alone: the information-bottleneck head and its KL feed only the training loss (the forecast
        // reads the encoder tokens), so scoring and validation skip them — about 6 % of a scoring forward.
        using var scope = NewDisposeScope();
        var (x1, mean, std) = Embed(series, observedMask);
        return revinlayer.Denormalise(predictor.call(encoder.Tokens(x1)), mean, std).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public int Lookback => Config.Lookback;

    /// <inheritdoc/>
    public int Horizon => Config.Horizon;

    /// <summary>The toolkit's forward: CRIB reads the zero-filled window with its observed mask (it has no calendar
    /// covariates).</summary>
    public Tensor ForecastScaled(Tensor windows, Tensor? covariates, Tensor? observedMask) => call(windows, observedMask);

    /// <summary>The scoring copy: weight-norm weights g·V/‖V‖ computed once (and for up to 2k patches the TCN as
    /// dense GEMMs), the feed-forward weights squeezed once, RevIN in fewer ops, the positional encoding kept in
    /// patch layout, and no re-validation of the toolkit's inputs
    /// (it refuses non-finite values and zero-fills the missing ones before the network sees them). Same forecasts
    /// within float rounding.</summary>
    IForecastingNetwork IInferenceCopyForecastingNetwork.CreateInferenceCopy(Device device) =>
        CreateInferenceCopy(device);

    /// <inheritdoc cref="IInferenceCopyForecastingNetwork.CreateInferenceCopy"/>
    internal CribNetwork CreateInferenceCopy(Device device) =>
        InferenceCopies.Create(this, () => new CribNetwork(Config), device, copy =>
        {
            foreach (var convolution in copy.modules().OfType<WeightNormConv2d>()) convolution.FreezeWeight();
            foreach (var layer in copy.modules().OfType<CribEncoderLayer>()) layer.SqueezeWeights();
            copy.encoder.UseDenseEmbedding(copy.Config.Patches);
            copy.revinlayer.PrepareForInference();
            copy._inference = true;
        });

    /// <summary>
    /// The clean-view forward pass with its intermediate quantities: forecast, encoder tokens, posterior q(z|x) and KL
    /// (the caller disposes the result). Dropout follows the module's train/eval mode.
    /// </summary>
    public CribOutput ForwardDetailed(Tensor series, Tensor? observedMask = null) => Run(series, observedMask, secondView: false, null, null);

    /// <summary>
    /// One training step's loss terms: the clean view and the second view <c>x₂ = x₁ + s_n·(m + s·ε)</c> (m, s the scalar
    /// mean and unbiased std of x₁, s_n = <see cref="CribConfig.SecondViewNoiseScale"/>) go through the shared encoder;
    /// returns L_pred, L_cons, KL and the weighted total. Dropout follows the module's mode (call <c>train()</c> first).
    /// </summary>
    /// <param name="series">[B, Lookback, N] input window.</param>
    /// <param name="observedMask">[B, Lookback, N], 1 = observed; null = all observed.</param>
    /// <param name="target">[B, Horizon, N] full (never-masked) target.</param>
    /// <param name="secondViewDraws">Injected standard-normal draws ε in the patch layout [B, P, N, PatchLength]
    /// (row-major over that shape); null draws them with <paramref name="generator"/>.</param>
    /// <param name="generator">Generator for ε when <paramref name="secondViewDraws"/> is null (null = the global one);
    /// it must live on the input's device.</param>
    public CribLossTerms ComputeLoss(Tensor series, Tensor? observedMask, Tensor target, Tensor? secondViewDraws = null, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(target);
        if (target.dim() != 3 || target.shape[0] != series.shape[0] || target.shape[1] != Config.Horizon || (series.dim() == 3 && target.shape[2] != series.shape[2]))
            throw new ArgumentException($"The target must have shape [{series.shape[0]} (batch), {Config.Horizon} (horizon), {(series.dim() == 3 ? series.shape[2] : -1)} (variates)]; got [{string.Join(", ", target.shape)}].", nameof(target));
        using var scope = NewDisposeScope();
        var output = Run(series, observedMask, secondView: true, secondViewDraws, generator);
        var prediction = CribLosses.Prediction(output.Forecast, target);
        var consistency = CribLosses.Consistency(output.EncoderTokens, output.SecondViewTokens!);
        var total = CribLosses.Total(Config, prediction, consistency, output.Kl);
        foreach (var t in new[] { output.Forecast, output.EncoderTokens, output.PosteriorMean, output.PosteriorVariance, output.Kl,
                     output.SeriesMean, output.SeriesStd, output.SecondViewTokens!, output.NoiseMean!, output.NoiseStd! })
            t.MoveToOuterDisposeScope();
        return new CribLossTerms(prediction.MoveToOuterDisposeScope(), consistency.MoveToOuterDisposeScope(), output.Kl, total.MoveToOuterDisposeScope(), output);
    }

    /// <summary>Zero-fill, RevIN and patching with the positional encoding: the encoder's input [B, P, N, L] and the
    /// per-window statistics that undo RevIN (in the caller's dispose scope).</summary>
    private (Tensor Patches, Tensor Mean, Tensor Std) Embed(Tensor series, Tensor? observedMask)
    {
        if (_inference) return EmbedTrusted(series);
        var x = ZeroFillMissing(series, observedMask);                         // [B, T, N]
        long b = x.shape[0], n = x.shape[2], p = Config.Patches, l = Config.PatchLength;
        var (normalised, mean, std) = revinlayer.Normalise(x);
        var tokens = CribPatching.ToPatches(normalised, Config.PatchLength).reshape(b, p * n, l);
        var x1 = tokens.add(enc_pos_emded.Slice(p * n, l), One).reshape(b, p, n, l);  // positional encoding over r = p·N + n
        return (x1, mean, std);
    }

    /// <summary><see cref="Embed"/> of an inference copy: the toolkit's window is finite with its missing entries
    /// already 0 (so the mask changes nothing), and the positional encoding is added in patch layout (same sums).
    /// </summary>
    private (Tensor Patches, Tensor Mean, Tensor Std) EmbedTrusted(Tensor series)
    {
        if (series.dim() != 3 || series.size(1) != Config.Lookback)
            throw new ArgumentException($"The series must have shape [batch, {Config.Lookback} (lookback), variates]; " +
                $"got [{string.Join(", ", series.shape)}].", nameof(series));
        long n = series.size(2), p = Config.Patches, l = Config.PatchLength;
        if (p * n > CribConfig.PositionalTableRows)
            throw new ArgumentException($"{p} patches × {n} variates exceed the {CribConfig.PositionalTableRows}-row " +
                "positional table; use a longer PatchLength (fewer patches) or fewer variates.", nameof(series));
        Tensor positions;
        lock (_patchPositionsLock)
        {
            // A model scores one variate count, so this is made once; the old table of another count stays alive
            // until the copy is disposed (a concurrent forward may still read it).
            if (_patchPositions is null || _patchPositions.size(1) != n)
            {
                if (_patchPositions is not null) _stalePatchPositions.Add(_patchPositions);
                // A normal tensor even under the scorer's inference mode (later forwards may run outside it).
                using var normalMode = inference_mode(false);
                using var noGrad = no_grad();
                _patchPositions = enc_pos_emded.Slice(p * n, l).reshape(p, n, l).detach().DetachFromDisposeScope();
            }
            positions = _patchPositions;
        }
        var (normalised, mean, std) = revinlayer.Normalise(series);
        var x1 = CribPatching.ToPatches(normalised, Config.PatchLength).add(positions, One);   // [B, P, N, L]
        return (x1, mean, std);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _patchPositions?.Dispose();
            foreach (var stale in _stalePatchPositions) stale.Dispose();
        }
        base.Dispose(disposing);
    }

    private CribOutput Run(Tensor series, Tensor? observedMask, bool secondView, Tensor? draws, Generator? generator)
    {
        using var scope = NewDisposeScope();
        var (x1, mean, std) = Embed(series, observedMask);
        var (e1, posteriorMean, posteriorVariance) = encoder.call(x1);
        var kl = CribInformationBottleneck.KlToStandardNormal(posteriorMean, posteriorVariance);
        var forecast = revinlayer.Denormalise(predictor.call(e1), mean, std);
        Tensor? e2 = null, m = null, s = null;
        if (secondView)
        {
            m = x1.mean().detach();
            s = x1.std().detach();
            Tensor eps;
            if (draws is not null)
            {
                if (!draws.shape.SequenceEqual(x1.shape))
                    throw new ArgumentException($"The injected second-view draws must have the patch shape [{string.Join(", ", x1.shape)}] ([batch, patches, variates, patch length]); got [{string.Join(", ", draws.shape)}].", nameof(draws));
                eps = draws.to(x1.dtype, x1.device);
            }
            else eps = randn(x1.shape, dtype: x1.dtype, device: x1.device, generator: generator);
            var x2 = x1.add(m.add(s * eps, One).mul(Of(Config.SecondViewNoiseScale)), One);
            e2 = encoder.call(x2).Tokens.MoveToOuterDisposeScope();
            m.MoveToOuterDisposeScope();
            s.MoveToOuterDisposeScope();
        }
        return new CribOutput(forecast.MoveToOuterDisposeScope(), e1.MoveToOuterDisposeScope(), posteriorMean.MoveToOuterDisposeScope(),
            posteriorVariance.MoveToOuterDisposeScope(), kl.MoveToOuterDisposeScope(), mean.MoveToOuterDisposeScope(), std.MoveToOuterDisposeScope(), e2, m, s);
    }

    /// <summary>Validates shapes and the mask; returns the series with missing entries set to 0.</summary>
    private Tensor ZeroFillMissing(Tensor series, Tensor? observedMask)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.dim() != 3 || series.shape[1] != Config.Lookback || series.shape[0] < 1 || series.shape[2] < 1)
            throw new ArgumentException($"The series must have shape [batch, {Config.Lookback} (lookback), variates]; got [{string.Join(", ", series.shape)}]. " +
                $"Patched input [B, P, N, L] can be converted with CribPatching.ToSeries.", nameof(series));
        if (!series.is_floating_point())
            throw new ArgumentException($"The series must be a floating-point tensor; got {series.dtype}. Convert it with .to(float32).", nameof(series));
        long tokens = (long)Config.Patches * series.shape[2];
        if (tokens > CribConfig.PositionalTableRows)
            throw new ArgumentException($"{Config.Patches} patches × {series.shape[2]} variates = {tokens} tokens exceed the reference's {CribConfig.PositionalTableRows}-row positional table; use a longer PatchLength (fewer patches) or fewer variates.", nameof(series));
        using var scope = NewDisposeScope();
        var finite = series.isfinite();
        if (observedMask is null)
        {
            if (!finite.all().item<bool>())
                throw new ArgumentException("The series contains NaN or infinite values but no observedMask was given; pass an observedMask with 0 at the missing positions (1 = observed).", nameof(series));
            return series.alias().MoveToOuterDisposeScope();
        }
        if (!observedMask.shape.SequenceEqual(series.shape))
            throw new ArgumentException($"The observedMask must have the series' shape [{string.Join(", ", series.shape)}] (1 = observed, 0 = missing); got [{string.Join(", ", observedMask.shape)}].", nameof(observedMask));
        Tensor observed;
        if (observedMask.dtype == ScalarType.Bool) observed = observedMask;
        else
        {
            if (!(observedMask.eq(Zero) | observedMask.eq(One)).all().item<bool>())
                throw new ArgumentException("The observedMask must contain only 0 (missing) and 1 (observed); binarise it first (e.g. mask.gt(0.5)).", nameof(observedMask));
            observed = observedMask.ne(Zero);
        }
        observed = observed.to(series.device);
        if ((observed & finite.logical_not()).any().item<bool>())
            throw new ArgumentException("The series contains NaN or infinite values at observed positions (observedMask = 1); set the mask to 0 there or fill those values.", nameof(series));
        return series.masked_fill(observed.logical_not(), Of(0.0)).MoveToOuterDisposeScope();
    }
}
