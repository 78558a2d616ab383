using TorchSharp;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// The reference's sinusoidal positional table, a persistent buffer <c>pe</c> of shape [1, 5000, width] with
/// <c>pe[pos, 2i] = sin(pos·exp(−2i·ln 10000 / width))</c> and <c>pe[pos, 2i+1] = cos(…)</c>, computed in float32 as
/// PyTorch does (width must be even). CRIB adds it over the token index r = p·N + n (not the time step).
/// </summary>
public sealed class CribPositionalTable : nn.Module
{
    /// <param name="width">Table width (even).</param>
    /// <param name="rows">Number of positions (5000 in the reference).</param>
    public CribPositionalTable(int width, int rows = CribConfig.PositionalTableRows) : base(nameof(CribPositionalTable))
    {
        if (width < 2 || width % 2 != 0) throw new ArgumentException($"The positional table width {width} must be a positive even number.", nameof(width));
        if (rows < 1) throw new ArgumentOutOfRangeException(nameof(rows), rows, "rows must be positive.");
        using var scope = NewDisposeScope();
        var position = arange(Zero, Of(rows), One, dtype: ScalarType.Float32).unsqueeze(1);
        var divTerm = arange(Zero, Of(width), Of(2L), dtype: ScalarType.Float32).mul(Of((float)(-(Math.Log(10000.0) / width)))).exp();
        var angles = position * divTerm;                                           // [rows, width/2]
        var pe = stack(new[] { angles.sin(), angles.cos() }, 2).reshape(1, rows, width);
        register_buffer("pe", pe.detach().MoveToOuterDisposeScope());
        Rows = rows;
        Width = width;
    }

    /// <summary>Number of positions in the table.</summary>
    public int Rows { get; }

    /// <summary>Table width.</summary>
    public int Width { get; }

    /// <summary>The first <paramref name="positions"/> rows and <paramref name="columns"/> columns, [positions, columns].</summary>
    public Tensor Slice(long positions, long columns) => get_buffer("pe")![0, ..(int)positions, ..(int)columns];
}
