using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Classification;

/// <summary>
/// A trained classifier whose outputs are those of ML.NET's own classifiers, so that the evaluators,
/// <c>CrossValidate</c>, <c>MapKeyToValue("PredictedLabel")</c> and a <c>PredictionEngine</c> with the usual properties
/// just work. Multiclass: <c>Score</c> (Vector&lt;Single, classes&gt; of probabilities, slot names = class names) and
/// <c>PredictedLabel</c> (a Key with the label's key values). Binary: <c>Score</c> (the margin z₁ − z₀ of the two
/// logits), <c>Probability</c> (its sigmoid, P(true)) and <c>PredictedLabel</c> (Boolean, Probability &gt; 0.5).
/// A subclass supplies the network's logits and its own save/load.
/// </summary>
public abstract class TorchClassifierModel : TorchTransformerBase
{
    /// <summary>The name of the probability output column (ML.NET's default).</summary>
    public const string ScoreColumnName = "Score";

    /// <summary>The name of the predicted-class output column (ML.NET's default).</summary>
    public const string PredictedLabelColumnName = "PredictedLabel";

    /// <summary>The name of a binary classifier's probability column (ML.NET's default).</summary>
    public const string ProbabilityColumnName = "Probability";

    /// <summary>Creates the model.</summary>
    /// <param name="env">The ML.NET environment.</param>
    /// <param name="name">Component name.</param>
    /// <param name="inputs">The model's input columns (features).</param>
    /// <param name="labels">The classes (from the training label column).</param>
    /// <param name="network">The trained network, owned by the model.</param>
    /// <param name="device">Device of the network.</param>
    /// <param name="batchSize">Rows per forward pass when scoring.</param>
    /// <param name="binary">Binary outputs (two classes, a Boolean label) instead of multiclass ones.</param>
    /// <param name="extraOutputs">Output columns after the classifier's own (e.g. an explanation), filled by
    /// <see cref="LogitsWithExtras"/>.</param>
    protected TorchClassifierModel(IHostEnvironment env, string name, IEnumerable<TorchInputColumn> inputs, ClassLabels labels,
        nn.Module network, Device device, int batchSize, bool binary = false, IEnumerable<TorchOutputColumn>? extraOutputs = null)
        : base(env, name, inputs, Outputs(labels ?? throw new ArgumentNullException(nameof(labels)), binary)
            .Concat(extraOutputs ?? Array.Empty<TorchOutputColumn>()), batchSize)
    {
        IsBinary = binary;
        Labels = labels;
        Network = network ?? throw new ArgumentNullException(nameof(network));
        Device = device;
        RejectNonFinite = true;   // a NaN feature would silently give NaN scores
        network.eval();
    }

    private static TorchOutputColumn[] Outputs(ClassLabels labels, bool binary)
    {
        if (binary && labels.Count != 2)
            throw new ArgumentException($"A binary classifier has two classes; got {labels.Count}.", nameof(labels));
        return binary
            ? new[] { new TorchOutputColumn(ScoreColumnName), new TorchOutputColumn(ProbabilityColumnName), TorchOutputColumn.Boolean(PredictedLabelColumnName) }
            : new[] { new TorchOutputColumn(ScoreColumnName, labels.Count), TorchOutputColumn.Key(PredictedLabelColumnName, labels.Count) };
    }

    /// <summary>True for a binary classifier (Score, Probability, Boolean PredictedLabel).</summary>
    public bool IsBinary { get; }

    /// <summary>The classes, in key order ("False", "True" for a binary classifier).</summary>
    public ClassLabels Labels { get; }

    /// <summary>The trained network.</summary>
    public nn.Module Network { get; }

    /// <summary>Device the network runs on.</summary>
    public Device Device { get; }

    /// <summary>Logits [B, classes] for the model inputs (CPU tensors in <see cref="TorchTransformerBase.InputColumns"/>
    /// order; move them to <see cref="Device"/>). Called in eval mode, inside a dispose scope and inference mode.</summary>
    protected abstract Tensor Logits(Tensor[] inputs);

    /// <summary>The logits and the values of the extra output columns (one tensor [B, dims...] each, in their order);
    /// by default <see cref="Logits"/> and none.</summary>
    protected virtual (Tensor Logits, Tensor[] Extras) LogitsWithExtras(Tensor[] inputs) => (Logits(inputs), Array.Empty<Tensor>());

    /// <inheritdoc/>
    protected sealed override Tensor[] Forward(Tensor[] inputs)
    {
        var (logits, extras) = LogitsWithExtras(inputs);
        if (IsBinary)
        {
            var margin = logits.select(1, 1) - logits.select(1, 0);
            var probability = margin.sigmoid();
            return new[] { margin, probability, probability.gt(TorchScalars.Of(0.5)).to(ScalarType.Float32) }.Concat(extras).ToArray();
        }
        var probabilities = nn.functional.softmax(logits, 1);
        var predicted = probabilities.argmax(1).to(ScalarType.Float32);
        return new[] { probabilities, predicted }.Concat(extras).ToArray();
    }

    /// <inheritdoc/>
    protected override DataViewSchema.Annotations? GetOutputAnnotations(int outputIndex, DataViewSchema inputSchema) =>
        IsBinary
            ? outputIndex switch
            {
                0 => ClassLabels.BinaryScoreAnnotations("Score"),
                1 => ClassLabels.BinaryScoreAnnotations("Probability"),
                _ => null,   // PredictedLabel and extra outputs
            }
            : outputIndex == 0 ? Labels.ScoreAnnotations() : outputIndex == 1 ? Labels.PredictedLabelAnnotations() : null;

    /// <inheritdoc/>
    protected override void DisposeModule() => Network.Dispose();

    /// <summary>The load skeleton every classifier shares: builds the network, reads its weights, moves it to the
    /// device by ML.NET's rule and hands both to <paramref name="create"/>; the network is disposed if any step fails.</summary>
    protected static TModel LoadNetwork<TNetwork, TModel>(IHostEnvironment env, BinaryReader reader, Func<TNetwork> build,
        Func<TNetwork, Device, TModel> create) where TNetwork : nn.Module
    {
        TorchRuntime.EnsureLoaded();
        var network = build();
        try
        {
            network.load(reader);
            var (gpu, fallback) = Interop.HostSettings.GpuSettings(env);
            var device = TorchRuntime.ResolveDevice(gpu, fallback);
            network.to(device);
            return create(network, device);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }
}
