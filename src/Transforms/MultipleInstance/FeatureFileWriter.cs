using System.Runtime.InteropServices;
using PureHDF.Selections;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// Writes a feature file batch by batch, as CLAM's feature extraction appends each encoder batch: <see cref="Append"/>
/// the features (and coordinates) of each batch, then <see cref="Complete"/> writes the .h5 file. Disposing without
/// <see cref="Complete"/> (an exception while encoding the slide) writes nothing, so a half-encoded slide never becomes
/// a smaller bag with the slide's label.
/// <para>
/// PureHDF 2.2.0 cannot resize a dataset (HDF5 <c>maxshape=None</c>): a dataset's shape is fixed when the file is laid
/// out. So appended features go to a temporary raw file next to the output (memory stays at one batch, whatever the
/// bag size) and coordinates stay in memory (16 bytes per instance); <see cref="Complete"/> then lays out
/// <c>features</c> [N, D] and <c>coords</c> [N, 2] with their final N, copies the features over in ≈ 1 MB hyperslabs
/// and renames the file into place. Readers never see a partial file.
/// </para>
/// </summary>
public sealed class FeatureFileWriter : IDisposable
{
    private readonly FeatureFileAttributes? _attributes;
    private readonly List<long> _coordinates = new();
    private readonly string _spoolPath;
    private FileStream? _spool;
    private bool _completed;

    /// <summary>Starts a feature file of <paramref name="featureSize"/> features per instance.</summary>
    /// <param name="path">The .h5 file (replaced when the writer completes).</param>
    /// <param name="featureSize">D, the features per instance (the encoder's output size).</param>
    /// <param name="attributes">The patch geometry and encoder; null for none.</param>
    /// <param name="withCoordinates">Whether each batch has coordinates (the <c>coords</c> dataset); CLAM and TRIDENT
    /// always write them.</param>
    public FeatureFileWriter(string path, int featureSize, FeatureFileAttributes? attributes = null,
        bool withCoordinates = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(featureSize);
        attributes?.Validate(withCoordinates);
        Path = path;
        FeatureSize = featureSize;
        WithCoordinates = withCoordinates;
        _attributes = attributes;
        var full = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(directory);
        _spoolPath = System.IO.Path.Combine(directory, $".{System.IO.Path.GetFileName(full)}.{Guid.NewGuid():N}.features");
        _spool = new FileStream(_spoolPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16,
            FileOptions.DeleteOnClose);
    }

    /// <summary>The .h5 file being written.</summary>
    public string Path { get; }

    /// <summary>D, the features per instance.</summary>
    public int FeatureSize { get; }

    /// <summary>Whether batches carry coordinates.</summary>
    public bool WithCoordinates { get; }

    /// <summary>The instances appended so far.</summary>
    public long InstanceCount { get; private set; }

    /// <summary>Appends a batch of n instances: <paramref name="features"/> n × D values row-major and
    /// <paramref name="coordinates"/> n × 2 level-0 (x, y) values (empty without coordinates). A bad batch (wrong size,
    /// a non-finite feature) is refused and nothing of it is written; the writer can go on.</summary>
    public void Append(ReadOnlySpan<float> features, ReadOnlySpan<long> coordinates)
    {
        var spool = Open();
        FeatureFile.CheckBatch(Path, features, FeatureSize, coordinates, WithCoordinates, InstanceCount);
        long position = spool.Position;
        try
        {
            spool.Write(MemoryMarshal.AsBytes(features));
        }
        catch
        {
            spool.SetLength(position);
            spool.Position = position;
            throw;
        }
        for (int i = 0; i < coordinates.Length; i++) _coordinates.Add(coordinates[i]);
        InstanceCount += features.Length / FeatureSize;
    }

    /// <summary>Writes the .h5 file with every appended instance and closes the writer. Throws on an empty bag (no
    /// instance appended): skip slides without tissue patches.</summary>
    public void Complete()
    {
        var spool = Open();
        try
        {
            spool.Flush();
            long count = InstanceCount;
            int d = FeatureSize;
            FeatureFile.WriteFile(Path, count, d, WithCoordinates, _attributes, (writer, features, coordinates) =>
            {
                int rows = (int)Math.Clamp(FeatureFile.SlabBytes / (4L * d), 1, count);
                var buffer = new float[rows * d];
                spool.Position = 0;
                for (long start = 0; start < count; start += rows)
                {
                    int n = (int)Math.Min(rows, count - start);
                    var bytes = MemoryMarshal.AsBytes(buffer.AsSpan(0, n * d));
                    spool.ReadExactly(bytes);
                    writer.Write(features, buffer, memorySelection: new HyperslabSelection(0, (ulong)(n * d)),
                        fileSelection: FeatureFile.Rows(start, n, (ulong)d));
                }
                if (coordinates is not null) writer.Write(coordinates, _coordinates.ToArray());
            });
            _completed = true;
        }
        finally
        {
            spool.Dispose();
            _spool = null;
        }
    }

    /// <summary>Releases the temporary spool file. Without <see cref="Complete"/> no .h5 file is written (and an
    /// existing one is left as it was).</summary>
    public void Dispose()
    {
        _spool?.Dispose();
        _spool = null;
    }

    private FileStream Open() => _spool ?? throw new ObjectDisposedException(nameof(FeatureFileWriter),
        $"The feature file writer of '{Path}' is " + (_completed ? "complete" : "closed") + ": start a new writer.");
}
