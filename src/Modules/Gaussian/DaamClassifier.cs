using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Gaussian;

/// <summary>
/// The classifier head of the DAAM paper (arXiv 2401.11143, experiment code "DAAMv1"/"DAAMv2"): per-layer pooled
/// hidden states of a frozen encoder X [B, L, D] → <see cref="MultiHeadDensityAdaptiveAttention"/> → reshape to
/// [B, L, h, w] (h·w = D) → Conv2d(L→hidden, 3×3, pad 1) → ReLU → Conv2d(hidden→L, 3×3, pad 1) → ReLU → flatten
/// L·D → Linear(L·D → classes). Conv and linear weights are Xavier-uniform initialised, biases PyTorch's default.
/// Fields <c>daam</c>, <c>conv1</c>, <c>conv2</c>, <c>fc</c> (the experiment code's names for the convolutions and the
/// linear layer; the DAAM's attribute name is not recorded in the spec).
/// </summary>
public sealed class DaamClassifier : nn.Module<Tensor, Tensor>
{
    private readonly MultiHeadDensityAdaptiveAttention daam;
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Linear fc;
    private readonly int _layers, _height, _width;

    /// <param name="layers">Encoder layers L (axis 1 of the input; channels of the convolutions).</param>
    /// <param name="features">Feature size D of each layer's pooled hidden state.</param>
    /// <param name="classes">Number of output classes.</param>
    /// <param name="height">Height h of the 2-D view of the features (h·w = D; paper: 32 for D = 1024, 64 for 5120).</param>
    /// <param name="width">Width w of the 2-D view (paper: 32 for D = 1024, 80 for 5120).</param>
    /// <param name="heads">DAAM heads H; must divide L (paper: 8 = "DAAMv1", 1 = "DAAMv2").</param>
    /// <param name="hidden">Channels of the first convolution (paper: 512).</param>
    /// <param name="initialC">Initial DAAM variance c (paper: 2).</param>
    /// <param name="eps">DAAM variance eps (reference 1e-5).</param>
    /// <param name="generator">Random source of the Xavier weights and default biases (null: the global generator).</param>
    public DaamClassifier(int layers, int features, int classes, int height, int width, int heads = 8, int hidden = 512,
        double initialC = 2.0, double eps = 1e-5, Generator? generator = null) : base(nameof(DaamClassifier))
    {
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "The number of classes must be positive.");
        if (hidden < 1) throw new ArgumentOutOfRangeException(nameof(hidden), hidden, "The hidden channel count must be positive (the paper uses 512).");
        if (height < 1 || width < 1 || (long)height * width != features)
            throw new ArgumentException($"height × width = {height} × {width} must equal the feature size {features} (the features are viewed as an h × w image). For D = 1024 use 32 × 32, for D = 5120 use 64 × 80.", nameof(height));
        _layers = layers;
        _height = height;
        _width = width;
        daam = new MultiHeadDensityAdaptiveAttention(layers, features, heads, initialC, eps);
        conv1 = nn.Conv2d(layers, hidden, 3, padding: 1);
        conv2 = nn.Conv2d(hidden, layers, 3, padding: 1);
        fc = nn.Linear((long)layers * features, classes);
        using (no_grad())
        {
            foreach (var (weight, bias, fanIn, fanOut) in new (Tensor, Tensor, long, long)[]
                     {
                         (conv1.weight!, conv1.bias!, layers * 9L, hidden * 9L),
                         (conv2.weight!, conv2.bias!, hidden * 9L, layers * 9L),
                         (fc.weight!, fc.bias!, (long)layers * features, classes),
                     })
            {
                double xavier = Math.Sqrt(6.0 / (fanIn + fanOut));   // xavier_uniform_ with gain 1
                weight.uniform_(-xavier, xavier, generator);
                if (generator is not null)
                {
                    double bound = 1.0 / Math.Sqrt(fanIn);   // PyTorch's default bias init, redrawn from the given generator
                    bias.uniform_(-bound, bound, generator);
                }
            }
        }
        RegisterComponents();
    }

    /// <summary>The DAAM attention in front of the convolutional decoder.</summary>
    public MultiHeadDensityAdaptiveAttention Attention => daam;

    /// <summary>Height h of the h × w view of each layer's features that the convolutions see.</summary>
    public int Height => _height;

    /// <summary>Width w of the h × w view of each layer's features.</summary>
    public int Width => _width;

    /// <summary>
    /// x: per-layer pooled features [B, L, D], or per-layer sequences [B, L, T, D] which are first averaged over T
    /// (the paper's data preparation) → logits [B, classes].
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var features = Pool(x);
        var h = daam.call(features).reshape(x.shape[0], _layers, _height, _width);
        h = nn.functional.relu(conv1.call(h));
        h = nn.functional.relu(conv2.call(h));
        return fc.call(h.flatten(1)).MoveToOuterDisposeScope();
    }

    /// <summary>The DAAM density weights [B, L, D] for x (input as in <see cref="forward"/>), e.g. for <see cref="ImportanceFactor"/>.</summary>
    public Tensor AttentionWeights(Tensor x)
    {
        using var scope = NewDisposeScope();
        return daam.AttentionWeights(Pool(x)).MoveToOuterDisposeScope();
    }

    private Tensor Pool(Tensor x)
    {
        if (x.dim() is not (3 or 4) || x.shape[1] != _layers || x.shape[^1] != daam.Features)
            throw new ArgumentException($"DaamClassifier expects [batch, {_layers} (layers), {daam.Features} (features)] or [batch, {_layers}, time, {daam.Features}]; got [{string.Join(", ", x.shape)}].", nameof(x));
        return x.dim() == 4 ? x.mean(new long[] { 2 }) : x;
    }
}
