using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.MultipleInstance;

namespace MLNet.Attention.Tests.MultipleInstance;

/// <summary>A CLAM-style cohort on disk (.h5 per slide + dataset CSV) trains a bag classifier through the lazy view:
/// bags are read file by file, never all in memory, and the model finds the positive instances.</summary>
[TestClass]
public sealed class FeatureCohortTrainingTests
{
    [TestMethod]
    public void ClamCohortFromH5FilesTrainsAttentionMilAndAttendsToThePositiveInstances()
    {
        const int D = 8;
        string dir = Path.Combine(Path.GetTempPath(), $"cohort-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var random = new Random(4);
            var csv = new List<string> { "case_id,slide_id,label" };
            var positiveRows = new Dictionary<string, int>();
            for (int s = 0; s < 40; s++)
            {
                bool tumour = s % 2 == 0;
                int n = random.Next(20, 60);
                var features = new float[n * D];
                for (int i = 0; i < features.Length; i++) features[i] = (float)(random.NextDouble() - 0.5);
                var coords = new long[n * 2];
                for (int i = 0; i < n; i++) { coords[2 * i] = 256 * (i % 8); coords[2 * i + 1] = 256 * (i / 8); }
                if (tumour)
                {
                    int row = random.Next(n);
                    positiveRows[$"slide{s}"] = row;
                    features[row * D] += 4f;   // one tumour tile per positive slide
                }
                FeatureFile.Write(Path.Combine(dir, $"slide{s}.h5"), features, D, coords);
                csv.Add($"case{s},slide{s},{(tumour ? "tumor" : "normal")}");
            }
            File.WriteAllLines(Path.Combine(dir, "dataset.csv"), csv);

            var ml = new MLContext(seed: 2);
            var bags = ml.Data.LoadFeatureBags(Path.Combine(dir, "dataset.csv"), dir);
            var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(bags).Transform(bags);
            var options = new AttentionMilOptions
            {
                MaxEpochs = 25, InnerSize = 32, AttentionSize = 16, LearningRate = 2e-3, ValidationFraction = 0,
                EarlyStoppingPatience = null, Seed = 3, NumberOfThreads = 1, ShufflePoolSize = 8,
            };
            using var model = ml.MulticlassClassification.Trainers.AttentionMil(options).Fit(keyed);
            var scored = model.Transform(keyed);
            var metrics = ml.MulticlassClassification.Evaluate(scored);
            Assert.IsTrue(metrics.MicroAccuracy >= 0.9, $"accuracy {metrics.MicroAccuracy:F3}");

            var ids = scored.GetColumn<ReadOnlyMemory<char>>("SlideId").Select(m => m.ToString()).ToArray();
            var attention = scored.GetColumn<float[]>("Attention").ToArray();
            int found = 0;
            for (int b = 0; b < ids.Length; b++)
                if (positiveRows.TryGetValue(ids[b], out int row) && Array.IndexOf(attention[b], attention[b].Max()) == row) found++;
            Assert.IsTrue(found >= 16, $"the tumour tile has the highest attention in {found} of 20 positive slides");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
