using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.LoadProbe;

/// <summary>
/// A tiny concrete <see cref="TorchTransformerBase"/> for tests: <c>Score = Linear(Features)</c> over a float vector
/// column, plus, when a timestamp column is configured, <c>Hour = hour of day</c> computed in torch from the int64
/// ticks (exercises the DateTime input path and a scalar output).
/// </summary>
public sealed class ProbeLinearTransformer : TorchTransformerBase
{
    private readonly nn.Module<Tensor, Tensor> _linear;
    private readonly int _inSize;
    private readonly string? _timestampColumn;
    private readonly int[] _inputDims;
    private readonly string _inputColumn;
    private readonly string _outputColumn;
    private readonly int _outputSize;
    private int _forwardCalls;
    private int _maxBatch;
    private long _rowsScored;

    private ProbeLinearTransformer(IHostEnvironment env, string inputColumn, int[] inputDims, string outputColumn,
        int outputSize, string? timestampColumn, nn.Module<Tensor, Tensor> linear, int batchSize, bool rejectNonFinite)
        : base(env, nameof(ProbeLinearTransformer), Inputs(inputColumn, inputDims, timestampColumn),
            Outputs(outputColumn, outputSize, timestampColumn), batchSize)
    {
        _linear = linear;
        _linear.eval();
        _inputColumn = inputColumn;
        _inputDims = inputDims;
        _inSize = inputDims.Aggregate(1, (a, b) => a * b);
        _outputColumn = outputColumn;
        _outputSize = outputSize;
        _timestampColumn = timestampColumn;
        RejectNonFinite = rejectNonFinite;
    }

    /// <summary>Creates a transformer with deterministic random weights.</summary>
    public static ProbeLinearTransformer Create(IHostEnvironment env, string inputColumn = "Features", int[]? inputDims = null,
        string outputColumn = "Score", int outputSize = 3, string? timestampColumn = null, int seed = 42,
        int batchSize = DefaultBatchSize, bool rejectNonFinite = false)
    {
        inputDims ??= new[] { 8 };
        int inSize = inputDims.Aggregate(1, (a, b) => a * b);
        using (torch.manual_seed(seed))
        {
            var linear = nn.Linear(inSize, outputSize);
            return new ProbeLinearTransformer(env, inputColumn, inputDims, outputColumn, outputSize, timestampColumn, linear,
                batchSize, rejectNonFinite);
        }
    }

    /// <summary>Number of forward passes run so far.</summary>
    public int ForwardCalls => Volatile.Read(ref _forwardCalls);

    /// <summary>Largest batch seen by a forward pass.</summary>
    public int MaxBatch => Volatile.Read(ref _maxBatch);

    /// <summary>Total rows scored.</summary>
    public long RowsScored => Interlocked.Read(ref _rowsScored);

    /// <summary>Whether the module has been disposed (through the base class hook).</summary>
    public bool ModuleDisposed { get; private set; }

    private static IEnumerable<TorchInputColumn> Inputs(string input, int[] dims, string? timestamp)
    {
        yield return TorchInputColumn.Single(input, dims);
        if (timestamp != null)
            yield return TorchInputColumn.DateTime(timestamp);
    }

    private static IEnumerable<TorchOutputColumn> Outputs(string output, int size, string? timestamp)
    {
        yield return new TorchOutputColumn(output, size);
        if (timestamp != null)
            yield return new TorchOutputColumn("Hour");
    }

    /// <inheritdoc/>
    protected override Tensor[] Forward(Tensor[] inputs)
    {
        long batch = inputs[0].shape[0];
        Interlocked.Increment(ref _forwardCalls);
        Interlocked.Add(ref _rowsScored, batch);
        int seen;
        while ((seen = Volatile.Read(ref _maxBatch)) < batch && Interlocked.CompareExchange(ref _maxBatch, (int)batch, seen) != seen)
        {
        }

        var score = _linear.call(inputs[0].reshape(batch, _inSize));
        if (_timestampColumn == null)
            return new[] { score };
        var hours = inputs[1].div(TimeSpan.TicksPerHour, rounding_mode: RoundingMode.floor).remainder(24).to_type(ScalarType.Float32);
        return new[] { score, hours };
    }

    /// <inheritdoc/>
    protected override void SavePayload(BinaryWriter writer)
    {
        writer.Write(1); // payload layout version of this test type
        writer.Write(_inputColumn);
        writer.Write(_inputDims.Length);
        foreach (int d in _inputDims)
            writer.Write(d);
        writer.Write(_outputColumn);
        writer.Write(_outputSize);
        writer.Write(_timestampColumn ?? "");
        writer.Write(BatchSize);
        writer.Write(RejectNonFinite);
        TorchModelPersistence.WriteModule(writer, _linear);
    }

    /// <summary>The loader called by the persistence bridge.</summary>
    public static ProbeLinearTransformer Load(IHostEnvironment env, BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version != 1)
            throw new InvalidDataException($"Unsupported {nameof(ProbeLinearTransformer)} payload version {version}; expected 1.");
        string input = reader.ReadString();
        var dims = new int[reader.ReadInt32()];
        for (int i = 0; i < dims.Length; i++)
            dims[i] = reader.ReadInt32();
        string output = reader.ReadString();
        int outputSize = reader.ReadInt32();
        string timestamp = reader.ReadString();
        int batchSize = reader.ReadInt32();
        bool reject = reader.ReadBoolean();
        var linear = nn.Linear(dims.Aggregate(1, (a, b) => a * b), outputSize);
        try
        {
            TorchModelPersistence.ReadModule(reader, linear);
        }
        catch
        {
            linear.Dispose();
            throw;
        }
        return new ProbeLinearTransformer(env, input, dims, output, outputSize, timestamp.Length == 0 ? null : timestamp, linear,
            batchSize, reject);
    }

    /// <inheritdoc/>
    protected override void DisposeModule()
    {
        _linear.Dispose();
        ModuleDisposed = true;
    }
}

/// <summary>
/// NOT an <see cref="ITorchPersistable"/>: used to check that a model file naming it is refused. Its name has exactly
/// the length of <c>ProbeLinearTransformer</c> so a test can patch a saved file in place.
/// </summary>
public sealed class NotATorchTransformer00
{
    /// <summary>Set if anything ever calls <see cref="Load"/>.</summary>
    public static bool LoadWasCalled { get; private set; }

    /// <summary>Looks like a loader, but must never be called.</summary>
    public static NotATorchTransformer00 Load(IHostEnvironment env, BinaryReader reader)
    {
        LoadWasCalled = true;
        return new NotATorchTransformer00();
    }
}
