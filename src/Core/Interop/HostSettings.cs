using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace MLNet.Attention.Interop;

/// <summary>
/// What ML.NET keeps behind internal members: the environment behind a catalog, the GPU settings of an environment
/// (public only on <see cref="MLContext"/>: <see cref="MLContext.GpuDeviceId"/>, <see cref="MLContext.FallbackToCpu"/>)
/// and the <see cref="SchemaShape.Column"/> constructor. Compiled against the publicized references like everything in
/// src/Core/Interop (no reflection, checked by the compiler); pinned to Microsoft.ML 5.0.1 by tests.
/// </summary>
internal static class HostSettings
{
    /// <summary>The <see cref="IHostEnvironment"/> behind an ML.NET catalog (e.g.
    /// <c>mlContext.Forecasting.Trainers</c>).</summary>
    public static IHostEnvironment EnvironmentOf(object catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog switch
        {
            IHostEnvironment env => env,
            // Every ML.NET catalog (TrainCatalogBase, CatalogInstantiatorBase, TransformsCatalog...) implements it.
            IInternalCatalog internalCatalog => internalCatalog.Environment,
            _ => throw new InvalidOperationException(
                $"Cannot find the ML.NET environment behind {catalog.GetType().FullName}; " +
                "MLNet.Attention supports Microsoft.ML 5.0.x catalogs."),
        };
    }

    /// <summary>(GpuDeviceId, FallbackToCpu) of the MLContext that owns <paramref name="env"/>.</summary>
    public static (int? GpuDeviceId, bool FallbackToCpu) GpuSettings(IHostEnvironment env) => env switch
    {
        MLContext context => (context.GpuDeviceId, context.FallbackToCpu),
        // ML.NET's environments and the hosts registered on them; an IHostEnvironment of the user's own: CPU.
        IHostEnvironmentInternal internalEnv => (internalEnv.GpuDeviceId, internalEnv.FallbackToCpu),
        _ => (null, false),
    };

    /// <summary>A <see cref="SchemaShape.Column"/> (its constructor is internal in ML.NET 5.0.1).</summary>
    public static SchemaShape.Column SchemaColumn(string name, SchemaShape.Column.VectorKind kind,
        DataViewType itemType, bool isKey = false, SchemaShape? annotations = null)
        => new(name, kind, itemType, isKey, annotations);
}
