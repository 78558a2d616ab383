using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.LoadProbe;
using static MLNet.Attention.Tests.Bridge.BridgeTestHelpers;

namespace MLNet.Attention.Tests.Bridge;

[TestClass]
public sealed class SchemaValidationTests
{
    private static DataViewSchema Schema(params (string Name, DataViewType Type)[] columns)
    {
        var builder = new DataViewSchema.Builder();
        foreach (var (name, type) in columns)
            builder.AddColumn(name, type);
        return builder.ToSchema();
    }

    private static ArgumentOutOfRangeException Expect(ProbeLinearTransformer t, DataViewSchema schema)
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => t.GetOutputSchema(schema));
        Assert.AreEqual("inputSchema", ex.ParamName);
        return ex;
    }

    [TestMethod]
    public void MissingColumn_NamesColumnExpectedTypeAndAvailableColumns()
    {
        using var t = ProbeLinearTransformer.Create(NewContext(), inputDims: new[] { 2, 4 });
        var ex = Expect(t, Schema(("Other", NumberDataViewType.Single)));
        StringAssert.Contains(ex.Message, "Column 'Features' was not found");
        StringAssert.Contains(ex.Message, "expected Vector<Single, 8> (2 x 4)");
        StringAssert.Contains(ex.Message, "'Other'");
    }

    [TestMethod]
    public void WrongItemType_NamesActualAndExpectedAndConvertType()
    {
        using var t = ProbeLinearTransformer.Create(NewContext(), inputDims: new[] { 2, 4 });
        var ex = Expect(t, Schema(("Features", new VectorDataViewType(NumberDataViewType.Double, 8))));
        StringAssert.Contains(ex.Message, "Column 'Features' has type Vector<Double, 8>; expected Vector<Single, 8> (2 x 4)");
        StringAssert.Contains(ex.Message, "mlContext.Transforms.Conversion.ConvertType");
    }

    [TestMethod]
    public void WrongVectorSize_NamesBothSizes()
    {
        using var t = ProbeLinearTransformer.Create(NewContext());
        var ex = Expect(t, Schema(("Features", new VectorDataViewType(NumberDataViewType.Single, 6))));
        StringAssert.Contains(ex.Message, "Column 'Features' has type Vector<Single, 6>; expected Vector<Single, 8>");
        StringAssert.Contains(ex.Message, "8 values per row, found 6");
    }

    [TestMethod]
    public void UnknownSizeVector_AsksForKnownSize()
    {
        using var t = ProbeLinearTransformer.Create(NewContext());
        var ex = Expect(t, Schema(("Features", new VectorDataViewType(NumberDataViewType.Single))));
        StringAssert.Contains(ex.Message, "has type Vector<Single> (unknown size); expected Vector<Single, 8>");
        StringAssert.Contains(ex.Message, "[VectorType(8)]");
    }

    [TestMethod]
    public void ScalarWhereVectorExpected_IsRejected()
    {
        using var t = ProbeLinearTransformer.Create(NewContext());
        var ex = Expect(t, Schema(("Features", NumberDataViewType.Single)));
        StringAssert.Contains(ex.Message, "Column 'Features' has type Single; expected Vector<Single, 8>");
        StringAssert.Contains(ex.Message, "Concatenate");
    }

    [TestMethod]
    public void WrongDateTimeColumnType_IsRejected()
    {
        using var t = ProbeLinearTransformer.Create(NewContext(), timestampColumn: "Timestamp");
        var ex = Expect(t, Schema(("Features", new VectorDataViewType(NumberDataViewType.Single, 8)), ("Timestamp", TextDataViewType.Instance)));
        StringAssert.Contains(ex.Message, "Column 'Timestamp' has type String; expected DateTime");
    }

    [TestMethod]
    public void SameTotalSizeWithOtherDimensions_IsAccepted_AndOutputsAreAppended()
    {
        using var t = ProbeLinearTransformer.Create(NewContext(), inputDims: new[] { 2, 4 }, timestampColumn: "Timestamp");
        var output = t.GetOutputSchema(Schema(("Features", new VectorDataViewType(NumberDataViewType.Single, 8)),
            ("Timestamp", DateTimeDataViewType.Instance)));
        Assert.AreEqual(4, output.Count);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3), output["Score"].Type);
        Assert.AreEqual(NumberDataViewType.Single, output["Hour"].Type);
    }

    [TestMethod]
    public void OutputColumnWithInputName_HidesTheInputColumn()
    {
        using var t = ProbeLinearTransformer.Create(NewContext(), outputColumn: "Weight");
        var output = t.GetOutputSchema(Schema(("Features", new VectorDataViewType(NumberDataViewType.Single, 8)),
            ("Weight", NumberDataViewType.Single)));
        Assert.AreEqual(3, output.Count);
        Assert.IsTrue(output[1].IsHidden);
        Assert.AreEqual(2, output["Weight"].Index);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3), output["Weight"].Type);
    }

    [TestMethod]
    public void TransformAndMapper_ValidateToo()
    {
        var ml = NewContext();
        using var t = ProbeLinearTransformer.Create(ml, inputColumn: "Tag");
        var data = ProbeData.View(ml, 4, Features);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => t.Transform(data));
        StringAssert.Contains(ex.Message, "Column 'Tag' has type String; expected Vector<Single, 8>");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => t.GetRowToRowMapper(data.Schema));
    }
}
