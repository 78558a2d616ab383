namespace MLNet.Attention.Forecasting;

/// <summary>
/// Hyper-parameters of <see cref="CribNetwork"/> (names follow the CRIB reference's arguments: seq_len, pred_len,
/// patch_len, model_dim, heads_num, enc_num). Defaults are the reference's ETTh1 setting (L_in 24, S 24, patch 8,
/// D 32, H 4, E 3, dropout 0.1, ReLU) and its loss weights (1, 1, 1e-6).
/// </summary>
/// <param name="Lookback">Input window length L_in (seq_len); must be a multiple of <paramref name="PatchLength"/>.</param>
/// <param name="Horizon">Forecast length S (pred_len).</param>
/// <param name="PatchLength">Patch length L (patch_len); patches do not overlap (stride = patch length).</param>
/// <param name="ModelWidth">Token width D (model_dim); must be even (the reference builds a D-wide sinusoidal table and a D/2 path).</param>
/// <param name="Heads">Attention heads H (heads_num); must divide D.</param>
/// <param name="Layers">Encoder layers E (enc_num).</param>
/// <param name="Dropout">Dropout probability in the TCN, on attention weights, residual branches and the feed-forward network.</param>
/// <param name="Activation">Feed-forward activation of the encoder layers: "relu" (reference default) or "gelu".</param>
/// <param name="TcnHiddenChannels">Width of the first TCN temporal block (64, fixed in the reference).</param>
/// <param name="SeparateKeyValueProjections">
/// false (reference): queries, keys and values all use the query projection. true: standard attention with the key and
/// value projections (deviation allowed by the spec; not the reference behaviour).</param>
/// <param name="StandardHeadMerge">
/// false (reference): heads are merged with the reference's extra permute (token rows mix heads). true: the usual
/// per-token concatenation of heads (deviation; not the reference behaviour).</param>
/// <param name="PredictionWeight">Weight of the L1 forecast loss (IB_weight).</param>
/// <param name="ConsistencyWeight">Weight of the two-view MSE consistency loss (Consis_weight).</param>
/// <param name="KlWeight">Weight of the summed KL term (KL_weight).</param>
/// <param name="SecondViewNoiseScale">Scale of the second view's additive noise, x₂ = x₁ + scale·(m + s·ε) (0.01).</param>
public sealed record CribConfig(
    int Lookback = 24, int Horizon = 24, int PatchLength = 8, int ModelWidth = 32, int Heads = 4, int Layers = 3,
    double Dropout = 0.1, string Activation = "relu", int TcnHiddenChannels = 64,
    bool SeparateKeyValueProjections = false, bool StandardHeadMerge = false,
    double PredictionWeight = 1.0, double ConsistencyWeight = 1.0, double KlWeight = 1e-6, double SecondViewNoiseScale = 0.01)
{
    /// <summary>Length of the reference's sinusoidal positional tables (rows); P·N tokens may not exceed it.</summary>
    public const int PositionalTableRows = 5000;

    /// <summary>Number of patches P = Lookback / PatchLength.</summary>
    public int Patches => Lookback / PatchLength;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value and what to change.</summary>
    public void Validate()
    {
        if (Lookback < 1) throw new ArgumentOutOfRangeException(nameof(Lookback), Lookback, "The lookback must be at least 1 step.");
        if (Horizon < 1) throw new ArgumentOutOfRangeException(nameof(Horizon), Horizon, "The horizon must be at least 1 step.");
        if (PatchLength < 1) throw new ArgumentOutOfRangeException(nameof(PatchLength), PatchLength, "The patch length must be at least 1 step.");
        if (Lookback % PatchLength != 0)
            throw new ArgumentException($"Lookback = {Lookback} is not divisible by PatchLength = {PatchLength} (patches do not overlap: stride = patch length). " +
                $"Choose a lookback that is a multiple of {PatchLength} (e.g. {Math.Max(PatchLength, Lookback / PatchLength * PatchLength)}) or a patch length that divides {Lookback}.", nameof(Lookback));
        if (ModelWidth < 2 || ModelWidth % 2 != 0)
            throw new ArgumentException($"ModelWidth = {ModelWidth} must be a positive even number (the reference builds a ModelWidth-wide sinusoidal table and a ModelWidth/2 path). Use e.g. {Math.Max(2, ModelWidth + 1)}.", nameof(ModelWidth));
        if (Heads < 1 || ModelWidth % Heads != 0)
            throw new ArgumentException($"Heads = {Heads} must be positive and divide ModelWidth = {ModelWidth}. Choose Heads among the divisors of {ModelWidth} or change ModelWidth.", nameof(Heads));
        if (Layers < 1) throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "At least one encoder layer is needed; set Layers >= 1.");
        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
        if (Activation is not ("relu" or "gelu")) throw new ArgumentException($"Unknown activation '{Activation}'; use \"relu\" (reference) or \"gelu\".", nameof(Activation));
        if (TcnHiddenChannels < 1) throw new ArgumentOutOfRangeException(nameof(TcnHiddenChannels), TcnHiddenChannels, "TcnHiddenChannels must be positive (the reference uses 64).");
        foreach (var (name, value) in new[] { (nameof(PredictionWeight), PredictionWeight), (nameof(ConsistencyWeight), ConsistencyWeight), (nameof(KlWeight), KlWeight), (nameof(SecondViewNoiseScale), SecondViewNoiseScale) })
            if (!(value >= 0) || double.IsInfinity(value))
                throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite number >= 0.");
    }

    /// <summary>
    /// Number of trainable parameters, including the reference's dead modules (independent of the number of variates).
    /// Default ETTh1 setting: 81,570; ModelWidth 128: 942,642 (the spec's values).
    /// </summary>
    public long ParameterCount
    {
        get
        {
            long d = ModelWidth, p = Patches;
            long dead = (PatchLength * d + d) + (d * d + d) + Layers * 2L * (d * d + d)
                + TcnParameters(ModelWidth, new[] { ModelWidth / 2, ModelWidth / 2 })
                + (p * d / 2 * d + d) + (d * Horizon + Horizon);
            return ForwardParameterCount + dead;
        }
    }

    /// <summary>Parameters that influence the forecast, the encoder tokens or the KL term (default ETTh1 setting: 67,034).</summary>
    public long ForwardParameterCount
    {
        get
        {
            long d = ModelWidth, p = Patches;
            long layer = 2 * (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 4 * d;
            return TcnParameters(PatchLength, new[] { TcnHiddenChannels, ModelWidth })
                + Layers * layer + 2 * d
                + (p * d * d + d) + (d * 2 * d + 2 * d)          // IB head
                + (p * d * d + d) + (d * Horizon + Horizon)      // prediction head
                + 2;                                             // RevIN γ, β
        }
    }

    private static long TcnParameters(int inputs, int[] channels)
    {
        long total = 0, cin = inputs;
        foreach (long cout in channels)
        {
            total += (cout + cout + cout * cin * 3) + (cout + cout + cout * cout * 3);
            if (cin != cout) total += cout * cin + cout;
            cin = cout;
        }
        return total;
    }
}
