using Microsoft.ML.SearchSpace;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using MLNet.Attention.Runtime;
using MLNet.Attention.Vision;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Classification;

/// <summary>The CNN an <see cref="ImageClassifierTrainer"/> trains.</summary>
public enum ImageBackbone
{
    /// <summary>MobileNetV2 (with a CIFAR stem for small images, see <see cref="ImageClassifierOptions.CifarStem"/>).</summary>
    MobileNetV2,
    /// <summary>The CIFAR ResNet-18 (3×3 stem, no max-pool).</summary>
    ResNet18,
    /// <summary>MobileNet V1 (the ULSAM paper's backbone; stride-2 stem, 13 depthwise-separable layers). Attention:
    /// <see cref="ImageAttention.None"/> or <see cref="ImageAttention.Ulsam"/> (replacing the last of the five repeated
    /// 512-channel layers, the paper's 14 × 14 setting); ELA has no official MobileNet V1 placement.</summary>
    MobileNetV1,
}

/// <summary>What the feature column of an image classifier holds (detected from its type when training).</summary>
public enum ImageInputKind
{
    /// <summary>CHW float pixels, <c>Vector&lt;Single, C·H·W&gt;</c> (<c>LoadImages → ResizeImages → ExtractPixels</c>).</summary>
    PixelVector,
    /// <summary>An ML.NET <c>Image</c> column (<c>LoadImages</c>, optionally <c>ResizeImages</c>); resized inside when
    /// its size differs.</summary>
    Image,
    /// <summary>Encoded bytes, <c>Vector&lt;Byte&gt;</c> (<c>LoadRawImageBytes</c>): decoded and resized inside, as
    /// ML.NET's own <c>ImageClassificationTrainer</c> takes them.</summary>
    EncodedBytes,
}

/// <summary>The attention inside the backbone.</summary>
public enum ImageAttention
{
    /// <summary>No attention (the baseline).</summary>
    None,
    /// <summary>ELA-T (kernel 5, GroupNorm 32).</summary>
    ElaT,
    /// <summary>ELA-B (kernel 7, GroupNorm 16).</summary>
    ElaB,
    /// <summary>ELA-S (kernel 5, grouped conv, GroupNorm 16).</summary>
    ElaS,
    /// <summary>ELA-L (kernel 7, grouped conv, GroupNorm 16; the official MobileNetV2 model).</summary>
    ElaL,
    /// <summary>ULSAM with <see cref="ImageClassifierOptions.UlsamSubspaces"/> subspaces: in MobileNetV2 replacing the
    /// block at features.12, in MobileNet V1 replacing layer 10 (both the paper's 14 × 14 placement).</summary>
    Ulsam,
}

/// <summary>
/// Options of the image classifier. The feature column may hold encoded image bytes (<c>LoadRawImageBytes</c>, as for
/// ML.NET's <c>ImageClassificationTrainer</c>), ML.NET images (<c>LoadImages</c>) or CHW float pixels
/// (<c>ExtractPixels</c>); see <see cref="ImageInputKind"/>. Images are decoded and resized to
/// <see cref="ImageHeight"/> × <see cref="ImageWidth"/> inside; pixels are scaled by <see cref="PixelScale"/> and
/// normalised with <see cref="Mean"/> / <see cref="Std"/> inside the model, so scoring needs the same pipeline and
/// nothing else.
/// </summary>
public sealed class ImageClassifierOptions : TorchClassifierOptions, IImageNetworkOptions
{
    /// <summary>The image column: encoded bytes (Vector&lt;Byte&gt;), an Image, or Vector&lt;Single, Channels × Height ×
    /// Width&gt; in CHW order.</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>Image height the network sees (images are resized to it; a pixel vector must already have it).</summary>
    public int ImageHeight { get; set; } = 32;

    /// <summary>Image width the network sees (images are resized to it; a pixel vector must already have it).</summary>
    public int ImageWidth { get; set; } = 32;

    /// <summary>Name of an extra output column with the attention map of the deepest ELA/ULSAM block, resized to
    /// <see cref="ImageHeight"/> × <see cref="ImageWidth"/> (Vector&lt;Single, H, W&gt;, see
    /// <see cref="CapturedAttentionMaps.SpatialMap"/>); null (the default) for none. Write it over the image with
    /// <see cref="AttentionOverlay"/>.</summary>
    public string? AttentionMapColumnName { get; set; }

    /// <summary>Channels: 3 for RGB, 1 for grey-scale.</summary>
    public int Channels { get; set; } = 3;

    /// <summary>The backbone.</summary>
    public ImageBackbone Backbone { get; set; } = ImageBackbone.MobileNetV2;

    /// <summary>The attention in the backbone (official placements).</summary>
    [Choice(new object[] { ImageAttention.None, ImageAttention.ElaT, ImageAttention.ElaB, ImageAttention.ElaS, ImageAttention.ElaL, ImageAttention.Ulsam })]
    public ImageAttention Attention { get; set; } = ImageAttention.ElaL;

    /// <summary>ULSAM subspaces g (must divide the replaced block's width).</summary>
    public int UlsamSubspaces { get; set; } = 4;

    /// <summary>MobileNetV2 width multiplier α.</summary>
    [Range(0.25, 1.0)]
    public double WidthMultiplier { get; set; } = 1.0;

    /// <summary>Dropout before the classifier (MobileNetV2).</summary>
    [Range(0.0, 0.3)]
    public double Dropout { get; set; } = 0.1;

    /// <summary>MobileNetV2's CIFAR adaptation (stride 1 in the stem and the first 24-channel stage); null: on for
    /// images of at most 64 pixels a side.</summary>
    public bool? CifarStem { get; set; }

    /// <summary>Factor applied to the pixel values first (1/255 for ExtractPixels' default 0–255 output).</summary>
    public float PixelScale { get; set; } = 1f / 255;

    /// <summary>Per-channel mean subtracted after scaling (ImageNet's by default).</summary>
    public float[] Mean { get; set; } = { 0.485f, 0.456f, 0.406f };

    /// <summary>Per-channel standard deviation divided by after the mean (ImageNet's by default).</summary>
    public float[] Std { get; set; } = { 0.229f, 0.224f, 0.225f };

    /// <summary>Train-only random crop after zero-padding by this many pixels (CIFAR's 4); 0 = none.</summary>
    public int RandomCropPadding { get; set; } = 4;

    /// <summary>Train-only random horizontal flip (probability 0.5).</summary>
    public bool RandomHorizontalFlip { get; set; } = true;

    /// <summary>Options with the image classifier's defaults; BatchNorm statistics are recomputed over 50 training
    /// batches after training (<see cref="Engine.TorchTrainerOptions.BatchNormRecalibrationBatches"/>).</summary>
    public ImageClassifierOptions() => BatchNormRecalibrationBatches = 50;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        ImageNetworkOptions.Validate(this);
        if (RandomCropPadding < 0) throw new ArgumentOutOfRangeException(nameof(RandomCropPadding), RandomCropPadding, "RandomCropPadding cannot be negative.");
        if (AttentionMapColumnName is not null && Attention == ImageAttention.None)
            throw new ArgumentOutOfRangeException(nameof(AttentionMapColumnName), AttentionMapColumnName, "An attention map needs an attention block; set Attention to an ELA variant or Ulsam, or AttentionMapColumnName = null.");
    }

    internal ImageClassifierConfig ToConfig(int classes) => ImageNetworkOptions.ToConfig(this, Dropout, classes);
}

/// <summary>Everything needed to rebuild an image classifier's network (persisted with the weights).</summary>
public sealed record ImageClassifierConfig(ImageBackbone Backbone, ImageAttention Attention, int UlsamSubspaces,
    double WidthMultiplier, double Dropout, bool CifarStem, int Channels, int Height, int Width, float PixelScale,
    float[] Mean, float[] Std, int Classes)
{
    internal ImageClassifierNetwork Create() => new(this);
}

/// <summary>Pixel normalisation + backbone: [B, C·H·W] (CHW, raw pixels) → logits [B, classes].</summary>
public sealed class ImageClassifierNetwork : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> backbone;
    private readonly ImageClassifierConfig _config;
    private readonly Tensor _scale, _shift;

    /// <summary>Builds the network for <paramref name="config"/>.</summary>
    public ImageClassifierNetwork(ImageClassifierConfig config) : base(nameof(ImageClassifierNetwork))
    {
        _config = config;
        backbone = config.Backbone switch
        {
            ImageBackbone.ResNet18 => config.Attention == ImageAttention.None
                ? new ResNet(config.Classes, inputChannels: config.Channels)
                : ResNet.ResNet18WithEla(Ela(config.Attention), config.Classes, config.Channels),
            ImageBackbone.MobileNetV1 => new MobileNetV1(config.Classes, config.WidthMultiplier,
                config.Attention == ImageAttention.Ulsam ? UlsamPlacement.ReplacingRepeated512(config.UlsamSubspaces) : null,
                config.Channels),
            _ => config.Attention switch
            {
                ImageAttention.None => new MobileNetV2(config.Classes, config.WidthMultiplier, config.Dropout, inputChannels: config.Channels, cifarStem: config.CifarStem),
                ImageAttention.Ulsam => MobileNetV2.WithUlsam(new[] { 12 }, config.UlsamSubspaces, config.Classes, config.WidthMultiplier, config.Dropout, config.Channels, config.CifarStem),
                _ => MobileNetV2.WithEla(Ela(config.Attention), config.Classes, config.WidthMultiplier, config.Dropout, config.Channels, config.CifarStem),
            },
        };
        // (x·s − μ)/σ folded into one multiply-add per channel, as constants outside the state dict.
        _scale = tensor(config.Std.Select(s => config.PixelScale / s).ToArray()).view(1, config.Channels, 1, 1).DetachFromDisposeScope();
        _shift = tensor(config.Mean.Zip(config.Std, (m, s) => -m / s).ToArray()).view(1, config.Channels, 1, 1).DetachFromDisposeScope();
        RegisterComponents();
    }

    private static ElaVariant Ela(ImageAttention a) => a switch
    {
        ImageAttention.ElaT => ElaVariant.T,
        ImageAttention.ElaB => ElaVariant.B,
        ImageAttention.ElaS => ElaVariant.S,
        _ => ElaVariant.L,
    };

    /// <summary>The configuration the network was built from.</summary>
    public ImageClassifierConfig Config => _config;

    /// <summary>The backbone (MobileNetV2 or ResNet), with its reference state-dict names under <c>backbone.</c>.</summary>
    public nn.Module<Tensor, Tensor> Backbone => backbone;

    /// <summary>The state-dict prefix of the backbone's classifier head (<c>classifier.</c> for MobileNetV2, <c>fc.</c>
    /// for ResNet), relative to <see cref="Backbone"/>.</summary>
    public string HeadPrefix => backbone is ResNet ? "fc." : "classifier.";

    /// <summary>Width of the pooled feature vector in front of the head (MobileNetV2: 1280, or more for α &gt; 1;
    /// ResNet-18: 512; MobileNet V1: 1024·α).</summary>
    public int FeatureWidth => backbone switch
    {
        MobileNetV2 m => m.FeatureWidth,
        ResNet r => r.FeatureWidth,
        MobileNetV1 v => v.FeatureChannels,
        _ => throw new InvalidOperationException($"Unknown backbone {backbone.GetType().Name}."),
    };

    /// <inheritdoc/>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return backbone.call(Normalise(pixels)).MoveToOuterDisposeScope();
    }

    /// <summary>The backbone's globally pooled features, the head's input: [B, C·H·W] (CHW, raw pixels) →
    /// [B, <see cref="FeatureWidth"/>].</summary>
    public Tensor ForwardFeatures(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = Normalise(pixels);
        var features = backbone switch
        {
            MobileNetV2 m => m.ForwardFeatures(x),
            ResNet r => r.ForwardFeatures(x),
            MobileNetV1 v => v.Features(x).mean(new long[] { 2, 3 }),
            _ => throw new InvalidOperationException($"Unknown backbone {backbone.GetType().Name}."),
        };
        return features.MoveToOuterDisposeScope();
    }

    /// <summary>Logits and the attention map of the deepest ELA/ULSAM block for each image, resized to the input size:
    /// [B, C·H·W] → ([B, classes], [B, H, W]). Without attention blocks the map is all zeros.</summary>
    public (Tensor Logits, Tensor Map) ForwardWithAttentionMap(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        using var capture = new AttentionMapCapture();
        var logits = forward(pixels);
        var map = capture.Maps.Count == 0
            ? zeros(pixels.size(0), _config.Height, _config.Width, device: pixels.device)
            : capture.Maps[^1].SpatialMap(_config.Height, _config.Width);
        return (logits.MoveToOuterDisposeScope(), map.MoveToOuterDisposeScope());
    }

    /// <summary>An evaluation-mode copy for scoring, on <paramref name="device"/>, with every batch norm folded into
    /// the convolution in front of it (one pass less over each activation; same outputs within float rounding).
    /// It cannot be trained.</summary>
    internal ImageClassifierNetwork CreateInferenceCopy(Device device)
    {
        var copy = new ImageClassifierNetwork(_config);
        try
        {
            copy.to(device);
            copy.load_state_dict(state_dict());
            copy.eval();
            Layers.BatchNormFolding.Fold(copy);
            return copy;
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }

    private Tensor Normalise(Tensor pixels)
    {
        // Channels-last memory layout (NHWC strides, NCHW shape): libtorch's oneDNN convolutions keep it through the
        // whole network and its depthwise/pointwise kernels are faster so. Interleaved in one process, 32 × 32, batch
        // 64, 2 cores: MobileNetV2-0.35 eval 73 → 50 ms, training step 300 → 205 ms; + ULSAM 80 → 52 / 395 → 285;
        // + ELA-L and ResNet-18 + ELA-B equal within noise; MobileNet V1-0.5 training 110 → 50 ms. Same values.
        var x = pixels.view(pixels.size(0), _config.Channels, _config.Height, _config.Width)
            .permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        return x.mul(_scale.to(x.device)).add(_shift.to(x.device), TorchScalars.One);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) { _scale.Dispose(); _shift.Dispose(); }
        base.Dispose(disposing);
    }
}

/// <summary>
/// Trains an image classifier (MobileNetV2 or ResNet-18, with ELA, ULSAM or no attention) on
/// <c>mlContext.MulticlassClassification.Trainers.ImageClassifier(...)</c>: the pipelines ML.NET users know,
/// <c>LoadRawImageBytes → MapValueToKey → ours → MapKeyToValue</c> (as for ML.NET's ImageClassificationTrainer) or
/// <c>LoadImages → ResizeImages → ExtractPixels → MapValueToKey → ours → MapKeyToValue</c>.
/// </summary>
public sealed class ImageClassifierTrainer : IEstimator<ImageClassifierModel>
{
    internal const string Name = "ImageClassifier";
    private readonly IHostEnvironment _env;
    private readonly ImageClassifierOptions _options;

    internal ImageClassifierTrainer(IHostEnvironment env, ImageClassifierOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _options.Validate();
    }

    /// <summary>Trains on <paramref name="input"/>.</summary>
    public ImageClassifierModel Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var kind = DetectInput(input.Schema);
        var architecture = new Architecture(_options, kind);
        var (network, labels, device, summary) = ClassifierTraining.Train(_env, Name, _options, input, architecture);
        try
        {
            return new ImageClassifierModel(_env, network.Config, labels, network, device, _options.ScoringBatchSize,
                _options.FeatureColumnName, kind, _options.AttentionMapColumnName) { TrainingSummary = summary };
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    private const string InputHelp = "Use encoded bytes (mlContext.Transforms.LoadRawImageBytes), images " +
        "(mlContext.Transforms.LoadImages) or CHW float pixels (LoadImages → ResizeImages → ExtractPixels).";

    private ImageInputKind DetectInput(DataViewSchema schema)
    {
        var column = schema.GetColumnOrNull(_options.FeatureColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: image column '{_options.FeatureColumnName}' was not " +
                $"found. {InputHelp} Available columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}.");
        switch (column.Type)
        {
            case ImageDataViewType:
                return ImageInputKind.Image;
            case VectorDataViewType { ItemType: var item } when item == NumberDataViewType.Byte:
                return ImageInputKind.EncodedBytes;
            case VectorDataViewType { ItemType: var item } when item == NumberDataViewType.Single:
                CheckPixels(column);
                return ImageInputKind.PixelVector;
            default:
                throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: image column '{_options.FeatureColumnName}' has " +
                    $"type {column.Type}. {InputHelp}");
        }
    }

    private void CheckPixels(DataViewSchema.Column column)
    {
        int expected = _options.Channels * _options.ImageHeight * _options.ImageWidth;
        int size = ((VectorDataViewType)column.Type).Size;
        if (size != expected)
        {
            string hint = size == 0 ? "It has an unknown size: resize the images first (ResizeImages) so every image has the same size, " +
                    "or pass the Image column (LoadImages) itself, which the trainer resizes."
                : size * 3 == expected ? $"It holds {size} values: one channel where {_options.Channels} are expected (grey-scale images: set Channels = 1, or ExtractPixels with colors: ImagePixelExtractingEstimator.ColorBits.Rgb)."
                : size == expected * 3 ? $"It holds {size} values: three channels where one is expected (RGB images: set Channels = 3, or extract one channel)."
                : $"It holds {size} values; check ImageHeight/ImageWidth/Channels against ResizeImages and ExtractPixels.";
            throw new ArgumentOutOfRangeException("schema", $"{Name}: pixel column '{_options.FeatureColumnName}' should hold " +
                $"{_options.Channels} × {_options.ImageHeight} × {_options.ImageWidth} = {expected} values per image. {hint}");
        }
    }

    /// <summary>Checks the image and label columns and describes the outputs (Score, PredictedLabel, and the attention
    /// map when asked for).</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var result = inputSchema.ToDictionary(c => c.Name);
        if (!result.TryGetValue(_options.FeatureColumnName, out var pixels) ||
            !(pixels.ItemType is ImageDataViewType ||
              pixels.Kind != SchemaShape.Column.VectorKind.Scalar &&
              (pixels.ItemType == NumberDataViewType.Single || pixels.ItemType == NumberDataViewType.Byte)))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: image column '{_options.FeatureColumnName}' " +
                (pixels.Name is null ? "was not found. " : $"has item type {pixels.ItemType}. ") + InputHelp);
        if (!result.TryGetValue(_options.LabelColumnName, out var label) || !label.IsKey)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: label column '{_options.LabelColumnName}' must be a Key; " +
                $"add mlContext.Transforms.Conversion.MapValueToKey(\"{_options.LabelColumnName}\") before the trainer.");
        var output = ClassifierTraining.OutputSchema(inputSchema, binary: false);
        if (_options.AttentionMapColumnName is not { } map) return output;
        var columns = output.ToDictionary(c => c.Name);
        columns[map] = HostSettings.SchemaColumn(map, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single);
        return new SchemaShape(columns.Values);
    }

    internal static TorchInputColumn InputColumn(string name, ImageInputKind kind, int channels, int height, int width) => kind switch
    {
        ImageInputKind.Image => TorchInputColumn.Image(name, channels, height, width),
        ImageInputKind.EncodedBytes => TorchInputColumn.EncodedImage(name, channels, height, width),
        _ => TorchInputColumn.Single(name, channels * height * width),
    };

    private sealed class Architecture(ImageClassifierOptions options, ImageInputKind kind) : ClassifierArchitecture<ImageClassifierNetwork>
    {
        public override IReadOnlyList<TorchInputColumn> Inputs { get; } =
            new[] { InputColumn(options.FeatureColumnName, kind, options.Channels, options.ImageHeight, options.ImageWidth) };

        public override ImageClassifierNetwork CreateNetwork(int classes) => options.ToConfig(classes).Create();

        public override Tensor Logits(ImageClassifierNetwork network, Tensor?[] inputs, Device device) => network.call(inputs[0]!.to(device));

        public override Func<TrainingBatch, long, TrainingBatch>? Augmentation(int seed)
        {
            if (options.RandomCropPadding == 0 && !options.RandomHorizontalFlip) return null;
            var random = new Random(seed);
            int c = options.Channels, h = options.ImageHeight, w = options.ImageWidth, pad = options.RandomCropPadding;
            return (batch, _) =>
            {
                int n = batch.Rows;
                var x = batch.Inputs[0]!.view(n, c, h, w);
                if (pad > 0)
                {
                    var padded = nn.functional.pad(x, new long[] { pad, pad, pad, pad });
                    var crops = new Tensor[n];
                    for (int i = 0; i < n; i++)
                        crops[i] = padded[i].narrow(1, random.Next(2 * pad + 1), h).narrow(2, random.Next(2 * pad + 1), w);
                    x = stack(crops);
                }
                if (options.RandomHorizontalFlip)
                {
                    var flips = tensor(Enumerable.Range(0, n).Select(_ => random.Next(2) == 1).ToArray()).view(n, 1, 1, 1);
                    x = where(flips, x.flip(3), x);
                }
                return batch with { Inputs = new Tensor?[] { x.reshape(n, c * h * w) } };
            };
        }
    }
}

/// <summary>A trained image classifier: images (bytes, Image or pixels, as it was trained) in, <c>Score</c> and
/// <c>PredictedLabel</c> out (see <see cref="TorchClassifierModel"/>), and optionally an attention-map column.</summary>
public sealed class ImageClassifierModel : TorchClassifierModel
{
    // 1: pixel vectors only; 2: + input kind and attention-map column.
    private const int PayloadVersion = 2;

    internal ImageClassifierModel(IHostEnvironment env, ImageClassifierConfig config, ClassLabels labels, ImageClassifierNetwork network,
        Device device, int batchSize, string featureColumnName, ImageInputKind inputKind, string? attentionMapColumnName)
        : base(env, ImageClassifierTrainer.Name,
            new[] { ImageClassifierTrainer.InputColumn(featureColumnName, inputKind, config.Channels, config.Height, config.Width) },
            labels, network, device, batchSize,
            extraOutputs: attentionMapColumnName is null ? null : new[] { new TorchOutputColumn(attentionMapColumnName, config.Height, config.Width) })
    {
        Config = config;
        InputKind = inputKind;
        AttentionMapColumnName = attentionMapColumnName;
        _scoring = new Lazy<ImageClassifierNetwork>(() => network.CreateInferenceCopy(device),
            LazyThreadSafetyMode.ExecutionAndPublication);
    }

    private readonly Lazy<ImageClassifierNetwork> _scoring;

    /// <summary>The network's configuration.</summary>
    public ImageClassifierConfig Config { get; }

    /// <summary>What the feature column holds.</summary>
    public ImageInputKind InputKind { get; }

    /// <summary>The attention-map output column, or null.</summary>
    public string? AttentionMapColumnName { get; }

    /// <summary>Per-epoch history of the training run; null for a loaded model.</summary>
    public TrainingSummary? TrainingSummary { get; internal init; }

    /// <summary>The network (trainable, with its batch norms; scoring runs a copy of it with the batch norms folded
    /// into the convolutions, made at the first scored batch).</summary>
    public new ImageClassifierNetwork Network => (ImageClassifierNetwork)base.Network;

    private ImageClassifierNetwork Scoring => _scoring.Value;

    /// <inheritdoc/>
    protected override Tensor Logits(Tensor[] inputs) => Scoring.call(inputs[0].to(Device));

    /// <inheritdoc/>
    protected override (Tensor Logits, Tensor[] Extras) LogitsWithExtras(Tensor[] inputs)
    {
        if (AttentionMapColumnName is null) return base.LogitsWithExtras(inputs);
        var (logits, map) = Scoring.ForwardWithAttentionMap(inputs[0].to(Device));
        return (logits, new[] { map });
    }

    /// <inheritdoc/>
    protected override void DisposeModule()
    {
        if (_scoring.IsValueCreated) _scoring.Value.Dispose();
        base.DisposeModule();
    }

    /// <inheritdoc/>
    protected override void SavePayload(BinaryWriter writer)
    {
        writer.Write(PayloadVersion);
        writer.Write(InputColumns[0].Name);
        writer.Write((int)InputKind);
        writer.Write(AttentionMapColumnName ?? "");
        ConfigPersistence.WriteConfig(writer, Config);
        writer.Write(BatchSize);
        Labels.Write(writer);
        Network.save(writer);
    }

    /// <summary>Reads a model written by <see cref="SavePayload"/> (format 2, or format 1 of the first release);
    /// called by the persistence bridge.</summary>
    public static ImageClassifierModel Load(IHostEnvironment env, BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version is < 1 or > PayloadVersion)
            throw new InvalidDataException($"This image classifier was saved with format {version}; this MLNet.Attention reads formats " +
                $"1 to {PayloadVersion}. Load it with the MLNet.Attention version that saved it, or retrain.");
        string feature = reader.ReadString();
        var kind = ImageInputKind.PixelVector;
        string? map = null;
        if (version >= 2)
        {
            int k = reader.ReadInt32();
            if (!Enum.IsDefined((ImageInputKind)k))
                throw new InvalidDataException($"Corrupted image classifier: unknown input kind {k}.");
            kind = (ImageInputKind)k;
            map = reader.ReadString() is { Length: > 0 } name ? name : null;
        }
        var config = ConfigPersistence.ReadConfig<ImageClassifierConfig>(reader);
        int batchSize = reader.ReadInt32();
        var labels = ClassLabels.Read(reader);
        if (labels.Count != config.Classes || batchSize < 1)
            throw new InvalidDataException("Corrupted image classifier: class count or scoring batch size out of range.");
        return LoadNetwork(env, reader, config.Create, (network, device) =>
            new ImageClassifierModel(env, config, labels, network, device, batchSize, feature, kind, map));
    }
}
