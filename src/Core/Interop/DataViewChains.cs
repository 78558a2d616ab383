using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Interop;

/// <summary>
/// The view at the bottom of a chain of ML.NET transforms (<c>IDataTransform.Source</c>, internal in ML.NET 5): the
/// training engine asks it whether the chain can be shuffled without a pool (<see cref="Data.IRandomOrderDataView"/>).
/// </summary>
internal static class DataViewChains
{
    /// <summary>The first view down <paramref name="view"/>'s chain of transforms that is not a transform.</summary>
    public static IDataView Root(IDataView view)
    {
        // A transform's cursor passes its Random to its source's cursor (that is what CanShuffle promises), so the
        // root's order is the chain's order.
        for (int depth = 0; depth < 1000 && view is IDataTransform transform; depth++) view = transform.Source;
        return view;
    }
}
