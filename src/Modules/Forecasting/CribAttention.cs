using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// CRIB's unified-variate self-attention over all P·N (patch, variate) tokens, reproducing two quirks of the reference:
/// <list type="bullet">
/// <item><b>Q = K = V</b>: queries, keys and values all use <c>query_projection</c>. <c>key_projection</c> and
/// <c>value_projection</c> are created (and counted) but unused, so checkpoints map 1:1, unless
/// <c>separateKeyValueProjections</c> is set.</item>
/// <item><b>Scrambled head merge</b>: the reference permutes the per-head output <c>O[B, T, H, E]</c> to [B, H, T, E]
/// before reshaping to [B, T, H·E], so row l of the merged tensor is not token l's heads; with <c>q = l·H·E + k</c>,
/// <c>merged[b, l, k] = O[b, (q mod T·E) / E, q / (T·E), q mod E]</c>. <c>standardHeadMerge</c> uses the usual merge.</item>
/// </list>
/// Heads own contiguous channel blocks; scores scaled by 1/√(D/H); full softmax (no mask); dropout on the weights.
/// </summary>
public sealed class CribAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear query_projection, key_projection, value_projection, out_projection;
    private readonly int _heads;
    private readonly double _dropout;
    private readonly bool _separateKeyValue, _standardMerge;

    /// <param name="modelWidth">Token width D.</param>
    /// <param name="heads">Heads H; must divide D.</param>
    /// <param name="dropout">Dropout on the attention weights (training only).</param>
    /// <param name="separateKeyValueProjections">Use the key/value projections (deviation from the reference).</param>
    /// <param name="standardHeadMerge">Per-token head concatenation (deviation from the reference).</param>
    public CribAttention(int modelWidth, int heads, double dropout = 0.0, bool separateKeyValueProjections = false, bool standardHeadMerge = false)
        : base(nameof(CribAttention))
    {
        if (modelWidth < 1) throw new ArgumentOutOfRangeException(nameof(modelWidth), modelWidth, "The model width must be positive.");
        if (heads < 1 || modelWidth % heads != 0)
            throw new ArgumentException($"heads = {heads} must be positive and divide the model width {modelWidth}. Choose heads among the divisors of {modelWidth} or change the width.", nameof(heads));
        if (dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "Dropout must be in [0, 1).");
        _heads = heads;
        _dropout = dropout;
        _separateKeyValue = separateKeyValueProjections;
        _standardMerge = standardHeadMerge;
        query_projection = nn.Linear(modelWidth, modelWidth);
        key_projection = nn.Linear(modelWidth, modelWidth);
        value_projection = nn.Linear(modelWidth, modelWidth);
        out_projection = nn.Linear(modelWidth, modelWidth);
        RegisterComponents();
    }

    /// <summary>Heads H (for the ONNX exporter).</summary>
    internal int Heads => _heads;

    /// <summary>Whether keys and values have their own projections (else both are the queries).</summary>
    internal bool SeparateKeyValue => _separateKeyValue;

    /// <summary>Whether heads merge as [B, T, H, E] (else the reference's flat [B, H, T, E] read as [B, T, D]).</summary>
    internal bool StandardMerge => _standardMerge;

    /// <summary>x: [B, T, D] → [B, T, D].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1], d = x.shape[2], e = d / _heads;
        var q = query_projection.call(x).view(b, t, _heads, e).transpose(1, 2);        // [B, H, T, E]
        var k = _separateKeyValue ? key_projection.call(x).view(b, t, _heads, e).transpose(1, 2) : q;
        var v = _separateKeyValue ? value_projection.call(x).view(b, t, _heads, e).transpose(1, 2) : q;
        var o = nn.functional.scaled_dot_product_attention(q, k, v, p: training ? _dropout : 0.0); // [B, H, T, E]
        // Reference: O[B,T,H,E].permute(0,2,1,3).reshape(B,T,D) — the flat [B,H,T,E] layout read as [B,T,D].
        var merged = _standardMerge ? o.transpose(1, 2).reshape(b, t, d) : o.reshape(b, t, d);
        return out_projection.call(merged).MoveToOuterDisposeScope();
    }
}
