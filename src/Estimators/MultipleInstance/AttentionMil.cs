using Microsoft.ML.SearchSpace;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Classification;
using MLNet.Attention.Data;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using TorchSharp;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.MultipleInstance;

/// <summary>The bag classifier network of <see cref="AttentionMilTrainer"/>.</summary>
public enum MilArchitecture
{
    /// <summary>Gated-attention MIL (ABMIL, Ilse et al. 2018): Linear + ReLU, gated attention pooling, a linear
    /// classifier; cross-entropy on the bag logits.</summary>
    GatedAttention,

    /// <summary>ACMIL (Zhang et al. 2024): <see cref="AttentionMilOptions.Branches"/> attention branches with their own
    /// classifiers, stochastic top-K instance masking in training, and its three losses (branch, bag, diversity).</summary>
    Acmil,
}

/// <summary>What turns each instance into the vector the attention reads.</summary>
public enum MilInstanceEncoder
{
    /// <summary>The instances are feature vectors (e.g. CNN tile features): one Linear + ReLU to
    /// <see cref="AttentionMilOptions.InnerSize"/>.</summary>
    None,

    /// <summary>Each instance is an image (C×H×W values, channel-major then row-major; C from
    /// <see cref="AttentionMilOptions.InstanceImageHeight"/> and <see cref="AttentionMilOptions.InstanceImageWidth"/>)
    /// encoded by Ilse et al.'s LeNet (<see cref="LeNetInstanceEncoder"/>, output width
    /// <see cref="AttentionMilOptions.InnerSize"/>; 500 in the paper) trained end to end with the attention; the
    /// encoder's output goes to the attention directly, in place of the Linear + ReLU.</summary>
    LeNet,
}

/// <summary>
/// Options of the attention-MIL bag classifiers (<see cref="MilArchitecture.GatedAttention"/> and
/// <see cref="MilArchitecture.Acmil"/>). One row is a bag: <see cref="FeatureColumnName"/> holds its N instances × D
/// features (a variable-size <c>Vector&lt;Single&gt;</c>, from <c>GroupIntoBags</c> or <c>LoadFeatureBags</c>).
/// Defaults follow Ilse et al. (Adam, lr 5e-4, weight decay 1e-4, one bag per step).
/// </summary>
public sealed class AttentionMilOptions : TorchClassifierOptions
{
    /// <summary>The bag column: N × D instance features per row (instance-major).</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>Features per instance D when the bag column does not declare it (its InstanceSize annotation, set by
    /// GroupIntoBags and LoadFeatureBags); 0 = take it from the annotation.</summary>
    public int InstanceSize { get; set; }

    /// <summary>The network (ABMIL or ACMIL).</summary>
    public MilArchitecture Architecture { get; set; } = MilArchitecture.GatedAttention;

    /// <summary>Width after the first Linear + ReLU (ACMIL's D_inner; 256 suits 512-d ResNet-18 features); with
    /// <see cref="MilInstanceEncoder.LeNet"/> the encoder's output width (Ilse et al.'s L = 500).</summary>
    [Choice(new object[] { 128, 256, 512 })]
    public int InnerSize { get; set; } = 256;

    /// <summary>How instances are encoded before the attention: <see cref="MilInstanceEncoder.None"/> for feature
    /// vectors (the default), <see cref="MilInstanceEncoder.LeNet"/> for small images (MNIST-bags).</summary>
    public MilInstanceEncoder InstanceEncoder { get; set; } = MilInstanceEncoder.None;

    /// <summary>With <see cref="MilInstanceEncoder.LeNet"/>: the height H of an instance image (at least 16; 28 for
    /// MNIST). The channels are InstanceSize / (H·W).</summary>
    public int InstanceImageHeight { get; set; }

    /// <summary>With <see cref="MilInstanceEncoder.LeNet"/>: the width W of an instance image (at least 16).</summary>
    public int InstanceImageWidth { get; set; }

    /// <summary>Hidden width of the gated attention (128 in both references).</summary>
    [Choice(new object[] { 64, 128, 256 })]
    public int AttentionSize { get; set; } = 128;

    /// <summary>Dropout before the classifiers.</summary>
    [Range(0.0, 0.5)]
    public double Dropout { get; set; }

    /// <summary>ACMIL: attention branches M (the paper: 5).</summary>
    public int Branches { get; set; } = 5;

    /// <summary>ACMIL: top-K instances considered for masking (the paper: 10; 0 disables masking).</summary>
    public int TopK { get; set; } = 10;

    /// <summary>ACMIL: fraction p of the top-K instances masked in each training step (the paper: 0.6).</summary>
    public double MaskRatio { get; set; } = 0.6;

    /// <summary>Training only: a bag with more instances is replaced, at every step, by a random subset of this many
    /// (reproducible from the seed); 0 keeps every instance. Bounds memory and time on large slides.</summary>
    public int MaxInstancesPerBag { get; set; }

    /// <summary>Standardise each feature with the mean and standard deviation of the training instances (stored in the
    /// model and applied when scoring). On by default: Musk-style raw features need it; pretrained CNN features are
    /// unharmed. With an image encoder (<see cref="MilInstanceEncoder.LeNet"/>) one mean and one standard deviation
    /// over all training pixels is used instead (per-pixel statistics would erase what is constant in a position
    /// and amplify noise at the borders); turn it off for images that are normalised already.</summary>
    public bool StandardizeFeatures { get; set; } = true;

    /// <summary>Creates the options with Ilse et al.'s recipe: Adam-style lr 5e-4, weight decay 1e-4, one bag per step.</summary>
    public AttentionMilOptions()
    {
        BatchSize = 1;
        LearningRate = 5e-4;
        WeightDecay = 1e-4;
        MaxEpochs = 40;
        EarlyStoppingPatience = 10;
        ScoringBatchSize = 16;
        ShufflePoolSize = 64;   // bags held for shuffling: a pool of whole slides costs pool × bag size of memory
    }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (string.IsNullOrWhiteSpace(FeatureColumnName))
            throw new ArgumentOutOfRangeException(nameof(FeatureColumnName), FeatureColumnName, "FeatureColumnName must name the bag column.");
        if (!Enum.IsDefined(Architecture))
            throw new ArgumentOutOfRangeException(nameof(Architecture), Architecture, "Architecture must be GatedAttention or Acmil.");
        if (InstanceSize < 0)
            throw new ArgumentOutOfRangeException(nameof(InstanceSize), InstanceSize, "InstanceSize must be 0 (from the column's annotation) or positive.");
        if (MaxInstancesPerBag < 0)
            throw new ArgumentOutOfRangeException(nameof(MaxInstancesPerBag), MaxInstancesPerBag, "MaxInstancesPerBag must be 0 (keep all) or positive.");
        if (!Enum.IsDefined(InstanceEncoder))
            throw new ArgumentOutOfRangeException(nameof(InstanceEncoder), InstanceEncoder, "InstanceEncoder must be None or LeNet.");
        if (InstanceEncoder == MilInstanceEncoder.None && (InstanceImageHeight != 0 || InstanceImageWidth != 0))
            throw new ArgumentOutOfRangeException(InstanceImageHeight != 0 ? nameof(InstanceImageHeight) : nameof(InstanceImageWidth),
                "InstanceImageHeight and InstanceImageWidth describe image instances: set InstanceEncoder = LeNet, or leave them 0.");
        // The instance size is known here only when given; otherwise Fit checks the image shape against the column.
        Config(InstanceSize > 0 ? InstanceSize : Math.Max(1, InstanceImageHeight * InstanceImageWidth), 2).Validate();
    }

    internal AttentionMilConfig Config(int featureSize, int classes) => new(Architecture, featureSize, InnerSize, classes,
        AttentionSize, Dropout, Architecture == MilArchitecture.Acmil ? Branches : 1, TopK, MaskRatio, InstanceEncoder,
        InstanceImageHeight, InstanceImageWidth);
}

/// <summary>Hyper-parameters of a trained bag classifier (persisted with its weights).</summary>
/// <param name="Architecture">ABMIL or ACMIL.</param>
/// <param name="FeatureSize">Instance features D.</param>
/// <param name="InnerSize">Width after the first layer.</param>
/// <param name="Classes">Classes (2 for a binary classifier).</param>
/// <param name="AttentionSize">Gated attention hidden width.</param>
/// <param name="Dropout">Dropout before the classifiers.</param>
/// <param name="Branches">Attention branches (1 for ABMIL).</param>
/// <param name="TopK">ACMIL top-K.</param>
/// <param name="MaskRatio">ACMIL mask ratio.</param>
/// <param name="InstanceEncoder">The instance encoder (None for models saved before it existed).</param>
/// <param name="InstanceImageHeight">Instance image height H (LeNet encoder; 0 otherwise).</param>
/// <param name="InstanceImageWidth">Instance image width W (LeNet encoder; 0 otherwise).</param>
public sealed record AttentionMilConfig(MilArchitecture Architecture, int FeatureSize, int InnerSize, int Classes,
    int AttentionSize, double Dropout, int Branches, int TopK, double MaskRatio,
    MilInstanceEncoder InstanceEncoder = MilInstanceEncoder.None, int InstanceImageHeight = 0, int InstanceImageWidth = 0)
{
    /// <summary>Image channels C = FeatureSize / (H·W) with the LeNet encoder; 0 without an encoder.</summary>
    public int InstanceImageChannels => InstanceEncoder == MilInstanceEncoder.LeNet && InstanceImageHeight > 0 &&
                                        InstanceImageWidth > 0 ? FeatureSize / (InstanceImageHeight * InstanceImageWidth) : 0;

    /// <summary>Throws naming the first invalid value.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(InstanceEncoder))
            throw new ArgumentOutOfRangeException(nameof(InstanceEncoder), InstanceEncoder, "InstanceEncoder must be None or LeNet.");
        if (InstanceEncoder == MilInstanceEncoder.LeNet)
        {
            const int min = LeNetInstanceEncoder.MinimumImageSize;
            if (InstanceImageHeight < min)
                throw new ArgumentOutOfRangeException(nameof(InstanceImageHeight), InstanceImageHeight, "With InstanceEncoder = " +
                    $"LeNet, InstanceImageHeight must be the height of an instance image, at least {min} (two 5×5 convolutions " +
                    "and two 2×2 poolings), e.g. 28 for MNIST.");
            if (InstanceImageWidth < min)
                throw new ArgumentOutOfRangeException(nameof(InstanceImageWidth), InstanceImageWidth, "With InstanceEncoder = " +
                    $"LeNet, InstanceImageWidth must be the width of an instance image, at least {min}, e.g. 28 for MNIST.");
            int pixels = InstanceImageHeight * InstanceImageWidth;
            if (FeatureSize % pixels != 0)
                throw new ArgumentOutOfRangeException(nameof(InstanceImageHeight), InstanceImageHeight, $"InstanceImageHeight × " +
                    $"InstanceImageWidth = {InstanceImageHeight} × {InstanceImageWidth} = {pixels} pixels do not divide the " +
                    $"{FeatureSize} values of an instance (InstanceSize = channels × height × width). Set the image shape " +
                    "the bags were built with.");
        }
        if (Architecture == MilArchitecture.Acmil) Acmil().Validate();
        else GatedAttention().Validate();
    }

    /// <summary>Width of the instance vectors the MIL network reads: the encoder's output, else FeatureSize.</summary>
    internal int MilFeatureSize => InstanceEncoder == MilInstanceEncoder.LeNet ? InnerSize : FeatureSize;

    private bool Project => InstanceEncoder == MilInstanceEncoder.None;

    internal GatedAttentionMilConfig GatedAttention() => new(MilFeatureSize, InnerSize, Classes, AttentionSize, Dropout,
        ProjectInstances: Project);

    internal AcmilConfig Acmil() => new(MilFeatureSize, InnerSize, Classes, Branches, TopK, MaskRatio, AttentionSize, Dropout,
        ProjectInstances: Project);
}

/// <summary>
/// The bag network: per-feature standardisation (buffers <c>feature_mean</c>, <c>feature_std</c>), with
/// <see cref="MilInstanceEncoder.LeNet"/> a <see cref="LeNetInstanceEncoder"/> (submodule <c>encoder</c>: each
/// instance's D values are reshaped to a C×H×W image and encoded to InnerSize values), then a
/// <see cref="GatedAttentionMil"/> or an <see cref="MultipleInstance.Acmil"/> (submodule <c>mil</c>; with the encoder
/// it skips its own Linear + ReLU, so the network is Ilse et al.'s LeNet → gated attention).
/// </summary>
public sealed class AttentionMilNetwork : nn.Module
{
    private readonly nn.Module mil;
    private readonly LeNetInstanceEncoder? encoder;

    /// <summary>Builds the network with identity standardisation (mean 0, std 1).</summary>
    public AttentionMilNetwork(AttentionMilConfig config) : base(nameof(AttentionMilNetwork))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        mil = config.Architecture == MilArchitecture.Acmil ? new Acmil(config.Acmil()) : new GatedAttentionMil(config.GatedAttention());
        register_module("mil", mil);
        if (config.InstanceEncoder == MilInstanceEncoder.LeNet)
        {
            encoder = new LeNetInstanceEncoder(config.InstanceImageChannels, config.InstanceImageHeight,
                config.InstanceImageWidth, config.InnerSize);
            register_module("encoder", encoder);
        }
        register_buffer("feature_mean", zeros(config.FeatureSize));
        register_buffer("feature_std", ones(config.FeatureSize));
    }

    /// <summary>The hyper-parameters.</summary>
    public AttentionMilConfig Config { get; }

    /// <summary>Sets the standardisation statistics (per feature).</summary>
    public void SetStandardization(float[] mean, float[] std)
    {
        using var noGrad = no_grad();
        get_buffer("feature_mean")!.copy_(tensor(mean));
        get_buffer("feature_std")!.copy_(tensor(std));
        _identity = null;
    }

    /// <summary>Runs padded bags <c>[B, N_max, D]</c> with their mask <c>[B, N_max]</c>: bag logits <c>[B, C]</c>, bag
    /// attention <c>[B, N_max]</c>, per-branch attention <c>[B, N_max, M]</c> (ACMIL; null for ABMIL), and ACMIL's full
    /// output for its losses (null for ABMIL). Every tensor belongs to the caller's dispose scope.</summary>
    public (Tensor Logits, Tensor Attention, Tensor? BranchAttention, AcmilOutput? Acmil) Run(Tensor bags, Tensor mask) =>
        Forward(IsIdentity ? bags : bags.sub(get_buffer("feature_mean")!).div(get_buffer("feature_std")!), mask);

    private bool? _identity;

    /// <summary>True when the standardisation is the identity (StandardizeFeatures off): then it is skipped, a
    /// 100,000 × 1024 bag saves two passes over 400 MB.</summary>
    private bool IsIdentity => _identity ??= get_buffer("feature_mean")!.cpu().data<float>().ToArray().All(v => v == 0) &&
                                            get_buffer("feature_std")!.cpu().data<float>().ToArray().All(v => v == 1);

    /// <summary><see cref="Run"/> on a batch the caller owns and never reads again (the scorer's freshly padded
    /// batch, read by one forward pass): standardises it in place, so a 100,000-instance bag is not copied twice more.</summary>
    internal (Tensor Logits, Tensor Attention, Tensor? BranchAttention, AcmilOutput? Acmil) RunOwned(Tensor bags, Tensor mask) =>
        Forward(IsIdentity ? bags : bags.sub_(get_buffer("feature_mean")!).div_(get_buffer("feature_std")!), mask);

    private (Tensor Logits, Tensor Attention, Tensor? BranchAttention, AcmilOutput? Acmil) Forward(Tensor x, Tensor mask)
    {
        // Padded instances (zero images) are encoded too; the MIL network masks them out.
        if (encoder is not null) x = encoder.EncodeBags(x);
        if (mil is Acmil acmil)
        {
            var output = acmil.call(x, mask);
            return (output.SlideLogits, output.BagAttention, output.BranchAttention.transpose(1, 2), output);
        }
        var gated = ((GatedAttentionMil)mil).call(x, mask);
        return (gated.Logits, gated.Attention, null, null);
    }
}

/// <summary>
/// Trains an attention-MIL bag classifier (ABMIL or ACMIL) on the task-neutral engine: on
/// <c>mlContext.BinaryClassification.Trainers.AttentionMil(...)</c> / <c>.Acmil(...)</c> with a Boolean label (ML.NET's
/// binary columns) or on <c>mlContext.MulticlassClassification.Trainers</c> with a Key label; both add the per-instance
/// <c>Attention</c> column (and ACMIL's <c>BranchAttention</c>, M values per instance).
/// </summary>
public sealed class AttentionMilTrainer : IEstimator<AttentionMilModel>
{
    internal const string Name = "AttentionMil";
    private readonly IHostEnvironment _env;
    private readonly AttentionMilOptions _options;
    private readonly bool _binary;

    internal AttentionMilTrainer(IHostEnvironment env, AttentionMilOptions options, bool binary)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _options.Validate();
        _binary = binary;
    }

    /// <summary>Trains on the bags of <paramref name="input"/>; validation bags come from the options (a set, or a
    /// stratified fraction).</summary>
    public AttentionMilModel Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        int featureSize = FeatureSize(input.Schema);
        if (_binary) CheckBinaryLabel(input.Schema);
        _options.Config(featureSize, 2).Validate();   // the image shape against the column's instance size
        var (mean, std) = _options.StandardizeFeatures
            ? Statistics(input, featureSize, pooled: _options.InstanceEncoder != MilInstanceEncoder.None)
            : (null, null);
        var architecture = new Architecture(this, TorchInputColumn.Bag(_options.FeatureColumnName, featureSize), featureSize,
            mean, std);
        var (network, labels, device, summary) = ClassifierTraining.Train(_env, Name, _options, input, architecture);
        return new AttentionMilModel(_env, network, labels, device, _options.ScoringBatchSize, _options.FeatureColumnName,
            _binary) { TrainingSummary = summary };
    }

    /// <summary>Checks the bag and label columns and describes the outputs.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var byName = inputSchema.ToDictionary(c => c.Name);
        if (!byName.TryGetValue(_options.FeatureColumnName, out var feature) || feature.Kind == SchemaShape.Column.VectorKind.Scalar
            || feature.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: bag column '{_options.FeatureColumnName}' must be a " +
                "vector of Single (N instances x D features): build it with mlContext.Transforms.GroupIntoBags or " +
                "mlContext.Data.LoadFeatureBags.");
        bool booleanLabel = byName.TryGetValue(_options.LabelColumnName, out var label) && label.ItemType is BooleanDataViewType;
        if (!byName.ContainsKey(_options.LabelColumnName) || !label.IsKey && !(_binary && booleanLabel))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: label column '{_options.LabelColumnName}' must be " +
                (_binary ? "a Boolean (or a Key of two values)." : $"a Key; add mlContext.Transforms.Conversion.MapValueToKey(\"{_options.LabelColumnName}\") before the trainer."));
        var shape = ClassifierTraining.OutputSchema(inputSchema, _binary).ToDictionary(c => c.Name);
        var attention = HostSettings.SchemaColumn(AttentionMilModel.AttentionColumnName, SchemaShape.Column.VectorKind.VariableVector,
            NumberDataViewType.Single);
        shape[AttentionMilModel.AttentionColumnName] = attention;
        if (_options.Architecture == MilArchitecture.Acmil)
            shape[AttentionMilModel.BranchAttentionColumnName] = HostSettings.SchemaColumn(AttentionMilModel.BranchAttentionColumnName,
                SchemaShape.Column.VectorKind.VariableVector, NumberDataViewType.Single);
        return new SchemaShape(shape.Values);
    }

    private int FeatureSize(DataViewSchema schema)
    {
        var column = schema.GetColumnOrNull(_options.FeatureColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: bag column '{_options.FeatureColumnName}' was not found. " +
                $"Available columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}. Build one row " +
                "per bag with mlContext.Transforms.GroupIntoBags, or load feature files with mlContext.Data.LoadFeatureBags.");
        if (column.Type is not VectorDataViewType { ItemType: var item } || item != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: bag column '{_options.FeatureColumnName}' has type " +
                $"{column.Type}; expected a Vector<Single> of N instances x D features (GroupIntoBags, LoadFeatureBags).");
        bool declared = InstanceBags.TryGetInstanceSize(column, out int size);
        if (declared && _options.InstanceSize > 0 && size != _options.InstanceSize)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: bag column '{_options.FeatureColumnName}' declares " +
                $"{size} features per instance, but InstanceSize = {_options.InstanceSize}. Leave InstanceSize at 0.");
        if (!declared && _options.InstanceSize > 0) return _options.InstanceSize;
        if (!declared)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: bag column '{_options.FeatureColumnName}' does not say " +
                $"how many features one instance has (annotation '{InstanceBags.InstanceSizeName}'). Build the bags with " +
                "mlContext.Transforms.GroupIntoBags or mlContext.Data.LoadFeatureBags, which set it, or set " +
                "AttentionMilOptions.InstanceSize.");
        return size;
    }

    private void CheckBinaryLabel(DataViewSchema schema)
    {
        var label = schema.GetColumnOrNull(_options.LabelColumnName);
        if (label is { Type: not BooleanDataViewType } && ClassLabels.FromSchema(schema, _options.LabelColumnName, Name).Count != 2)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: a binary bag classifier needs a Boolean label column " +
                $"'{_options.LabelColumnName}' (or a Key with two values); it has type {label.Value.Type}. Use " +
                "mlContext.MulticlassClassification.Trainers for more classes.");
    }

    /// <summary>Per-feature mean and standard deviation over every training instance (one pass; std floor 1e-6, and 1
    /// for a constant feature, so scoring never divides by zero); <paramref name="pooled"/>: one mean and std over all
    /// values (images), repeated for every feature.</summary>
    private (float[] Mean, float[] Std) Statistics(IDataView data, int featureSize, bool pooled)
    {
        var column = data.Schema[_options.FeatureColumnName];
        var sum = new double[featureSize];
        var squares = new double[featureSize];
        long instances = 0;
        using (var cursor = SingleCursor.Open(data, new[] { column }))
        {
            var getter = cursor.GetGetter<VBuffer<float>>(column);
            VBuffer<float> bag = default;
            while (cursor.MoveNext())
            {
                getter(ref bag);
                var values = bag.DenseValues().ToArray();
                if (values.Length == 0 || values.Length % featureSize != 0) continue;   // reported when the batch is read
                for (int k = 0; k < values.Length; k++)
                {
                    double v = values[k];
                    sum[k % featureSize] += v;
                    squares[k % featureSize] += v * v;
                }
                instances += values.Length / featureSize;
            }
        }
        var mean = new float[featureSize];
        var std = new float[featureSize];
        if (pooled)   // one statistic over all pixels, broadcast to every feature
        {
            var (m, sd) = MeanStd(sum.Sum(), squares.Sum(), instances * featureSize);
            Array.Fill(mean, m);
            Array.Fill(std, sd);
        }
        else
        {
            for (int f = 0; f < featureSize; f++) (mean[f], std[f]) = MeanStd(sum[f], squares[f], instances);
        }
        return (mean, std);

        static (float Mean, float Std) MeanStd(double sum, double squares, long count)
        {
            double m = count == 0 ? 0 : sum / count;
            double variance = count == 0 ? 1 : Math.Max(0, squares / count - m * m);
            return ((float)m, variance < 1e-12 ? 1f : (float)Math.Max(Math.Sqrt(variance), 1e-6));
        }
    }

    private sealed class Architecture(AttentionMilTrainer trainer, TorchInputColumn bag, int featureSize, float[]? mean,
        float[]? std) : ClassifierArchitecture<AttentionMilNetwork>
    {
        public override IReadOnlyList<TorchInputColumn> Inputs { get; } = new[] { bag };

        public override AttentionMilNetwork CreateNetwork(int classes)
        {
            var network = new AttentionMilNetwork(trainer._options.Config(featureSize, classes));
            if (mean is not null) network.SetStandardization(mean, std!);
            return network;
        }

        public override Tensor Logits(AttentionMilNetwork network, Tensor?[] inputs, Device device) =>
            network.Run(inputs[0]!.to(device), inputs[1]!.to(device)).Logits;

        public override TrainingLoss Loss(AttentionMilNetwork network, TrainingBatch batch, Device device, Tensor? classWeights)
        {
            // Not in place: validation reads a batch twice (loss, then scores).
            var (logits, _, _, acmil) = network.Run(batch.Inputs[0]!.to(device), batch.Inputs[1]!.to(device));
            var target = batch.Target.to(device);
            if (acmil is null)
                return new TrainingLoss(nn.functional.cross_entropy(logits, target, classWeights));
            var losses = AcmilLosses.Compute(acmil, target);
            var slide = losses.Slide;
            var branch = losses.Branch;
            if (classWeights is not null)
            {
                // BalanceClasses: the class-weighted cross-entropies in place of the reference's unweighted ones.
                slide = nn.functional.cross_entropy(acmil.SlideLogits, target, classWeights);
                long m = acmil.BranchLogits.shape[1];
                if (m > 1)
                    branch = nn.functional.cross_entropy(acmil.BranchLogits.reshape(-1, acmil.BranchLogits.shape[2]),
                        target.repeat_interleave(m), classWeights);
            }
            var total = slide.add(branch, One).add(losses.Diversity, One);
            return new TrainingLoss(total, new[] { ("bag", slide), ("branch", branch), ("diversity", losses.Diversity) });
        }

        public override Func<TrainingBatch, long, TrainingBatch>? Augmentation(int seed)
        {
            int cap = trainer._options.MaxInstancesPerBag;
            if (cap == 0) return null;
            var random = new Random(seed);
            return (batch, _) => InstanceSampling.Sample(batch, cap, random);
        }
    }
}

/// <summary>Training-time instance sampling: bags larger than a cap become a random subset of that many instances.</summary>
internal static class InstanceSampling
{
    public static TrainingBatch Sample(TrainingBatch batch, int cap, Random random)
    {
        var bags = batch.Inputs[0]!;
        var mask = batch.Inputs[1]!;
        long rows = bags.shape[0], longest = bags.shape[1], features = bags.shape[2];
        if (longest <= cap) return batch;
        var counts = mask.to(ScalarType.Int64).sum(new long[] { 1 }).cpu().data<long>().ToArray();
        var index = new long[rows * cap];
        var keep = new bool[rows * cap];
        for (int b = 0; b < rows; b++)
        {
            int n = (int)counts[b];
            var picked = n <= cap ? Enumerable.Range(0, n).ToArray() : Choose(n, cap, random);
            for (int i = 0; i < picked.Length; i++)
            {
                index[b * cap + i] = picked[i];
                keep[b * cap + i] = true;
            }
        }
        var gatherIndex = tensor(index, new[] { rows, cap }, device: bags.device).unsqueeze(-1).expand(rows, cap, features);
        var sampled = bags.gather(1, gatherIndex);
        var sampledMask = tensor(keep, new[] { rows, (long)cap }, device: mask.device);
        var inputs = (Tensor?[])batch.Inputs.Clone();
        inputs[0] = sampled;
        inputs[1] = sampledMask;
        return batch with { Inputs = inputs };
    }

    /// <summary><paramref name="k"/> distinct indices of 0…n−1 in increasing order (partial Fisher–Yates).</summary>
    private static int[] Choose(int n, int k, Random random)
    {
        var all = Enumerable.Range(0, n).ToArray();
        for (int i = 0; i < k; i++)
        {
            int j = i + random.Next(n - i);
            (all[i], all[j]) = (all[j], all[i]);
        }
        var picked = all[..k];
        Array.Sort(picked);
        return picked;
    }
}

/// <summary>
/// A trained attention-MIL bag classifier: the bag column in; ML.NET's classifier columns out (binary: <c>Score</c>,
/// <c>Probability</c>, <c>PredictedLabel</c>; multiclass: <c>Score</c>, <c>PredictedLabel</c>) and the per-instance
/// <c>Attention</c> (N values per bag, summing to 1: the heatmap), plus ACMIL's <c>BranchAttention</c> (N × M values,
/// instance-major).
/// </summary>
public sealed class AttentionMilModel : TorchClassifierModel
{
    /// <summary>The per-instance attention column.</summary>
    public const string AttentionColumnName = "Attention";

    /// <summary>ACMIL's per-instance, per-branch attention column.</summary>
    public const string BranchAttentionColumnName = "BranchAttention";

    private const int PayloadVersion = 1;

    internal AttentionMilModel(IHostEnvironment env, AttentionMilNetwork network, ClassLabels labels, Device device,
        int batchSize, string featureColumnName, bool binary)
        : base(env, AttentionMilTrainer.Name, new[] { TorchInputColumn.Bag(featureColumnName, network.Config.FeatureSize) },
            labels, network, device, batchSize, binary, ExtraOutputs(network.Config, featureColumnName))
    {
    }

    private static TorchOutputColumn[] ExtraOutputs(AttentionMilConfig config, string bag) =>
        config.Architecture == MilArchitecture.Acmil
            ? new[] { TorchOutputColumn.PerInstance(AttentionColumnName, bag),
                      TorchOutputColumn.PerInstance(BranchAttentionColumnName, bag, config.Branches) }
            : new[] { TorchOutputColumn.PerInstance(AttentionColumnName, bag) };

    /// <summary>The network's hyper-parameters.</summary>
    public AttentionMilConfig Config => Network.Config;

    /// <summary>The trained network.</summary>
    public new AttentionMilNetwork Network => (AttentionMilNetwork)base.Network;

    /// <summary>Per-epoch history of the training run; null for a loaded model.</summary>
    public TrainingSummary? TrainingSummary { get; internal init; }

    /// <inheritdoc/>
    protected override Tensor Logits(Tensor[] inputs) => Network.RunOwned(inputs[0].to(Device), inputs[1].to(Device)).Logits;

    /// <inheritdoc/>
    protected override (Tensor Logits, Tensor[] Extras) LogitsWithExtras(Tensor[] inputs)
    {
        var (logits, attention, branches, _) = Network.RunOwned(inputs[0].to(Device), inputs[1].to(Device));
        return (logits, branches is null ? new[] { attention } : new[] { attention, branches.contiguous() });
    }

    /// <inheritdoc/>
    protected override void SavePayload(BinaryWriter writer)
    {
        writer.Write(PayloadVersion);
        writer.Write(InputColumns[0].Name);
        ConfigPersistence.WriteConfig(writer, Config);
        writer.Write(BatchSize);
        writer.Write(IsBinary);
        Labels.Write(writer);
        Network.save(writer);
    }

    /// <summary>Reads a model written by <see cref="SavePayload"/>; called by the persistence bridge.</summary>
    public static AttentionMilModel Load(IHostEnvironment env, BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version != PayloadVersion)
            throw new InvalidDataException($"This attention-MIL model was saved with format {version}; this MLNet.Attention " +
                $"reads format {PayloadVersion}. Load it with the MLNet.Attention version that saved it, or retrain.");
        string feature = reader.ReadString();
        var config = ConfigPersistence.ReadConfig<AttentionMilConfig>(reader);
        int batchSize = reader.ReadInt32();
        bool binary = reader.ReadBoolean();
        var labels = ClassLabels.Read(reader);
        if (labels.Count != config.Classes || batchSize < 1)
            throw new InvalidDataException("Corrupted attention-MIL model: class count or scoring batch size out of range.");
        return LoadNetwork(env, reader, () => new AttentionMilNetwork(config), (network, device) =>
            new AttentionMilModel(env, network, labels, device, batchSize, feature, binary));
    }
}
