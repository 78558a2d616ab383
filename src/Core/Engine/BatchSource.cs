using static TorchSharp.torch;

namespace MLNet.Attention.Engine;

/// <summary>One mini-batch. Its tensors belong to the dispose scope of the training step that asked for it.</summary>
/// <param name="Inputs">Model inputs; entries may be null for optional inputs.</param>
/// <param name="Target">What the loss compares against.</param>
/// <param name="Rows">Rows in the batch.</param>
public sealed record TrainingBatch(Tensor?[] Inputs, Tensor Target, int Rows)
{
    /// <summary>1 where <see cref="Target"/> is observed, 0 where it is missing (same shape, float); null when every
    /// target is observed. Losses and metrics leave the missing entries out (forecasting with missing values).</summary>
    public Tensor? TargetMask { get; init; }
}

/// <summary>
/// Rows addressable by index, turned into batches on demand. The engine owns ordering (shuffling, drop-last);
/// a source only knows how to build the tensors of a given set of rows.
/// </summary>
public abstract class BatchSource
{
    /// <summary>Number of rows.</summary>
    public abstract int Count { get; }

    /// <summary>Builds the batch of the given row indices on <paramref name="device"/>.</summary>
    public abstract TrainingBatch CreateBatch(ReadOnlySpan<int> rows, Device device);

    /// <summary>
    /// The batches of one epoch, built lazily (each belongs to the dispose scope open when it is produced). The default
    /// visits <see cref="EpochOrder"/> through <see cref="CreateBatch"/>; streaming sources override it.
    /// </summary>
    /// <param name="batchSize">Rows per batch.</param>
    /// <param name="dropLast">Skip a final partial batch.</param>
    /// <param name="shuffle">Shuffles the order when given; null reads in order.</param>
    /// <param name="device">Device of the tensors.</param>
    public virtual IEnumerable<TrainingBatch> EpochBatches(int batchSize, bool dropLast, Random? shuffle, Device device)
    {
        var order = EpochOrder(shuffle);
        for (int start = 0; start < order.Length; start += batchSize)
        {
            int count = Math.Min(batchSize, order.Length - start);
            if (dropLast && count < batchSize) yield break;
            yield return CreateBatch(order.AsSpan(start, count), device);
        }
    }

    /// <summary>Row order for one epoch: shuffled with <paramref name="shuffle"/> when given, else in order.</summary>
    internal int[] EpochOrder(Random? shuffle)
    {
        var order = new int[Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        if (shuffle is not null)
            for (int i = order.Length - 1; i > 0; i--)
            {
                int j = shuffle.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        return order;
    }
}
