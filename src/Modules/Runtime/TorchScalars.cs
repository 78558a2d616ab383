using System.Collections.Concurrent;
using TorchSharp;

namespace MLNet.Attention.Runtime;

/// <summary>
/// Process-wide TorchSharp <see cref="Scalar"/> constants that live until the process ends.
/// </summary>
/// <remarks>
/// <para>Why: TorchSharp 0.107 passes a <see cref="Scalar"/> to libtorch as a raw <c>IntPtr</c> and frees the native
/// value in the Scalar's finalizer. A Scalar created implicitly (<c>x.add(1.5)</c>, <c>x * 2</c>, and TorchSharp's own
/// <c>x + y</c>, which calls <c>add(y, 1)</c>) is unreachable as soon as its handle has been read, so a garbage
/// collection during the native call can finalize it and free the value libtorch is reading: libtorch then throws
/// "Expected false to be true ... toFloat at c10/core/Scalar.h" or "Unknown scalar type" (a use after free).</para>
/// <para>A Scalar held here is rooted by a static dictionary, so it is never finalized. Use it for constants (epsilons,
/// scale factors, 1 and 0); for a value that changes every call (a learning rate) create one with
/// <c>value.ToScalar()</c> in a <c>using</c> declaration, which keeps it alive until the end of the block.
/// The test <c>ScalarSafetyTests</c> fails the build when code in src/ creates a Scalar any other way.</para>
/// </remarks>
public static class TorchScalars
{
    // Integral and floating scalars differ in libtorch (integer ops keep integer results), so they are cached apart.
    private static readonly ConcurrentDictionary<long, Scalar> Integers = new();
    private static readonly ConcurrentDictionary<long, Scalar> Reals = new();

    /// <summary>The integer scalar 1 (the <c>alpha</c> of a plain <c>add</c>).</summary>
    public static Scalar One { get; } = Of(1L);

    /// <summary>The integer scalar 0.</summary>
    public static Scalar Zero { get; } = Of(0L);

    /// <summary>The integer scalar -1 (the <c>alpha</c> of a subtraction written as <c>add</c>).</summary>
    public static Scalar MinusOne { get; } = Of(-1L);

    /// <summary>A cached floating-point scalar (libtorch stores every floating scalar as a double).</summary>
    /// <param name="value">The value; a <see cref="float"/> argument converts exactly, as TorchSharp's own conversion does.</param>
    public static Scalar Of(double value) =>
        Reals.GetOrAdd(BitConverter.DoubleToInt64Bits(value), static bits => BitConverter.Int64BitsToDouble(bits).ToScalar());

    /// <summary>A cached integer scalar (libtorch stores every integer scalar as an int64).</summary>
    /// <param name="value">The value.</param>
    public static Scalar Of(long value) => Integers.GetOrAdd(value, static v => v.ToScalar());
}
