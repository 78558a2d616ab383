using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>Column names of a window view (one row per window of a series).</summary>
/// <param name="Lookback">Vector&lt;Single, L, N&gt; of the lookback rows, time-major.</param>
/// <param name="Timestamp">DateTime of the window's last lookback row (only when the series has timestamps).</param>
/// <param name="Target">Vector&lt;Single, S, N&gt; of the next S rows (only when a horizon is given).</param>
internal sealed record WindowColumnNames(string Lookback, string Timestamp, string Target);

/// <summary>
/// The windows of a <see cref="TimeSeriesFrame"/> served as an <see cref="IDataView"/> without copying the series: a
/// window ends at every row from L − 1 on (windows slide by one, the papers' protocol), and with a horizon S only
/// windows with a complete target are served. Missing values stay NaN.
/// </summary>
internal sealed class WindowDataView : IndexedDataView
{
    private readonly TimeSeriesFrame _frame;
    private readonly int _lookback, _horizon;

    public WindowDataView(TimeSeriesFrame frame, int lookback, int horizon, WindowColumnNames names)
        : base(SchemaOf(frame.Columns.Count, lookback, horizon, frame.Timestamps is not null, names),
            Math.Max(0, frame.Rows - lookback - horizon + 1))
    {
        _frame = frame;
        _lookback = lookback;
        _horizon = horizon;
    }

    /// <summary>The schema of the windows of a series with <paramref name="variates"/> columns.</summary>
    public static DataViewSchema SchemaOf(int variates, int lookback, int horizon, bool timestamps, WindowColumnNames names)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(names.Lookback, new VectorDataViewType(NumberDataViewType.Single, lookback, variates));
        if (timestamps) builder.AddColumn(names.Timestamp, DateTimeDataViewType.Instance);
        if (horizon > 0) builder.AddColumn(names.Target, new VectorDataViewType(NumberDataViewType.Single, horizon, variates));
        return builder.ToSchema();
    }

    protected override Delegate CreateGetter(DataViewSchema.Column column, Func<long> position, IDisposable? state)
    {
        var frame = _frame;
        int n = frame.Columns.Count, l = _lookback, s = _horizon;
        if (column.Type is not VectorDataViewType)
            return (ValueGetter<DateTime>)((ref DateTime value) => value = frame.Timestamps![checked((int)position()) + l - 1]);
        // Lookback rows start at the window start; target rows right after the lookback.
        bool target = column.Index == Schema.Count - 1 && s > 0;
        int rows = target ? s : l, offset = target ? l : 0;
        return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
        {
            var editor = VBufferEditor.Create(ref value, rows * n);
            frame.Values.AsSpan((checked((int)position()) + offset) * n, rows * n).CopyTo(editor.Values);
            value = editor.Commit();
        });
    }
}
