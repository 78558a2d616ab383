using System.Buffers.Binary;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.LoadProbe;
using MLNet.Attention.Persistence;
using TorchSharp;
using static MLNet.Attention.Tests.Bridge.BridgeTestHelpers;

namespace MLNet.Attention.Tests.Bridge;

[TestClass]
public sealed class PersistenceTests
{
    private const int Rows = 37;

    [ClassCleanup]
    public static void Cleanup() => DeleteTempFiles();
    private const string SingleEntry = "TransformerChain/Model.key";

    /// <summary>Saves a lone probe transformer; returns the zip path and the expected bit patterns.</summary>
    private static (string Path, List<string> Expected) SaveProbe(string name = "probe.zip")
    {
        var ml = NewContext();
        using var t = ProbeLinearTransformer.Create(ml, batchSize: 8);
        var data = ProbeData.View(ml, Rows, Features);
        var expected = ProbeData.FormatColumn(t.Transform(data), "Score");
        return (Save(ml, t, data.Schema, name), expected);
    }

    private static TransformerChain<ITransformer> BuildChain(MLContext ml, IDataView data, ProbeLinearTransformer t)
    {
        var normalize = ml.Transforms.NormalizeMeanVariance("Features").Fit(data);
        var afterNormalize = normalize.Transform(data);
        var scored = t.Transform(afterNormalize);
        var copy = ml.Transforms.CopyColumns("ScoreCopy", "Score").Fit(scored);
        return new TransformerChain<ITransformer>(normalize, t, copy);
    }

    [TestMethod]
    public void SaveLoad_SameProcess_IsBitIdentical_ForTransformerAndChain()
    {
        var (path, expected) = SaveProbe();
        Assert.IsTrue(EntryNames(path).Contains(SingleEntry), string.Join(", ", EntryNames(path)));

        var ml = NewContext();
        var loaded = ml.Model.Load(path, out var schema);
        Assert.IsNotNull(schema);
        using (loaded as IDisposable)
        {
            var probe = loaded as ProbeLinearTransformer ?? (loaded as TransformerChain<ITransformer>)?.OfType<ProbeLinearTransformer>().Single();
            Assert.IsNotNull(probe, loaded.GetType().FullName);
            Assert.AreEqual(8, probe.BatchSize);
            CollectionAssert.AreEqual(expected, ProbeData.FormatColumn(loaded.Transform(ProbeData.View(ml, Rows, Features)), "Score"));
        }

        // A chain with first-party transforms before and after, timestamps (int64 input) and a scalar output.
        var ml2 = NewContext();
        var data = ProbeData.View(ml2, Rows, Features);
        using var t = ProbeLinearTransformer.Create(ml2, timestampColumn: "Timestamp", seed: 3);
        var chain = BuildChain(ml2, data, t);
        var before = ProbeData.FormatColumn(chain.Transform(data), "ScoreCopy");
        var hoursBefore = chain.Transform(data).GetColumn<float>("Hour").ToArray();
        string chainPath = Save(ml2, chain, data.Schema, "chain.zip");

        var ml3 = NewContext();
        using var loadedChain = (TransformerChain<ITransformer>)ml3.Model.Load(chainPath, out _);
        var data3 = ProbeData.View(ml3, Rows, Features);
        CollectionAssert.AreEqual(before, ProbeData.FormatColumn(loadedChain.Transform(data3), "ScoreCopy"));
        CollectionAssert.AreEqual(hoursBefore, loadedChain.Transform(data3).GetColumn<float>("Hour").ToArray());

        // And a PredictionEngine over the loaded chain.
        using var engine = ml3.Model.CreatePredictionEngine<ProbeRow, ScoreRow>(loadedChain, inputSchemaDefinition: ProbeData.SchemaFor(Features));
        var first = engine.Predict(ProbeData.Rows(1, Features)[0]).Score;
        Assert.AreEqual(3, first.Length);
    }

    [TestMethod]
    public void SaveLoad_FreshProcessWithoutRegistration_IsBitIdentical()
    {
        var (path, expected) = SaveProbe();
        var (exitCode, lines, stderr) = RunProbe(path, Rows, "Score");
        Assert.AreEqual(0, exitCode, string.Join("\n", lines) + "\n" + stderr);
        CollectionAssert.Contains(lines, "TYPE " + typeof(ProbeLinearTransformer).FullName);
        CollectionAssert.AreEqual(expected, lines.Where(l => l.StartsWith("ROW ")).Select(l => l[4..]).ToList());
        Assert.AreEqual("DONE", lines[^1]);
    }

    [TestMethod]
    public void SaveLoad_FreshProcess_Chain_IsBitIdentical()
    {
        var ml = NewContext();
        var data = ProbeData.View(ml, Rows, Features);
        using var t = ProbeLinearTransformer.Create(ml, seed: 5, batchSize: 5);
        var chain = BuildChain(ml, data, t);
        var expected = ProbeData.FormatColumn(chain.Transform(data), "ScoreCopy");
        string path = Save(ml, chain, data.Schema, "chain.zip");

        var (exitCode, lines, stderr) = RunProbe(path, Rows, "ScoreCopy");
        Assert.AreEqual(0, exitCode, string.Join("\n", lines) + "\n" + stderr);
        CollectionAssert.Contains(lines, "TYPE " + typeof(ProbeLinearTransformer).FullName);
        CollectionAssert.AreEqual(expected, lines.Where(l => l.StartsWith("ROW ")).Select(l => l[4..]).ToList());
    }

    private static Exception LoadFails(string path)
    {
        var ml = NewContext();
        return Assert.Throws<Exception>(() =>
        {
            var model = ml.Model.Load(path, out _);
            (model as IDisposable)?.Dispose();
        });
    }

    [TestMethod]
    public void CorruptedPayload_FailsWithChecksumMessage()
    {
        var (path, _) = SaveProbe();
        PatchEntry(path, SingleEntry, bytes =>
        {
            int magic = IndexOf(bytes, Magic);
            Assert.IsTrue(magic > 0);
            // Flip a byte well inside the payload (the weights), far from the header fields.
            int target = magic + 200;
            bytes[target] ^= 0x5A;
        });
        var ex = Find<InvalidDataException>(LoadFails(path));
        StringAssert.Contains(ex.Message, "checksum mismatch");
        StringAssert.Contains(ex.Message, "ProbeLinearTransformer");
        StringAssert.Contains(ex.Message, "corrupted");
        StringAssert.Contains(ex.Message, "re-save or re-download");
    }

    [TestMethod]
    public void LoadErrors_ReachTheUserAsOurException_NotAsTargetInvocationException()
    {
        static void Corrupt(string path, string entry) =>
            PatchEntry(path, entry, bytes => bytes[IndexOf(bytes, Magic) + 200] ^= 0x5A);

        // A lone transformer (mlContext.Model.Save(model, ...)): the exception caught is ours, not a reflection wrapper.
        var (path, _) = SaveProbe();
        Corrupt(path, SingleEntry);
        var ml = NewContext();
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => ml.Model.Load(path, out _), Messages(LoadFails(path)));
        StringAssert.Contains(ex.Message, "Model entry 'TransformerChain': checksum mismatch in the payload of " +
            $"'{typeof(ProbeLinearTransformer).FullName}': found SHA-256 ");
        StringAssert.Contains(ex.Message, ", expected ");
        StringAssert.Contains(ex.Message, "The model file is corrupted (for example truncated or modified); re-save or re-download it.");

        // A newer format version, same: the message asks for the upgrade directly.
        var (path2, _) = SaveProbe();
        PatchEntry(path2, SingleEntry, bytes =>
        {
            int magic = IndexOf(bytes, Magic);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(magic + 8), 9);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(magic + 12), 8);
        });
        var ex2 = Assert.ThrowsExactly<InvalidDataException>(() => NewContext().Model.Load(path2, out _));
        StringAssert.Contains(ex2.Message, "saved by a newer MLNet.Attention: payload format version 9");
        StringAssert.Contains(ex2.Message, "Upgrade the MLNet.Attention packages");

        // Inside a TransformerChain, ML.NET calls its own chain loader by MethodInfo.Invoke, so there our exception is
        // the direct InnerException of that one TargetInvocationException (documented limit, TorchTransformerLoader).
        var mlChain = NewContext();
        var data = ProbeData.View(mlChain, Rows, Features);
        using var t = ProbeLinearTransformer.Create(mlChain, seed: 4);
        string chainPath = Save(mlChain, BuildChain(mlChain, data, t), data.Schema, "corrupt-chain.zip");
        string entry = EntryNames(chainPath).Single(e => e.StartsWith("TransformerChain/Transform_") && Contains(chainPath, e, Magic));
        Corrupt(chainPath, entry);
        var outer = Assert.ThrowsExactly<System.Reflection.TargetInvocationException>(() =>
            NewContext().Model.Load(chainPath, out _));
        var inner = outer.InnerException as InvalidDataException;
        Assert.IsNotNull(inner, Messages(outer));
        StringAssert.Contains(inner.Message, $"Model entry '{entry[..entry.LastIndexOf('/')]}': checksum mismatch");
        StringAssert.Contains(inner.Message, "re-save or re-download it");
    }

    private static bool Contains(string zipPath, string entryName, byte[] pattern)
    {
        using var zip = System.IO.Compression.ZipFile.OpenRead(zipPath);
        using var stream = zip.Entries.Single(e => e.FullName.Replace('\\', '/') == entryName).Open();
        using var bytes = new MemoryStream();
        stream.CopyTo(bytes);
        return IndexOf(bytes.ToArray(), pattern) >= 0;
    }

    [TestMethod]
    public void TruncatedOrNonZipFile_FailsWithInvalidDataOrFormat()
    {
        var (path, _) = SaveProbe();
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var ex = LoadFails(path);
        Assert.IsTrue(ex is InvalidDataException or FormatException || ex.InnerException is InvalidDataException or FormatException,
            Messages(ex));

        string text = TempFile("not-a-model.zip");
        File.WriteAllText(text, "hello");
        var ex2 = LoadFails(text);
        Assert.IsTrue(ex2 is InvalidDataException or FormatException || ex2.InnerException is InvalidDataException or FormatException,
            Messages(ex2));
    }

    [TestMethod]
    public void ForeignPayload_WrongMagic_IsRefused()
    {
        var (path, _) = SaveProbe();
        PatchEntry(path, SingleEntry, bytes =>
        {
            int magic = IndexOf(bytes, Magic);
            Encoding.ASCII.GetBytes("NOTOURS!").CopyTo(bytes, magic);
        });
        var ex = Find<InvalidDataException>(LoadFails(path));
        StringAssert.Contains(ex.Message, "does not hold an MLNet.Attention payload");
        StringAssert.Contains(ex.Message, "found leading bytes [4E4F544F55525321]");
        StringAssert.Contains(ex.Message, "expected the magic");
    }

    [TestMethod]
    public void ForeignType_IsRefused_WithoutCallingIt()
    {
        var (path, _) = SaveProbe();
        string ours = nameof(ProbeLinearTransformer), theirs = nameof(NotATorchTransformer00);
        Assert.AreEqual(ours.Length, theirs.Length);
        PatchEntry(path, SingleEntry, bytes =>
        {
            int at = IndexOf(bytes, Encoding.UTF8.GetBytes(ours));
            Encoding.UTF8.GetBytes(theirs).CopyTo(bytes, at);
        });
        var ex = Find<InvalidDataException>(LoadFails(path));
        StringAssert.Contains(ex.Message, "refusing to load type 'MLNet.Attention.LoadProbe.NotATorchTransformer00'");
        StringAssert.Contains(ex.Message, "does not implement ITorchPersistable");
        StringAssert.Contains(ex.Message, "untrusted");
        Assert.IsFalse(NotATorchTransformer00.LoadWasCalled);

        // A type that does not exist at all.
        var (path2, _) = SaveProbe();
        PatchEntry(path2, SingleEntry, bytes =>
        {
            int at = IndexOf(bytes, Encoding.UTF8.GetBytes(ours));
            Encoding.UTF8.GetBytes("ProbeLinearTransformeX").CopyTo(bytes, at);
        });
        var ex2 = Find<InvalidDataException>(LoadFails(path2));
        StringAssert.Contains(ex2.Message, "transformer type 'MLNet.Attention.LoadProbe.ProbeLinearTransformeX' was not found");
        StringAssert.Contains(ex2.Message, "Reference the assembly");
    }

    [TestMethod]
    public void FutureFormatVersion_AsksToUpgrade()
    {
        var (path, _) = SaveProbe();
        PatchEntry(path, SingleEntry, bytes =>
        {
            int magic = IndexOf(bytes, Magic);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(magic + 8), 7);     // written
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(magic + 12), 5);    // minimum reader
        });
        var ex = Find<InvalidDataException>(LoadFails(path));
        StringAssert.Contains(ex.Message, "saved by a newer MLNet.Attention");
        StringAssert.Contains(ex.Message, "payload format version 7");
        StringAssert.Contains(ex.Message, $"up to version {TorchModelPersistence.CurrentFormatVersion}");
        StringAssert.Contains(ex.Message, "Upgrade the MLNet.Attention packages");

        // A newer writer whose format older readers can still read loads fine.
        var (path2, expected) = SaveProbe();
        PatchEntry(path2, SingleEntry, bytes =>
        {
            int magic = IndexOf(bytes, Magic);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(magic + 8), 9);
        });
        var ml = NewContext();
        var model = ml.Model.Load(path2, out _);
        using (model as IDisposable)
            CollectionAssert.AreEqual(expected, ProbeData.FormatColumn(model.Transform(ProbeData.View(ml, Rows, Features)), "Score"));
    }

    [TestMethod]
    public void SavingATypeWithoutLoadMethod_FailsAtSaveTime()
    {
        var ml = NewContext();
        using var t = new NoLoaderTransformer(ml);
        var data = ProbeData.View(ml, 2, Features);
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Model.Save(t, data.Schema, TempFile("noloader.zip")));
        StringAssert.Contains(ex.Message, "has no loader: declare 'public static NoLoaderTransformer Load(IHostEnvironment env, BinaryReader reader)'");
    }

    [TestMethod]
    public void ModuleHelpers_RejectMismatchedWeights()
    {
        using var small = torch.nn.Linear(4, 2);
        using var big = torch.nn.Linear(5, 2);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            TorchModelPersistence.WriteModule(writer, small);
        stream.Position = 0;
        using var reader = new BinaryReader(stream);
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => TorchModelPersistence.ReadModule(reader, big));
        StringAssert.Contains(ex.Message, "do not fit");
    }

    /// <summary>A transformer that forgot its static Load.</summary>
    private sealed class NoLoaderTransformer : TorchTransformerBase
    {
        public NoLoaderTransformer(IHostEnvironment env)
            : base(env, nameof(NoLoaderTransformer), new[] { TorchInputColumn.Single("Features", Features) },
                new[] { new TorchOutputColumn("Score", 1) })
        {
        }

        protected override torch.Tensor[] Forward(torch.Tensor[] inputs) => new[] { inputs[0].sum(1, keepdim: true) };

        protected override void SavePayload(BinaryWriter writer) => writer.Write(0);

        protected override void DisposeModule()
        {
        }
    }
}
