using Onnx;

namespace MLNet.Attention.OnnxExport;

/// <summary>The operators of the sequence models (the forecasters): LayerNormalization, Erf for the exact GELU, and
/// IsNaN/Where for the missing-value fill and the constant masks of MVPA.</summary>
internal sealed partial class OnnxGraphBuilder
{
    /// <summary>LayerNormalization over the last axis (an operator since opset 17): (x − μ)/√(σ² + ε)·γ + β with the
    /// biased variance, as PyTorch.</summary>
    public OnnxValue LayerNormalization(OnnxValue x, OnnxValue scale, OnnxValue bias, double epsilon, string hint)
        => Node("LayerNormalization", new[] { x.Name, scale.Name, bias.Name }, hint, x.Shape, Int("axis", -1),
            Float("epsilon", (float)epsilon));

    public OnnxValue Erf(OnnxValue x, string hint) => Unary("Erf", x, hint);

    /// <summary>The exact (erf) GELU, as <c>nn.functional.gelu</c>'s default: x·½·(1 + erf(x/√2)).</summary>
    public OnnxValue Gelu(OnnxValue x, string hint)
    {
        var erf = Erf(Mul(x, Scalar(hint + ".inv_sqrt2", (float)(1 / Math.Sqrt(2))), hint + ".scaled"), hint + ".erf");
        var half = Mul(Add(erf, Scalar(hint + ".one", 1f), hint + ".plus_one"), Scalar(hint + ".half", 0.5f),
            hint + ".half_gate");
        return Mul(x, half, hint);
    }

    /// <summary>ReduceSum over <paramref name="axes"/> (an input since opset 13).</summary>
    public OnnxValue ReduceSum(OnnxValue x, long[] axes, bool keepDims, string hint)
    {
        var normalised = axes.Select(a => a < 0 ? a + x.Rank : a).ToHashSet();
        var shape = x.Shape.Select((d, i) => normalised.Contains(i) ? (keepDims ? 1 : -2) : d).Where(d => d != -2)
            .ToArray();
        return Node("ReduceSum", new[] { x.Name, Int64s(hint + ".axes", axes).Name }, hint, shape,
            Int("keepdims", keepDims ? 1 : 0));
    }

    public OnnxValue Max(OnnxValue a, OnnxValue b, string hint) => Binary("Max", a, b, hint);

    /// <summary>IsNaN: a bool tensor of x's shape.</summary>
    public OnnxValue IsNaN(OnnxValue x, string hint) => Unary("IsNaN", x, hint);

    /// <summary>Cast to float32 (a bool mask to 0/1).</summary>
    public OnnxValue Cast(OnnxValue x, string hint)
        => Node("Cast", new[] { x.Name }, hint, x.Shape, Int("to", (long)TensorProto.Types.DataType.Float));

    /// <summary>Where(condition, a, b): a where the bool condition holds, else b (shapes broadcast).</summary>
    public OnnxValue Where(OnnxValue condition, OnnxValue a, OnnxValue b, string hint)
        => Node("Where", new[] { condition.Name, a.Name, b.Name }, hint,
            Broadcast(condition.Shape, Broadcast(a.Shape, b.Shape)));

    /// <summary>A bool initializer of <paramref name="shape"/> (constant masks).</summary>
    public OnnxValue Bools(string hint, bool[] values, params long[] shape)
    {
        if (values.Length != shape.Aggregate(1L, (a, b) => a * b))
            throw new ArgumentException($"{values.Length} values do not fill the shape [{string.Join(", ", shape)}].");
        string name = Unique(hint);
        var proto = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Bool };
        proto.Dims.AddRange(shape);
        proto.RawData = Google.Protobuf.ByteString.CopyFrom(values.Select(v => v ? (byte)1 : (byte)0).ToArray());
        _graph.Initializer.Add(proto);
        return new OnnxValue(name, shape.ToArray());
    }

    /// <summary>x with every NaN replaced by <paramref name="fill"/> (IsNaN → Where).</summary>
    public OnnxValue FillNaN(OnnxValue x, float fill, string hint)
    {
        var missing = IsNaN(x, hint + ".isnan");
        return Node("Where", new[] { missing.Name, Scalar(hint + ".fill", fill).Name, x.Name }, hint, x.Shape);
    }
}
