using Microsoft.ML;
using ThirdParty.Mlp;

namespace MLNet.Attention.Tests.Engine;

/// <summary>A classifier written from the public API (nuget/smoke/App/ThirdPartyClassifier.cs; the NuGet smoke compiles
/// the same file against the packed packages, where no internals are visible) trains, evaluates and round-trips.</summary>
[TestClass]
public sealed class ThirdPartyTrainerTests
{
    [TestMethod]
    public void AClassifierWrittenFromThePublicApiTrainsEvaluatesAndRoundTrips()
    {
        var (accuracy, same) = MlpDemo.Run();
        Assert.IsGreaterThan(0.9, accuracy, $"macro accuracy {accuracy}");
        Assert.IsTrue(same, "reloaded scores differ");
    }

    [TestMethod]
    public void TheBaseChecksTheLabelAndTheFeatureColumns()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(MlpDemo.Blobs(30, 1));
        var trainer = ml.MulticlassClassification.Trainers.Mlp(new MlpOptions { Features = 4, MaxEpochs = 1 });
        var notKey = Assert.Throws<Exception>(() => trainer.Fit(data));
        StringAssert.Contains(notKey.Message, "MapValueToKey(\"Label\")");
        var wrongSize = ml.MulticlassClassification.Trainers.Mlp(new MlpOptions { Features = 5, MaxEpochs = 1 });
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var error = Assert.Throws<Exception>(() => wrongSize.Fit(keyed));
        StringAssert.Contains(error.Message, "'Features'");
    }
}
