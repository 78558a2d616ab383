// Package smoke test for MLNet.Attention.Modules alone: build each block, run forward and backward, check shapes.
using MLNet.Attention.Forecasting;
using MLNet.Attention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

TorchRuntime.EnsureLoaded();
TorchRuntime.Seed(1);
var failures = new List<string>();

void Check(string name, Func<nn.Module> create, Func<nn.Module, Tensor> forward, long[] expectedShape)
{
    using var scope = NewDisposeScope();
    try
    {
        using var module = create();
        var y = forward(module);
        y.sum().backward();
        if (!y.shape.SequenceEqual(expectedShape)) failures.Add($"{name}: shape [{string.Join(", ", y.shape)}], expected [{string.Join(", ", expectedShape)}]");
        else if (!y.isfinite().all().item<bool>()) failures.Add($"{name}: non-finite output");
        else Console.WriteLine($"{name}: [{string.Join(", ", y.shape)}] ok");
    }
    catch (Exception ex) { failures.Add($"{name}: {ex.GetType().Name}: {ex.Message}"); }
}

Check("iTransformer", () => new InvertedTransformerNetwork(new InvertedTransformerConfig(24, 6, ModelWidth: 16, Heads: 2, Layers: 1, FeedForwardWidth: 16)),
    m => ((InvertedTransformerNetwork)m).call(randn(2, 24, 3), null), [2, 6, 3]);

if (failures.Count > 0) { foreach (var f in failures) Console.WriteLine($"MODULES SMOKE FAILED: {f}"); return 1; }
Console.WriteLine("MODULES SMOKE OK");
return 0;
