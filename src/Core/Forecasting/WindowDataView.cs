using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>Column names of a window view (one row per window of a series).</summary>
/// <param name="Lookback">Vector&lt;Single, L, C&gt; of the lookback rows, time-major (every channel).</param>
/// <param name="Timestamp">DateTime of the window's last lookback row (only when the series has timestamps).</param>
/// <param name="Target">Vector&lt;Single, S, N&gt; of the next S rows' variates (only with targets).</param>
/// <param name="FutureCovariates">Vector&lt;Single, S, F&gt; of the next S rows' known-future covariates (only with
/// them).</param>
internal sealed record WindowColumnNames(string Lookback, string Timestamp, string Target,
    string FutureCovariates = "FutureCovariates");

/// <summary>The shape of a window view: channels C per row (the first N are the variates, the last F known-future
/// covariates), lookback L, horizon S (rows after each window: targets and/or future covariates).</summary>
internal sealed record WindowLayout(int Channels, int Variates, int FutureCovariates, int Lookback, int Horizon,
    bool WithTargets)
{
    /// <summary>Windows of a plain series: every channel a variate, targets when <paramref name="horizon"/> > 0.</summary>
    public static WindowLayout Plain(int variates, int lookback, int horizon) =>
        new(variates, variates, 0, lookback, horizon, horizon > 0);

    /// <summary>Rows after each window the view needs (0 for scoring windows without future covariates).</summary>
    public int RowsAfter => WithTargets || FutureCovariates > 0 ? Horizon : 0;
}

/// <summary>
/// The windows of a <see cref="TimeSeriesFrame"/> served as an <see cref="IDataView"/> without copying the series: a
/// window ends at every row from L − 1 on (windows slide by one, the papers' protocol), and only windows with their
/// complete horizon rows (targets, future covariates) are served. Missing values stay NaN.
/// </summary>
internal sealed class WindowDataView : IndexedDataView
{
    private readonly TimeSeriesFrame _frame;
    private readonly WindowLayout _layout;
    private readonly WindowColumnNames _names;

    public WindowDataView(TimeSeriesFrame frame, WindowLayout layout, WindowColumnNames names)
        : base(SchemaOf(layout, frame.Timestamps is not null, names),
            Math.Max(0, frame.Rows - layout.Lookback - layout.RowsAfter + 1))
    {
        _frame = frame;
        _layout = layout;
        _names = names;
    }

    /// <summary>The schema of the windows: Lookback, [Timestamp], [FutureCovariates], [Target].</summary>
    public static DataViewSchema SchemaOf(WindowLayout layout, bool timestamps, WindowColumnNames names)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(names.Lookback, new VectorDataViewType(NumberDataViewType.Single, layout.Lookback, layout.Channels));
        if (timestamps) builder.AddColumn(names.Timestamp, DateTimeDataViewType.Instance);
        if (layout.FutureCovariates > 0)
            builder.AddColumn(names.FutureCovariates,
                new VectorDataViewType(NumberDataViewType.Single, layout.Horizon, layout.FutureCovariates));
        if (layout.WithTargets)
            builder.AddColumn(names.Target, new VectorDataViewType(NumberDataViewType.Single, layout.Horizon, layout.Variates));
        return builder.ToSchema();
    }

    protected override Delegate CreateGetter(DataViewSchema.Column column, Func<long> position, IDisposable? state) =>
        Getter(_frame, _layout, _names, column, position);

    /// <summary>The getter of a window column (shared with the series-scoring view): window w starts at row w.</summary>
    internal static Delegate Getter(TimeSeriesFrame frame, WindowLayout layout, WindowColumnNames names,
        DataViewSchema.Column column, Func<long> position)
    {
        int c = layout.Channels, l = layout.Lookback, s = layout.Horizon;
        if (column.Name == names.Timestamp && column.Type is DateTimeDataViewType)
            return (ValueGetter<DateTime>)((ref DateTime value) => value = frame.Timestamps![checked((int)position()) + l - 1]);
        // Lookback rows start at the window start (all channels); the horizon rows follow: the first N channels are
        // the target, the last F the future covariates.
        var (rows, offset, first, width) =
            column.Name == names.Lookback ? (l, 0, 0, c)
            : column.Name == names.Target ? (s, l, 0, layout.Variates)
            : (s, l, c - layout.FutureCovariates, layout.FutureCovariates);
        return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
        {
            var editor = VBufferEditor.Create(ref value, rows * width);
            var source = frame.Values.AsSpan((checked((int)position()) + offset) * c, rows * c);
            if (width == c) source.CopyTo(editor.Values);
            else
                for (int t = 0; t < rows; t++)
                    source.Slice(t * c + first, width).CopyTo(editor.Values.Slice(t * width, width));
            value = editor.Commit();
        });
    }
}
