using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Data;

namespace MLNet.Attention.MultipleInstance;

/// <summary>One fold of a bag-level cross-validation: the bags to train on and the held-out bags.</summary>
/// <param name="Fold">0-based fold index.</param>
/// <param name="Train">The other folds' bags.</param>
/// <param name="Test">This fold's bags.</param>
public sealed record BagFold(int Fold, IDataView Train, IDataView Test);

/// <summary>
/// Stratified k-fold splits of a bag view (one row per bag), as CLAM's <c>--k</c> and the MIL benchmarks' 10-fold
/// protocol: every fold holds each class in proportion, the assignment is reproducible from the seed, and the folds
/// are views over the source (nothing is copied). Features are standardised on the training folds by the trainers
/// themselves (<see cref="AttentionMilOptions.StandardizeFeatures"/>).
/// </summary>
public static class BagFolds
{
    /// <summary>Splits <paramref name="bags"/> into <paramref name="folds"/> stratified folds by the label column
    /// (Boolean, Key, Text or a number).</summary>
    /// <param name="bags">One row per bag.</param>
    /// <param name="folds">k ≥ 2; at most the number of bags.</param>
    /// <param name="labelColumnName">The bag label.</param>
    /// <param name="seed">Seed of the assignment.</param>
    public static IReadOnlyList<BagFold> Stratified(IDataView bags, int folds, string labelColumnName = "Label", int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(bags);
        var column = bags.Schema.GetColumnOrNull(labelColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(labelColumnName), $"BagFolds: label column '{labelColumnName}' was not " +
                $"found. Available columns: {string.Join(", ", bags.Schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}.");
        var labels = ReadLabels(bags, column);
        if (folds < 2 || folds > labels.Count)
            throw new ArgumentOutOfRangeException(nameof(folds), folds, $"BagFolds: folds must be between 2 and the number of bags ({labels.Count}).");
        var random = new Random(seed);
        var assignment = new int[labels.Count];
        int next = 0;
        // Each class is shuffled and dealt round-robin, continuing where the previous class stopped, so fold sizes
        // differ by at most one.
        foreach (var group in Enumerable.Range(0, labels.Count).GroupBy(r => labels[r]).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var rows = group.ToArray();
            for (int i = rows.Length - 1; i > 0; i--)
            {
                int j = random.Next(i + 1);
                (rows[i], rows[j]) = (rows[j], rows[i]);
            }
            foreach (int r in rows) assignment[r] = next++ % folds;
        }
        return Enumerable.Range(0, folds).Select(f => new BagFold(f,
            new RowSubsetDataView(bags, assignment.Select(a => a != f).ToArray()),
            new RowSubsetDataView(bags, assignment.Select(a => a == f).ToArray()))).ToArray();
    }

    private static List<string> ReadLabels(IDataView data, DataViewSchema.Column column)
    {
        var labels = new List<string>();
        using var cursor = data.GetRowCursor(new[] { column });
        Func<string> read = column.Type switch
        {
            BooleanDataViewType => Reader<bool>(cursor, column),
            KeyDataViewType => Reader<uint>(cursor, column),
            TextDataViewType => Reader<ReadOnlyMemory<char>>(cursor, column),
            _ when column.Type == NumberDataViewType.Single => Reader<float>(cursor, column),
            _ when column.Type == NumberDataViewType.Double => Reader<double>(cursor, column),
            _ when column.Type == NumberDataViewType.Int32 => Reader<int>(cursor, column),
            _ when column.Type == NumberDataViewType.Int64 => Reader<long>(cursor, column),
            _ => throw new ArgumentOutOfRangeException(nameof(column), $"BagFolds: label column '{column.Name}' has type {column.Type}; " +
                "expected a Boolean, Key, Text or numeric scalar."),
        };
        while (cursor.MoveNext()) labels.Add(read());
        return labels;
    }

    private static Func<string> Reader<T>(DataViewRow row, DataViewSchema.Column column)
    {
        var getter = row.GetGetter<T>(column);
        T value = default!;
        return () => { getter(ref value); return value!.ToString()!; };
    }
}
