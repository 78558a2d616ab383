using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Runtime;
using MLNet.Attention.Checkpoints;
using MLNet.Attention.Classification;
using MLNet.Attention.Data;
using MLNet.Attention.Interop;
using MLNet.Attention.Persistence;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Transforms;

/// <summary>
/// Options of the image featurizer built from a PyTorch checkpoint: the network (backbone, attention, width, stem) must
/// be the one the checkpoint was saved from; the input is a CHW float vector per image, as ML.NET's
/// <c>ExtractPixels</c> writes it (<c>LoadImages → ResizeImages → ExtractPixels</c>), scaled by
/// <see cref="PixelScale"/> and normalised with <see cref="Mean"/> / <see cref="Std"/> inside the featurizer.
/// </summary>
public sealed class AttentionImageFeaturizerOptions : IImageNetworkOptions
{
    /// <summary>The pixel column: Vector&lt;Single, Channels × Height × Width&gt; in CHW order (ExtractPixels' default).</summary>
    public string InputColumnName { get; set; } = "Pixels";

    /// <summary>The output column: Vector&lt;Single, FeatureWidth&gt; (1280 for MobileNetV2, 512 for ResNet-18).</summary>
    public string OutputColumnName { get; set; } = "Features";

    /// <summary>The <c>.pth</c> file written by <c>torch.save(model.state_dict(), path)</c> (or a checkpoint dict
    /// holding it under <c>state_dict</c> / <c>model</c>; <c>module.</c> prefixes are removed). Its keys must be the
    /// reference's state-dict names (those of <c>MLNet.Attention.Vision.MobileNetV2</c> / <c>ResNet</c>); the
    /// classifier head (<c>classifier.*</c>, <c>fc.*</c>) is ignored.</summary>
    public string? CheckpointPath { get; set; }

    /// <summary>The checkpoint dict's entry holding the state dict when it is neither the file itself nor its
    /// <c>state_dict</c> / <c>model</c> entry (for example <c>"state_dict_ema"</c>).</summary>
    public string? CheckpointEntry { get; set; }

    /// <summary>Image height (after ResizeImages).</summary>
    public int ImageHeight { get; set; } = 32;

    /// <summary>Image width (after ResizeImages).</summary>
    public int ImageWidth { get; set; } = 32;

    /// <summary>Channels: 3 for RGB, 1 for grey-scale.</summary>
    public int Channels { get; set; } = 3;

    /// <summary>The backbone the checkpoint holds.</summary>
    public ImageBackbone Backbone { get; set; } = ImageBackbone.MobileNetV2;

    /// <summary>The attention inside the backbone (official placements), as in the checkpoint.</summary>
    public ImageAttention Attention { get; set; } = ImageAttention.ElaL;

    /// <summary>ULSAM subspaces g (with <see cref="ImageAttention.Ulsam"/>).</summary>
    public int UlsamSubspaces { get; set; } = 4;

    /// <summary>MobileNetV2 width multiplier α.</summary>
    public double WidthMultiplier { get; set; } = 1.0;

    /// <summary>MobileNetV2's CIFAR stem (stride 1 in the stem and the first 24-channel stage); null: on for images of
    /// at most 64 pixels a side. It changes no weight, only the resolution the features are computed at.</summary>
    public bool? CifarStem { get; set; }

    /// <summary>Factor applied to the pixel values first (1/255 for ExtractPixels' default 0–255 output).</summary>
    public float PixelScale { get; set; } = 1f / 255;

    /// <summary>Per-channel mean subtracted after scaling (ImageNet's by default).</summary>
    public float[] Mean { get; set; } = { 0.485f, 0.456f, 0.406f };

    /// <summary>Per-channel standard deviation divided by after the mean (ImageNet's by default).</summary>
    public float[] Std { get; set; } = { 0.229f, 0.224f, 0.225f };

    /// <summary>Rows per forward pass when transforming a data view.</summary>
    public int BatchSize { get; set; } = 64;

    /// <summary>Checks the options; throws <see cref="ArgumentOutOfRangeException"/> naming the option and the fix.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(InputColumnName)) throw new ArgumentOutOfRangeException(nameof(InputColumnName), "Name the pixel column.");
        if (string.IsNullOrWhiteSpace(OutputColumnName)) throw new ArgumentOutOfRangeException(nameof(OutputColumnName), "Name the output column.");
        ImageNetworkOptions.Validate(this);
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        if (string.IsNullOrWhiteSpace(CheckpointPath))
            throw new ArgumentOutOfRangeException(nameof(CheckpointPath), "Set CheckpointPath to a .pth file written by " +
                "torch.save(model.state_dict(), path), or build the featurizer from a trained classifier: " +
                "mlContext.Transforms.AttentionImageFeaturizer(classifierModel) or classifierModel.CreateFeaturizer().");
    }

    // One class: the head is never used (the featurizer stops before it); dropout is inactive in eval mode.
    internal ImageClassifierConfig ToConfig() => ImageNetworkOptions.ToConfig(this, dropout: 0, classes: 1);
}

/// <summary>
/// Fits an <see cref="AttentionImageFeaturizerTransformer"/>: nothing is trained; <c>Fit</c> checks the pixel column
/// and loads the weights, from the PyTorch checkpoint of <see cref="AttentionImageFeaturizerOptions.CheckpointPath"/>
/// or copied from a trained <see cref="ImageClassifierModel"/>.
/// </summary>
public sealed class AttentionImageFeaturizerEstimator : IEstimator<AttentionImageFeaturizerTransformer>
{
    private readonly IHostEnvironment _env;
    private readonly AttentionImageFeaturizerOptions? _options;
    private readonly ImageClassifierModel? _classifier;
    private readonly string _input, _output;
    private readonly ImageClassifierConfig _config;
    private readonly int _batchSize;

    internal AttentionImageFeaturizerEstimator(IHostEnvironment env, AttentionImageFeaturizerOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _config = options.ToConfig();
        _input = options.InputColumnName;
        _output = options.OutputColumnName;
        _batchSize = options.BatchSize;
    }

    internal AttentionImageFeaturizerEstimator(IHostEnvironment env, ImageClassifierModel classifier, string outputColumnName,
        string? inputColumnName, int batchSize)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        _classifier = classifier ?? throw new ArgumentNullException(nameof(classifier));
        ObjectDisposedException.ThrowIf(classifier.IsDisposed, classifier);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        _config = classifier.Config;
        _input = inputColumnName ?? classifier.InputColumns[0].Name;
        _output = outputColumnName;
        _batchSize = batchSize;
    }

    /// <summary>Checks the pixel column of <paramref name="input"/> and builds the featurizer with its weights.</summary>
    public AttentionImageFeaturizerTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var kind = AttentionImageFeaturizerTransformer.DetectInput(input.Schema, _input, _config);
        return _classifier is not null
            ? AttentionImageFeaturizerTransformer.FromClassifier(_env, _classifier, _output, _input, _batchSize, kind)
            : AttentionImageFeaturizerTransformer.FromCheckpoint(_env, _options!, kind);
    }

    /// <summary>Checks the pixel column and adds the feature column (Vector&lt;Single&gt; of the feature width).</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var result = inputSchema.ToDictionary(c => c.Name);
        if (!result.TryGetValue(_input, out var pixels) || !(pixels.ItemType is ImageDataViewType ||
                pixels.Kind == SchemaShape.Column.VectorKind.VariableVector && pixels.ItemType == NumberDataViewType.Byte ||
                pixels.Kind == SchemaShape.Column.VectorKind.Vector && pixels.ItemType == NumberDataViewType.Single))
            throw new ArgumentOutOfRangeException(nameof(inputSchema),
                $"{AttentionImageFeaturizerTransformer.ComponentName}: image column '{_input}' must hold encoded bytes " +
                "(LoadRawImageBytes), images (LoadImages) or a known-size float vector (LoadImages → ResizeImages → ExtractPixels).");
        result[_output] = HostSettings.SchemaColumn(_output, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single);
        return new SchemaShape(result.Values);
    }
}

/// <summary>
/// The image featurizer: a CHW pixel vector in, the backbone's globally pooled features before the classifier head out
/// (MobileNetV2: 1280 values, ResNet-18: 512), for any ML.NET trainer. Scores in batches; saves and loads with
/// <c>mlContext.Model.Save/Load</c>; works in a <c>PredictionEngine</c>; dispose it (or the chain holding it).
/// </summary>
/// <remarks>
/// <para>A featurizer made from a trained <see cref="ImageClassifierModel"/> holds its own copy of the backbone's
/// weights (a few MB): disposing the classifier does not affect the featurizer, nor the other way round, and training
/// or loading another classifier later changes neither.</para>
/// <para>Input: encoded bytes (<c>LoadRawImageBytes</c>), an Image column (<c>LoadImages</c>) or the pixel column as
/// ExtractPixels writes it (a CHW float vector), detected when fitting; images are decoded and resized by the classifier's
/// shared column reader (<see cref="MLNet.Attention.Data.ImagePixels"/>).</para>
/// </remarks>
public sealed class AttentionImageFeaturizerTransformer : TorchTransformerBase
{
    internal const string ComponentName = "AttentionImageFeaturizer";
    // 1: pixel vectors only; 2: + input kind.
    private const int PayloadVersion = 2;
    private readonly ImageClassifierNetwork _network;

    private AttentionImageFeaturizerTransformer(IHostEnvironment env, ImageClassifierNetwork network, Device device,
        string inputColumnName, string outputColumnName, int batchSize, string weightsSource, ImageInputKind inputKind)
        : base(env, ComponentName,
            new[] { InputColumn(inputColumnName, inputKind, network.Config) },
            new[] { new TorchOutputColumn(outputColumnName, network.FeatureWidth) }, batchSize)
    {
        _network = network;
        Device = device;
        WeightsSource = weightsSource;
        InputKind = inputKind;
        RejectNonFinite = true;
        network.eval();
        // Scoring runs a copy with the batch norms folded into the convolutions; the saved weights stay unfolded.
        _scoring = new Lazy<ImageClassifierNetwork>(() => network.CreateInferenceCopy(device),
            LazyThreadSafetyMode.ExecutionAndPublication);
    }

    private readonly Lazy<ImageClassifierNetwork> _scoring;

    /// <summary>The network (its head unused); for the ONNX export, which writes its <c>ForwardFeatures</c>.</summary>
    internal ImageClassifierNetwork Network => _network;

    /// <summary>The network configuration (its <c>Classes</c> is 1: the head is not used).</summary>
    public ImageClassifierConfig Config => _network.Config;

    /// <summary>Length of the feature vector.</summary>
    public int FeatureWidth => _network.FeatureWidth;

    /// <summary>The device the network runs on.</summary>
    public Device Device { get; }

    /// <summary>Where the weights came from: the checkpoint file, or "ImageClassifierModel".</summary>
    public string WeightsSource { get; }

    /// <summary>What the input column holds (detected when fitting).</summary>
    public ImageInputKind InputKind { get; }

    /// <summary>Features of a batch of CHW pixel vectors [B, C·H·W] (on any device; not normalised) →
    /// [B, <see cref="FeatureWidth"/>], outside any ML.NET pipeline.</summary>
    public Tensor Featurize(Tensor pixels)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(pixels);
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        return _scoring.Value.ForwardFeatures(pixels.to(Device)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    protected override Tensor[] Forward(Tensor[] inputs) => new[] { _scoring.Value.ForwardFeatures(inputs[0].to(Device)) };

    /// <inheritdoc/>
    protected override string? MissingColumnHint(TorchInputColumn column) =>
        "Build the pixel column with mlContext.Transforms.LoadImages → ResizeImages → ExtractPixels (CHW, the default order), " +
        "or name the column the featurizer reads.";

    /// <inheritdoc/>
    protected override void DisposeModule()
    {
        if (_scoring.IsValueCreated) _scoring.Value.Dispose();
        _network.Dispose();
    }

    private static TorchInputColumn InputColumn(string name, ImageInputKind kind, ImageClassifierConfig config) => kind switch
    {
        ImageInputKind.Image => TorchInputColumn.Image(name, config.Channels, config.Height, config.Width),
        ImageInputKind.EncodedBytes => TorchInputColumn.EncodedImage(name, config.Channels, config.Height, config.Width),
        _ => TorchInputColumn.Single(name, config.Channels * config.Height * config.Width),
    };

    internal static ImageInputKind DetectInput(DataViewSchema schema, string name, ImageClassifierConfig config)
    {
        int expected = config.Channels * config.Height * config.Width;
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"{ComponentName}: image column '{name}' was not found. " +
                (ImageColumns(schema) is { Length: > 0 } found
                    ? $"Image columns here: {found} (set the input column name to one). " : "") +
                "Load it with mlContext.Transforms.LoadRawImageBytes or LoadImages, or build pixels with LoadImages → " +
                "ResizeImages → ExtractPixels (CHW, the default order).");
        if (column.Type is ImageDataViewType) return ImageInputKind.Image;
        if (column.Type is VectorDataViewType { ItemType: var bytes } && bytes == NumberDataViewType.Byte) return ImageInputKind.EncodedBytes;
        if (column.Type is not VectorDataViewType { ItemType: var item, Size: var size } || item != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{ComponentName}: image column '{name}' has type {column.Type}; " +
                $"expected encoded bytes (LoadRawImageBytes), an Image (LoadImages) or Vector<Single, {expected}> (ExtractPixels output).");
        if (size == expected) return ImageInputKind.PixelVector;
        string hint = size == 0 ? "It has an unknown size: resize the images first (ResizeImages) so every image has the same size."
            : size * 3 == expected ? $"It holds {size} values: one channel where {config.Channels} are expected (grey-scale images: a featurizer with Channels = 1, or ExtractPixels with the RGB colors)."
            : size == expected * 3 ? $"It holds {size} values: three channels where one is expected."
            : $"It holds {size} values; resize the images to {config.Height} × {config.Width} (ResizeImages) or set ImageHeight/ImageWidth to the images' size.";
        if (size != 0 && ImageColumns(schema) is { Length: > 0 } images)
            hint += $" Or give the featurizer an Image column ({images}): it resizes images itself.";
        throw new ArgumentOutOfRangeException(nameof(schema), $"{ComponentName}: pixel column '{name}' should hold " +
            $"{config.Channels} × {config.Height} × {config.Width} = {expected} values per image. {hint}");
    }

    // The visible Image columns ("'Image', 'Loaded'"), for the hints: a tile view (LoadSlideTiles) or LoadImages
    // output read under the wrong name.
    private static string ImageColumns(DataViewSchema schema) => string.Join(", ",
        schema.Where(c => !c.IsHidden && c.Type is ImageDataViewType).Select(c => $"'{c.Name}'"));

    internal static AttentionImageFeaturizerTransformer FromCheckpoint(IHostEnvironment env, AttentionImageFeaturizerOptions options,
        ImageInputKind kind = ImageInputKind.PixelVector)
    {
        var config = options.ToConfig();
        string path = options.CheckpointPath!;
        return Build(env, config, network =>
        {
            using var weights = StateDictFile.Read(path, options.CheckpointEntry);
            try
            {
                StateDictLoader.Load(network, weights, new StateDictLoadOptions
                {
                    TargetPrefix = "backbone.",
                    IgnoreKeyPrefixes = new[] { network.HeadPrefix },
                    KeepModulePrefixes = new[] { "backbone." + network.HeadPrefix },
                });
            }
            catch (StateDictMismatchException ex)
            {
                throw new InvalidDataException($"{ComponentName}: the checkpoint '{path}' does not fit {Describe(config)} " +
                    $"(its classifier head '{network.HeadPrefix}*' is ignored). {ex.Message} Set Backbone, Attention, " +
                    "WidthMultiplier, UlsamSubspaces and Channels to those of the network the checkpoint was saved from.", ex);
            }
        }, options.InputColumnName, options.OutputColumnName, options.BatchSize, Path.GetFullPath(path), kind);
    }

    internal static AttentionImageFeaturizerTransformer FromClassifier(IHostEnvironment env, ImageClassifierModel classifier,
        string outputColumnName, string? inputColumnName, int batchSize, ImageInputKind? kind = null)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        ObjectDisposedException.ThrowIf(classifier.IsDisposed, classifier);
        var config = classifier.Config with { Classes = 1, Dropout = 0 };
        return Build(env, config, network =>
        {
            // A copy of every backbone tensor except the head: the featurizer and the classifier stay independent.
            string head = "backbone." + network.HeadPrefix;
            var source = classifier.Network.state_dict();
            using var noGrad = no_grad();
            foreach (var (name, target) in network.state_dict())
            {
                if (name.StartsWith(head, StringComparison.Ordinal)) continue;
                if (!source.TryGetValue(name, out var from) || !from.shape.SequenceEqual(target.shape))
                    throw new InvalidOperationException($"{ComponentName}: the classifier's network has no tensor '{name}' of " +
                                                        $"shape [{string.Join(", ", target.shape)}]; it is not an image classifier of {Describe(config)}.");
                target.copy_(from);
            }
        }, inputColumnName ?? classifier.InputColumns[0].Name, outputColumnName, batchSize, nameof(ImageClassifierModel),
            kind ?? classifier.InputKind);
    }

    private static AttentionImageFeaturizerTransformer Build(IHostEnvironment env, ImageClassifierConfig config,
        Action<ImageClassifierNetwork> loadWeights, string input, string output, int batchSize, string source, ImageInputKind kind)
    {
        TorchRuntime.EnsureLoaded();
        var network = new ImageClassifierNetwork(config);
        try
        {
            loadWeights(network);
            var (gpu, fallback) = HostSettings.GpuSettings(env);
            var device = TorchRuntime.ResolveDevice(gpu, fallback);
            network.to(device);
            return new AttentionImageFeaturizerTransformer(env, network, device, input, output, batchSize, source, kind);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    private static string Describe(ImageClassifierConfig c) =>
        c.Backbone == ImageBackbone.ResNet18
            ? $"ResNet-18 with {c.Attention} attention ({c.Channels} channels)"
            : $"{c.Backbone} with {c.Attention} attention (width {c.WidthMultiplier}, {c.Channels} channels)";

    /// <inheritdoc/>
    protected override void SavePayload(BinaryWriter writer)
    {
        writer.Write(PayloadVersion);
        writer.Write(InputColumns[0].Name);
        writer.Write(OutputColumns[0].Name);
        writer.Write(BatchSize);
        writer.Write(WeightsSource);
        writer.Write((int)InputKind);
        ConfigPersistence.WriteConfig(writer, Config);
        TorchModelPersistence.WriteModule(writer, _network);
    }

    /// <summary>Reads a featurizer written by <see cref="SavePayload"/>; called by the persistence bridge.</summary>
    public static AttentionImageFeaturizerTransformer Load(IHostEnvironment env, BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version is < 1 or > PayloadVersion)
            throw new InvalidDataException($"This image featurizer was saved with format {version}; this MLNet.Attention reads " +
                $"formats 1 to {PayloadVersion}. Load it with the MLNet.Attention version that saved it.");
        string input = reader.ReadString();
        string output = reader.ReadString();
        int batchSize = reader.ReadInt32();
        string source = reader.ReadString();
        var kind = ImageInputKind.PixelVector;
        if (version >= 2)
        {
            int k = reader.ReadInt32();
            kind = Enum.IsDefined((ImageInputKind)k) ? (ImageInputKind)k
                : throw new InvalidDataException($"Corrupted image featurizer: unknown input kind {k}.");
        }
        var config = ConfigPersistence.ReadConfig<ImageClassifierConfig>(reader);
        if (batchSize < 1 || config.Classes < 1)
            throw new InvalidDataException("Corrupted image featurizer: batch size or class count out of range.");
        return Build(env, config, network => TorchModelPersistence.ReadModule(reader, network), input, output, batchSize, source, kind);
    }
}
