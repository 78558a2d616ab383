using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Classification;

/// <summary>
/// The classes a classifier was trained on, read from its Key label column: their count and their key values (as
/// text), which the model writes on its <c>Score</c> slot names and its <c>PredictedLabel</c> key values so that
/// <c>MapKeyToValue</c>, the evaluators and <c>PredictionEngine</c> see what they see on ML.NET's own classifiers.
/// </summary>
public sealed class ClassLabels
{
    private const string KeyValuesKind = "KeyValues";

    /// <summary>Creates the label set from class names (key order).</summary>
    /// <param name="names">One name per class.</param>
    public ClassLabels(IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        if (names.Count < 1) throw new ArgumentException("A classifier needs at least one class.", nameof(names));
        Names = names.ToArray();
    }

    /// <summary>Class names in key order (key k + 1 is <c>Names[k]</c>).</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Number of classes.</summary>
    public int Count => Names.Count;

    /// <summary>
    /// Reads the label column: a Key (as <c>MapValueToKey</c> makes), whose key values become the class names (their text
    /// form; "0", "1", ... when the column has none), or a Boolean (binary classifiers: classes "False" and "True").
    /// </summary>
    /// <param name="schema">Training data schema.</param>
    /// <param name="labelColumnName">The label column.</param>
    /// <param name="component">Names the component in errors.</param>
    public static ClassLabels FromSchema(DataViewSchema schema, string labelColumnName, string component)
    {
        ArgumentNullException.ThrowIfNull(schema);
        var column = schema.GetColumnOrNull(labelColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"{component}: label column '{labelColumnName}' was not found. " +
                $"Available columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}.");
        if (column.Type is BooleanDataViewType)
            return new ClassLabels(new[] { "False", "True" });
        if (column.Type is not KeyDataViewType key || key.RawType != typeof(uint))
            throw new ArgumentOutOfRangeException(nameof(schema), $"{component}: label column '{labelColumnName}' has type " +
                $"{column.Type}; expected a Key. Add mlContext.Transforms.Conversion.MapValueToKey(\"{labelColumnName}\") " +
                "before the trainer (and MapKeyToValue(\"PredictedLabel\") after it to get the original labels back).");
        int count = checked((int)key.Count);
        var names = new string[count];
        var annotation = column.Annotations.Schema.GetColumnOrNull(KeyValuesKind);
        if (annotation is { Type: VectorDataViewType { ItemType: TextDataViewType } })
        {
            VBuffer<ReadOnlyMemory<char>> values = default;
            column.Annotations.GetValue(KeyValuesKind, ref values);
            var dense = values.DenseValues().ToArray();
            for (int i = 0; i < count; i++) names[i] = i < dense.Length ? dense[i].ToString() : i.ToString();
        }
        else if (annotation is { Type: VectorDataViewType { ItemType: var item } } && item.RawType != typeof(ReadOnlyMemory<char>))
        {
            var text = KeyValueTexts(column, item);
            for (int i = 0; i < count; i++) names[i] = i < text.Length ? text[i] : i.ToString();
        }
        else
        {
            for (int i = 0; i < count; i++) names[i] = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return new ClassLabels(names);
    }

    private static string[] KeyValueTexts(DataViewSchema.Column column, DataViewType item)
    {
        string[] Read<T>()
        {
            VBuffer<T> values = default;
            column.Annotations.GetValue(KeyValuesKind, ref values);
            return values.DenseValues().Select(v => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "").ToArray();
        }
        return item.RawType switch
        {
            var t when t == typeof(float) => Read<float>(),
            var t when t == typeof(double) => Read<double>(),
            var t when t == typeof(int) => Read<int>(),
            var t when t == typeof(long) => Read<long>(),
            var t when t == typeof(uint) => Read<uint>(),
            var t when t == typeof(bool) => Read<bool>(),
            _ => Array.Empty<string>(),
        };
    }

    /// <summary>The <c>PredictedLabel</c> annotations: the class names as key values.</summary>
    public DataViewSchema.Annotations PredictedLabelAnnotations()
    {
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(KeyValuesKind, new VectorDataViewType(TextDataViewType.Instance, Count), (ref VBuffer<ReadOnlyMemory<char>> v) => Fill(ref v));
        return builder.ToAnnotations();
    }

    /// <summary>The multiclass <c>Score</c> annotations: slot names (the class names) and the score kind markers
    /// ML.NET's own classifiers set.</summary>
    public DataViewSchema.Annotations ScoreAnnotations()
    {
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, Count), (ref VBuffer<ReadOnlyMemory<char>> v) => Fill(ref v));
        builder.Add("ScoreColumnKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = "MulticlassClassification".AsMemory());
        builder.Add("ScoreValueKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = "Score".AsMemory());
        return builder.ToAnnotations();
    }

    private void Fill(ref VBuffer<ReadOnlyMemory<char>> value)
    {
        var editor = VBufferEditor.Create(ref value, Count);
        for (int i = 0; i < Count; i++) editor.Values[i] = Names[i].AsMemory();
        value = editor.Commit();
    }

    /// <summary>The binary <c>Score</c> annotations (the score kind markers ML.NET's binary classifiers set).</summary>
    public static DataViewSchema.Annotations BinaryScoreAnnotations(string valueKind)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add("ScoreColumnKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = "BinaryClassification".AsMemory());
        builder.Add("ScoreValueKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = valueKind.AsMemory());
        return builder.ToAnnotations();
    }

    /// <summary>Writes the names.</summary>
    public void Write(BinaryWriter writer)
    {
        writer.Write(Count);
        foreach (var name in Names) writer.Write(name);
    }

    /// <summary>Reads names written by <see cref="Write"/>.</summary>
    public static ClassLabels Read(BinaryReader reader)
    {
        int count = reader.ReadInt32();
        if (count is < 1 or > 10_000_000) throw new InvalidDataException($"Corrupted classifier: {count} classes.");
        var names = new string[count];
        for (int i = 0; i < count; i++) names[i] = reader.ReadString();
        return new ClassLabels(names);
    }
}
