using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.Runtime.TorchScalars;
using BatchNorm2d = MLNet.Attention.Layers.BatchNorm2d;

namespace MLNet.Attention.Vision;

/// <summary>
/// ULSAM, the ultra-lightweight subspace attention module (Saini, Jha et al., WACV 2020, arXiv 2006.15102): the C input
/// channels are split into <c>g</c> contiguous subspaces of G = C / g channels; each subspace learns one spatial
/// attention map A (depthwise 1×1 conv → BatchNorm → ReLU → 3×3 max-pool → pointwise conv G→1 → BatchNorm → ReLU →
/// softmax over the H·W positions) and is rescaled as <c>A ⊙ F + F</c>; the subspaces are concatenated back.
/// Output shape = input shape. Parameters: 5·C + 3·g (plus BatchNorm buffers).
/// </summary>
/// <remarks>
/// Reproduces the official code (Nandan91/ULSAM <c>ulsam.py</c> after PR #9), not the paper's diagram: both 1×1
/// convolutions have a bias, a BatchNorm + ReLU follows each of them, and <b>both BatchNorms use momentum 0.9</b>
/// (PyTorch convention: <c>running = 0.1·running + 0.9·batch</c>), as in the reference. The reference constructor's
/// <c>nout</c>, <c>h</c> and <c>w</c> arguments are unused there and therefore omitted here. Parameter names equal the
/// reference state-dict keys (<c>subspaces.{n}.conv_dws.weight</c>, <c>.bn_dws.*</c>, <c>.conv_point.*</c>,
/// <c>.bn_point.*</c>). In training mode every forward (including <see cref="AttentionMaps"/>) updates the running
/// statistics.
/// </remarks>
public sealed class UltraLightSubspaceAttention : nn.Module<Tensor, Tensor>
{
    // Field name = reference key prefix ("subspaces.0.conv_dws.weight", ...).
    private readonly ModuleList<Subspace> subspaces;

    /// <summary>Number of input (= output) channels C.</summary>
    public int Channels { get; }

    /// <summary>Number of subspaces g (the reference's <c>num_splits</c>).</summary>
    public int SubspaceCount { get; }

    /// <summary>Builds g independent subspaces of C / g channels, each at PyTorch's default initialisation (BatchNorm momentum 0.9, eps 1e-5).</summary>
    /// <param name="channels">Input channels C (the reference's <c>nin</c>); must be divisible by <paramref name="subspaces"/>.</param>
    /// <param name="subspaces">Number of subspaces g (the reference's <c>num_splits</c>); the paper uses 1, 2, 4, 8 or 16 and highlights 4.</param>
    public UltraLightSubspaceAttention(int channels, int subspaces = 4) : base(nameof(UltraLightSubspaceAttention))
    {
        if (channels < 1)
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "The channel count must be at least 1.");
        if (subspaces < 1)
            throw new ArgumentOutOfRangeException(nameof(subspaces), subspaces, $"The number of subspaces g = {subspaces} must be at least 1; use g = 1 for one attention map shared by all channels, or a divisor of {channels} such as 4.");
        if (channels % subspaces != 0)
            throw new ArgumentException($"channels = {channels} is not divisible by subspaces g = {subspaces} (each subspace needs C / g channels). Choose g among the divisors of {channels} ({string.Join(", ", Divisors(channels))}) or change the channel count.", nameof(subspaces));
        Channels = channels;
        SubspaceCount = subspaces;
        this.subspaces = nn.ModuleList(Enumerable.Range(0, subspaces).Select(_ => new Subspace(channels / subspaces)).ToArray());
        RegisterComponents();
    }

    /// <summary>Trainable parameters of a ULSAM block: per subspace G (DW weight) + G (DW bias) + 2G (BN) + G (PW weight) + 1 (PW bias) + 2 (BN) = 5G + 3, i.e. 5·C + 3·g.</summary>
    public static long ParameterCount(int channels, int subspaces) => 5L * channels + 3L * subspaces;

    /// <summary>Multiply-adds as the paper counts them (depthwise + pointwise 1×1 only): 2·C·H·W.</summary>
    public static long MultiplyAdds(int channels, int height, int width) => 2L * channels * height * width;

    /// <summary>x: [B, C, H, W] → [B, C, H, W]. Records the maps ([B, g, H, W]) into an open
    /// <see cref="AttentionMapCapture"/> that asks for this block.</summary>
    /// <remarks>
    /// In evaluation mode all subspaces run at once (<see cref="ForwardFused"/>), saving ~12 small ops per subspace
    /// (g = 16 at 1024×7×7: 5.2 → 3.4 ms forward). Training mode keeps the per-subspace loop so every subspace's BatchNorm
    /// updates its own running statistics exactly as the reference does. Both paths max-pool in channels-last layout
    /// (see <see cref="ChannelsLast"/>), which was the dominant cost.
    /// </remarks>
    public override Tensor forward(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        var capture = AttentionMapCapture.For(this);
        if (capture is null) return (training ? ForwardLoop(x) : ForwardFused(x)).MoveToOuterDisposeScope();

        // Recording for an AttentionMapCapture: the same computation, keeping the maps it makes on the way.
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        Tensor y, maps;
        if (training)
        {
            var perSubspace = new Tensor[SubspaceCount];
            y = ForwardLoop(x, perSubspace);
            maps = SubspaceCount == 1 ? perSubspace[0] : cat(perSubspace, 1);
        }
        else
        {
            maps = AttentionMapsFused(x);
            y = ApplyMaps(x, maps);
        }
        capture.RecordUlsam(this, maps.view(b, SubspaceCount, h, w));
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The attention maps (softmax over the flattened positions, row-major h·W + w): x [B, C, H, W] → [B, g, H·W]; each
    /// row sums to 1. Updates the BatchNorm running statistics when the module is in training mode.
    /// </summary>
    public Tensor AttentionMaps(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        return (training ? AttentionMapsLoop(x) : AttentionMapsFused(x)).MoveToOuterDisposeScope();
    }

    /// <summary>The straightforward path, one subspace module after the other (any mode; the only one used in training).</summary>
    internal Tensor ForwardLoop(Tensor x) => ForwardLoop(x, null);

    /// <param name="x">[B, C, H, W].</param>
    /// <param name="maps">When given (length g), receives each subspace's map [B, 1, H·W].</param>
    internal Tensor ForwardLoop(Tensor x, Tensor[]? maps)
    {
        var chunks = x.chunk(SubspaceCount, 1);
        var outputs = new Tensor[SubspaceCount];
        for (int n = 0; n < SubspaceCount; n++)
        {
            if (maps is null) outputs[n] = subspaces[n].call(chunks[n]);
            else outputs[n] = subspaces[n].Apply(chunks[n], maps[n] = subspaces[n].Attention(chunks[n]));
        }
        return SubspaceCount == 1 ? outputs[0] : cat(outputs, 1);
    }

    internal Tensor AttentionMapsLoop(Tensor x)
    {
        var chunks = x.chunk(SubspaceCount, 1);
        var maps = new Tensor[SubspaceCount];
        for (int n = 0; n < SubspaceCount; n++) maps[n] = subspaces[n].Attention(chunks[n]);
        return cat(maps, 1);
    }

    /// <summary>
    /// Evaluation-mode path, all g subspaces in one pass (equal to <see cref="ForwardLoop(Tensor)"/> up to float rounding): x viewed
    /// as [B, g, G, H·W] is rescaled by the g maps of <see cref="AttentionMapsFused"/>, as A ⊙ F + F.
    /// </summary>
    internal Tensor ForwardFused(Tensor x) => ApplyMaps(x, AttentionMapsFused(x));

    /// <summary>x [B, C, H, W] rescaled by the maps [B, g, H·W] as A ⊙ F + F, all subspaces at once.</summary>
    private Tensor ApplyMaps(Tensor x, Tensor maps)
    {
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        var a = maps.unsqueeze(2);                                                   // [B, g, 1, H·W]
        var f = x.reshape(b, SubspaceCount, Channels / SubspaceCount, h * w);       // [B, g, G, H·W]
        return addcmul(f, a, f, One).view(x.shape);                                  // F + A ⊙ F
    }

    /// <summary>
    /// Evaluation-mode maps of all subspaces at once, x [B, C, H, W] → [B, g, H·W]. With running statistics each
    /// BatchNorm is a fixed per-channel affine map, so (i) depthwise 1×1 conv + bn_dws fold into one per-channel
    /// x·scale + shift over all C channels, (ii) the g pointwise G→1 convs become one grouped conv C→g (groups g) whose
    /// weights/bias absorb bn_point. The folded tensors are computed from the subspaces' own parameters on every call
    /// (autograd reaches each of them; nothing is cached, so loaded or trained weights are always current).
    /// </summary>
    internal Tensor AttentionMapsFused(Tensor x)
    {
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        int g = SubspaceCount, c = Channels;
        var s = subspaces.ToArray();
        Tensor Cat(Func<Subspace, Tensor> part) => g == 1 ? part(s[0]) : cat(s.Select(part).ToArray(), 0);

        // (i) depthwise conv (weight [G,1,1,1], bias [G]) then BatchNorm: (x·w + b − μ)·γ/√(σ²+ε) + β.
        var bnScale = Cat(m => m.bn_dws.weight!) / Cat(m => m.bn_dws.running_var!).add(Of(Subspace.BnEps), One).sqrt();
        var scale = Cat(m => m.conv_dws.weight!).view(c) * bnScale;
        var shift = ((Cat(m => m.conv_dws.bias!) - Cat(m => m.bn_dws.running_mean!)) * bnScale).add(Cat(m => m.bn_dws.bias!), One);
        var d = nn.functional.relu(addcmul(shift.view(1, c, 1, 1), x, scale.view(1, c, 1, 1), One), inplace: true);
        d = nn.functional.max_pool2d(ChannelsLast(d), 3, stride: 1, padding: 1);   // padding acts as −∞

        // (ii) pointwise convs (weight [1,G,1,1] each → [g,G,1,1]) then the one-channel BatchNorms.
        var pointScale = Cat(m => m.bn_point.weight!) / Cat(m => m.bn_point.running_var!).add(Of(Subspace.BnEps), One).sqrt();
        var pointWeight = Cat(m => m.conv_point.weight!) * pointScale.view(g, 1, 1, 1);
        var pointBias = ((Cat(m => m.conv_point.bias!) - Cat(m => m.bn_point.running_mean!)) * pointScale).add(Cat(m => m.bn_point.bias!), One);
        var p = nn.functional.relu(nn.functional.conv2d(d, pointWeight, pointBias, groups: g), inplace: true);
        return p.reshape(b, g, h * w).softmax(-1);
    }

    /// <summary>
    /// The same values in channels-last memory layout (NHWC strides, NCHW shape). libtorch 2.10's CPU max_pool2d is a
    /// scalar loop per (n, c) plane on contiguous NCHW input (it was ~95% of the block's time, and ~1.3× slower than
    /// PyTorch 1.13's), but vectorised over channels for channels-last input: 10× faster forward and 2× faster forward +
    /// backward, copy included, with identical outputs and identical argmax (hence gradient) routing.
    /// </summary>
    internal static Tensor ChannelsLast(Tensor d) => d.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    private void CheckInput(Tensor x)
    {
        if (x.dim() != 4)
            throw new ArgumentException($"ULSAM expects a 4-D input [batch, {Channels} (channels), height, width]; got rank {x.dim()} with shape [{string.Join(", ", x.shape)}]. Add the missing batch/spatial dimensions (e.g. unsqueeze(0) for a single image).", nameof(x));
        if (x.shape[1] != Channels)
            throw new ArgumentException($"ULSAM was built for {Channels} channels but the input has {x.shape[1]} (shape [{string.Join(", ", x.shape)}]). Build the module with channels = {x.shape[1]} or feed a [batch, {Channels}, height, width] tensor.", nameof(x));
    }

    private static IEnumerable<int> Divisors(int n) => Enumerable.Range(1, n).Where(d => n % d == 0).Take(12);

    /// <summary>One subspace of G channels (the reference's <c>SubSpace</c>).</summary>
    private sealed class Subspace : nn.Module<Tensor, Tensor>
    {
        // Internal (not private) so the fused evaluation path can read the parameters and running statistics.
        internal const double BnEps = 1e-5;
        internal readonly Conv2d conv_dws;
        internal readonly BatchNorm2d bn_dws;
        private readonly MaxPool2d maxpool;
        internal readonly Conv2d conv_point;
        internal readonly BatchNorm2d bn_point;

        public Subspace(int channels) : base("SubSpace")
        {
            conv_dws = nn.Conv2d(channels, channels, 1, groups: channels, bias: true);
            bn_dws = new BatchNorm2d(channels, eps: BnEps, momentum: 0.9);   // reference quirk: momentum 0.9
            maxpool = nn.MaxPool2d(3, stride: 1, padding: 1);               // padding acts as −∞
            conv_point = nn.Conv2d(channels, 1, 1, bias: true);
            bn_point = new BatchNorm2d(1, eps: BnEps, momentum: 0.9);
            RegisterComponents();
        }

        /// <summary>F [B, G, H, W] → A [B, 1, H·W].</summary>
        public Tensor Attention(Tensor f)
        {
            long b = f.shape[0], h = f.shape[2], w = f.shape[3];
            var d = nn.functional.relu(bn_dws.call(conv_dws.call(f)));
            d = maxpool.call(ChannelsLast(d));   // channels-last: same result, much faster kernel (see ChannelsLast)
            var p = nn.functional.relu(bn_point.call(conv_point.call(d)));
            return p.reshape(b, 1, h * w).softmax(-1);
        }

        public override Tensor forward(Tensor f) => Apply(f, Attention(f));

        /// <summary>F rescaled by its map A [B, 1, H·W].</summary>
        public Tensor Apply(Tensor f, Tensor attention)
        {
            var a = attention.reshape(f.shape[0], 1, f.shape[2], f.shape[3]);
            return (a * f).add(f, One);   // (1 + A) ⊙ F, in the reference's order of operations
        }
    }
}
