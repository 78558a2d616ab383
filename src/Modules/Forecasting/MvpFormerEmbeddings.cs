using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// The learned positional and channel tables that MVPFormer shares across all its layers (<c>Embedding(T_max, d)</c> and
/// <c>Embedding(C_max, d)</c>, both ~ N(0, 0.02²)): for a token grid [B, T, C, d] it hands out rows 0..T−1 and
/// 0..C−1 as [1, T, d] and [1, C, d], the relative-key inputs of <see cref="MultiVariateParallelAttention"/> and
/// <see cref="MvpFormerBlock"/>. There is no additive positional embedding on the tokens: time and channel enter only
/// through MVPA's relative terms.
/// </summary>
/// <remarks>
/// The parameters are named as the reference model's tables (<c>positional_embedding.weight</c>,
/// <c>channel_embedding.weight</c> of <c>MVPFormerModel</c>), so those checkpoint entries map by name. Rows are anchored at the current
/// T and C, so changing T or C changes which learned row encodes a given distance (the reference's convention).
/// </remarks>
public sealed class MvpFormerEmbeddings : nn.Module<Tensor, (Tensor Positions, Tensor Channels)>
{
    private readonly Embedding positional_embedding, channel_embedding;

    /// <param name="modelWidth">Token width d.</param>
    /// <param name="maxSegments">Rows of the positional table T_max (110 in the reference); inputs need T ≤ T_max.</param>
    /// <param name="maxChannels">Rows of the channel table C_max (128 in the reference); inputs need C ≤ C_max.</param>
    public MvpFormerEmbeddings(int modelWidth, int maxSegments = 110, int maxChannels = 128) : base(nameof(MvpFormerEmbeddings))
    {
        if (modelWidth < 1) throw new ArgumentOutOfRangeException(nameof(modelWidth), modelWidth, "The model width must be positive.");
        if (maxSegments < 1) throw new ArgumentOutOfRangeException(nameof(maxSegments), maxSegments, "The positional table needs at least one row (the reference uses 110).");
        if (maxChannels < 1) throw new ArgumentOutOfRangeException(nameof(maxChannels), maxChannels, "The channel table needs at least one row (the reference uses 128).");
        MaxSegments = maxSegments;
        MaxChannels = maxChannels;
        positional_embedding = nn.Embedding(maxSegments, modelWidth);
        channel_embedding = nn.Embedding(maxChannels, modelWidth);
        RegisterComponents();
        using (no_grad())
            foreach (var p in parameters()) nn.init.normal_(p, 0.0, 0.02);
    }

    /// <summary>Rows of the positional table (T_max).</summary>
    public int MaxSegments { get; }
    /// <summary>Rows of the channel table (C_max).</summary>
    public int MaxChannels { get; }

    /// <summary>Number of parameters: (T_max + C_max) · d.</summary>
    public static long ParameterCount(int modelWidth, int maxSegments = 110, int maxChannels = 128) => (long)(maxSegments + maxChannels) * modelWidth;

    /// <summary>Positional rows 0..segments−1 as [1, segments, d].</summary>
    public Tensor Positions(long segments)
    {
        if (segments < 1 || segments > MaxSegments)
            throw new ArgumentOutOfRangeException(nameof(segments), segments, $"The input has {segments} segments but the positional table has {MaxSegments} rows (T_max). Use at most {MaxSegments} segments or build the embeddings with a larger maxSegments.");
        return positional_embedding.weight![..(int)segments].unsqueeze(0);
    }

    /// <summary>Channel rows 0..channels−1 as [1, channels, d].</summary>
    public Tensor Channels(long channels)
    {
        if (channels < 1 || channels > MaxChannels)
            throw new ArgumentOutOfRangeException(nameof(channels), channels, $"The input has {channels} channels but the channel table has {MaxChannels} rows (C_max). Use at most {MaxChannels} channels or build the embeddings with a larger maxChannels.");
        return channel_embedding.weight![..(int)channels].unsqueeze(0);
    }

    /// <summary>For a token grid x [B, T, C, d]: (positional rows [1, T, d], channel rows [1, C, d]).</summary>
    public override (Tensor Positions, Tensor Channels) forward(Tensor x)
    {
        if (x.dim() != 4)
            throw new ArgumentException($"The input must be a token grid [batch, segments T, channels C, width]; got [{string.Join(", ", x.shape)}].", nameof(x));
        return (Positions(x.shape[1]), Channels(x.shape[2]));
    }
}
