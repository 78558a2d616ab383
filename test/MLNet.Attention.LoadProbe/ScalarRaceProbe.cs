using System.Diagnostics;
using System.Globalization;
using MLNet.Attention.Runtime;
using static TorchSharp.torch;

namespace MLNet.Attention.LoadProbe;

/// <summary>
/// Minimal repro of the TorchSharp 0.107 Scalar finalizer race, in its own process because a use after free in native
/// code may also crash: for <c>seconds</c> each, evaluates <c>(x + y).add(1.5)</c> (implicit Scalars, TorchSharp's
/// own <c>x + y</c> included) and then the same arithmetic with live cached Scalars, while a background thread forces
/// garbage collections and finalizers. Prints "UNSAFE iterations failures firstMessage" and "SAFE iterations failures".
/// </summary>
internal static class ScalarRaceProbe
{
    public static int Run(string secondsText)
    {
        double seconds = double.Parse(secondsText, CultureInfo.InvariantCulture);
        TorchRuntime.EnsureLoaded();
        set_num_threads(1);
        using var x = ones(4);
        using var y = ones(4);
        var unsafeResult = Measure(seconds, () => (x + y).add(1.5));
        var safeResult = Measure(seconds, () => x.add(y, TorchScalars.One).add(TorchScalars.Of(1.5), TorchScalars.One));
        Console.WriteLine($"UNSAFE {unsafeResult.Iterations} {unsafeResult.Failures} {unsafeResult.FirstError}");
        Console.WriteLine($"SAFE {safeResult.Iterations} {safeResult.Failures} {safeResult.FirstError}");
        Console.WriteLine("DONE");
        return 0;
    }

    private static (long Iterations, long Failures, string FirstError) Measure(double seconds, Func<Tensor> operation)
    {
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        long iterations = 0, failures = 0;
        string first = "-";
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            using var scope = NewDisposeScope();
            try
            {
                var result = operation();
                if (result.data<float>()[0] != 3.5f) throw new InvalidOperationException("wrong value " + result.data<float>()[0]);
            }
            catch (Exception ex)
            {
                if (failures++ == 0) first = ex.GetType().Name + ": " + ex.Message.Split('\n')[0];
            }
            iterations++;
        }
        stop.Cancel();
        collector.Join();
        return (iterations, failures, first);
    }
}
