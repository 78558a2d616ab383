using TorchSharp;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;

namespace MLNet.Attention.MultipleInstance;

/// <summary>Hyper-parameters of <see cref="GatedAttentionMil"/>.</summary>
/// <param name="FeatureSize">Instance feature size D_feat (e.g. 512 for ResNet-18 features, 1024 for UNI).</param>
/// <param name="InnerSize">Width D_in after the dimension reduction (e.g. 256, 512).</param>
/// <param name="Classes">Number of classes C; 1 gives a single logit for Ilse et al.'s sigmoid / Bernoulli loss.</param>
/// <param name="AttentionSize">Hidden width of the gated attention (128 in the references).</param>
/// <param name="Dropout">Dropout before the classifier (0 in the reference).</param>
/// <param name="ProjectInstances">Apply the dimension reduction <c>ReLU(Linear(D_feat→D_in))</c> (the reference);
/// false feeds the instances to the attention as they are (then D_in must equal D_feat), for instance features that
/// an encoder in front already reduced (Ilse et al.'s MNIST-bags network: LeNet → attention).</param>
public sealed record GatedAttentionMilConfig(int FeatureSize, int InnerSize, int Classes, int AttentionSize = 128, double Dropout = 0.0,
    bool ProjectInstances = true)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value and what to change.</summary>
    public void Validate()
    {
        if (FeatureSize < 1) throw new ArgumentOutOfRangeException(nameof(FeatureSize), FeatureSize, "FeatureSize must be at least 1; pass the width of the instance features.");
        if (InnerSize < 1) throw new ArgumentOutOfRangeException(nameof(InnerSize), InnerSize, "InnerSize must be at least 1, e.g. 256 for ResNet-18 features.");
        if (Classes < 1) throw new ArgumentOutOfRangeException(nameof(Classes), Classes, "Classes must be at least 1 (1 = single sigmoid logit, C ≥ 2 = softmax logits).");
        if (AttentionSize < 1) throw new ArgumentOutOfRangeException(nameof(AttentionSize), AttentionSize, "AttentionSize must be at least 1 (the references use 128).");
        if (Dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1); use 0 for none.");
        if (!ProjectInstances && InnerSize != FeatureSize)
            throw new ArgumentOutOfRangeException(nameof(InnerSize), InnerSize, $"Without the instance projection the attention reads the features as they are: InnerSize must equal FeatureSize ({FeatureSize}).");
    }

    /// <summary>Trainable parameters: <c>D_in·D_feat</c> (with the projection) <c>+ 2·(D_att·D_in + D_att) + (D_att + 1) +
    /// (D_in·C + C)</c>.</summary>
    public long ParameterCount => (ProjectInstances ? (long)InnerSize * FeatureSize : 0) + GatedAttentionPooling.CountParameters(InnerSize, AttentionSize, 1)
                                  + ((long)InnerSize * Classes + Classes);
}

/// <summary>Output of <see cref="GatedAttentionMil"/>; disposing it disposes the tensors.</summary>
/// <param name="Logits">Bag logits <c>[B, C]</c>.</param>
/// <param name="Attention">Attention weights per instance <c>[B, N]</c> (sum 1 per bag, exactly 0 at padded slots).</param>
/// <param name="AttentionLogits">Pre-softmax attention logits <c>[B, N]</c> (−∞ at padded slots).</param>
public sealed record GatedAttentionMilOutput(Tensor Logits, Tensor Attention, Tensor AttentionLogits) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Logits.Dispose();
        Attention.Dispose();
        AttentionLogits.Dispose();
    }
}

/// <summary>
/// Gated attention MIL (ABMIL; Ilse, Tomczak &amp; Welling, ICML 2018) as in ACMIL's baseline class <c>ABMIL</c>:
/// dimension reduction <c>ReLU(Linear without bias)</c> → gated attention pooling (one head) → Linear classifier.
/// Parameter names equal the reference state-dict keys (<c>dimreduction.fc1.weight</c>,
/// <c>attention.attention_V.0.weight</c>, …, <c>classifier.fc.weight</c>). Unlike the reference, which reads only the
/// first bag of its input, every bag of a padded batch <c>[B, N_max, D]</c> is classified (mask <c>[B, N_max]</c>,
/// true = real instance); padded instances get exactly zero attention.
/// </summary>
public sealed class GatedAttentionMil : nn.Module<Tensor, Tensor?, GatedAttentionMilOutput>
{
    private readonly MilDimensionReduction? dimreduction;
    private readonly GatedAttentionPooling attention;
    private readonly MilClassifier classifier;

    /// <summary>The hyper-parameters this network was built with.</summary>
    public GatedAttentionMilConfig Config { get; }

    /// <param name="config">Hyper-parameters; validated here.</param>
    public GatedAttentionMil(GatedAttentionMilConfig config) : base(nameof(GatedAttentionMil))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        if (config.ProjectInstances) dimreduction = new MilDimensionReduction(config.FeatureSize, config.InnerSize);
        attention = new GatedAttentionPooling(config.InnerSize, config.AttentionSize, 1);
        classifier = new MilClassifier(config.InnerSize, config.Classes, config.Dropout);
        RegisterComponents();
    }

    /// <summary>
    /// Classifies one bag <c>[N, D_feat]</c> / <c>[1, N, D_feat]</c>, or a padded batch <c>[B, N_max, D_feat]</c> with
    /// <paramref name="mask"/> <c>[B, N_max]</c> (bool, true = real instance; null = all real).
    /// </summary>
    public override GatedAttentionMilOutput forward(Tensor bags, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var (x, m) = MilInputs.Prepare(bags, mask, Config.FeatureSize);
        var h = dimreduction is null ? x : dimreduction.call(x);               // [B, N, D_in]
        if (m is not null) h = h.masked_fill(m.logical_not().unsqueeze(-1), Of(0.0));
        var logits = attention.Logits(h, m);                                   // [B, 1, N]
        var weights = logits.softmax(-1);
        var z = weights.bmm(h).squeeze(1);                                     // [B, D_in]
        var y = classifier.call(z);
        return new GatedAttentionMilOutput(y.MoveToOuterDisposeScope(), weights.squeeze(1).MoveToOuterDisposeScope(),
            logits.squeeze(1).MoveToOuterDisposeScope());
    }

    /// <summary>Classifies one bag or an unpadded batch.</summary>
    public GatedAttentionMilOutput forward(Tensor bags) => forward(bags, null);

    /// <summary>
    /// Training loss, mean over bags: softmax cross-entropy with class indices (Int64 <c>[B]</c>) when C ≥ 2 (ACMIL's
    /// baseline); when C = 1, Ilse et al.'s Bernoulli negative log-likelihood with the probability clamped to
    /// [1e-5, 1 − 1e-5] and labels 0/1.
    /// </summary>
    public Tensor Loss(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        long batch = logits.shape[0];
        Tensor loss;
        if (Config.Classes == 1)
        {
            var y = MilInputs.Labels(labels, batch, 2).to(logits.dtype);
            var p = logits.reshape(batch).sigmoid().clamp(Of(1e-5), Of(1 - 1e-5));
            loss = -(y * p.log()).add(y.negative().add(One, One) * p.negative().add(One, One).log(), One).mean();
        }
        else
        {
            loss = nn.functional.cross_entropy(logits, MilInputs.Labels(labels, batch, Config.Classes));
        }
        return loss.MoveToOuterDisposeScope();
    }
}
