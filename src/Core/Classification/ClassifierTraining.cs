using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Classification;

/// <summary>Options every classifier trainer shares (on top of the engine's).</summary>
public abstract class TorchClassifierOptions : TorchTrainerOptions
{
    /// <summary>The Key label column (MapValueToKey).</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>Fraction of the training rows held out for validation (stratified by class) when no
    /// <see cref="TorchTrainerOptions.ValidationSet"/> is given; 0 = no validation.</summary>
    public double ValidationFraction { get; set; } = 0.1;

    /// <summary>Weight each class's loss by the inverse of its frequency in the training rows (for imbalanced data).</summary>
    public bool BalanceClasses { get; set; }

    /// <summary>Rows held in memory for shuffling the streamed training data (a full shuffle when it is at least the
    /// number of rows).</summary>
    public int ShufflePoolSize { get; set; } = 10_000;

    /// <summary>Create options with the classifiers' defaults: Adam-style lr 1e-3, 20 epochs, patience 5.</summary>
    protected TorchClassifierOptions()
    {
        LearningRate = 1e-3;
        MaxEpochs = 20;
        EarlyStoppingPatience = 5;
    }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (string.IsNullOrWhiteSpace(LabelColumnName)) throw new ArgumentOutOfRangeException(nameof(LabelColumnName), LabelColumnName, "LabelColumnName must name the Key label column.");
        if (!(ValidationFraction >= 0 && ValidationFraction < 1)) throw new ArgumentOutOfRangeException(nameof(ValidationFraction), ValidationFraction, "ValidationFraction must be in [0, 1).");
        if (ShufflePoolSize < 1) throw new ArgumentOutOfRangeException(nameof(ShufflePoolSize), ShufflePoolSize, "ShufflePoolSize must be at least 1.");
    }
}

/// <summary>What a classifier trainer plugs into <see cref="ClassifierTraining.Train"/>, typed by its network.</summary>
/// <typeparam name="TNetwork">The network module.</typeparam>
internal abstract class ClassifierArchitecture<TNetwork> where TNetwork : nn.Module
{
    /// <summary>The model's input columns (checked against the data; the label is added by the toolkit).</summary>
    public abstract IReadOnlyList<TorchInputColumn> Inputs { get; }

    /// <summary>Builds a freshly initialised network (called after seeding).</summary>
    public abstract TNetwork CreateNetwork(int classes);

    /// <summary>Logits [B, classes] of the network for the batch inputs (CPU tensors; move them to the device).</summary>
    public abstract Tensor Logits(TNetwork network, Tensor?[] inputs, Device device);

    /// <summary>Train-only augmentation of a batch (null: none); <paramref name="seed"/> is the run's seed, so draws are
    /// reproducible.</summary>
    public virtual Func<TrainingBatch, long, TrainingBatch>? Augmentation(int seed) => null;

    /// <summary>The training loss of a batch; by default the (class-weighted) cross-entropy of <see cref="Logits"/>.
    /// Override for a composite loss (its parts appear in each epoch's report), e.g. ACMIL's three losses.</summary>
    /// <param name="network">The network (training mode).</param>
    /// <param name="batch">The batch; its target holds int64 class indices [B].</param>
    /// <param name="device">The network's device.</param>
    /// <param name="classWeights">Per-class weights [classes] (BalanceClasses), or null.</param>
    public virtual TrainingLoss Loss(TNetwork network, TrainingBatch batch, Device device, Tensor? classWeights) =>
        new(nn.functional.cross_entropy(Logits(network, batch.Inputs, device), batch.Target.to(device), classWeights));
}

/// <summary>
/// The classification task on the task-neutral engine: reads the Key labels once (class counts, stratified validation
/// split, class weights), streams batches from the data view, trains with cross-entropy and reports accuracy, macro-F1
/// and AUC on validation.
/// </summary>
internal static class ClassifierTraining
{
    public static (TNetwork Network, ClassLabels Labels, Device Device, TrainingSummary Summary) Train<TNetwork>(IHostEnvironment env,
        string name, TorchClassifierOptions options, IDataView data, ClassifierArchitecture<TNetwork> architecture)
        where TNetwork : nn.Module
    {
        ArgumentNullException.ThrowIfNull(data);
        options.Validate();
        var labels = ClassLabels.FromSchema(data.Schema, options.LabelColumnName, name);
        bool booleanLabel = data.Schema[options.LabelColumnName].Type is BooleanDataViewType;
        var labelColumn = booleanLabel ? TorchInputColumn.Boolean(options.LabelColumnName) : TorchInputColumn.Key(options.LabelColumnName);
        var (rowLabels, _) = ScanLabels(data, options.LabelColumnName, labels.Count, $"{name} training data");
        if (rowLabels.Length == 0)
            throw new InvalidOperationException($"{name}: the training data has no rows.");

        bool[]? validationRows = null;
        if (options.ValidationSet is null && options.ValidationFraction > 0)
            validationRows = StratifiedSplit(rowLabels, labels.Count, options.ValidationFraction, new Random(options.Seed ?? 17));
        var trainCounts = new long[labels.Count];
        for (int r = 0; r < rowLabels.Length; r++)
            if (validationRows is null || !validationRows[r]) trainCounts[rowLabels[r]]++;
        int present = trainCounts.Count(c => c > 0);
        if (present < 2)
            throw new InvalidOperationException($"{name}: the training rows hold {(present == 0 ? "no" : "only one")} class" +
                $"{(present == 1 ? $" ('{labels.Names[Array.FindIndex(trainCounts, c => c > 0)]}')" : "")}; a classifier needs at least two. " +
                "Check the label column and the filtering before the trainer.");
        var absent = Enumerable.Range(0, labels.Count).Where(c => trainCounts[c] == 0).Select(c => $"'{labels.Names[c]}'").ToArray();
        if (absent.Length > 0)
            throw new InvalidOperationException($"{name}: class(es) {string.Join(", ", absent)} of the label's key values have no " +
                $"training row{(validationRows is null ? "" : " after the validation split")}. Remove them from the key map (MapValueToKey " +
                "fitted on the training data), add rows, or lower ValidationFraction.");

        var (seed, device) = TrainerSession.Start(env, name, options);

        var train = new DataViewBatchSource(data, architecture.Inputs, labelColumn, options.ShufflePoolSize, true,
            $"{name} training data", validationRows, keep: false);
        BatchSource? validation = options.ValidationSet is { } set
            ? new DataViewBatchSource(set, architecture.Inputs, labelColumn, 1, true, $"{name} validation data")
            : validationRows is null ? null
            : new DataViewBatchSource(data, architecture.Inputs, labelColumn, 1, true, $"{name} validation data", validationRows, keep: true);
        if (options.ValidationSet is not null)
        {
            var validationLabels = ClassLabels.FromSchema(options.ValidationSet.Schema, options.LabelColumnName, $"{name} validation data");
            if (validationLabels.Count != labels.Count)
                throw new ArgumentException($"{name}: the validation label column has {validationLabels.Count} key values, the training one " +
                    $"{labels.Count}. Map both with the same MapValueToKey transformer (fitted once, applied to both).", nameof(options));
        }

        var network = architecture.CreateNetwork(labels.Count);
        try
        {
            network.to(device);
            Tensor? weights = null;
            if (options.BalanceClasses)
            {
                long total = trainCounts.Sum();
                weights = tensor(trainCounts.Select(c => (float)(total / ((double)labels.Count * c))).ToArray(), device: device)
                    .DetachFromDisposeScope();
            }
            var hooks = new TrainingHooks(batch => architecture.Loss(network, batch, device, weights))
            {
                Augment = architecture.Augmentation(seed),
                ValidationLoss = batch => nn.functional.cross_entropy(architecture.Logits(network, batch.Inputs, device),
                    batch.Target.to(device), weights),
                ValidationScores = batch => nn.functional.softmax(architecture.Logits(network, batch.Inputs, device), 1),
                Classes = labels.Count,
            };
            try
            {
                var summary = TrainingLoop.Run(env, name, network, hooks, train, validation, options, device, seed);
                return (network, labels, device, summary);
            }
            finally
            {
                weights?.Dispose();
            }
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>The estimator-side output columns of a classifier, as ML.NET's own: multiclass Score (slot names) and
    /// PredictedLabel (Key with key values), or binary Score, Probability and Boolean PredictedLabel.</summary>
    internal static SchemaShape OutputSchema(SchemaShape input, bool binary)
    {
        var result = input.ToDictionary(c => c.Name);
        if (binary)
        {
            result[TorchClassifierModel.ScoreColumnName] = HostSettings.SchemaColumn(TorchClassifierModel.ScoreColumnName,
                SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single);
            result[TorchClassifierModel.ProbabilityColumnName] = HostSettings.SchemaColumn(TorchClassifierModel.ProbabilityColumnName,
                SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single);
            result[TorchClassifierModel.PredictedLabelColumnName] = HostSettings.SchemaColumn(TorchClassifierModel.PredictedLabelColumnName,
                SchemaShape.Column.VectorKind.Scalar, BooleanDataViewType.Instance);
            return new SchemaShape(result.Values);
        }
        // MapKeyToValue("PredictedLabel") after the trainer needs the key values in the schema shape.
        var slotNames = HostSettings.SchemaColumn("SlotNames", SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance);
        var keyValues = HostSettings.SchemaColumn("KeyValues", SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance);
        result[TorchClassifierModel.ScoreColumnName] = HostSettings.SchemaColumn(TorchClassifierModel.ScoreColumnName,
            SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, annotations: new SchemaShape(new[] { slotNames }));
        result[TorchClassifierModel.PredictedLabelColumnName] = HostSettings.SchemaColumn(TorchClassifierModel.PredictedLabelColumnName,
            SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, isKey: true, annotations: new SchemaShape(new[] { keyValues }));
        return new SchemaShape(result.Values);
    }

    /// <summary>One pass over the label column: the 0-based class of every row and the class counts.</summary>
    internal static (int[] Labels, long[] Counts) ScanLabels(IDataView data, string labelColumnName, int classes, string purpose)
    {
        var column = data.Schema[labelColumnName];
        var labels = new List<int>();
        var counts = new long[classes];
        using var cursor = data.GetRowCursor(new[] { column });
        ValueGetter<uint> getter;
        if (column.Type is BooleanDataViewType)
        {
            var flag = cursor.GetGetter<bool>(column);
            bool value = false;
            getter = (ref uint key) => { flag(ref value); key = value ? 2u : 1u; };
        }
        else getter = cursor.GetGetter<uint>(column);
        uint key = 0;
        while (cursor.MoveNext())
        {
            getter(ref key);
            if (key == 0 || key > classes)
                throw new InvalidOperationException($"{purpose}: label column '{labelColumnName}' has a missing value (key 0) at " +
                    $"row {cursor.Position}; every training row needs a label. Remove such rows first " +
                    "(mlContext.Data.FilterRowsByMissingValues), or fit MapValueToKey on data that holds every label value.");
            labels.Add((int)key - 1);
            counts[key - 1]++;
        }
        return (labels.ToArray(), counts);
    }

    /// <summary>Marks ⌈fraction·n_c⌉ rows of every class with at least two rows as validation rows (seeded).</summary>
    internal static bool[] StratifiedSplit(int[] labels, int classes, double fraction, Random random)
    {
        var mask = new bool[labels.Length];
        var byClass = new List<int>[classes];
        for (int c = 0; c < classes; c++) byClass[c] = new List<int>();
        for (int r = 0; r < labels.Length; r++) byClass[labels[r]].Add(r);
        foreach (var rows in byClass)
        {
            if (rows.Count < 2) continue;   // keep a lone row for training
            int take = Math.Min(rows.Count - 1, (int)Math.Ceiling(fraction * rows.Count));
            for (int i = rows.Count - 1; i > 0; i--)
            {
                int j = random.Next(i + 1);
                (rows[i], rows[j]) = (rows[j], rows[i]);
            }
            for (int i = 0; i < take; i++) mask[rows[i]] = true;
        }
        return mask;
    }
}
