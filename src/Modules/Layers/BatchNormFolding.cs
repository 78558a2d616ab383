using MLNet.Attention.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Layers;

/// <summary>A module whose forward feeds the output of each listed convolution straight into the listed
/// <see cref="BatchNorm2d"/> (nothing in between), which <see cref="BatchNormFolding"/> may then fold.</summary>
internal interface IConvBatchNormPairs
{
    /// <summary>(convolution, the batch norm that directly consumes its output) pairs of this module's own fields.</summary>
    IEnumerable<(Conv2d Convolution, BatchNorm2d Norm)> ConvBatchNormPairs { get; }
}

/// <summary>
/// Folds evaluation-mode batch norms into the convolution in front of them, for inference copies of a network:
/// W' = W·γ/σ and b' = β + (b − μ)·γ/σ with σ = √(running_var + ε); the norm then passes its input through. This saves
/// one memory-bound pass over every normalised activation (the same rewrite ONNX Runtime and TorchScript's freeze do).
/// Only pairs that are adjacent by construction are folded: consecutive children of a <c>Sequential</c> and the pairs
/// a module lists through <see cref="IConvBatchNormPairs"/>. Every other norm keeps its running statistics.
/// </summary>
internal static class BatchNormFolding
{
    /// <summary>Folds every foldable pair of <paramref name="root"/> in place; returns how many were folded. The module
    /// must be in evaluation mode and must not be trained afterwards (a folded norm refuses training mode).</summary>
    public static int Fold(nn.Module root)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (root.training)
            throw new InvalidOperationException("Batch norms fold only in evaluation mode; call eval() on the copy first.");
        int folded = 0;
        using var noGrad = no_grad();
        // TorchSharp's modules() leaves out the root itself (PyTorch's includes it).
        foreach (var module in root.modules().Prepend(root).Distinct())
            foreach (var (convolution, norm) in Pairs(module))
                if (FoldPair(convolution, norm)) folded++;
        return folded;
    }

    private static IEnumerable<(Conv2d, BatchNorm2d)> Pairs(nn.Module module)
    {
        if (module is IConvBatchNormPairs listed) return listed.ConvBatchNormPairs;
        if (module is not Sequential sequential) return Array.Empty<(Conv2d, BatchNorm2d)>();
        var children = sequential.children().ToList();
        var pairs = new List<(Conv2d, BatchNorm2d)>();
        for (int i = 0; i + 1 < children.Count; i++)
            if (children[i] is Conv2d convolution && children[i + 1] is BatchNorm2d norm) pairs.Add((convolution, norm));
        return pairs;
    }

    private static bool FoldPair(Conv2d convolution, BatchNorm2d norm)
    {
        if (norm.FoldedIntoConvolution || norm.running_mean is null || norm.running_var is null) return false;
        if (convolution.out_channels != norm.running_mean.shape[0]) return false;
        using var scope = NewDisposeScope();
        using var eps = norm.eps.ToScalar();   // explicit Scalars only (see TorchScalars)
        var inverseStd = norm.running_var.add(eps, TorchScalars.One).rsqrt();
        var scale = norm.weight is null ? inverseStd : inverseStd.mul(norm.weight);
        var oldBias = convolution.bias is null ? zeros_like(norm.running_mean) : convolution.bias.detach();
        var bias = oldBias.sub(norm.running_mean).mul(scale);
        if (norm.bias is not null) bias = bias.add(norm.bias, TorchScalars.One);
        convolution.weight.mul_(scale.view(-1, 1, 1, 1));
        convolution.bias = new Parameter(bias.clone(), requires_grad: false);
        norm.FoldedIntoConvolution = true;
        return true;
    }
}
