using Microsoft.ML.Runtime;
using MLNet.Attention.Interop;
using MLNet.Attention.Runtime;
using static TorchSharp.torch;

namespace MLNet.Attention.Engine;

/// <summary>
/// What every trainer sets up before it builds its network, written once: libtorch loaded, the thread count, the
/// seed (the options' or one drawn from the MLContext), the device by ML.NET's rule (<c>GpuDeviceId</c>,
/// <c>FallbackToCpu</c>), and libtorch's generators seeded so the network's weights are reproducible.
/// </summary>
/// <param name="Seed">The run's seed (weights and shuffling).</param>
/// <param name="Device">The device to train and score on.</param>
public readonly record struct TrainerSession(int Seed, Device Device)
{
    /// <summary>Starts a session for a trainer named <paramref name="name"/>.</summary>
    public static TrainerSession Start(IHostEnvironment env, string name, TorchTrainerOptions options)
    {
        TorchRuntime.EnsureLoaded();
        TorchRuntime.SetThreads(options.NumberOfThreads);
        var host = env.Register(name);
        int seed = options.Seed ?? host.Rand.Next();
        var (gpu, fallback) = HostSettings.GpuSettings(env);
        var device = TorchRuntime.ResolveDevice(gpu, fallback);
        TorchRuntime.Seed(seed);
        return new TrainerSession(seed, device);
    }
}
