using Onnx;

namespace MLNet.Attention.OnnxExport;

/// <summary>The operators of the sequence models (the forecasters): LayerNormalization, Erf for the exact GELU, and
/// IsNaN/Where for the missing-value fill.</summary>
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

    /// <summary>IsNaN: a bool tensor of x's shape.</summary>
    public OnnxValue IsNaN(OnnxValue x, string hint) => Unary("IsNaN", x, hint);

    /// <summary>Cast to float32 (a bool mask to 0/1).</summary>
    public OnnxValue Cast(OnnxValue x, string hint)
        => Node("Cast", new[] { x.Name }, hint, x.Shape, Int("to", (long)TensorProto.Types.DataType.Float));

    /// <summary>x with every NaN replaced by <paramref name="fill"/> (IsNaN → Where).</summary>
    public OnnxValue FillNaN(OnnxValue x, float fill, string hint)
    {
        var missing = IsNaN(x, hint + ".isnan");
        return Node("Where", new[] { missing.Name, Scalar(hint + ".fill", fill).Name, x.Name }, hint, x.Shape);
    }
}
