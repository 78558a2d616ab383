using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace MLNet.Attention.Tests.OnnxExport;

/// <summary>
/// The libtorch-free deployment end to end, as a user runs it: samples/OnnxExport trains and exports (TorchSharp),
/// then samples/OnnxScoring — built with Microsoft.ML, OnnxTransformer and ONNX Runtime only — scores the exported
/// graphs, compares with the TorchSharp model's outputs, and checks that its output folder holds no TorchSharp,
/// libtorch or MLNet.Attention file and that none was loaded.
/// </summary>
[TestClass]
public sealed class LibtorchFreeDeploymentTests
{
#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    private static string RepositoryRoot([CallerFilePath] string thisFile = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(thisFile)!, "..", "..", ".."));

    private static string SampleDll(string project, string assembly)
    {
        string dll = Path.Combine(RepositoryRoot(), "samples", project, "bin", Configuration, "net10.0", assembly + ".dll");
        if (!File.Exists(dll))
            Assert.Inconclusive($"{dll} is not built: build the solution (dotnet build MLNet.Attention.sln -c " +
                $"{Configuration}) before running this test on its own.");
        return dll;
    }

    private static (int ExitCode, string Output) RunDotnet(string dll, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(dll);
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(dll)} did not finish in 5 minutes:\n{stdout}");
        }
        return (process.ExitCode, stdout + stderr.Result);
    }

    [TestMethod]
    public void TheScoringAppMatchesTheTorchSharpModelsWithoutLibtorchInItsOutput()
    {
        string export = SampleDll("OnnxExport", "MLNet.Attention.Samples.OnnxExport");
        string scoring = SampleDll("OnnxScoring", "MLNet.Attention.Samples.OnnxScoring");
        string dir = Path.Combine(Path.GetTempPath(), "mlnet-attention-deploy-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            // One epoch on 12 images per class: the point is equality, not accuracy.
            var (exportCode, exportOutput) = RunDotnet(export, dir, "1", "12");
            Console.WriteLine(exportOutput);
            Assert.AreEqual(0, exportCode, exportOutput);
            Assert.IsTrue(File.Exists(Path.Combine(dir, "image-classifier.onnx")));

            var (code, output) = RunDotnet(scoring, dir);
            Console.WriteLine(output);
            Assert.AreEqual(0, code, output);
            StringAssert.Contains(output, "TorchSharp/libtorch/MLNet.Attention files: 0");
            StringAssert.Contains(output, "OK: every output matches");

            // The scoring app's build output really is free of them (the app checks it too; this is independent).
            var folder = Path.GetDirectoryName(scoring)!;
            var torch = Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
                .Where(f => Path.GetFileName(f).Contains("torch", StringComparison.OrdinalIgnoreCase)).ToArray();
            Assert.AreEqual(0, torch.Length, string.Join(", ", torch));
            Assert.IsFalse(File.Exists(Path.Combine(folder, "MLNet.Attention.Core.dll")));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
