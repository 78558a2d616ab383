using Microsoft.ML.Data;

namespace MLNet.Attention.Interop;

/// <summary>
/// The managed array behind a dense <see cref="VBuffer{T}"/> (its private <c>_values</c>, which ML.NET exposes only
/// as a span). A bag of 100,000 × 1024 floats is 400 MB: with the array, libtorch reads the bag where the getter
/// wrote it (a pinned alias, <c>torch.frombuffer</c>) instead of a second copy. Compiled against the publicized
/// Microsoft.ML.DataView (src/Core/Interop/README.md); pinned to Microsoft.ML 5.0.1 by VBufferArraysTests.
/// </summary>
internal static class VBufferArrays
{
    /// <summary>The array holding <paramref name="buffer"/>'s values from index 0 (it may be longer than the
    /// buffer), or null for a sparse or empty buffer.</summary>
    public static float[]? DenseValues(in VBuffer<float> buffer) =>
        buffer.IsDense && buffer.Length > 0 ? buffer._values : null;
}
