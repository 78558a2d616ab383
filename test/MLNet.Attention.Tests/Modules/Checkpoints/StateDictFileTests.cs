using System.Globalization;
using System.IO.Compression;
using MLNet.Attention.Checkpoints;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using BatchNorm2d = MLNet.Attention.Layers.BatchNorm2d;

namespace MLNet.Attention.Tests.Modules.Checkpoints;

/// <summary>The .pth reader and the state-dict loader on checkpoints written by Debian's PyTorch 1.13
/// (Fixtures/make_pth_fixture.py).</summary>
[TestClass]
public sealed class StateDictFileTests
{
    internal static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    [TestMethod]
    public void ReadsAWrappedDataParallelCheckpointWithEveryTensorKind()
    {
        using var weights = StateDictFile.Read(Fixture("tiny-wrapped.pth"));
        var expected = File.ReadAllLines(Fixture("tiny-wrapped.values.txt")).Select(l => l.Split(' ')).ToList();
        // 'state_dict' chosen over the top-level tensor 'best_acc1'; 'module.' removed; epoch/args are not weights.
        CollectionAssert.AreEqual(expected.Select(e => e[0]).ToList(), weights.Keys.ToList());
        foreach (var e in expected)
        {
            var t = weights[e[0]];
            CollectionAssert.AreEqual(e[2].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).ToArray(), t.shape, e[0]);
            var want = e.Skip(3).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            var got = t.to(ScalarType.Float64).contiguous().data<double>().ToArray();
            Assert.AreEqual(want.Length, got.Length, e[0]);
            for (int i = 0; i < want.Length; i++) Assert.AreEqual(want[i], got[i], 1e-7 * Math.Max(1, Math.Abs(want[i])), $"{e[0]}[{i}]");
            var dtype = e[1] switch
            {
                "float16" => ScalarType.Float32, "float64" => ScalarType.Float64, "int64" => ScalarType.Int64, _ => ScalarType.Float32,
            };
            Assert.AreEqual(dtype, t.dtype, e[0]);
        }
        Assert.AreEqual(5L, weights["1.num_batches_tracked"].item<long>());
        // The transposed view shares the Linear weight's storage in the file (stride (1, 4)).
        Assert.IsTrue(weights["extra.view"].equal(weights["2.weight"].t()).all().item<bool>());
    }

    private static nn.Module Tiny() => nn.Sequential(nn.Conv2d(3, 4, 3), new BatchNorm2d(4), nn.Linear(4, 2));

    [TestMethod]
    public void LoadingListsUnexpectedKeysAndCopiesNothingUntilEverythingFits()
    {
        using var weights = StateDictFile.Read(Fixture("tiny-wrapped.pth"));
        using var module = Tiny();
        var before = module.state_dict()["0.weight"].clone();
        var ex = Assert.ThrowsExactly<StateDictMismatchException>(() => StateDictLoader.Load(module, weights));
        CollectionAssert.AreEquivalent(new[] { "extra.weight", "extra.double", "extra.view" }, ex.Unexpected.ToArray());
        Assert.AreEqual(0, ex.Missing.Count);
        Assert.AreEqual(0, ex.MisShaped.Count);
        StringAssert.Contains(ex.Message, "unexpected in the file (3): extra.weight, extra.double, extra.view");
        Assert.IsTrue(module.state_dict()["0.weight"].equal(before).all().item<bool>(), "nothing is copied on a mismatch");

        var result = StateDictLoader.Load(module, weights, new StateDictLoadOptions { IgnoreKeyPrefixes = new[] { "extra." } });
        Assert.AreEqual(3, result.Ignored.Count);
        Assert.AreEqual(9, result.Loaded.Count);
        foreach (var name in result.Loaded)
            Assert.IsTrue(module.state_dict()[name].to(weights[name].dtype).equal(weights[name]).all().item<bool>(), name);

        var lenient = StateDictLoader.Load(Tiny(), weights, new StateDictLoadOptions { Strict = false });
        CollectionAssert.AreEquivalent(new[] { "extra.weight", "extra.double", "extra.view" }, lenient.Unexpected.ToArray());
    }

    [TestMethod]
    public void LoadingListsMissingAndMisShapedKeys()
    {
        using var weights = StateDictFile.Read(Fixture("tiny-wrapped.pth"));
        using var wider = nn.Sequential(nn.Conv2d(3, 5, 3), new BatchNorm2d(5), nn.Linear(4, 2), nn.Linear(2, 2));
        var ex = Assert.ThrowsExactly<StateDictMismatchException>(() =>
            StateDictLoader.Load(wider, weights, new StateDictLoadOptions { IgnoreKeyPrefixes = new[] { "extra." } }));
        CollectionAssert.AreEquivalent(new[] { "3.weight", "3.bias" }, ex.Missing.ToArray());
        Assert.AreEqual(0, ex.Unexpected.Count);
        CollectionAssert.AreEquivalent(new[] { "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var" },
            ex.MisShaped.Select(m => m.Name).ToArray());
        StringAssert.Contains(ex.Message, "missing from the file (2): 3.weight, 3.bias");
        StringAssert.Contains(ex.Message, "0.weight: expected [5, 3, 3, 3], file has [4, 3, 3, 3]");
    }

    [TestMethod]
    public void RefusesWhatIsNotAStateDictWithTheFix()
    {
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => StateDictFile.Read(Fixture("tiny-module.pth"))).Message,
            "pickled 'torch.nn.modules.container.Sequential' object");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => StateDictFile.Read(Fixture("tiny-module.pth"))).Message,
            "torch.save(model.state_dict(), path)");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => StateDictFile.Read(Fixture("tiny-legacy.pth"))).Message,
            "legacy (pre-1.6, non-zip) format");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() =>
            StateDictFile.Read(Fixture("tiny-wrapped.pth"), entry: "args")).Message, "entry 'args' is a pickled 'argparse.Namespace' object");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() =>
            StateDictFile.Read(Fixture("tiny-wrapped.pth"), entry: "optimizer")).Message, "top-level keys are 'epoch', 'args', 'state_dict'");

        string dir = Path.Combine(Path.GetTempPath(), $"pth-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string text = Path.Combine(dir, "weights.pth");
            File.WriteAllText(text, "conv.weight 1 2 3\n");
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => StateDictFile.Read(text)).Message,
                "is not a PyTorch checkpoint: a file written by torch.save starts with a zip header");
            string zip = Path.Combine(dir, "other.zip");
            using (var archive = ZipFile.Open(zip, ZipArchiveMode.Create))
                using (var w = new StreamWriter(archive.CreateEntry("model/readme.txt").Open())) w.Write("hello");
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => StateDictFile.Read(zip)).Message,
                "no '<name>/data.pkl' entry (entries: model/readme.txt)");
            string truncated = Path.Combine(dir, "truncated.pth");
            var bytes = File.ReadAllBytes(Fixture("tiny-wrapped.pth"));
            File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
            Assert.ThrowsExactly<InvalidDataException>(() => StateDictFile.Read(truncated));
            Assert.ThrowsExactly<FileNotFoundException>(() => StateDictFile.Read(Path.Combine(dir, "absent.pth")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
