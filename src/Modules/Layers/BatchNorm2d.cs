using MLNet.Attention.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Layers;

/// <summary>
/// <c>nn.BatchNorm2d</c> with the same parameters, buffers and state-dict names (<c>weight</c>, <c>bias</c>,
/// <c>running_mean</c>, <c>running_var</c>, <c>num_batches_tracked</c>) and the same arithmetic, whose training step
/// does not create a Scalar implicitly: TorchSharp's own forward counts batches with <c>num_batches_tracked.add_(1)</c>,
/// which a garbage collection can break (see <see cref="TorchScalars"/>).
/// </summary>
public sealed class BatchNorm2d : BatchNorm
{
    /// <summary>Creates the layer as <c>nn.BatchNorm2d</c> does (PyTorch defaults: eps 1e-5, momentum 0.1, affine,
    /// running statistics tracked).</summary>
    /// <param name="features">Channels C of the [B, C, H, W] input.</param>
    /// <param name="eps">Added to the variance.</param>
    /// <param name="momentum">Weight of the new batch in the running statistics.</param>
    /// <param name="affine">Learn a per-channel scale and shift.</param>
    /// <param name="trackRunningStats">Keep running statistics for evaluation.</param>
    public BatchNorm2d(long features, double eps = 1e-5, double momentum = 0.1, bool affine = true, bool trackRunningStats = true)
        : base(features, eps, momentum, affine, trackRunningStats, null, null, nameof(BatchNorm2d))
    {
    }

    /// <inheritdoc/>
    protected override void ValidateInputDimensions(Tensor input)
    {
        if (input.ndim != 4)
            throw new ArgumentException($"BatchNorm2d expects a 4-d input [B, C, H, W]; got {input.ndim} dimensions.", nameof(input));
    }

    /// <summary>Set by <see cref="BatchNormFolding"/> once the running statistics and the affine transform live in
    /// the convolution in front: the layer then passes its input through, and refuses training.</summary>
    internal bool FoldedIntoConvolution { get; set; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        ValidateInputDimensions(input);
        if (FoldedIntoConvolution)
            return training
                ? throw new InvalidOperationException("This BatchNorm2d was folded into its convolution for inference and " +
                    "cannot train; train the original network, not its inference copy.")
                : input.alias();
        double factor = momentum ?? 0.0;
        if (training && track_running_stats && num_batches_tracked is not null)
        {
            num_batches_tracked.add_(TorchScalars.One, TorchScalars.One);
            if (momentum is null)
                factor = 1.0 / num_batches_tracked.item<long>();   // cumulative moving average, as PyTorch
        }
        bool useBatchStatistics = training || (running_mean is null && running_var is null);
        bool useRunning = !training || track_running_stats;
        return nn.functional.batch_norm(input, useRunning ? running_mean : null, useRunning ? running_var : null,
            weight, bias, useBatchStatistics, factor, eps);
    }
}
