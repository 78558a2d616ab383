using MLNet.Attention.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>Hyper-parameters of <see cref="MultiVariateParallelTransformerNetwork"/>.</summary>
/// <param name="Lookback">Input window length L; a multiple of <paramref name="PatchLength"/>.</param>
/// <param name="Horizon">Forecast length S.</param>
/// <param name="Variates">Series variates N (each gets its own linear head).</param>
/// <param name="Covariates">Calendar covariates M, read as extra channels (not forecast); 0 for none.</param>
/// <param name="PatchLength">Time steps per segment P; the token grid has T = L / P segments.</param>
/// <param name="ModelWidth">Token width d.</param>
/// <param name="Heads">Query heads H (divides d).</param>
/// <param name="KeyValueHeads">Key/value heads H_kv (divides H; grouped-query attention).</param>
/// <param name="Layers">MVPFormer blocks.</param>
/// <param name="InnerWidth">SwiGLU inner width of each block.</param>
/// <param name="Window">MVPA content window in segments (10 in the reference).</param>
/// <param name="MaxSegments">Rows of the positional table T_max (110 in the reference); T ≤ T_max.</param>
/// <param name="MaxChannels">Rows of the channel table C_max (128 in the reference); N + M ≤ C_max.</param>
/// <param name="Dropout">Dropout on the tokens, the attention probabilities and the attention output.</param>
/// <param name="UseNorm">Per-window normalisation over the observed entries of each variate (as iTransformer's).</param>
public sealed record MultiVariateParallelTransformerConfig(
    int Lookback = 96, int Horizon = 96, int Variates = 7, int Covariates = 0, int PatchLength = 16, int ModelWidth = 128,
    int Heads = 8, int KeyValueHeads = 4, int Layers = 2, int InnerWidth = 256, int Window = 10, int MaxSegments = 110,
    int MaxChannels = 128, double Dropout = 0.1, bool UseNorm = true)
{
    /// <summary>Segments T = L / P of the token grid.</summary>
    public int Segments => Lookback / PatchLength;

    /// <summary>Throws, naming the option and the fix, when the sizes are inconsistent.</summary>
    public void Validate()
    {
        if (Lookback < 1) throw new ArgumentOutOfRangeException(nameof(Lookback), Lookback, "The lookback must be at least 1 step.");
        if (Horizon < 1) throw new ArgumentOutOfRangeException(nameof(Horizon), Horizon, "The horizon must be at least 1 step.");
        if (Variates < 1) throw new ArgumentOutOfRangeException(nameof(Variates), Variates, "At least one variate is needed.");
        if (Covariates < 0) throw new ArgumentOutOfRangeException(nameof(Covariates), Covariates, "Covariates cannot be negative.");
        if (PatchLength < 1 || Lookback % PatchLength != 0)
            throw new ArgumentException($"PatchLength = {PatchLength} must be positive and divide Lookback = {Lookback} " +
                "(the window is cut into Lookback / PatchLength segments). Choose a divisor of the lookback.", nameof(PatchLength));
        if (MaxSegments < 1 || Segments > MaxSegments)
            throw new ArgumentException($"Lookback / PatchLength = {Segments} segments exceed MaxSegments = {MaxSegments} " +
                "(rows of the positional table). Use a longer PatchLength or a larger MaxSegments.", nameof(MaxSegments));
        if (MaxChannels < 1 || Variates + Covariates > MaxChannels)
            throw new ArgumentException($"{Variates} variates + {Covariates} calendar covariates = {Variates + Covariates} " +
                $"channels exceed MaxChannels = {MaxChannels} (rows of the channel table). Raise MaxChannels or forecast " +
                "fewer variates.", nameof(MaxChannels));
        MultiVariateParallelAttention.Validate(ModelWidth, Heads, KeyValueHeads);
        if (Layers < 1) throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "At least one layer is needed.");
        if (InnerWidth < 1) throw new ArgumentOutOfRangeException(nameof(InnerWidth), InnerWidth, "The inner width must be positive.");
        if (Window < 0) throw new ArgumentOutOfRangeException(nameof(Window), Window, "The content window must be 0 or more segments.");
        if (Dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
    }
}

/// <summary>
/// An MVPA-inspired forecaster (spec mvpa.md §7; not from the paper's code, which has no forecasting model): the
/// window is cut into T = L / P segments per channel, each (segment, channel) patch — its values and its observed
/// mask — is embedded linearly into a token, a stack of <see cref="MvpFormerBlock"/>s attends causally in time and
/// fully across channels (MVPA's relative time and channel terms; calendar covariates are extra channels), and each
/// variate is forecast from its last-segment token by its own linear head.
/// </summary>
/// <remarks>
/// Missing values: the toolkit zero-fills them after scaling and passes the observed mask; the per-window
/// normalisation uses observed entries only, and the mask is part of each patch's embedding input, so a missing value
/// is never mistaken for a zero.
/// </remarks>
public sealed class MultiVariateParallelTransformerNetwork : nn.Module<Tensor, Tensor?, Tensor?, Tensor>, IForecastingNetwork
{
    private readonly Linear patch_embedding;
    private readonly MvpFormerEmbeddings embeddings;
    private readonly ModuleList<MvpFormerBlock> blocks;
    private readonly RmsNorm ln_f;
    private readonly Dropout token_dropout;
    private readonly Parameter head_weight, head_bias;

    /// <param name="config">Hyper-parameters; validated here.</param>
    public MultiVariateParallelTransformerNetwork(MultiVariateParallelTransformerConfig config)
        : base(nameof(MultiVariateParallelTransformerNetwork))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        int d = config.ModelWidth;
        patch_embedding = nn.Linear(2 * config.PatchLength, d);
        embeddings = new MvpFormerEmbeddings(d, config.MaxSegments, config.MaxChannels);
        blocks = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(_ => new MvpFormerBlock(d, config.Heads,
            config.KeyValueHeads, config.InnerWidth, config.Window, globalAttention: true, config.Dropout, config.Dropout)).ToArray());
        ln_f = new RmsNorm(d);
        token_dropout = nn.Dropout(config.Dropout);
        // One linear head per variate: [N, S, d] weights, as nn.Linear's default initialisation per head.
        double bound = 1.0 / Math.Sqrt(d);
        head_weight = new Parameter(empty(config.Variates, config.Horizon, d));
        head_bias = new Parameter(empty(config.Variates, config.Horizon));
        using (no_grad())
        {
            nn.init.uniform_(head_weight, -bound, bound);
            nn.init.uniform_(head_bias, -bound, bound);
        }
        RegisterComponents();
    }

    /// <summary>The hyper-parameters this network was built with.</summary>
    public MultiVariateParallelTransformerConfig Config { get; }

    /// <inheritdoc/>
    public int Lookback => Config.Lookback;

    /// <inheritdoc/>
    public int Horizon => Config.Horizon;

    /// <inheritdoc/>
    public Tensor ForecastScaled(Tensor windows, Tensor? covariates, Tensor? observedMask) => call(windows, covariates, observedMask);

    /// <summary>
    /// Forecasts from <paramref name="series"/> [B, L, N] (missing entries any finite value), optional calendar
    /// <paramref name="covariates"/> [B, L, M] and optional <paramref name="observedMask"/> [B, L, N] (1 = observed;
    /// null = all observed). Returns [B, S, N].
    /// </summary>
    public override Tensor forward(Tensor series, Tensor? covariates, Tensor? observedMask)
    {
        var c = Config;
        if (series.dim() != 3 || series.size(1) != c.Lookback || series.size(2) != c.Variates)
            throw new ArgumentException($"The series must have shape [batch, {c.Lookback} (lookback), {c.Variates} " +
                $"(variates)]; got [{string.Join(", ", series.shape)}].", nameof(series));
        if (c.Covariates > 0 && (covariates is null || covariates.dim() != 3 || covariates.size(0) != series.size(0)
                                 || covariates.size(1) != c.Lookback || covariates.size(2) != c.Covariates))
            throw new ArgumentException($"The network was built for {c.Covariates} covariates: pass them as [batch, " +
                $"{c.Lookback}, {c.Covariates}]; got {(covariates is null ? "none" : $"[{string.Join(", ", covariates.shape)}]")}.",
                nameof(covariates));
        using var scope = NewDisposeScope();
        long b = series.size(0), l = c.Lookback, n = c.Variates, p = c.PatchLength, t = c.Segments;
        var mask = observedMask?.to(series.dtype) ?? ones_like(series);
        var x = series.mul(mask);
        Tensor mean = null!, std = null!;
        if (c.UseNorm)
        {
            // Statistics over observed entries only (a missing value is not a zero); μ detached as in iTransformer.
            var count = mask.sum(1, keepdim: true).clamp_min(One);
            mean = x.sum(1, keepdim: true).div(count).detach();
            var centred = x.sub(mean).mul(mask);
            std = centred.pow(Of(2L)).sum(1, keepdim: true).div(count).add(Of(1e-5), One).sqrt();
            x = centred.div(std);
        }
        if (c.Covariates > 0)
        {
            x = cat(new[] { x, covariates!.to(x.dtype) }, 2);
            mask = cat(new[] { mask, ones(b, l, c.Covariates, dtype: mask.dtype, device: mask.device) }, 2);
        }
        long channels = n + c.Covariates;
        // [B, L, C] → [B, T, C, P]: segment t holds steps t·P … t·P + P − 1 of each channel.
        var values = x.reshape(b, t, p, channels).permute(0, 1, 3, 2);
        var observed = mask.reshape(b, t, p, channels).permute(0, 1, 3, 2);
        var h = token_dropout.call(patch_embedding.call(cat(new[] { values, observed }, 3)));   // [B, T, C, d]
        var (positions, channelRows) = embeddings.call(h);
        foreach (var block in blocks) h = block.call(h, positions, channelRows);
        h = ln_f.call(h);
        var last = h.select(1, t - 1).narrow(1, 0, n);                                        // [B, N, d]
        var y = einsum("bnd,nsd->bsn", last, head_weight).add(head_bias.t().unsqueeze(0), One); // [B, S, N]
        if (c.UseNorm) y = y.mul(std).add(mean, One);
        return y.MoveToOuterDisposeScope();
    }
}
