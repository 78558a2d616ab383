using Microsoft.ML.SearchSpace;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Data;
using MLNet.Attention.Engine;
using MLNet.Attention.Interop;
using MLNet.Attention.Gaussian;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Classification;

/// <summary>
/// The head of the DAAM classifier trainer, over the same per-layer features <c>Vector&lt;Single, L, D&gt;</c>, so that
/// DAAM and its baselines train through the same trainer, engine and outputs (spec gaam.md §6: DAAM head vs linear
/// head vs MHA head).
/// </summary>
public enum ClassifierHead
{
    /// <summary>The paper's head (<see cref="DaamClassifier"/>): multi-head density-adaptive attention over the layers,
    /// two 3×3 convolutions over the h × w view of each layer's features, Linear(L·D → classes).</summary>
    Daam,

    /// <summary>A plain linear classifier on the flattened L·D features (<see cref="LinearLayerClassifier"/>).</summary>
    Linear,

    /// <summary>The paper's MHA baseline (<see cref="AttentionLayerClassifier"/>): a learned layer embedding, standard
    /// multi-head self-attention over the L layer tokens (residual), mean over the layers, Linear(D → classes).
    /// <see cref="DensityAdaptiveAttentionClassifierOptions.AttentionHeads"/> heads.</summary>
    MultiHeadAttention,
}

/// <summary>
/// Options of the DAAM classifier (the GAAM paper's head, spec gaam.md §5): per-layer features
/// <c>Vector&lt;Single, L, D&gt;</c> (or a plain feature vector, L = 1) → multi-head density-adaptive attention over the
/// features → two 3×3 convolutions over the h × w view of each layer's features → a linear layer.
/// </summary>
public sealed class DensityAdaptiveAttentionClassifierOptions : TorchClassifierOptions
{
    /// <summary>The feature column: a known-size float vector of L × D values (layer-major).</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>Encoder layers L stacked in the feature vector (1 for a plain feature vector).</summary>
    public int Layers { get; set; } = 1;

    /// <summary>Height h of the 2-D view of each layer's D features (h·w = D); 0 picks the most square factorisation.</summary>
    public int Height { get; set; }

    /// <summary>DAAM heads; must divide <see cref="Layers"/> (paper: 8, "DAAMv1"; 1, "DAAMv2").</summary>
    public int Heads { get; set; } = 1;

    /// <summary>Channels of the first convolution (paper: 512).</summary>
    [Choice(new object[] { 64, 128, 256, 512 })]
    public int Hidden { get; set; } = 512;

    /// <summary>Initial DAAM variance c (paper: 2).</summary>
    public double InitialVariance { get; set; } = 2.0;

    /// <summary>The head: <see cref="ClassifierHead.Daam"/> (default, the paper's), or the baselines
    /// <see cref="ClassifierHead.Linear"/> and <see cref="ClassifierHead.MultiHeadAttention"/>. <see cref="Heads"/>,
    /// <see cref="Hidden"/>, <see cref="Height"/> and <see cref="InitialVariance"/> configure the DAAM head only;
    /// <see cref="AttentionHeads"/> the MHA head only. The importance factor exists for the DAAM head only.</summary>
    [Choice(new object[] { ClassifierHead.Daam, ClassifierHead.Linear, ClassifierHead.MultiHeadAttention })]
    public ClassifierHead Head { get; set; } = ClassifierHead.Daam;

    /// <summary>Attention heads of the <see cref="ClassifierHead.MultiHeadAttention"/> head; must divide the per-layer
    /// feature size D (the paper's MHA baseline: 8).</summary>
    public int AttentionHeads { get; set; } = 8;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (string.IsNullOrWhiteSpace(FeatureColumnName)) throw new ArgumentOutOfRangeException(nameof(FeatureColumnName), FeatureColumnName, "FeatureColumnName must name the feature vector column.");
        if (Layers < 1) throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "Layers must be at least 1 (1 for a plain feature vector).");
        if (Heads < 1 || Layers % Heads != 0) throw new ArgumentOutOfRangeException(nameof(Heads), Heads, $"Heads must divide Layers = {Layers}.");
        if (Hidden < 1) throw new ArgumentOutOfRangeException(nameof(Hidden), Hidden, "Hidden must be at least 1 (the paper uses 512).");
        if (Height < 0) throw new ArgumentOutOfRangeException(nameof(Height), Height, "Height must be positive, or 0 to choose it.");
        if (!(InitialVariance > 0)) throw new ArgumentOutOfRangeException(nameof(InitialVariance), InitialVariance, "InitialVariance must be positive.");
        if (!Enum.IsDefined(Head)) throw new ArgumentOutOfRangeException(nameof(Head), Head, "Head must be Daam, Linear or MultiHeadAttention.");
        if (AttentionHeads < 1) throw new ArgumentOutOfRangeException(nameof(AttentionHeads), AttentionHeads, "AttentionHeads must be at least 1 (the paper's MHA baseline uses 8).");
    }
}

/// <summary>
/// Trains the DAAM classifier: on <c>mlContext.MulticlassClassification.Trainers.DensityAdaptiveAttention(...)</c> with a
/// Key label (<c>MapValueToKey</c>) and ML.NET's multiclass outputs (<c>Score</c>, <c>PredictedLabel</c>), or on
/// <c>mlContext.BinaryClassification.Trainers.DensityAdaptiveAttention(...)</c> with a Boolean label (or a Key of two
/// values) and ML.NET's binary outputs (<c>Score</c>, <c>Probability</c>, <c>PredictedLabel</c>).
/// </summary>
public sealed class DensityAdaptiveAttentionClassifierTrainer : IEstimator<DensityAdaptiveAttentionClassifierModel>
{
    internal const string Name = "DensityAdaptiveAttentionClassifier";
    private readonly IHostEnvironment _env;
    private readonly DensityAdaptiveAttentionClassifierOptions _options;
    private readonly bool _binary;

    internal DensityAdaptiveAttentionClassifierTrainer(IHostEnvironment env, DensityAdaptiveAttentionClassifierOptions options,
        bool binary = false)
    {
        _binary = binary;
        _env = env ?? throw new ArgumentNullException(nameof(env));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _options.Validate();
    }

    /// <summary>Trains on <paramref name="input"/>; validation rows come from the options (a set, or a stratified fraction).</summary>
    public DensityAdaptiveAttentionClassifierModel Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var features = FeatureSize(input.Schema);
        var config = Config(features, classes: 0);
        var architecture = new Architecture(TorchInputColumn.Single(_options.FeatureColumnName, _options.Layers, config.Features), config);
        if (_binary)
        {
            var label = input.Schema.GetColumnOrNull(_options.LabelColumnName);
            if (label is { Type: not BooleanDataViewType } && ClassLabels.FromSchema(input.Schema, _options.LabelColumnName, Name).Count != 2)
                throw new ArgumentOutOfRangeException(nameof(input), $"{Name}: a binary classifier needs a Boolean label column " +
                    $"'{_options.LabelColumnName}' (or a Key with two values); it has type {label.Value.Type}. Use " +
                    "mlContext.MulticlassClassification.Trainers.DensityAdaptiveAttention for more classes.");
        }
        var (network, labels, device, summary) = ClassifierTraining.Train(_env, Name, _options, input, architecture);
        return new DensityAdaptiveAttentionClassifierModel(_env, config with { Classes = labels.Count }, labels, network,
            device, _options.ScoringBatchSize, _options.FeatureColumnName, _binary) { TrainingSummary = summary };
    }

    /// <summary>Checks the feature and label columns and describes the output columns (Score, PredictedLabel).</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var byName = inputSchema.ToDictionary(c => c.Name);
        if (!byName.TryGetValue(_options.FeatureColumnName, out var feature) || feature.Kind != SchemaShape.Column.VectorKind.Vector
            || feature.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: feature column '{_options.FeatureColumnName}' must be a known-size vector of Single.");
        bool booleanLabel = byName.TryGetValue(_options.LabelColumnName, out var label) && label.ItemType is BooleanDataViewType
            && label.Kind == SchemaShape.Column.VectorKind.Scalar;
        if (!byName.ContainsKey(_options.LabelColumnName) || !label.IsKey && !(_binary && booleanLabel))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{Name}: label column '{_options.LabelColumnName}' must be " +
                (_binary ? "a Boolean (or a Key of two values)." : $"a Key; add mlContext.Transforms.Conversion.MapValueToKey(\"{_options.LabelColumnName}\") before the trainer."));
        return ClassifierTraining.OutputSchema(inputSchema, _binary);
    }

    private int FeatureSize(DataViewSchema schema)
    {
        var column = schema.GetColumnOrNull(_options.FeatureColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: feature column '{_options.FeatureColumnName}' was not found. " +
                $"Available columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}. Build it with " +
                $"mlContext.Transforms.Concatenate(\"{_options.FeatureColumnName}\", ...).");
        if (column.Type is not VectorDataViewType { ItemType: NumberDataViewType n, IsKnownSize: true, Size: var size } || n != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: feature column '{_options.FeatureColumnName}' has type {column.Type}; " +
                "expected a known-size vector of Single (Concatenate fixed-size columns, or declare [VectorType(n)]).");
        if (size % _options.Layers != 0)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{Name}: feature column '{_options.FeatureColumnName}' has {size} values, " +
                $"not a multiple of Layers = {_options.Layers} (the vector holds L × D values, layer-major).");
        return size / _options.Layers;
    }

    private DaamClassifierConfig Config(int features, int classes)
    {
        if (_options.Head == ClassifierHead.MultiHeadAttention && features % _options.AttentionHeads != 0)
            throw new ArgumentOutOfRangeException(nameof(DensityAdaptiveAttentionClassifierOptions.AttentionHeads), _options.AttentionHeads,
                $"{Name}: AttentionHeads = {_options.AttentionHeads} must divide the per-layer feature size D = {features} of column " +
                $"'{_options.FeatureColumnName}' (head width = D / heads); choose one of its divisors.");
        int height = _options.Height;
        if (height == 0)
        {
            height = (int)Math.Sqrt(features);
            while (features % height != 0) height--;
        }
        if (features % height != 0)
            throw new ArgumentOutOfRangeException(nameof(DensityAdaptiveAttentionClassifierOptions.Height), height,
                $"Height = {height} must divide the per-layer feature size D = {features} (h × w = D).");
        return new DaamClassifierConfig(_options.Layers, features, classes, height, features / height, _options.Heads,
            _options.Hidden, _options.InitialVariance, _options.Head, _options.AttentionHeads);
    }

    private sealed class Architecture(TorchInputColumn features, DaamClassifierConfig config)
        : ClassifierArchitecture<nn.Module<Tensor, Tensor>>
    {
        public override IReadOnlyList<TorchInputColumn> Inputs { get; } = new[] { features };

        public override nn.Module<Tensor, Tensor> CreateNetwork(int classes) => (config with { Classes = classes }).Create();

        public override Tensor Logits(nn.Module<Tensor, Tensor> network, Tensor?[] inputs, Device device) =>
            network.call(inputs[0]!.to(device));
    }
}

/// <summary>Hyper-parameters of the classifier network: a <see cref="DaamClassifier"/>, or a baseline head.</summary>
/// <param name="Layers">Layers L.</param>
/// <param name="Features">Per-layer features D.</param>
/// <param name="Classes">Classes.</param>
/// <param name="Height">Height of the 2-D feature view (DAAM head).</param>
/// <param name="Width">Width of the 2-D feature view (DAAM head).</param>
/// <param name="Heads">DAAM heads (DAAM head).</param>
/// <param name="Hidden">First convolution's channels (DAAM head).</param>
/// <param name="InitialVariance">Initial DAAM variance (DAAM head).</param>
/// <param name="Head">Which head (models saved before the option existed are <see cref="ClassifierHead.Daam"/>).</param>
/// <param name="AttentionHeads">Attention heads of the <see cref="ClassifierHead.MultiHeadAttention"/> head.</param>
public sealed record DaamClassifierConfig(int Layers, int Features, int Classes, int Height, int Width, int Heads, int Hidden,
    double InitialVariance, ClassifierHead Head = ClassifierHead.Daam, int AttentionHeads = 8)
{
    internal nn.Module<Tensor, Tensor> Create() => Head switch
    {
        ClassifierHead.Daam => new DaamClassifier(Layers, Features, Classes, Height, Width, Heads, Hidden, InitialVariance),
        ClassifierHead.Linear => new LinearLayerClassifier(Layers, Features, Classes),
        ClassifierHead.MultiHeadAttention => new AttentionLayerClassifier(Layers, Features, Classes, AttentionHeads),
        _ => throw new ArgumentOutOfRangeException(nameof(Head), Head, "Head must be Daam, Linear or MultiHeadAttention."),
    };
}

/// <summary>A trained DAAM classifier: <c>Features</c> in, <c>Score</c> and <c>PredictedLabel</c> out; see
/// <see cref="TorchClassifierModel"/>. <see cref="ImportanceFactor"/> gives the paper's importance-factor explanation.</summary>
public sealed class DensityAdaptiveAttentionClassifierModel : TorchClassifierModel
{
    /// <summary>Version 2: the config with <see cref="DaamClassifierConfig.Head"/> and
    /// <see cref="DaamClassifierConfig.AttentionHeads"/>. Version 1 (before the head option): the same layout with the
    /// eight DAAM fields; still read, as a DAAM head.</summary>
    private const int PayloadVersion = 2;

    internal DensityAdaptiveAttentionClassifierModel(IHostEnvironment env, DaamClassifierConfig config, ClassLabels labels,
        nn.Module<Tensor, Tensor> network, Device device, int batchSize, string featureColumnName = "Features", bool binary = false)
        : base(env, DensityAdaptiveAttentionClassifierTrainer.Name,
            new[] { TorchInputColumn.Single(featureColumnName, config.Layers, config.Features) }, labels, network, device, batchSize,
            binary)
    {
        Config = config;
    }

    /// <summary>The network's hyper-parameters.</summary>
    public DaamClassifierConfig Config { get; }

    /// <summary>Per-epoch history of the training run; null for a loaded model.</summary>
    public TrainingSummary? TrainingSummary { get; internal init; }

    /// <summary>The network: a <see cref="DaamClassifier"/> for the DAAM head, a <see cref="LinearLayerClassifier"/> or
    /// an <see cref="AttentionLayerClassifier"/> for the baselines (<see cref="DaamClassifierConfig.Head"/>).</summary>
    public new nn.Module<Tensor, Tensor> Network => (nn.Module<Tensor, Tensor>)base.Network;

    /// <summary>The head this model was trained with.</summary>
    public ClassifierHead Head => Config.Head;

    /// <summary>
    /// The paper's importance factor (spec gaam.md §5): the DAAM density weights averaged over the rows of
    /// <paramref name="data"/> and min-max normalised, [L, D] in [0, 1]: which layers and features the classifier attends to.
    /// Defined for the <see cref="ClassifierHead.Daam"/> head only: the baselines have no density weights, and their
    /// attention maps (MHA: layer × layer) are not the same quantity, so they throw.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has a <see cref="ClassifierHead.Linear"/> or
    /// <see cref="ClassifierHead.MultiHeadAttention"/> head.</exception>
    public float[,] ImportanceFactor(IDataView data)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(data);
        if (Network is not DaamClassifier daam)
            throw new InvalidOperationException($"{Name}: the importance factor is the DAAM head's density weights (spec gaam.md §5); " +
                $"this model was trained with Head = {Config.Head}, which has none. Train with Head = ClassifierHead.Daam to get it.");
        var column = data.Schema[InputColumns[0].Name];
        var batches = new List<Tensor>();
        using var scope = NewDisposeScope();
        using (inference_mode())
        using (var cursor = data.GetRowCursor(new[] { column }))
        {
            var staged = BatchScorer.ForReading(InputColumns, new[] { column.Index }, cursor, BatchSize, rejectNonFinite: true);
            int n = 0;
            void Flush()
            {
                if (n == 0) return;
                var x = tensor(staged.FloatInputs[0]!.AsSpan(0, n * InputColumns[0].Size).ToArray(), new long[] { n, Config.Layers, Config.Features });
                batches.Add(daam.AttentionWeights(x.to(Device)));
                n = 0;
            }
            while (cursor.MoveNext())
            {
                staged.ReadRow(n++, cursor.Position);
                if (n == BatchSize) Flush();
            }
            Flush();
        }
        if (batches.Count == 0) throw new InvalidOperationException($"{Name}: the data for the importance factor has no rows.");
        var factor = Gaussian.ImportanceFactor.Compute(batches).cpu();
        var values = factor.data<float>().ToArray();
        var result = new float[Config.Layers, Config.Features];
        Buffer.BlockCopy(values, 0, result, 0, values.Length * sizeof(float));
        return result;
    }

    /// <inheritdoc/>
    protected override Tensor Logits(Tensor[] inputs) => Network.call(inputs[0].to(Device));

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
    public static DensityAdaptiveAttentionClassifierModel Load(IHostEnvironment env, BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version is < 1 or > PayloadVersion)
            throw new InvalidDataException($"This DAAM classifier was saved with format {version}; this MLNet.Attention reads formats " +
                $"1 to {PayloadVersion}. Load it with the MLNet.Attention version that saved it (or a newer one), or retrain.");
        string feature = reader.ReadString();
        var config = version == 1
            ? ConfigPersistence.ReadConfig<Version1.DaamClassifierConfig>(reader).Upgrade()
            : ConfigPersistence.ReadConfig<DaamClassifierConfig>(reader);
        int batchSize = reader.ReadInt32();
        bool binary = reader.ReadBoolean();
        var labels = ClassLabels.Read(reader);
        if (labels.Count != config.Classes || batchSize < 1)
            throw new InvalidDataException("Corrupted DAAM classifier: class count or scoring batch size out of range.");
        return LoadNetwork(env, reader, config.Create, (network, device) =>
            new DensityAdaptiveAttentionClassifierModel(env, config, labels, network, device, batchSize, feature, binary));
    }

    /// <summary>The config record of payload version 1, by its stored name (ConfigPersistence checks the type name).</summary>
    private static class Version1
    {
        public sealed record DaamClassifierConfig(int Layers, int Features, int Classes, int Height, int Width, int Heads,
            int Hidden, double InitialVariance)
        {
            public Classification.DaamClassifierConfig Upgrade() =>
                new(Layers, Features, Classes, Height, Width, Heads, Hidden, InitialVariance, ClassifierHead.Daam);
        }
    }
}
