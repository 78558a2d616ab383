using System.Text;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using MLNet.Attention.Forecasting;
using MLNet.Attention.MultipleInstance;

namespace MLNet.Attention.Tests.Engine;

[TestClass]
public sealed class ConfigPersistenceTests
{
    [Flags]
    public enum Parts { None = 0, Left = 1, Right = 2 }

    public sealed record Inner(float[] Values, string? Note);

    /// <summary>Every supported field type, with values a text format would round (NaN, -0, subnormals).</summary>
    public sealed record Everything(bool Flag, int Count, long Big, float Single, double Double, string Name,
        string? Optional, Parts Parts, TimeSpan Step, TimeSpan? MaybeStep, DateTime When, int? MaybeCount,
        double[] Weights, string?[] Labels, Inner Nested, Inner? MaybeNested);

    /// <summary>A record exposing an array parameter as a read-only list, like SeriesScaler.</summary>
    public sealed class ListBacked
    {
        public ListBacked(float[] values) => Values = values;
        public IReadOnlyList<float> Values { get; }
        public int Length => Values.Count;   // computed: not stored
    }

    public sealed record Checked(int Width)
    {
        public void Validate()
        {
            if (Width < 1) throw new ArgumentOutOfRangeException(nameof(Width), Width, "Width must be at least 1.");
        }
    }

    // Same type name ("Settings") in different shapes: what an older or newer build would have written.
    public static class Saved { public sealed record Settings(int Width, double Rate); }
    public static class WithMode { public sealed record Settings(int Width, double Rate, string Mode); }
    public static class WithDefaultMode { public sealed record Settings(int Width, double Rate, string Mode = "fast"); }
    public static class WidthOnly { public sealed record Settings(int Width); }
    public static class IntRate { public sealed record Settings(int Width, int Rate); }
    public static class OtherName { public sealed record Options(int Width, double Rate); }

    public sealed record WithSettable(int Width) { public int Extra { get; init; } }
    public sealed record WithList(List<int> Items);

    private static byte[] Write<T>(T config) where T : notnull
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            ConfigPersistence.WriteConfig(writer, config);
        return stream.ToArray();
    }

    private static T Read<T>(byte[] bytes) where T : notnull
    {
        using var reader = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        var result = ConfigPersistence.ReadConfig<T>(reader);
        Assert.AreEqual(bytes.Length, reader.BaseStream.Position, "ReadConfig must consume what WriteConfig wrote.");
        return result;
    }

    private static T RoundTrip<T>(T config) where T : notnull => Read<T>(Write(config));

    [TestMethod]
    public void ModuleConfigsRoundTripEqual()
    {
        var itransformer = new InvertedTransformerConfig(96, 24, ModelWidth: 64, Heads: 4, Layers: 3,
            FeedForwardWidth: 128, Dropout: 0.05, UseNorm: false, Activation: "relu");
        Assert.AreEqual(itransformer, RoundTrip(itransformer));
        var crib = new CribConfig(Lookback: 48, PatchLength: 6, KlWeight: 3e-7, SeparateKeyValueProjections: true);
        Assert.AreEqual(crib, RoundTrip(crib));
        var acmil = new AcmilConfig(512, 128, 3, Branches: 4, TopK: 0, MaskRatio: 0.25, MaskMode: StkimMode.Bernoulli);
        Assert.AreEqual(acmil, RoundTrip(acmil));
        var gated = new GatedAttentionMilConfig(512, 256, 1, AttentionSize: 64, Dropout: 0.2);
        Assert.AreEqual(gated, RoundTrip(gated));
    }

    [TestMethod]
    public void ForecastingModelInfoRoundTripsWithScalerAndFrequency()
    {
        var scaler = new SeriesScaler(new[] { 1.5f, -2e-38f, float.Epsilon }, new[] { 1f, 0.25f, 3.4e38f });
        var cases = new[] { ((TimeSpan?)TimeSpan.FromMinutes(15), "Time"), (null, (string?)null) };
        foreach (var (frequency, timestamp) in cases)
        {
            var info = new ForecastingModelInfo(new[] { "A", "B", "ü" }, 12, 4, CalendarFeatures.Minutely, frequency,
                timestamp, "Past", "LastTime", "Next", scaler);
            var back = RoundTrip(info);
            CollectionAssert.AreEqual(info.Variates, back.Variates);
            Assert.AreEqual(info with { Variates = back.Variates, Scaler = back.Scaler }, back);
            CollectionAssert.AreEqual(scaler.Mean.ToArray(), back.Scaler.Mean.ToArray());
            CollectionAssert.AreEqual(scaler.Std.ToArray(), back.Scaler.Std.ToArray());
        }
    }

    [TestMethod]
    public void EveryFieldTypeRoundTripsBitExactly()
    {
        var value = new Everything(true, -7, long.MinValue, -0f, double.NaN, "naïve", null, Parts.Left | Parts.Right,
            TimeSpan.FromTicks(123_456_789), null,
            new DateTime(2024, 2, 29, 23, 59, 59, DateTimeKind.Utc).AddTicks(7), 42,
            new[] { double.Epsilon, -0d, double.PositiveInfinity, 0.1 }, new[] { "a", null, "" },
            new Inner(new[] { float.NaN, 1e-45f }, "n"), null);
        var back = RoundTrip(value);
        Assert.AreEqual(value.Flag, back.Flag);
        Assert.AreEqual(value.Count, back.Count);
        Assert.AreEqual(value.Big, back.Big);
        Assert.AreEqual(BitConverter.SingleToInt32Bits(value.Single), BitConverter.SingleToInt32Bits(back.Single));
        Assert.AreEqual(BitConverter.DoubleToInt64Bits(value.Double), BitConverter.DoubleToInt64Bits(back.Double));
        Assert.AreEqual(value.Name, back.Name);
        Assert.IsNull(back.Optional);
        Assert.AreEqual(value.Parts, back.Parts);
        Assert.AreEqual(value.Step, back.Step);
        Assert.IsNull(back.MaybeStep);
        Assert.AreEqual(value.When, back.When);
        Assert.AreEqual(DateTimeKind.Utc, back.When.Kind);
        Assert.AreEqual(42, back.MaybeCount);
        CollectionAssert.AreEqual(value.Weights.Select(BitConverter.DoubleToInt64Bits).ToArray(),
            back.Weights.Select(BitConverter.DoubleToInt64Bits).ToArray());
        CollectionAssert.AreEqual(value.Labels, back.Labels);
        CollectionAssert.AreEqual(value.Nested.Values.Select(BitConverter.SingleToInt32Bits).ToArray(),
            back.Nested.Values.Select(BitConverter.SingleToInt32Bits).ToArray());
        Assert.AreEqual("n", back.Nested.Note);
        Assert.IsNull(back.MaybeNested);
    }

    [TestMethod]
    public void ArrayParameterMayBeExposedAsAList()
    {
        var back = RoundTrip(new ListBacked(new[] { 1f, 2f }));
        CollectionAssert.AreEqual(new[] { 1f, 2f }, back.Values.ToArray());
    }

    [TestMethod]
    public void AFieldAddedLaterWithADefaultReadsAsTheDefaultFromOlderPayloads()
    {
        var back = Read<WithDefaultMode.Settings>(Write(new Saved.Settings(8, 0.5)));
        Assert.AreEqual(new WithDefaultMode.Settings(8, 0.5, "fast"), back);
        // Stored values win over the default.
        Assert.AreEqual("slow", Read<WithDefaultMode.Settings>(Write(new WithDefaultMode.Settings(8, 0.5, "slow"))).Mode);
    }

    private static string ReadFails<T>(byte[] bytes) where T : notnull =>
        Assert.ThrowsExactly<InvalidDataException>(() => Read<T>(bytes)).Message;

    [TestMethod]
    public void MissingUnknownAndMistypedFieldsNameTheFieldAndTheFix()
    {
        var saved = Write(new Saved.Settings(8, 0.5));

        var missing = ReadFails<WithMode.Settings>(saved);
        StringAssert.Contains(missing, "Settings has no field 'Mode'");
        StringAssert.Contains(missing, "expected: Width, Rate, Mode");

        var unknown = ReadFails<WidthOnly.Settings>(saved);
        StringAssert.Contains(unknown, "unknown field 'Rate'");
        StringAssert.Contains(unknown, "expected: Width");

        var retyped = ReadFails<IntRate.Settings>(saved);
        StringAssert.Contains(retyped, "Settings.Rate is stored as Double; expected Int32");

        var renamed = ReadFails<OtherName.Options>(saved);
        StringAssert.Contains(renamed, "found a saved 'Settings' where a Options was expected");

        // Same build: the file is damaged; another build: name the version to load it with.
        StringAssert.Contains(missing, "same version as this build");
        var older = ReadFails<WithMode.Settings>(Relabel(saved, "MLNet.Attention.Tests 0.0.9"));
        StringAssert.Contains(older, "saved by MLNet.Attention.Tests 0.0.9");
        StringAssert.Contains(older, "load the model with MLNet.Attention.Tests 0.0.9, or retrain");
    }

    /// <summary>Replaces the "assembly version" label that WriteConfig stores after the type name.</summary>
    private static byte[] Relabel(byte[] bytes, string savedBy)
    {
        using var reader = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        byte encoding = reader.ReadByte();
        string type = reader.ReadString();
        reader.ReadString();
        var rest = reader.ReadBytes(bytes.Length);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(encoding);
            writer.Write(type);
            writer.Write(savedBy);
            writer.Write(rest);
        }
        return stream.ToArray();
    }

    [TestMethod]
    public void InvalidStoredValuesAreReported()
    {
        var invalid = ReadFails<Checked>(Write(new Checked(0)));   // written without Validate, refused on read
        StringAssert.Contains(invalid, "do not make a valid Checked");
        StringAssert.Contains(invalid, "Width must be at least 1");

        var badHeads = ReadFails<InvertedTransformerConfig>(
            Write(new InvertedTransformerConfig(8, 4, ModelWidth: 6, Heads: 4)));
        StringAssert.Contains(badHeads, "Heads = 4 must be positive and divide ModelWidth = 6");

        var badEnum = ReadFails<AcmilConfig>(Write(new AcmilConfig(4, 4, 2, MaskMode: (StkimMode)9)));
        StringAssert.Contains(badEnum, "AcmilConfig.MaskMode holds 9, which is not a StkimMode value");

        var info = new ForecastingModelInfo(new[] { "A", "B" }, 12, 4, CalendarFeatures.None, null, null, "L", "T", "F",
            new SeriesScaler(new[] { 0f }, new[] { 1f }));
        StringAssert.Contains(ReadFails<ForecastingModelInfo>(Write(info)), "the scaler has 1 variates, the model 2");
    }

    [TestMethod]
    public void TruncatedOrNewerDataIsRefused()
    {
        var bytes = Write(new InvertedTransformerConfig(8, 4));
        StringAssert.Contains(ReadFails<InvertedTransformerConfig>(bytes[..^3]), "ends before its last field");
        var newer = (byte[])bytes.Clone();
        newer[0] = ConfigPersistence.EncodingVersion + 1;
        var message = ReadFails<InvertedTransformerConfig>(newer);
        StringAssert.Contains(message, $"config encoding version {ConfigPersistence.EncodingVersion + 1}");
        StringAssert.Contains(message, "Upgrade the MLNet.Attention packages");
    }

    [TestMethod]
    public void TypesThatCannotBePersistedAreRefusedWhenSaving()
    {
        var settable = Assert.ThrowsExactly<InvalidOperationException>(() => Write(new WithSettable(1) { Extra = 2 }));
        StringAssert.Contains(settable.Message, "Extra would not be saved");
        var list = Assert.ThrowsExactly<InvalidOperationException>(() => Write(new WithList(new List<int>())));
        StringAssert.Contains(list.Message, "WithList.Items has the type List`1");
        var nullName = Assert.ThrowsExactly<ArgumentException>(
            () => Write(new InvertedTransformerConfig(8, 4, Activation: null!)));
        StringAssert.Contains(nullName.Message, "InvertedTransformerConfig.Activation is null");
    }
}
