using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.LoadProbe;

/// <summary>One input row for the probe transformers.</summary>
public sealed class ProbeRow
{
    /// <summary>Feature vector (its size is set through <see cref="ProbeData.SchemaFor"/>).</summary>
    public float[] Features { get; set; } = Array.Empty<float>();

    /// <summary>A timestamp.</summary>
    public DateTime Timestamp { get; set; }

    /// <summary>A pass-through text column.</summary>
    public string Tag { get; set; } = "";

    /// <summary>A pass-through scalar column.</summary>
    public float Weight { get; set; }
}

/// <summary>Deterministic data and bit-exact output formatting shared by the tests and the probe process.</summary>
public static class ProbeData
{
    /// <summary>Deterministic rows: values depend only on (row, element).</summary>
    public static List<ProbeRow> Rows(int count, int features)
    {
        var rows = new List<ProbeRow>(count);
        for (int r = 0; r < count; r++)
        {
            var f = new float[features];
            for (int k = 0; k < features; k++)
                f[k] = MathF.Sin(r * 0.37f + k * 1.3f) * (1 + (k % 3));
            rows.Add(new ProbeRow
            {
                Features = f,
                Timestamp = new DateTime(2024, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddHours(r * 7 + 3),
                Tag = "row" + r.ToString(CultureInfo.InvariantCulture),
                Weight = r * 0.5f,
            });
        }
        return rows;
    }

    /// <summary>The schema definition giving <c>Features</c> a known size.</summary>
    public static SchemaDefinition SchemaFor(int features)
    {
        var definition = SchemaDefinition.Create(typeof(ProbeRow));
        definition[nameof(ProbeRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, features);
        return definition;
    }

    /// <summary>An in-memory view over <see cref="Rows"/>.</summary>
    public static IDataView View(MLContext ml, int count, int features) =>
        ml.Data.LoadFromEnumerable(Rows(count, features), SchemaFor(features));

    /// <summary>Reads a float vector column and formats each row as hex bit patterns (bit-exact comparison).</summary>
    public static List<string> FormatColumn(IDataView view, string column)
    {
        var col = view.Schema[column];
        var lines = new List<string>();
        using var cursor = view.GetRowCursor(new[] { col });
        var getter = cursor.GetGetter<VBuffer<float>>(col);
        VBuffer<float> value = default;
        while (cursor.MoveNext())
        {
            getter(ref value);
            lines.Add(Format(value.DenseValues()));
        }
        return lines;
    }

    /// <summary>Formats floats as their IEEE-754 bit patterns.</summary>
    public static string Format(IEnumerable<float> values)
    {
        var sb = new StringBuilder();
        foreach (var v in values)
        {
            if (sb.Length > 0)
                sb.Append(' ');
            sb.Append(BitConverter.SingleToInt32Bits(v).ToString("X8", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }
}
