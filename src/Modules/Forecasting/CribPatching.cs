using static TorchSharp.torch;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// CRIB's patch layout: a window <c>[B, L_in, N]</c> becomes non-overlapping patches <c>[B, P, N, L]</c> with
/// <c>patches[b, p, n, l] = series[b, p·L + l, n]</c> (P = L_in / L, stride = patch length), and tokens are ordered
/// <c>r = p·N + n</c> (patch-major). These helpers convert between the two layouts; they are exact inverses.
/// </summary>
public static class CribPatching
{
    /// <summary>[B, L_in, N] → [B, P, N, L]; L_in must be a multiple of <paramref name="patchLength"/>.</summary>
    public static Tensor ToPatches(Tensor series, int patchLength)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.dim() != 3)
            throw new ArgumentException($"The series must have shape [batch, lookback, variates]; got [{string.Join(", ", series.shape)}].", nameof(series));
        if (patchLength < 1 || series.shape[1] % patchLength != 0)
            throw new ArgumentException($"The lookback {series.shape[1]} is not divisible by the patch length {patchLength}; use a lookback that is a multiple of the patch length.", nameof(patchLength));
        long b = series.shape[0], n = series.shape[2];
        return series.reshape(b, series.shape[1] / patchLength, patchLength, n).permute(0, 1, 3, 2);
    }

    /// <summary>[B, P, N, L] → [B, P·L, N] (time-major), the inverse of <see cref="ToPatches"/>.</summary>
    public static Tensor ToSeries(Tensor patches)
    {
        ArgumentNullException.ThrowIfNull(patches);
        if (patches.dim() != 4)
            throw new ArgumentException($"The patches must have shape [batch, patches, variates, patch length]; got [{string.Join(", ", patches.shape)}].", nameof(patches));
        long b = patches.shape[0], p = patches.shape[1], n = patches.shape[2], l = patches.shape[3];
        return patches.permute(0, 1, 3, 2).reshape(b, p * l, n);
    }
}
