using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.MultipleInstance;

/// <summary>Hyper-parameters of <see cref="Acmil"/> (reference names in brackets).</summary>
/// <param name="FeatureSize">Instance feature size D_feat (e.g. 512 ResNet-18, 384 ViT-S/16, 1024 UNI).</param>
/// <param name="InnerSize">Width D_in after the dimension reduction [D_inner] (256, 128, 512 respectively).</param>
/// <param name="Classes">Number of classes C [n_class]; use ≥ 2 for training (with C = 1 the reference still runs, but both
/// cross-entropy losses are identically 0).</param>
/// <param name="Branches">Attention branches M [n_token], each with its own classifier (README: 5).</param>
/// <param name="TopK">STKIM top-K size K [n_masked_patch] (README: 10; 0 disables masking).</param>
/// <param name="MaskRatio">STKIM ratio p [mask_drop] in [0, 1] (README: 0.6): ⌊min(K, N)·p⌋ of the top instances are masked.</param>
/// <param name="AttentionSize">Gated-attention hidden width (fixed 128 in ACMIL_GA).</param>
/// <param name="Dropout">Dropout before every classifier [droprate] (0 in the reference).</param>
/// <param name="MaskMode">STKIM rule: the reference code's exact count (default) or the paper's Bernoulli(p).</param>
/// <param name="ProjectInstances">Apply the dimension reduction (the reference); false feeds the instances to the
/// attention as they are (D_in must equal D_feat), for features an encoder in front already reduced.</param>
public sealed record AcmilConfig(int FeatureSize, int InnerSize, int Classes, int Branches = 5, int TopK = 10,
    double MaskRatio = 0.6, int AttentionSize = 128, double Dropout = 0.0, StkimMode MaskMode = StkimMode.ExactCount,
    bool ProjectInstances = true)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value and what to change.</summary>
    public void Validate()
    {
        if (FeatureSize < 1) throw new ArgumentOutOfRangeException(nameof(FeatureSize), FeatureSize, "FeatureSize must be at least 1; pass the width of the instance features.");
        if (InnerSize < 1) throw new ArgumentOutOfRangeException(nameof(InnerSize), InnerSize, "InnerSize must be at least 1, e.g. 256 for ResNet-18 features.");
        if (Classes < 1) throw new ArgumentOutOfRangeException(nameof(Classes), Classes, "Classes must be at least 1 (use 2 for a binary task: ACMIL's losses are softmax cross-entropies, which are identically 0 for a single class).");
        if (Branches < 1) throw new ArgumentOutOfRangeException(nameof(Branches), Branches, "Branches must be at least 1 (5 in the paper; 1 gives ACMIL's ABMIL baseline).");
        if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be 0 (no masking) or positive (10 in the paper).");
        if (MaskRatio is < 0 or > 1 || double.IsNaN(MaskRatio))
            throw new ArgumentOutOfRangeException(nameof(MaskRatio), MaskRatio, "MaskRatio is a fraction of the top-K instances: use a value in [0, 1] (0.6 in the paper).");
        if (AttentionSize < 1) throw new ArgumentOutOfRangeException(nameof(AttentionSize), AttentionSize, "AttentionSize must be at least 1 (ACMIL uses 128).");
        if (Dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1); use 0 for none.");
        if (!Enum.IsDefined(MaskMode)) throw new ArgumentOutOfRangeException(nameof(MaskMode), MaskMode, "Unknown STKIM mode; use StkimMode.ExactCount or StkimMode.Bernoulli.");
        if (!ProjectInstances && InnerSize != FeatureSize)
            throw new ArgumentOutOfRangeException(nameof(InnerSize), InnerSize, $"Without the instance projection the attention reads the features as they are: InnerSize must equal FeatureSize ({FeatureSize}).");
    }

    /// <summary>Trainable parameters: <c>D_in·D_feat</c> (with the projection) <c>+ 2·(D_att·D_in + D_att) + (D_att·M + M)
    /// + (M + 1)·(D_in·C + C)</c>.</summary>
    public long ParameterCount => (ProjectInstances ? (long)InnerSize * FeatureSize : 0) + GatedAttentionPooling.CountParameters(InnerSize, AttentionSize, Branches)
                                  + (Branches + 1L) * ((long)InnerSize * Classes + Classes);
}

/// <summary>Output of <see cref="Acmil"/>; disposing it disposes the tensors. Batch-first: one bag gives B = 1.</summary>
/// <param name="BranchLogits">Per-branch logits <c>[B, M, C]</c> (the reference returns <c>[M, C]</c> for its single bag).</param>
/// <param name="SlideLogits">Bag ("slide") logits <c>[B, C]</c>: the prediction to use at inference.</param>
/// <param name="AttentionLogits">Attention logits after STKIM, the reference's <c>A_out</c>, <c>[B, M, N]</c>: −1e9 at masked instances (training), −∞ at padded slots.</param>
/// <param name="BranchAttention">Per-branch attention maps softmax(A_out) <c>[B, M, N]</c>.</param>
/// <param name="BagAttention">Bag attention map (mean of the branch maps) <c>[B, N]</c>, the heatmap used for the bag vector.</param>
public sealed record AcmilOutput(Tensor BranchLogits, Tensor SlideLogits, Tensor AttentionLogits, Tensor BranchAttention, Tensor BagAttention) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        BranchLogits.Dispose();
        SlideLogits.Dispose();
        AttentionLogits.Dispose();
        BranchAttention.Dispose();
        BagAttention.Dispose();
    }
}

/// <summary>
/// ACMIL, Attention-Challenging MIL (Zhang et al., ECCV 2024, arXiv 2311.07125), the <c>ACMIL_GA</c> network:
/// dimension reduction → gated attention with M branches (multiple branch attention), one classifier per branch, and a
/// bag classifier on the instances pooled with the mean of the branch attention maps. In training, stochastic top-K
/// instance masking (STKIM) sets ⌊min(K, N)·p⌋ of each branch's top-logit instances to −1e9 before every softmax; the
/// masked maps feed the branch and bag paths and the diversity loss (<see cref="AcmilLosses"/>). The draws are
/// injectable (<see cref="Draws"/>, <see cref="Generator"/>). Parameter names equal the reference state-dict keys
/// (<c>dimreduction.fc1.weight</c>, <c>attention.attention_V.0.*</c>, <c>classifier.{i}.fc.*</c>,
/// <c>Slide_classifier.fc.*</c>). Deviations: padded batches <c>[B, N_max, D]</c> with a mask are supported (the
/// reference reads only bag 0), padded slots get logit −∞, and outputs are batch-first.
/// </summary>
public sealed class Acmil : nn.Module<Tensor, Tensor?, AcmilOutput>
{
    private readonly MilDimensionReduction? dimreduction;
    private readonly GatedAttentionPooling attention;
    private readonly ModuleList<MilClassifier> classifier;
    private readonly MilClassifier Slide_classifier;

    /// <summary>The hyper-parameters this network was built with.</summary>
    public AcmilConfig Config { get; }

    /// <summary>
    /// Source of the STKIM uniform draws, called once per bag with (M, kk, device); null draws <c>torch.rand</c> on the
    /// input's device, with <see cref="Generator"/> when set.
    /// </summary>
    public UniformDraws? Draws { get; set; }

    /// <summary>Generator for the default draws (must live on the input's device); null uses the global one.</summary>
    public torch.Generator? Generator { get; set; }

    /// <param name="config">Hyper-parameters; validated here.</param>
    /// <param name="draws">Optional source of the STKIM draws (see <see cref="Draws"/>).</param>
    public Acmil(AcmilConfig config, UniformDraws? draws = null) : base(nameof(Acmil))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        Draws = draws;
        if (config.ProjectInstances) dimreduction = new MilDimensionReduction(config.FeatureSize, config.InnerSize);
        attention = new GatedAttentionPooling(config.InnerSize, config.AttentionSize, config.Branches);
        classifier = nn.ModuleList(Enumerable.Range(0, config.Branches).Select(_ => new MilClassifier(config.InnerSize, config.Classes, config.Dropout)).ToArray());
        Slide_classifier = new MilClassifier(config.InnerSize, config.Classes, config.Dropout);
        RegisterComponents();
    }

    /// <summary>
    /// Runs one bag <c>[N, D_feat]</c> / <c>[1, N, D_feat]</c>, or a padded batch <c>[B, N_max, D_feat]</c> with
    /// <paramref name="mask"/> <c>[B, N_max]</c> (bool, true = real instance; null = all real). STKIM applies only in
    /// training mode.
    /// </summary>
    public override AcmilOutput forward(Tensor bags, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var (x, m) = MilInputs.Prepare(bags, mask, Config.FeatureSize);
        var h = dimreduction is null ? x : dimreduction.call(x);               // [B, N, D_in]
        if (m is not null) h = h.masked_fill(m.logical_not().unsqueeze(-1), Of(0.0));
        var logits = attention.Logits(h, m);                                   // [B, M, N]
        if (training && Config.TopK > 0)
            logits = StochasticTopKMasking.Apply(logits, MilInputs.Counts(m, x.shape[0], x.shape[1]), Config.TopK,
                Config.MaskRatio, Draws ?? DefaultDraws, Config.MaskMode);
        var branchAttention = logits.softmax(-1);                              // [B, M, N]
        var z = branchAttention.bmm(h);                                        // [B, M, D_in]
        var branchLogits = stack(classifier.Select((c, i) => c.call(z.select(1, i))).ToArray(), 1); // [B, M, C]
        var bagAttention = branchAttention.mean(new long[] { 1 });             // [B, N]
        var slide = Slide_classifier.call(bagAttention.unsqueeze(1).bmm(h).squeeze(1)); // [B, C]
        return new AcmilOutput(branchLogits.MoveToOuterDisposeScope(), slide.MoveToOuterDisposeScope(), logits.MoveToOuterDisposeScope(),
            branchAttention.MoveToOuterDisposeScope(), bagAttention.MoveToOuterDisposeScope());
    }

    /// <summary>Runs one bag or an unpadded batch.</summary>
    public AcmilOutput forward(Tensor bags) => forward(bags, null);

    /// <summary>The three training losses of <paramref name="output"/> for class-index labels (Int64 <c>[B]</c>), weights 1.</summary>
    public AcmilLosses Losses(AcmilOutput output, Tensor labels) => AcmilLosses.Compute(output, labels);

    private Tensor DefaultDraws(long rows, long columns, Device device)
        => torch.rand(new[] { rows, columns }, device: device, generator: Generator);
}
