using MLNet.Attention.Classification;
using MLNet.Attention.Vision;
using MLNet.Attention.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNet.Attention.OnnxExport.OnnxExportContext;

namespace MLNet.Attention.OnnxExport;

/// <summary>Exporters of the vision blocks and backbones (src/Modules/Vision) and of the image classifier's network.
/// Each writes what the module's eval forward computes, in NCHW (the channels-last paths of ELA and ULSAM are memory
/// layouts of the same values).</summary>
internal static class VisionExporters
{
    public static void Register(OnnxModuleRegistry registry)
    {
        registry
            .Register<ImageClassifierNetwork>(ExportImageClassifierNetwork)
            .Register<MobileNetV2>(ExportMobileNetV2)
            .Register<InvertedResidual>(ExportInvertedResidual)
            .Register<ResNet>(ExportResNet)
            .Register<BasicBlock>(ExportBasicBlock)
            .Register<MobileNetV1>(ExportMobileNetV1)
            .Register<EfficientLocalAttention>(ExportEla)
            .Register<UltraLightSubspaceAttention>(ExportUlsam);
    }

    /// <summary>[B, C·H·W] raw CHW pixels → logits: the per-channel x·scale + shift of the network's normalisation, then
    /// the backbone.</summary>
    private static OnnxValue ExportImageClassifierNetwork(OnnxExportContext context, ImageClassifierNetwork network,
        OnnxValue pixels, string path)
        => context.Export(network.Backbone, Normalise(context, network, pixels, path), Join(path, "backbone"));

    private static OnnxValue Normalise(OnnxExportContext context, ImageClassifierNetwork network, OnnxValue pixels,
        string path)
    {
        var c = network.Config;
        var g = context.Graph;
        string hint = Hint(path);
        var x = g.Reshape(pixels, new long[] { 0, c.Channels, c.Height, c.Width }, hint + ".image");
        // The same float arithmetic as ImageClassifierNetwork's constructor: scale = s/σ, shift = −μ/σ.
        var scale = c.Std.Select(s => c.PixelScale / s).ToArray();
        var shift = c.Mean.Zip(c.Std, (m, s) => -m / s).ToArray();
        x = g.Mul(x, g.Initializer(hint + ".pixel_scale", scale, 1, c.Channels, 1, 1), hint + ".scaled");
        return g.Add(x, g.Initializer(hint + ".pixel_shift", shift, 1, c.Channels, 1, 1), hint + ".normalised");
    }

    /// <summary>The network's <c>ForwardFeatures</c>: [B, C·H·W] raw pixels → the backbone's pooled features (the
    /// head's input), as the image featurizer computes them.</summary>
    public static OnnxValue ExportImageFeatures(OnnxExportContext context, ImageClassifierNetwork network,
        OnnxValue pixels, string path)
    {
        var x = Normalise(context, network, pixels, path);
        string backbone = Join(path, "backbone");
        return network.Backbone switch
        {
            MobileNetV2 m => MobileNetV2Features(context, m, x, backbone),
            ResNet r => ResNetFeatures(context, r, x, backbone),
            MobileNetV1 v => MobileNetV1Features(context, v, x, backbone),
            var other => throw new NotSupportedException($"ONNX export: the backbone at '{backbone}' is a " +
                $"{other.GetType().FullName}, whose features have no exporter."),
        };
    }

    private static OnnxValue ExportMobileNetV2(OnnxExportContext context, MobileNetV2 net, OnnxValue x, string path)
        => context.Export(net.Classifier, MobileNetV2Features(context, net, x, path), Join(path, "classifier"));

    private static OnnxValue MobileNetV2Features(OnnxExportContext context, MobileNetV2 net, OnnxValue x, string path)
    {
        x = context.Export(net.Features, x, Join(path, "features"));
        x = context.Export(net.FinalConv, x, Join(path, "conv"));
        return context.Graph.ReduceMean(x, new long[] { 2, 3 }, keepDims: false, Hint(Join(path, "pool")));
    }

    private static OnnxValue ExportInvertedResidual(OnnxExportContext context, InvertedResidual block, OnnxValue x,
        string path)
    {
        var y = context.Export(Child<Sequential>(block, "conv", path), x, Join(path, "conv"));
        return block.HasIdentity ? context.Graph.Add(x, y, Hint(Join(path, "residual"))) : y;
    }

    private static OnnxValue ExportResNet(OnnxExportContext context, ResNet net, OnnxValue x, string path)
        => context.Export(net.Classifier, ResNetFeatures(context, net, x, path), Join(path, "fc"));

    private static OnnxValue ResNetFeatures(OnnxExportContext context, ResNet net, OnnxValue x, string path)
    {
        var g = context.Graph;
        var h = LayerExporters.ConvBn(context, Child<Conv2d>(net, "conv1", path), FoldableChild(net, "bn1", path), x,
            Join(path, "conv1"), Join(path, "bn1"));
        h = g.Relu(h, Hint(Join(path, "relu")));
        foreach (var stage in new[] { "layer1", "layer2", "layer3", "layer4" })
            h = context.Export(Child<Sequential>(net, stage, path), h, Join(path, stage));
        return g.ReduceMean(h, new long[] { 2, 3 }, keepDims: false, Hint(Join(path, "pool")));
    }

    private static OnnxValue ExportBasicBlock(OnnxExportContext context, BasicBlock block, OnnxValue x, string path)
    {
        var g = context.Graph;
        var o = LayerExporters.ConvBn(context, Child<Conv2d>(block, "conv1", path), FoldableChild(block, "bn1", path), x,
            Join(path, "conv1"), Join(path, "bn1"));
        o = g.Relu(o, Hint(Join(path, "relu1")));
        o = LayerExporters.ConvBn(context, Child<Conv2d>(block, "conv2", path), FoldableChild(block, "bn2", path), o,
            Join(path, "conv2"), Join(path, "bn2"));
        if (block.Attention is { } attention)
        {
            var a = context.Export(attention, o, Join(path, "feat0"));
            o = block.AttentionResidual ? g.Add(o, a, Hint(Join(path, "feat0.residual"))) : a;
        }
        var identity = OptionalChild(block, "downsample") is Sequential downsample
            ? context.Export(downsample, x, Join(path, "downsample"))
            : x;
        return g.Relu(g.Add(o, identity, Hint(Join(path, "add"))), Hint(Join(path, "relu2")));
    }

    private static OnnxValue ExportMobileNetV1(OnnxExportContext context, MobileNetV1 net, OnnxValue x, string path)
        => context.Export(Child<Linear>(net, "classifier", path), MobileNetV1Features(context, net, x, path),
            Join(path, "classifier"));

    private static OnnxValue MobileNetV1Features(OnnxExportContext context, MobileNetV1 net, OnnxValue x, string path)
    {
        x = context.Export(Child<Sequential>(net, "features", path), x, Join(path, "features"));
        return context.Graph.ReduceMean(x, new long[] { 2, 3 }, keepDims: false, Hint(Join(path, "pool")));
    }

    /// <summary>ELA: y = x ⊙ σ(GN(conv(mean_W x)))[…, None] ⊙ σ(GN(conv(mean_H x)))[…, None, :], the conv and the
    /// GroupNorm shared by both strips (their weights written once), plus x with the extra residual.</summary>
    private static OnnxValue ExportEla(OnnxExportContext context, EfficientLocalAttention ela, OnnxValue x, string path)
    {
        var g = context.Graph;
        var conv = Child<Conv1d>(ela, "conv", path);
        var gn = Child<GroupNorm>(ela, "gn", path);
        OnnxValue Strip(long pooledAxis, long unsqueezeAxis, string name)
        {
            string hint = Hint(Join(path, name));
            var z = g.ReduceMean(x, new[] { pooledAxis }, keepDims: false, hint + ".pool");   // [B, C, L]
            z = context.Export(conv, z, Join(path, "conv"));
            z = context.Export(gn, z, Join(path, "gn"));
            return g.Unsqueeze(g.Sigmoid(z, hint + ".sigmoid"), new[] { unsqueezeAxis }, hint);
        }
        var ah = Strip(3, 3, "a_h");    // mean over W → [B, C, H, 1]
        var aw = Strip(2, 2, "a_w");    // mean over H → [B, C, 1, W]
        var y = g.Mul(g.Mul(x, ah, Hint(Join(path, "rows"))), aw, Hint(Join(path, "cols")));
        return ela.ExtraResidual ? g.Add(x, y, Hint(Join(path, "residual"))) : y;
    }

    /// <summary>
    /// ULSAM in eval mode, all g subspaces at once as its fused eval path: depthwise 1×1 conv + BatchNorm as one
    /// per-channel affine map, ReLU, 3×3 max-pool, the g pointwise convs (BatchNorm folded) as one grouped conv C → g,
    /// ReLU, softmax over the H·W positions, and F + A ⊙ F per subspace.
    /// </summary>
    private static OnnxValue ExportUlsam(OnnxExportContext context, UltraLightSubspaceAttention ulsam, OnnxValue x,
        string path)
    {
        RequireEval(ulsam, path);
        var g = context.Graph;
        string hint = Hint(path);
        int groups = ulsam.SubspaceCount, c = ulsam.Channels, width = c / groups;
        var list = Child<nn.Module>(ulsam, "subspaces", path);
        var subspaces = list.named_children().Select(s => (Path: Join(Join(path, "subspaces"), s.name), Module: s.module))
            .ToArray();
        if (subspaces.Length != groups)
            throw new NotSupportedException($"ONNX export: the ULSAM at '{path}' has {subspaces.Length} subspace modules " +
                $"for {groups} subspaces.");
        OnnxValue depthScale, depthShift, pointWeight, pointBias;
        MaxPool2d? pool = null;
        using (NewDisposeScope())
        {
            var scales = new List<Tensor>();
            var shifts = new List<Tensor>();
            var weights = new List<Tensor>();
            var biases = new List<Tensor>();
            foreach (var (p, s) in subspaces)
            {
                var dws = Child<Conv2d>(s, "conv_dws", p);
                var (a, b) = Affine(FoldableChild(s, "bn_dws", p), Join(p, "bn_dws"));
                scales.Add(dws.weight!.detach().to_type(ScalarType.Float64).reshape(-1) * a);
                shifts.Add((dws.bias!.detach().to_type(ScalarType.Float64) * a).add(b, TorchScalars.One));
                var point = Child<Conv2d>(s, "conv_point", p);
                var (pa, pb) = Affine(FoldableChild(s, "bn_point", p), Join(p, "bn_point"));
                weights.Add(point.weight!.detach().to_type(ScalarType.Float64) * pa.view(-1, 1, 1, 1));
                biases.Add((point.bias!.detach().to_type(ScalarType.Float64) * pa).add(pb, TorchScalars.One));
                var mp = Child<MaxPool2d>(s, "maxpool", p);
                if (!SamePool(mp, pool ??= mp))
                    throw new NotSupportedException($"ONNX export: the subspaces of the ULSAM at '{path}' pool differently.");
            }
            depthScale = g.Initializer(hint + ".depthwise_scale", cat(scales.ToArray()).view(1, c, 1, 1));
            depthShift = g.Initializer(hint + ".depthwise_shift", cat(shifts.ToArray()).view(1, c, 1, 1));
            pointWeight = g.Initializer(hint + ".pointwise_weight", cat(weights.ToArray()));
            pointBias = g.Initializer(hint + ".pointwise_bias", cat(biases.ToArray()));
        }
        var d = g.Relu(g.Add(g.Mul(x, depthScale, hint + ".dws"), depthShift, hint + ".dws_bn"), hint + ".dws_relu");
        d = context.Export(pool!, d, Join(subspaces[0].Path, "maxpool"));
        var point2 = g.Conv(d, pointWeight, pointBias, new long[] { 1, 1 }, new long[] { 0, 0, 0, 0 }, new long[] { 1, 1 },
            groups, hint + ".point");
        var maps = g.Softmax(g.Reshape(g.Relu(point2, hint + ".point_relu"), new long[] { 0, groups, -1 }, hint + ".flat"),
            -1, hint + ".maps");                                                           // [B, g, H·W]
        var a4 = g.Unsqueeze(maps, new long[] { 2 }, hint + ".maps4");                   // [B, g, 1, H·W]
        var f = g.Reshape(x, new long[] { 0, groups, width, -1 }, hint + ".subspaces");   // [B, g, G, H·W]
        var y = g.Add(f, g.Mul(a4, f, hint + ".attended"), hint + ".rescaled");          // F + A ⊙ F
        return g.ReshapeLike(y, x, hint);
    }

    private static (Tensor Scale, Tensor Shift) Affine(BatchNorm bn, string path)
    {
        RequireEval(bn, path);
        return LayerExporters.BatchNormAffine(bn);
    }

    private static bool SamePool(MaxPool2d a, MaxPool2d b)
        => a.kernel_size.SequenceEqual(b.kernel_size)
            && (a.stride ?? a.kernel_size).SequenceEqual(b.stride ?? b.kernel_size)
            && (a.padding ?? Array.Empty<long>()).SequenceEqual(b.padding ?? Array.Empty<long>())
            && a.ceil_mode == b.ceil_mode;

    /// <summary>A BatchNorm child that can be folded (eval mode, running statistics, affine).</summary>
    private static BatchNorm FoldableChild(nn.Module parent, string name, string path)
    {
        var module = Child<nn.Module>(parent, name, path);
        if (!LayerExporters.IsFoldable(module, out var bn) || bn.weight is null || bn.bias is null)
        {
            RequireEval(module, Join(path, name));
            throw new NotSupportedException($"ONNX export: '{Join(path, name)}' is a {module.GetType().FullName} without " +
                "running statistics or affine parameters; the exporter expects an eval-mode BatchNorm2d.");
        }
        return bn;
    }
}
