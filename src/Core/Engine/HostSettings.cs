using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace MLNet.Attention.Engine;

/// <summary>
/// Reads what ML.NET keeps on its environment but exposes only on <see cref="MLContext"/>: the environment behind a
/// catalog, and the GPU settings (<see cref="MLContext.GpuDeviceId"/>, <see cref="MLContext.FallbackToCpu"/>).
/// ML.NET declares these on internal interfaces, so they are read by name; pinned to Microsoft.ML 5.0.1 by tests.
/// </summary>
internal static class HostSettings
{
    /// <summary>The <see cref="IHostEnvironment"/> behind an ML.NET catalog (e.g. <c>mlContext.Forecasting.Trainers</c>).</summary>
    public static IHostEnvironment EnvironmentOf(object catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        if (catalog is IHostEnvironment env) return env;
        foreach (var iface in catalog.GetType().GetInterfaces())
        {
            if (iface.Name != "IInternalCatalog") continue;
            var property = iface.GetProperty("Environment", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
            if (property?.GetValue(catalog) is IHostEnvironment found) return found;
        }
        throw new InvalidOperationException($"Cannot find the ML.NET environment behind {catalog.GetType().FullName}; MLNet.Attention supports Microsoft.ML 5.0.x catalogs.");
    }

    /// <summary>(GpuDeviceId, FallbackToCpu) of the MLContext that owns <paramref name="env"/>.</summary>
    public static (int? GpuDeviceId, bool FallbackToCpu) GpuSettings(IHostEnvironment env)
    {
        if (env is MLContext context) return (context.GpuDeviceId, context.FallbackToCpu);
        object? gpu = Read(env, "GpuDeviceId"), fallback = Read(env, "FallbackToCpu");
        return (gpu as int?, fallback is bool b && b);
    }

    /// <summary>A <see cref="SchemaShape.Column"/> (its constructor is internal in ML.NET 5.0.1).</summary>
    public static SchemaShape.Column SchemaColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey = false)
    {
        var ctor = typeof(SchemaShape.Column).GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)
            .FirstOrDefault(c => c.GetParameters().Length == 5)
            ?? throw new InvalidOperationException("SchemaShape.Column has no 5-argument constructor; MLNet.Attention supports Microsoft.ML 5.0.x.");
        return (SchemaShape.Column)ctor.Invoke(new object?[] { name, kind, itemType, isKey, null });
    }

    private static object? Read(object target, string name)
    {
        for (var type = target.GetType(); type is not null; type = type.BaseType)
        {
            var p = type.GetProperty(name, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly);
            if (p is not null) return p.GetValue(target);
        }
        foreach (var iface in target.GetType().GetInterfaces())
        {
            var p = iface.GetProperty(name, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
            if (p is not null) return p.GetValue(target);
        }
        return null;
    }
}
