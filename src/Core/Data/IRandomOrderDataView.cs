using Microsoft.ML;

namespace MLNet.Attention.Data;

/// <summary>
/// A view whose <c>GetRowCursor(columns, rand)</c> visits every row exactly once in a uniformly random order drawn
/// from <c>rand</c> (a full permutation, reproducible from the seed), reading each row only when it is visited. The
/// training engine then shuffles with the view itself instead of holding a shuffle pool of rows in memory: a cohort of
/// slides (one .h5 file per row) trains fully shuffled with one bag in memory, as CLAM's data loader does.
/// </summary>
internal interface IRandomOrderDataView : IDataView
{
}
