using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Data;

/// <summary>Builds the padded tensors of a batch of bags (<see cref="TorchColumnKind.Bag"/>): instances
/// <c>[B, N_max, D]</c> (zeros after each bag's N instances) and the mask <c>[B, N_max]</c> (true = real instance).
/// Training and scoring both use it, so they cannot disagree on the layout.</summary>
internal static class BagTensors
{
    public static (Tensor Instances, Tensor Mask) Pad(float[]?[] bags, int[] lengths, int count, int instanceSize)
    {
        int longest = 1;
        for (int b = 0; b < count; b++) longest = Math.Max(longest, lengths[b]);
        var instances = zeros(new long[] { count, longest, instanceSize }, ScalarType.Float32);
        var values = instances.data<float>();
        long stride = (long)longest * instanceSize;
        for (int b = 0; b < count; b++)
        {
            int n = lengths[b] * instanceSize;
            values.CopyFrom(new ReadOnlySpan<float>(bags[b], 0, n), 0, b * stride);
        }
        var flags = new bool[count * longest];
        for (int b = 0; b < count; b++) flags.AsSpan(b * longest, lengths[b]).Fill(true);
        var mask = tensor(flags, new long[] { count, longest });
        return (instances, mask);
    }
}
