using System.Runtime.InteropServices;
using MLNet.Attention.Runtime;

namespace MLNet.Attention.Tests.Runtime;

[TestClass]
public sealed class NativeRuntimeTests
{
    private static string OutputLibrary => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    [TestMethod]
    public void BuildRelaxesTheOutputCopyAndLeavesTheNuGetCacheUntouched()
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive("The GLIBCXX patch is Linux-only.");
        var facts = NativeDiagnostics.Probe();
        Assert.IsTrue(File.Exists(OutputLibrary), OutputLibrary);
        Assert.IsFalse(ElfVersionNeeds.RequiresStrictly(File.ReadAllBytes(OutputLibrary), "GLIBCXX_3.4.32"),
            "the output copy must not require GLIBCXX_3.4.32 strictly");
        string home = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string cached = Path.Combine(home, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (!File.Exists(cached)) Assert.Inconclusive($"No NuGet cache copy at {cached}.");
        if (!facts.SystemCxxHasGlibcxx3432)
            Assert.IsTrue(ElfVersionNeeds.RequiresStrictly(File.ReadAllBytes(cached), "GLIBCXX_3.4.32"), "the NuGet cache copy must stay unmodified");
        TorchRuntime.EnsureLoaded(); // and it loads
    }

    private static NativeDiagnostics.Facts Healthy => new(OSPlatform.Linux, Architecture.X64, RuntimePackagePresent: true, BridgeLibraryPresent: true,
        SystemCxxHasGlibcxx3432: false, BridgeRequiresStrictGlibcxx3432: false, GlibcVersion: new Version(2, 36), BaseDirectory: "/app");

    private static readonly Exception Original = new NotSupportedException("doesn't contain a reference to libtorch-cpu-linux-x64");

    [TestMethod]
    public void ExplainsEachCauseWithItsFix()
    {
        StringAssert.Contains(NativeDiagnostics.Explain(Healthy with { BridgeRequiresStrictGlibcxx3432 = true }, Original), "lacks GLIBCXX_3.4.32");
        StringAssert.Contains(NativeDiagnostics.Explain(Healthy with { RuntimePackagePresent = false }, Original), "Reference the TorchSharp-cpu package");
        StringAssert.Contains(NativeDiagnostics.Explain(Healthy with { GlibcVersion = new Version(2, 17) }, Original), "glibc 2.28 or newer");
        StringAssert.Contains(NativeDiagnostics.Explain(Healthy with { Os = OSPlatform.Windows }, Original), "dotnet/TorchSharp#1567");
        StringAssert.Contains(NativeDiagnostics.Explain(Healthy with { Arch = Architecture.Arm64 }, Original), "has no libtorch build");
        StringAssert.Contains(NativeDiagnostics.Explain(Healthy with { BridgeLibraryPresent = false }, Original), "libLibTorchSharp was not found");
        // Nothing specific found: TorchSharp's own message is passed on.
        StringAssert.Contains(NativeDiagnostics.Explain(Healthy, Original), "doesn't contain a reference");
    }

    [TestMethod]
    public void MissingLibtorch_OnModelLoad_SaysSoFirst_NotThatTheModelIsCorrupted()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            Assert.Inconclusive("The simulated output folder is the linux-x64 layout.");
        var ml = Bridge.BridgeTestHelpers.NewContext();
        string model;
        using (var t = LoadProbe.ProbeLinearTransformer.Create(ml))
            model = Bridge.BridgeTestHelpers.Save(ml, t,
                LoadProbe.ProbeData.View(ml, 2, Bridge.BridgeTestHelpers.Features).Schema);

        // The probe's output folder without libtorch_cpu (managed files copied, other native libraries linked), and no
        // NuGet cache for TorchSharp's fallback: what a user sees when the runtime package did not make it.
        string app = Path.Combine(Path.GetTempPath(), "mlnet-attention-no-libtorch-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            string source = AppContext.BaseDirectory, native = Path.Combine("runtimes", "linux-x64", "native");
            Directory.CreateDirectory(Path.Combine(app, native));
            foreach (var file in Directory.GetFiles(source))
                File.Copy(file, Path.Combine(app, Path.GetFileName(file)));
            var natives = Directory.GetFiles(Path.Combine(source, native)).Where(f => Path.GetFileName(f) != "libtorch_cpu.so");
            foreach (var file in natives)
                File.CreateSymbolicLink(Path.Combine(app, native, Path.GetFileName(file)), file);
            var environment = new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(app, "no-nuget-cache") };

            var (exit, lines, stderr) = Bridge.BridgeTestHelpers.RunProbeAt(
                Path.Combine(app, "MLNet.Attention.LoadProbe.dll"), environment,
                model, "2", Bridge.BridgeTestHelpers.Features.ToString(), "Score");

            string all = string.Join("\n", lines) + "\n" + stderr;
            Assert.AreEqual(3, exit, all);
            // First line: our exception, thrown as itself by mlContext.Model.Load, with the cause and the fix.
            StringAssert.StartsWith(lines[0], "ERROR MLNet.Attention.Runtime.TorchRuntimeException: MLNet.Attention could " +
                "not load libtorch (TorchSharp 0.107 native backend): no libtorch binaries were found under '" + app, all);
            StringAssert.Contains(lines[0], "Reference the TorchSharp-cpu package", all);
            Assert.IsFalse(lines[0].Contains("corrupted"), all);
            // TorchSharp's own console text was not printed (before it or at all); it survives as the inner exception.
            Assert.IsFalse(lines.Concat(stderr.Split('\n')).Any(l => l.StartsWith("This application or script uses TorchSharp")),
                all);
            Assert.IsTrue(lines.Skip(1).Any(l => l.StartsWith("ERROR System.NotSupportedException: This application or " +
                "script uses TorchSharp but doesn't contain a reference to libtorch-cpu-linux-x64")), all);
        }
        finally
        {
            Directory.Delete(app, recursive: true);
        }
    }

    [TestMethod]
    public void DeviceRuleFollowsMLNet()
    {
        Assert.AreEqual(TorchSharp.DeviceType.CPU, TorchRuntime.ResolveDevice(null, false).type);
        if (TorchSharp.torch.cuda.is_available()) Assert.Inconclusive("A CUDA device is present.");
        Assert.AreEqual(TorchSharp.DeviceType.CPU, TorchRuntime.ResolveDevice(0, fallbackToCpu: true).type);
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => TorchRuntime.ResolveDevice(0, fallbackToCpu: false));
        StringAssert.Contains(ex.Message, "FallbackToCpu");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TorchRuntime.ResolveDevice(-1, true));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TorchRuntime.SetThreads(0));
    }
}
