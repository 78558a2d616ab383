using MLNet.Attention.MultipleInstance;
using MLNet.Attention.OnnxExport;
using static TorchSharp.torch;

namespace MLNet.Attention;

public static partial class OnnxExportExtensions
{
    /// <summary>The symbolic first dimension of an attention-MIL graph: the bags of one run.</summary>
    public const string BagsDimension = "bags";

    /// <summary>The symbolic second dimension of an attention-MIL graph: the instances of each bag.</summary>
    public const string InstancesDimension = "instances";

    /// <summary>The name of an attention-MIL graph's per-instance attention output (the model's column).</summary>
    public const string AttentionOutputName = AttentionMilModel.AttentionColumnName;

    /// <summary>The name of an ACMIL graph's per-branch attention output (the model's column).</summary>
    public const string BranchAttentionOutputName = AttentionMilModel.BranchAttentionColumnName;

    /// <summary>
    /// Writes an attention-MIL bag classifier (<see cref="MilArchitecture.GatedAttention"/> or
    /// <see cref="MilArchitecture.Acmil"/>, on feature vectors or with the <see cref="MilInstanceEncoder.LeNet"/>
    /// image encoder) as an ONNX file. Input: named after the bag column, float <c>[bags, instances, D]</c> with both
    /// <c>bags</c> and <c>instances</c> dynamic (a row's N × D values, instance-major, are one <c>[1, N, D]</c> bag;
    /// the bags of one run must have the same number of instances, as the graph has no padding mask). Outputs:
    /// <c>Score</c> <c>[bags, classes]</c> (softmax) for a multiclass model, or <c>Score</c> (the margin) and
    /// <c>Probability</c> <c>[bags]</c> for a binary one; <c>Attention</c> <c>[bags, instances]</c>, each bag's weights
    /// (sum 1: the heatmap); and for ACMIL <c>BranchAttention</c> <c>[bags, instances, M]</c> — the model's columns
    /// (<c>PredictedLabel</c>, the arg-max, is not in the graph).
    /// ACMIL's graph is its eval forward: the bag attention is the mean of the M branches' softmaxes and the score is
    /// the slide classifier's on it. The feature standardisation is in the graph. Metadata: <c>labels</c> (JSON),
    /// <c>feature_width</c> (D), <c>head</c> (the architecture), <c>branches</c>, <c>instance_encoder</c>.
    /// </summary>
    /// <remarks>ML.NET 5's <c>ApplyOnnxModel</c> feeds a variable-size vector column to this input as one
    /// <c>[1, N, D]</c> tensor per row, so the bag column is scored as it is:
    /// <c>ApplyOnnxModel(new[] { "Score", "Attention" }, new[] { "Features" }, path)</c> gives every row its Score and
    /// its N attention weights. ONNX Runtime's <c>InferenceSession</c> takes one bag of any size per run, or several
    /// bags of one size.</remarks>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="NotSupportedException">A module of the network cannot be exported (the message names
    /// it).</exception>
    public static void ExportToOnnx(this AttentionMilModel model, string path)
        => Write(() => OnnxModelExport.AttentionMil(Check(model)), path);

    /// <summary>As <see cref="ExportToOnnx(AttentionMilModel, string)"/>, to a stream (left open, positioned after
    /// the graph).</summary>
    /// <exception cref="ArgumentException">The stream is not writable.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="NotSupportedException">A module of the network cannot be exported.</exception>
    public static void ExportToOnnx(this AttentionMilModel model, Stream stream)
        => Write(() => OnnxModelExport.AttentionMil(Check(model)), stream);
}

internal static partial class OnnxModelExport
{
    /// <summary>The attention-MIL classifier: bags [bags, instances, D] → Score (and Probability), Attention (and
    /// ACMIL's BranchAttention).</summary>
    public static global::Onnx.ModelProto AttentionMil(AttentionMilModel model, OnnxModuleRegistry? registry = null)
    {
        CheckUsable(model, "attention-MIL model");
        var c = model.Config;
        var graph = new OnnxGraphBuilder("AttentionMil");
        const string bags = OnnxExportExtensions.BagsDimension, instances = OnnxExportExtensions.InstancesDimension;
        var input = graph.Input(model.InputColumns[0].Name, new long[] { -1, -1, c.FeatureSize },
            new[] { bags, instances });
        MilGraphOutputs outputs;
        using (no_grad())
        using (NewDisposeScope())
            outputs = MilExporters.ExportNetwork(new OnnxExportContext(graph, registry), model.Network, input, "");
        ClassifierOutputs(graph, outputs.Logits, model.IsBinary, bags);
        graph.Output(outputs.Attention, OnnxExportExtensions.AttentionOutputName, new[] { bags, instances });
        if (outputs.BranchAttention is { } branches)
            graph.Output(branches, OnnxExportExtensions.BranchAttentionOutputName, new[] { bags, instances });
        return graph.Build(ProducerVersion, Metadata(model, new()
        {
            ["head"] = c.Architecture.ToString(),
            ["feature_width"] = c.FeatureSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["branches"] = c.Branches.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["instance_encoder"] = c.InstanceEncoder.ToString(),
        }));
    }
}
