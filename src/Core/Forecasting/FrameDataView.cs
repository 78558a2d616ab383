using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>A <see cref="TimeSeriesFrame"/> served as an <see cref="IDataView"/> (no copy): one Single column per
/// variate and, with timestamps, one DateTime column (and optional Boolean missing-value indicators of the first
/// variates: true where the value is NaN). Cursors read the frame in row order.</summary>
internal sealed class FrameDataView : IndexedDataView
{
    private readonly TimeSeriesFrame _frame;
    private readonly int _firstIndicator;

    public FrameDataView(TimeSeriesFrame frame, string timestampColumnName, IReadOnlyList<string>? missingIndicators = null)
        : base(SchemaOf(frame, timestampColumnName, missingIndicators ?? Array.Empty<string>()), frame.Rows)
    {
        _frame = frame;
        _firstIndicator = frame.Columns.Count + (frame.Timestamps is null ? 0 : 1);
    }

    private static DataViewSchema SchemaOf(TimeSeriesFrame frame, string timestampColumnName, IReadOnlyList<string> indicators)
    {
        var builder = new DataViewSchema.Builder();
        foreach (var name in frame.Columns) builder.AddColumn(name, NumberDataViewType.Single);
        if (frame.Timestamps is not null)
        {
            if (frame.Columns.Contains(timestampColumnName))
                throw new ArgumentException($"The timestamp column name '{timestampColumnName}' is also a variate's name; " +
                    "pass another timestampColumnName.", nameof(timestampColumnName));
            builder.AddColumn(timestampColumnName, DateTimeDataViewType.Instance);
        }
        foreach (var name in indicators) builder.AddColumn(name, BooleanDataViewType.Instance);
        return builder.ToSchema();
    }

    protected override Delegate CreateGetter(DataViewSchema.Column column, Func<long> position, IDisposable? state)
    {
        var frame = _frame;
        int variates = frame.Columns.Count;
        if (column.Index < variates)
        {
            int n = column.Index;
            return (ValueGetter<float>)((ref float value) => value = frame.Values[checked((int)position()) * variates + n]);
        }
        if (column.Index >= _firstIndicator)
        {
            int n = column.Index - _firstIndicator;
            return (ValueGetter<bool>)((ref bool value) =>
                value = float.IsNaN(frame.Values[checked((int)position()) * variates + n]));
        }
        return (ValueGetter<DateTime>)((ref DateTime value) => value = frame.Timestamps![checked((int)position())]);
    }
}
