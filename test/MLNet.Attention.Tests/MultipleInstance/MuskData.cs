using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Tests.MultipleInstance;

/// <summary>Musk1 (samples/data/musk1.csv.gz: <c>bag_label, bag_id, f1..f166</c>, one row per instance).</summary>
internal static class MuskData
{
    public sealed class Instance
    {
        [LoadColumn(0)] public bool Label { get; set; }
        [LoadColumn(1)] public float BagId { get; set; }
        [LoadColumn(2, 167), VectorType(166)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    private static readonly Lazy<string> Csv = new(() =>
    {
        string path = Path.Combine(Path.GetTempPath(), $"musk1-{Environment.ProcessId}.csv");
        using var gz = new GZipStream(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "data", "musk1.csv.gz")), CompressionMode.Decompress);
        using var file = File.Create(path);
        gz.CopyTo(file);
        return path;
    });

    public static IDataView Instances(MLContext mlContext) =>
        mlContext.Data.LoadFromTextFile<Instance>(Csv.Value, hasHeader: true, separatorChar: ',');

    public static IDataView Bags(MLContext mlContext) =>
        mlContext.Transforms.GroupIntoBags("BagId", new[] { "Features" }, labelColumnName: "Label").Fit(Instances(mlContext))
            .Transform(Instances(mlContext));
}
