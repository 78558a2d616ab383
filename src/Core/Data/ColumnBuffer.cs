using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Data;

/// <summary>Holds the values of one pass-through column for the rows of the current scoring batch, so that a cursor
/// that reads a batch ahead still serves every row's own values.</summary>
internal abstract class ColumnBuffer
{
    /// <summary>Reads the source row's current value into <paramref name="slot"/>.</summary>
    public abstract void Capture(int slot);

    /// <summary>A getter serving the value at the slot returned by <paramref name="currentSlot"/>.</summary>
    public abstract ValueGetter<TValue> GetGetter<TValue>(Func<int> currentSlot, DataViewSchema.Column column);

    public static ColumnBuffer Create(DataViewRow source, DataViewSchema.Column column, int capacity)
    {
        var raw = column.Type.RawType;
        Type bufferType = column.Type is VectorDataViewType vector
            ? typeof(VBufferColumnBuffer<>).MakeGenericType(vector.ItemType.RawType)
            : typeof(ValueColumnBuffer<>).MakeGenericType(raw);
        return (ColumnBuffer)Activator.CreateInstance(bufferType, source, column, capacity)!;
    }

    protected static InvalidOperationException WrongType(Type requested, DataViewSchema.Column column) =>
        new($"Invalid TValue in GetGetter for column '{column.Name}': '{requested}', expected type: '{column.Type.RawType}'.");
}

/// <summary>Scalars and other non-vector values (including reference types such as images: the source getter writes
/// straight into the slot, so a getter that disposes the previous value only touches a value already served).</summary>
internal sealed class ValueColumnBuffer<T> : ColumnBuffer
{
    private readonly ValueGetter<T> _getter;
    private readonly T[] _values;

    public ValueColumnBuffer(DataViewRow source, DataViewSchema.Column column, int capacity)
    {
        _getter = source.GetGetter<T>(column);
        _values = new T[capacity];
    }

    public override void Capture(int slot) => _getter(ref _values[slot]);

    public override ValueGetter<TValue> GetGetter<TValue>(Func<int> currentSlot, DataViewSchema.Column column)
    {
        if (typeof(TValue) != typeof(T))
            throw WrongType(typeof(TValue), column);
        var values = (TValue[])(object)_values;
        return (ref TValue value) => value = values[currentSlot()];
    }
}

/// <summary>Vectors: copied out of the source's buffers (which the source may reuse for the next row).</summary>
internal sealed class VBufferColumnBuffer<TItem> : ColumnBuffer
{
    private readonly ValueGetter<VBuffer<TItem>> _getter;
    private readonly VBuffer<TItem>[] _values;
    private VBuffer<TItem> _scratch;

    public VBufferColumnBuffer(DataViewRow source, DataViewSchema.Column column, int capacity)
    {
        _getter = source.GetGetter<VBuffer<TItem>>(column);
        _values = new VBuffer<TItem>[capacity];
    }

    public override void Capture(int slot)
    {
        _getter(ref _scratch);
        _scratch.CopyTo(ref _values[slot]);
    }

    public override ValueGetter<TValue> GetGetter<TValue>(Func<int> currentSlot, DataViewSchema.Column column)
    {
        if (typeof(TValue) != typeof(VBuffer<TItem>))
            throw WrongType(typeof(TValue), column);
        ValueGetter<VBuffer<TItem>> getter = (ref VBuffer<TItem> value) => _values[currentSlot()].CopyTo(ref value);
        return (ValueGetter<TValue>)(Delegate)getter;
    }
}
