using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Engine;

/// <summary>
/// Training rows streamed from any <see cref="IDataView"/>, never materialised: each epoch opens one cursor, reads
/// the columns with the readers scoring uses (<see cref="BatchScorer"/>), and shuffles through a pool of
/// <c>shufflePoolSize</c> rows with the epoch's seeded <see cref="Random"/> (ML.NET's <c>ShuffleRows</c> semantics:
/// a pool at least as large as the data gives a full permutation). Memory: the pool and one batch. A view that
/// shuffles itself (<see cref="IRandomOrderDataView"/> at the bottom of its chain, e.g. a cohort of .h5 feature files)
/// is read through its own random-order cursor instead: a full permutation with one batch in memory and no pool.
/// Inputs are the <c>inputs</c> columns as tensors (float32 [B, dims...], int64 [B] for DateTime/Key); the target is
/// the <c>target</c> column (float32 [B, dims...] or int64 [B] class indices for a Key).
/// </summary>
internal sealed class DataViewBatchSource : BatchSource
{
    private readonly IDataView _data;
    private readonly TorchInputColumn[] _columns;
    private readonly int[] _indices;
    private readonly int _poolSize;
    private readonly bool _rejectNonFinite;
    private readonly bool[]? _rowMask;
    private readonly bool _keep;
    private Dictionary<DataViewRowId, long>? _rowOfId;
    private int? _count;

    /// <param name="data">The rows.</param>
    /// <param name="inputs">Model input columns, in the order the model receives them.</param>
    /// <param name="target">The target column.</param>
    /// <param name="shufflePoolSize">Rows held for shuffling (at least 1).</param>
    /// <param name="rejectNonFinite">Throw on NaN/infinity in float columns, naming column and row.</param>
    /// <param name="purpose">Names the data in errors, e.g. "ImageClassifier training data".</param>
    /// <param name="rowMask">With <paramref name="keep"/>: only rows whose mask entry equals it (by row index), e.g. a
    /// validation split of one view; null takes every row.</param>
    /// <param name="keep">The mask value of the rows taken.</param>
    public DataViewBatchSource(IDataView data, IReadOnlyList<TorchInputColumn> inputs, TorchInputColumn target,
        int shufflePoolSize, bool rejectNonFinite, string purpose, bool[]? rowMask = null, bool keep = true)
    {
        _rowMask = rowMask;
        _keep = keep;
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shufflePoolSize);
        _data = data;
        _columns = inputs.Append(target).ToArray();
        _indices = new int[_columns.Length];
        for (int i = 0; i < _columns.Length; i++)
        {
            var column = data.Schema.GetColumnOrNull(_columns[i].Name)
                ?? throw new ArgumentOutOfRangeException(nameof(data), $"{purpose}: column '{_columns[i].Name}' was not found; " +
                    $"expected {_columns[i].Describe()}. Available columns: {string.Join(", ", data.Schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}.");
            _indices[i] = column.Index;
        }
        _poolSize = shufflePoolSize;
        _rejectNonFinite = rejectNonFinite;
        ShufflesInView = data.CanShuffle && Interop.DataViewChains.Root(data) is IRandomOrderDataView;
    }

    /// <summary>Whether epochs are shuffled by the view's own random-order cursor (no shuffle pool).</summary>
    internal bool ShufflesInView { get; }

    /// <summary>Rows in the view (counted by one cursor pass when the view does not know it).</summary>
    public override int Count => _count ??= CountRows();

    /// <summary>Random access is not possible on a stream; the engine uses <see cref="EpochBatches"/>.</summary>
    public override TrainingBatch CreateBatch(ReadOnlySpan<int> rows, Device device) =>
        throw new NotSupportedException("A streamed data view has no random access; enumerate EpochBatches instead.");

    /// <inheritdoc/>
    public override IEnumerable<TrainingBatch> EpochBatches(int batchSize, bool dropLast, Random? shuffle, Device device)
    {
        var needed = _indices.Select(i => _data.Schema[i]).ToArray();
        if (shuffle is not null && ShufflesInView && RowOfId() is { } rowOf)
        {
            // The view's own shuffled cursor: rows arrive in a random order, each read once; a row's index (for the
            // row mask and for errors) comes from its id, which ML.NET keeps the same in every cursor of a view.
            using var shuffled = SingleCursor.Open(_data, needed, shuffle);
            var idOf = shuffled.GetIdGetter();
            DataViewRowId id = default;
            foreach (var batch in InOrder(shuffled, () => { idOf(ref id); return rowOf[id]; }, batchSize, dropLast, device))
                yield return batch;
            yield break;
        }
        using var cursor = SingleCursor.Open(_data, needed);
        if (shuffle is null)
        {
            foreach (var batch in InOrder(cursor, () => cursor.Position, batchSize, dropLast, device)) yield return batch;
            yield break;
        }
        // The pool never needs more slots than there are rows (a pool size "larger than the data" asks for a full shuffle).
        int capacity = Math.Max(1, Math.Min(_poolSize, Count));
        var staged = BatchScorer.ForReading(_columns, _indices, cursor, capacity, _rejectNonFinite);
        int inBatch = 0;
        // Pool shuffle: fill the pool, then every new row replaces a randomly chosen pooled row, which is emitted.
        var pending = BatchScorer.ForReading(_columns, _indices, cursor, batchSize, _rejectNonFinite);
        int pooled = 0;
        while (cursor.MoveNext())
        {
            if (!Takes(cursor.Position)) continue;
            if (pooled < capacity)
            {
                staged.ReadRow(pooled++, cursor.Position);
                continue;
            }
            int pick = shuffle.Next(capacity);
            Copy(staged, pick, pending, inBatch);
            staged.ReadRow(pick, cursor.Position);
            if (++inBatch == batchSize) { yield return Build(pending, batchSize, device); inBatch = 0; }
        }
        // Drain the pool in a random order (Fisher–Yates).
        var rest = new int[pooled];
        for (int i = 0; i < pooled; i++) rest[i] = i;
        for (int i = pooled - 1; i > 0; i--)
        {
            int j = shuffle.Next(i + 1);
            (rest[i], rest[j]) = (rest[j], rest[i]);
        }
        foreach (int slot in rest)
        {
            Copy(staged, slot, pending, inBatch);
            if (++inBatch == batchSize) { yield return Build(pending, batchSize, device); inBatch = 0; }
        }
        if (inBatch > 0 && !dropLast) yield return Build(pending, inBatch, device);
    }

    // The cursor's rows in its order, straight into the batch slots; rowIndex gives the current row's index in the view.
    private IEnumerable<TrainingBatch> InOrder(DataViewRowCursor cursor, Func<long> rowIndex, int batchSize, bool dropLast,
        Device device)
    {
        var staged = BatchScorer.ForReading(_columns, _indices, cursor, batchSize, _rejectNonFinite);
        int inBatch = 0;
        while (cursor.MoveNext())
        {
            long row = rowIndex();
            if (!Takes(row)) continue;
            staged.ReadRow(inBatch, row);
            if (++inBatch == batchSize) { yield return Build(staged, batchSize, device); inBatch = 0; }
        }
        if (inBatch > 0 && !dropLast) yield return Build(staged, inBatch, device);
    }

    // Row index of each row id, from one pass that reads no column; null (use the pool) when ids repeat.
    private Dictionary<DataViewRowId, long>? RowOfId()
    {
        if (_rowOfId is not null) return _rowOfId;
        var rows = new Dictionary<DataViewRowId, long>();
        using var cursor = _data.GetRowCursor(Array.Empty<DataViewSchema.Column>());
        var idOf = cursor.GetIdGetter();
        DataViewRowId id = default;
        while (cursor.MoveNext())
        {
            idOf(ref id);
            if (!rows.TryAdd(id, cursor.Position)) return null;
        }
        return _rowOfId = rows;
    }

    private void Copy(BatchScorer from, int fromSlot, BatchScorer to, int toSlot)
    {
        for (int c = 0; c < _columns.Length; c++)
        {
            if (_columns[c].IsBag)
            {
                // Swap the slots' arrays: the source slot is refilled (or never read) after this.
                var (fromBags, toBags) = (from.BagInputs[c]!, to.BagInputs[c]!);
                (fromBags[fromSlot], toBags[toSlot]) = (toBags[toSlot], fromBags[fromSlot]);
                to.BagLengths[c]![toSlot] = from.BagLengths[c]![fromSlot];
                continue;
            }
            if (from.FloatInputs[c] is { } values)
            {
                int size = _columns[c].Size;
                values.AsSpan(fromSlot * size, size).CopyTo(to.FloatInputs[c].AsSpan(toSlot * size, size));
            }
            else to.TickInputs[c]![toSlot] = from.TickInputs[c]![fromSlot];
        }
    }

    private TrainingBatch Build(BatchScorer staged, int count, Device device)
    {
        var tensors = new Tensor?[_columns.Length];
        var masks = new List<Tensor>();
        for (int c = 0; c < _columns.Length; c++)
        {
            var spec = _columns[c];
            if (spec.IsBag)
            {
                var (instances, mask) = BagTensors.Pad(staged.BagInputs[c]!, staged.BagLengths[c]!, count, spec.Size);
                tensors[c] = device.type == DeviceType.CPU ? instances : instances.to(device);
                masks.Add(device.type == DeviceType.CPU ? mask : mask.to(device));
                continue;
            }
            var shape = new long[1 + spec.Dimensions.Count];
            shape[0] = count;
            for (int d = 0; d < spec.Dimensions.Count; d++) shape[d + 1] = spec.Dimensions[d];
            Tensor t;
            if (staged.FloatInputs[c] is { } values)
            {
                t = empty(shape, ScalarType.Float32);
                TensorSpans.Write(t, new ReadOnlySpan<float>(values, 0, count * spec.Size));
            }
            else
            {
                t = empty(shape, ScalarType.Int64);
                TensorSpans.Write(t, new ReadOnlySpan<long>(staged.TickInputs[c], 0, count));
            }
            tensors[c] = device.type == DeviceType.CPU ? t : t.to(device);
        }
        var target = tensors[^1]!;
        // Bag masks follow the last input column (TorchColumnKind.Bag), as in scoring.
        return new TrainingBatch(tensors[..^1].Concat(masks).ToArray(), target, count);
    }

    private bool Takes(long position) => _rowMask is null || position < _rowMask.Length && _rowMask[position] == _keep;

    private int CountRows()
    {
        if (_rowMask is not null) return _rowMask.Count(m => m == _keep);
        if (_data.GetRowCount() is long known) return checked((int)known);
        int rows = 0;
        using var cursor = _data.GetRowCursor(Array.Empty<DataViewSchema.Column>());
        while (cursor.MoveNext()) rows++;
        return rows;
    }
}
