using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// ACMIL's <c>DimReduction</c> with no residual blocks: <c>ReLU(x Wᵀ)</c>, a Linear <b>without bias</b> from the
/// instance feature size to the inner width. Field name <c>fc1</c> as in the reference.
/// </summary>
public sealed class MilDimensionReduction : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;

    /// <param name="featureSize">Instance feature size D_feat.</param>
    /// <param name="innerSize">Reduced width D_in.</param>
    public MilDimensionReduction(int featureSize, int innerSize) : base("DimReduction")
    {
        if (featureSize < 1)
            throw new ArgumentOutOfRangeException(nameof(featureSize), featureSize, "The instance feature size must be at least 1; pass the width of the instance features.");
        if (innerSize < 1)
            throw new ArgumentOutOfRangeException(nameof(innerSize), innerSize, "The inner (reduced) width must be at least 1, e.g. 256 for ResNet-18 features or 512 for UNI.");
        fc1 = nn.Linear(featureSize, innerSize, hasBias: false);
        RegisterComponents();
    }

    /// <summary>[…, D_feat] → […, D_in].</summary>
    // ReLU in place: the Linear's backward does not need its output, and a 100,000-instance bag keeps one [N, D_in]
    // activation instead of two.
    public override Tensor forward(Tensor x) => fc1.call(x).relu_();
}

/// <summary>
/// ACMIL's <c>Classifier_1fc</c>: optional dropout (training only, skipped when 0) then a Linear to the class logits.
/// Field name <c>fc</c> as in the reference.
/// </summary>
public sealed class MilClassifier : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc;
    private readonly Dropout? dropout;

    /// <param name="inputSize">Bag-vector width D_in.</param>
    /// <param name="classes">Number of classes C.</param>
    /// <param name="dropout">Dropout probability before the Linear (0 = none, the reference default).</param>
    public MilClassifier(int inputSize, int classes, double dropout = 0.0) : base("Classifier_1fc")
    {
        if (dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "Dropout must be in [0, 1); use 0 for none.");
        fc = nn.Linear(inputSize, classes);
        if (dropout > 0) this.dropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>[…, D_in] → […, C].</summary>
    public override Tensor forward(Tensor x) => fc.call(dropout is null ? x : dropout.call(x));
}
