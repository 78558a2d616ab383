using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using MLNet.Attention.Benchmarks.Modules;
using MLNet.Attention.Runtime;
using TorchSharp;
using static MLNet.Attention.Benchmarks.Bench;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks;

/// <summary>
/// Times forward and forward + backward of every attention block (the <see cref="IModuleBenchmarkCases"/> in this
/// assembly) and, in the same run, of the independent PyTorch references in bench/reference/modules, with one protocol:
/// warm-up calls, then calls until both 5 calls and <c>--min-seconds</c> are reached, median milliseconds per call.
/// </summary>
public static class ModulesBenchmark
{
    private const int WarmupCalls = 3, MinCalls = 5, MaxCalls = 1000;

    private sealed record Timing(string Block, string Size, long Parameters, double ForwardMs, double ForwardBackwardMs);

    public static int Run(CommandLine options)
    {
        int threads = options.Int("threads", 2);
        double minSeconds = double.Parse(options.Get("min-seconds", "1.0"), CultureInfo.InvariantCulture);
        string[] keep = options.List("blocks", "");
        string outPath = OutPath(options), python = options.Get("python", "/usr/bin/python3");

        bool steadyAllocator = options.Get("allocator", "steady") == "steady";
        if (steadyAllocator) SteadyAllocator();
        TorchRuntime.EnsureLoaded();
        TorchRuntime.SetThreads(threads);
        torch.manual_seed(0);
        var cases = typeof(ModulesBenchmark).Assembly.GetTypes()
            .Where(t => typeof(IModuleBenchmarkCases).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .SelectMany(t => ((IModuleBenchmarkCases)Activator.CreateInstance(t)!).Cases)
            .Where(c => keep.Length == 0 || keep.Any(k => c.Block.StartsWith(k, StringComparison.Ordinal)))
            .ToList();
        if (cases.Count == 0) throw new UsageException($"No benchmark case matches --blocks {string.Join(',', keep)}.");

        // Process warm-up: the first case timed would otherwise also pay for JIT compilation and libtorch's thread-pool start.
        foreach (var c in cases) WarmUp(c);
        string loadBefore = LoadAverage();
        var ours = new List<Timing>();
        foreach (var c in cases)
        {
            ours.Add(Measure(c, minSeconds));
            var t = ours[^1];
            Console.WriteLine($"{t.Block,-28} {t.Size,-40} forward {t.ForwardMs,9:F3} ms  forward+backward {t.ForwardBackwardMs,9:F3} ms");
        }

        var args = new List<string> { "--threads", threads.ToString(CultureInfo.InvariantCulture), "--min-seconds", minSeconds.ToString(CultureInfo.InvariantCulture) };
        if (keep.Length > 0) args.AddRange(new[] { "--blocks", string.Join(',', keep) });
        if (!steadyAllocator) args.AddRange(new[] { "--allocator", "default" });
        var (reference, why) = PythonReference.Run(python, Path.Combine(RepoRoot(), "bench", "reference", "modules_reference.py"), args.ToArray(), TimeSpan.FromMinutes(30));
        var theirs = new Dictionary<(string, string), Timing>();
        if (reference is { } r)
            foreach (var e in r.GetProperty("cases").EnumerateArray())
            {
                var t = new Timing(e.GetProperty("block").GetString()!, e.GetProperty("size").GetString()!, e.GetProperty("params").GetInt64(),
                    e.GetProperty("forward_ms").GetDouble(), e.GetProperty("forward_backward_ms").GetDouble());
                theirs[(t.Block, t.Size)] = t;
            }
        else Console.WriteLine($"reference skipped: {why}");

        var md = new StringBuilder();
        string command = "dotnet run -c Release --project bench/MLNet.Attention.Benchmarks -- modules" +
            (threads != 2 ? $" --threads {threads}" : "") + (minSeconds != 1.0 ? $" --min-seconds {F(minSeconds, "G")}" : "") + (steadyAllocator ? "" : " --allocator default") + (keep.Length > 0 ? $" --blocks {string.Join(',', keep)}" : "");
        md.AppendLine($"## Attention blocks: forward and forward + backward vs PyTorch ({threads} threads, CPU, float32)");
        md.AppendLine();
        md.AppendLine($"`{command}`, {DateTime.Now:yyyy-MM-dd HH:mm}; {Machine()}. Reference: our independent PyTorch implementations " +
            $"(`bench/reference/modules/*.py`, written from the specs) timed by `bench/reference/modules_reference.py` in the same run" +
            (reference is { } rr ? $" (torch {rr.GetProperty("torch").GetString()}, OPENBLAS_NUM_THREADS=1)." : $" — skipped: {why}."));
        md.AppendLine();
        md.AppendLine("| Block | Size | Parameters | Forward ms (ours) | Forward ms (PyTorch) | Ratio | Fwd+bwd ms (ours) | Fwd+bwd ms (PyTorch) | Ratio |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var o in ours)
        {
            theirs.TryGetValue((o.Block, o.Size), out var t);
            string paramNote = t is not null && t.Parameters != o.Parameters ? $" (PyTorch {t.Parameters:N0})" : "";
            md.AppendLine($"| {o.Block} | {o.Size} | {o.Parameters:N0}{paramNote} | {F(o.ForwardMs, "F2")} | {Cell(t?.ForwardMs)} | {Ratio(o.ForwardMs, t?.ForwardMs)} " +
                $"| {F(o.ForwardBackwardMs, "F2")} | {Cell(t?.ForwardBackwardMs)} | {Ratio(o.ForwardBackwardMs, t?.ForwardBackwardMs)} |");
        }
        md.AppendLine();
        md.AppendLine($"Every case first runs once (process warm-up), then: median milliseconds per call after {WarmupCalls} warm-up calls, over at least {MinCalls} calls and {F(minSeconds, "F1")} s; " +
            "forward runs under `no_grad`, forward + backward backpropagates the output's sum and clears the gradients. " +
            "Ratio = ours / PyTorch: below 1 we are faster. " +
            (steadyAllocator
                ? "Both processes set glibc's mmap threshold to 32 MB and its trim threshold to 1 GB at start (`mallopt`), so neither returns its per-call temporaries to the OS and page-faults them back on every call — with glibc's defaults that happens or not depending on the history of allocation sizes, which made the same block 2 ms or 15 ms from one run to the next; `--allocator default` keeps the defaults. "
                : "Both processes keep glibc's default allocator settings (timings of blocks with large temporaries then depend on the allocation history). ") +
            $"1/5/15-min load average before our timings: {loadBefore}; after the reference: {LoadAverage()} (timings are only meaningful on an idle machine).");
        WriteSection(outPath, "modules", md.ToString());
        Console.WriteLine($"wrote {outPath}");
        return 0;
    }

    /// <summary>glibc <c>mallopt</c>: keep freed temporaries in the heap instead of unmapping and faulting them back per call.</summary>
    private static void SteadyAllocator()
    {
        const int TrimThreshold = -1, MmapThreshold = -3;
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            if (mallopt(MmapThreshold, 32 << 20) == 0 || mallopt(TrimThreshold, 1 << 30) == 0)
                Console.WriteLine("warning: mallopt refused the allocator settings; timings may vary with allocation history");
        }
        catch (DllNotFoundException) { Console.WriteLine("warning: no glibc; allocator settings unchanged"); }
        catch (EntryPointNotFoundException) { Console.WriteLine("warning: no mallopt; allocator settings unchanged"); }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int parameter, int value);

    private static string Cell(double? ms) => ms is { } v ? F(v, "F2") : "–";

    private static string Ratio(double ours, double? theirs) => theirs is { } t && t > 0 ? F(ours / t, "F2") : "–";

    private static string LoadAverage()
    {
        try { return string.Join(" / ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
    }

    /// <summary>Builds the case's module and inputs, runs <paramref name="body"/> on them, and disposes both.</summary>
    private static T WithCase<T>(ModuleBenchmarkCase c, Func<nn.Module, Tensor[], T> body)
    {
        using var module = c.CreateModule();
        var inputs = c.CreateInputs();
        try { return body(module, inputs); }
        finally { foreach (var t in inputs) t.Dispose(); }
    }

    private static void ForwardBackward(ModuleBenchmarkCase c, nn.Module module, Tensor[] inputs)
    {
        using var scope = NewDisposeScope();
        c.Forward(module, inputs).sum().backward();
        module.zero_grad();
    }

    private static void WarmUp(ModuleBenchmarkCase c) => WithCase(c, (module, inputs) =>
    {
        ForwardBackward(c, module, inputs);
        return 0;
    });

    private static Timing Measure(ModuleBenchmarkCase c, double minSeconds) => WithCase(c, (module, inputs) =>
    {
        long parameters = module.parameters().Sum(p => p.numel());
        double forward = Median(() =>
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            c.Forward(module, inputs);
        }, minSeconds);
        double forwardBackward = Median(() => ForwardBackward(c, module, inputs), minSeconds);
        return new Timing(c.Block, c.Size, parameters, forward, forwardBackward);
    });

    private static double Median(Action call, double minSeconds)
    {
        for (int i = 0; i < WarmupCalls; i++) call();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < MaxCalls && (times.Count < MinCalls || total.Elapsed.TotalSeconds < minSeconds))
        {
            long t0 = Stopwatch.GetTimestamp();
            call();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        return times.Count % 2 == 1 ? times[times.Count / 2] : (times[times.Count / 2 - 1] + times[times.Count / 2]) / 2;
    }
}
