using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.LoadProbe;
using static MLNet.Attention.Tests.Bridge.BridgeTestHelpers;

namespace MLNet.Attention.Tests.Bridge;

[TestClass]
public sealed class BatchScoringTests
{
    private static float[][] ReadScores(IDataView view, string column = "Score")
    {
        var col = view.Schema[column];
        var result = new List<float[]>();
        using var cursor = view.GetRowCursor(new[] { col });
        var getter = cursor.GetGetter<VBuffer<float>>(col);
        VBuffer<float> value = default;
        while (cursor.MoveNext())
        {
            getter(ref value);
            result.Add(value.DenseValues().ToArray());
        }
        return result.ToArray();
    }

    [TestMethod]
    public void Transform_MatchesPerRowPredictionEngine_AndScoresInBatches()
    {
        var ml = NewContext();
        const int rows = 300;
        using var t = ProbeLinearTransformer.Create(ml, batchSize: 64);
        var data = ProbeData.View(ml, rows, Features);

        var batched = ReadScores(t.Transform(data));
        Assert.AreEqual(rows, batched.Length);
        Assert.AreEqual(5, t.ForwardCalls, "300 rows in batches of 64 = 5 forward passes");
        Assert.AreEqual(64, t.MaxBatch);

        using var engine = ml.Model.CreatePredictionEngine<ProbeRow, ScoreRow>(t, inputSchemaDefinition: ProbeData.SchemaFor(Features));
        var source = ProbeData.Rows(rows, Features);
        for (int r = 0; r < rows; r++)
        {
            var single = engine.Predict(source[r]).Score;
            Assert.AreEqual(3, single.Length);
            for (int k = 0; k < 3; k++)
                Assert.AreEqual(batched[r][k], single[k], 1e-5f * (1 + Math.Abs(single[k])), $"row {r}, output {k}");
        }
        Assert.AreEqual(5 + rows, t.ForwardCalls, "the prediction engine scores one row per forward pass");

        Assert.IsTrue(batched.Any(s => s.Any(v => Math.Abs(v) > 1e-3f)));
    }

    [TestMethod]
    public void NoOutputRequested_NoForwardPass_AndPassThroughWorks()
    {
        var ml = NewContext();
        using var t = ProbeLinearTransformer.Create(ml, batchSize: 16);
        var scored = t.Transform(ProbeData.View(ml, 40, Features));
        var tags = scored.GetColumn<string>("Tag").ToArray();
        Assert.AreEqual(40, tags.Length);
        Assert.AreEqual("row39", tags[39]);
        Assert.AreEqual(0, t.ForwardCalls);
    }

    [TestMethod]
    public void PassThroughColumns_StayAlignedWithScores_IncludingShuffledCursors()
    {
        var ml = NewContext();
        const int rows = 103;
        using var t = ProbeLinearTransformer.Create(ml, batchSize: 10, timestampColumn: "Timestamp");
        var source = ProbeData.Rows(rows, Features);
        var view = ml.Data.Cache(ProbeData.View(ml, rows, Features));
        var scored = t.Transform(view);

        // Expected scores per tag from the sequential pass.
        var sequentialScores = ReadScores(scored);
        var expected = new Dictionary<string, float[]>();
        for (int r = 0; r < rows; r++)
            expected[source[r].Tag] = sequentialScores[r];

        Assert.IsTrue(scored.CanShuffle);
        var schema = scored.Schema;
        var columns = new[] { schema["Tag"], schema["Weight"], schema["Features"], schema["Timestamp"], schema["Score"], schema["Hour"] };
        using var cursor = scored.GetRowCursor(columns, new Random(7));
        var tag = cursor.GetGetter<ReadOnlyMemory<char>>(schema["Tag"]);
        var weight = cursor.GetGetter<float>(schema["Weight"]);
        var features = cursor.GetGetter<VBuffer<float>>(schema["Features"]);
        var timestamp = cursor.GetGetter<DateTime>(schema["Timestamp"]);
        var score = cursor.GetGetter<VBuffer<float>>(schema["Score"]);
        var hour = cursor.GetGetter<float>(schema["Hour"]);
        var ids = cursor.GetIdGetter();
        var seenIds = new HashSet<DataViewRowId>();
        var order = new List<int>();
        ReadOnlyMemory<char> tagValue = default;
        VBuffer<float> featureValue = default, scoreValue = default;
        float weightValue = 0, hourValue = 0;
        DateTime timeValue = default;
        DataViewRowId id = default;
        long expectedPosition = 0;
        while (cursor.MoveNext())
        {
            Assert.AreEqual(expectedPosition++, cursor.Position);
            tag(ref tagValue);
            weight(ref weightValue);
            features(ref featureValue);
            timestamp(ref timeValue);
            score(ref scoreValue);
            hour(ref hourValue);
            ids(ref id);
            Assert.IsTrue(seenIds.Add(id), "row ids are unique");
            int r = int.Parse(tagValue.ToString()["row".Length..]);
            order.Add(r);
            Assert.AreEqual(source[r].Weight, weightValue);
            CollectionAssert.AreEqual(source[r].Features, featureValue.DenseValues().ToArray());
            Assert.AreEqual(source[r].Timestamp, timeValue);
            Assert.AreEqual((float)source[r].Timestamp.Hour, hourValue);
            CollectionAssert.AreEqual(expected[tagValue.ToString()], scoreValue.DenseValues().ToArray(), $"score of {tagValue}");
        }
        Assert.AreEqual(rows, order.Count);
        CollectionAssert.AreNotEqual(Enumerable.Range(0, rows).ToList(), order, "the Random was honoured (rows shuffled)");

        // Same seed, same order.
        using var again = scored.GetRowCursor(new[] { schema["Tag"], schema["Score"] }, new Random(7));
        var tag2 = again.GetGetter<ReadOnlyMemory<char>>(schema["Tag"]);
        var order2 = new List<int>();
        while (again.MoveNext())
        {
            tag2(ref tagValue);
            order2.Add(int.Parse(tagValue.ToString()["row".Length..]));
        }
        CollectionAssert.AreEqual(order, order2);

        // A cursor set of one cursor.
        var set = scored.GetRowCursorSet(new[] { schema["Score"] }, 4);
        Assert.AreEqual(1, set.Length);
        set[0].Dispose();
    }

    [TestMethod]
    public void ChainedWithFirstPartyTransforms_TransformerChainAndEstimatorChain()
    {
        var ml = NewContext();
        var rows = Enumerable.Range(0, 50).Select(i => new SplitRow
        {
            A = new[] { i * 0.1f, 1f, -2f, 0.5f },
            B = new[] { MathF.Cos(i), 2f, i % 3, -1f },
        }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        using var t = ProbeLinearTransformer.Create(ml, batchSize: 16);

        // Estimator chain: Concatenate -> probe -> CopyColumns -> NormalizeMinMax (first-party before and after).
        var pipeline = ml.Transforms.Concatenate("Features", "A", "B")
            .Append(new PrebuiltEstimator(t))
            .Append(ml.Transforms.CopyColumns("ScoreCopy", "Score"))
            .Append(ml.Transforms.NormalizeMinMax("ScoreNorm", "Score"));
        var shape = pipeline.GetOutputSchema(ShapeOf(data.Schema));
        Assert.IsTrue(shape.Any(c => c.Name == "ScoreNorm"));
        var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var score = ReadScores(scored, "Score");
        var copy = ReadScores(scored, "ScoreCopy");
        Assert.AreEqual(50, score.Length);
        for (int r = 0; r < score.Length; r++)
            CollectionAssert.AreEqual(score[r], copy[r]);

        // The same chain through a PredictionEngine (IRowToRowMapper composition).
        using var engine = ml.Model.CreatePredictionEngine<SplitRow, ChainOutput>(model);
        for (int r = 0; r < rows.Count; r += 7)
        {
            var p = engine.Predict(rows[r]);
            for (int k = 0; k < 3; k++)
            {
                Assert.AreEqual(score[r][k], p.Score[k], 1e-5f * (1 + Math.Abs(score[r][k])));
                Assert.AreEqual(p.Score[k], p.ScoreCopy[k]);
            }
        }
    }

    [TestMethod]
    public void RejectNonFinite_NamesColumnAndRow_InCursorAndPredictionEngine()
    {
        var ml = NewContext();
        using var t = ProbeLinearTransformer.Create(ml, batchSize: 4, rejectNonFinite: true);
        var source = ProbeData.Rows(10, Features);
        source[6].Features[2] = float.NaN;
        var scored = t.Transform(ml.Data.LoadFromEnumerable(source, ProbeData.SchemaFor(Features)));
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => ReadScores(scored));
        StringAssert.Contains(ex.Message, "Column 'Features' has a non-finite value (NaN) at row 6, element 2");
        StringAssert.Contains(ex.Message, "ReplaceMissingValues");

        using var engine = ml.Model.CreatePredictionEngine<ProbeRow, ScoreRow>(t, inputSchemaDefinition: ProbeData.SchemaFor(Features));
        engine.Predict(source[0]);
        source[1].Features[0] = float.PositiveInfinity;
        var ex2 = Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(source[1]));
        // A prediction engine's position is its call count, not a row of any data view: say so.
        StringAssert.Contains(ex2.Message, "Column 'Features' has a non-finite value (Infinity) at prediction 2 " +
            "(counting this prediction engine's Predict calls from 1), element 0");
        StringAssert.Contains(ex2.Message, "ReplaceMissingValues");

        // The same behind another transformer of a chain (our row mapper then sees that transformer's mapped row).
        var data = ml.Data.LoadFromEnumerable(source, ProbeData.SchemaFor(Features));
        var chain = new TransformerChain<ITransformer>(ml.Transforms.CopyColumns("Copy", "Features").Fit(data), t);
        using var chainEngine = ml.Model.CreatePredictionEngine<ProbeRow, ScoreRow>(chain,
            inputSchemaDefinition: ProbeData.SchemaFor(Features));
        chainEngine.Predict(source[0]);
        chainEngine.Predict(source[2]);
        var ex3 = Assert.ThrowsExactly<InvalidOperationException>(() => chainEngine.Predict(source[6]));
        StringAssert.Contains(ex3.Message, "non-finite value (NaN) at prediction 3 (counting this prediction engine's Predict calls");

        // The row mapper driven by a cursor keeps row numbers.
        var mapper = t.GetRowToRowMapper(data.Schema);
        using var cursor = data.GetRowCursor(data.Schema);
        var row = mapper.GetRow(cursor, mapper.OutputSchema);
        var score = row.GetGetter<VBuffer<float>>(mapper.OutputSchema["Score"]);
        VBuffer<float> value = default;
        var ex4 = Assert.ThrowsExactly<InvalidOperationException>(() =>
        {
            while (cursor.MoveNext()) score(ref value);
        });
        StringAssert.Contains(ex4.Message, "Column 'Features' has a non-finite value (Infinity) at row 1, element 0");

        // Without the option NaN flows through to the module.
        using var lenient = ProbeLinearTransformer.Create(ml, batchSize: 4);
        var values = ReadScores(lenient.Transform(ml.Data.LoadFromEnumerable(source, ProbeData.SchemaFor(Features))));
        Assert.IsTrue(float.IsNaN(values[6][0]));
    }

    public sealed class SplitRow
    {
        [VectorType(4)]
        public float[] A { get; set; } = Array.Empty<float>();

        [VectorType(4)]
        public float[] B { get; set; } = Array.Empty<float>();
    }

    public sealed class ChainOutput
    {
        [VectorType(3)]
        public float[] Score { get; set; } = Array.Empty<float>();

        [VectorType(3)]
        public float[] ScoreCopy { get; set; } = Array.Empty<float>();
    }
}
