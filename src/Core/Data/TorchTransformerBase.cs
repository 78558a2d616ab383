using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Runtime;
using MLNet.Attention.Persistence;
using TorchSharp;

namespace MLNet.Attention.Data;

/// <summary>
/// Base class for ML.NET transformers that score rows with a TorchSharp module, in batches.
/// </summary>
/// <remarks>
/// <para><b>Columns.</b> The transformer reads the <see cref="InputColumns"/> (float scalars or known-size vectors,
/// or DateTime scalars) and appends the <see cref="OutputColumns"/> (float vectors or scalars); an output column whose
/// name matches an input column hides it, as in ML.NET. Every input column is passed through.</para>
/// <para><b>Scoring.</b> <see cref="Transform"/> is lazy: its cursor pulls up to <see cref="BatchSize"/> rows from the
/// source, runs one <see cref="Forward"/> over them and then serves them one by one (pass-through values are buffered
/// for the batch). No forward pass happens unless an output column is requested. A row-to-row mapper
/// (<see cref="GetRowToRowMapper"/>, used by <c>PredictionEngine</c> and transformer chains) scores single rows as
/// batches of one, caching the result per row position. Each forward call runs inside
/// <c>torch.NewDisposeScope()</c> and <c>torch.inference_mode()</c>; results are moved to the CPU and copied out, and
/// every tensor created during the call is then disposed.</para>
/// <para><b>Persistence.</b> <see cref="ICanSaveModel.Save(ModelSaveContext)"/> stores the concrete type name and the
/// bytes written by <see cref="SavePayload"/> through <see cref="TorchModelPersistence"/>. Every concrete subclass
/// must declare <c>public static TSelf Load(IHostEnvironment env, BinaryReader reader)</c> that reads those bytes back
/// (see <see cref="ITorchPersistable"/>); <c>mlContext.Model.Load</c> then works in any process without registration.</para>
/// <para><b>Threading.</b> Cursors and mapped rows are single-threaded, but several of them (for example one
/// <c>PredictionEngine</c> per thread) may call <see cref="Forward"/> concurrently on the same instance: keep
/// <see cref="Forward"/> free of mutable state.</para>
/// <para><b>Lifetime.</b> The module is a native resource: dispose the transformer (ML.NET's <c>TransformerChain</c> and
/// <c>PredictionEngine</c> dispose <see cref="IDisposable"/> transformers they own). <see cref="DisposeModule"/> is
/// only ever called from <see cref="Dispose()"/>, never from the finalizer thread (TorchSharp's own handles release
/// native memory if an instance is never disposed). Any use after disposal throws <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public abstract class TorchTransformerBase : ITorchPersistable, IDisposable
{
    /// <summary>The default number of rows scored per forward pass.</summary>
    public const int DefaultBatchSize = 256;

    private readonly TorchInputColumn[] _inputs;
    private readonly TorchOutputColumn[] _outputs;
    private volatile bool _disposed;
    private readonly object _lifetime = new();
    private int _engineDisposeCalls;

    /// <summary>Initializes the transformer.</summary>
    /// <param name="env">The ML.NET environment (an <c>MLContext</c> works).</param>
    /// <param name="name">Component name, used to register <see cref="Host"/> and in messages.</param>
    /// <param name="inputColumns">Input columns, in the order <see cref="Forward"/> receives them.</param>
    /// <param name="outputColumns">Output columns, in the order <see cref="Forward"/> returns them; at least one.</param>
    /// <param name="batchSize">Rows per forward pass when transforming a data view (default 256).</param>
    protected TorchTransformerBase(IHostEnvironment env, string name, IEnumerable<TorchInputColumn> inputColumns,
        IEnumerable<TorchOutputColumn> outputColumns, int batchSize = DefaultBatchSize)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(inputColumns);
        ArgumentNullException.ThrowIfNull(outputColumns);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);

        _inputs = inputColumns.ToArray();
        _outputs = outputColumns.ToArray();
        if (_inputs.Any(c => c is null))
            throw new ArgumentException("Input column descriptions must not be null.", nameof(inputColumns));
        if (_outputs.Length == 0 || _outputs.Any(c => c is null))
            throw new ArgumentException("At least one output column is required, and none may be null.", nameof(outputColumns));
        var duplicate = _outputs.GroupBy(c => c.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate != null)
            throw new ArgumentException($"Output column '{duplicate.Key}' is declared more than once.", nameof(outputColumns));

        foreach (var output in _outputs.Where(o => o.Kind == TorchColumnKind.Bag))
            if (!_inputs.Any(c => c.IsBag && c.Name == output.BagInputName))
                throw new ArgumentException($"Per-instance output column '{output.Name}' belongs to bag input " +
                    $"'{output.BagInputName}', which is not a bag input column of this transformer.", nameof(outputColumns));

        Name = name;
        Host = env.Register(name);
        BatchSize = batchSize;
    }

    /// <summary>Finalizer: calls <see cref="Dispose(bool)"/> with <c>false</c>; it never touches the module.</summary>
    ~TorchTransformerBase() => Dispose(false);

    /// <summary>The component name given to the constructor.</summary>
    public string Name { get; }

    /// <summary>The host registered under <see cref="Name"/> (logging, randomness, cancellation).</summary>
    protected IHost Host { get; }

    /// <summary>The environment of <see cref="Host"/>, for components built from this one (a featurizer from a
    /// classifier).</summary>
    internal IHostEnvironment Environment => Host;

    /// <summary>The input columns, in <see cref="Forward"/> order.</summary>
    public IReadOnlyList<TorchInputColumn> InputColumns => _inputs;

    /// <summary>The output columns, in <see cref="Forward"/> order.</summary>
    public IReadOnlyList<TorchOutputColumn> OutputColumns => _outputs;

    /// <summary>Rows per forward pass when transforming a data view.</summary>
    public int BatchSize { get; }

    /// <summary>
    /// When true, a NaN or infinite value in a float input column makes scoring throw an
    /// <see cref="InvalidOperationException"/> naming the column and the row (cursor position). When false (the
    /// default) values reach <see cref="Forward"/> unchanged and the subclass decides. Set it in the constructor (and
    /// in <c>Load</c>, saving it in the payload if it is configurable).
    /// </summary>
    protected bool RejectNonFinite { get; set; }

    internal bool RejectNonFiniteValues => RejectNonFinite;

    /// <summary>With <see cref="RejectNonFinite"/>: NaN (a missing value the model handles) passes to
    /// <see cref="Forward"/> and only infinity is refused.</summary>
    protected bool AllowNaN { get; set; }

    internal bool AllowNaNValues => AllowNaN;

    /// <summary>A sentence added to the error on a refused NaN/infinity (e.g. the training option that accepts
    /// missing values), or null.</summary>
    protected virtual string? NonFiniteHint => null;

    internal string? NonFiniteHintText => NonFiniteHint;

    /// <summary>True once <see cref="Dispose()"/> has been called.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>Always true: the transformer maps rows independently.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>
    /// Runs the module on one batch. Inputs come in <see cref="InputColumns"/> order as CPU tensors: float32
    /// <c>[B, dims...]</c> (<c>[B]</c> for a scalar) or int64 <c>[B]</c> of <see cref="DateTime.Ticks"/>. Return one
    /// float32 tensor per <see cref="OutputColumns"/> entry with first dimension B and <c>B * Size</c> elements
    /// (normally <c>[B, dims...]</c>), on any device. Called inside a dispose scope and inference mode; the subclass
    /// moves inputs to its device and keeps its module in eval mode. Do not keep references to the tensors.
    /// </summary>
    protected abstract torch.Tensor[] Forward(torch.Tensor[] inputs);

    /// <summary>Writes everything <c>Load</c> needs: hyper-parameters first, then the weights (for example with
    /// <see cref="TorchModelPersistence.WriteModule"/>). Do not close the writer.</summary>
    protected abstract void SavePayload(BinaryWriter writer);

    /// <summary>Disposes the module and any other native resources. Called once, from <see cref="Dispose()"/>.</summary>
    protected abstract void DisposeModule();

    /// <summary>
    /// What to tell the user when input <paramref name="column"/> is missing, for transformers where the generic advice
    /// (create or rename the column) does not fit; null keeps the generic advice.
    /// </summary>
    protected virtual string? MissingColumnHint(TorchInputColumn column) => null;

    /// <summary>Optional annotations for an output column (for example slot names). Default: none.</summary>
    /// <param name="outputIndex">Index into <see cref="OutputColumns"/>.</param>
    /// <param name="inputSchema">The schema being transformed.</param>
    protected virtual DataViewSchema.Annotations? GetOutputAnnotations(int outputIndex, DataViewSchema inputSchema) => null;

    /// <summary>
    /// Returns the output schema: every input column, then the output columns (hiding input columns of the same name).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">(parameter <c>inputSchema</c>) an input column is missing, has the
    /// wrong item type or the wrong vector size; the message names the column, the actual and the expected type.</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) =>
        OtherViewOutputSchema(inputSchema ?? throw new ArgumentNullException(nameof(inputSchema))) ?? Bind(inputSchema).OutputSchema;

    /// <summary>A transformer that also accepts another view of its data (a forecaster given the series instead of its
    /// windows) returns the output schema for such an input; null (the default) when the input is not such a view.</summary>
    protected virtual DataViewSchema? OtherViewOutputSchema(DataViewSchema inputSchema) => null;

    /// <summary>The output for an input of the other view (see <see cref="OtherViewOutputSchema"/>); null (the default)
    /// when the input is not such a view and is scored row by row.</summary>
    protected virtual IDataView? TransformOtherView(IDataView input) => null;

    /// <summary>Returns a lazy view that scores in batches of <see cref="BatchSize"/> rows when its output columns
    /// are read. The schema is validated now, as in <see cref="GetOutputSchema"/>.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (TransformOtherView(input) is { } other) return other;
        var bound = Bind(input.Schema);
        return new TorchDataView(this, input, bound);
    }

    /// <summary>Returns a mapper that scores single rows (a batch of one per row), used by <c>PredictionEngine</c>
    /// and by transformer chains.</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new TorchRowMapper(this, Bind(inputSchema));

    /// <summary>
    /// Called when a mapped row is created over a row that is not a cursor: ML.NET does that once per
    /// <c>PredictionEngine</c> (over its input row, directly or through a chain's other mappers), and such an engine
    /// disposes this transformer once when it is disposed. Counted so that that call does not free the module.
    /// </summary>
    internal void OnPredictionEngineRow()
    {
        lock (_lifetime) _engineDisposeCalls++;
    }

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ThrowIfDisposed();
        TorchModelPersistence.Save(ctx, this, SavePayload);
    }

    /// <summary>
    /// Disposes the module (through <see cref="DisposeModule"/>). Safe to call more than once. A call made by an ML.NET
    /// <c>PredictionEngine</c> that is being disposed is ignored: see the remarks.
    /// </summary>
    /// <remarks>
    /// ML.NET's <c>PredictionEngine.Dispose</c> disposes the transformer it was created from (its
    /// <c>OwnsTransformer</c> option defaults to true), so the standard <c>using var engine =
    /// mlContext.Model.CreatePredictionEngine(model)</c> would destroy a model that other engines, threads and later
    /// requests still use. The model therefore counts the engines made from it (directly or through a
    /// <c>TransformerChain</c>): each owes one dispose call, and the module is freed by the last dispose call of all,
    /// the engines' and the owner's, in any order. Dispose every engine and the model once (the usual <c>using</c>
    /// pattern) and the native memory is freed at the last of them. Engines that are never disposed, that were created
    /// with <c>OwnsTransformer = false</c>, or that share a chain (ML.NET disposes a chain once, then ignores further
    /// calls) keep the module alive until TorchSharp's finalizers free it; they never see it disposed under them.
    /// </remarks>
    public void Dispose()
    {
        lock (_lifetime)
        {
            if (_disposed)
                return;
            if (_engineDisposeCalls > 0)
            {
                // One of the calls the engines made from this transformer owe (ML.NET's engine disposes its
                // transformer); the last call of all (engines' and the owner's) frees the module.
                _engineDisposeCalls--;
                return;
            }
        }
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Standard dispose pattern. With <paramref name="disposing"/> true (from <see cref="Dispose()"/>) calls
    /// <see cref="DisposeModule"/> once; with false (finalizer) only marks the instance disposed, because touching
    /// TorchSharp objects on the finalizer thread is unsafe. Overrides must call the base implementation.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (_disposed)
            return;
        _disposed = true;
        if (disposing)
            DisposeModule();
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> if the transformer has been disposed.</summary>
    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    internal BoundSchema Bind(DataViewSchema inputSchema)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(inputSchema);
        var indices = new int[_inputs.Length];
        for (int i = 0; i < _inputs.Length; i++)
            indices[i] = FindInputColumn(inputSchema, _inputs[i]);

        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        for (int j = 0; j < _outputs.Length; j++)
            builder.AddColumn(_outputs[j].Name, _outputs[j].Type, GetOutputAnnotations(j, inputSchema));
        return new BoundSchema(inputSchema, builder.ToSchema(), indices);
    }

    private int FindInputColumn(DataViewSchema schema, TorchInputColumn spec)
    {
        var found = schema.GetColumnOrNull(spec.Name);
        if (found is not DataViewSchema.Column column)
        {
            var available = string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"));
            throw SchemaError($"Column '{spec.Name}' was not found in the input schema; expected {spec.Describe()}. " +
                              $"Available columns: {(available.Length == 0 ? "(none)" : available)}. " +
                              (MissingColumnHint(spec) ?? "Create or rename it before this transformer (for example with " +
                                                          "mlContext.Transforms.Concatenate or CopyColumns)."));
        }

        var type = column.Type;
        if (spec.Kind == TorchColumnKind.Key)
        {
            if (type is not KeyDataViewType { RawType: var raw } || raw != typeof(uint))
                throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()}. Convert it with " +
                                  $"mlContext.Transforms.Conversion.MapValueToKey(\"{spec.Name}\") before this component.");
            return column.Index;
        }
        if (spec.Kind == TorchColumnKind.Boolean)
        {
            if (type is not BooleanDataViewType)
                throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()}. Convert it with " +
                                  $"mlContext.Transforms.Conversion.ConvertType(\"{spec.Name}\", outputKind: DataKind.Boolean).");
            return column.Index;
        }
        if (spec.Kind == TorchColumnKind.DateTime)
        {
            if (type is not DateTimeDataViewType)
                throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()}. Load it as a DateTime " +
                                  "column (for example a DateTime property, or TextLoader with DataKind.DateTime).");
            return column.Index;
        }

        if (spec.Kind == TorchColumnKind.Image)
        {
            if (type is not ImageDataViewType)
                throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()}. " + (type is VectorDataViewType
                    { ItemType: var item } && item == NumberDataViewType.Byte
                    ? "It holds encoded bytes: this model reads decoded images; load them with mlContext.Transforms.LoadImages."
                    : "Load the images with mlContext.Transforms.LoadImages(\"" + spec.Name + "\", imageFolder, pathColumn)."));
            return column.Index;
        }
        if (spec.Kind == TorchColumnKind.EncodedImage)
        {
            if (type is not VectorDataViewType { ItemType: var item } || item != NumberDataViewType.Byte)
                throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()}. " + (type is ImageDataViewType
                    ? "It holds decoded images: this model reads encoded bytes; use mlContext.Transforms.LoadRawImageBytes."
                    : "Load the files with mlContext.Transforms.LoadRawImageBytes(\"" + spec.Name + "\", imageFolder, pathColumn)."));
            return column.Index;
        }

        if (spec.IsBag)
        {
            if (type is not VectorDataViewType { ItemType: var bagItem } bagType || bagItem != NumberDataViewType.Single)
                throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()}. Build one row per bag " +
                                  "with mlContext.Transforms.GroupIntoBags (instance rows with a bag id) or load feature " +
                                  "files with mlContext.Data.LoadFeatureBags.");
            if (MultipleInstance.InstanceBags.TryGetInstanceSize(column, out int declared) && declared != spec.Size)
                throw SchemaError($"Column '{spec.Name}' holds instances of {declared} features (its InstanceSize " +
                                  $"annotation); this model was trained on {spec.Size}. Use features from the same " +
                                  "featurizer the model was trained with.");
            if (bagType.IsKnownSize && bagType.Size % spec.Size != 0)
                throw SchemaError($"Column '{spec.Name}' has type {type}: {bagType.Size} values are not a whole number of " +
                                  $"instances of {spec.Size} features.");
            return column.Index;
        }

        var itemType = type is VectorDataViewType v ? v.ItemType : type;
        if (itemType != NumberDataViewType.Single)
            throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()}. Convert it with " +
                              $"mlContext.Transforms.Conversion.ConvertType(\"{spec.Name}\", outputKind: DataKind.Single)" +
                              (itemType is NumberDataViewType || itemType is BooleanDataViewType || itemType is KeyDataViewType
                                  ? "."
                                  : ", or compute a float column from it first."));

        if (spec.IsScalar)
        {
            if (type is VectorDataViewType vector && !(vector.IsKnownSize && vector.Size == 1))
                throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()} (a scalar). Select a " +
                                  "single value, or declare the transformer input as a vector column.");
            return column.Index;
        }

        if (type is not VectorDataViewType vec)
            throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()}. Build the vector with " +
                              $"mlContext.Transforms.Concatenate(\"{spec.Name}\", ...), or declare [VectorType({spec.Size})] " +
                              "on the input class property.");
        if (!vec.IsKnownSize)
            throw SchemaError($"Column '{spec.Name}' has type {type} (unknown size); expected {spec.Describe()}. Give the " +
                              $"column a known size: declare [VectorType({Dims(spec)})] on the input class property, or build it " +
                              "with mlContext.Transforms.Concatenate from fixed-size columns.");
        if (vec.Size != spec.Size)
            throw SchemaError($"Column '{spec.Name}' has type {type}; expected {spec.Describe()}: {spec.Size} values per row, " +
                              $"found {vec.Size}. Check the window/feature configuration that produced the column, or " +
                              $"declare [VectorType({Dims(spec)})] on the input class property.");
        return column.Index;
    }

    private static string Dims(TorchInputColumn spec) => string.Join(", ", spec.Dimensions);

    private ArgumentOutOfRangeException SchemaError(string message) =>
        new("inputSchema", $"{Name}: {message}");

    /// <summary>Runs one forward pass over the first <paramref name="count"/> slots of <paramref name="batch"/>.</summary>
    internal void RunForward(BatchScorer batch, int count)
    {
        ThrowIfDisposed();
        var staged = batch.InputTensors(_inputs);
        using var scope = torch.NewDisposeScope();
        using var inference = torch.inference_mode();

        int bagColumns = _inputs.Count(c => c.IsBag);
        var inputs = new torch.Tensor[_inputs.Length + bagColumns];
        int nextMask = _inputs.Length;
        for (int i = 0; i < _inputs.Length; i++)
        {
            var spec = _inputs[i];
            if (spec.IsBag)
            {
                // Padded to this batch's largest bag; the mask goes after the last column (TorchColumnKind.Bag).
                (inputs[i], inputs[nextMask++]) = BagTensors.Pad(batch.BagInputs[i]!, batch.BagLengths[i]!, count, spec.Size);
                continue;
            }
            var tensor = staged[i];
            if (!spec.IsFloat)
                TensorSpans.Write(tensor, new ReadOnlySpan<long>(batch.TickInputs[i], 0, count));
            else
                TensorSpans.Write(tensor, new ReadOnlySpan<float>(batch.FloatInputs[i], 0, count * spec.Size));
            // A partial (last) batch is a view of the first rows; a full one is the staged tensor itself.
            inputs[i] = count == batch.Capacity ? tensor : tensor.narrow(0, 0, count);
        }

        var outputs = Forward(inputs);
        if (outputs is null || outputs.Length != _outputs.Length)
            throw new InvalidOperationException(
                $"{Name}: Forward returned {(outputs is null ? "null" : outputs.Length + " tensor(s)")}; expected " +
                $"{_outputs.Length} (one per output column: {string.Join(", ", _outputs.Select(o => o.Name))}).");

        for (int j = 0; j < _outputs.Length; j++)
        {
            var spec = _outputs[j];
            var tensor = outputs[j] ?? throw new InvalidOperationException($"{Name}: Forward returned null for output column '{spec.Name}'.");
            if (tensor.dtype != torch.ScalarType.Float32)
                throw new InvalidOperationException(
                    $"{Name}: Forward returned dtype {tensor.dtype} for output column '{spec.Name}'; expected Float32.");
            if (spec.Kind == TorchColumnKind.Bag)
            {
                CopyPerInstance(batch, j, spec, tensor, count);
                continue;
            }
            long expected = (long)count * spec.Size;
            if (tensor.Dimensions == 0 || tensor.size(0) != count || tensor.numel() != expected)
                throw new InvalidOperationException(
                    $"{Name}: Forward returned shape [{string.Join(", ", tensor.shape)}] for output column '{spec.Name}'; " +
                    $"expected [{count}{string.Concat(spec.Dimensions.Select(d => ", " + d))}] (batch of {count}).");
            var cpu = tensor.device_type == DeviceType.CPU ? tensor : tensor.cpu();
            var contiguous = cpu.is_contiguous() ? cpu : cpu.contiguous();
            TensorSpans.Read(contiguous, new Span<float>(batch.Outputs[j], 0, (int)expected));
        }
    }

    /// <summary>Copies a per-instance output [B, N_max(, K)] into each slot's own N × K values.</summary>
    private void CopyPerInstance(BatchScorer batch, int output, TorchOutputColumn spec, torch.Tensor tensor, int count)
    {
        int bagInput = Array.FindIndex(_inputs, c => c.IsBag && c.Name == spec.BagInputName);
        var lengths = batch.BagLengths[bagInput]!;
        int longest = 1;
        for (int b = 0; b < count; b++) longest = Math.Max(longest, lengths[b]);
        int k = spec.Size;
        bool shapeOk = tensor.Dimensions >= 2 && tensor.size(0) == count && tensor.size(1) == longest &&
                       tensor.numel() == (long)count * longest * k;
        if (!shapeOk)
            throw new InvalidOperationException(
                $"{Name}: Forward returned shape [{string.Join(", ", tensor.shape)}] for per-instance output column " +
                $"'{spec.Name}'; expected [{count}, {longest}{(k == 1 ? "" : ", " + k)}] (batch of {count}, largest bag {longest}).");
        var cpu = tensor.device_type == DeviceType.CPU ? tensor : tensor.cpu();
        var contiguous = cpu.is_contiguous() ? cpu : cpu.contiguous();
        var slots = batch.BagOutputs[output]!;
        for (int b = 0; b < count; b++)
        {
            int n = lengths[b] * k;
            if (slots[b]!.Length != n) slots[b] = new float[n];
            TensorSpans.Read(contiguous, slots[b].AsSpan(0, n), (long)b * longest * k);
        }
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder(Name).Append('(');
        sb.AppendJoin(", ", _inputs.Select(c => c.ToString())).Append(" -> ");
        sb.AppendJoin(", ", _outputs.Select(c => c.ToString())).Append(')');
        return sb.ToString();
    }
}

/// <summary>A validated input schema with the derived output schema and the model input column indices.</summary>
internal sealed class BoundSchema
{
    internal BoundSchema(DataViewSchema inputSchema, DataViewSchema outputSchema, int[] modelInputIndices)
    {
        InputSchema = inputSchema;
        OutputSchema = outputSchema;
        ModelInputIndices = modelInputIndices;
    }

    internal DataViewSchema InputSchema { get; }
    internal DataViewSchema OutputSchema { get; }
    internal int[] ModelInputIndices { get; }
    internal int InputCount => InputSchema.Count;
}
