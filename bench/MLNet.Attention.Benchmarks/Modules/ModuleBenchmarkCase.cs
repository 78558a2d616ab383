using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Benchmarks.Modules;

/// <summary>
/// One block timed by the <c>modules</c> command at a representative size. <see cref="Block"/> and <see cref="Size"/>
/// must equal the <c>block</c> and <c>size</c> strings of the matching case in <c>bench/reference/modules/*.py</c>:
/// the command pairs the two implementations by them.
/// </summary>
/// <param name="Block">Block name, e.g. "ELA-L".</param>
/// <param name="Size">Human-readable input size, e.g. "B 32, C 64, 56×56".</param>
/// <param name="CreateModule">Builds the module (float32, train or eval mode as the case needs).</param>
/// <param name="CreateInputs">Builds the inputs (float32) for one call.</param>
/// <param name="Forward">Runs the module on the inputs and returns one output tensor; forward+backward backpropagates its sum.</param>
public sealed record ModuleBenchmarkCase(
    string Block,
    string Size,
    Func<nn.Module> CreateModule,
    Func<Tensor[]> CreateInputs,
    Func<nn.Module, Tensor[], Tensor> Forward);

/// <summary>Implemented once per block (one file each); the <c>modules</c> command finds implementations by reflection.</summary>
public interface IModuleBenchmarkCases
{
    /// <summary>The block's benchmark cases.</summary>
    IEnumerable<ModuleBenchmarkCase> Cases { get; }
}
