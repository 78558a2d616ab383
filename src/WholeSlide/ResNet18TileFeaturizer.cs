using System.Buffers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using MLNet.Attention.Classification;
using MLNet.Attention.Data;
using MLNet.Attention.Interop;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.WholeSlide;

/// <summary>
/// Options of the pretrained ImageNet ResNet-18 tile featurizer (the ONNX graphs of
/// <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> 0.23.1, run by ONNX Runtime in batches).
/// </summary>
public sealed class ResNet18TileFeaturizerOptions
{
    /// <summary>The tile column: an ML.NET <c>Image</c> (<c>LoadImages</c>, any size), encoded bytes
    /// (<c>LoadRawImageBytes</c>) or CHW float pixels <c>Vector&lt;Single, 3, 224, 224&gt;</c> in 0–255, RGB
    /// (<c>ResizeImages(224, 224) → ExtractPixels()</c> with its defaults).</summary>
    public string InputColumnName { get; set; } = "Pixels";

    /// <summary>The feature column: <c>Vector&lt;Single, 512&gt;</c> (the globally pooled last stage).</summary>
    public string OutputColumnName { get; set; } = "Features";

    /// <summary>Tiles per ONNX Runtime call. 32 is near the best per-tile speed on CPU; larger batches only cost
    /// memory (≈ 0.6 MB of input and ≈ 6 MB of activations per tile).</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose (one per physical core).</summary>
    public int IntraOpNumThreads { get; set; }

    /// <summary>The CUDA device to run on; null: the <c>MLContext</c>'s <c>GpuDeviceId</c> (null there too: CPU).
    /// Needs an ONNX Runtime with the CUDA execution provider (the Microsoft.ML.OnnxRuntime.Gpu packages instead of
    /// the CPU-only Microsoft.ML.OnnxRuntime this package references).</summary>
    public int? GpuDeviceId { get; set; }

    /// <summary>With a GPU asked for but no CUDA execution provider: run on the CPU (true) or throw (false); null:
    /// the <c>MLContext</c>'s <c>FallbackToCpu</c>.</summary>
    public bool? FallbackToCpu { get; set; }

    /// <summary>The folder holding <c>ResNet18Onnx/ResNet18.onnx</c> and <c>ResNetPrepOnnx/ResNetPreprocess.onnx</c>;
    /// null: <c>DnnImageModels</c> beside the application, where the package's props file copies them.</summary>
    public string? ModelDirectory { get; set; }

    /// <summary>Checks the options; throws <see cref="ArgumentOutOfRangeException"/> naming the option and the
    /// fix.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(InputColumnName))
            throw new ArgumentOutOfRangeException(nameof(InputColumnName),
                "Name the tile column (an Image or pixel column).");
        if (string.IsNullOrWhiteSpace(OutputColumnName))
            throw new ArgumentOutOfRangeException(nameof(OutputColumnName), "Name the feature column.");
        if (BatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize,
                "BatchSize must be at least 1 (32 is a good default).");
        if (IntraOpNumThreads < 0)
            throw new ArgumentOutOfRangeException(nameof(IntraOpNumThreads), IntraOpNumThreads,
                "IntraOpNumThreads must be 0 (ONNX Runtime's choice) or a thread count.");
        if (GpuDeviceId < 0)
            throw new ArgumentOutOfRangeException(nameof(GpuDeviceId), GpuDeviceId,
                "GpuDeviceId must be a CUDA device index or null (CPU).");
    }
}

/// <summary>
/// Fits a <see cref="ResNet18TileFeaturizerTransformer"/>: nothing is trained; <c>Fit</c> checks the tile column and
/// opens the ONNX Runtime sessions on the package's (batch-rewritten) ResNet-18.
/// </summary>
public sealed class ResNet18TileFeaturizerEstimator : IEstimator<ResNet18TileFeaturizerTransformer>
{
    private readonly IHostEnvironment _env;
    private readonly ResNet18TileFeaturizerOptions _options;

    internal ResNet18TileFeaturizerEstimator(IHostEnvironment env, ResNet18TileFeaturizerOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>Checks the tile column of <paramref name="input"/> and opens the featurizer.</summary>
    public ResNet18TileFeaturizerTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var kind = ResNet18TileFeaturizerTransformer.DetectInput(input.Schema, _options.InputColumnName);
        return ResNet18TileFeaturizerTransformer.Create(_env, _options, kind);
    }

    /// <summary>Checks the tile column and adds the feature column (<c>Vector&lt;Single, 512&gt;</c>).</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        string name = _options.InputColumnName;
        var columns = inputSchema.ToDictionary(c => c.Name);
        if (!columns.TryGetValue(name, out var column))
            throw ResNet18TileFeaturizerTransformer.Missing(name, inputSchema.Select(c => c.Name));
        var kind = column.Kind;
        bool ok = column.ItemType is ImageDataViewType ||
                  kind == SchemaShape.Column.VectorKind.VariableVector && column.ItemType == NumberDataViewType.Byte ||
                  kind == SchemaShape.Column.VectorKind.Vector && column.ItemType == NumberDataViewType.Single;
        if (!ok)
            throw ResNet18TileFeaturizerTransformer.WrongType(name, $"{column.ItemType} ({column.Kind})");
        columns[_options.OutputColumnName] = HostSettings.SchemaColumn(_options.OutputColumnName,
            SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single);
        return new SchemaShape(columns.Values);
    }
}

/// <summary>
/// The pretrained ImageNet ResNet-18 tile featurizer: a 224 × 224 RGB tile in, the 512 globally pooled features of its
/// last stage out (<c>Vector&lt;Single, 512&gt;</c>), the same values as ML.NET's
/// <c>DnnFeaturizeImage(ResNet18)</c> but scored by ONNX Runtime in batches of
/// <see cref="TorchTransformerBase.BatchSize"/> tiles. Saves and loads with <c>mlContext.Model.Save/Load</c>; works
/// in a <c>PredictionEngine</c>; dispose it (or the chain holding it) to release the ONNX Runtime sessions.
/// </summary>
/// <remarks>
/// <para><b>Model.</b> The graphs of Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 (<c>ResNetPreprocess.onnx</c>:
/// RGB 0–255 → the network's BGR mean-subtracted input; <c>ResNet18.onnx</c>: a CNTK export with its batch fixed at
/// 1). Both are rewritten in memory to a symbolic batch dimension (the weights are untouched) and cached per
/// process.</para>
/// <para><b>Input.</b> CHW float pixels as <c>ResizeImages(224, 224) → ExtractPixels()</c> write them, an
/// <c>Image</c> column or encoded bytes, detected when fitting. Images of another size than 224 × 224 are scaled to
/// cover it and centre-cropped (IsoCrop, ML.NET's <c>ResizeImages</c> default) with an antialiased bilinear filter
/// (<see cref="ImagePixels"/>): close to, not bit-equal with, ML.NET's <c>ResizeImages</c>; 224 × 224 tiles are read
/// exactly.</para>
/// <para><b>Saved model.</b> The zip holds the options and the SHA-256 of <c>ResNet18.onnx</c>, not the 64 MB of
/// weights: loading resolves the graphs from the saved <see cref="ResNet18TileFeaturizerOptions.ModelDirectory"/> when
/// it was set and exists, else from <c>DnnImageModels</c> beside the loading application (any project referencing
/// this package has it), and refuses a different ResNet18.onnx.</para>
/// <para><b>GPU.</b> With a GPU id (options or <c>MLContext.GpuDeviceId</c>) the sessions use ONNX Runtime's CUDA
/// execution provider when the loaded ONNX Runtime has it. The CPU-only Microsoft.ML.OnnxRuntime package referenced
/// here does not: the featurizer then runs on the CPU with <c>FallbackToCpu</c>, or throws saying so.</para>
/// </remarks>
public sealed class ResNet18TileFeaturizerTransformer : TorchTransformerBase
{
    internal const string ComponentName = "ResNet18TileFeaturizer";

    /// <summary>Feature vector length.</summary>
    public const int FeatureWidth = 512;

    /// <summary>The tile side the network reads.</summary>
    public const int TileSide = 224;

    private const int PixelCount = 3 * TileSide * TileSide;
    private const int PayloadVersion = 1;

    private readonly SessionOptions _sessionOptions;
    private readonly RunOptions _runOptions = new();
    private readonly InferenceSession _preprocess, _resnet;
    private readonly string _preprocessInput, _preprocessOutput;
    private readonly string? _savedModelDirectory;
    private readonly int? _gpuDeviceId;
    private readonly bool _fallbackToCpu;
    private readonly string _modelSha256;

    private ResNet18TileFeaturizerTransformer(IHostEnvironment env, string input, string output, int batchSize,
        ImageInputKind kind, int threads, int? gpu, bool fallback, string? modelDirectory, string resolvedDirectory,
        string sha256, SessionOptions sessionOptions, string provider, InferenceSession preprocess,
        InferenceSession resnet)
        : base(env, ComponentName, new[] { InputColumn(input, kind) },
            new[] { new TorchOutputColumn(output, FeatureWidth) }, batchSize)
    {
        InputKind = kind;
        IntraOpNumThreads = threads;
        _gpuDeviceId = gpu;
        _fallbackToCpu = fallback;
        _savedModelDirectory = modelDirectory;
        ModelDirectory = resolvedDirectory;
        _modelSha256 = sha256;
        ExecutionProvider = provider;
        _sessionOptions = sessionOptions;
        _preprocess = preprocess;
        _resnet = resnet;
        _preprocessInput = preprocess.InputMetadata.Keys.Single();
        _preprocessOutput = preprocess.OutputMetadata.Keys.Single();
        RejectNonFinite = true;
    }

    /// <summary>What the input column holds (detected when fitting).</summary>
    public ImageInputKind InputKind { get; }

    /// <summary>ONNX Runtime intra-op threads (0: ONNX Runtime's choice).</summary>
    public int IntraOpNumThreads { get; }

    /// <summary>The folder the ONNX graphs were read from.</summary>
    public string ModelDirectory { get; }

    /// <summary>The execution provider the sessions run on: <c>"CPU"</c> or <c>"CUDA:id"</c>.</summary>
    public string ExecutionProvider { get; }

    /// <summary>Features of <paramref name="count"/> tiles of CHW RGB pixels (0–255, 224 × 224) in
    /// <paramref name="pixels"/> into <paramref name="features"/> (<paramref name="count"/> × 512), in one ONNX
    /// Runtime call, outside any ML.NET pipeline.</summary>
    public void Featurize(ReadOnlySpan<float> pixels, int count, Span<float> features)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if (pixels.Length < count * PixelCount)
            throw new ArgumentException($"{count} tiles need {count * PixelCount} pixel values (3 × 224 × 224 " +
                "each); " +
                $"got {pixels.Length}.", nameof(pixels));
        if (features.Length < count * FeatureWidth)
            throw new ArgumentException(
                $"{count} tiles need room for {count * FeatureWidth} features; got {features.Length}.",
                nameof(features));
        var buffer = ArrayPool<float>.Shared.Rent(count * PixelCount);
        try
        {
            pixels[..(count * PixelCount)].CopyTo(buffer);
            Run(buffer, count, features);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <inheritdoc/>
    protected override Tensor[] Forward(Tensor[] inputs)
    {
        var x = inputs[0];
        int n = (int)x.shape[0];
        var buffer = ArrayPool<float>.Shared.Rent(n * PixelCount);
        try
        {
            var contiguous = x.is_contiguous() ? x : x.contiguous();
            contiguous.data<float>().CopyTo(buffer.AsSpan(0, n * PixelCount), 0, 0);
            var features = new float[n * FeatureWidth];
            Run(buffer, n, features);
            return new[] { torch.tensor(features, new long[] { n, FeatureWidth }) };
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    // Preprocess → ResNet-18 on n tiles of buffer; InferenceSession.Run is thread-safe, nothing here is shared state.
    private void Run(float[] buffer, int n, Span<float> features)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
            buffer.AsMemory(0, n * PixelCount), new long[] { n, 3, TileSide, TileSide });
        using var prepped = _preprocess.Run(_runOptions, new[] { _preprocessInput }, new[] { input },
            new[] { _preprocessOutput });
        using var pooled = _resnet.Run(_runOptions, new[] { ResNet18OnnxGraph.ResNetInput }, new[] { prepped[0] },
            new[] { ResNet18OnnxGraph.ResNetOutput });
        var values = pooled[0].GetTensorDataAsSpan<float>();
        if (values.Length != n * FeatureWidth)
            throw new InvalidDataException($"{ComponentName}: ResNet-18 returned {values.Length} values for {n} " +
                $"tiles; expected {n * FeatureWidth}. Use the ResNet18.onnx of " +
                "Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1.");
        values.CopyTo(features);
    }

    /// <inheritdoc/>
    protected override string? MissingColumnHint(TorchInputColumn column) => FixHint;

    private const string FixHint = "Give the featurizer an Image column (mlContext.Transforms.LoadImages), encoded " +
        "bytes (LoadRawImageBytes) or CHW pixels (LoadImages → ResizeImages(224, 224) → ExtractPixels()), or " +
        "name the column it reads (inputColumnName).";

    // Every schema check goes through DetectInput first, for errors that say what a tile column must hold.
    /// <inheritdoc/>
    protected override DataViewSchema? OtherViewOutputSchema(DataViewSchema inputSchema)
    {
        CheckSchema(inputSchema);
        return null;
    }

    /// <inheritdoc/>
    protected override IDataView? TransformOtherView(IDataView input)
    {
        CheckSchema(input.Schema);
        return null;
    }

    private void CheckSchema(DataViewSchema schema)
    {
        ThrowIfDisposed();
        var kind = DetectInput(schema, InputColumns[0].Name);
        if (kind != InputKind)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{ComponentName}: column " +
                $"'{InputColumns[0].Name}' holds {Describe(kind)}, but the featurizer was fitted on " +
                $"{Describe(InputKind)}. Fit it again on this data, or give it the column kind it was fitted on.");
    }

    private static string Describe(ImageInputKind kind) => kind switch
    {
        ImageInputKind.Image => "images",
        ImageInputKind.EncodedBytes => "encoded image bytes",
        _ => "CHW pixel vectors",
    };

    /// <inheritdoc/>
    protected override void DisposeModule()
    {
        _resnet.Dispose();
        _preprocess.Dispose();
        _sessionOptions.Dispose();
        _runOptions.Dispose();
    }

    private static TorchInputColumn InputColumn(string name, ImageInputKind kind) => kind switch
    {
        ImageInputKind.Image => TorchInputColumn.Image(name, 3, TileSide, TileSide),
        ImageInputKind.EncodedBytes => TorchInputColumn.EncodedImage(name, 3, TileSide, TileSide),
        _ => TorchInputColumn.Single(name, 3, TileSide, TileSide),
    };

    internal static ArgumentOutOfRangeException Missing(string name, IEnumerable<string> available)
    {
        var names = string.Join(", ", available.Select(n => $"'{n}'"));
        return new("inputSchema", $"{ComponentName}: tile column '{name}' was not found (columns: " +
            $"{(names.Length == 0 ? "none" : names)}). {FixHint}");
    }

    internal static ArgumentOutOfRangeException WrongType(string name, string type) =>
        new("inputSchema", $"{ComponentName}: tile column '{name}' has type {type}; expected an Image (LoadImages), " +
            $"encoded bytes Vector<Byte> (LoadRawImageBytes) or Vector<Single, 3, {TileSide}, {TileSide}> of RGB " +
            "0–255 " +
            $"CHW pixels (ResizeImages({TileSide}, {TileSide}) → ExtractPixels() with its defaults).");

    internal static ImageInputKind DetectInput(DataViewSchema schema, string name)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw Missing(name, schema.Where(c => !c.IsHidden).Select(c => c.Name));
        if (column.Type is ImageDataViewType) return ImageInputKind.Image;
        if (column.Type is VectorDataViewType { ItemType: var bytes } && bytes == NumberDataViewType.Byte)
            return ImageInputKind.EncodedBytes;
        if (column.Type is not VectorDataViewType { ItemType: var item } vector || item != NumberDataViewType.Single)
            throw WrongType(name, column.Type.ToString() ?? "?");
        if (vector.Size == PixelCount && vector.Dimensions is [_, _, 3])
            throw new ArgumentOutOfRangeException(nameof(schema), $"{ComponentName}: pixel column '{name}' is " +
                $"{string.Join(" × ", vector.Dimensions.ToArray())} (interleaved HWC); expected planar CHW " +
                $"3 × {TileSide} × {TileSide}. Extract the pixels with ExtractPixels' default " +
                "interleavePixelColors: false, or pass the Image column.");
        if (vector.Size == PixelCount) return ImageInputKind.PixelVector;
        var dims = string.Join(" × ", vector.Dimensions.ToArray());
        string hint = vector.Size == 0
            ? $"It has an unknown size: resize the images first (ResizeImages({TileSide}, {TileSide})) or pass the " +
              "Image column."
            : vector.Size % 3 == 0 && IsSquare(vector.Size / 3) is int side
                ? $"It holds {side} × {side} tiles: resize them to {TileSide} × {TileSide} " +
                  $"(ResizeImages({TileSide}, {TileSide}) before ExtractPixels) or pass the Image column, which " +
                  "the featurizer resizes itself."
                : vector.Size == TileSide * TileSide
                    ? "It holds one channel: extract RGB (ExtractPixels' default colors)."
                    : "Build it with ResizeImages(224, 224) → ExtractPixels() or pass the Image column.";
        throw new ArgumentOutOfRangeException(nameof(schema), $"{ComponentName}: pixel column '{name}' holds " +
            $"{dims} = {vector.Size} values per tile; expected 3 × {TileSide} × {TileSide} = {PixelCount} (CHW " +
            $"RGB). {hint}");
    }

    private static int? IsSquare(int n)
    {
        int s = (int)Math.Round(Math.Sqrt(n));
        return s * s == n ? s : null;
    }

    internal static ResNet18TileFeaturizerTransformer Create(IHostEnvironment env,
        ResNet18TileFeaturizerOptions options, ImageInputKind kind)
    {
        var (hostGpu, hostFallback) = HostSettings.GpuSettings(env);
        int? gpu = options.GpuDeviceId ?? hostGpu;
        bool fallback = options.FallbackToCpu ?? hostFallback;
        return Open(env, options.InputColumnName, options.OutputColumnName, options.BatchSize, kind,
            options.IntraOpNumThreads, gpu, fallback, options.ModelDirectory, expectedSha256: null);
    }

    private static ResNet18TileFeaturizerTransformer Open(IHostEnvironment env, string input, string output,
        int batchSize, ImageInputKind kind, int threads, int? gpu, bool fallback, string? modelDirectory,
        string? expectedSha256)
    {
        string directory = ResolveDirectory(modelDirectory, loading: expectedSha256 is not null);
        string resnetPath = Path.Combine(directory, ResNet18OnnxGraph.ResNetFile);
        string prepPath = Path.Combine(directory, ResNet18OnnxGraph.PreprocessFile);
        string sha256 = ResNet18OnnxGraph.Sha256(resnetPath);
        if (expectedSha256 is not null && !string.Equals(sha256, expectedSha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{ComponentName}: '{resnetPath}' is not the ResNet18.onnx the model was " +
                $"saved with (SHA-256 {sha256}, saved {expectedSha256}). Reference " +
                "Microsoft.ML.DnnImageFeaturizer.ResNet18 " +
                "0.23.1, the version the model was saved with.");
        var (sessionOptions, provider) = SessionOptionsFor(threads, gpu, fallback);
        InferenceSession? prep = null;
        try
        {
            prep = new InferenceSession(ResNet18OnnxGraph.BatchableBytes(prepPath), sessionOptions);
            var resnet = new InferenceSession(ResNet18OnnxGraph.BatchableBytes(resnetPath), sessionOptions);
            return new ResNet18TileFeaturizerTransformer(env, input, output, batchSize, kind, threads, gpu, fallback,
                modelDirectory, directory, sha256, sessionOptions, provider, prep, resnet);
        }
        catch
        {
            prep?.Dispose();
            sessionOptions.Dispose();
            throw;
        }
    }

    private static string ResolveDirectory(string? modelDirectory, bool loading)
    {
        static bool Has(string dir) => File.Exists(Path.Combine(dir, ResNet18OnnxGraph.ResNetFile)) &&
                                       File.Exists(Path.Combine(dir, ResNet18OnnxGraph.PreprocessFile));
        if (modelDirectory is not null && Has(modelDirectory)) return Path.GetFullPath(modelDirectory);
        string fallback = ResNet18OnnxGraph.DefaultModelDirectory;
        if (modelDirectory is null || loading)
        {
            if (Has(fallback)) return fallback;
        }
        string where = modelDirectory is null ? fallback
            : loading ? $"{modelDirectory} (saved) or {fallback}" : modelDirectory;
        throw new FileNotFoundException($"{ComponentName}: {ResNet18OnnxGraph.ResNetFile} and " +
            $"{ResNet18OnnxGraph.PreprocessFile} were not found under {where}. Reference the " +
            "Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 package in the application's project (its props file " +
            "copies them to DnnImageModels in the output folder), or set ModelDirectory to a folder holding them.");
    }

    private static (SessionOptions Options, string Provider) SessionOptionsFor(int threads, int? gpu, bool fallback)
    {
        var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        if (gpu is not int id) return (options, "CPU");
        bool hasCuda = OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider");
        if (hasCuda)
        {
            try
            {
                options.AppendExecutionProvider_CUDA(id);
                return (options, $"CUDA:{id}");
            }
            catch (OnnxRuntimeException) when (fallback)
            {
                return (options, "CPU");
            }
            catch (OnnxRuntimeException ex)
            {
                options.Dispose();
                throw new InvalidOperationException($"{ComponentName}: CUDA device {id} could not be opened by ONNX " +
                    $"Runtime ({ex.Message}). Check the device index and the CUDA runtime, or set FallbackToCpu.", ex);
            }
        }
        if (fallback) return (options, "CPU");
        options.Dispose();
        throw new InvalidOperationException($"{ComponentName}: GPU {id} was asked for (GpuDeviceId), but the " +
            "loaded ONNX Runtime has no CUDA execution provider: Microsoft.ML.OnnxRuntime is CPU-only. Reference " +
            "Microsoft.ML.OnnxRuntime.Gpu.Linux (CUDA 13 runtime) instead of it, set FallbackToCpu = true, or leave " +
            "GpuDeviceId null.");
    }

    /// <inheritdoc/>
    protected override void SavePayload(BinaryWriter writer)
    {
        writer.Write(PayloadVersion);
        writer.Write(InputColumns[0].Name);
        writer.Write(OutputColumns[0].Name);
        writer.Write(BatchSize);
        writer.Write((int)InputKind);
        writer.Write(IntraOpNumThreads);
        writer.Write(_gpuDeviceId ?? -1);
        writer.Write(_fallbackToCpu);
        writer.Write(_savedModelDirectory ?? "");
        writer.Write(_modelSha256);
    }

    /// <summary>Reads a featurizer written by <see cref="SavePayload"/>; called by the persistence bridge. The ONNX
    /// graphs are resolved now (see the remarks of <see cref="ResNet18TileFeaturizerTransformer"/>).</summary>
    public static ResNet18TileFeaturizerTransformer Load(IHostEnvironment env, BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version is < 1 or > PayloadVersion)
            throw new InvalidDataException($"This ResNet-18 tile featurizer was saved with format {version}; this " +
                $"MLNet.Attention.WholeSlide reads format 1 to {PayloadVersion}. Load it with the version that " +
                "saved it.");
        string input = reader.ReadString(), output = reader.ReadString();
        int batchSize = reader.ReadInt32(), k = reader.ReadInt32();
        int threads = reader.ReadInt32(), gpu = reader.ReadInt32();
        bool fallback = reader.ReadBoolean();
        string directory = reader.ReadString(), sha256 = reader.ReadString();
        if (batchSize < 1 || threads < 0 || gpu < -1 || !Enum.IsDefined((ImageInputKind)k))
            throw new InvalidDataException("Corrupted ResNet-18 tile featurizer: batch size, threads, GPU or input " +
                "kind out of range.");
        return Open(env, input, output, batchSize, (ImageInputKind)k, threads, gpu < 0 ? null : gpu, fallback,
            directory.Length == 0 ? null : directory, sha256);
    }
}
