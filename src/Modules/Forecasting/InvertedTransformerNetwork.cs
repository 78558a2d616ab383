using MLNet.Attention.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>Hyper-parameters of <see cref="InvertedTransformerNetwork"/> (names follow the iTransformer paper's scripts).</summary>
/// <param name="Lookback">Input window length L (seq_len).</param>
/// <param name="Horizon">Forecast length S (pred_len).</param>
/// <param name="ModelWidth">Token width D (d_model).</param>
/// <param name="Heads">Attention heads H (n_heads); must divide D.</param>
/// <param name="Layers">Encoder layers E (e_layers).</param>
/// <param name="FeedForwardWidth">Feed-forward width (d_ff).</param>
/// <param name="Dropout">Dropout probability everywhere (embedding, attention, residuals, feed-forward).</param>
/// <param name="UseNorm">Per-window, per-variate normalisation (RevIN without affine) and its inverse.</param>
/// <param name="Activation">"gelu" (default, exact erf) or "relu".</param>
/// <param name="FutureCovariates">Known-future covariates F: each is one token embedded from its lookback and horizon
/// values (L + S → D); 0 (default) for none.</param>
public sealed record InvertedTransformerConfig(
    int Lookback, int Horizon, int ModelWidth = 512, int Heads = 8, int Layers = 2, int FeedForwardWidth = 2048,
    double Dropout = 0.1, bool UseNorm = true, string Activation = "gelu", int FutureCovariates = 0)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value and what to change.</summary>
    public void Validate()
    {
        if (Lookback < 1) throw new ArgumentOutOfRangeException(nameof(Lookback), Lookback, "The lookback must be at least 1 step.");
        if (Horizon < 1) throw new ArgumentOutOfRangeException(nameof(Horizon), Horizon, "The horizon must be at least 1 step.");
        if (ModelWidth < 1) throw new ArgumentOutOfRangeException(nameof(ModelWidth), ModelWidth, "ModelWidth must be positive.");
        if (Heads < 1 || ModelWidth % Heads != 0)
            throw new ArgumentException($"Heads = {Heads} must be positive and divide ModelWidth = {ModelWidth}. Choose Heads among the divisors of {ModelWidth}.", nameof(Heads));
        if (Layers < 1) throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "At least one encoder layer is needed.");
        if (FeedForwardWidth < 1) throw new ArgumentOutOfRangeException(nameof(FeedForwardWidth), FeedForwardWidth, "FeedForwardWidth must be positive.");
        if (Dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
        if (Activation is not ("gelu" or "relu")) throw new ArgumentException($"Unknown activation '{Activation}'; use \"gelu\" or \"relu\".", nameof(Activation));
        if (FutureCovariates < 0)
            throw new ArgumentOutOfRangeException(nameof(FutureCovariates), FutureCovariates, "FutureCovariates must be 0 or more.");
    }

    /// <summary>Number of trainable parameters (independent of the number of variates).</summary>
    public long ParameterCount =>
        (long)Lookback * ModelWidth + ModelWidth
        + (long)Layers * (4L * ((long)ModelWidth * ModelWidth + ModelWidth) + ((long)ModelWidth * FeedForwardWidth + FeedForwardWidth)
                          + ((long)FeedForwardWidth * ModelWidth + ModelWidth) + 4L * ModelWidth)
        + 2L * ModelWidth + ((long)ModelWidth * Horizon + Horizon)
        + (FutureCovariates > 0 ? ((long)Lookback + Horizon) * ModelWidth + ModelWidth : 0);
}

/// <summary>
/// iTransformer (Liu et al., ICLR 2024): every variate's whole lookback window is one token; self-attention runs
/// across variates, the feed-forward network along time, and a linear head maps each token to its forecast.
/// Optional calendar covariates enter as extra (un-normalised) tokens whose outputs are dropped; past covariates are
/// extra variate tokens (the authors' suggestion for exogenous series) and known-future covariates tokens embedded from
/// their lookback and horizon values, their outputs dropped too.
/// </summary>
public sealed class InvertedTransformerNetwork : nn.Module<Tensor, Tensor?, Tensor>, IFutureCovariateForecastingNetwork,
    IInferenceCopyForecastingNetwork
{
    // Field names reproduce the reference state-dict keys (enc_embedding.value_embedding.weight, encoder.attn_layers.0...).
    private readonly InvertedEmbedding enc_embedding;
    private readonly InvertedEmbedding? future_embedding;
    private readonly Encoder encoder;
    private readonly Linear projector;
    // Set on inference copies only (CreateInferenceCopy): fused attention projections and fewer ops around RevIN.
    private bool _inference;

    /// <summary>The hyper-parameters this network was built with.</summary>
    public InvertedTransformerConfig Config { get; }

    /// <summary>Builds the network; <paramref name="config"/> is validated first (<see cref="InvertedTransformerConfig.Validate"/>).</summary>
    public InvertedTransformerNetwork(InvertedTransformerConfig config) : base(nameof(InvertedTransformerNetwork))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        enc_embedding = new InvertedEmbedding(config.Lookback, config.ModelWidth, config.Dropout);
        if (config.FutureCovariates > 0)
            future_embedding = new InvertedEmbedding(config.Lookback + config.Horizon, config.ModelWidth, config.Dropout);
        encoder = new Encoder(config);
        projector = nn.Linear(config.ModelWidth, config.Horizon);
        RegisterComponents();
    }

    /// <summary>
    /// Forecasts from <paramref name="series"/> [B, L, N] and optional covariates <paramref name="covariates"/>
    /// [B, L, M] (e.g. calendar features); returns [B, S, N].
    /// </summary>
    public override Tensor forward(Tensor series, Tensor? covariates) => Run(series, covariates, null);

    /// <inheritdoc/>
    public int Lookback => Config.Lookback;

    /// <inheritdoc/>
    public int Horizon => Config.Horizon;

    /// <summary>The toolkit's forward: the iTransformer has no notion of a missing input, so it reads the zero-filled
    /// window and ignores the mask.</summary>
    public Tensor ForecastScaled(Tensor windows, Tensor? covariates, Tensor? observedMask) => call(windows, covariates);

    /// <inheritdoc/>
    public int FutureCovariates => Config.FutureCovariates;

    /// <summary>The toolkit's forward with known-future covariates: the last <see cref="FutureCovariates"/> channels of
    /// <paramref name="windows"/> are their lookback values, <paramref name="futureCovariates"/> [B, S, F] their horizon
    /// values; returns [B, S, C − F].</summary>
    public Tensor ForecastScaled(Tensor windows, Tensor? covariates, Tensor? observedMask, Tensor futureCovariates) =>
        Run(windows, covariates, null, futureCovariates);

    /// <summary>The scoring copy: each attention's query/key/value projections fused into one GEMM, and RevIN and its
    /// inverse in fewer ops (var_mean, addcmul). Same forecasts within float rounding; at batch 1 dispatch, not
    /// arithmetic, is most of a forward.</summary>
    IForecastingNetwork IInferenceCopyForecastingNetwork.CreateInferenceCopy(Device device) =>
        CreateInferenceCopy(device);

    /// <inheritdoc cref="IInferenceCopyForecastingNetwork.CreateInferenceCopy"/>
    internal InvertedTransformerNetwork CreateInferenceCopy(Device device) =>
        InferenceCopies.Create(this, () => new InvertedTransformerNetwork(Config), device, copy =>
        {
            foreach (var attention in copy.modules().OfType<MultiHeadSelfAttention>()) attention.FuseProjections();
            copy._inference = true;
        });

    /// <summary>Forward pass that also hands the token embeddings and the encoder output to <paramref name="observe"/> (for parity tests).</summary>
    internal Tensor Run(Tensor series, Tensor? covariates, Action<string, Tensor>? observe, Tensor? future = null)
    {
        CheckShapes(series, covariates);
        int f = Config.FutureCovariates;
        if (f > 0 && (future is null || future.dim() != 3 || future.size(0) != series.size(0)
                      || future.size(1) != Config.Horizon || future.size(2) != f || series.size(2) <= f))
            throw new ArgumentException($"This network reads {f} known-future covariates: the window needs more than {f} " +
                $"channels and the future covariates shape [{series.size(0)} (batch), {Config.Horizon} (horizon), {f}]; got " +
                (future is null ? "none" : $"[{string.Join(", ", future.shape)}]") + ".", nameof(future));
        using var scope = NewDisposeScope();
        long variates = series.size(2) - f;
        Tensor x = series, mean = null!, std = null!, ahead = future!;
        if (Config.UseNorm && _inference)
        {
            // No gradient here: one var_mean instead of mean + var of the centred series (equal within rounding).
            (std, mean) = series.var_mean(1, unbiased: false, keepdim: true);
            std = std.add(Of(1e-5), One).sqrt();
            x = series.sub(mean).div(std);
            if (f > 0) ahead = future!.sub(mean.narrow(2, variates, f)).div(std.narrow(2, variates, f));
        }
        else if (Config.UseNorm)
        {
            // μ is a constant (detached); σ keeps its gradient, as in the reference.
            mean = series.mean(new long[] { 1 }, keepdim: true).detach();
            var centred = series - mean;
            std = centred.var(1, unbiased: false, keepdim: true).add(Of(1e-5), One).sqrt();
            x = centred / std;
            // The future covariates' horizon values are normalised with their own lookback's statistics.
            if (f > 0) ahead = future!.sub(mean.narrow(2, variates, f)).div(std.narrow(2, variates, f));
        }
        var tokens = x.transpose(1, 2);                                       // [B, C, L]
        if (f > 0) tokens = tokens.narrow(1, 0, variates);                    // [B, N + P, L]
        if (covariates is not null) tokens = cat(new[] { tokens, covariates.transpose(1, 2) }, 1); // [B, N+P+M, L]
        var embedded = enc_embedding.call(tokens);                           // [B, N', D]
        if (f > 0)
        {
            // Known-future tokens: lookback and horizon values of each future covariate, embedded together.
            var futureTokens = cat(new[] { x.narrow(2, variates, f), ahead }, 1).transpose(1, 2);   // [B, F, L + S]
            var futureEmbedded = future_embedding!.call(futureTokens);
            embedded = cat(new[] { embedded.narrow(1, 0, variates), futureEmbedded,
                embedded.narrow(1, variates, embedded.size(1) - variates) }, 1);
        }
        observe?.Invoke("embedding", embedded);
        var h = encoder.call(embedded);
        observe?.Invoke("encoder", h);
        var y = projector.call(h).transpose(1, 2);                            // [B, S, N + …]
        if (!_inference || y.size(2) != variates) y = y.narrow(2, 0, variates);   // drop covariate tokens
        if (Config.UseNorm && _inference)
            y = f > 0 ? y.mul(std.narrow(2, 0, variates)).add(mean.narrow(2, 0, variates), One)
                : mean.addcmul(y, std, One);
        else if (Config.UseNorm)
            y = f > 0 ? y.mul(std.narrow(2, 0, variates)).add(mean.narrow(2, 0, variates), One) : (y * std).add(mean, One);
        return y.MoveToOuterDisposeScope();
    }

    private void CheckShapes(Tensor series, Tensor? covariates)
    {
        if (series.dim() != 3 || series.size(1) != Config.Lookback)
            throw new ArgumentException($"The series must have shape [batch, {Config.Lookback} (lookback), variates]; got [{string.Join(", ", series.shape)}].", nameof(series));
        if (covariates is null) return;
        if (covariates.dim() != 3 || covariates.size(0) != series.size(0) || covariates.size(1) != Config.Lookback)
            throw new ArgumentException($"The covariates must have shape [{series.shape[0]} (batch), {Config.Lookback} (lookback), features]; got [{string.Join(", ", covariates.shape)}].", nameof(covariates));
    }

    private sealed class InvertedEmbedding : nn.Module<Tensor, Tensor>
    {
        private readonly Linear value_embedding;
        private readonly Dropout dropout;

        public InvertedEmbedding(int lookback, int width, double dropout) : base("DataEmbedding_inverted")
        {
            value_embedding = nn.Linear(lookback, width);
            this.dropout = nn.Dropout(dropout);
            RegisterComponents();
        }

        public override Tensor forward(Tensor tokens) =>
            training ? dropout.call(value_embedding.call(tokens)) : value_embedding.call(tokens);   // identity in evaluation
    }

    private sealed class Encoder : nn.Module<Tensor, Tensor>
    {
        private readonly ModuleList<PostNormEncoderLayer> attn_layers;
        private readonly LayerNorm norm;

        public Encoder(InvertedTransformerConfig c) : base(nameof(Encoder))
        {
            attn_layers = nn.ModuleList(Enumerable.Range(0, c.Layers)
                .Select(_ => new PostNormEncoderLayer(c.ModelWidth, c.Heads, c.FeedForwardWidth, c.Dropout, c.Activation)).ToArray());
            norm = nn.LayerNorm(c.ModelWidth, eps: 1e-5);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            foreach (var layer in attn_layers) x = layer.call(x);
            return norm.call(x);
        }
    }
}
