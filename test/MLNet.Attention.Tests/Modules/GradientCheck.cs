using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules;

/// <summary>
/// Float64 finite-difference gradient check: compares autograd's gradient of a random projection of the output,
/// L = Σ f(·) ⊙ w, with central differences (L(θ+ε) − L(θ−ε)) / 2ε on a sample of elements of every tensor checked.
/// </summary>
internal static class GradientCheck
{
    /// <summary>
    /// Checks the gradients of <paramref name="forward"/> with respect to every parameter of <paramref name="module"/>
    /// (which must already be float64; frozen parameters are skipped) and every input in <paramref name="inputs"/>
    /// (float64 leaves with requires_grad set). <paramref name="forward"/> must be deterministic: put dropout in eval
    /// mode or to zero, and inject any random draws.
    /// </summary>
    public static void Verify(nn.Module module, Func<Tensor> forward, params Tensor[] inputs)
        => Verify(forward, module.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, (Tensor)p.parameter))
            .Concat(inputs.Select((t, i) => ($"input {i}", t))).ToList());

    /// <summary>Checks the gradients of <paramref name="forward"/> with respect to each named float64 leaf tensor.</summary>
    public static void Verify(Func<Tensor> forward, IReadOnlyList<(string Name, Tensor Leaf)> wrt,
        double eps = 1e-6, double atol = 1e-6, double rtol = 1e-4, int maxElementsPerTensor = 16, int seed = 7)
    {
        Assert.IsTrue(wrt.Count > 0, "nothing to check");
        foreach (var (name, leaf) in wrt)
        {
            Assert.AreEqual(ScalarType.Float64, leaf.dtype, $"{name} must be float64 for a finite-difference check");
            Assert.IsTrue(leaf.requires_grad, $"{name} must require grad");
        }

        Tensor projection;
        using (var probe = forward())
        {
            var generator = new torch.Generator((ulong)seed);
            projection = torch.randn(probe.shape, dtype: ScalarType.Float64, generator: generator);
        }
        using var _ = projection;

        foreach (var (_, leaf) in wrt) leaf.grad?.zero_();
        using (var output = forward())
        using (var loss = (output * projection).sum())
            loss.backward();

        var random = new Random(seed);
        foreach (var (name, leaf) in wrt)
        {
            Assert.IsNotNull(leaf.grad, $"{name}: no gradient reached this tensor");
            using var analytic = leaf.grad!.detach().clone().reshape(-1);
            long n = leaf.numel();
            var indices = n <= maxElementsPerTensor
                ? Enumerable.Range(0, (int)n).Select(i => (long)i)
                : Enumerable.Range(0, maxElementsPerTensor).Select(_ => random.NextInt64(n)).Distinct();
            foreach (long j in indices)
            {
                double numeric = CentralDifference(forward, projection, leaf, j, eps);
                double got = analytic[j].item<double>();
                Assert.IsTrue(Math.Abs(got - numeric) <= atol + rtol * Math.Abs(numeric),
                    $"{name}[{j}] (flat): autograd {got:G10} vs finite difference {numeric:G10}");
            }
            leaf.grad!.zero_();
        }
    }

    private static double CentralDifference(Func<Tensor> forward, Tensor projection, Tensor leaf, long flatIndex, double eps)
    {
        using var noGrad = no_grad();
        using var flat = leaf.view(-1);
        using var element = flat[flatIndex];
        double original = element.item<double>();
        element.fill_(original + eps);
        double plus = Loss(forward, projection);
        element.fill_(original - eps);
        double minus = Loss(forward, projection);
        element.fill_(original);
        return (plus - minus) / (2 * eps);
    }

    private static double Loss(Func<Tensor> forward, Tensor projection)
    {
        using var scope = NewDisposeScope();
        return (forward() * projection).sum().item<double>();
    }
}
