using System.Globalization;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Tests.Modules;

/// <summary>
/// Reads a golden-value file of shared/spec/goldens (copied under Goldens/): the fill-formula tables for
/// parameters and inputs, and the expected sums and slices of each case.
/// </summary>
internal sealed class GoldenFile
{
    internal sealed record Fill(string Name, long[] Shape, double C0, double A, double F, double G, double P)
    {
        /// <summary>v[j] = c0 + a·sin(f·j + g·j² + p) in double, rounded once to float32.</summary>
        public Tensor Create()
        {
            long n = Shape.Aggregate(1L, (x, y) => x * y);
            var v = new float[n];
            for (long j = 0; j < n; j++) v[j] = (float)(C0 + A * Math.Sin(F * j + G * j * j + P));
            return tensor(v).reshape(Shape);
        }
    }

    internal sealed record Check(string Quantity, double? Sum, double? SumAbs, List<(string Index, double[] Values)> Slices);

    public Dictionary<string, Fill> Fills { get; } = new();
    public List<(string CaseTitle, List<Check> Checks)> Cases { get; } = new();

    public static GoldenFile Load(string fileName)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Goldens", fileName);
        var golden = new GoldenFile();
        var rowRegex = new Regex(@"^\|\s*(?:\d+\s*\|\s*)?`([^`]+)`\s*\|.*?\|\s*\[([\d,\s]+)\]\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*$");
        var sumRegex = new Regex(@"^- \*\*(.+?)\*\*: shape \[[\d, ]+\]; sum = `([-\d.e]+)`; sum of abs = `([-\d.e]+)`");
        // A slice line without an index ("- `rm` = `[...]`") checks the whole (flattened) tensor: index "".
        var sliceRegex = new Regex(@"^\s+- `(\w+)(?:\[([^\]]+)\])?` = `\[([^\]]+)\]`");
        List<Check>? current = null;
        foreach (var line in File.ReadLines(path))
        {
            var m = rowRegex.Match(line);
            if (m.Success)
            {
                var shape = m.Groups[2].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray();
                double D(int g) => double.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);
                golden.Fills[m.Groups[1].Value] = new Fill(m.Groups[1].Value, shape, D(3), D(4), D(5), D(6), D(7));
                continue;
            }
            if (line.StartsWith("#### Case:"))
            {
                current = new List<Check>();
                golden.Cases.Add((line["#### Case:".Length..].Trim(), current));
                continue;
            }
            m = sumRegex.Match(line);
            if (m.Success && current is not null)
            {
                current.Add(new Check(m.Groups[1].Value, double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
                    double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), new()));
                continue;
            }
            m = sliceRegex.Match(line);
            if (m.Success && current is { Count: > 0 })
            {
                var values = m.Groups[3].Value.Split(',').Select(s => double.Parse(s.Trim(), CultureInfo.InvariantCulture)).ToArray();
                current[^1].Slices.Add((m.Groups[2].Value, values));
            }
        }
        return golden;
    }

    /// <summary>
    /// Applies a PyTorch-style index such as "0, -1, :" or "-1, 0, -8:" to a tensor and returns the values as doubles;
    /// an empty index returns the whole tensor (flattened).
    /// </summary>
    public static double[] Slice(Tensor t, string index)
    {
        if (index.Length == 0)
        {
            using var all = t.to(ScalarType.Float64).contiguous();
            return all.data<double>().ToArray();
        }
        var parts = index.Split(',').Select(s => s.Trim()).ToArray();
        var indices = parts.Select(p => p == ":" ? TensorIndex.Colon : p.Contains(':') ? Range(p) : TensorIndex.Single(long.Parse(p, CultureInfo.InvariantCulture))).ToArray();
        using var s = t[indices].to(ScalarType.Float64).contiguous();
        return s.data<double>().ToArray();
    }

    /// <summary>A range such as ":6", "2:" or "1:4" (start inclusive, stop exclusive, either may be omitted).</summary>
    private static TensorIndex Range(string p)
    {
        var bounds = p.Split(':');
        long? Bound(string b) => b.Trim().Length == 0 ? null : long.Parse(b, CultureInfo.InvariantCulture);
        return TensorIndex.Slice(Bound(bounds[0]), Bound(bounds[1]));
    }

    /// <summary>Asserts every sum and slice of <paramref name="check"/> against <paramref name="actual"/>.</summary>
    public static void Verify(Check check, Tensor actual, double atol, double rtol, string label)
    {
        using var d = actual.to(ScalarType.Float64);
        if (check.Sum is { } sum)
        {
            double mine = d.sum().item<double>();
            Assert.IsTrue(Math.Abs(mine - sum) <= 1e-4 * Math.Max(1.0, Math.Abs(sum)), $"{label} {check.Quantity}: sum {mine} vs golden {sum}");
        }
        if (check.SumAbs is { } sumAbs)
        {
            double mine = d.abs().sum().item<double>();
            Assert.IsTrue(Math.Abs(mine - sumAbs) <= 1e-4 * Math.Abs(sumAbs), $"{label} {check.Quantity}: sum|.| {mine} vs golden {sumAbs}");
        }
        foreach (var (index, expected) in check.Slices)
        {
            var got = Slice(actual, index);
            Assert.AreEqual(expected.Length, got.Length, $"{label} {check.Quantity}[{index}] length");
            for (int i = 0; i < expected.Length; i++)
                Assert.IsTrue(Math.Abs(got[i] - expected[i]) <= atol + rtol * Math.Abs(expected[i]),
                    $"{label} {check.Quantity}[{index}][{i}]: {got[i]} vs golden {expected[i]}");
        }
    }
}
