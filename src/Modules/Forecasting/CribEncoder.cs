using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// CRIB's shared encoder, applied to both views: TCN token embedding along the patch axis (per variate, patch values
/// as channels) → unified-variate Transformer over all P·N tokens → information-bottleneck head.
/// Keys: <c>enc_embedding_1.value_embedding</c> (a Linear(D→D) the reference creates but never uses — kept so
/// checkpoints map 1:1 and the parameter count matches), <c>enc_embedding_2.net.*</c> (TCN <c>L → [64, D]</c>, kernel 3,
/// dilations 1, 2), <c>encoder.*</c>, <c>projector.0</c> / <c>projector.2</c>.
/// </summary>
public sealed class CribEncoder : nn.Module<Tensor, (Tensor Tokens, Tensor Mean, Tensor Variance)>
{
    private readonly CribValueEmbedding enc_embedding_1;
    private readonly CribTemporalConvNet enc_embedding_2;
    private readonly CribTokenEncoder encoder;
    private readonly CribInformationBottleneck projector;
    private readonly int _width;

    /// <param name="config">Network hyper-parameters.</param>
    public CribEncoder(CribConfig config) : base(nameof(CribEncoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        _width = config.ModelWidth;
        enc_embedding_1 = new CribValueEmbedding(config.ModelWidth);
        enc_embedding_2 = new CribTemporalConvNet(config.PatchLength, new[] { config.TcnHiddenChannels, config.ModelWidth }, 3, config.Dropout);
        encoder = new CribTokenEncoder(config);
        projector = new CribInformationBottleneck(config.Patches, config.ModelWidth);
        RegisterComponents();
    }

    /// <summary>
    /// x: [B, P, N, L] (normalised patches with positional encoding) → tokens [B, P·N, D] (token r = p·N + n) and the
    /// posterior's mean and variance [B, N, D].
    /// </summary>
    public override (Tensor Tokens, Tensor Mean, Tensor Variance) forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var encoded = Tokens(x);
        var (mean, variance) = projector.call(encoded);
        return (encoded.MoveToOuterDisposeScope(), mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope());
    }

    /// <summary>The encoded tokens [B, P·N, D] alone, without the information-bottleneck head (which only the KL term
    /// reads): the forecasting path.</summary>
    internal Tensor Tokens(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.size(0), p = x.size(1), n = x.size(2);
        Tensor tokens;
        if (enc_embedding_2.IsDense)
        {
            // Inference copy: the TCN as GEMMs on one row per (window, variate) holding its P patches' values.
            var rows = x.permute(0, 2, 1, 3).reshape(b * n, p * x.size(3));       // [B·N, P·L]
            var dense = enc_embedding_2.call(rows);                                // [B·N, P·D]
            tokens = dense.view(b, n, p, _width).permute(0, 2, 1, 3).reshape(b, p * n, _width);
        }
        else
        {
            var embedded = enc_embedding_2.call(x.permute(0, 3, 2, 1));             // [B, D, N, P], causal along P
            tokens = embedded.permute(0, 3, 2, 1).reshape(b, p * n, _width);       // [B, P·N, D]
        }
        return encoder.call(tokens).MoveToOuterDisposeScope();
    }

    /// <summary>Switches an evaluation-only copy's token embedding to its dense form over the patches (see
    /// <see cref="CribTemporalConvNet.UseDenseForm"/>); returns whether it did.</summary>
    internal bool UseDenseEmbedding(int patches) => enc_embedding_2.UseDenseForm(patches);

    /// <summary>The reference's unused DataEmbedding (a Linear(D→D) named <c>value_embedding</c>); never called.</summary>
    private sealed class CribValueEmbedding : nn.Module
    {
        private readonly Linear value_embedding;

        public CribValueEmbedding(int width) : base("DataEmbedding")
        {
            value_embedding = nn.Linear(width, width);
            RegisterComponents();
        }
    }
}
