using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Data;

/// <summary>
/// One cursor over a whole view, asked for as a cursor set of one. <c>GetRowCursor</c> on an ML.NET transform whose
/// new column is active (e.g. the key of <c>MapValueToKey("Label")</c>) splits a source that gives one cursor into
/// parallel cursors and consolidates them again, copying every row's values twice through its pipes: 7.6 MB per
/// 1,000-instance bag of a lazy .h5 cohort, garbage the GC collects late. That is asked for only when a needed column
/// is a variable-size vector (a bag: up to hundreds of MB a row); fixed-size rows (pixels, windows) keep ML.NET's
/// split, which decodes and resizes images on parallel threads.
/// </summary>
internal static class SingleCursor
{
    /// <summary>A cursor over every row of <paramref name="data"/> (in <paramref name="rand"/>'s order when the view
    /// shuffles); with a bag column among <paramref name="columns"/>, without ML.NET's split-and-consolidate.</summary>
    public static DataViewRowCursor Open(IDataView data, IEnumerable<DataViewSchema.Column> columns, Random? rand = null)
    {
        var needed = columns as DataViewSchema.Column[] ?? columns.ToArray();
        if (!needed.Any(c => c.Type is VectorDataViewType { IsKnownSize: false })) return data.GetRowCursor(needed, rand);
        var set = data.GetRowCursorSet(needed, 1, rand);
        if (set.Length == 1) return set[0];
        foreach (var cursor in set) cursor.Dispose();
        return data.GetRowCursor(needed, rand);
    }
}
