using Microsoft.ML;
using MLNet.Attention.MultipleInstance;

namespace MLNet.Attention;

/// <summary>Whole-slide feature bags (CLAM/TRIDENT <c>.h5</c> feature files) on <c>mlContext.Data</c>.</summary>
public static class FeatureBagsCatalogExtensions
{
    /// <summary>
    /// Loads CLAM/TRIDENT feature files lazily as bags, one row per file: <c>SlideId</c> (Text, the file name without
    /// <c>.h5</c>), <c>Features</c> (variable-size Vector&lt;Single&gt; of N × D values with the <c>InstanceSize</c>
    /// annotation D), <c>Coordinates</c> (variable-size Vector&lt;Int64&gt; of N × 2 level-0 x, y; empty for a file
    /// without <c>coords</c>) and <c>InstanceCount</c> (Int32). Only the first file is opened here (for D); each other
    /// file is opened when its row is read, so a cohort of any size streams with one bag in memory. See
    /// <see cref="FeatureBagDataView"/>.
    /// </summary>
    /// <param name="catalog">mlContext.Data.</param>
    /// <param name="paths">The .h5 feature files, one per slide.</param>
    public static FeatureBagDataView LoadFeatureBags(this DataOperationsCatalog catalog, IEnumerable<string> paths)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(paths);
        return new FeatureBagDataView(paths.ToArray(), null, null);
    }

    /// <summary>
    /// Loads the slides of a CLAM dataset CSV (<c>case_id,slide_id,label</c>, as CLAM's <c>dataset_csv/*.csv</c>) as
    /// lazy bags: the columns of <see cref="LoadFeatureBags(DataOperationsCatalog, IEnumerable{string})"/> with
    /// <c>SlideId</c> from <c>slide_id</c> and <c>Label</c> (Text; map it with <c>MapValueToKey</c>) from
    /// <paramref name="labelColumn"/>. Each slide's file is <c>&lt;featureDirectory&gt;/&lt;slide_id&gt;.h5</c> (CLAM's
    /// <c>&lt;featureDirectory&gt;/h5_files/&lt;slide_id&gt;.h5</c> is found too); slides without a file are listed in
    /// one error.
    /// </summary>
    /// <param name="catalog">mlContext.Data.</param>
    /// <param name="csvPath">The dataset CSV: a header row, then one row per slide.</param>
    /// <param name="featureDirectory">The folder of the .h5 feature files.</param>
    /// <param name="labelColumn">The CSV column of the slide labels; null for a view without <c>Label</c>.</param>
    public static FeatureBagDataView LoadFeatureBags(this DataOperationsCatalog catalog, string csvPath,
        string featureDirectory, string? labelColumn = "label")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return FeatureBagDataView.FromClamCsv(csvPath, featureDirectory, labelColumn);
    }
}
