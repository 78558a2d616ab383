using Microsoft.ML.Data;
using MLNet.Attention.Interop;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Data;

/// <summary>Builds the padded tensors of a batch of bags (<see cref="TorchColumnKind.Bag"/>): instances
/// <c>[B, N_max, D]</c> (zeros after each bag's N instances) and the mask <c>[B, N_max]</c> (true = real instance).
/// Training and scoring both use it, so they cannot disagree on the layout.</summary>
internal static class BagTensors
{
    /// <summary>The padded batch. A batch of one bag needs no padding: its tensor is the bag's own array, pinned
    /// (<c>torch.frombuffer</c>), so a 400 MB bag is not copied again; the slot's buffer must then stay untouched
    /// until the tensor is disposed (the scorer and the training loop read the next rows only after that).</summary>
    public static (Tensor Instances, Tensor Mask) Pad(VBuffer<float>[] bags, int[] lengths, int count, int instanceSize)
    {
        int longest = 1;
        for (int b = 0; b < count; b++) longest = Math.Max(longest, lengths[b]);
        Tensor instances;
        if (count == 1 && VBufferArrays.DenseValues(bags[0]) is { } array)
        {
            using var flat = frombuffer(array, ScalarType.Float32, count: (long)lengths[0] * instanceSize);
            instances = flat.view(1, lengths[0], instanceSize);
        }
        else
        {
            // Uninitialised, then each bag's values and zeros after them: one pass over the memory, not two.
            instances = empty(new long[] { count, longest, instanceSize }, ScalarType.Float32);
            long stride = (long)longest * instanceSize;
            for (int b = 0; b < count; b++)
            {
                int n = lengths[b] * instanceSize;
                TensorSpans.Write(instances, bags[b].GetValues()[..n], b * stride);
                long tail = stride - n;
                if (tail > 0) TensorSpans.Of<float>(instances, b * stride + n, (int)tail).Clear();
            }
        }
        var flags = new bool[count * longest];
        for (int b = 0; b < count; b++) flags.AsSpan(b * longest, lengths[b]).Fill(true);
        var mask = tensor(flags, new long[] { count, longest });
        return (instances, mask);
    }
}
