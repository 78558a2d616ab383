using Google.Protobuf;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Transforms.Onnx;
using MLNet.Attention.Classification;
using MLNet.Attention.OnnxExport;
using MLNet.Attention.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.OnnxExport;

/// <summary>
/// ONNX export of the image classifier: ONNX Runtime's Score equals our transformer's Score (≤ 1e-5) for each
/// backbone × attention, trained one epoch so that every BatchNorm has moved running statistics (BatchNorm
/// recalibration), and ApplyOnnxModel in an ML.NET pipeline gives the same Score column.
/// </summary>
[TestClass]
public sealed class ImageClassifierOnnxExportTests
{
    private const int Side = 32, Pixels = 3 * Side * Side;
    private const double Tolerance = 1e-5;

    public sealed class ImageRow
    {
        [VectorType(Pixels)] public float[] Features { get; set; } = new float[Pixels];
        public string Label { get; set; } = "";
    }

    /// <summary>0–255 pixels of side × side images: a bright square of the class's colour at a random place, on
    /// noise; three classes.</summary>
    internal static ImageRow[] Images(int count, int seed, int side = Side)
    {
        var rng = new Random(seed);
        int square = side * 5 / 16;
        return Enumerable.Range(0, count).Select(i =>
        {
            int channel = i % 3;
            var p = new float[3 * side * side];
            for (int k = 0; k < p.Length; k++) p[k] = (float)(rng.NextDouble() * 80);
            int top = rng.Next(side - square), left = rng.Next(side - square);
            for (int y = top; y < top + square; y++)
                for (int x = left; x < left + square; x++)
                    p[channel * side * side + y * side + x] = 230;
            return new ImageRow { Features = p, Label = new[] { "red", "green", "blue" }[channel] };
        }).ToArray();
    }

    /// <summary>The rows as a data view whose Features column is Vector&lt;Single, 3·side·side&gt;.</summary>
    internal static IDataView Load(MLContext ml, ImageRow[] rows)
    {
        var schema = SchemaDefinition.Create(typeof(ImageRow));
        schema["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, rows[0].Features.Length);
        return ml.Data.LoadFromEnumerable(rows, schema);
    }

    internal static ImageClassifierModel Train(MLContext ml, ImageBackbone backbone, ImageAttention attention, double width,
        int side = Side)
    {
        var options = new ImageClassifierOptions
        {
            Backbone = backbone, Attention = attention, WidthMultiplier = width, MaxEpochs = 1, BatchSize = 8,
            LearningRate = 1e-3, NumberOfThreads = 1, Seed = 3, ValidationFraction = 0, EarlyStoppingPatience = null,
            ImageHeight = side, ImageWidth = side,
        };
        var images = Load(ml, Images(24, 1, side));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(images).Transform(images);
        return ml.MulticlassClassification.Trainers.ImageClassifier(options).Fit(keyed);
    }

    private static InferenceSession Session(byte[] model)
    {
        var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        return new InferenceSession(model, options);
    }

    /// <summary>ONNX Runtime on [n, width] rows → the named output, flattened.</summary>
    private static float[] RunOrt(byte[] model, string input, float[] rows, int n, string output)
        => RunOrt(model, input, rows, new long[] { n, rows.Length / n }, output);

    private static float[] RunOrt(byte[] model, string input, float[] values, long[] shape, string output)
    {
        using var session = Session(model);
        using var value = OrtValue.CreateTensorValueFromMemory(values, shape);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, new[] { input }, new[] { value }, new[] { output });
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static double MaxAbsDiff(float[] a, float[] b)
    {
        Assert.AreEqual(a.Length, b.Length);
        return a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
    }

    /// <summary>Guards the premise of the tests: trained BatchNorms, whose folding bugs would otherwise hide.</summary>
    private static void AssertRunningStatisticsMoved(nn.Module network)
    {
        var means = network.named_buffers().Where(b => b.name.EndsWith("running_mean")).ToArray();
        Assert.IsTrue(means.Length > 0);
        Assert.IsTrue(means.Count(b => b.buffer.abs().max().item<float>() > 1e-3) > means.Length / 2,
            "most BatchNorms should have non-zero running means after training");
    }

    /// <remarks>MobileNet V1 runs on 64 × 64 images: at 32 × 32 its stride-2 stem leaves 1 × 1 maps in the last
    /// layers, whose BatchNorm variances after one epoch are ~1e-7, and TorchSharp's own float32 logits then differ by
    /// ~3e-5 from its float64 forward — more than the tolerance, whatever the graph. The second check says the same
    /// for every model: the graph is no further from the float64 forward than TorchSharp's float32 forward is.</remarks>
    [TestMethod]
    [DataRow(ImageBackbone.MobileNetV2, ImageAttention.None, 0.25, 32)]
    [DataRow(ImageBackbone.MobileNetV2, ImageAttention.ElaB, 0.25, 32)]
    [DataRow(ImageBackbone.MobileNetV2, ImageAttention.ElaS, 0.25, 32)]
    [DataRow(ImageBackbone.MobileNetV2, ImageAttention.ElaL, 0.35, 32)]
    [DataRow(ImageBackbone.MobileNetV2, ImageAttention.Ulsam, 0.25, 32)]
    [DataRow(ImageBackbone.ResNet18, ImageAttention.None, 1.0, 32)]
    [DataRow(ImageBackbone.ResNet18, ImageAttention.ElaT, 1.0, 32)]
    [DataRow(ImageBackbone.ResNet18, ImageAttention.ElaB, 1.0, 32)]
    [DataRow(ImageBackbone.MobileNetV1, ImageAttention.None, 0.25, 64)]
    [DataRow(ImageBackbone.MobileNetV1, ImageAttention.Ulsam, 0.25, 64)]
    public void OnnxRuntimeScoresEqualTheTransformer(ImageBackbone backbone, ImageAttention attention, double width,
        int side)
    {
        var ml = new MLContext(seed: 1);
        using var model = Train(ml, backbone, attention, width, side);
        AssertRunningStatisticsMoved(model.Network);
        var rows = Images(12, 7, side);
        var pixels = rows.SelectMany(r => r.Features).ToArray();
        var expected = model.Transform(Load(ml, rows)).GetColumn<float[]>("Score").SelectMany(s => s).ToArray();

        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);
        var actual = RunOrt(stream.ToArray(), "Features", pixels, rows.Length, "Score");

        double delta = MaxAbsDiff(expected, actual);
        string name = $"{backbone} + {attention} (width {width}, {side}×{side})";
        Console.WriteLine($"{name}: max |ORT − Transform| Score = {delta:E2} over {rows.Length} images × 3 classes");
        Assert.IsTrue(delta <= Tolerance, $"{name}: max |Δ| = {delta}");
        Assert.IsTrue(expected.Max() - expected.Min() > 1e-4, "the scores should differ between classes and images");

        // Logits against the float64 forward of the same weights.
        float[] torch32;
        double[] torch64;
        using (no_grad())
        using (var x = tensor(pixels).view(rows.Length, -1))
        {
            torch32 = model.Network.call(x).data<float>().ToArray();
            model.Network.to(ScalarType.Float64);
            try
            {
                torch64 = model.Network.call(x.to(ScalarType.Float64)).data<double>().ToArray();
            }
            finally
            {
                model.Network.to(ScalarType.Float32);   // float32 → float64 → float32 is exact
            }
        }
        var logits = OnnxModelExport.Module(model.Network, new long[] { -1, pixels.Length / rows.Length }).ToByteArray();
        var ort = RunOrt(logits, "input", pixels, rows.Length, "output");
        double ortError = ort.Zip(torch64, (a, b) => Math.Abs(a - b)).Max();
        double torchError = torch32.Zip(torch64, (a, b) => Math.Abs(a - b)).Max();
        Console.WriteLine($"{name}: logits max |ORT − float64| = {ortError:E2}, |TorchSharp float32 − float64| = " +
            $"{torchError:E2}");
        Assert.IsTrue(ortError <= 2 * torchError + 1e-6, $"{name}: the graph is further from the float64 forward " +
            $"({ortError}) than TorchSharp's float32 forward ({torchError})");
    }

    [TestMethod]
    public void TheGraphIsOpset17WithADynamicBatchAndTheModelsMetadata()
    {
        var ml = new MLContext(seed: 1);
        using var model = Train(ml, ImageBackbone.MobileNetV2, ImageAttention.ElaL, 0.35);
        string path = Path.Combine(Path.GetTempPath(), $"onnx-export-{Environment.ProcessId}.onnx");
        try
        {
            model.ExportToOnnx(path);
            var proto = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            Assert.AreEqual(17L, proto.OpsetImport.Single(o => o.Domain == "").Version);
            var input = proto.Graph.Input.Single();
            Assert.AreEqual("Features", input.Name);
            Assert.AreEqual("batch", input.Type.TensorType.Shape.Dim[0].DimParam);
            Assert.AreEqual(Pixels, input.Type.TensorType.Shape.Dim[1].DimValue);
            var output = proto.Graph.Output.Single();
            Assert.AreEqual("Score", output.Name);
            Assert.AreEqual(3L, output.Type.TensorType.Shape.Dim[1].DimValue);
            var nodes = proto.Graph.Node;
            Assert.AreEqual(nodes.Count, nodes.Select(n => n.Name).Distinct().Count(), "unique node names");
            var tensors = nodes.SelectMany(n => n.Output).Concat(proto.Graph.Initializer.Select(i => i.Name)).ToArray();
            Assert.AreEqual(tensors.Length, tensors.Distinct().Count(), "unique tensor names");
            Assert.IsFalse(proto.Graph.Node.Any(n => n.OpType == "BatchNormalization"), "BatchNorms folded into the convs");
            StringAssert.Contains(proto.MetadataProps.Single(p => p.Key == "labels").Value, "\"red\"");

            // Batches of 1 and 5 through the same file.
            var rows = Images(5, 9);
            var expected = model.Transform(Load(ml, rows)).GetColumn<float[]>("Score").ToArray();
            var bytes = File.ReadAllBytes(path);
            var one = RunOrt(bytes, "Features", rows[0].Features, 1, "Score");
            Assert.IsTrue(MaxAbsDiff(expected[0], one) <= Tolerance);
            var five = RunOrt(bytes, "Features", rows.SelectMany(r => r.Features).ToArray(), 5, "Score");
            Assert.IsTrue(MaxAbsDiff(expected.SelectMany(s => s).ToArray(), five) <= Tolerance);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void ApplyOnnxModelInAPipelineGivesTheTransformersScore()
    {
        var ml = new MLContext(seed: 1);
        var data = Load(ml, Images(24, 1));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.ImageClassifier(new ImageClassifierOptions
            {
                Backbone = ImageBackbone.MobileNetV2, Attention = ImageAttention.Ulsam, WidthMultiplier = 0.25,
                MaxEpochs = 1, BatchSize = 8, NumberOfThreads = 1, Seed = 3, ValidationFraction = 0,
                EarlyStoppingPatience = null,
            }));
        using var chain = pipeline.Fit(data);
        var test = Load(ml, Images(10, 5));
        var expected = chain.Transform(test).GetColumn<float[]>("Score").ToArray();

        // The catalog helper finds the classifier in the fitted pipeline.
        string path = Path.Combine(Path.GetTempPath(), $"onnx-pipeline-{Environment.ProcessId}.onnx");
        try
        {
            using (var file = File.Create(path)) ml.Model.ExportToOnnx(chain, file);
            var onnx = ml.Transforms.ApplyOnnxModel(new OnnxOptions
            {
                ModelFile = path, InputColumns = new[] { "Features" }, OutputColumns = new[] { "Score" },
                IntraOpNumThreads = 1, InterOpNumThreads = 1,
            }).Fit(test);
            var scored = onnx.Transform(test);
            var actual = scored.GetColumn<float[]>("Score").ToArray();
            Assert.AreEqual(expected.Length, actual.Length);
            double delta = expected.Zip(actual, MaxAbsDiff).Max();
            Console.WriteLine($"ApplyOnnxModel vs Transform: max |Δ| = {delta:E2}");
            Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");
            (onnx as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>The featurizer made from a trained classifier: its Features column from ONNX Runtime (the graph's
    /// output is Features_out: the input column is Features too) and through ApplyOnnxModel with another name.</summary>
    [TestMethod]
    [DataRow(ImageBackbone.MobileNetV2, ImageAttention.ElaB, 0.25, 32)]
    [DataRow(ImageBackbone.ResNet18, ImageAttention.ElaB, 1.0, 32)]
    [DataRow(ImageBackbone.MobileNetV1, ImageAttention.Ulsam, 0.25, 64)]
    public void TheImageFeaturizerExportsItsFeatures(ImageBackbone backbone, ImageAttention attention, double width,
        int side)
    {
        var ml = new MLContext(seed: 1);
        using var model = Train(ml, backbone, attention, width, side);
        using var featurizer = model.CreateFeaturizer();
        var rows = Images(8, 4, side);
        var expected = featurizer.Transform(Load(ml, rows)).GetColumn<float[]>("Features").SelectMany(f => f).ToArray();
        using var stream = new MemoryStream();
        featurizer.ExportToOnnx(stream);
        var actual = RunOrt(stream.ToArray(), "Features", rows.SelectMany(r => r.Features).ToArray(), rows.Length,
            "Features_out");
        double scale = expected.Max(Math.Abs), delta = MaxAbsDiff(expected, actual);

        // Against the float64 forward of the same weights (see OnnxRuntimeScoresEqualTheTransformer's remarks).
        double[] reference;
        using (no_grad())
        using (var x = tensor(rows.SelectMany(r => r.Features).ToArray()).view(rows.Length, -1))
        {
            featurizer.Network.to(ScalarType.Float64);
            try
            {
                reference = featurizer.Network.ForwardFeatures(x.to(ScalarType.Float64)).data<double>().ToArray();
            }
            finally
            {
                featurizer.Network.to(ScalarType.Float32);
            }
        }
        double ortError = actual.Zip(reference, (a, b) => Math.Abs(a - b)).Max();
        double torchError = expected.Zip(reference, (a, b) => Math.Abs(a - b)).Max();
        Console.WriteLine($"Featurizer {backbone} + {attention}: max |ORT − Transform| = {delta:E2} (features up to " +
            $"{scale:F2}, {expected.Length / rows.Length} per image); vs float64: ORT {ortError:E2}, TorchSharp " +
            $"float32 {torchError:E2}");
        Assert.IsTrue(ortError <= 2 * torchError + 1e-6, "the graph is further from the float64 forward than " +
            $"TorchSharp's float32 forward ({ortError} vs {torchError})");
        // Equal within 1e-5 (relative to the features' size), or within TorchSharp's own float32 error where that is
        // larger (MobileNet V1's small late maps and tiny BatchNorm variances).
        double bound = Math.Max(1e-5 * Math.Max(1, scale), 2 * torchError);
        Assert.IsTrue(delta <= bound, $"max |Δ| = {delta}");

        using var named = model.CreateFeaturizer(outputColumnName: "Embedding");
        string path = Path.Combine(Path.GetTempPath(), $"onnx-featurizer-{Environment.ProcessId}.onnx");
        try
        {
            ml.Model.ExportToOnnx(named, path);
            var onnx = ml.Transforms.ApplyOnnxModel("Embedding", "Features", path).Fit(Load(ml, rows));
            var viaPipeline = onnx.Transform(Load(ml, rows)).GetColumn<float[]>("Embedding").SelectMany(f => f).ToArray();
            Assert.IsTrue(MaxAbsDiff(expected, viaPipeline) <= bound, "ApplyOnnxModel's Embedding column");
            (onnx as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    public sealed class PictureRow
    {
        [ImageType(Side, Side)] public MLImage Image { get; set; } = null!;
        public string Label { get; set; } = "";
    }

    /// <summary>The documented route for a model trained on an Image column: the scoring pipeline extracts the pixels
    /// (ExtractPixels' defaults) into a column named like the model's feature column, which the graph takes.</summary>
    [TestMethod]
    public void AModelTrainedOnImagesScoresThroughExtractPixelsAndApplyOnnxModel()
    {
        static PictureRow[] Pictures(int count, int seed) => Images(count, seed).Select(r =>
        {
            var rgba = new byte[Side * Side * 4];
            for (int k = 0; k < Side * Side; k++)
            {
                for (int c = 0; c < 3; c++) rgba[4 * k + c] = (byte)Math.Round(r.Features[c * Side * Side + k]);
                rgba[4 * k + 3] = 255;
            }
            var image = MLImage.CreateFromPixels(Side, Side, MLPixelFormat.Rgba32, rgba);
            return new PictureRow { Image = image, Label = r.Label };
        }).ToArray();
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Pictures(24, 1));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(train).Transform(train);
        using var model = ml.MulticlassClassification.Trainers.ImageClassifier(new ImageClassifierOptions
        {
            FeatureColumnName = "Image", Backbone = ImageBackbone.MobileNetV2, Attention = ImageAttention.ElaL,
            WidthMultiplier = 0.35, MaxEpochs = 1, BatchSize = 8, NumberOfThreads = 1, Seed = 3, ValidationFraction = 0,
            EarlyStoppingPatience = null,
        }).Fit(keyed);
        Assert.AreEqual(ImageInputKind.Image, model.InputKind);
        var test = ml.Data.LoadFromEnumerable(Pictures(8, 5));
        var expected = model.Transform(test).GetColumn<float[]>("Score").ToArray();

        string path = Path.Combine(Path.GetTempPath(), $"onnx-images-{Environment.ProcessId}.onnx");
        try
        {
            model.ExportToOnnx(path);
            var scoring = ml.Transforms.ExtractPixels("Image", "Image")
                .Append(ml.Transforms.ApplyOnnxModel("Score", "Image", path));
            var scored = scoring.Fit(test);
            var actual = scored.Transform(test).GetColumn<float[]>("Score").ToArray();
            double delta = expected.Zip(actual, MaxAbsDiff).Max();
            Console.WriteLine($"Image column → ExtractPixels → ApplyOnnxModel vs Transform: max |Δ| = {delta:E2}");
            Assert.IsTrue(delta <= Tolerance, $"max |Δ| = {delta}");
            (scored as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Blocks the classifier cannot build (ELA-T on MobileNetV2's 144-channel blocks, ELA with the extra
    /// residual, ELA-T-like settings with GroupNorm 16) exported from the module itself, with random BatchNorm
    /// statistics, against its TorchSharp forward.</summary>
    [TestMethod]
    public void ModulesOutsideTheClassifierExportEqually()
    {
        var modules = new (string Name, Func<nn.Module<Tensor, Tensor>> Create)[]
        {
            ("MobileNetV2-0.25 + ELA (k 5, depthwise, GN 32/16)", () => new MobileNetV2(5, 0.25, 0.1,
                s => new EfficientLocalAttention(s.HiddenChannels, 5, s.HiddenChannels,
                    s.HiddenChannels % 32 == 0 ? 32 : 16),
                cifarStem: true)),
            ("MobileNetV2-0.25 ImageNet stem + ELA-L", () => MobileNetV2.WithEla(ElaVariant.L, 4, 0.25)),
            ("ResNet (width 16) + ELA-B as out + ELA(out), extra residual", () => new ResNet(4,
                c => new EfficientLocalAttention(c, ElaVariant.B, extraResidual: true), baseWidth: 16)),
            ("MobileNet V1-0.25 + ULSAM added at 14×14", () => new MobileNetV1(4, 0.25, UlsamPlacement.AddedAt14x14(2))),
        };
        torch.manual_seed(11);
        foreach (var (name, create) in modules)
        {
            using var module = create();
            Randomise(module);
            module.eval();
            using var x = rand(6, 3, Side, Side) * 255 / 128 - 1;
            float[] expected;
            using (no_grad()) expected = module.call(x).data<float>().ToArray();
            var onnx = OnnxModelExport.Module(module, new long[] { -1, 3, Side, Side }).ToByteArray();
            var actual = RunOrt(onnx, "input", x.data<float>().ToArray(), x.shape, "output");
            double scale = expected.Max(v => Math.Abs(v));
            double delta = MaxAbsDiff(expected, actual);
            Console.WriteLine($"{name}: max |Δ| = {delta:E2} (outputs up to {scale:F2})");
            Assert.IsTrue(delta <= 1e-5 * Math.Max(1, scale), $"{name}: max |Δ| = {delta}");
        }
    }

    /// <summary>Random BatchNorm statistics and affine parameters, so that folding them is exercised.</summary>
    private static void Randomise(nn.Module module)
    {
        using var noGrad = no_grad();
        foreach (var (name, buffer) in module.named_buffers())
        {
            if (name.EndsWith("running_mean")) buffer.copy_(randn_like(buffer) * 0.2);
            else if (name.EndsWith("running_var")) buffer.copy_(rand_like(buffer) + 0.5);
        }
        foreach (var (name, p) in module.named_parameters())
        {
            if (name.Contains("bn") && p.dim() == 1) p.copy_(rand_like(p) + 0.5);
            // The heads start at N(0, 0.01): scale them so that the logits are of order 1, not 0.01.
            if ((name.StartsWith("classifier") || name.StartsWith("fc")) && p.dim() == 2)
                p.copy_(randn_like(p) / Math.Sqrt(p.shape[1]));
        }
    }

    // ---- bad input -------------------------------------------------------------------------------------------

    private sealed class CustomBlock : nn.Module<Tensor, Tensor>
    {
        public CustomBlock() : base(nameof(CustomBlock)) { }

        public override Tensor forward(Tensor x) => x.tanh();
    }

    [TestMethod]
    public void AnUnknownModuleIsRefusedByTypeAndPath()
    {
        using var sequential = nn.Sequential(nn.Conv2d(3, 4, 3, padding: 1), nn.ReLU(), new CustomBlock());
        sequential.eval();
        var e = Assert.ThrowsExactly<NotSupportedException>(() =>
            OnnxModelExport.Module(sequential, new long[] { -1, 3, 8, 8 }));
        StringAssert.Contains(e.Message, "'2'");
        StringAssert.Contains(e.Message, typeof(CustomBlock).FullName!);
        StringAssert.Contains(e.Message, "Exportable modules:");

        // Inside a backbone: the path is the block's state-dict path.
        using var net = new MobileNetV2(3, 0.25, attention: s => s.BlockIndex == 4 ? new CustomBlock() : null, cifarStem: true);
        net.eval();
        e = Assert.ThrowsExactly<NotSupportedException>(() => OnnxModelExport.Module(net, new long[] { -1, 3, 16, 16 }));
        StringAssert.Contains(e.Message, "'features.5.conv.6'");
        StringAssert.Contains(e.Message, nameof(CustomBlock));

        // A training-mode BatchNorm is not the eval graph.
        using var training = nn.Sequential(nn.Conv2d(3, 4, 3), new Layers.BatchNorm2d(4));
        training.train();
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() =>
            OnnxModelExport.Module(training, new long[] { -1, 3, 8, 8 })).Message, "eval()");
    }

    [TestMethod]
    public void ADisposedModelOrAReadOnlyStreamIsRefused()
    {
        var ml = new MLContext(seed: 1);
        var model = Train(ml, ImageBackbone.MobileNetV1, ImageAttention.None, 0.25);
        using (var readOnly = new MemoryStream(new byte[16], writable: false))
        {
            var e = Assert.ThrowsExactly<ArgumentException>(() => model.ExportToOnnx(readOnly));
            Assert.AreEqual("stream", e.ParamName);
            StringAssert.Contains(e.Message, "not writable");
        }
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() =>
            ml.Model.ExportToOnnx(ml.Transforms.Conversion.MapValueToKey("Label").Fit(
                Load(ml, Images(3, 1))), new MemoryStream())).Message, "not an MLNet.Attention model");
        model.Dispose();
        var disposed = Assert.ThrowsExactly<ObjectDisposedException>(() => model.ExportToOnnx(new MemoryStream()));
        StringAssert.Contains(disposed.Message, "export it before disposing it");
        string path = Path.Combine(Path.GetTempPath(), $"onnx-disposed-{Environment.ProcessId}.onnx");
        Assert.ThrowsExactly<ObjectDisposedException>(() => model.ExportToOnnx(path));
        Assert.IsFalse(File.Exists(path), "nothing is written when the export fails");
    }
}
