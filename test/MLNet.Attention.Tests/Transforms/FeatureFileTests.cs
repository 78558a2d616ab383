using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.MultipleInstance;

namespace MLNet.Attention.Tests.Transforms;

[TestClass]
public sealed class FeatureFileTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private string _directory = "";

    [TestInitialize]
    public void CreateDirectory()
    {
        _directory = Path.Combine(Path.GetTempPath(), $"feature-files-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_directory);
    }

    [TestCleanup]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private string PathOf(string name) => Path.Combine(_directory, name);

    /// <summary>A bag of n instances of d features: value (i, j) = i + j / 1000 + seed, coordinates (256 i, 512 i + seed).</summary>
    internal static (float[] Features, long[] Coordinates) Bag(int n, int d, int seed = 0)
    {
        var features = new float[n * d];
        var coordinates = new long[n * 2];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < d; j++) features[i * d + j] = i + j / 1000f + seed;
            coordinates[2 * i] = 256L * i;
            coordinates[2 * i + 1] = 512L * i + seed;
        }
        return (features, coordinates);
    }

    private static FeatureFileAttributes ClamAttributes(string name) => new()
    {
        PatchSize = 256, PatchLevel = 0, Downsample = new[] { 1.0, 1.0 }, LevelDimensions = new[] { 40000L, 30000L },
        Name = name, PatchSizeLevel0 = 512, Level0Magnification = 40, TargetMagnification = 20, Overlap = 0,
        Level0Width = 40000, Level0Height = 30000, Encoder = "resnet50_trunc",
    };

    [TestMethod]
    public void RoundTripKeepsFeaturesCoordinatesAndAttributesAndReadsPartially()
    {
        var (features, coordinates) = Bag(300, 7);
        var path = PathOf("slide-1.h5");
        FeatureFile.Write(path, features, 7, coordinates, ClamAttributes("slide-1"));

        var bag = FeatureFile.Read(path);
        Assert.AreEqual(300, bag.InstanceCount);
        Assert.AreEqual(7, bag.FeatureSize);
        CollectionAssert.AreEqual(features, bag.Features);
        CollectionAssert.AreEqual(coordinates, bag.Coordinates);
        var a = bag.CoordinateAttributes;
        Assert.AreEqual(256L, a["patch_size"]);
        Assert.AreEqual(0L, a["patch_level"]);
        CollectionAssert.AreEqual(new[] { 1.0, 1.0 }, (double[])a["downsample"]);
        CollectionAssert.AreEqual(new[] { 40000L, 30000L }, (long[])a["level_dim"]);
        Assert.AreEqual("slide-1", a["name"]);
        Assert.AreEqual(512L, a["patch_size_level0"]);
        Assert.AreEqual(40.0, a["level0_magnification"]);
        Assert.AreEqual(20.0, a["target_magnification"]);
        Assert.AreEqual(0L, a["overlap"]);
        Assert.AreEqual(40000L, a["level0_width"]);
        Assert.AreEqual(30000L, a["level0_height"]);
        Assert.AreEqual("resnet50_trunc", bag.FeatureAttributes["encoder"]);
        Assert.AreEqual("resnet50_trunc", bag.FileAttributes["encoder"]);

        var info = FeatureFile.ReadInfo(path);
        Assert.AreEqual((300, 7, true), (info.InstanceCount, info.FeatureSize, info.HasCoordinates));
        CollectionAssert.AreEqual(features[(120 * 7)..(125 * 7)], FeatureFile.ReadFeatures(path, 120, 5));
        CollectionAssert.AreEqual(coordinates[(298 * 2)..], FeatureFile.ReadCoordinates(path, 298, 2));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => FeatureFile.ReadFeatures(path, 299, 2));

        // Without coordinates or attributes.
        var bare = PathOf("bare.h5");
        FeatureFile.Write(bare, features, 7);
        var read = FeatureFile.Read(bare);
        Assert.IsNull(read.Coordinates);
        Assert.AreEqual(0, read.CoordinateAttributes.Count);
        CollectionAssert.AreEqual(features, read.Features);
    }

    [TestMethod]
    public void StreamingWriterAppendsBatchesAndWritesNothingWithoutComplete()
    {
        int d = 300;   // 874 rows per 1 MB slab: the copy at Complete takes several hyperslabs
        var (features, coordinates) = Bag(2000, d, seed: 3);
        var path = PathOf("streamed.h5");
        using (var writer = new FeatureFileWriter(path, d, ClamAttributes("streamed")))
        {
            for (int start = 0; start < 2000; start += 64)
            {
                int n = Math.Min(64, 2000 - start);
                writer.Append(features.AsSpan(start * d, n * d), coordinates.AsSpan(start * 2, n * 2));
            }
            // A bad batch is refused and leaves the writer usable.
            var bad = new float[d];
            bad[5] = float.PositiveInfinity;
            var refused = Assert.ThrowsExactly<ArgumentException>(() => writer.Append(bad, new long[2]));
            StringAssert.Contains(refused.Message, "instance row 2000 has a non-finite feature (Infinity at feature 5 of 300)");
            Assert.AreEqual(2000L, writer.InstanceCount);
            Assert.IsFalse(File.Exists(path), "nothing is written before Complete");
            writer.Complete();
            Assert.ThrowsExactly<ObjectDisposedException>(() => writer.Append(bad, new long[2]));
        }
        var bag = FeatureFile.Read(path);
        CollectionAssert.AreEqual(features, bag.Features);
        CollectionAssert.AreEqual(coordinates, bag.Coordinates);
        Assert.AreEqual("streamed", bag.CoordinateAttributes["name"]);
        Assert.AreEqual(0, Directory.GetFiles(_directory).Count(f => f != path), "the spool and partial files are gone");

        var abandoned = PathOf("abandoned.h5");
        using (var writer = new FeatureFileWriter(abandoned, d))
            writer.Append(features.AsSpan(0, d), coordinates.AsSpan(0, 2));
        Assert.IsFalse(File.Exists(abandoned), "a writer disposed without Complete writes nothing");
        Assert.AreEqual(1, Directory.GetFiles(_directory).Length);

        using var empty = new FeatureFileWriter(PathOf("empty.h5"), d);
        var none = Assert.ThrowsExactly<InvalidOperationException>(empty.Complete);
        StringAssert.Contains(none.Message, "would hold an empty bag (0 instances)");
    }

    [TestMethod]
    public void ReadsAClamFileWrittenByH5pyWithResizableChunks()
    {
        var path = Fixture("clam-features.h5");
        var bag = FeatureFile.Read(path);
        Assert.AreEqual(37, bag.InstanceCount);
        Assert.AreEqual(16, bag.FeatureSize);
        for (int i = 0; i < 37; i++)
        {
            for (int j = 0; j < 16; j++) Assert.AreEqual((16 * i + j) / 8f - 3f, bag.Features[i * 16 + j], $"feature ({i}, {j})");
            Assert.AreEqual(256L * (i % 7), bag.Coordinates![2 * i]);
            Assert.AreEqual(1024L + 256 * (i / 7), bag.Coordinates[2 * i + 1]);
        }
        var a = bag.CoordinateAttributes;
        Assert.AreEqual(256L, a["patch_size"]);
        Assert.AreEqual(0L, a["patch_level"]);
        CollectionAssert.AreEqual(new[] { 1.0, 1.0 }, (double[])a["downsample"]);
        CollectionAssert.AreEqual(new[] { 1792L, 2560L }, (long[])a["level_dim"]);
        CollectionAssert.AreEqual(new[] { 1792L, 2560L }, (long[])a["downsampled_level_dim"]);
        Assert.AreEqual("slide-a", a["name"]);
        Assert.AreEqual("patches", a["save_path"]);
        Assert.AreEqual(0, bag.FeatureAttributes.Count);

        // Rows 6..18 span chunks 0-2 (8 rows each) and both appends.
        var part = FeatureFile.ReadFeatures(path, 6, 13);
        CollectionAssert.AreEqual(bag.Features[(6 * 16)..(19 * 16)], part);
        CollectionAssert.AreEqual(bag.Coordinates![(35 * 2)..], FeatureFile.ReadCoordinates(path, 35, 2));

        var trident = FeatureFile.Read(Fixture("trident-features.h5"));
        Assert.AreEqual((5, 3), (trident.InstanceCount, trident.FeatureSize));
        CollectionAssert.AreEqual(Enumerable.Range(0, 15).Select(v => v / 4f).ToArray(), trident.Features);
        CollectionAssert.AreEqual(new long[] { 0, 1, 512, 513, 1024, 1025, 1536, 1537, 2048, 2049 }, trident.Coordinates);
        var t = trident.CoordinateAttributes;
        Assert.AreEqual(512L, t["patch_size_level0"]);
        Assert.AreEqual(40L, t["level0_magnification"]);
        Assert.AreEqual(20L, t["target_magnification"]);
        Assert.AreEqual(0L, t["overlap"]);
        Assert.AreEqual((4096L, 3072L), ((long)t["level0_width"], (long)t["level0_height"]));
        Assert.AreEqual("conch_v15", trident.FeatureAttributes["encoder"]);
        Assert.AreEqual("conch_v15", trident.FileAttributes["encoder"]);
    }

    [TestMethod]
    public void FilesWeWriteOpenInH5pyWithClamShapesTypesValuesAndAttributes()
    {
        const string python = "/usr/bin/python3";
        if (!File.Exists(python)) Assert.Inconclusive($"{python} is absent: the h5py interoperability check needs Python 3.");
        var probe = Run(python, "-c \"import h5py\"");
        if (probe.ExitCode != 0)
            Assert.Inconclusive($"h5py is not importable by {python} ({probe.Error.Trim()}): install python3-h5py.");

        var (features, coordinates) = Bag(1500, 5, seed: 1);
        var direct = PathOf("direct.h5");
        FeatureFile.Write(direct, features, 5, coordinates, ClamAttributes("direct"));
        var streamed = PathOf("streamed.h5");
        using (var writer = new FeatureFileWriter(streamed, 5, new FeatureFileAttributes { PatchSize = 224, Name = "s" }))
        {
            writer.Append(features.AsSpan(0, 700 * 5), coordinates.AsSpan(0, 1400));
            writer.Append(features.AsSpan(700 * 5), coordinates.AsSpan(1400));
            writer.Complete();
        }
        const string script = """
            import sys, h5py, numpy as np
            for path in sys.argv[1:]:
                with h5py.File(path, 'r') as f:
                    x, c = f['features'], f['coords']
                    i = np.arange(1500)
                    want = (i[:, None].astype(np.float32) + np.arange(5, dtype=np.float32)[None, :] / np.float32(1000)) + np.float32(1)
                    cw = np.stack([256 * i, 512 * i + 1], axis=1)
                    print(path.rsplit('/', 1)[-1], x.shape, x.dtype, c.shape, c.dtype,
                          bool(np.array_equal(x[:], want)), bool(np.array_equal(c[:], cw)))
                    print(' '.join(f'{k}={np.asarray(v).tolist()}:{np.asarray(v).dtype.kind}'
                                   for k, v in sorted(c.attrs.items())))
                    print('encoder', dict(x.attrs).get('encoder'), dict(f.attrs).get('encoder'))
            """;
        var scriptPath = PathOf("check.py");
        File.WriteAllText(scriptPath, script.Replace("\r\n", "\n"));
        var result = Run(python, $"\"{scriptPath}\" \"{direct}\" \"{streamed}\"");
        Assert.AreEqual(0, result.ExitCode, result.Error);
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(6, lines.Length, result.Output);
        Assert.AreEqual("direct.h5 (1500, 5) float32 (1500, 2) int64 True True", lines[0]);
        Assert.AreEqual("downsample=[1.0, 1.0]:f level0_height=30000:i level0_magnification=40.0:f level0_width=40000:i " +
            "level_dim=[40000, 30000]:i name=direct:U overlap=0:i patch_level=0:i patch_size=256:i " +
            "patch_size_level0=512:i target_magnification=20.0:f", lines[1]);
        Assert.AreEqual("encoder resnet50_trunc resnet50_trunc", lines[2]);
        Assert.AreEqual("streamed.h5 (1500, 5) float32 (1500, 2) int64 True True", lines[3]);
        Assert.AreEqual("name=s:U patch_size=224:i", lines[4]);
        Assert.AreEqual("encoder None None", lines[5]);
    }

    [TestMethod]
    public void LazyViewServesOneBagPerFileWithTheInstanceSizeAnnotation()
    {
        var ml = new MLContext(seed: 1);
        var paths = new[] { 3, 1, 4 }.Select((n, k) =>
        {
            var (f, c) = Bag(n, 6, seed: 10 * k);
            var path = PathOf($"slide-{k}.h5");
            FeatureFile.Write(path, f, 6, c);
            return path;
        }).ToArray();
        var bare = PathOf("no-coords.h5");
        FeatureFile.Write(bare, Bag(2, 6).Features, 6);
        var view = ml.Data.LoadFeatureBags(paths.Append(bare));

        Assert.AreEqual(4L, view.GetRowCount());
        Assert.IsTrue(view.CanShuffle);
        var features = view.Schema[FeatureBagDataView.FeaturesColumnName];
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single), features.Type);
        Assert.AreEqual(0, ((VectorDataViewType)features.Type).Size, "a variable-size vector");
        Assert.IsTrue(InstanceBags.TryGetInstanceSize(features, out int d));
        Assert.AreEqual(6, d);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Int64), view.Schema["Coordinates"].Type);
        Assert.AreEqual(NumberDataViewType.Int32, view.Schema["InstanceCount"].Type);
        Assert.AreEqual(TextDataViewType.Instance, view.Schema["SlideId"].Type);
        Assert.IsNull(view.Schema.GetColumnOrNull("Label"));

        CollectionAssert.AreEqual(new[] { "slide-0", "slide-1", "slide-2", "no-coords" },
            view.GetColumn<string>("SlideId").ToArray());
        CollectionAssert.AreEqual(new[] { 3, 1, 4, 2 }, view.GetColumn<int>("InstanceCount").ToArray());
        var bags = view.GetColumn<float[]>("Features").ToArray();
        CollectionAssert.AreEqual(Bag(4, 6, seed: 20).Features, bags[2]);
        var coordinates = view.GetColumn<long[]>("Coordinates").ToArray();
        CollectionAssert.AreEqual(Bag(1, 6, seed: 10).Coordinates, coordinates[1]);
        Assert.AreEqual(0, coordinates[3].Length, "a file without coords gives an empty Coordinates vector");

        // A shuffling cursor visits every file once, each row with its own id and values.
        using var cursor = view.GetRowCursor(view.Schema, new Random(3));
        var id = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["SlideId"]);
        var bag = cursor.GetGetter<VBuffer<float>>(features);
        var seen = new List<string>();
        ReadOnlyMemory<char> name = default;
        VBuffer<float> values = default;
        while (cursor.MoveNext())
        {
            id(ref name);
            bag(ref values);
            int k = Array.IndexOf(paths.Append(bare).ToArray(), PathOf(name + ".h5"));
            CollectionAssert.AreEqual(k == 3 ? Bag(2, 6).Features : Bag(new[] { 3, 1, 4 }[k], 6, 10 * k).Features,
                values.DenseValues().ToArray());
            seen.Add(name.ToString());
        }
        CollectionAssert.AreEquivalent(new[] { "slide-0", "slide-1", "slide-2", "no-coords" }, seen);
        CollectionAssert.AreNotEqual(new[] { "slide-0", "slide-1", "slide-2", "no-coords" }, seen, "seed 3 shuffles");

        // The fixtures of CLAM and TRIDENT have other feature sizes: refused when their row is read, naming both files.
        var mixed = ml.Data.LoadFeatureBags(new[] { paths[0], Fixture("clam-features.h5") });
        var error = Assert.ThrowsExactly<InvalidDataException>(() => mixed.GetColumn<float[]>("Features").ToArray());
        StringAssert.Contains(error.Message, $"'{Fixture("clam-features.h5")}' has 16 features per instance but " +
            $"'{paths[0]}' (the first file, which sets the Features column) has 6");
        CollectionAssert.AreEqual(new[] { "slide-0", "clam-features" }, mixed.GetColumn<string>("SlideId").ToArray(),
            "slide ids need no file read");
    }

    [TestMethod]
    public void ClamCsvGivesTextLabelsAndListsMissingFeatureFiles()
    {
        var ml = new MLContext(seed: 1);
        var features = PathOf("features");
        Directory.CreateDirectory(Path.Combine(features, "h5_files"));
        FeatureFile.Write(Path.Combine(features, "TCGA-01.h5"), Bag(2, 4).Features, 4, Bag(2, 4).Coordinates);
        FeatureFile.Write(Path.Combine(features, "TCGA-02.h5"), Bag(3, 4, 1).Features, 4, Bag(3, 4, 1).Coordinates);
        FeatureFile.Write(Path.Combine(features, "h5_files", "TCGA-03.h5"), Bag(1, 4, 2).Features, 4);
        var csv = PathOf("tumor_vs_normal.csv");
        File.WriteAllText(csv, "case_id,slide_id,label\r\nC1,TCGA-01,tumor_tissue\r\nC1,TCGA-02,normal_tissue\r\n" +
            "\"C,2\",TCGA-03,tumor_tissue\r\n");

        var view = ml.Data.LoadFeatureBags(csv, features);
        Assert.AreEqual(3L, view.GetRowCount());
        CollectionAssert.AreEqual(new[] { "tumor_tissue", "normal_tissue", "tumor_tissue" },
            view.GetColumn<string>("Label").ToArray());
        CollectionAssert.AreEqual(new[] { "TCGA-01", "TCGA-02", "TCGA-03" }, view.GetColumn<string>("SlideId").ToArray());
        CollectionAssert.AreEqual(new[] { 2, 3, 1 }, view.GetColumn<int>("InstanceCount").ToArray());
        CollectionAssert.AreEqual(Bag(3, 4, 1).Features, view.GetColumn<float[]>("Features").ElementAt(1));

        // Labels map to keys as any Text column.
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(view).Transform(view);
        CollectionAssert.AreEqual(new uint[] { 1, 2, 1 }, keyed.GetColumn<uint>("Label").ToArray());
        Assert.IsNull(ml.Data.LoadFeatureBags(csv, features, labelColumn: null).Schema.GetColumnOrNull("Label"));

        File.AppendAllText(csv, "C3,TCGA-04,normal_tissue\nC3,TCGA-05,tumor_tissue\n");
        var missing = Assert.ThrowsExactly<FileNotFoundException>(() => ml.Data.LoadFeatureBags(csv, features));
        StringAssert.Contains(missing.Message, $"2 of the 5 slides of '{csv}' have no feature file in '{features}'");
        StringAssert.Contains(missing.Message, "TCGA-04, TCGA-05. Extract their features, or remove those rows");
        var noLabel = Assert.ThrowsExactly<InvalidDataException>(() => ml.Data.LoadFeatureBags(csv, features, "grade"));
        StringAssert.Contains(noLabel.Message, "has the columns 'case_id', 'slide_id', 'label'; expected 'slide_id' " +
            "and the label column 'grade'");
    }

    [TestMethod]
    public void BadFilesAreRefusedNamingTheFileTheDatasetAndTheFix()
    {
        const string python = "/usr/bin/python3";
        var (features, coordinates) = Bag(4, 3);

        var missingFile = Assert.ThrowsExactly<FileNotFoundException>(() => FeatureFile.Read(PathOf("nope.h5")));
        StringAssert.Contains(missingFile.Message, $"Feature file '{PathOf("nope.h5")}' was not found");

        var text = PathOf("not-hdf5.h5");
        File.WriteAllText(text, "case_id,slide_id,label\n");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => FeatureFile.Read(text)).Message,
            $"'{text}' is not a readable HDF5 file");

        // A CLAM patch file: coords only.
        var noFeatures = PathOf("patches.h5");
        WriteRaw(noFeatures, new PureHDF.H5File { ["coords"] = coordinates });
        var e1 = Assert.ThrowsExactly<InvalidDataException>(() => FeatureFile.Read(noFeatures));
        StringAssert.Contains(e1.Message, $"Feature file '{noFeatures}' has no 'features' dataset (it has: coords)");
        StringAssert.Contains(e1.Message, "extract the features first");

        // Coordinates are optional for reading (training needs only features); a file without them has none.
        var noCoords = PathOf("no-coords.h5");
        WriteRaw(noCoords, new PureHDF.H5File { ["features"] = Dataset(features, 4, 3) });
        Assert.IsNull(FeatureFile.Read(noCoords).Coordinates);

        var oneD = PathOf("1d.h5");
        WriteRaw(oneD, new PureHDF.H5File { ["features"] = features, ["coords"] = coordinates });
        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => FeatureFile.Read(oneD));
        StringAssert.Contains(e2.Message, $"Feature file '{oneD}': dataset 'features' has shape [12] (rank 1); " +
            "expected 2-D [N instances, D features]");

        var batched = PathOf("3d.h5");
        WriteRaw(batched, new PureHDF.H5File { ["features"] = Dataset(features, 1, 4, 3) });
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => FeatureFile.Read(batched)).Message,
            "has shape [1, 4, 3] (rank 3); expected 2-D [N instances, D features]. It has a leading batch dimension of 1");

        var integers = PathOf("int.h5");
        WriteRaw(integers, new PureHDF.H5File { ["features"] = Dataset(new int[12], 4, 3) });
        var e3 = Assert.ThrowsExactly<InvalidDataException>(() => FeatureFile.Read(integers));
        StringAssert.Contains(e3.Message, "dataset 'features' has element type FixedPoint (4 bytes); expected float32");

        var doubles = PathOf("double.h5");
        WriteRaw(doubles, new PureHDF.H5File
        {
            ["features"] = Dataset(features.Select(v => (double)v).ToArray(), 4, 3),
        });
        CollectionAssert.AreEqual(features, FeatureFile.Read(doubles).Features, "float64 features are converted");

        var shortCoords = PathOf("short-coords.h5");
        WriteRaw(shortCoords, new PureHDF.H5File
        {
            ["features"] = Dataset(features, 4, 3),
            ["coords"] = Dataset(coordinates[..6], 3, 2),
        });
        var e4 = Assert.ThrowsExactly<InvalidDataException>(() => FeatureFile.Read(shortCoords));
        StringAssert.Contains(e4.Message, $"Feature file '{shortCoords}': dataset 'coords' has 3 rows but 'features' " +
            "has 4; expected one (x, y) row per instance");

        var nan = PathOf("nan.h5");
        var withNaN = features.ToArray();
        withNaN[2 * 3 + 1] = float.NaN;
        WriteRaw(nan, new PureHDF.H5File { ["features"] = Dataset(withNaN, 4, 3) });
        var e5 = Assert.ThrowsExactly<InvalidDataException>(() => FeatureFile.Read(nan));
        StringAssert.Contains(e5.Message, $"Feature file '{nan}': instance row 2 has a non-finite feature (NaN at " +
            "feature 1 of 3)");
        var e5b = Assert.ThrowsExactly<ArgumentException>(() => FeatureFile.Write(PathOf("w.h5"), withNaN, 3));
        StringAssert.Contains(e5b.Message, "instance row 2 has a non-finite feature (NaN at feature 1 of 3)");

        // An empty bag: h5py's CLAM-style resizable dataset of 0 rows (PureHDF cannot write a 0-row dataset).
        var empty = PathOf("empty.h5");
        if (File.Exists(python) && Run(python, "-c \"import h5py, numpy as np, sys; f = h5py.File(sys.argv[1], 'w'); " +
                $"f.create_dataset('features', shape=(0, 3), maxshape=(None, 3), chunks=(32, 3), dtype='float32'); " +
                $"f.create_dataset('coords', shape=(0, 2), maxshape=(None, 2), chunks=(32, 2), dtype='int64')\" \"{empty}\"")
                .ExitCode == 0)
        {
            var e6 = Assert.ThrowsExactly<InvalidDataException>(() => FeatureFile.Read(empty));
            StringAssert.Contains(e6.Message, $"Feature file '{empty}' holds an empty bag: 'features' is [0, 3], 0 instances");
        }
        var e6b = Assert.ThrowsExactly<InvalidOperationException>(() => FeatureFile.Write(PathOf("e.h5"), Array.Empty<float>(), 3));
        StringAssert.Contains(e6b.Message, "would hold an empty bag (0 instances)");

        var e7 = Assert.ThrowsExactly<ArgumentException>(() => FeatureFile.Write(PathOf("w.h5"), features, 3, coordinates[..4]));
        StringAssert.Contains(e7.Message, "4 coordinate values for 4 instances; expected 4 × 2");
        var e8 = Assert.ThrowsExactly<ArgumentException>(() => FeatureFile.Write(PathOf("w.h5"), features, 5));
        StringAssert.Contains(e8.Message, "12 feature values are not whole instances of 5 features");
        var e9 = Assert.ThrowsExactly<ArgumentException>(() => FeatureFile.Write(PathOf("w.h5"), features, 3, coordinates,
            new FeatureFileAttributes { Downsample = new[] { 2.0 } }));
        StringAssert.Contains(e9.Message, "Downsample has 1 values; CLAM's 'downsample' is (x, y)");
        var e9b = Assert.ThrowsExactly<ArgumentException>(() => FeatureFile.Write(PathOf("w.h5"), features, 3, null,
            new FeatureFileAttributes { PatchSize = 256, Name = "s" }));
        StringAssert.Contains(e9b.Message, "the patch attributes (patch_size, name) are attributes of the 'coords' " +
            "dataset, and this file has no coordinates");
        FeatureFile.Write(PathOf("w.h5"), features, 3, null, new FeatureFileAttributes { Encoder = "uni_v1" });
        Assert.AreEqual("uni_v1", FeatureFile.ReadInfo(PathOf("w.h5")).FeatureAttributes["encoder"]);

        // In a view, a bad file is refused when its row is read, naming it.
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFeatureBags(new[] { noCoords, nan });
        var e10 = Assert.ThrowsExactly<InvalidDataException>(() => view.GetColumn<float[]>("Features").ToArray());
        StringAssert.Contains(e10.Message, $"Feature file '{nan}'");
        Assert.ThrowsExactly<ArgumentException>(() => ml.Data.LoadFeatureBags(Array.Empty<string>()));
    }

    /// <summary>Throughput and lazy-view memory (run with MLNET_ATTENTION_MEASURE=1; prints the numbers).</summary>
    [TestMethod]
    public void MeasureThroughputAndLazyViewMemory()
    {
        if (Environment.GetEnvironmentVariable("MLNET_ATTENTION_MEASURE") != "1")
            Assert.Inconclusive("Set MLNET_ATTENTION_MEASURE=1 to measure feature-file throughput and view memory.");
        var (features, coordinates) = Bag(10_000, 1024);
        double megabytes = features.Length * 4.0 / (1 << 20);
        var path = PathOf("big.h5");
        FeatureFile.Write(path, features, 1024, coordinates);   // warm-up
        var watch = Stopwatch.StartNew();
        FeatureFile.Write(path, features, 1024, coordinates);
        double write = watch.Elapsed.TotalSeconds;
        watch.Restart();
        var bag = FeatureFile.Read(path);
        double read = watch.Elapsed.TotalSeconds;
        CollectionAssert.AreEqual(features, bag.Features);
        watch.Restart();
        using (var writer = new FeatureFileWriter(path, 1024))
        {
            for (int s = 0; s < 10_000; s += 512)
            {
                int n = Math.Min(512, 10_000 - s);
                writer.Append(features.AsSpan(s * 1024, n * 1024), coordinates.AsSpan(s * 2, n * 2));
            }
            writer.Complete();
        }
        double streamed = watch.Elapsed.TotalSeconds;
        Console.WriteLine($"10000x1024 ({megabytes:F1} MB, file {new FileInfo(path).Length / 1e6:F1} MB): " +
            $"write {megabytes / write:F0} MB/s ({write * 1000:F0} ms), read {megabytes / read:F0} MB/s " +
            $"({read * 1000:F0} ms), streaming writer (512-row batches) {megabytes / streamed:F0} MB/s");
        features = null!;
        bag = null!;

        var (small, smallCoordinates) = Bag(5000, 512);
        var paths = new List<string>();
        for (int k = 0; k < 50; k++)
        {
            var p = PathOf($"bag-{k}.h5");
            FeatureFile.Write(p, small, 512, smallCoordinates);
            paths.Add(p);
        }
        small = null!;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long before = GC.GetTotalMemory(true);
        var process = Process.GetCurrentProcess();
        process.Refresh();
        long peakBefore = process.PeakWorkingSet64;
        long workingBefore = process.WorkingSet64;
        var view = new MLContext(seed: 1).Data.LoadFeatureBags(paths);
        long maxManaged = 0, maxLive = 0, total = 0;
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        watch.Restart();
        using (var cursor = view.GetRowCursor(view.Schema))
        {
            var getter = cursor.GetGetter<VBuffer<float>>(view.Schema["Features"]);
            var coords = cursor.GetGetter<VBuffer<long>>(view.Schema["Coordinates"]);
            VBuffer<float> value = default;
            VBuffer<long> c = default;
            while (cursor.MoveNext())
            {
                getter(ref value);
                coords(ref c);
                total += value.Length;
                maxManaged = Math.Max(maxManaged, GC.GetTotalMemory(false) - before);
            }
        }
        double iterate = watch.Elapsed.TotalSeconds;
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        using (var cursor = view.GetRowCursor(view.Schema))   // again, with a full collection after every bag
        {
            var getter = cursor.GetGetter<VBuffer<float>>(view.Schema["Features"]);
            VBuffer<float> value = default;
            while (cursor.MoveNext())
            {
                getter(ref value);
                maxLive = Math.Max(maxLive, GC.GetTotalMemory(forceFullCollection: true) - before);
            }
        }
        process.Refresh();
        Assert.AreEqual(50L * 5000 * 512, total);
        double cohort = 50 * 5000 * 512 * 4.0 / (1 << 20);
        Console.WriteLine($"lazy view, 50 bags of 5000x512 ({cohort:F0} MB of features): {iterate * 1000:F0} ms " +
            $"({cohort / iterate:F0} MB/s), managed heap growth max {maxManaged / 1e6:F1} MB (live after a full " +
            $"collection: max {maxLive / 1e6:F1} MB), allocated {allocated / 50 / 1e6:F1} MB per bag, working set " +
            $"{workingBefore / 1e6:F0} → {process.WorkingSet64 / 1e6:F0} MB, peak working set {peakBefore / 1e6:F0} → " +
            $"{process.PeakWorkingSet64 / 1e6:F0} MB");
    }

    private static PureHDF.H5Dataset Dataset(Array values, params ulong[] dims) => new(values, fileDims: dims);

    private static void WriteRaw(string path, PureHDF.H5File file) => file.Write(path);

    private static (int ExitCode, string Output, string Error) Run(string file, string arguments)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.Environment["OPENBLAS_NUM_THREADS"] = "1";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output.Result, error);
    }
}
