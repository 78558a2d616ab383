using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.LoadProbe;

namespace MLNet.Attention.Tests.Bridge;

/// <summary>Output row for PredictionEngine tests with the default probe transformer (3 outputs).</summary>
public sealed class ScoreRow
{
    [VectorType(3)]
    public float[] Score { get; set; } = Array.Empty<float>();
}

internal static class BridgeTestHelpers
{
    internal const int Features = 8;

    internal static MLContext NewContext() => new(seed: 1);

    private static readonly System.Collections.Concurrent.ConcurrentBag<string> s_tempFiles = new();

    /// <summary>A fresh temporary file path; deleted by <see cref="DeleteTempFiles"/>.</summary>
    internal static string TempFile(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "mlnet-attention-bridge-tests", Environment.ProcessId.ToString());
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, Guid.NewGuid().ToString("N")[..8] + "-" + name);
        s_tempFiles.Add(path);
        return path;
    }

    /// <summary>Best-effort removal of the files handed out by <see cref="TempFile"/>.</summary>
    internal static void DeleteTempFiles()
    {
        while (s_tempFiles.TryTake(out var path))
        {
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>Saves <paramref name="model"/> to a temporary zip and returns its path.</summary>
    internal static string Save(MLContext ml, ITransformer model, DataViewSchema schema, string name = "model.zip")
    {
        string path = TempFile(name);
        ml.Model.Save(model, schema, path);
        return path;
    }

    /// <summary>All messages of an exception and its inner exceptions, one per line.</summary>
    internal static string Messages(Exception ex)
    {
        var sb = new StringBuilder();
        for (var e = ex; e != null; e = e.InnerException)
            sb.Append(e.GetType().Name).Append(": ").AppendLine(e.Message);
        return sb.ToString();
    }

    /// <summary>The first exception of type <typeparamref name="T"/> in the chain, or fails.</summary>
    internal static T Find<T>(Exception ex) where T : Exception
    {
        for (var e = ex; e != null; e = e.InnerException)
            if (e is T t)
                return t;
        Assert.Fail($"Expected a {typeof(T).Name} in the exception chain, got:\n{Messages(ex)}");
        return null!;
    }

    /// <summary>Rewrites one zip entry through <paramref name="patch"/>.</summary>
    internal static void PatchEntry(string zipPath, string entryName, Action<byte[]> patch)
    {
        using var zip = ZipFile.Open(zipPath, ZipArchiveMode.Update);
        var entry = zip.GetEntry(entryName) ?? zip.Entries.First(e => e.FullName.Replace('\\', '/') == entryName);
        byte[] bytes;
        using (var s = entry.Open())
        using (var ms = new MemoryStream())
        {
            s.CopyTo(ms);
            bytes = ms.ToArray();
        }
        patch(bytes);
        string name = entry.FullName;
        entry.Delete();
        var replacement = zip.CreateEntry(name);
        using var output = replacement.Open();
        output.Write(bytes);
    }

    internal static string[] EntryNames(string zipPath)
    {
        using var zip = ZipFile.OpenRead(zipPath);
        return zip.Entries.Select(e => e.FullName.Replace('\\', '/')).ToArray();
    }

    internal static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle))
                return i;
        return -1;
    }

    internal static readonly byte[] Magic = "MLNATTN\u001A"u8.ToArray();

    /// <summary>Path of the built load probe (set by the test project file), falling back to the test folder.</summary>
    internal static string ProbePath()
    {
        string? path = typeof(BridgeTestHelpers).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "MLNetAttentionLoadProbe")?.Value;
        if (string.IsNullOrEmpty(path) || !File.Exists(path))
            path = Path.Combine(AppContext.BaseDirectory, "MLNet.Attention.LoadProbe.dll");
        Assert.IsTrue(File.Exists(path), $"Load probe not found at '{path}'.");
        return path;
    }

    /// <summary>Runs the probe in a fresh process; returns (exit code, stdout lines).</summary>
    internal static (int ExitCode, List<string> Lines, string StdErr) RunProbe(string modelPath, int rows, string column) =>
        RunProbe(modelPath, rows.ToString(), Features.ToString(), column);

    /// <summary>Runs the probe in a fresh process with the given arguments; returns (exit code, stdout lines).</summary>
    internal static (int ExitCode, List<string> Lines, string StdErr) RunProbe(params string[] arguments) =>
        RunProbeAt(ProbePath(), new Dictionary<string, string>(), arguments);

    /// <summary>Runs the probe assembly at <paramref name="probePath"/> with extra environment variables.</summary>
    internal static (int ExitCode, List<string> Lines, string StdErr) RunProbeAt(string probePath,
        IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : Process.GetCurrentProcess().MainModule?.FileName is { } exe && Path.GetFileNameWithoutExtension(exe) == "dotnet"
                ? exe
                : "dotnet";
        var psi = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(probePath);
        foreach (var (name, value) in environment) psi.Environment[name] = value;
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var stderrTask = process.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        string? line;
        while ((line = process.StandardOutput.ReadLine()) != null)
            lines.Add(line);
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("The load probe did not finish within 120 s.");
        }
        return (process.ExitCode, lines, stderrTask.Result);
    }

    /// <summary><c>SchemaShape.Create(schema)</c> (internal in ML.NET) through reflection.</summary>
    internal static SchemaShape ShapeOf(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public,
            new[] { typeof(DataViewSchema) })!.Invoke(null, new object[] { schema })!;

    /// <summary>Creates a <c>SchemaShape.Column</c> through its non-public constructor (test-only estimator).</summary>
    internal static SchemaShape.Column ShapeColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey = false)
    {
        var ctor = typeof(SchemaShape.Column).GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)
            .Single(c => c.GetParameters().Length == 5);
        return (SchemaShape.Column)ctor.Invoke(new object?[] { name, kind, itemType, isKey, null });
    }
}

/// <summary>Test-only estimator that "fits" to an already built transformer, so it can sit in an EstimatorChain.</summary>
internal sealed class PrebuiltEstimator : IEstimator<ITransformer>
{
    private readonly ProbeLinearTransformer _transformer;

    public PrebuiltEstimator(ProbeLinearTransformer transformer) => _transformer = transformer;

    public ITransformer Fit(IDataView input) => _transformer;

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (var output in _transformer.OutputColumns)
        {
            columns[output.Name] = BridgeTestHelpers.ShapeColumn(output.Name,
                output.IsScalar ? SchemaShape.Column.VectorKind.Scalar : SchemaShape.Column.VectorKind.Vector,
                NumberDataViewType.Single);
        }
        return new SchemaShape(columns.Values);
    }
}
