using Microsoft.ML;
using MLNet.Attention.Interop;
using MLNet.Attention.MultipleInstance;

namespace MLNet.Attention;

/// <summary>
/// Attention-MIL bag classifiers (gated-attention MIL and ACMIL) on <c>mlContext.BinaryClassification.Trainers</c> and
/// <c>mlContext.MulticlassClassification.Trainers</c>. A row is a bag: its instances × features in one variable-size
/// vector column (<c>mlContext.Transforms.GroupIntoBags</c>, <c>mlContext.Data.LoadFeatureBags</c>).
/// </summary>
public static class MultipleInstanceCatalogExtensions
{
    /// <summary>Gated-attention MIL (Ilse et al. 2018) for a Boolean bag label: ML.NET's binary columns and the
    /// per-instance <c>Attention</c>.</summary>
    /// <param name="catalog">mlContext.BinaryClassification.Trainers.</param>
    /// <param name="labelColumnName">The Boolean bag label.</param>
    /// <param name="featureColumnName">The bag column (N instances × D features).</param>
    /// <param name="maxEpochs">Upper bound on epochs.</param>
    /// <param name="learningRate">Learning rate.</param>
    public static AttentionMilTrainer AttentionMil(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", int maxEpochs = 40, double learningRate = 5e-4)
        => AttentionMil(catalog, Simple(MilArchitecture.GatedAttention, labelColumnName, featureColumnName, maxEpochs, learningRate));

    /// <summary>ACMIL (Zhang et al. 2024) for a Boolean bag label: ML.NET's binary columns, <c>Attention</c> and
    /// <c>BranchAttention</c>.</summary>
    /// <param name="catalog">mlContext.BinaryClassification.Trainers.</param>
    /// <param name="labelColumnName">The Boolean bag label.</param>
    /// <param name="featureColumnName">The bag column (N instances × D features).</param>
    /// <param name="maxEpochs">Upper bound on epochs.</param>
    /// <param name="learningRate">Learning rate.</param>
    public static AttentionMilTrainer Acmil(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", int maxEpochs = 40, double learningRate = 5e-4)
        => AttentionMil(catalog, Simple(MilArchitecture.Acmil, labelColumnName, featureColumnName, maxEpochs, learningRate));

    /// <summary>A binary attention-MIL classifier with all options (<see cref="AttentionMilOptions.Architecture"/> picks
    /// ABMIL or ACMIL).</summary>
    public static AttentionMilTrainer AttentionMil(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        AttentionMilOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new AttentionMilTrainer(HostSettings.EnvironmentOf(catalog), options, binary: true);
    }

    /// <summary>Gated-attention MIL for a Key bag label (MapValueToKey): ML.NET's multiclass columns and the
    /// per-instance <c>Attention</c>.</summary>
    /// <param name="catalog">mlContext.MulticlassClassification.Trainers.</param>
    /// <param name="labelColumnName">The Key bag label.</param>
    /// <param name="featureColumnName">The bag column (N instances × D features).</param>
    /// <param name="maxEpochs">Upper bound on epochs.</param>
    /// <param name="learningRate">Learning rate.</param>
    public static AttentionMilTrainer AttentionMil(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", int maxEpochs = 40, double learningRate = 5e-4)
        => AttentionMil(catalog, Simple(MilArchitecture.GatedAttention, labelColumnName, featureColumnName, maxEpochs, learningRate));

    /// <summary>ACMIL for a Key bag label: ML.NET's multiclass columns, <c>Attention</c> and <c>BranchAttention</c>.</summary>
    /// <param name="catalog">mlContext.MulticlassClassification.Trainers.</param>
    /// <param name="labelColumnName">The Key bag label.</param>
    /// <param name="featureColumnName">The bag column (N instances × D features).</param>
    /// <param name="maxEpochs">Upper bound on epochs.</param>
    /// <param name="learningRate">Learning rate.</param>
    public static AttentionMilTrainer Acmil(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", int maxEpochs = 40, double learningRate = 5e-4)
        => AttentionMil(catalog, Simple(MilArchitecture.Acmil, labelColumnName, featureColumnName, maxEpochs, learningRate));

    /// <summary>A multiclass attention-MIL classifier with all options.</summary>
    public static AttentionMilTrainer AttentionMil(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        AttentionMilOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new AttentionMilTrainer(HostSettings.EnvironmentOf(catalog), options, binary: false);
    }

    private static AttentionMilOptions Simple(MilArchitecture architecture, string label, string features, int epochs, double lr) =>
        new()
        {
            Architecture = architecture,
            LabelColumnName = label,
            FeatureColumnName = features,
            MaxEpochs = epochs,
            LearningRate = lr,
        };
}
