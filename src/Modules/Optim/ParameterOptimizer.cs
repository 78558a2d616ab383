using MLNet.Attention.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Optim;

/// <summary>
/// Base of the optimizers the training engine uses instead of TorchSharp's: the same update rules (PyTorch's), written
/// so that no <see cref="TorchSharp.Scalar"/> is created implicitly during a step. TorchSharp 0.107's optimizers convert
/// every hyper-parameter to a temporary Scalar on each step, which a garbage collection can free while libtorch reads it
/// (see <see cref="TorchScalars"/>). Constants come from <see cref="TorchScalars"/>; per-step values (learning rate,
/// bias corrections) are created and disposed in the step.
/// </summary>
public abstract class ParameterOptimizer : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly bool[] _decays;
    private bool _disposed;

    /// <summary>Creates the optimizer over the parameters that require gradients.</summary>
    /// <param name="parameters">Parameters to update; those with <c>requires_grad == false</c> are ignored.</param>
    /// <param name="learningRate">Initial learning rate (positive).</param>
    /// <param name="withoutWeightDecay">Parameters exempt from weight decay (e.g. biases and norm weights), or null.</param>
    protected ParameterOptimizer(IEnumerable<Parameter> parameters, double learningRate, IEnumerable<Parameter>? withoutWeightDecay = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _parameters = parameters.Where(p => p.requires_grad).ToArray();
        var exempt = new HashSet<Parameter>(withoutWeightDecay ?? Array.Empty<Parameter>(), ReferenceEqualityComparer.Instance);
        _decays = _parameters.Select(p => !exempt.Contains(p)).ToArray();
        LearningRate = learningRate;
    }

    /// <summary>False for a parameter exempt from weight decay.</summary>
    /// <param name="index">Index in <see cref="Parameters"/>.</param>
    protected bool DecaysWeight(int index) => _decays[index];

    /// <summary>The parameters this optimizer updates.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>The learning rate of the next step (a schedule sets it before each step).</summary>
    public double LearningRate
    {
        get;
        set
        {
            if (!(value >= 0) || double.IsInfinity(value))
                throw new ArgumentOutOfRangeException(nameof(LearningRate), value, "The learning rate must be a non-negative finite number.");
            field = value;
        }
    }

    /// <summary>Steps taken so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>Sets every parameter's gradient to zero (keeping the gradient tensors allocated).</summary>
    public void ZeroGrad()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var noGrad = no_grad();
        foreach (var p in _parameters)
        {
            var grad = p.grad;
            if (grad is null) continue;
            grad.zero_();
        }
    }

    /// <summary>Updates every parameter that has a gradient.</summary>
    public void Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        StepCount++;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (int i = 0; i < _parameters.Length; i++)
        {
            var grad = _parameters[i].grad;
            if (grad is null) continue;
            Update(i, _parameters[i], grad, StepCount);
        }
    }

    /// <summary>Updates one parameter in place (called inside <c>no_grad</c> and a dispose scope).</summary>
    /// <param name="index">Index of the parameter in <see cref="Parameters"/> (for per-parameter state).</param>
    /// <param name="parameter">The parameter.</param>
    /// <param name="grad">Its gradient.</param>
    /// <param name="step">1-based step number.</param>
    protected abstract void Update(int index, Parameter parameter, Tensor grad, long step);

    /// <summary>Disposes per-parameter state tensors.</summary>
    protected abstract void DisposeState();

    /// <summary>Creates a zero state tensor shaped like <paramref name="parameter"/>, outside any dispose scope.</summary>
    protected static Tensor ZerosLike(Parameter parameter) => zeros_like(parameter).DetachFromDisposeScope();

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        DisposeState();
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// AdamW (Loshchilov &amp; Hutter), equal to <c>torch.optim.AdamW</c> / TorchSharp's <c>optim.AdamW</c> without amsgrad:
/// p ← p·(1 − lr·λ); m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²; p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).
/// </summary>
public sealed class AdamW : ParameterOptimizer
{
    private readonly Tensor?[] _mean, _square;
    private readonly Scalar _beta1, _beta2, _oneMinusBeta1, _oneMinusBeta2, _eps;
    private readonly double _b1, _b2, _weightDecay;

    /// <param name="parameters">Parameters to update.</param>
    /// <param name="learningRate">Learning rate.</param>
    /// <param name="beta1">Decay of the first moment (PyTorch 0.9).</param>
    /// <param name="beta2">Decay of the second moment (PyTorch 0.999).</param>
    /// <param name="eps">Added to the denominator (PyTorch 1e-8).</param>
    /// <param name="weightDecay">Decoupled weight decay λ (PyTorch's default 0.01; 0 gives Adam).</param>
    /// <param name="withoutWeightDecay">Parameters exempt from weight decay, or null.</param>
    public AdamW(IEnumerable<Parameter> parameters, double learningRate = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0.01, IEnumerable<Parameter>? withoutWeightDecay = null)
        : base(parameters, learningRate, withoutWeightDecay)
    {
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "beta1 must be in [0, 1).");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "beta2 must be in [0, 1).");
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps cannot be negative.");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weightDecay cannot be negative.");
        _b1 = beta1; _b2 = beta2; _weightDecay = weightDecay;
        _beta1 = TorchScalars.Of(beta1); _beta2 = TorchScalars.Of(beta2);
        _oneMinusBeta1 = TorchScalars.Of(1 - beta1); _oneMinusBeta2 = TorchScalars.Of(1 - beta2);
        _eps = TorchScalars.Of(eps);
        _mean = new Tensor?[Parameters.Count];
        _square = new Tensor?[Parameters.Count];
    }

    /// <inheritdoc/>
    protected override void Update(int index, Parameter parameter, Tensor grad, long step)
    {
        var mean = _mean[index] ??= ZerosLike(parameter);
        var square = _square[index] ??= ZerosLike(parameter);
        double correction1 = 1 - Math.Pow(_b1, step);
        double correction2 = 1 - Math.Pow(_b2, step);
        using var decay = (1 - LearningRate * _weightDecay).ToScalar();
        using var rootCorrection2 = Math.Sqrt(correction2).ToScalar();
        using var stepSize = (-(LearningRate / correction1)).ToScalar();
        if (_weightDecay != 0 && DecaysWeight(index)) parameter.mul_(decay);
        mean.mul_(_beta1).add_(grad, _oneMinusBeta1);
        square.mul_(_beta2).addcmul_(grad, grad, _oneMinusBeta2);
        var denominator = square.sqrt().div_(rootCorrection2).add_(_eps, TorchScalars.One);
        parameter.addcdiv_(mean, denominator, stepSize);
    }

    /// <inheritdoc/>
    protected override void DisposeState()
    {
        foreach (var t in _mean) t?.Dispose();
        foreach (var t in _square) t?.Dispose();
    }
}

/// <summary>
/// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and (coupled) weight decay, equal
/// to <c>torch.optim.SGD</c>: g ← g + λp; b ← g (first step) or μb + (1 − τ)g; g ← g + μb (Nesterov) or b; p ← p − lr·g.
/// </summary>
public sealed class Sgd : ParameterOptimizer
{
    private readonly Tensor?[] _momentumBuffers;
    private readonly Scalar _momentum, _oneMinusDampening, _weightDecay;
    private readonly bool _useMomentum, _nesterov, _useWeightDecay;

    /// <param name="parameters">Parameters to update.</param>
    /// <param name="learningRate">Learning rate.</param>
    /// <param name="momentum">Momentum μ (0: plain SGD).</param>
    /// <param name="dampening">Dampening τ of the momentum.</param>
    /// <param name="weightDecay">L2 penalty λ added to the gradient.</param>
    /// <param name="nesterov">Nesterov momentum (needs momentum &gt; 0 and dampening 0).</param>
    /// <param name="withoutWeightDecay">Parameters exempt from weight decay, or null.</param>
    public Sgd(IEnumerable<Parameter> parameters, double learningRate, double momentum = 0, double dampening = 0,
        double weightDecay = 0, bool nesterov = false, IEnumerable<Parameter>? withoutWeightDecay = null)
        : base(parameters, learningRate, withoutWeightDecay)
    {
        if (!(momentum >= 0)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "momentum cannot be negative.");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weightDecay cannot be negative.");
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum needs momentum > 0 and dampening = 0 (as torch.optim.SGD).", nameof(nesterov));
        _useMomentum = momentum != 0;
        _nesterov = nesterov;
        _useWeightDecay = weightDecay != 0;
        _momentum = TorchScalars.Of(momentum);
        _oneMinusDampening = TorchScalars.Of(1 - dampening);
        _weightDecay = TorchScalars.Of(weightDecay);
        _momentumBuffers = new Tensor?[Parameters.Count];
    }

    /// <inheritdoc/>
    protected override void Update(int index, Parameter parameter, Tensor grad, long step)
    {
        var direction = _useWeightDecay && DecaysWeight(index) ? grad.add(parameter, _weightDecay) : grad;
        if (_useMomentum)
        {
            var buffer = _momentumBuffers[index];
            if (buffer is null)
                buffer = _momentumBuffers[index] = direction.detach().clone().DetachFromDisposeScope();
            else
                buffer.mul_(_momentum).add_(direction, _oneMinusDampening);
            direction = _nesterov ? direction.add(buffer, _momentum) : buffer;
        }
        using var negativeRate = (-LearningRate).ToScalar();
        parameter.add_(direction, negativeRate);
    }

    /// <inheritdoc/>
    protected override void DisposeState()
    {
        foreach (var t in _momentumBuffers) t?.Dispose();
    }
}
