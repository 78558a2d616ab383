using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;
using static MLNet.Attention.Tests.Forecasting.InvertedTransformerTrainerTests;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.Tests.Forecasting;

/// <summary>The forecasters score with an evaluation-only copy of the trained network (fused QKV for iTransformer;
/// frozen weight norms and a dense TCN for CRIB): same forecasts as the trained network within 1e-5, while the
/// trained network still trains and saves the same bytes.</summary>
[TestClass]
public sealed class InferenceCopyTests
{
    private static readonly string[] Variates = { "A", "B", "C" };
    private const double Tolerance = 1e-5;

    [TestMethod]
    public void CribScoresComeFromAnInferenceCopyEqualToTheTrainedNetwork()
    {
        var ml = new MLContext(seed: 5);
        var all = MissingValueSimulation.Apply(ml.Data.LoadFromEnumerable(Series(600)), Variates, MissingPattern.Point,
            0.2, 7, "Time");
        var options = new CribOptions
        {
            VariateColumnNames = Variates, TimestampColumnName = "Time", Lookback = L, Horizon = S, PatchLength = 8,
            ModelWidth = 16, Heads = 2, Layers = 2, MaxEpochs = 2, BatchSize = 16, LearningRate = 3e-3,
            NumberOfThreads = 1, ScoringBatchSize = 7,
        };
        using var model = ml.Forecasting.Trainers.Crib(options).Fit(ml.Data.TakeRows(all, 450));
        byte[] before = Save(model.Network);
        var windows = model.CreateWindows(ml, ml.Data.SkipRows(all, 450 - L), includeTargets: false);
        var scored = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        var rows = ml.Data.CreateEnumerable<LookbackRow>(windows, reuseRowObject: false).ToArray();
        Assert.IsTrue(rows.Any(r => r.Lookback.Any(float.IsNaN)), "the windows should hold missing values");

        AssertMatchesTrainedNetwork(model, rows, scored, withMask: true);
        var copy = model.ExportScorer.Scoring;
        Assert.IsInstanceOfType<CribNetwork>(copy);
        Assert.AreNotSame(model.Network, copy);
        // The model's own network is untouched: it still trains (weight norms recomputed), and saves the same bytes.
        CollectionAssert.AreEqual(before, Save(model.Network));
        var network = model.Network;
        network.train();
        using (var scope = NewDisposeScope())
        {
            var x = randn(4, L, 3);
            using var terms = network.ComputeLoss(x, null, randn(4, S, 3));
            terms.Total.backward();
            Assert.IsTrue(network.parameters().Any(p => p.grad is not null));
        }
        network.eval();
    }

    [TestMethod]
    public void InvertedTransformerScoresComeFromAnInferenceCopyEqualToTheTrainedNetwork()
    {
        var ml = new MLContext(seed: 5);
        var data = ml.Data.LoadFromEnumerable(Series(500));
        using var model = TrainTiny(ml, ml.Data.TakeRows(data, 400), o =>
        {
            o.MaxEpochs = 2;
            o.Layers = 2;
            o.CalendarFeatures = CalendarFeatures.None;
            o.ScoringBatchSize = 5;
        });
        byte[] before = Save(model.Network);
        var windows = model.CreateWindows(ml, ml.Data.SkipRows(data, 400 - L), includeTargets: false);
        var scored = model.Transform(windows).GetColumn<float[]>("Forecast").ToArray();
        var rows = ml.Data.CreateEnumerable<LookbackRow>(windows, reuseRowObject: false).ToArray();
        AssertMatchesTrainedNetwork(model, rows, scored, withMask: false);
        // One window at a time (the PredictionEngine path) gives the batch's forecasts.
        using var engine = ml.Model.CreatePredictionEngine<LookbackRow, WindowOutput>(model);
        for (int r = 0; r < 5; r++)
        {
            var single = engine.Predict(rows[r]).Forecast;
            for (int i = 0; i < single.Length; i++) Assert.AreEqual(scored[r][i], single[i], 1e-4, $"window {r} value {i}");
        }
        Assert.IsInstanceOfType<InvertedTransformerNetwork>(model.ExportScorer.Scoring);
        Assert.AreNotSame(model.Network, model.ExportScorer.Scoring);
        CollectionAssert.AreEqual(before, Save(model.Network));
    }

    [TestMethod]
    [DataRow(true, "gelu", 0, 0, DisplayName = "RevIN, calendar covariates")]
    [DataRow(false, "relu", 0, 4, DisplayName = "no RevIN, relu, calendar covariates")]
    [DataRow(true, "gelu", 2, 4, DisplayName = "known-future covariates")]
    public void InvertedTransformerCopyForecastsAsTheNetwork(bool useNorm, string activation, int future, int calendar)
    {
        var config = new InvertedTransformerConfig(24, 8, ModelWidth: 32, Heads: 4, Layers: 2, FeedForwardWidth: 48,
            UseNorm: useNorm, Activation: activation, FutureCovariates: future);
        using var network = new InvertedTransformerNetwork(config);
        network.eval();
        using var scope = NewDisposeScope();
        var rngBefore = random.get_rng_state();
        using var copy = network.CreateInferenceCopy(CPU);
        Assert.IsTrue(random.get_rng_state().eq(rngBefore).all().item<bool>(), "making the copy must not draw random numbers");
        var windows = randn(3, 24, 5).mul(Of(3.0)).add(Of(2.0), Of(1.0));
        var covariates = calendar > 0 ? randn(3, 24, calendar) : null;
        using var noGrad = no_grad();
        Tensor expected, actual;
        if (future > 0)
        {
            var ahead = randn(3, 8, future);
            expected = network.ForecastScaled(windows, covariates, null, ahead);
            actual = copy.ForecastScaled(windows, covariates, null, ahead);
        }
        else
        {
            expected = network.ForecastScaled(windows, covariates, null);
            actual = copy.ForecastScaled(windows, covariates, null);
        }
        CollectionAssert.AreEqual(expected.shape, actual.shape);
        Assert.IsTrue(expected.sub(actual).abs().max().item<float>() <= Tolerance, "copy vs network");
        copy.train();
        Assert.ThrowsExactly<InvalidOperationException>(() => future > 0
            ? copy.ForecastScaled(windows, covariates, null, randn(3, 8, future))
            : copy.ForecastScaled(windows, covariates, null));
    }

    [TestMethod]
    [DataRow(24, false, DisplayName = "3 patches: dense TCN")]
    [DataRow(96, false, DisplayName = "12 patches: convolutions with frozen weight norms")]
    [DataRow(48, true, DisplayName = "separate key/value projections, standard head merge")]
    public void CribCopyForecastsAsTheNetwork(int lookback, bool variantAttention)
    {
        var config = new CribConfig(Lookback: lookback, Horizon: 12, ModelWidth: 16, Heads: 2, Layers: 2,
            SeparateKeyValueProjections: variantAttention, StandardHeadMerge: variantAttention);
        using var network = new CribNetwork(config);
        network.eval();
        using var scope = NewDisposeScope();
        using var copy = network.CreateInferenceCopy(CPU);
        // The toolkit's contract: missing entries zero-filled, the mask beside them.
        var mask = rand(4, lookback, 3).gt(Of(0.2)).to(ScalarType.Float32);
        var windows = randn(4, lookback, 3).mul(mask);
        using var noGrad = no_grad();
        var expected = network.ForecastScaled(windows, null, mask);
        var actual = copy.ForecastScaled(windows, null, mask);
        Assert.IsTrue(expected.sub(actual).abs().max().item<float>() <= Tolerance, "copy vs network");
        var unmasked = network.ForecastScaled(windows, null, null).sub(copy.ForecastScaled(windows, null, null));
        Assert.IsTrue(unmasked.abs().max().item<float>() <= Tolerance, "copy vs network without a mask");
        copy.train();
        Assert.ThrowsExactly<InvalidOperationException>(() => copy.ForecastScaled(windows, null, mask));
    }

    /// <summary>The model's forecasts (original units) against the trained network's own forward on the same scaled,
    /// zero-filled windows: within 1e-5 in scaled units.</summary>
    private static void AssertMatchesTrainedNetwork(ForecastingModel model, LookbackRow[] rows, float[][] scored,
        bool withMask)
    {
        int n = Variates.Length;
        var mean = model.Scaler.Mean;
        var std = model.Scaler.Std;
        var scaled = new float[rows.Length * L * n];
        var observed = new float[scaled.Length];
        for (int r = 0; r < rows.Length; r++)
            for (int i = 0; i < L * n; i++)
            {
                float v = rows[r].Lookback[i];
                bool present = !float.IsNaN(v);
                scaled[r * L * n + i] = present ? (v - mean[i % n]) / std[i % n] : 0;
                observed[r * L * n + i] = present ? 1 : 0;
            }
        var network = (IForecastingNetwork)model.ExportScorer.Network;
        ((nn.Module)network).eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = tensor(scaled, new long[] { rows.Length, L, n });
        var mask = withMask ? tensor(observed, new long[] { rows.Length, L, n }) : null;
        var expected = network.ForecastScaled(input, null, mask).data<float>().ToArray();
        Assert.AreEqual(rows.Length, scored.Length);
        double worst = 0;
        for (int r = 0; r < rows.Length; r++)
            for (int i = 0; i < S * n; i++)
                worst = Math.Max(worst, Math.Abs((scored[r][i] - mean[i % n]) / std[i % n] - expected[r * S * n + i]));
        Assert.IsTrue(worst <= Tolerance, $"the scored forecasts differ from the trained network's by {worst:G3} (scaled)");
    }

    // The network's weights as the model file stores them (the zip around them carries timestamps).
    private static byte[] Save(TorchSharp.torch.nn.Module network)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) network.save(writer);
        return stream.ToArray();
    }

    // A window row of models without calendar covariates: the lookback alone.
    internal sealed class LookbackRow
    {
        [VectorType(L * 3)] public float[] Lookback { get; set; } = Array.Empty<float>();
    }
}
