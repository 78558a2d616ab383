using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.Interop;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Engine;

/// <summary>
/// The task-neutral base of every MLNet.Attention trainer (the role of Microsoft.ML.TorchSharp's
/// <c>TorchSharpBaseTrainer</c>, but public): an ML.NET estimator whose <see cref="Fit"/> validates the options and hands
/// the data to <see cref="Train"/>, with the shared machinery a trainer needs — a session (libtorch, threads, seed,
/// device by ML.NET's rule), batches streamed from any <see cref="IDataView"/> with the readers scoring uses, and the one
/// training loop (optimizers, schedules, accumulation, augmentation, validation, early stopping, best-state restore,
/// progress, cancellation).
/// </summary>
/// <remarks>
/// A task toolkit derives from it once (<see cref="Classification.TorchClassifierTrainer{TOptions, TNetwork, TModel}"/>
/// for classifiers); a new architecture then costs an options class, a thin trainer and a catalog method. A trainer for a
/// new task overrides <see cref="Train"/>: start a session with <see cref="StartSession"/>, build the network after it
/// (so its weights follow the seed), read batches with <see cref="StreamBatches"/>, run <see cref="RunTrainingLoop"/> and
/// wrap the trained network in a model derived from <see cref="TorchTransformerBase"/>.
/// </remarks>
/// <typeparam name="TOptions">The trainer's options.</typeparam>
/// <typeparam name="TModel">The fitted model.</typeparam>
public abstract class TorchTrainerBase<TOptions, TModel> : IEstimator<TModel>
    where TOptions : TorchTrainerOptions
    where TModel : class, ITransformer
{
    /// <summary>Creates the trainer; the options are validated now and again at <see cref="Fit"/>.</summary>
    /// <param name="env">The ML.NET environment (an <see cref="MLContext"/>).</param>
    /// <param name="name">Component name, used in log messages and errors (e.g. "ImageClassifier").</param>
    /// <param name="options">The options (kept by reference, as ML.NET's trainers do).</param>
    protected TorchTrainerBase(IHostEnvironment env, string name, TOptions options)
    {
        Environment = env ?? throw new ArgumentNullException(nameof(env));
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        Options = options ?? throw new ArgumentNullException(nameof(options));
        Options.Validate();
    }

    /// <summary>The ML.NET environment.</summary>
    protected IHostEnvironment Environment { get; }

    /// <summary>The component name.</summary>
    public string Name { get; }

    /// <summary>The options.</summary>
    protected TOptions Options { get; }

    /// <summary>Trains on <paramref name="input"/>.</summary>
    public TModel Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Options.Validate();
        return Train(input);
    }

    /// <summary>The training itself (options already validated).</summary>
    protected abstract TModel Train(IDataView input);

    /// <inheritdoc/>
    public abstract SchemaShape GetOutputSchema(SchemaShape inputSchema);

    /// <summary>Loads libtorch, sets the thread count, picks the seed (the options' or the MLContext's) and the device
    /// (<c>GpuDeviceId</c>/<c>FallbackToCpu</c>), and seeds libtorch. Build the network after this call.</summary>
    protected TrainerSession StartSession() => TrainerSession.Start(Environment, Name, Options);

    /// <summary>Mini-batches of <paramref name="data"/>, streamed (a cursor per epoch, a seeded shuffle pool of
    /// <paramref name="shufflePoolSize"/> rows), read with the column readers that scoring uses.</summary>
    /// <param name="data">The rows.</param>
    /// <param name="inputs">The model's input columns, in the order the network receives them.</param>
    /// <param name="target">The target column (e.g. a Key label: int64 class indices).</param>
    /// <param name="purpose">Names the data in errors, e.g. "MyTrainer training data".</param>
    /// <param name="shufflePoolSize">Rows held for shuffling; at least the row count gives a full permutation.</param>
    /// <param name="rejectNonFinite">Throw on NaN/infinity in float columns, naming column and row.</param>
    protected static BatchSource StreamBatches(IDataView data, IReadOnlyList<TorchInputColumn> inputs, TorchInputColumn target,
        string purpose, int shufflePoolSize = 10_000, bool rejectNonFinite = true) =>
        new DataViewBatchSource(data, inputs, target, shufflePoolSize, rejectNonFinite, purpose);

    /// <summary>Runs the shared training loop on <paramref name="network"/> (already on the session's device).</summary>
    /// <param name="network">The network; holds the best epoch's whole state afterwards (with validation data).</param>
    /// <param name="hooks">The task's loss, augmentation and validation scores.</param>
    /// <param name="train">Training batches.</param>
    /// <param name="validation">Validation batches, or null.</param>
    /// <param name="session">The session from <see cref="StartSession"/>.</param>
    protected TrainingSummary RunTrainingLoop(nn.Module network, TrainingHooks hooks, BatchSource train, BatchSource? validation,
        TrainerSession session) =>
        TrainingLoop.Run(Environment, Name, network, hooks, train, validation, Options, session.Device, session.Seed);

    /// <summary>An estimator output column for <see cref="GetOutputSchema"/> (ML.NET keeps the constructor of
    /// <see cref="SchemaShape.Column"/> internal).</summary>
    protected static SchemaShape.Column OutputColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType,
        bool isKey = false, SchemaShape? annotations = null) =>
        HostSettings.SchemaColumn(name, kind, itemType, isKey, annotations);

    /// <summary>Finds a column of an estimator schema by name (the last one of that name, as ML.NET resolves it).</summary>
    protected static bool FindColumn(SchemaShape schema, string name, out SchemaShape.Column column)
    {
        ArgumentNullException.ThrowIfNull(schema);
        bool found = false;
        column = default;
        foreach (var c in schema)
            if (c.Name == name) { column = c; found = true; }
        return found;
    }

    /// <summary>Throws naming the column and the fix when <paramref name="column"/> is absent from
    /// <paramref name="inputSchema"/> or has the wrong kind of type.</summary>
    protected void CheckInputColumn(SchemaShape inputSchema, TorchInputColumn column, string? hint = null)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ArgumentNullException.ThrowIfNull(column);
        if (!FindColumn(inputSchema, column.Name, out var found))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: input column '{column.Name}' was not found; " +
                $"expected {column.Describe()}.{(hint is null ? "" : " " + hint)}");
        bool ok = column.Kind switch
        {
            TorchColumnKind.Key => found.IsKey,
            TorchColumnKind.Boolean => found.ItemType is BooleanDataViewType,
            TorchColumnKind.DateTime => found.ItemType is DateTimeDataViewType,
            TorchColumnKind.Image => found.ItemType is ImageDataViewType,
            TorchColumnKind.EncodedImage => found.ItemType == NumberDataViewType.Byte && found.Kind != SchemaShape.Column.VectorKind.Scalar,
            _ => found.ItemType == NumberDataViewType.Single &&
                 (column.IsScalar ? found.Kind == SchemaShape.Column.VectorKind.Scalar : found.Kind != SchemaShape.Column.VectorKind.Scalar),
        };
        if (!ok)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: input column '{column.Name}' has type " +
                $"{found.ItemType}{(found.Kind == SchemaShape.Column.VectorKind.Scalar ? "" : " vector")}; expected {column.Describe()}." +
                (hint is null ? "" : " " + hint));
    }
}

/// <summary>For catalog extension methods of trainers built on <see cref="TorchTrainerBase{TOptions, TModel}"/>.</summary>
public static class TrainerCatalog
{
    /// <summary>The ML.NET environment behind a catalog (<c>mlContext.MulticlassClassification.Trainers</c>,
    /// <c>mlContext.Transforms</c>, ...), which ML.NET keeps internal; pass it to the trainer's constructor.</summary>
    /// <param name="catalog">Any ML.NET catalog, or an <see cref="IHostEnvironment"/> such as an MLContext.</param>
    public static IHostEnvironment EnvironmentOf(object catalog) => HostSettings.EnvironmentOf(catalog);
}
