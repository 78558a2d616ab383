// A classifier written outside this repository, from the packages' public API only: an options class, a network, a
// model (logits + save/load) and a thin trainer on TorchClassifierTrainer. Also compiled into the test project
// (Engine/ThirdPartyTrainerTests) so it is exercised on every test run.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Classification;
using MLNet.Attention.Data;
using MLNet.Attention.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace ThirdParty.Mlp;

/// <summary>Options: the shared classifier options plus the feature column and the hidden width.</summary>
public sealed class MlpOptions : TorchClassifierOptions
{
    public string FeatureColumnName { get; set; } = "Features";
    public int Features { get; set; }
    public int Hidden { get; set; } = 32;
}

/// <summary>Linear → ReLU → Linear.</summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> hidden, output;

    public Mlp(int features, int width, int classes) : base(nameof(Mlp))
    {
        hidden = nn.Linear(features, width);
        output = nn.Linear(width, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var h = hidden.call(x);
        using var a = nn.functional.relu(h);
        return output.call(a);
    }
}

/// <summary>The fitted model: Score and PredictedLabel as ML.NET's classifiers, saved inside the ML.NET zip.</summary>
public sealed class MlpModel : TorchClassifierModel
{
    private readonly int _features, _hidden;

    public MlpModel(IHostEnvironment env, string feature, int features, int hidden, ClassLabels labels, Mlp network, Device device)
        : base(env, "Mlp", new[] { TorchInputColumn.Single(feature, features) }, labels, network, device, batchSize: 64)
    {
        _features = features;
        _hidden = hidden;
    }

    protected override Tensor Logits(Tensor[] inputs) => ((Mlp)Network).call(inputs[0].to(Device));

    protected override void SavePayload(BinaryWriter writer)
    {
        writer.Write(InputColumns[0].Name);
        writer.Write(_features);
        writer.Write(_hidden);
        Labels.Write(writer);
        Network.save(writer);
    }

    public static MlpModel Load(IHostEnvironment env, BinaryReader reader)
    {
        string feature = reader.ReadString();
        int features = reader.ReadInt32(), hidden = reader.ReadInt32();
        var labels = ClassLabels.Read(reader);
        return LoadNetwork(env, reader, () => new Mlp(features, hidden, labels.Count),
            (network, device) => new MlpModel(env, feature, features, hidden, labels, network, device));
    }
}

/// <summary>The trainer: four members; labels, splits, the loop, metrics and the output schema come from the base.</summary>
public sealed class MlpTrainer(IHostEnvironment env, MlpOptions options)
    : TorchClassifierTrainer<MlpOptions, Mlp, MlpModel>(env, "Mlp", options)
{
    protected override IReadOnlyList<TorchInputColumn> Inputs =>
        new[] { TorchInputColumn.Single(Options.FeatureColumnName, Options.Features) };

    protected override Mlp CreateNetwork(int classes) => new(Options.Features, Options.Hidden, classes);

    protected override Tensor Logits(Mlp network, Tensor?[] inputs, Device device) => network.call(inputs[0]!.to(device));

    protected override MlpModel CreateModel(Mlp network, ClassLabels labels, Device device, TrainingSummary summary) =>
        new(Environment, Options.FeatureColumnName, Options.Features, Options.Hidden, labels, network, device);
}

/// <summary>The catalog method a third party adds.</summary>
public static class MlpCatalog
{
    public static MlpTrainer Mlp(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, MlpOptions options) =>
        new(TrainerCatalog.EnvironmentOf(catalog), options);
}

/// <summary>Trains the third-party classifier on three Gaussian blobs, evaluates with ML.NET's evaluator, saves and
/// reloads through mlContext.Model and checks the reloaded scores are identical.</summary>
public static class MlpDemo
{
    public sealed class Row
    {
        [VectorType(4)] public float[] Features { get; set; } = new float[4];
        public string Label { get; set; } = "";
    }

    public static Row[] Blobs(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            int c = i % 3;
            var x = new float[4];
            for (int k = 0; k < 4; k++) x[k] = (float)((k == c ? 2.5 : 0) + random.NextDouble() * 2 - 1);
            return new Row { Features = x, Label = "class" + c };
        }).ToArray();
    }

    /// <summary>Returns (test macro accuracy, reloaded scores identical).</summary>
    public static (double MacroAccuracy, bool SameAfterReload) Run()
    {
        var ml = new MLContext(seed: 3);
        var train = ml.Data.LoadFromEnumerable(Blobs(300, 1));
        var test = ml.Data.LoadFromEnumerable(Blobs(150, 2));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.Mlp(new MlpOptions
            {
                Features = 4, Hidden = 16, MaxEpochs = 15, BatchSize = 16, LearningRate = 1e-2, NumberOfThreads = 1,
            }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var model = pipeline.Fit(train);
        var scored = model.Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        string path = Path.Combine(Path.GetTempPath(), $"mlp-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            var a = scored.GetColumn<float[]>("Score").SelectMany(s => s).ToArray();
            var b = loaded.Transform(test).GetColumn<float[]>("Score").SelectMany(s => s).ToArray();
            (loaded as IDisposable)?.Dispose();
            return (metrics.MacroAccuracy, a.SequenceEqual(b));
        }
        finally
        {
            (model as IDisposable)?.Dispose();
            File.Delete(path);
        }
    }
}
