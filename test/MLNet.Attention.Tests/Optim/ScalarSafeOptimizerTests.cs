using BatchNorm2d = MLNet.Attention.Layers.BatchNorm2d;
using MLNet.Attention.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Optim;

/// <summary>Our scalar-safe optimizers and BatchNorm2d against TorchSharp's own (the behaviour they replace).</summary>
[TestClass]
public sealed class ScalarSafeOptimizerTests
{
    private const int Steps = 100;

    /// <summary>A small MLP with a loss that keeps non-trivial gradients for many steps.</summary>
    private static (Sequential Net, Tensor X, Tensor Y) Problem(int seed)
    {
        random.manual_seed(seed);
        var net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3));
        var x = randn(32, 6);
        var y = randn(32, 3);
        return (net, x, y);
    }

    private static float[][] Train(Func<IEnumerable<Parameter>, Action[]> makeOptimizer, int seed, Func<int, double>? rate = null)
    {
        var (net, x, y) = Problem(seed);
        using (net)
        using (x)
        using (y)
        {
            var actions = makeOptimizer(net.parameters());   // [zero_grad, step, set lr (reads s_rate)]
            for (int step = 0; step < Steps; step++)
            {
                s_rate = rate?.Invoke(step) ?? double.NaN;
                if (rate is not null) actions[2]();
                using var scope = NewDisposeScope();
                actions[0]();
                var loss = nn.functional.mse_loss(net.call(x), y);
                loss.backward();
                actions[1]();
            }
            return net.parameters().Select(p => p.detach().cpu().data<float>().ToArray()).ToArray();
        }
    }

    [ThreadStatic] private static double s_rate;

    private static void AssertClose(float[][] expected, float[][] actual, double tolerance)
    {
        Assert.AreEqual(expected.Length, actual.Length);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
            for (int j = 0; j < expected[i].Length; j++)
                worst = Math.Max(worst, Math.Abs(expected[i][j] - actual[i][j]));
        Assert.IsTrue(worst <= tolerance, $"max |ours - TorchSharp| = {worst:G3} > {tolerance:G3} after {Steps} steps");
    }

    [TestMethod]
    [DataRow(0.0)]
    [DataRow(0.05)]
    public void AdamWEqualsTorchSharpsAdamWOverAHundredSteps(double weightDecay)
    {
        var theirs = Train(p =>
        {
            var o = optim.AdamW(p, 3e-3, weight_decay: weightDecay);
            return new Action[] { o.zero_grad, () => o.step(), () => { foreach (var g in o.ParamGroups) g.LearningRate = s_rate; } };
        }, seed: 3, rate: s => 3e-3 * (1 + Math.Cos(Math.PI * s / Steps)) / 2);
        var ours = Train(p =>
        {
            var o = new MLNet.Attention.Optim.AdamW(p, 3e-3, weightDecay: weightDecay);
            return new Action[] { o.ZeroGrad, o.Step, () => o.LearningRate = s_rate };
        }, seed: 3, rate: s => 3e-3 * (1 + Math.Cos(Math.PI * s / Steps)) / 2);
        AssertClose(theirs, ours, 1e-6);
    }

    [TestMethod]
    [DataRow(0.0, 0.0, false)]
    [DataRow(0.9, 0.0, false)]
    [DataRow(0.9, 0.0, true)]
    [DataRow(0.9, 1e-3, true)]
    [DataRow(0.5, 1e-2, false)]
    public void SgdEqualsTorchSharpsSgdOverAHundredSteps(double momentum, double weightDecay, bool nesterov)
    {
        var theirs = Train(p =>
        {
            var o = optim.SGD(p, 0.05, momentum: momentum, weight_decay: weightDecay, nesterov: nesterov);
            return new Action[] { o.zero_grad, () => o.step() };
        }, seed: 5);
        var ours = Train(p =>
        {
            var o = new Sgd(p, 0.05, momentum: momentum, weightDecay: weightDecay, nesterov: nesterov);
            return new Action[] { o.ZeroGrad, o.Step };
        }, seed: 5);
        AssertClose(theirs, ours, 1e-6);
    }

    [TestMethod]
    public void InvalidSettingsAreRefusedWithTheRule()
    {
        using var p = new Parameter(zeros(2));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new Sgd(new[] { p }, 0.1, nesterov: true)).Message, "momentum > 0");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MLNet.Attention.Optim.AdamW(new[] { p }, 0.1, beta1: 1)).Message, "beta1");
        var adam = new MLNet.Attention.Optim.AdamW(new[] { p }, 0.1);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => adam.LearningRate = double.NaN);
        adam.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => adam.Step());
    }

    [TestMethod]
    public void BatchNorm2dEqualsTorchSharpsInTrainingAndEvaluation()
    {
        random.manual_seed(11);
        using var theirs = nn.BatchNorm2d(4, eps: 1e-5, momentum: 0.1);
        using var ours = new BatchNorm2d(4, eps: 1e-5, momentum: 0.1);
        using (no_grad())
        {
            var w = rand(4) + 0.5;
            var b = randn(4);
            theirs.weight!.copy_(w); ours.weight!.copy_(w);
            theirs.bias!.copy_(b); ours.bias!.copy_(b);
        }
        CollectionAssert.AreEqual(theirs.state_dict().Keys.ToArray(), ours.state_dict().Keys.ToArray());
        for (int i = 0; i < 3; i++)
        {
            var x = randn(5, 4, 3, 3) * (i + 1);
            var a = theirs.call(x);
            var c = ours.call(x);
            Assert.IsTrue(a.allclose(c, rtol: 0, atol: 1e-6), "training output");
        }
        foreach (var (name, tensor) in theirs.state_dict())
            Assert.IsTrue(tensor.to(float64).allclose(ours.state_dict()[name].to(float64), rtol: 0, atol: 1e-6), name);
        Assert.AreEqual(3L, ours.num_batches_tracked!.item<long>());
        theirs.eval(); ours.eval();
        var probe = randn(2, 4, 3, 3);
        Assert.IsTrue(theirs.call(probe).allclose(ours.call(probe), rtol: 0, atol: 1e-6), "evaluation output");
        Assert.ThrowsExactly<ArgumentException>(() => ours.call(randn(2, 4)));
    }
}
