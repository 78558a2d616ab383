using System.Diagnostics;
using System.Text.Json;
using static MLNet.Attention.Benchmarks.Bench;

namespace MLNet.Attention.Benchmarks;

/// <summary>Runs a PyTorch reference script (bench/reference) as a child process and reads its final <c>RESULT {json}</c> line.</summary>
public static class PythonReference
{
    private const int NotStarted = -2;

    /// <summary>
    /// Runs <paramref name="script"/> with <c>OPENBLAS_NUM_THREADS=1</c> and returns its RESULT JSON, or null and the
    /// reason it was skipped (no interpreter, no torch, a failure).
    /// </summary>
    public static (JsonElement? Result, string? Why) Run(string python, string script, string[] args, TimeSpan timeout)
    {
        if (!File.Exists(script)) return (null, $"{script} not found");
        var probe = Execute(python, new[] { "-c", "import torch" }, TimeSpan.FromMinutes(2));
        if (probe.ExitCode == NotStarted) return (null, probe.Error);
        if (probe.ExitCode != 0) return (null, $"{python} cannot import torch ({LastLine(probe.Error) ?? $"exit code {probe.ExitCode}"}); install python3-torch");
        var all = new[] { script }.Concat(args).ToArray();
        var core = OpenBlasCore(python);
        Console.WriteLine($"(reference) OPENBLAS_NUM_THREADS=1{(_coreType is null ? "" : $" OPENBLAS_CORETYPE={_coreType}")} " +
                          $"{python} {string.Join(' ', all)}   [OpenBLAS kernel: {core}]");
        // Linux carries a process's peak RSS over fork + exec, so a child started from this process would report our peak as
        // its ru_maxrss. Start it from a small /bin/sh that forks it (the command is not the shell's last, so no exec).
        var run = File.Exists("/bin/sh")
            ? Execute("/bin/sh", new[] { "-c", "\"$0\" \"$@\"; exit $?", python }.Concat(all).ToArray(), timeout)
            : Execute(python, all, timeout);
        var line = run.Output.Split('\n').LastOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
        if (run.ExitCode != 0 || line is null)
            return (null, $"the reference failed (exit code {run.ExitCode}): {LastLine(run.Error) ?? LastLine(run.Output) ?? "no output"}");
        return (JsonDocument.Parse(line["RESULT ".Length..]).RootElement.Clone(), null);
    }

    private static string? _coreType;
    private static string? _core;

    /// <summary>How the last reference ran, for the reports: "OPENBLAS_NUM_THREADS=1, OpenBLAS kernel Cooperlake"
    /// (+ the OPENBLAS_CORETYPE set, when the generic kernel had to be overridden).</summary>
    public static string RunEnvironment => $"OPENBLAS_NUM_THREADS=1, OpenBLAS kernel {_core ?? "not probed"}" +
                                        (_coreType is null ? "" : $" (OPENBLAS_CORETYPE={_coreType})");

    /// <summary>
    /// The OpenBLAS kernel the reference runs with. Debian's OpenBLAS picks the generic "Prescott" kernel on some Intel
    /// machines (3–4× slower GEMM, which would flatter every ratio against PyTorch); then OPENBLAS_CORETYPE is set from
    /// the CPU's flags (avx512_bf16 → Cooperlake, avx512f → SkylakeX, avx2 → Haswell) for every reference run.
    /// </summary>
    public static string OpenBlasCore(string python)
    {
        if (_core is not null) return _core;
        string Probe()
        {
            var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "-c", "import numpy; numpy.dot(numpy.ones((64, 64)), numpy.ones((64, 64)))" }) start.ArgumentList.Add(a);
            start.Environment["OPENBLAS_VERBOSE"] = "2";
            start.Environment["OPENBLAS_NUM_THREADS"] = "1";
            if (_coreType is not null) start.Environment["OPENBLAS_CORETYPE"] = _coreType;
            try
            {
                using var process = Process.Start(start)!;
                string text = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
                process.WaitForExit();
                return text.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("Core:", StringComparison.Ordinal))?[5..].Trim() ?? "unknown";
            }
            catch (System.ComponentModel.Win32Exception)
            {
                return "unknown";
            }
        }
        string core = Probe();
        if (core is "Prescott" or "Katmai" or "Core2" or "Penryn" or "Nehalem" && File.Exists("/proc/cpuinfo"))
        {
            string flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "";
            _coreType = flags.Contains(" avx512_bf16") ? "Cooperlake" : flags.Contains(" avx512f") ? "SkylakeX"
                : flags.Contains(" avx2") ? "Haswell" : null;
            if (_coreType is not null) core = $"{Probe()} (set; auto-detected {core})";
        }
        return _core = core;
    }

    private static string? LastLine(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();

    private static (int ExitCode, string Output, string Error) Execute(string file, string[] args, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = RepoRoot() };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["OPENBLAS_NUM_THREADS"] = "1";
        if (_coreType is not null) start.Environment["OPENBLAS_CORETYPE"] = _coreType;
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                return (-1, output.Result, $"timed out after {timeout.TotalMinutes:F0} min");
            }
            process.WaitForExit();
            return (process.ExitCode, output.Result, error.Result);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (NotStarted, "", $"cannot start {file} ({ex.Message})");
        }
    }
}
