using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Data;

/// <summary>Builds the padded tensors of a batch of bags (<see cref="TorchColumnKind.Bag"/>): instances
/// <c>[B, N_max, D]</c> (zeros after each bag's N instances) and the mask <c>[B, N_max]</c> (true = real instance).
/// Training and scoring both use it, so they cannot disagree on the layout.</summary>
internal static class BagTensors
{
    public static (Tensor Instances, Tensor Mask) Pad(VBuffer<float>[] bags, int[] lengths, int count, int instanceSize)
    {
        int longest = 1;
        for (int b = 0; b < count; b++) longest = Math.Max(longest, lengths[b]);
        // Uninitialised, then each bag's values and zeros after them: one pass over the memory, not two.
        var instances = empty(new long[] { count, longest, instanceSize }, ScalarType.Float32);
        var values = instances.data<float>();
        long stride = (long)longest * instanceSize;
        float[]? zeros = null;
        for (int b = 0; b < count; b++)
        {
            var bag = bags[b].GetValues();
            int n = lengths[b] * instanceSize;
            values.CopyFrom(bag[..n], 0, b * stride);
            long tail = stride - n;
            if (tail == 0) continue;
            if (zeros is null || zeros.Length < tail) zeros = new float[tail];
            values.CopyFrom(new ReadOnlySpan<float>(zeros, 0, (int)tail), 0, b * stride + n);
        }
        var flags = new bool[count * longest];
        for (int b = 0; b < count; b++) flags.AsSpan(b * longest, lengths[b]).Fill(true);
        var mask = tensor(flags, new long[] { count, longest });
        return (instances, mask);
    }
}
