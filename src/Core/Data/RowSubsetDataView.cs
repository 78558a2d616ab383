using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Data;

/// <summary>The rows of a source view whose position is selected by a mask (a fold of a cross-validation), read
/// through the source's cursor: nothing is copied.</summary>
internal sealed class RowSubsetDataView : IDataView
{
    private readonly IDataView _source;
    private readonly bool[] _take;
    private readonly long _count;

    public RowSubsetDataView(IDataView source, bool[] take)
    {
        _source = source;
        _take = take;
        _count = take.LongCount(t => t);
    }

    public bool CanShuffle => false;

    public DataViewSchema Schema => _source.Schema;

    public long? GetRowCount() => _count;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(_source.GetRowCursor(columnsNeeded), _take);

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor(DataViewRowCursor source, bool[] take) : DataViewRowCursor
    {
        private long _position = -1;

        public override DataViewSchema Schema => source.Schema;
        public override long Position => _position;
        public override long Batch => 0;

        public override bool MoveNext()
        {
            while (source.MoveNext())
            {
                long row = source.Position;
                if (row < take.Length && take[row])
                {
                    _position++;
                    return true;
                }
            }
            return false;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => source.GetGetter<TValue>(column);
        public override ValueGetter<DataViewRowId> GetIdGetter() => source.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => source.IsColumnActive(column);

        protected override void Dispose(bool disposing)
        {
            if (disposing) source.Dispose();
            base.Dispose(disposing);
        }
    }
}
