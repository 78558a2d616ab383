using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Layers;

/// <summary>
/// Full (unmasked) multi-head self-attention: <c>softmax(Q Kᵀ / √d_h) V</c> per head, with query/key/value/output
/// projections (Linear with bias) and dropout on the attention weights. Heads own contiguous channel blocks
/// (head h uses channels h·d_h … (h+1)·d_h − 1), as in Time-Series-Library's <c>AttentionLayer</c>.
/// </summary>
public sealed class MultiHeadSelfAttention : nn.Module<Tensor, Tensor>
{
    // Field names are the reference state-dict keys, so checkpoints map one to one.
    private readonly Linear query_projection, key_projection, value_projection, out_projection;
    private readonly int _heads;
    private readonly double _dropout;
    // Inference copies only (FuseProjections): [3D, D] and [3D], the query, key and value projections stacked.
    private Tensor? _qkvWeight, _qkvBias;

    /// <param name="modelWidth">Token width D.</param>
    /// <param name="heads">Number of heads H; must divide D.</param>
    /// <param name="dropout">Dropout probability on the attention weights (training only).</param>
    public MultiHeadSelfAttention(int modelWidth, int heads, double dropout = 0.0) : base(nameof(MultiHeadSelfAttention))
    {
        if (modelWidth < 1) throw new ArgumentOutOfRangeException(nameof(modelWidth), modelWidth, "The model width must be positive.");
        if (heads < 1 || modelWidth % heads != 0)
            throw new ArgumentException($"heads = {heads} must be positive and divide the model width {modelWidth} (head width = width / heads). Choose heads among the divisors of {modelWidth} or change the width.", nameof(heads));
        if (dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "Dropout must be in [0, 1).");
        _heads = heads;
        _dropout = dropout;
        query_projection = nn.Linear(modelWidth, modelWidth);
        key_projection = nn.Linear(modelWidth, modelWidth);
        value_projection = nn.Linear(modelWidth, modelWidth);
        out_projection = nn.Linear(modelWidth, modelWidth);
        RegisterComponents();
    }

    /// <summary>Number of heads H (for the ONNX exporter).</summary>
    internal int Heads => _heads;

    /// <summary>Stacks the query, key and value weights into one projection for an evaluation-only copy: one GEMM
    /// and 4 tensor ops instead of 3 and 9 per call (dispatch, not arithmetic, dominates small batches). The stacked
    /// weights are a snapshot: the module must not be trained afterwards (forward refuses training mode).</summary>
    internal void FuseProjections()
    {
        using var noGrad = no_grad();
        _qkvWeight?.Dispose();
        _qkvBias?.Dispose();
        _qkvWeight = cat(new[] { query_projection.weight!, key_projection.weight!, value_projection.weight! }, 0)
            .detach().DetachFromDisposeScope();
        _qkvBias = cat(new[] { query_projection.bias!, key_projection.bias!, value_projection.bias! }, 0)
            .detach().DetachFromDisposeScope();
    }

    /// <summary>x: [B, T, D] → [B, T, D].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.size(0), t = x.size(1), d = x.size(2);   // size(i): no array per call, unlike shape
        long dh = d / _heads;
        Tensor q, k, v;
        if (_qkvWeight is not null)
        {
            if (training)
                throw new InvalidOperationException("This attention is an inference copy with fused projections; " +
                    "it cannot be trained. Train the original network.");
            // [B, T, 3D] → [3, B, H, T, d_h]: heads as in the unfused path (contiguous channel blocks of each part).
            var parts = nn.functional.linear(x, _qkvWeight, _qkvBias).view(b, t, 3, _heads, dh)
                .permute(2, 0, 3, 1, 4).unbind(0);
            (q, k, v) = (parts[0], parts[1], parts[2]);
        }
        else
        {
            q = query_projection.call(x).view(b, t, _heads, dh).transpose(1, 2);
            k = key_projection.call(x).view(b, t, _heads, dh).transpose(1, 2);
            v = value_projection.call(x).view(b, t, _heads, dh).transpose(1, 2);
        }
        var o = nn.functional.scaled_dot_product_attention(q, k, v, p: training ? _dropout : 0.0);
        var merged = o.transpose(1, 2).reshape(b, t, d);
        return out_projection.call(merged).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) { _qkvWeight?.Dispose(); _qkvBias?.Dispose(); }
        base.Dispose(disposing);
    }
}
