using Microsoft.ML;

namespace MLNet.Attention.Data;

/// <summary>
/// One cursor over a whole view, asked for as a cursor set of one. <c>GetRowCursor</c> on an ML.NET transform whose
/// new column is active (e.g. the key of <c>MapValueToKey("Label")</c>) splits a source that gives one cursor into
/// parallel cursors and consolidates them again, copying every row's values twice through its pipes: 7.6 MB per
/// 1,000-instance bag of a lazy .h5 cohort, garbage the GC collects late. The engine reads rows one at a time on one
/// thread, so the split buys nothing.
/// </summary>
internal static class SingleCursor
{
    /// <summary>A cursor over every row of <paramref name="data"/> (in <paramref name="rand"/>'s order when the view
    /// shuffles), without ML.NET's split-and-consolidate.</summary>
    public static DataViewRowCursor Open(IDataView data, IEnumerable<DataViewSchema.Column> columns, Random? rand = null)
    {
        var needed = columns as DataViewSchema.Column[] ?? columns.ToArray();
        var set = data.GetRowCursorSet(needed, 1, rand);
        if (set.Length == 1) return set[0];
        foreach (var cursor in set) cursor.Dispose();
        return data.GetRowCursor(needed, rand);
    }
}
