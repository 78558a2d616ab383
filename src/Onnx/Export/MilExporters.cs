using MLNet.Attention.MultipleInstance;
using MLNet.Attention.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.OnnxExport.OnnxExportContext;

namespace MLNet.Attention.OnnxExport;

/// <summary>What the eval forward of a bag network gives: bag logits <c>[bags, C]</c>, the bag attention
/// <c>[bags, instances]</c> and ACMIL's per-branch attention <c>[bags, instances, M]</c> (null for ABMIL).</summary>
internal readonly record struct MilGraphOutputs(OnnxValue Logits, OnnxValue Attention, OnnxValue? BranchAttention);

/// <summary>
/// Exporters of the multiple-instance networks (src/Modules/MultipleInstance) on unpadded bags
/// <c>[bags, instances, D]</c>, both dimensions dynamic: every bag of one run has the same number of instances, so no
/// mask is needed and the softmax over the instance axis is the module's own (the padding mask only ever sets
/// padded slots to −∞). STKIM masking is training-only (refused in training mode), dropout is the identity, and the
/// LeNet instance encoder runs on all bags × instances images at once.
/// </summary>
internal static class MilExporters
{
    public static void Register(OnnxModuleRegistry registry)
    {
        registry
            .Register<Tanh>((c, _, x, p) => c.Graph.Tanh(x, Hint(p)))
            .Register<LeNetInstanceEncoder>(ExportLeNet)
            .Register<MilDimensionReduction>(ExportDimensionReduction)
            .Register<MilClassifier>(ExportClassifier)
            .Register<GatedAttentionPooling>(ExportPooling)
            .Register<GatedAttentionMil>((c, m, x, p) => ExportGatedAttention(c, m, x, p).Logits)
            .Register<Acmil>((c, m, x, p) => ExportAcmil(c, m, x, p).Logits)
            .Register<AttentionMilNetwork>((c, m, x, p) => ExportNetwork(c, m, x, p).Logits);
    }

    /// <summary>The bag network: standardisation (skipped when it is the identity, as the network skips it), the
    /// LeNet encoder if any, then the gated-attention or ACMIL network.</summary>
    public static MilGraphOutputs ExportNetwork(OnnxExportContext context, AttentionMilNetwork network, OnnxValue x,
        string path)
    {
        RequireEval(network, path);
        RequireBags(network, x, network.Config.FeatureSize, path);
        var g = context.Graph;
        var buffers = network.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        var mean = buffers["feature_mean"];
        var std = buffers["feature_std"];
        bool identity;
        using (NewDisposeScope())
            identity = mean.eq(TorchScalars.Of(0.0)).all().item<bool>()
                       && std.eq(TorchScalars.Of(1.0)).all().item<bool>();
        if (!identity)
        {
            string hint = Hint(Join(path, "standardize"));
            x = g.Sub(x, context.Parameter(mean, hint + ".feature_mean"), hint + ".centred");
            x = g.Div(x, context.Parameter(std, hint + ".feature_std"), hint);
        }
        if (OptionalChild(network, "encoder") is { } encoder) x = context.Export(encoder, x, Join(path, "encoder"));
        var mil = OptionalChild(network, "mil")
            ?? throw new NotSupportedException($"ONNX export: the AttentionMilNetwork at '{Describe(path)}' has no " +
                "child 'mil'; this exporter does not match the module's version.");
        string milPath = Join(path, "mil");
        return mil switch
        {
            GatedAttentionMil gated => ExportGatedAttention(context, gated, x, milPath),
            Acmil acmil => ExportAcmil(context, acmil, x, milPath),
            _ => throw new NotSupportedException($"ONNX export: the module at '{milPath}' is a " +
                $"{mil.GetType().FullName}; the bag network's exporter writes GatedAttentionMil and Acmil only."),
        };
    }

    /// <summary>ABMIL: h = ReLU(x Wᵀ) (unless the network skips it), a = softmax over the instances of the gated
    /// attention logits, z = a·h, logits = classifier(z).</summary>
    public static MilGraphOutputs ExportGatedAttention(OnnxExportContext context, GatedAttentionMil net, OnnxValue x,
        string path)
    {
        RequireEval(net, path);
        RequireBags(net, x, net.Config.FeatureSize, path);
        var g = context.Graph;
        var h = Reduce(context, net, x, path);
        var pooling = Child<GatedAttentionPooling>(net, "attention", path);
        var weights = g.Softmax(AttentionLogits(context, pooling, h, Join(path, "attention")), 2,
            Hint(Join(path, "attention.softmax")));                                               // [B, 1, N]
        var z = g.Squeeze(g.MatMul(weights, h, Hint(Join(path, "pool"))), new long[] { 1 }, Hint(Join(path, "bag")));
        var logits = context.Export(Child<MilClassifier>(net, "classifier", path), z, Join(path, "classifier"));
        return new MilGraphOutputs(logits, g.Squeeze(weights, new long[] { 1 }, Hint(Join(path, "attention_weights"))),
            null);
    }

    /// <summary>ACMIL in eval mode, as its forward: per-branch softmax over the instances [B, M, N], the bag
    /// attention = their mean over the branches, slide logits = Slide_classifier(bag attention · h). The branch
    /// classifiers feed only the training losses, so they are not in the graph.</summary>
    public static MilGraphOutputs ExportAcmil(OnnxExportContext context, Acmil net, OnnxValue x, string path)
    {
        RequireEval(net, path);   // in training mode STKIM masks random top-K instances
        RequireBags(net, x, net.Config.FeatureSize, path);
        var g = context.Graph;
        var h = Reduce(context, net, x, path);
        var pooling = Child<GatedAttentionPooling>(net, "attention", path);
        var branches = g.Softmax(AttentionLogits(context, pooling, h, Join(path, "attention")), 2,
            Hint(Join(path, "attention.softmax")));                                               // [B, M, N]
        var bag = g.ReduceMean(branches, new long[] { 1 }, keepDims: true, Hint(Join(path, "bag_attention")));
        var z = g.Squeeze(g.MatMul(bag, h, Hint(Join(path, "pool"))), new long[] { 1 }, Hint(Join(path, "bag")));
        var logits = context.Export(Child<MilClassifier>(net, "Slide_classifier", path), z,
            Join(path, "Slide_classifier"));
        return new MilGraphOutputs(logits, g.Squeeze(bag, new long[] { 1 }, Hint(Join(path, "attention_weights"))),
            g.Transpose(branches, new long[] { 0, 2, 1 }, Hint(Join(path, "branch_attention"))));
    }

    /// <summary>The gated attention logits <c>[B, K, N]</c>: W_w (tanh(V h + b_V) ⊙ sigmoid(U h + b_U)) + b_w, the
    /// heads moved in front of the instances.</summary>
    private static OnnxValue AttentionLogits(OnnxExportContext context, GatedAttentionPooling pooling, OnnxValue h,
        string path)
    {
        RequireBags(pooling, h, pooling.InputSize, path);
        var g = context.Graph;
        var v = context.Export(Child<Sequential>(pooling, "attention_V", path), h, Join(path, "attention_V"));
        var u = context.Export(Child<Sequential>(pooling, "attention_U", path), h, Join(path, "attention_U"));
        var gated = g.Mul(v, u, Hint(Join(path, "gated")));
        var logits = context.Export(Child<Linear>(pooling, "attention_weights", path), gated,
            Join(path, "attention_weights"));                                                     // [B, N, K]
        return g.Transpose(logits, new long[] { 0, 2, 1 }, Hint(Join(path, "logits")));
    }

    /// <summary>The pooling module's own forward on unpadded bags: the pooled vectors <c>[B, K, L]</c>.</summary>
    private static OnnxValue ExportPooling(OnnxExportContext context, GatedAttentionPooling pooling, OnnxValue h,
        string path)
    {
        var weights = context.Graph.Softmax(AttentionLogits(context, pooling, h, path), 2, Hint(Join(path, "softmax")));
        return context.Graph.MatMul(weights, h, Hint(path));
    }

    /// <summary>Ilse et al.'s LeNet on every instance image: [B, N, C·H·W] → [B·N, C, H, W] → conv 5 → ReLU →
    /// max-pool 2 → conv 5 → ReLU → max-pool 2 → flatten → Linear → ReLU → [B, N, L] (B and N from the run-time
    /// shape of the input).</summary>
    private static OnnxValue ExportLeNet(OnnxExportContext context, LeNetInstanceEncoder encoder, OnnxValue x,
        string path)
    {
        RequireBags(encoder, x, encoder.InputSize, path);
        var g = context.Graph;
        var h = g.Reshape(x, new long[] { -1, encoder.Channels, encoder.Height, encoder.Width },
            Hint(Join(path, "images")));
        foreach (var (conv, pool) in new[] { ("conv1", "pool1"), ("conv2", "pool2") })
        {
            h = g.Relu(context.Export(Child<Conv2d>(encoder, conv, path), h, Join(path, conv)),
                Hint(Join(path, conv + ".relu")));
            h = g.MaxPool(h, new long[] { 2, 2 }, new long[] { 2, 2 }, new long[] { 0, 0, 0, 0 },
                Hint(Join(path, pool)));
        }
        h = g.Flatten(h, 1, Hint(Join(path, "flatten")));
        h = g.Relu(context.Export(Child<Linear>(encoder, "fc", path), h, Join(path, "fc")),
            Hint(Join(path, "fc.relu")));
        var shape = g.Concat(new[] { g.Shape(x, 0, 2, Hint(Join(path, "bags_instances"))),
            g.Int64s(Hint(Join(path, "width")), encoder.OutputSize) }, 0, Hint(Join(path, "features_shape")));
        return g.Reshape(h, shape, new[] { x.Shape[0], x.Shape[1], encoder.OutputSize }, Hint(Join(path, "features")));
    }

    private static OnnxValue Reduce(OnnxExportContext context, nn.Module net, OnnxValue x, string path)
        => OptionalChild(net, "dimreduction") is { } reduction
            ? context.Export(reduction, x, Join(path, "dimreduction")) : x;

    private static OnnxValue ExportDimensionReduction(OnnxExportContext context, MilDimensionReduction reduction,
        OnnxValue x, string path)
    {
        var y = context.Export(Child<Linear>(reduction, "fc1", path), x, Join(path, "fc1"));
        return context.Graph.Relu(y, Hint(Join(path, "relu")));
    }

    private static OnnxValue ExportClassifier(OnnxExportContext context, MilClassifier classifier, OnnxValue x,
        string path)
    {
        if (OptionalChild(classifier, "dropout") is { } dropout) x = context.Export(dropout, x, Join(path, "dropout"));
        return context.Export(Child<Linear>(classifier, "fc", path), x, Join(path, "fc"));
    }

    // The modules also take one bag [N, D] and padded batches with a mask; the graph is for unpadded [B, N, D].
    private static void RequireBags(nn.Module module, OnnxValue x, long features, string path)
    {
        if (x.Rank != 3 || x.Shape[2] != features)
            throw new NotSupportedException($"ONNX export: the {module.GetType().Name} at '{Describe(path)}' is " +
                $"exported for bags [bags, instances, {features}]; got {x}.");
    }

    private static string Describe(string path) => path.Length == 0 ? "(the network itself)" : path;
}
