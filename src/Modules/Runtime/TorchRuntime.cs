using System.Runtime.InteropServices;
using TorchSharp;

namespace MLNet.Attention.Runtime;

/// <summary>
/// Thrown when libtorch (TorchSharp's native backend) cannot be loaded. The message names the real cause
/// (missing runtime package, unsupported platform, C/C++ runtime too old) and the fix, instead of TorchSharp's
/// generic "doesn't contain a reference to libtorch" text, which is kept as the inner exception.
/// </summary>
public sealed class TorchRuntimeException : Exception
{
    /// <summary>Creates the exception with the explanation of the real cause and the original loader error.</summary>
    public TorchRuntimeException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>Loads and configures TorchSharp's native backend once per process.</summary>
public static class TorchRuntime
{
    private static readonly object Gate = new();
    private static bool _loaded;

    /// <summary>
    /// Ensures libtorch is loaded, or throws <see cref="TorchRuntimeException"/> explaining why it cannot be.
    /// Cheap after the first successful call.
    /// </summary>
    public static void EnsureLoaded()
    {
        if (_loaded) return;
        lock (Gate)
        {
            if (_loaded) return;
            // TorchSharp prints its own failure text ("... doesn't contain a reference to libtorch-cpu-<rid>"), which
            // names a package even when the cause is another one, to the console before throwing. Load the two
            // libraries first the way it does; only when that fails does TorchSharp's attempt (it has fallbacks of its
            // own) run with the console captured, so that our explanation is what the user sees.
            bool nativeLoads = NativeLibrary.TryLoad("torch_cpu", typeof(torch).Assembly, null, out _)
                               && NativeLibrary.TryLoad("LibTorchSharp", typeof(torch).Assembly, null, out _);
            var console = nativeLoads ? null : Console.Out;
            var captured = nativeLoads ? null : new StringWriter();
            Exception? failure = null;
            try
            {
                if (captured is not null) Console.SetOut(captured);
                torch.InitializeDeviceType(DeviceType.CPU);
                _loaded = true;
            }
            catch (Exception ex) when (ex is TypeInitializationException or NotSupportedException or DllNotFoundException
                                           or EntryPointNotFoundException or BadImageFormatException)
            {
                failure = ex;
            }
            finally
            {
                if (console is not null) Console.SetOut(console);
            }
            if (captured is not null)
                ReplayOtherOutput(console!, captured.ToString(), failure);
            if (failure is not null)
                throw new TorchRuntimeException(NativeDiagnostics.Explain(NativeDiagnostics.Probe(), failure), failure);
        }
    }

    /// <summary>Writes what other code printed while the console was captured, minus TorchSharp's failure text
    /// (it stays in the inner exception).</summary>
    private static void ReplayOtherOutput(TextWriter console, string output, Exception? failure)
    {
        for (var e = failure; e is not null; e = e.InnerException)
            output = output.Replace(e.Message + Environment.NewLine, "");
        if (output.Length > 0) console.Write(output);
    }

    /// <summary>Sets libtorch's intra-op thread count (null leaves libtorch's default: one per core).</summary>
    public static void SetThreads(int? numberOfThreads)
    {
        if (numberOfThreads is null) return;
        if (numberOfThreads < 1)
            throw new ArgumentOutOfRangeException(nameof(numberOfThreads), numberOfThreads, "The thread count must be at least 1 (or null for libtorch's default).");
        EnsureLoaded();
        if (torch.get_num_threads() != numberOfThreads.Value) torch.set_num_threads(numberOfThreads.Value);
    }

    /// <summary>
    /// Picks the device with ML.NET's rule: CUDA device <paramref name="gpuDeviceId"/> when one is requested and a
    /// CUDA libtorch sees it; CPU when none is requested; when one is requested but unavailable, CPU if
    /// <paramref name="fallbackToCpu"/>, otherwise an <see cref="InvalidOperationException"/>.
    /// </summary>
    public static torch.Device ResolveDevice(int? gpuDeviceId, bool fallbackToCpu)
    {
        EnsureLoaded();
        if (gpuDeviceId is null) return torch.CPU;
        if (gpuDeviceId < 0)
            throw new ArgumentOutOfRangeException(nameof(gpuDeviceId), gpuDeviceId, "MLContext.GpuDeviceId must be a non-negative CUDA device index, or null for CPU.");
        int count = torch.cuda.is_available() ? torch.cuda.device_count() : 0;
        if (gpuDeviceId.Value < count) return torch.device(DeviceType.CUDA, gpuDeviceId.Value);
        if (fallbackToCpu) return torch.CPU;
        throw new InvalidOperationException(count == 0
            ? $"MLContext.GpuDeviceId = {gpuDeviceId} asks for a GPU, but no CUDA device is available (the CPU build of libtorch, TorchSharp-cpu, is loaded, or no NVIDIA driver is present). Reference TorchSharp-cuda-linux/-windows on a CUDA machine, set MLContext.FallbackToCpu = true, or leave GpuDeviceId null."
            : $"MLContext.GpuDeviceId = {gpuDeviceId}, but only {count} CUDA device(s) exist (ids 0..{count - 1}). Choose an existing id or set MLContext.FallbackToCpu = true.");
    }

    /// <summary>
    /// Seeds libtorch's global generators (CPU and, where present, CUDA). The same seed gives bit-identical CPU
    /// training for the same data order and thread count.
    /// </summary>
    public static void Seed(long seed)
    {
        EnsureLoaded();
        // manual_seed returns a Generator wrapper that must be disposed (integration.md §10).
        using (torch.manual_seed(seed)) { }
        if (torch.cuda.is_available()) torch.cuda.manual_seed_all(seed);
    }
}

/// <summary>Facts about the machine that decide whether libtorch can load, and the explanation of a failure.</summary>
internal static class NativeDiagnostics
{
    internal sealed record Facts(
        OSPlatform? Os,
        Architecture Arch,
        bool RuntimePackagePresent,
        bool BridgeLibraryPresent,
        bool SystemCxxHasGlibcxx3432,
        bool BridgeRequiresStrictGlibcxx3432,
        Version? GlibcVersion,
        string BaseDirectory);

    internal static readonly Version MinimumGlibc = new(2, 28);

    internal static Facts Probe()
    {
        OSPlatform? os = RuntimeInformation.IsOSPlatform(OSPlatform.Linux) ? OSPlatform.Linux
            : RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? OSPlatform.Windows
            : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? OSPlatform.OSX : null;
        string baseDir = AppContext.BaseDirectory;
        string rid = RuntimeInformation.RuntimeIdentifier;
        string[] nativeDirs = { baseDir, Path.Combine(baseDir, "runtimes", rid, "native"),
                                Path.Combine(baseDir, "runtimes", "linux-x64", "native"), Path.Combine(baseDir, "runtimes", "win-x64", "native"),
                                Path.Combine(baseDir, "runtimes", "osx-arm64", "native") };
        string torchLib = os == OSPlatform.Windows ? "torch_cpu.dll" : os == OSPlatform.OSX ? "libtorch_cpu.dylib" : "libtorch_cpu.so";
        string bridgeLib = os == OSPlatform.Windows ? "LibTorchSharp.dll" : os == OSPlatform.OSX ? "libLibTorchSharp.dylib" : "libLibTorchSharp.so";
        string? bridgePath = nativeDirs.Select(d => Path.Combine(d, bridgeLib)).FirstOrDefault(File.Exists);
        bool runtimePresent = nativeDirs.Any(d => File.Exists(Path.Combine(d, torchLib)));

        bool systemHas = true, bridgeStrict = false;
        Version? glibc = null;
        if (os == OSPlatform.Linux)
        {
            string? cxx = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6" }
                .FirstOrDefault(File.Exists);
            systemHas = cxx is null || ElfVersionNeeds.ContainsAscii(File.ReadAllBytes(cxx), "GLIBCXX_3.4.32");
            if (bridgePath is not null) bridgeStrict = ElfVersionNeeds.RequiresStrictly(File.ReadAllBytes(bridgePath), "GLIBCXX_3.4.32");
            glibc = GlibcVersion();
        }
        return new Facts(os, RuntimeInformation.ProcessArchitecture, runtimePresent, bridgePath is not null, systemHas, bridgeStrict, glibc, baseDir);
    }

    internal static string Explain(Facts f, Exception original)
    {
        const string Head = "MLNet.Attention could not load libtorch (TorchSharp 0.107 native backend): ";
        if (f.Os is null || (f.Os == OSPlatform.OSX && f.Arch != Architecture.Arm64) || (f.Os == OSPlatform.Linux && f.Arch != Architecture.X64))
            return Head + $"the platform {RuntimeInformation.OSDescription} / {f.Arch} has no libtorch build in TorchSharp-cpu 0.107 (supported: Linux x64, macOS arm64). Run on a supported platform.";
        if (f.Os == OSPlatform.Windows)
            return Head + "TorchSharp 0.107's LibTorchSharp.dll does not load on Windows (ABI mismatch with libtorch 2.10, dotnet/TorchSharp#1567). Run on Linux x64 (e.g. WSL2 or a container) until TorchSharp ships a fixed Windows build.";
        if (!f.RuntimePackagePresent)
            return Head + $"no libtorch binaries were found under '{f.BaseDirectory}' (looked for libtorch_cpu in the output folder and runtimes/<rid>/native). Reference the TorchSharp-cpu package (MLNet.Attention brings it transitively) and rebuild, or publish with the runtime identifier of this machine.";
        if (!f.BridgeLibraryPresent)
            return Head + $"libLibTorchSharp was not found under '{f.BaseDirectory}'. Reference the TorchSharp package and rebuild.";
        if (f.GlibcVersion is not null && f.GlibcVersion < MinimumGlibc)
            return Head + $"this system's glibc is {f.GlibcVersion}; libtorch 2.10 needs glibc {MinimumGlibc} or newer. Use a newer distribution (Debian 10+, Ubuntu 20.04+).";
        if (!f.SystemCxxHasGlibcxx3432 && f.BridgeRequiresStrictGlibcxx3432)
            return Head + "this system's libstdc++ lacks GLIBCXX_3.4.32, which libLibTorchSharp.so declares, and the build step that relaxes that requirement did not run on this output folder. Build through MSBuild with the MLNet.Attention.Native package referenced (it comes with MLNet.Attention) and without MLNetAttentionSkipNativePatch=true, or install a libstdc++ from GCC 13 or newer.";
        return Head + original.Message;
    }

    private static Version? GlibcVersion()
    {
        try { return Version.TryParse(Marshal.PtrToStringAnsi(gnu_get_libc_version()), out var v) ? v : null; }
        catch (Exception) { return null; } // musl or no libc.so.6: nothing to report
    }

    [DllImport("libc.so.6")]
    private static extern IntPtr gnu_get_libc_version();
}
