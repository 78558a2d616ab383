using System.Diagnostics;
using Microsoft.ML;

namespace MLNet.Attention.Data;

/// <summary>
/// Tells whether the current call comes from ML.NET's <see cref="PredictionEngineBase{TSrc, TDst}"/>.Dispose, which
/// disposes the transformer an engine was made from. Only the public engine type is inspected (no ML.NET internals).
/// </summary>
internal static class PredictionEngineGuard
{
    private static readonly Type EngineBase = typeof(PredictionEngineBase<,>);

    /// <summary>True when a frame of the current stack is the <c>Dispose</c> of a prediction engine.</summary>
    internal static bool IsDisposingAnEngine()
    {
        // Disposal is rare: a stack walk (tens of microseconds) is cheap next to creating an engine.
        var frames = new StackTrace(skipFrames: 1, fNeedFileInfo: false).GetFrames();
        foreach (var frame in frames)
        {
            var method = frame.GetMethod();
            if (method?.Name == nameof(IDisposable.Dispose) && IsEngine(method.DeclaringType))
                return true;
        }
        return false;
    }

    private static bool IsEngine(Type? type)
    {
        for (; type is not null; type = type.BaseType)
            if (type.IsGenericType && type.GetGenericTypeDefinition() == EngineBase)
                return true;
        return false;
    }
}
