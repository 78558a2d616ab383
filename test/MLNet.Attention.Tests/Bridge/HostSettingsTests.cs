using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Interop;

namespace MLNet.Attention.Tests.Bridge;

/// <summary>Pins the ML.NET internals <see cref="HostSettings"/> uses directly (Microsoft.ML 5.0.1).</summary>
[TestClass]
public sealed class HostSettingsTests
{
    [TestMethod]
    public void EnvironmentOfACatalogCarriesTheContextsSettings()
    {
        // Catalogs hold MLContext's inner environment (an internal LocalEnvironment), not the MLContext itself.
        var ml = new MLContext(seed: 1) { GpuDeviceId = 1, FallbackToCpu = true };
        var env = HostSettings.EnvironmentOf(ml.Forecasting.Trainers);
        Assert.AreSame(env, HostSettings.EnvironmentOf(ml.Transforms));
        Assert.AreEqual(((int?)1, true), HostSettings.GpuSettings(env));
        Assert.AreSame(ml, HostSettings.EnvironmentOf(ml));
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => HostSettings.EnvironmentOf("not a catalog"));
        StringAssert.Contains(ex.Message, "System.String");
    }

    [TestMethod]
    public void GpuSettingsAreReadFromTheContextAndItsHosts()
    {
        var ml = new MLContext(seed: 1) { GpuDeviceId = 2, FallbackToCpu = true };
        Assert.AreEqual(((int?)2, true), HostSettings.GpuSettings(ml));
        Assert.AreEqual(((int?)2, true), HostSettings.GpuSettings(((IHostEnvironment)ml).Register("child")));
        Assert.AreEqual(((int?)null, false), HostSettings.GpuSettings(new MLContext(seed: 1)));
    }

    [TestMethod]
    public void SchemaColumnUsesTheInternalConstructor()
    {
        var column = HostSettings.SchemaColumn("Forecast", SchemaShape.Column.VectorKind.Vector,
            NumberDataViewType.Single);
        Assert.AreEqual("Forecast", column.Name);
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, column.Kind);
        Assert.AreEqual(NumberDataViewType.Single, column.ItemType);
        Assert.IsFalse(column.IsKey);
        Assert.AreEqual(0, column.Annotations.Count());
    }
}
