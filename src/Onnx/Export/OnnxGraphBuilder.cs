using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.OnnxExport;

/// <summary>A tensor of the graph being built: its name and its shape, −1 where a dimension is only known at run
/// time (the batch). The rank is always known, so that exporters can broadcast per-channel constants.</summary>
internal readonly record struct OnnxValue(string Name, long[] Shape)
{
    public int Rank => Shape.Length;

    public override string ToString() => $"{Name} [{string.Join(", ", Shape.Select(d => d < 0 ? "?" : d.ToString()))}]";
}

/// <summary>
/// A small typed builder of ONNX opset-17 graphs over OnnxSharp's protobuf types: float32 graph inputs and outputs
/// whose first dimension is the symbolic <c>batch</c>, initializers from TorchSharp tensors, and one method per
/// operator with the opset-17 calling convention (Clip's bounds and Slice/Unsqueeze/Reshape arguments as inputs,
/// ReduceMean's axes as an attribute). Every node and tensor gets a unique name derived from a hint (the module path),
/// and each method tracks the output shape so that callers know ranks and static sizes.
/// </summary>
internal sealed partial class OnnxGraphBuilder
{
    /// <summary>The operator set the builder writes (the first with LayerNormalization; ReduceMean still takes its
    /// axes as an attribute).</summary>
    public const int Opset = 17;

    /// <summary>The name of the symbolic first dimension of graph inputs and outputs.</summary>
    public const string BatchDimension = "batch";

    // IR version 8 is the one that goes with opset 17 (ONNX 1.12).
    private const long IrVersion = 8;

    private readonly GraphProto _graph;
    private readonly Dictionary<string, int> _names = new(StringComparer.Ordinal);

    public OnnxGraphBuilder(string graphName) => _graph = new GraphProto { Name = graphName };

    public int NodeCount => _graph.Node.Count;

    /// <summary>A float32 graph input; a −1 first dimension is the symbolic <see cref="BatchDimension"/>.</summary>
    public OnnxValue Input(string name, params long[] shape) => Input(name, shape, null);

    /// <summary>A float32 graph input whose −1 dimensions get the symbolic names <paramref name="dimensionNames"/>
    /// (by position; null there or beyond it: as <see cref="Input(string, long[])"/>).</summary>
    public OnnxValue Input(string name, long[] shape, IReadOnlyList<string?>? dimensionNames)
    {
        Reserve(name);
        _graph.Input.Add(ValueInfo(name, shape, dimensionNames));
        return new OnnxValue(name, shape);
    }

    /// <summary>Declares <paramref name="value"/> as the graph output <paramref name="name"/> (through an Identity node
    /// when the tensor has another name).</summary>
    public OnnxValue Output(OnnxValue value, string name) => Output(value, name, null);

    /// <summary>As <see cref="Output(OnnxValue, string)"/>, naming the −1 dimensions as
    /// <see cref="Input(string, long[], IReadOnlyList{string?}?)"/> does.</summary>
    public OnnxValue Output(OnnxValue value, string name, IReadOnlyList<string?>? dimensionNames)
    {
        if (value.Name != name)
        {
            Reserve(name);
            AddNode("Identity", new[] { value.Name }, new[] { name }, name);
            value = value with { Name = name };
        }
        _graph.Output.Add(ValueInfo(name, value.Shape, dimensionNames));
        return value;
    }

    // ---- initializers ------------------------------------------------------------------------------------------

    /// <summary>A float32 initializer holding <paramref name="tensor"/> (copied from any device and float type).</summary>
    public OnnxValue Initializer(string hint, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var t = tensor.detach().cpu().to_type(ScalarType.Float32).contiguous();
        return Initializer(hint, t.data<float>().ToArray(), t.shape);
    }

    /// <summary>A float32 initializer of <paramref name="shape"/> (an empty shape is a scalar).</summary>
    public OnnxValue Initializer(string hint, float[] values, params long[] shape)
    {
        if (values.Length != shape.Aggregate(1L, (a, b) => a * b))
            throw new ArgumentException($"{values.Length} values do not fill the shape [{string.Join(", ", shape)}].");
        string name = Unique(hint);
        var proto = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        proto.Dims.AddRange(shape);
        proto.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan()));
        _graph.Initializer.Add(proto);
        return new OnnxValue(name, shape.ToArray());
    }

    /// <summary>A float32 scalar initializer.</summary>
    public OnnxValue Scalar(string hint, float value) => Initializer(hint, new[] { value });

    /// <summary>A 1-D int64 initializer (shapes, axes, slice bounds).</summary>
    public OnnxValue Int64s(string hint, params long[] values)
    {
        string name = Unique(hint);
        var proto = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        proto.Dims.Add(values.Length);
        proto.Int64Data.AddRange(values);
        _graph.Initializer.Add(proto);
        return new OnnxValue(name, new long[] { values.Length });
    }

    // ---- element-wise ------------------------------------------------------------------------------------------

    public OnnxValue Relu(OnnxValue x, string hint) => Unary("Relu", x, hint);

    public OnnxValue Sigmoid(OnnxValue x, string hint) => Unary("Sigmoid", x, hint);

    public OnnxValue Tanh(OnnxValue x, string hint) => Unary("Tanh", x, hint);

    public OnnxValue Sqrt(OnnxValue x, string hint) => Unary("Sqrt", x, hint);

    public OnnxValue Identity(OnnxValue x, string hint) => Unary("Identity", x, hint);

    public OnnxValue Abs(OnnxValue x, string hint) => Unary("Abs", x, hint);

    public OnnxValue Exp(OnnxValue x, string hint) => Unary("Exp", x, hint);

    public OnnxValue Neg(OnnxValue x, string hint) => Unary("Neg", x, hint);

    /// <summary>Clip with constant bounds (opset ≥ 11 takes them as inputs): ReLU6 is Clip(x, 0, 6).</summary>
    public OnnxValue Clip(OnnxValue x, float min, float max, string hint)
    {
        var lo = Scalar(hint + ".min", min);
        var hi = Scalar(hint + ".max", max);
        return Node("Clip", new[] { x.Name, lo.Name, hi.Name }, hint, x.Shape);
    }

    public OnnxValue Add(OnnxValue a, OnnxValue b, string hint) => Binary("Add", a, b, hint);

    public OnnxValue Sub(OnnxValue a, OnnxValue b, string hint) => Binary("Sub", a, b, hint);

    public OnnxValue Mul(OnnxValue a, OnnxValue b, string hint) => Binary("Mul", a, b, hint);

    public OnnxValue Div(OnnxValue a, OnnxValue b, string hint) => Binary("Div", a, b, hint);

    public OnnxValue Pow(OnnxValue a, OnnxValue b, string hint) => Binary("Pow", a, b, hint);

    // ---- linear algebra and convolution ------------------------------------------------------------------------

    public OnnxValue MatMul(OnnxValue a, OnnxValue b, string hint)
    {
        if (a.Rank < 2 || b.Rank < 2) throw new ArgumentException("MatMul here takes operands of rank ≥ 2.");
        var batch = Broadcast(a.Shape[..^2], b.Shape[..^2]);
        return Node("MatMul", new[] { a.Name, b.Name }, hint, batch.Append(a.Shape[^2]).Append(b.Shape[^1]).ToArray());
    }

    /// <summary>Gemm: a [M, K] · b (or bᵀ with <paramref name="transB"/>) + c.</summary>
    public OnnxValue Gemm(OnnxValue a, OnnxValue b, OnnxValue? c, bool transB, string hint)
    {
        if (a.Rank != 2 || b.Rank != 2) throw new ArgumentException("Gemm takes 2-D operands.");
        var inputs = c is { } bias ? new[] { a.Name, b.Name, bias.Name } : new[] { a.Name, b.Name };
        return Node("Gemm", inputs, hint, new[] { a.Shape[0], transB ? b.Shape[0] : b.Shape[1] },
            Int("transB", transB ? 1 : 0));
    }

    /// <summary>Conv over 1-D or 2-D maps (weight [M, C/groups, k…]), zero padding given per side as
    /// [begin…, end…].</summary>
    public OnnxValue Conv(OnnxValue x, OnnxValue weight, OnnxValue? bias, long[] strides, long[] pads, long[] dilations,
        long groups, string hint)
    {
        int spatial = weight.Rank - 2;
        if (x.Rank != weight.Rank || strides.Length != spatial || dilations.Length != spatial || pads.Length != 2 * spatial)
            throw new ArgumentException($"Conv: input {x}, weight {weight}, strides/pads/dilations of the wrong length.");
        var shape = new long[x.Rank];
        shape[0] = x.Shape[0];
        shape[1] = weight.Shape[0];
        for (int i = 0; i < spatial; i++)
        {
            long size = x.Shape[2 + i], k = weight.Shape[2 + i];
            shape[2 + i] = size < 0 ? -1 : (size + pads[i] + pads[spatial + i] - dilations[i] * (k - 1) - 1) / strides[i] + 1;
        }
        var inputs = bias is { } b ? new[] { x.Name, weight.Name, b.Name } : new[] { x.Name, weight.Name };
        return Node("Conv", inputs, hint, shape, Ints("kernel_shape", weight.Shape[2..]), Ints("strides", strides),
            Ints("pads", pads), Ints("dilations", dilations), Int("group", groups));
    }

    /// <summary>BatchNormalization in inference mode (running statistics as inputs).</summary>
    public OnnxValue BatchNormalization(OnnxValue x, OnnxValue scale, OnnxValue bias, OnnxValue mean, OnnxValue variance,
        double epsilon, string hint)
        => Node("BatchNormalization", new[] { x.Name, scale.Name, bias.Name, mean.Name, variance.Name }, hint, x.Shape,
            Float("epsilon", (float)epsilon));

    /// <summary>InstanceNormalization: per (n, c) mean and (biased) variance over the remaining axes.</summary>
    public OnnxValue InstanceNormalization(OnnxValue x, OnnxValue scale, OnnxValue bias, double epsilon, string hint)
        => Node("InstanceNormalization", new[] { x.Name, scale.Name, bias.Name }, hint, x.Shape,
            Float("epsilon", (float)epsilon));

    // ---- pooling and reductions --------------------------------------------------------------------------------

    public OnnxValue MaxPool(OnnxValue x, long[] kernel, long[] strides, long[] pads, string hint)
        => Pool("MaxPool", x, kernel, strides, pads, hint);

    public OnnxValue AveragePool(OnnxValue x, long[] kernel, long[] strides, long[] pads, string hint)
        => Pool("AveragePool", x, kernel, strides, pads, hint, Int("count_include_pad", 1));

    public OnnxValue GlobalAveragePool(OnnxValue x, string hint)
        => Node("GlobalAveragePool", new[] { x.Name }, hint, x.Shape.Select((d, i) => i < 2 ? d : 1).ToArray());

    /// <summary>ReduceMean over <paramref name="axes"/> (an attribute up to opset 17).</summary>
    public OnnxValue ReduceMean(OnnxValue x, long[] axes, bool keepDims, string hint)
    {
        var normalised = axes.Select(a => a < 0 ? a + x.Rank : a).ToHashSet();
        var shape = x.Shape.Select((d, i) => normalised.Contains(i) ? (keepDims ? 1 : -2) : d).Where(d => d != -2).ToArray();
        return Node("ReduceMean", new[] { x.Name }, hint, shape, Ints("axes", axes), Int("keepdims", keepDims ? 1 : 0));
    }

    /// <summary>Softmax along one axis (opset ≥ 13 semantics).</summary>
    public OnnxValue Softmax(OnnxValue x, long axis, string hint)
        => Node("Softmax", new[] { x.Name }, hint, x.Shape, Int("axis", axis));

    // ---- shape -------------------------------------------------------------------------------------------------

    /// <summary>Reshape to <paramref name="shape"/> (0 copies the input's dimension, −1 is inferred).</summary>
    public OnnxValue Reshape(OnnxValue x, long[] shape, string hint)
    {
        var target = Int64s(hint + ".shape", shape);
        var known = shape.Select((d, i) => d == 0 ? x.Shape[i] : d).ToArray();
        int infer = Array.IndexOf(known, -1L);
        if (infer >= 0 && known.Count(d => d == -1) == 1 && x.Shape.All(d => d >= 0))
            known[infer] = x.Shape.Aggregate(1L, (a, b) => a * b)
                / known.Where(d => d != -1).Aggregate(1L, (a, b) => a * b);
        return Node("Reshape", new[] { x.Name, target.Name }, hint, known);
    }

    /// <summary>Reshape to the int64 shape tensor <paramref name="shape"/> computed in the graph;
    /// <paramref name="staticShape"/> is what is known of the result (−1 where only the run time knows).</summary>
    public OnnxValue Reshape(OnnxValue x, OnnxValue shape, long[] staticShape, string hint)
        => Node("Reshape", new[] { x.Name, shape.Name }, hint, staticShape);

    /// <summary>The run-time dimensions [<paramref name="start"/>, <paramref name="end"/>) of <paramref name="x"/> as
    /// an int64 vector (Shape's start and end attributes, opset ≥ 15).</summary>
    public OnnxValue Shape(OnnxValue x, long start, long end, string hint)
        => Node("Shape", new[] { x.Name }, hint, new[] { end - start }, Int("start", start), Int("end", end));

    /// <summary>Reshape to the run-time shape of <paramref name="like"/> (Shape → Reshape), keeping its static shape.</summary>
    public OnnxValue ReshapeLike(OnnxValue x, OnnxValue like, string hint)
    {
        var shape = Node("Shape", new[] { like.Name }, hint + ".shape", new long[] { like.Rank });
        return Node("Reshape", new[] { x.Name, shape.Name }, hint, like.Shape);
    }

    public OnnxValue Flatten(OnnxValue x, long axis, string hint)
    {
        static long Product(IEnumerable<long> d) => d.Any(v => v < 0) ? -1 : d.Aggregate(1L, (a, b) => a * b);
        var shape = new[] { Product(x.Shape[..(int)axis]), Product(x.Shape[(int)axis..]) };
        return Node("Flatten", new[] { x.Name }, hint, shape, Int("axis", axis));
    }

    public OnnxValue Transpose(OnnxValue x, long[] perm, string hint)
        => Node("Transpose", new[] { x.Name }, hint, perm.Select(p => x.Shape[p]).ToArray(), Ints("perm", perm));

    /// <summary>Unsqueeze (axes as an input since opset 13).</summary>
    public OnnxValue Unsqueeze(OnnxValue x, long[] axes, string hint)
    {
        int rank = x.Rank + axes.Length;
        var inserted = axes.Select(a => a < 0 ? a + rank : a).ToHashSet();
        var shape = new long[rank];
        for (int i = 0, j = 0; i < rank; i++) shape[i] = inserted.Contains(i) ? 1 : x.Shape[j++];
        return Node("Unsqueeze", new[] { x.Name, Int64s(hint + ".axes", axes).Name }, hint, shape);
    }

    /// <summary>Squeeze (axes as an input since opset 13).</summary>
    public OnnxValue Squeeze(OnnxValue x, long[] axes, string hint)
    {
        var removed = axes.Select(a => a < 0 ? a + x.Rank : a).ToHashSet();
        return Node("Squeeze", new[] { x.Name, Int64s(hint + ".axes", axes).Name }, hint,
            x.Shape.Where((_, i) => !removed.Contains(i)).ToArray());
    }

    public OnnxValue Concat(IReadOnlyList<OnnxValue> xs, long axis, string hint)
    {
        int a = (int)(axis < 0 ? axis + xs[0].Rank : axis);
        var shape = xs[0].Shape.ToArray();
        shape[a] = xs.Any(x => x.Shape[a] < 0) ? -1 : xs.Sum(x => x.Shape[a]);
        return Node("Concat", xs.Select(x => x.Name).ToArray(), hint, shape, Int("axis", axis));
    }

    /// <summary>Slice [starts, ends) along <paramref name="axes"/> (steps 1; bounds as inputs since opset 10).</summary>
    public OnnxValue Slice(OnnxValue x, long[] starts, long[] ends, long[] axes, string hint)
    {
        var shape = x.Shape.ToArray();
        for (int i = 0; i < axes.Length; i++)
        {
            int a = (int)(axes[i] < 0 ? axes[i] + x.Rank : axes[i]);
            long size = x.Shape[a];
            if (size < 0) { shape[a] = -1; continue; }
            long s = Math.Clamp(starts[i] < 0 ? starts[i] + size : starts[i], 0, size);
            long e = Math.Clamp(ends[i] < 0 ? ends[i] + size : ends[i], 0, size);
            shape[a] = Math.Max(0, e - s);
        }
        return Node("Slice", new[] { x.Name, Int64s(hint + ".starts", starts).Name, Int64s(hint + ".ends", ends).Name,
            Int64s(hint + ".axes", axes).Name }, hint, shape);
    }

    /// <summary>Split along <paramref name="axis"/> into parts of <paramref name="sizes"/> (an input since opset 13).</summary>
    public OnnxValue[] Split(OnnxValue x, long axis, long[] sizes, string hint)
    {
        int a = (int)(axis < 0 ? axis + x.Rank : axis);
        var outputs = sizes.Select((_, i) => Unique($"{hint}.{i}")).ToArray();
        AddNode("Split", new[] { x.Name, Int64s(hint + ".split", sizes).Name }, outputs, hint, Int("axis", axis));
        return outputs.Select((name, i) =>
        {
            var shape = x.Shape.ToArray();
            shape[a] = sizes[i];
            return new OnnxValue(name, shape);
        }).ToArray();
    }

    // ---- composites --------------------------------------------------------------------------------------------

    /// <summary>
    /// GroupNorm(groups, C) on [B, C, …] (not an operator before opset 18): the groups' statistics by
    /// InstanceNormalization over the [B, groups, C/groups·…] view (biased variance, as PyTorch), back to the input
    /// shape, then the per-channel affine γ·x + β (<paramref name="weight"/> and <paramref name="bias"/> shaped
    /// [C, 1, …] to broadcast over the input).
    /// </summary>
    public OnnxValue GroupNormalization(OnnxValue x, long groups, OnnxValue? weight, OnnxValue? bias, double epsilon,
        string hint)
    {
        var grouped = Reshape(x, new long[] { 0, groups, -1 }, hint + ".grouped");
        var ones = Initializer(hint + ".unit_scale", Enumerable.Repeat(1f, (int)groups).ToArray(), groups);
        var zeros = Initializer(hint + ".unit_bias", new float[groups], groups);
        var normed = InstanceNormalization(grouped, ones, zeros, epsilon, hint + ".normalised");
        var y = ReshapeLike(normed, x, hint + ".ungrouped");
        if (weight is { } w) y = Mul(y, w, hint + ".scale");
        if (bias is { } b) y = Add(y, b, hint + ".shift");
        return y;
    }

    // ---- the model ---------------------------------------------------------------------------------------------

    /// <summary>The finished model (IR 8, default-domain opset 17).</summary>
    public ModelProto Build(string producerVersion, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "MLNet.Attention.Onnx",
            ProducerVersion = producerVersion,
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return model;
    }

    // ---- plumbing ----------------------------------------------------------------------------------------------

    private OnnxValue Unary(string op, OnnxValue x, string hint) => Node(op, new[] { x.Name }, hint, x.Shape);

    private OnnxValue Binary(string op, OnnxValue a, OnnxValue b, string hint)
        => Node(op, new[] { a.Name, b.Name }, hint, Broadcast(a.Shape, b.Shape));

    private OnnxValue Pool(string op, OnnxValue x, long[] kernel, long[] strides, long[] pads, string hint,
        params AttributeProto[] extra)
    {
        int spatial = kernel.Length;
        var shape = x.Shape.ToArray();
        for (int i = 0; i < spatial; i++)
        {
            long size = x.Shape[2 + i];
            shape[2 + i] = size < 0 ? -1 : (size + pads[i] + pads[spatial + i] - kernel[i]) / strides[i] + 1;
        }
        return Node(op, new[] { x.Name }, hint, shape,
            new[] { Ints("kernel_shape", kernel), Ints("strides", strides), Ints("pads", pads) }.Concat(extra).ToArray());
    }

    /// <summary>Numpy broadcasting of two static shapes (−1 stays unknown).</summary>
    private static long[] Broadcast(long[] a, long[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var shape = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            long da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            long db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da >= 0 && db >= 0 && da != db && da != 1 && db != 1)
                throw new ArgumentException(
                    $"Shapes [{string.Join(", ", a)}] and [{string.Join(", ", b)}] do not broadcast.");
            shape[i] = da == 1 ? db : db == 1 ? da : da < 0 ? db : da;
        }
        return shape;
    }

    private OnnxValue Node(string op, string[] inputs, string hint, long[] shape, params AttributeProto[] attributes)
    {
        string output = Unique(hint);
        AddNode(op, inputs, new[] { output }, hint, attributes);
        return new OnnxValue(output, shape);
    }

    private void AddNode(string op, string[] inputs, string[] outputs, string hint, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = Unique(hint + "/" + op) };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
    }

    private static AttributeProto Int(string name, long value)
        => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto Float(string name, float value)
        => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    private static AttributeProto Ints(string name, IEnumerable<long> values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    private static ValueInfoProto ValueInfo(string name, long[] shape, IReadOnlyList<string?>? dimensionNames)
    {
        var tensor = new TypeProto.Types.Tensor
        {
            ElemType = (int)TensorProto.Types.DataType.Float, Shape = new TensorShapeProto(),
        };
        for (int i = 0; i < shape.Length; i++)
            tensor.Shape.Dim.Add(shape[i] >= 0 ? new TensorShapeProto.Types.Dimension { DimValue = shape[i] }
                : dimensionNames is not null && i < dimensionNames.Count && dimensionNames[i] is { } symbol
                    ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                : i == 0 ? new TensorShapeProto.Types.Dimension { DimParam = BatchDimension }
                : new TensorShapeProto.Types.Dimension());   // unknown, not the batch
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    /// <summary>A name no tensor or node of this graph has yet: the hint, then hint_1, hint_2, ….</summary>
    private string Unique(string hint)
    {
        string name = hint.Length == 0 ? "t" : hint;
        if (_names.TryAdd(name, 0)) return name;
        while (true)
        {
            string candidate = $"{name}_{++_names[name]}";
            if (_names.TryAdd(candidate, 0)) return candidate;
        }
    }

    private void Reserve(string name)
    {
        if (!_names.TryAdd(name, 0))
            throw new ArgumentException($"The graph already has a tensor named '{name}'.", nameof(name));
    }
}
