using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Classification;

/// <summary>
/// The base of every classifier trainer: a network that maps the input columns to logits; the toolkit does the rest —
/// Key (or Boolean) label checks, class counts, the stratified validation split, class weights, cross-entropy, streamed
/// batches, validation accuracy/macro-F1/AUC for early stopping, and the output schema of ML.NET's own classifiers.
/// </summary>
/// <remarks>
/// A new classifier is an options class derived from <see cref="TorchClassifierOptions"/>, a model derived from
/// <see cref="TorchClassifierModel"/> (its logits and its save/load), this trainer with four members, and a catalog
/// method. Example (a two-layer perceptron):
/// <code>
/// public sealed class MlpTrainer(IHostEnvironment env, MlpOptions options)
///     : TorchClassifierTrainer&lt;MlpOptions, Mlp, MlpModel&gt;(env, "Mlp", options)
/// {
///     protected override IReadOnlyList&lt;TorchInputColumn&gt; Inputs =&gt;
///         new[] { TorchInputColumn.Single(Options.FeatureColumnName, Options.Features) };
///     protected override Mlp CreateNetwork(int classes) =&gt; new(Options.Features, Options.Hidden, classes);
///     protected override Tensor Logits(Mlp network, Tensor?[] inputs, Device device) =&gt; network.call(inputs[0]!.to(device));
///     protected override MlpModel CreateModel(Mlp network, ClassLabels labels, Device device, TrainingSummary summary) =&gt;
///         new(Environment, Options, labels, network, device);
/// }
/// </code>
/// </remarks>
/// <typeparam name="TOptions">The trainer's options.</typeparam>
/// <typeparam name="TNetwork">The network module (owned by the model after training).</typeparam>
/// <typeparam name="TModel">The fitted model.</typeparam>
public abstract class TorchClassifierTrainer<TOptions, TNetwork, TModel> : TorchTrainerBase<TOptions, TModel>
    where TOptions : TorchClassifierOptions
    where TNetwork : nn.Module
    where TModel : TorchClassifierModel
{
    /// <inheritdoc/>
    protected TorchClassifierTrainer(IHostEnvironment env, string name, TOptions options) : base(env, name, options)
    {
    }

    /// <summary>True for a binary classifier (Boolean label; Score, Probability and Boolean PredictedLabel outputs),
    /// false for a multiclass one (Key label; Score vector and Key PredictedLabel).</summary>
    protected virtual bool IsBinary => false;

    /// <summary>The model's input columns (the label is added by the toolkit).</summary>
    protected abstract IReadOnlyList<TorchInputColumn> Inputs { get; }

    /// <summary>Builds a freshly initialised network for <paramref name="classes"/> classes (called after seeding).</summary>
    protected abstract TNetwork CreateNetwork(int classes);

    /// <summary>Logits [B, classes] of the network for a batch (CPU tensors in <see cref="Inputs"/> order; move them to
    /// <paramref name="device"/>).</summary>
    protected abstract Tensor Logits(TNetwork network, Tensor?[] inputs, Device device);

    /// <summary>Wraps the trained network (now owned by the model) in the fitted model.</summary>
    protected abstract TModel CreateModel(TNetwork network, ClassLabels labels, Device device, TrainingSummary summary);

    /// <summary>Train-only augmentation of a batch: (batch, optimizer step) → batch; null (the default) for none. Draw
    /// randomness from a generator seeded with <paramref name="seed"/> (the run's seed), so runs are reproducible.</summary>
    protected virtual Func<TrainingBatch, long, TrainingBatch>? Augmentation(int seed) => null;

    /// <summary>Extra checks of the input schema before training (e.g. a vector size with a specific hint). Without
    /// them, reading the batches reports a missing or mistyped input column by name.</summary>
    protected virtual void CheckInputSchema(DataViewSchema schema)
    {
    }

    /// <inheritdoc/>
    protected sealed override TModel Train(IDataView input)
    {
        CheckInputSchema(input.Schema);
        var (network, labels, device, summary) = ClassifierTraining.Train(Environment, Name, Options, input, new Adapter(this));
        try
        {
            return CreateModel(network, labels, device, summary);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>Checks the input and label columns and describes the outputs, as ML.NET's classifiers do.</summary>
    public override SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        foreach (var column in Inputs) CheckInputColumn(inputSchema, column);
        if (!FindColumn(inputSchema, Options.LabelColumnName, out var label) ||
            !(IsBinary ? label.ItemType is BooleanDataViewType || label.IsKey : label.IsKey))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: label column '{Options.LabelColumnName}' must be " +
                (IsBinary ? "a Boolean" : "a Key") + $"; add mlContext.Transforms.Conversion.MapValueToKey(\"{Options.LabelColumnName}\") " +
                "before the trainer" + (IsBinary ? " or convert it to bool." : "."));
        return ClassifierTraining.OutputSchema(inputSchema, IsBinary);
    }

    private sealed class Adapter(TorchClassifierTrainer<TOptions, TNetwork, TModel> trainer) : ClassifierArchitecture<TNetwork>
    {
        public override IReadOnlyList<TorchInputColumn> Inputs => trainer.Inputs;
        public override TNetwork CreateNetwork(int classes) => trainer.CreateNetwork(classes);
        public override Tensor Logits(TNetwork network, Tensor?[] inputs, Device device) => trainer.Logits(network, inputs, device);
        public override Func<TrainingBatch, long, TrainingBatch>? Augmentation(int seed) => trainer.Augmentation(seed);
    }
}
