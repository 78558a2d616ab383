using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Data;
using MLNet.Attention.Engine;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Engine;

/// <summary>Training batches streamed from an IDataView: one cursor per epoch, pool shuffling, the scoring readers.</summary>
[TestClass]
public sealed class DataViewBatchSourceTests
{
    private sealed class Row
    {
        [VectorType(3)] public float[] Features { get; set; } = new float[3];
        public float Id { get; set; }
        public string Label { get; set; } = "";
    }

    private static IEnumerable<Row> Rows(int count, Action? onRow = null)
    {
        for (int i = 0; i < count; i++)
        {
            onRow?.Invoke();
            yield return new Row { Features = new[] { i, 2f * i, i % 3 }, Id = i, Label = i % 2 == 0 ? "even" : "odd" };
        }
    }

    private static List<float> Ids(BatchSource source, Random? shuffle, int batchSize = 32, bool dropLast = false)
    {
        var ids = new List<float>();
        foreach (var batch in source.EpochBatches(batchSize, dropLast, shuffle, CPU))
        {
            using var scope = NewDisposeScope();
            Assert.AreEqual(batch.Rows, (int)batch.Target.shape[0]);
            var features = batch.Inputs[0]!.data<float>().ToArray();
            var target = batch.Target.data<float>().ToArray();
            for (int r = 0; r < batch.Rows; r++)
                Assert.AreEqual(2 * target[r], features[r * 3 + 1], "features and target stay together");
            ids.AddRange(target);
        }
        return ids;
    }

    [TestMethod]
    public void EachEpochStreamsEveryRowOnceShuffledReproducibly()
    {
        var ml = new MLContext(1);
        int enumerated = 0;
        var data = ml.Data.LoadFromEnumerable(Rows(1000, () => enumerated++));
        var source = new DataViewBatchSource(data, new[] { TorchInputColumn.Single("Features", 3) }, TorchInputColumn.Single("Id"),
            shufflePoolSize: 100, rejectNonFinite: true, "test data");
        Assert.AreEqual(1000, source.Count);
        Assert.AreEqual(1000, Ids(source, null).Count);
        CollectionAssert.AreEqual(Enumerable.Range(0, 1000).Select(i => (float)i).ToArray(), Ids(source, null).ToArray(), "in order without shuffling");

        var first = Ids(source, new Random(7));
        var again = Ids(source, new Random(7));
        var other = Ids(source, new Random(8));
        CollectionAssert.AreEqual(first, again, "same seed, same order");
        CollectionAssert.AreNotEqual(first, other);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 1000).Select(i => (float)i).ToArray(), first.ToArray(), "a permutation");
        Assert.IsTrue(first.Take(100).Any(id => id >= 100), "rows beyond the first pool enter early");
        CollectionAssert.AreNotEqual(Enumerable.Range(0, 100).Select(i => (float)i).ToArray(), first.Take(100).ToArray());
        Assert.IsTrue(enumerated >= 4000, "every epoch reads the source again (nothing is materialised)");
        Assert.AreEqual(992, Ids(source, new Random(1), dropLast: true).Count, "drop-last: 31 full batches of 32");
    }

    [TestMethod]
    public void APoolLargerThanTheDataIsAFullShuffleSizedToTheRows()
    {
        // A pool "larger than the data" (int.MaxValue) must not allocate int.MaxValue slots of a wide row.
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Rows(300));
        var source = new DataViewBatchSource(data, new[] { TorchInputColumn.Single("Features", 3) }, TorchInputColumn.Single("Id"),
            shufflePoolSize: int.MaxValue, rejectNonFinite: true, "test data");
        var ids = Ids(source, new Random(3));
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 300).Select(i => (float)i).ToArray(), ids.ToArray());
        Assert.IsTrue(ids.Take(30).Any(id => id >= 270), "a full shuffle draws from the whole data at once");
    }

    [TestMethod]
    public void KeyLabelsArriveAsClassIndicesAndBadRowsNameColumnAndRow()
    {
        var ml = new MLContext(1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Rows(200))).Transform(ml.Data.LoadFromEnumerable(Rows(200)));
        var source = new DataViewBatchSource(data, new[] { TorchInputColumn.Single("Features", 3) }, TorchInputColumn.Key("Label"), 64, true, "test data");
        // Key labels arrive as 0-based class indices (int64), the target a classifier's cross-entropy takes.
        foreach (var batch in source.EpochBatches(50, false, null, CPU))
        {
            using var scope = NewDisposeScope();
            Assert.AreEqual(ScalarType.Int64, batch.Target.dtype);
            var labels = batch.Target.data<long>().ToArray();
            Assert.IsTrue(labels.All(l => l is 0 or 1));
        }

        // A row with a missing key (value not in the key map) fails with the column, the row and the fix.
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Rows(1)));   // knows "even" only
        var missing = keys.Transform(ml.Data.LoadFromEnumerable(Rows(4)));
        var bad = new DataViewBatchSource(missing, new[] { TorchInputColumn.Single("Features", 3) }, TorchInputColumn.Key("Label"), 8, true, "test data");
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => bad.EpochBatches(4, false, null, CPU).ToList());
        StringAssert.Contains(ex.Message, "Column 'Label' has a missing value (key 0) at row 1");
        StringAssert.Contains(ex.Message, "FilterRowsByMissingValues");

        var nan = ml.Data.LoadFromEnumerable(Rows(3).Select((r, i) => { if (i == 2) r.Features[0] = float.NaN; return r; }));
        var nanSource = new DataViewBatchSource(nan, new[] { TorchInputColumn.Single("Features", 3) }, TorchInputColumn.Single("Id"), 8, true, "test data");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => nanSource.EpochBatches(4, false, null, CPU).ToList()).Message,
            "Column 'Features' has a non-finite value (NaN) at row 2, element 0");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new DataViewBatchSource(nan, new[] { TorchInputColumn.Single("Pixels", 3) }, TorchInputColumn.Single("Id"), 8, true, "test data")).Message,
            "column 'Pixels' was not found");
    }

    // A cohort of one-bag .h5 files whose instances all carry the slide's index, labelled "s<index>" (MapValueToKey
    // assigns keys in order of appearance, so the target is the index).
    private static (IDataView Bags, string Directory) IndexedCohort(MLContext ml, int slides)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"random-order-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var csv = new List<string> { "case_id,slide_id,label" };
        for (int s = 0; s < slides; s++)
        {
            int n = 1 + s % 4;
            Attention.MultipleInstance.FeatureFile.Write(Path.Combine(dir, $"slide{s}.h5"), Enumerable.Repeat((float)s, n * 2).ToArray(), 2);
            csv.Add($"c{s},slide{s},s{s}");
        }
        File.WriteAllLines(Path.Combine(dir, "cohort.csv"), csv);
        var bags = ml.Data.LoadFeatureBags(Path.Combine(dir, "cohort.csv"), dir);
        return (ml.Transforms.Conversion.MapValueToKey("Label").Fit(bags).Transform(bags), dir);
    }

    private static List<long> SlideOrder(BatchSource source, Random shuffle)
    {
        var order = new List<long>();
        foreach (var batch in source.EpochBatches(4, false, shuffle, CPU))
        {
            using var scope = NewDisposeScope();
            var target = batch.Target.data<long>().ToArray();
            var first = batch.Inputs[0]!.select(1, 0).select(1, 0).data<float>().ToArray();
            for (int r = 0; r < batch.Rows; r++) Assert.AreEqual(target[r], (long)first[r], "the bag travels with its label");
            order.AddRange(target);
        }
        return order;
    }

    [TestMethod]
    public void AFeatureFileCohortIsShuffledByItsOwnCursorAFullPermutationWithoutAPool()
    {
        var ml = new MLContext(1);
        var (keyed, dir) = IndexedCohort(ml, 30);
        try
        {
            // Pool size 1: a pool shuffle would give the files in order; the view's cursor permutes them all.
            var source = new DataViewBatchSource(keyed, new[] { TorchInputColumn.Bag("Features", 2) },
                TorchInputColumn.Key("Label"), shufflePoolSize: 1, rejectNonFinite: true, "cohort");
            Assert.IsTrue(source.ShufflesInView, "LoadFeatureBags → MapValueToKey shuffles in the view");
            var first = SlideOrder(source, new Random(5));
            CollectionAssert.AreEquivalent(Enumerable.Range(0, 30).Select(i => (long)i).ToArray(), first.ToArray());
            CollectionAssert.AreNotEqual(Enumerable.Range(0, 30).Select(i => (long)i).ToArray(), first.ToArray());
            Assert.IsTrue(first.Take(5).Any(i => i >= 20), "late files come early: a full permutation, not a pool");
            CollectionAssert.AreEqual(first, SlideOrder(source, new Random(5)), "same seed, same order");
            CollectionAssert.AreNotEqual(first, SlideOrder(source, new Random(6)));

            // A validation split by row index still takes exactly its rows (found by row id in the shuffled cursor).
            var validation = Enumerable.Range(0, 30).Select(i => i % 3 == 0).ToArray();
            var train = new DataViewBatchSource(keyed, new[] { TorchInputColumn.Bag("Features", 2) },
                TorchInputColumn.Key("Label"), 1, true, "cohort", validation, keep: false);
            var trained = SlideOrder(train, new Random(5));
            CollectionAssert.AreEquivalent(Enumerable.Range(0, 30).Where(i => i % 3 != 0).Select(i => (long)i).ToArray(),
                trained.ToArray());
            Assert.AreEqual(20, train.Count);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void AnInMemoryViewKeepsThePoolShuffle()
    {
        var ml = new MLContext(1);
        var source = new DataViewBatchSource(ml.Data.LoadFromEnumerable(Rows(10)), new[] { TorchInputColumn.Single("Features", 3) },
            TorchInputColumn.Single("Id"), shufflePoolSize: 1, rejectNonFinite: true, "test data");
        Assert.IsFalse(source.ShufflesInView);
        CollectionAssert.AreEqual(Enumerable.Range(0, 10).Select(i => (float)i).ToArray(), Ids(source, new Random(2)).ToArray(),
            "a pool of one row keeps the order");
    }

    [TestMethod]
    public void BagsUnderAnMLNetTransformAreNotCopiedThroughItsSplitAndConsolidate()
    {
        // GetRowCursor on MapValueToKey's output (its key column active) would split the one-cursor cohort into
        // parallel cursors and consolidate them, copying every bag twice; the engine asks for a cursor set of one.
        const int instances = 4000, d = 128;
        var ml = new MLContext(1);
        string dir = Path.Combine(Path.GetTempPath(), $"no-split-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var csv = new List<string> { "case_id,slide_id,label" };
            for (int s = 0; s < 12; s++)
            {
                Attention.MultipleInstance.FeatureFile.Write(Path.Combine(dir, $"slide{s}.h5"), new float[instances * d], d);
                csv.Add($"c{s},slide{s},{(s % 2 == 0 ? "a" : "b")}");
            }
            File.WriteAllLines(Path.Combine(dir, "cohort.csv"), csv);
            var bags = ml.Data.LoadFeatureBags(Path.Combine(dir, "cohort.csv"), dir);
            var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(bags).Transform(bags);
            var source = new DataViewBatchSource(keyed, new[] { TorchInputColumn.Bag("Features", d) },
                TorchInputColumn.Key("Label"), 1, true, "cohort");
            foreach (var shuffle in new[] { null, new Random(1) })
            {
                long before = GC.GetTotalAllocatedBytes(precise: true);
                int batches = 0;
                foreach (var batch in source.EpochBatches(1, false, shuffle, CPU))
                {
                    foreach (var t in batch.Inputs) t?.Dispose();
                    batch.Target.Dispose();
                    batches++;
                }
                long perBatch = (GC.GetTotalAllocatedBytes(precise: true) - before) / batches;
                Assert.AreEqual(12, batches);
                Assert.IsTrue(perBatch < instances * d * 4 / 2, $"{perBatch / 1024} kB allocated per 2,000 kB bag " +
                    $"({(shuffle is null ? "in order" : "shuffled")}): the bags are being copied");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
