using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Attention.Layers;

/// <summary>
/// Gated feed-forward network of LLaMA / PaLM (SwiGLU, Shazeer 2020):
/// <c>down_proj( SiLU(gate_proj x) ⊙ up_proj x )</c>, all three projections bias-free. Field names are those of the
/// Hugging Face <c>LlamaMLP</c> (<c>gate_proj</c>, <c>up_proj</c>, <c>down_proj</c>), so checkpoints map one to one.
/// </summary>
public sealed class SwiGluMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear gate_proj, up_proj, down_proj;

    /// <param name="width">Input and output width d.</param>
    /// <param name="innerWidth">Hidden width (n_inner / intermediate_size).</param>
    public SwiGluMlp(int width, int innerWidth) : base(nameof(SwiGluMlp))
    {
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "The width must be positive.");
        if (innerWidth < 1) throw new ArgumentOutOfRangeException(nameof(innerWidth), innerWidth, "The inner width must be positive (e.g. about 2.7 × width).");
        gate_proj = nn.Linear(width, innerWidth, hasBias: false);
        up_proj = nn.Linear(width, innerWidth, hasBias: false);
        down_proj = nn.Linear(innerWidth, width, hasBias: false);
        RegisterComponents();
    }

    /// <summary>Number of parameters: 3 · width · innerWidth.</summary>
    public static long ParameterCount(int width, int innerWidth) => 3L * width * innerWidth;

    /// <summary>x: [..., width] → [..., width].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = down_proj.call(nn.functional.silu(gate_proj.call(x)) * up_proj.call(x));
        return y.MoveToOuterDisposeScope();
    }
}
