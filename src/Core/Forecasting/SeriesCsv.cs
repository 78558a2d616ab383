using System.Globalization;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Attention.Forecasting;

/// <summary>
/// A series read from a CSV file (plain or <c>.gz</c>) whose header names the columns: one timestamp column (Text) and
/// every other column a Single variate, named exactly as in the header (<c>max. wv (m/s)</c> stays as it is), so a
/// wide file needs no hand-written <c>TextLoader.Column[]</c>.
/// </summary>
/// <param name="Data">The series view, one row per line after the header.</param>
/// <param name="VariateColumnNames">The numeric columns in file order: pass them to a forecaster.</param>
/// <param name="TimestampColumnName">The timestamp column, or null when the file has none.</param>
public sealed record SeriesCsv(IDataView Data, IReadOnlyList<string> VariateColumnNames, string? TimestampColumnName)
{
    private static readonly string[] TimestampNames = { "date", "datetime", "time", "timestamp", "ds" };

    /// <summary>Reads the header of <paramref name="path"/> and loads the file lazily through ML.NET's text loader
    /// (a <c>.gz</c> file is decompressed while reading, never to disk). Empty fields and <c>NaN</c> load as missing
    /// values (NaN); a field that is not a number fails when the row is read, naming the column and the row.</summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="path">A <c>.csv</c> or <c>.csv.gz</c> file with a header line.</param>
    /// <param name="timestampColumnName">The timestamp column; null: the first column named date, datetime, time,
    /// timestamp or ds (any case), or else the first column whose first value parses as a date, or none.</param>
    /// <param name="separator">The field separator.</param>
    public static SeriesCsv Load(MLContext mlContext, string path, string? timestampColumnName = null, char separator = ',')
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"SeriesCsv: the file '{Path.GetFullPath(path)}' does not exist.", path);
        var source = new FileSource(path);
        string[] header, first;
        using (var reader = source.OpenTextReader(0))
        {
            header = Split(reader.ReadLine(), separator);
            first = Split(reader.ReadLine(), separator);
        }
        if (header.Length == 0)
            throw new InvalidDataException($"SeriesCsv: '{path}' has no header line; expected column names separated by '{separator}'.");
        var repeated = header.GroupBy(h => h).FirstOrDefault(g => g.Count() > 1);
        if (repeated is not null)
            throw new InvalidDataException($"SeriesCsv: '{path}' names the column '{repeated.Key}' twice in its header; " +
                "rename one of them.");

        int time = timestampColumnName is null ? DetectTimestamp(header, first) : Array.IndexOf(header, timestampColumnName);
        if (timestampColumnName is not null && time < 0)
            throw new ArgumentException($"SeriesCsv: '{path}' has no column '{timestampColumnName}'; its header names " +
                $"{string.Join(", ", header.Select(h => $"'{h}'"))}. Pass one of them, or null to detect it.",
                nameof(timestampColumnName));
        if (header.Length - (time >= 0 ? 1 : 0) < 1)
            throw new InvalidDataException($"SeriesCsv: '{path}' has no numeric column besides the timestamp '{header[time]}'.");

        var columns = header.Select((name, i) => new TextLoader.Column(name, i == time ? DataKind.String : DataKind.Single, i))
            .ToArray();
        var loader = mlContext.Data.CreateTextLoader(new TextLoader.Options
        {
            Columns = columns,
            Separators = new[] { separator },
            HasHeader = true,
            AllowQuoting = true,
            MissingRealsAsNaNs = true,
        });
        return new SeriesCsv(loader.Load(source), header.Where((_, i) => i != time).ToArray(), time >= 0 ? header[time] : null);
    }

    private static int DetectTimestamp(string[] header, string[] first)
    {
        for (int i = 0; i < header.Length; i++)
            if (TimestampNames.Contains(header[i].Trim(), StringComparer.OrdinalIgnoreCase)) return i;
        for (int i = 0; i < Math.Min(header.Length, first.Length); i++)
            if (!double.TryParse(first[i], NumberStyles.Float, CultureInfo.InvariantCulture, out _) &&
                DateTime.TryParse(first[i], CultureInfo.InvariantCulture, DateTimeStyles.None, out _)) return i;
        return -1;
    }

    // Header and first-line fields: separator-split, surrounding quotes removed (the loader itself parses quoting).
    private static string[] Split(string? line, char separator) => line is null
        ? Array.Empty<string>()
        : line.Split(separator).Select(f => f.Trim().Trim('"')).ToArray();

    /// <summary>One file as ML.NET's stream source; <c>.gz</c> decompressed on the fly each time it is opened.</summary>
    private sealed class FileSource(string path) : IMultiStreamSource
    {
        private readonly bool _gzip = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);

        public int Count => 1;

        public string? GetPathOrNull(int index) => _gzip ? null : path;

        public Stream Open(int index)
        {
            if (index != 0) throw new ArgumentOutOfRangeException(nameof(index));
            var file = File.OpenRead(path);
            return _gzip ? new GZipStream(file, CompressionMode.Decompress) : file;
        }

        public TextReader OpenTextReader(int index) => new StreamReader(Open(index));
    }
}
