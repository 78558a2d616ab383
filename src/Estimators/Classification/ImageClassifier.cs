using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using MLNet.Attention.Runtime;
using MLNet.Attention.Vision;
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
    /// <summary>ULSAM with <see cref="ImageClassifierOptions.UlsamSubspaces"/> subspaces (MobileNetV2 only: the block at
    /// features.12, the paper's 14 × 14 placement).</summary>
    Ulsam,
}

/// <summary>
/// Options of the image classifier. Input: a CHW float vector per image, as ML.NET's <c>ExtractPixels</c> writes it
/// (<c>LoadImages → ResizeImages → ExtractPixels</c>); pixels are scaled by <see cref="PixelScale"/> and normalised with
/// <see cref="Mean"/> / <see cref="Std"/> inside the model, so scoring needs the same pipeline and nothing else.
/// </summary>
public sealed class ImageClassifierOptions : TorchClassifierOptions
{
    /// <summary>The pixel column: Vector&lt;Single, Channels × Height × Width&gt; in CHW order.</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>Image height (after ResizeImages).</summary>
    public int ImageHeight { get; set; } = 32;

    /// <summary>Image width (after ResizeImages).</summary>
    public int ImageWidth { get; set; } = 32;

    /// <summary>Channels: 3 for RGB, 1 for grey-scale.</summary>
    public int Channels { get; set; } = 3;

    /// <summary>The backbone.</summary>
    public ImageBackbone Backbone { get; set; } = ImageBackbone.MobileNetV2;

    /// <summary>The attention in the backbone (official placements).</summary>
    public ImageAttention Attention { get; set; } = ImageAttention.ElaL;

    /// <summary>ULSAM subspaces g (must divide the replaced block's width).</summary>
    public int UlsamSubspaces { get; set; } = 4;

    /// <summary>MobileNetV2 width multiplier α.</summary>
    public double WidthMultiplier { get; set; } = 1.0;

    /// <summary>Dropout before the classifier (MobileNetV2).</summary>
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

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (ImageHeight < 8 || ImageWidth < 8) throw new ArgumentOutOfRangeException(nameof(ImageHeight), $"{ImageHeight} × {ImageWidth}", "Images must be at least 8 × 8 pixels.");
        if (Channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(Channels), Channels, "Channels must be 3 (RGB) or 1 (grey-scale).");
        if (Mean is null || Std is null || Mean.Length != Channels || Std.Length != Channels)
            throw new ArgumentOutOfRangeException(nameof(Mean), $"Mean and Std need one value per channel ({Channels}); for grey-scale use e.g. Mean = {{ 0.5f }}, Std = {{ 0.5f }}.");
        if (Std.Any(s => !(s > 0))) throw new ArgumentOutOfRangeException(nameof(Std), "Every Std value must be positive.");
        if (!(PixelScale > 0)) throw new ArgumentOutOfRangeException(nameof(PixelScale), PixelScale, "PixelScale must be positive (1/255 for 0–255 pixels).");
        if (RandomCropPadding < 0) throw new ArgumentOutOfRangeException(nameof(RandomCropPadding), RandomCropPadding, "RandomCropPadding cannot be negative.");
        if (!(WidthMultiplier > 0)) throw new ArgumentOutOfRangeException(nameof(WidthMultiplier), WidthMultiplier, "WidthMultiplier must be positive.");
        if (Attention == ImageAttention.Ulsam && Backbone != ImageBackbone.MobileNetV2)
            throw new ArgumentOutOfRangeException(nameof(Attention), Attention, "ULSAM is placed in MobileNetV2 here; choose Backbone = MobileNetV2 or an ELA variant.");
        if (!Enum.IsDefined(Backbone)) throw new ArgumentOutOfRangeException(nameof(Backbone), Backbone, "Unknown backbone.");
        if (!Enum.IsDefined(Attention)) throw new ArgumentOutOfRangeException(nameof(Attention), Attention, "Unknown attention.");
    }

    internal ImageClassifierConfig ToConfig(int classes) => new(Backbone, Attention, UlsamSubspaces, WidthMultiplier, Dropout,
        CifarStem ?? Math.Max(ImageHeight, ImageWidth) <= 64, Channels, ImageHeight, ImageWidth, PixelScale, Mean.ToArray(),
        Std.ToArray(), classes);
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
    /// ResNet-18: 512).</summary>
    public int FeatureWidth => backbone switch
    {
        MobileNetV2 m => m.FeatureWidth,
        ResNet r => r.FeatureWidth,
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
            _ => throw new InvalidOperationException($"Unknown backbone {backbone.GetType().Name}."),
        };
        return features.MoveToOuterDisposeScope();
    }

    private Tensor Normalise(Tensor pixels)
    {
        var x = pixels.view(pixels.size(0), _config.Channels, _config.Height, _config.Width);
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
/// <c>mlContext.MulticlassClassification.Trainers.ImageClassifier(...)</c>: the pipeline ML.NET users know,
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
        CheckPixels(input.Schema);
        var architecture = new Architecture(_options);
        var (network, labels, device, summary) = ClassifierTraining.Train(_env, Name, _options, input, architecture);
        return new ImageClassifierModel(_env, network.Config, labels, network, device, _options.ScoringBatchSize,
            _options.FeatureColumnName) { TrainingSummary = summary };
    }

    private void CheckPixels(DataViewSchema schema)
    {
        int expected = _options.Channels * _options.ImageHeight * _options.ImageWidth;
        var column = schema.GetColumnOrNull(_options.FeatureColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: pixel column '{_options.FeatureColumnName}' was not found. " +
                "Build it with mlContext.Transforms.LoadImages → ResizeImages → ExtractPixels (CHW, the default order).");
        if (column.Type is not VectorDataViewType { ItemType: var item, Size: var size } || item != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: pixel column '{_options.FeatureColumnName}' has type {column.Type}; " +
                $"expected Vector<Single, {expected}> (ExtractPixels output). An Image column must go through ExtractPixels first.");
        if (size != expected)
        {
            string hint = size == 0 ? "It has an unknown size: resize the images first (ResizeImages) so every image has the same size."
                : size * 3 == expected ? $"It holds {size} values: one channel where {_options.Channels} are expected (grey-scale images: set Channels = 1, or ExtractPixels with colors: ImagePixelExtractingEstimator.ColorBits.Rgb)."
                : size == expected * 3 ? $"It holds {size} values: three channels where one is expected (RGB images: set Channels = 3, or extract one channel)."
                : $"It holds {size} values; check ImageHeight/ImageWidth/Channels against ResizeImages and ExtractPixels.";
            throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: pixel column '{_options.FeatureColumnName}' should hold " +
                $"{_options.Channels} × {_options.ImageHeight} × {_options.ImageWidth} = {expected} values per image. {hint}");
        }
    }

    /// <summary>Checks the pixel and label columns and describes the outputs (Score, PredictedLabel).</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var result = inputSchema.ToDictionary(c => c.Name);
        if (!result.TryGetValue(_options.FeatureColumnName, out var pixels) || pixels.Kind == SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: pixel column '{_options.FeatureColumnName}' must be a float vector (ExtractPixels).");
        if (!result.TryGetValue(_options.LabelColumnName, out var label) || !label.IsKey)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: label column '{_options.LabelColumnName}' must be a Key; " +
                $"add mlContext.Transforms.Conversion.MapValueToKey(\"{_options.LabelColumnName}\") before the trainer.");
        return ClassifierTraining.OutputSchema(inputSchema, binary: false);
    }

    private sealed class Architecture(ImageClassifierOptions options) : ClassifierArchitecture<ImageClassifierNetwork>
    {
        public override IReadOnlyList<TorchInputColumn> Inputs { get; } =
            new[] { TorchInputColumn.Single(options.FeatureColumnName, options.Channels * options.ImageHeight * options.ImageWidth) };

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

/// <summary>A trained image classifier: pixels in, <c>Score</c> and <c>PredictedLabel</c> out (see
/// <see cref="TorchClassifierModel"/>).</summary>
public sealed class ImageClassifierModel : TorchClassifierModel
{
    private const int PayloadVersion = 1;

    internal ImageClassifierModel(IHostEnvironment env, ImageClassifierConfig config, ClassLabels labels, ImageClassifierNetwork network,
        Device device, int batchSize, string featureColumnName)
        : base(env, ImageClassifierTrainer.Name, new[] { TorchInputColumn.Single(featureColumnName, config.Channels * config.Height * config.Width) },
            labels, network, device, batchSize)
    {
        Config = config;
    }

    /// <summary>The network's configuration.</summary>
    public ImageClassifierConfig Config { get; }

    /// <summary>Per-epoch history of the training run; null for a loaded model.</summary>
    public TrainingSummary? TrainingSummary { get; internal init; }

    /// <summary>The network.</summary>
    public new ImageClassifierNetwork Network => (ImageClassifierNetwork)base.Network;

    /// <inheritdoc/>
    protected override Tensor Logits(Tensor[] inputs) => Network.call(inputs[0].to(Device));

    /// <inheritdoc/>
    protected override void SavePayload(BinaryWriter writer)
    {
        writer.Write(PayloadVersion);
        writer.Write(InputColumns[0].Name);
        ConfigPersistence.WriteConfig(writer, Config);
        writer.Write(BatchSize);
        Labels.Write(writer);
        Network.save(writer);
    }

    /// <summary>Reads a model written by <see cref="SavePayload"/>; called by the persistence bridge.</summary>
    public static ImageClassifierModel Load(IHostEnvironment env, BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version != PayloadVersion)
            throw new InvalidDataException($"This image classifier was saved with format {version}; this MLNet.Attention reads format " +
                $"{PayloadVersion}. Load it with the MLNet.Attention version that saved it, or retrain.");
        string feature = reader.ReadString();
        var config = ConfigPersistence.ReadConfig<ImageClassifierConfig>(reader);
        int batchSize = reader.ReadInt32();
        var labels = ClassLabels.Read(reader);
        if (labels.Count != config.Classes || batchSize < 1)
            throw new InvalidDataException("Corrupted image classifier: class count or scoring batch size out of range.");
        return LoadNetwork(env, reader, config.Create, (network, device) =>
            new ImageClassifierModel(env, config, labels, network, device, batchSize, feature));
    }
}
