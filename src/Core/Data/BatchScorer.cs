using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;

namespace MLNet.Attention.Data;

/// <summary>
/// Staging buffers for one scoring batch: reads the model input columns of a source row into slot <c>i</c>, runs one
/// forward pass over the first <c>n</c> slots (through <see cref="TorchTransformerBase.RunForward"/>) and serves the
/// output values per slot. One instance per cursor or mapped row; not thread-safe.
/// </summary>
internal sealed class BatchScorer : IDisposable
{
    private readonly TorchTransformerBase _owner;
    private readonly Action<int, long>[] _readers;
    private readonly bool _positionIsPrediction;

    // predictionEngine: the rows come from a prediction engine, whose row position is its Predict call count
    // (0-based); messages then say "at prediction N" (1-based) instead of "at row N".
    internal BatchScorer(TorchTransformerBase owner, BoundSchema bound, DataViewRow row, int capacity,
        bool predictionEngine = false)
        : this(owner.InputColumns, bound.ModelInputIndices, row, capacity, owner.RejectNonFiniteValues, predictionEngine,
            owner, owner.AllowNaNValues, owner.NonFiniteHintText)
    {
    }

    /// <summary>Staging for reading only (no forward pass): the training batch sources read their columns with the
    /// same readers as scoring, so training and scoring cannot disagree on what a row holds.</summary>
    /// <param name="inputs">Columns to read.</param>
    /// <param name="columnIndices">Index in <paramref name="row"/>'s schema of each column.</param>
    /// <param name="row">The row (cursor) the getters read.</param>
    /// <param name="capacity">Slots.</param>
    /// <param name="rejectNonFinite">Throw on NaN/infinity in float columns, naming column and row.</param>
    internal static BatchScorer ForReading(IReadOnlyList<TorchInputColumn> inputs, int[] columnIndices, DataViewRow row,
        int capacity, bool rejectNonFinite) => new(inputs, columnIndices, row, capacity, rejectNonFinite, false, null,
        allowNaN: false, hint: null);

    private BatchScorer(IReadOnlyList<TorchInputColumn> inputs, int[] columnIndices, DataViewRow row, int capacity,
        bool rejectNonFinite, bool predictionEngine, TorchTransformerBase? owner, bool allowNaN, string? hint)
    {
        _owner = owner!;
        _positionIsPrediction = predictionEngine;
        Capacity = capacity;
        FloatInputs = new float[inputs.Count][];
        TickInputs = new long[inputs.Count][];
        BagInputs = new VBuffer<float>[inputs.Count][];
        BagLengths = new int[inputs.Count][];
        _readers = new Action<int, long>[inputs.Count];
        for (int i = 0; i < inputs.Count; i++)
        {
            var spec = inputs[i];
            var column = row.Schema[columnIndices[i]];
            if (spec.Kind == TorchColumnKind.Key)
            {
                var labels = TickInputs[i] = new long[capacity];
                var getter = row.GetGetter<uint>(column);
                _readers[i] = (slot, position) =>
                {
                    uint key = 0;
                    getter(ref key);
                    if (key == 0)
                        throw new InvalidOperationException(
                            $"Column '{spec.Name}' has a missing value (key 0) {At(position)}; every row needs a " +
                            "label. Remove such rows first (mlContext.Data.FilterRowsByMissingValues), or map every " +
                            $"value with mlContext.Transforms.Conversion.MapValueToKey(\"{spec.Name}\").");
                    labels[slot] = key - 1;
                };
            }
            else if (spec.Kind == TorchColumnKind.Boolean)
            {
                var flags = TickInputs[i] = new long[capacity];
                var getter = row.GetGetter<bool>(column);
                _readers[i] = (slot, _) =>
                {
                    bool value = false;
                    getter(ref value);
                    flags[slot] = value ? 1 : 0;
                };
            }
            else if (spec.Kind == TorchColumnKind.DateTime)
            {
                var ticks = TickInputs[i] = new long[capacity];
                var getter = row.GetGetter<DateTime>(column);
                _readers[i] = (slot, _) =>
                {
                    DateTime value = default;
                    getter(ref value);
                    ticks[slot] = value.Ticks;
                };
            }
            else if (spec.IsBag)
            {
                _readers[i] = BagReader(spec, row.GetGetter<VBuffer<float>>(column), BagInputs[i] = new VBuffer<float>[capacity],
                    BagLengths[i] = new int[capacity], rejectNonFinite, allowNaN, hint);
            }
            else if (spec.IsImage)
            {
                _readers[i] = ImagePixels.Reader(spec, row, column, FloatInputs[i] = new float[checked(capacity * spec.Size)], At);
            }
            else if (spec.IsScalar && column.Type is not VectorDataViewType)
            {
                var values = FloatInputs[i] = new float[capacity];
                var getter = row.GetGetter<float>(column);
                bool reject = rejectNonFinite;
                _readers[i] = (slot, position) =>
                {
                    float value = 0;
                    getter(ref value);
                    values[slot] = value;
                    if (reject && !float.IsFinite(value) && !(allowNaN && float.IsNaN(value)))
                        throw NonFinite(spec, value, At(position), -1, hint);
                };
            }
            else
            {
                int size = spec.Size;
                var values = FloatInputs[i] = new float[checked(capacity * size)];
                var getter = row.GetGetter<VBuffer<float>>(column);
                VBuffer<float> buffer = default;
                bool reject = rejectNonFinite;
                _readers[i] = (slot, position) =>
                {
                    getter(ref buffer);
                    if (buffer.Length != size)
                        throw new InvalidOperationException(
                            $"Column '{spec.Name}' has {buffer.Length} values {At(position)}; expected {size} " +
                            $"({spec.Describe()}).");
                    var destination = values.AsSpan(slot * size, size);
                    if (buffer.IsDense)
                    {
                        buffer.GetValues().CopyTo(destination);
                    }
                    else
                    {
                        destination.Clear();
                        var indices = buffer.GetIndices();
                        var items = buffer.GetValues();
                        for (int k = 0; k < items.Length; k++)
                            destination[indices[k]] = items[k];
                    }
                    if (reject)
                    {
                        for (int k = 0; k < destination.Length; k++)
                            if (!float.IsFinite(destination[k]) && !(allowNaN && float.IsNaN(destination[k])))
                                throw NonFinite(spec, destination[k], At(position), k, hint);
                    }
                };
            }
        }

        var outputs = owner?.OutputColumns ?? Array.Empty<TorchOutputColumn>();
        Outputs = new float[outputs.Count][];
        BagOutputs = new float[outputs.Count][][];
        for (int j = 0; j < outputs.Count; j++)
        {
            if (outputs[j].Kind == TorchColumnKind.Bag)
            {
                Outputs[j] = Array.Empty<float>();
                BagOutputs[j] = new float[capacity][];
                for (int slot = 0; slot < capacity; slot++) BagOutputs[j]![slot] = Array.Empty<float>();
            }
            else Outputs[j] = new float[checked(capacity * outputs[j].Size)];
        }
    }

    /// <summary>Reads a bag (N × D floats, N ≥ 1) into the slot's own buffer (the getter reuses its array: a bag is
    /// copied once, from the source into the buffer, which a one-bag batch hands to libtorch as is and a padded batch
    /// copies once more) and its instance count.</summary>
    private Action<int, long> BagReader(TorchInputColumn spec, ValueGetter<VBuffer<float>> getter, VBuffer<float>[] bags,
        int[] lengths, bool reject, bool allowNaN, string? hint)
    {
        int size = spec.Size;
        return (slot, position) =>
        {
            getter(ref bags[slot]);
            if (!bags[slot].IsDense)
            {
                var dense = new float[bags[slot].Length];
                bags[slot].CopyTo(dense);
                bags[slot] = new VBuffer<float>(dense.Length, dense);
            }
            var values = bags[slot].GetValues();
            if (values.Length == 0)
                throw new InvalidOperationException($"Column '{spec.Name}' holds an empty bag (no instances) {At(position)}; " +
                    "every bag needs at least one instance. Remove empty bags before training or scoring (for example " +
                    "mlContext.Data.FilterRowsByColumn on the instance count column).");
            if (values.Length % size != 0)
                throw new InvalidOperationException($"Column '{spec.Name}' has {values.Length} values {At(position)}, not a " +
                    $"multiple of the instance size {size}: a bag holds N instances x {size} features. Check that every bag " +
                    "of the data was built with the same feature size (the model was trained with " + size + ").");
            lengths[slot] = values.Length / size;
            if (reject && !AllFinite(values))
                for (int k = 0; k < values.Length; k++)
                    if (!float.IsFinite(values[k]) && !(allowNaN && float.IsNaN(values[k])))
                        throw new InvalidOperationException($"Column '{spec.Name}' has a non-finite value " +
                            $"({values[k].ToString(System.Globalization.CultureInfo.InvariantCulture)}) {At(position)}, " +
                            $"instance {k / size}, feature {k % size}. Bags must hold finite features: " +
                            (hint is null ? "" : hint + " Or ") + "clean or drop that instance when the bags are built.");
        };
    }

    /// <summary>True when every value is finite, eight or more at a time (x − x is 0 exactly for finite x, NaN for NaN
    /// and ±∞): a 4 MB bag is checked in well under a millisecond. The slow loop then finds the culprit.</summary>
    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        var vectors = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(values);
        var zero = System.Numerics.Vector<float>.Zero;
        foreach (var v in vectors)
            if (!System.Numerics.Vector.EqualsAll(v - v, zero)) return false;
        for (int k = vectors.Length * System.Numerics.Vector<float>.Count; k < values.Length; k++)
            if (!float.IsFinite(values[k])) return false;
        return true;
    }

    internal int Capacity { get; }

    /// <summary>Per input column: float staging (<c>Capacity * Size</c>) for Single columns, else null.</summary>
    internal float[]?[] FloatInputs { get; }

    /// <summary>Per input column: int64 staging (<c>Capacity</c>) for DateTime columns (ticks) and Key columns
    /// (0-based class index), else null.</summary>
    internal long[]?[] TickInputs { get; }

    /// <summary>Per output column: <c>Capacity * Size</c> values, filled by the last <see cref="Run"/> (empty for a
    /// per-instance output, whose values are in <see cref="BagOutputs"/>).</summary>
    internal float[][] Outputs { get; }

    /// <summary>Per bag input column: each slot's instances (N × D, dense), else null.</summary>
    internal VBuffer<float>[]?[] BagInputs { get; }

    /// <summary>Per bag input column: each slot's instance count N, else null.</summary>
    internal int[]?[] BagLengths { get; }

    /// <summary>Per per-instance output column: each slot's N × K values, else null.</summary>
    internal float[]?[]?[] BagOutputs { get; }

    /// <summary>Reads the model inputs of the row the bound getters currently point at into <paramref name="slot"/>.</summary>
    /// <param name="slot">Slot in the batch.</param>
    /// <param name="position">The row's position, for error messages.</param>
    internal void ReadRow(int slot, long position)
    {
        foreach (var read in _readers)
            read(slot, position);
    }

    /// <summary>Runs the module over the first <paramref name="count"/> slots.</summary>
    internal void Run(int count) => _owner.RunForward(this, count);

    private torch.Tensor[]? _inputTensors;

    /// <summary>
    /// CPU tensors of shape [Capacity, dims...] per input column, created once per scorer and refilled from the
    /// staging arrays on every run (no per-call tensor or shape allocations; a PredictionEngine scores one row per
    /// call). They live outside any dispose scope and are freed by <see cref="Dispose"/> or, for the rows of a
    /// PredictionEngine (which ML.NET never disposes), by TorchSharp's finalizers.
    /// </summary>
    internal torch.Tensor[] InputTensors(IReadOnlyList<TorchInputColumn> specs)
    {
        if (_inputTensors is not null) return _inputTensors;
        var tensors = new torch.Tensor[specs.Count];
        for (int i = 0; i < specs.Count; i++)
        {
            var spec = specs[i];
            var shape = new long[1 + spec.Dimensions.Count];
            shape[0] = Capacity;
            for (int d = 0; d < spec.Dimensions.Count; d++) shape[d + 1] = spec.Dimensions[d];
            var type = spec.IsFloat ? torch.ScalarType.Float32 : torch.ScalarType.Int64;
            // A bag's padded size changes from batch to batch: its tensors are made per run (BagTensors).
            tensors[i] = torch.empty(spec.IsBag ? new long[] { 0 } : shape, type).DetachFromDisposeScope();
        }
        return _inputTensors = tensors;
    }

    /// <summary>Frees the input tensors.</summary>
    public void Dispose()
    {
        if (_inputTensors is null) return;
        foreach (var t in _inputTensors) t.Dispose();
        _inputTensors = null;
    }

    internal void GetOutput(int output, int slot, ref VBuffer<float> value)
    {
        int size = _owner.OutputColumns[output].Size;
        var editor = VBufferEditor.Create(ref value, size);
        Outputs[output].AsSpan(slot * size, size).CopyTo(editor.Values);
        value = editor.Commit();
    }

    internal float GetScalarOutput(int output, int slot) => Outputs[output][slot];

    internal void GetBagOutput(int output, int slot, ref VBuffer<float> value)
    {
        var values = BagOutputs[output]![slot]!;
        var editor = VBufferEditor.Create(ref value, values.Length);
        values.CopyTo(editor.Values);
        value = editor.Commit();
    }

    /// <summary>The getter of output column <paramref name="output"/> for the slot <paramref name="slot"/> returns
    /// (which also scores the row when needed): float scalar, float vector, Key (uint) or Boolean by the column's kind.</summary>
    internal static ValueGetter<TValue> OutputGetter<TValue>(BatchScorer scorer, TorchOutputColumn spec, int output,
        DataViewSchema.Column column, Func<int> slot)
    {
        Delegate getter = spec.Kind switch
        {
            TorchColumnKind.Key when typeof(TValue) == typeof(uint) =>
                (ValueGetter<uint>)((ref uint value) => value = (uint)scorer.GetScalarOutput(output, slot()) + 1),
            TorchColumnKind.Boolean when typeof(TValue) == typeof(bool) =>
                (ValueGetter<bool>)((ref bool value) => value = scorer.GetScalarOutput(output, slot()) > 0.5f),
            TorchColumnKind.Single when spec.IsScalar && typeof(TValue) == typeof(float) =>
                (ValueGetter<float>)((ref float value) => value = scorer.GetScalarOutput(output, slot())),
            TorchColumnKind.Bag when typeof(TValue) == typeof(VBuffer<float>) =>
                (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) => scorer.GetBagOutput(output, slot(), ref value)),
            TorchColumnKind.Single when !spec.IsScalar && typeof(TValue) == typeof(VBuffer<float>) =>
                (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) => scorer.GetOutput(output, slot(), ref value)),
            _ => throw new InvalidOperationException(
                $"Invalid TValue in GetGetter for column '{column.Name}': '{typeof(TValue)}', expected type: '{column.Type.RawType}'."),
        };
        return (ValueGetter<TValue>)getter;
    }

    private string At(long position) => _positionIsPrediction
        ? $"at prediction {position + 1} (counting this prediction engine's Predict calls from 1)"
        : $"at row {position}";

    private static InvalidOperationException NonFinite(TorchInputColumn spec, float value, string at, int index,
        string? hint) =>
        new($"Column '{spec.Name}' has a non-finite value ({value.ToString(System.Globalization.CultureInfo.InvariantCulture)}) {at}" +
            (index >= 0 ? $", element {index}" : "") +
            (float.IsNaN(value) ? ". This transformer rejects NaN and infinity in its inputs. " : ". This transformer rejects infinity in its inputs. ") +
            (hint is null ? "" : hint + " Or clean") + (hint is null ? "Clean" : "") + " the data first, e.g. with " +
            $"mlContext.Transforms.ReplaceMissingValues(\"{spec.Name}\"), or filter those rows out " +
            "(mlContext.Data.FilterRowsByMissingValues).");
}
