using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Tests.Forecasting;

/// <summary>ETTh1 as shipped in samples/data, decompressed once per test run.</summary>
internal static class EttData
{
    public static readonly string[] Variates = { "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT" };
    private static readonly Lazy<string> CsvPath = new(() =>
    {
        string path = Path.Combine(Path.GetTempPath(), $"mlnet-attention-tests-{Environment.ProcessId}-ETTh1.csv");
        using var gz = new GZipStream(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "data", "ETTh1.csv.gz")), CompressionMode.Decompress);
        using var file = File.Create(path);
        gz.CopyTo(file);
        return path;
    });

    public static IDataView Load(MLContext ml) => ml.Data.LoadFromTextFile<EttRow>(CsvPath.Value, hasHeader: true, separatorChar: ',');

    public sealed class EttRow
    {
        [LoadColumn(0)] public string Date { get; set; } = "";
        [LoadColumn(1)] public float HUFL { get; set; }
        [LoadColumn(2)] public float HULL { get; set; }
        [LoadColumn(3)] public float MUFL { get; set; }
        [LoadColumn(4)] public float MULL { get; set; }
        [LoadColumn(5)] public float LUFL { get; set; }
        [LoadColumn(6)] public float LULL { get; set; }
        [LoadColumn(7)] public float OT { get; set; }
    }
}
