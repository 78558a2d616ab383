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
        Console.WriteLine($"(reference) OPENBLAS_NUM_THREADS=1 {python} {string.Join(' ', all)}");
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

    private static string? LastLine(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();

    private static (int ExitCode, string Output, string Error) Execute(string file, string[] args, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = RepoRoot() };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["OPENBLAS_NUM_THREADS"] = "1";
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
