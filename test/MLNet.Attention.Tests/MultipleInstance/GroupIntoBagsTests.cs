using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.MultipleInstance;

namespace MLNet.Attention.Tests.MultipleInstance;

/// <summary>GroupIntoBags: instance rows → bag rows (Musk1's layout), and its errors.</summary>
[TestClass]
public sealed class GroupIntoBagsTests
{
    [TestMethod]
    public void Musk1GroupsIntoItsNinetyTwoBagsWithTheInstancesInOrder()
    {
        var ml = new MLContext(seed: 1);
        var instances = MuskData.Instances(ml);
        var bags = MuskData.Bags(ml);
        var features = bags.Schema["Features"];
        Assert.IsTrue(InstanceBags.TryGetInstanceSize(features, out int size));
        Assert.AreEqual(166, size);
        Assert.AreEqual(typeof(bool), bags.Schema["Label"].Type.RawType);

        var rows = ml.Data.CreateEnumerable<MuskData.Instance>(instances, reuseRowObject: false).ToList();
        var ids = bags.GetColumn<ReadOnlyMemory<char>>("BagId").Select(m => m.ToString()).ToList();
        var counts = bags.GetColumn<int>("InstanceCount").ToList();
        var labels = bags.GetColumn<bool>("Label").ToList();
        var values = bags.GetColumn<float[]>("Features").ToList();
        Assert.AreEqual(92, ids.Count);
        Assert.AreEqual(476, counts.Sum());
        Assert.AreEqual(47, labels.Count(l => l));
        Assert.AreEqual(2, counts.Min());
        Assert.AreEqual(40, counts.Max());

        int row = 0;
        for (int b = 0; b < ids.Count; b++)
        {
            Assert.AreEqual(counts[b] * 166, values[b].Length);
            for (int i = 0; i < counts[b]; i++, row++)
            {
                Assert.AreEqual(ids[b], rows[row].BagId.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
                Assert.AreEqual(labels[b], rows[row].Label);
                CollectionAssert.AreEqual(rows[row].Features, values[b].AsSpan(i * 166, 166).ToArray());
            }
        }
    }

    public sealed class Tile
    {
        public string Slide { get; set; } = "";
        [VectorType(3)] public float[] Features { get; set; } = new float[3];
        public float X { get; set; }
        public float Y { get; set; }
        public string Diagnosis { get; set; } = "";
    }

    private static Tile T(string slide, float f, float x, float y, string diagnosis) =>
        new() { Slide = slide, Features = new[] { f, f + 1, f + 2 }, X = x, Y = y, Diagnosis = diagnosis };

    [TestMethod]
    public void NonContiguousBagsMergeAndCoordinatesAndKeyLabelsSurvive()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[]
        {
            T("a", 1, 0, 0, "tumour"), T("b", 5, 256, 0, "normal"), T("a", 2, 0, 256, "tumour"), T("c", 7, 512, 512, "other"),
        });
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Diagnosis")
            .Append(ml.Transforms.GroupIntoBags(new MLNet.Attention.Transforms.GroupIntoBagsOptions
            {
                BagIdColumnName = "Slide", FeatureColumnNames = new[] { "Features" }, LabelColumnName = "Diagnosis",
                CoordinateColumnNames = new[] { "X", "Y" },
            }));
        var bags = pipeline.Fit(data).Transform(data);
        CollectionAssert.AreEqual(new[] { "a", "b", "c" }, bags.GetColumn<ReadOnlyMemory<char>>("Slide").Select(s => s.ToString()).ToArray());
        var a = bags.GetColumn<float[]>("Features").First();
        CollectionAssert.AreEqual(new float[] { 1, 2, 3, 2, 3, 4 }, a);
        // GetColumn<long[]> returns empty arrays for Int64 vectors in ML.NET 5.0.1; read the VBuffer.
        var xy = bags.GetColumn<VBuffer<long>>("Coordinates").First().DenseValues().ToArray();
        CollectionAssert.AreEqual(new long[] { 0, 0, 0, 256 }, xy);
        Assert.IsTrue(bags.Schema["Diagnosis"].Type is KeyDataViewType);
        var back = ml.Transforms.Conversion.MapKeyToValue("Diagnosis").Fit(bags).Transform(bags);
        CollectionAssert.AreEqual(new[] { "tumour", "normal", "other" },
            back.GetColumn<ReadOnlyMemory<char>>("Diagnosis").Select(s => s.ToString()).ToArray());
    }

    [TestMethod]
    public void ConflictingLabelsNameTheBagAndBothValues()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { T("a", 1, 0, 0, "tumour"), T("a", 2, 0, 0, "normal") });
        var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
            ml.Transforms.GroupIntoBags("Slide", new[] { "Features" }, "Diagnosis").Fit(data).Transform(data));
        StringAssert.Contains(e.Message, "bag 'a' has conflicting labels");
        StringAssert.Contains(e.Message, "'tumour'");
        StringAssert.Contains(e.Message, "'normal'");
    }

    [TestMethod]
    public void ABagWithoutALabelIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { T("a", 1, 0, 0, "tumour"), T("b", 2, 0, 0, " ") });
        var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
            ml.Transforms.GroupIntoBags("Slide", new[] { "Features" }, "Diagnosis").Fit(data).Transform(data));
        StringAssert.Contains(e.Message, "bag 'b' has no label");
    }

    [TestMethod]
    public void NaNFeaturesNameBagRowAndIndex()
    {
        var ml = new MLContext(seed: 1);
        var bad = T("b", 2, 0, 0, "x");
        bad.Features[1] = float.NaN;
        var data = ml.Data.LoadFromEnumerable(new[] { T("a", 1, 0, 0, "x"), bad });
        var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
            ml.Transforms.GroupIntoBags("Slide", new[] { "Features" }).Fit(data).Transform(data));
        StringAssert.Contains(e.Message, "instance row 1 of bag 'b'");
        StringAssert.Contains(e.Message, "index 1");
    }

    [TestMethod]
    public void MissingOrMistypedColumnsAreNamed()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { T("a", 1, 0, 0, "x") });
        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.GroupIntoBags("Bag", new[] { "Features" }).Fit(data));
        StringAssert.Contains(missing.Message, "'Bag' was not found");
        var text = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.GroupIntoBags("Slide", new[] { "Diagnosis" }).Fit(data));
        StringAssert.Contains(text.Message, "feature column 'Diagnosis' has type");
    }

    [TestMethod]
    public void SavesAndLoadsInAPipeline()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { T("a", 1, 0, 0, "x"), T("a", 2, 0, 0, "x"), T("b", 3, 0, 0, "y") });
        var model = ml.Transforms.GroupIntoBags("Slide", new[] { "Features" }, "Diagnosis").Fit(data);
        string path = Path.Combine(Path.GetTempPath(), $"bags-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            var bags = loaded.Transform(data);
            CollectionAssert.AreEqual(new[] { 2, 1 }, bags.GetColumn<int>("InstanceCount").ToArray());
        }
        finally
        {
            File.Delete(path);
        }
    }
}

/// <summary>BagFolds: stratified, reproducible, disjoint k-fold views.</summary>
[TestClass]
public sealed class BagFoldsTests
{
    [TestMethod]
    public void Musk1FoldsAreStratifiedDisjointAndReproducible()
    {
        var ml = new MLContext(seed: 1);
        var bags = ml.Data.Cache(MuskData.Bags(ml));
        var folds = BagFolds.Stratified(bags, 10, "Label", seed: 5);
        Assert.AreEqual(10, folds.Count);
        var seen = new HashSet<string>();
        foreach (var fold in folds)
        {
            var test = fold.Test.GetColumn<ReadOnlyMemory<char>>("BagId").Select(m => m.ToString()).ToList();
            var train = fold.Train.GetColumn<ReadOnlyMemory<char>>("BagId").Select(m => m.ToString()).ToHashSet();
            Assert.AreEqual(92, test.Count + train.Count);
            Assert.IsFalse(test.Any(train.Contains));
            foreach (var id in test) Assert.IsTrue(seen.Add(id), $"bag {id} in two test folds");
            int positives = fold.Test.GetColumn<bool>("Label").Count(l => l);
            Assert.IsTrue(positives is 4 or 5, $"fold {fold.Fold}: {positives} positive bags of {test.Count}");
            Assert.IsTrue(test.Count is 9 or 10);
        }
        Assert.AreEqual(92, seen.Count);
        var again = BagFolds.Stratified(bags, 10, "Label", seed: 5)[3].Test.GetColumn<ReadOnlyMemory<char>>("BagId").Select(m => m.ToString());
        CollectionAssert.AreEqual(folds[3].Test.GetColumn<ReadOnlyMemory<char>>("BagId").Select(m => m.ToString()).ToArray(), again.ToArray());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => BagFolds.Stratified(bags, 1, "Label"));
    }
}
