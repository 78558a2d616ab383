using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// How a bag of instances (the tiles of a slide, the conformations of a molecule) is one ML.NET row: the instance
/// features as one variable-size <c>Vector&lt;Single&gt;</c> holding N × D values row-major (instance 0's D features,
/// then instance 1's, …), with the instance feature size D as the column annotation <see cref="InstanceSizeName"/>;
/// optional instance coordinates as a variable-size <c>Vector&lt;Int64&gt;</c> of N × 2 values (x, y per instance,
/// as CLAM/TRIDENT <c>coords</c>). <c>GroupIntoBags</c> and the feature-file loader write this layout and the MIL
/// trainers read it.
/// </summary>
public static class InstanceBags
{
    /// <summary>The annotation (Int32 scalar) on a bag features column that holds the instance feature size D.</summary>
    public const string InstanceSizeName = "InstanceSize";

    /// <summary>Annotations that declare the instance feature size <paramref name="instanceSize"/> of a bag column.</summary>
    public static DataViewSchema.Annotations InstanceSizeAnnotations(int instanceSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(instanceSize);
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(InstanceSizeName, NumberDataViewType.Int32, (ref int value) => value = instanceSize);
        return builder.ToAnnotations();
    }

    /// <summary>The instance feature size D declared on <paramref name="column"/>, if any.</summary>
    public static bool TryGetInstanceSize(DataViewSchema.Column column, out int instanceSize)
    {
        instanceSize = 0;
        var annotation = column.Annotations.Schema.GetColumnOrNull(InstanceSizeName);
        if (annotation is not { } a || a.Type != NumberDataViewType.Int32) return false;
        column.Annotations.GetValue(InstanceSizeName, ref instanceSize);
        return instanceSize > 0;
    }
}
