using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Vision;

/// <summary>
/// The attention maps one block computed in one forward call, recorded by an <see cref="AttentionMapCapture"/>.
/// ELA blocks fill <see cref="Height"/> and <see cref="Width"/>; ULSAM blocks fill <see cref="Subspaces"/>.
/// The tensors are detached from autograd and owned by the capture (disposed with it): clone one to keep it longer.
/// </summary>
public sealed class CapturedAttentionMaps
{
    internal CapturedAttentionMaps(nn.Module block, Tensor? height, Tensor? width, Tensor? subspaces)
    {
        Block = block;
        Height = height;
        Width = width;
        Subspaces = subspaces;
    }

    /// <summary>The block that computed the maps (an <see cref="EfficientLocalAttention"/> or an
    /// <see cref="UltraLightSubspaceAttention"/>).</summary>
    public nn.Module Block { get; }

    /// <summary>ELA's row attention <c>a_h = σ(GN(conv(mean over W)))</c>, [B, C, H, 1], values in (0, 1); null for ULSAM.</summary>
    public Tensor? Height { get; }

    /// <summary>ELA's column attention <c>a_w = σ(GN(conv(mean over H)))</c>, [B, C, 1, W], values in (0, 1); null for ULSAM.</summary>
    public Tensor? Width { get; }

    /// <summary>ULSAM's per-subspace spatial maps, [B, g, H, W]: a softmax over the H·W positions, so each map sums to
    /// 1; null for ELA.</summary>
    public Tensor? Subspaces { get; }

    /// <summary>
    /// One spatial map per image, [B, <paramref name="height"/>, <paramref name="width"/>]: for ELA the factor the block
    /// multiplies each position by, averaged over its C channels, <c>m[i, j] = (1/C) Σ_c a_h[c, i] · a_w[c, j]</c>
    /// (values in (0, 1)); for ULSAM the mean of the g subspace softmax maps (values in [0, 1], summing to 1 over the
    /// block's positions). Computed at the block's resolution, then resized bilinearly (half-pixel centres, PyTorch's
    /// <c>align_corners = False</c>) to <paramref name="height"/> × <paramref name="width"/>, e.g. the input image's size.
    /// The result belongs to the caller's dispose scope.
    /// </summary>
    public Tensor SpatialMap(long height, long width)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        using var scope = NewDisposeScope();
        var low = Subspaces is { } s
            ? s.mean(new long[] { 1 })                                  // [B, h, w]
            : (Height! * Width!).mean(new long[] { 1 });                // [B, C, h, w] → [B, h, w]
        var map = low.shape[1] == height && low.shape[2] == width
            ? low
            : nn.functional.interpolate(low.unsqueeze(1), size: new[] { height, width }, mode: InterpolationMode.Bilinear,
                align_corners: false).squeeze(1);
        return map.MoveToOuterDisposeScope();
    }

    internal void Dispose()
    {
        Height?.Dispose();
        Width?.Dispose();
        Subspaces?.Dispose();
    }
}

/// <summary>
/// Records the attention maps of <see cref="EfficientLocalAttention"/> and <see cref="UltraLightSubspaceAttention"/>
/// blocks while it is open, for explanations: <c>using var capture = new AttentionMapCapture(block); net.call(x);</c>
/// then read <see cref="Maps"/>. Forward results are unchanged.
/// </summary>
/// <remarks>
/// <para>The capture is per thread: it records the forward calls made on the thread that created it, until it is
/// disposed (dispose it on that thread, as <c>using</c> does). Other threads scoring the same module are not affected,
/// so one network can serve capturing and ordinary callers at once. Captures nest; a block records into the innermost
/// open capture that asks for it.</para>
/// <para>When no capture is open a block's forward pays one thread-static read and allocates nothing.</para>
/// <para>Each recorded tensor is detached from autograd and from the dispose scopes; the capture owns it and disposes
/// it in <see cref="Dispose"/>.</para>
/// </remarks>
public sealed class AttentionMapCapture : IDisposable
{
    [ThreadStatic] private static AttentionMapCapture? t_current;

    private AttentionMapCapture? _outer;
    private readonly HashSet<nn.Module>? _blocks;
    private readonly List<CapturedAttentionMaps> _maps = new();
    private readonly int _threadId;
    private bool _disposed;

    /// <summary>Starts recording on the current thread.</summary>
    /// <param name="blocks">The blocks to record (ELA or ULSAM modules); none: every ELA and ULSAM block that runs.</param>
    public AttentionMapCapture(params nn.Module[] blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        foreach (var b in blocks)
            if (b is not (EfficientLocalAttention or UltraLightSubspaceAttention))
                throw new ArgumentException(
                    $"{b?.GetType().Name ?? "null"} is not an attention block whose maps can be captured; pass " +
                    "EfficientLocalAttention or UltraLightSubspaceAttention modules (or none, to record every one of them).",
                    nameof(blocks));
        _blocks = blocks.Length == 0 ? null : new HashSet<nn.Module>(blocks, ReferenceEqualityComparer.Instance);
        _threadId = Environment.CurrentManagedThreadId;
        _outer = t_current;
        t_current = this;
    }

    /// <summary>The recorded maps, in the order the blocks ran (one entry per forward call of a recorded block).</summary>
    public IReadOnlyList<CapturedAttentionMaps> Maps => _maps;

    /// <summary>The capture that records <paramref name="block"/>'s forward on this thread, or null (the usual case).</summary>
    internal static AttentionMapCapture? For(nn.Module block)
    {
        for (var c = t_current; c is not null; c = c._outer)
            if (c._blocks is null || c._blocks.Contains(block)) return c;
        return null;
    }

    internal void RecordEla(EfficientLocalAttention block, Tensor height, Tensor width) =>
        _maps.Add(new CapturedAttentionMaps(block, Keep(height), Keep(width), null));

    internal void RecordUlsam(UltraLightSubspaceAttention block, Tensor maps) =>
        _maps.Add(new CapturedAttentionMaps(block, null, null, Keep(maps)));

    private static Tensor Keep(Tensor t) => t.detach().DetachFromDisposeScope();

    /// <summary>Stops recording and disposes the recorded tensors. Call it on the thread that created the capture.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        if (Environment.CurrentManagedThreadId != _threadId)
            throw new InvalidOperationException(
                "An AttentionMapCapture records on the thread that created it and must be disposed there " +
                "(use a using statement around the forward call, without awaiting in between).");
        _disposed = true;
        if (ReferenceEquals(t_current, this)) t_current = _outer;
        else
        {
            // Disposed out of order: unlink it from the chain of open captures.
            for (var c = t_current; c is not null; c = c._outer)
                if (ReferenceEquals(c._outer, this)) { c._outer = _outer; break; }
        }
        foreach (var m in _maps) m.Dispose();
        _maps.Clear();
    }
}
