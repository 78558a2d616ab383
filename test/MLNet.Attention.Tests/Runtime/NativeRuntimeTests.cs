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
