using System.Globalization;
using PureHDF;
using PureHDF.Selections;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// The contents of one feature file: a bag of <see cref="InstanceCount"/> instances (the patches of a slide) of
/// <see cref="FeatureSize"/> features each, in the <see cref="InstanceBags"/> row layout.
/// </summary>
/// <param name="Path">The file read.</param>
/// <param name="Features">N × D values, row-major (instance 0's D features, then instance 1's, …).</param>
/// <param name="InstanceCount">N, the number of instances.</param>
/// <param name="FeatureSize">D, the features per instance.</param>
/// <param name="Coordinates">N × 2 level-0 (x, y) patch coordinates, or null when the file has no <c>coords</c>.</param>
/// <param name="CoordinateAttributes">The attributes of <c>coords</c> (CLAM <c>patch_size</c>, <c>patch_level</c>,
/// <c>downsample</c>, <c>level_dim</c>, <c>name</c>; TRIDENT <c>patch_size_level0</c>, magnifications, …): integers
/// as long (long[]), floating point as double (double[]), strings as string.</param>
/// <param name="FeatureAttributes">The attributes of <c>features</c> (TRIDENT <c>encoder</c>, …).</param>
/// <param name="FileAttributes">The attributes of the file's root group.</param>
public sealed record FeatureBag(string Path, float[] Features, int InstanceCount, int FeatureSize, long[]? Coordinates,
    IReadOnlyDictionary<string, object> CoordinateAttributes, IReadOnlyDictionary<string, object> FeatureAttributes,
    IReadOnlyDictionary<string, object> FileAttributes);

/// <summary>The layout and metadata of one feature file, without its instance data (<see cref="FeatureFile.ReadInfo"/>).</summary>
/// <param name="Path">The file read.</param>
/// <param name="InstanceCount">N, the number of instances.</param>
/// <param name="FeatureSize">D, the features per instance.</param>
/// <param name="HasCoordinates">Whether the file has a <c>coords</c> dataset.</param>
/// <param name="CoordinateAttributes">The attributes of <c>coords</c> (see <see cref="FeatureBag.CoordinateAttributes"/>).</param>
/// <param name="FeatureAttributes">The attributes of <c>features</c>.</param>
/// <param name="FileAttributes">The attributes of the file's root group.</param>
public sealed record FeatureFileInfo(string Path, int InstanceCount, int FeatureSize, bool HasCoordinates,
    IReadOnlyDictionary<string, object> CoordinateAttributes, IReadOnlyDictionary<string, object> FeatureAttributes,
    IReadOnlyDictionary<string, object> FileAttributes);

/// <summary>
/// CLAM/TRIDENT whole-slide feature files (<c>.h5</c>): dataset <c>features</c> float32 [N, D] (one row per patch)
/// and dataset <c>coords</c> int64 [N, 2] (the patches' level-0 x, y) with the patch geometry as attributes
/// (<see cref="FeatureFileAttributes"/>). Files written here open in h5py (CLAM, TRIDENT) and files written by CLAM or
/// TRIDENT (chunked, resizable) read here. For many slides load the files lazily with
/// <c>mlContext.Data.LoadFeatureBags(...)</c>; to write a slide batch by batch use <see cref="FeatureFileWriter"/>.
/// </summary>
public static class FeatureFile
{
    /// <summary>The streaming writer copies its spooled features into the file in slabs of about this many bytes.</summary>
    internal const int SlabBytes = 1 << 20;

    /// <summary>
    /// Writes a bag: <paramref name="features"/> (N × D row-major) as <c>features</c> float32 [N, D] and
    /// <paramref name="coordinates"/> (N × 2) as <c>coords</c> int64 [N, 2] with <paramref name="attributes"/>. The
    /// file is written next to <paramref name="path"/> and renamed into place, so readers never see half a file.
    /// </summary>
    /// <param name="path">The .h5 file (replaced if it exists).</param>
    /// <param name="features">N × D finite values, row-major; N ≥ 1.</param>
    /// <param name="featureSize">D, the features per instance.</param>
    /// <param name="coordinates">N × 2 level-0 (x, y) values, or null for a file without <c>coords</c>.</param>
    /// <param name="attributes">The patch geometry and encoder; null for none.</param>
    public static void Write(string path, float[] features, int featureSize, long[]? coordinates = null,
        FeatureFileAttributes? attributes = null)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(featureSize);
        int count = CheckBatch(path, features, featureSize, coordinates, coordinates is not null, 0);
        WriteFile(path, count, featureSize, coordinates is not null, attributes, (writer, featuresSet, coordinatesSet) =>
        {
            writer.Write(featuresSet, features);
            if (coordinatesSet is not null) writer.Write(coordinatesSet, coordinates!);
        });
    }

    /// <summary>Reads a whole feature file (features, coordinates and attributes) and checks it: see
    /// <see cref="ReadInfo"/> for the layout; every feature must be finite.</summary>
    /// <param name="path">A CLAM/TRIDENT .h5 feature file.</param>
    public static FeatureBag Read(string path)
    {
        using var reader = FeatureFileReader.Open(path);
        var features = new float[(long)reader.InstanceCount * reader.FeatureSize];
        reader.ReadFeatures(features, 0, reader.InstanceCount);
        long[]? coordinates = null;
        if (reader.HasCoordinates)
        {
            coordinates = new long[reader.InstanceCount * 2L];
            reader.ReadCoordinates(coordinates, 0, reader.InstanceCount);
        }
        return new FeatureBag(path, features, reader.InstanceCount, reader.FeatureSize, coordinates,
            reader.CoordinateAttributes(), reader.FeatureAttributes(), reader.FileAttributes());
    }

    /// <summary>
    /// Reads the layout and attributes of a feature file without its instance data. Checked: <c>features</c> exists,
    /// is 2-D [N, D] float32 (float64 is converted) with N ≥ 1; <c>coords</c> is optional (CLAM's training only
    /// needs features; heatmaps need coordinates) and, when present, is [N, 2] int64 (int32 is widened).
    /// </summary>
    /// <param name="path">A CLAM/TRIDENT .h5 feature file.</param>
    public static FeatureFileInfo ReadInfo(string path)
    {
        using var reader = FeatureFileReader.Open(path);
        return new FeatureFileInfo(path, reader.InstanceCount, reader.FeatureSize, reader.HasCoordinates,
            reader.CoordinateAttributes(), reader.FeatureAttributes(), reader.FileAttributes());
    }

    /// <summary>Reads instances [<paramref name="start"/>, start + count) only: count × D values, row-major (an HDF5
    /// hyperslab read: only those rows are read, or in a chunked file the chunks holding them).</summary>
    /// <param name="path">A CLAM/TRIDENT .h5 feature file.</param>
    /// <param name="start">The first instance row.</param>
    /// <param name="count">The number of instance rows.</param>
    public static float[] ReadFeatures(string path, int start, int count)
    {
        using var reader = FeatureFileReader.Open(path);
        var features = new float[(long)Math.Max(count, 0) * reader.FeatureSize];
        reader.ReadFeatures(features, start, count);
        return features;
    }

    /// <summary>Reads the coordinates of instances [<paramref name="start"/>, start + count) only: count × 2 values.</summary>
    /// <param name="path">A CLAM/TRIDENT .h5 feature file with a <c>coords</c> dataset.</param>
    /// <param name="start">The first instance row.</param>
    /// <param name="count">The number of instance rows.</param>
    public static long[] ReadCoordinates(string path, int start, int count)
    {
        using var reader = FeatureFileReader.Open(path);
        var coordinates = new long[Math.Max(count, 0) * 2L];
        reader.ReadCoordinates(coordinates, start, count);
        return coordinates;
    }

    /// <summary>Checks one batch of instances; returns its instance count.</summary>
    internal static int CheckBatch(string path, ReadOnlySpan<float> features, int featureSize,
        ReadOnlySpan<long> coordinates, bool withCoordinates, long firstRow)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (features.Length % featureSize != 0)
            throw new ArgumentException($"Feature file '{path}': {features.Length} feature values are not whole instances " +
                $"of {featureSize} features; expected N × {featureSize} values, row-major.", nameof(features));
        int count = features.Length / featureSize;
        if (withCoordinates && coordinates.Length != count * 2)
            throw new ArgumentException($"Feature file '{path}': {coordinates.Length} coordinate values for {count} " +
                $"instances; expected {count} × 2 (level-0 x, y per instance).", nameof(coordinates));
        if (!withCoordinates && coordinates.Length != 0)
            throw new ArgumentException($"Feature file '{path}' was opened without coordinates, but " +
                $"{coordinates.Length} coordinate values were given: create the writer with withCoordinates: true.",
                nameof(coordinates));
        int bad = FeatureFileReader.FirstNonFinite(features);
        if (bad >= 0)
            throw new ArgumentException($"Feature file '{path}': instance row {firstRow + bad / featureSize} has a " +
                $"non-finite feature ({features[bad].ToString(CultureInfo.InvariantCulture)} at feature " +
                $"{bad % featureSize} of {featureSize}); expected finite features. Check the encoder's input (a blank " +
                "or corrupt patch) or drop that instance.", nameof(features));
        return count;
    }

    /// <summary>Writes the datasets of an N × D bag through <paramref name="write"/> (deferred PureHDF writes: the file
    /// is laid out first, data is written in any number of hyperslabs) to a temporary file renamed into place.</summary>
    internal static void WriteFile(string path, long count, int featureSize, bool withCoordinates,
        FeatureFileAttributes? attributes, Action<H5NativeWriter, H5Dataset<float[]>, H5Dataset<long[]>?> write)
    {
        if (count < 1)
            throw new InvalidOperationException($"Feature file '{path}' would hold an empty bag (0 instances): a bag needs " +
                "at least one instance. Skip slides without tissue patches instead of writing them.");
        attributes?.Validate(withCoordinates);
        // Contiguous datasets: PureHDF's chunked deferred writes buffer the chunks (peak working set 740 vs 300 MB
        // for a 40 MB bag), write at half the speed and read with a fresh buffer per chunk (11 vs 0.5 MB allocated per
        // 10 MB bag). The files are not resizable in h5py (CLAM appends only to the files it creates itself).
        var features = new H5Dataset<float[]>(fileDims: new[] { (ulong)count, (ulong)featureSize });
        var file = new H5File { [FeatureFileReader.FeaturesName] = features };
        H5Dataset<long[]>? coordinates = null;
        if (withCoordinates)
        {
            coordinates = new H5Dataset<long[]>(fileDims: new[] { (ulong)count, 2UL });
            foreach (var (name, value) in attributes?.CoordinateAttributes() ?? new Dictionary<string, object>())
                coordinates.Attributes[name] = value;
            file[FeatureFileReader.CoordinatesName] = coordinates;
        }
        if (attributes?.Encoder is { } encoder)
        {
            features.Attributes[FeatureFileAttributes.Names.Encoder] = encoder;
            file.Attributes[FeatureFileAttributes.Names.Encoder] = encoder;
        }

        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(directory);
        var temporary = Path.Combine(directory, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.partial");
        try
        {
            using (var writer = file.BeginWrite(temporary))
                write(writer, features, coordinates);
            File.Move(temporary, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    /// <summary>The selection of rows [start, start + count) of a [*, width] dataset.</summary>
    internal static HyperslabSelection Rows(long start, long count, ulong width) =>
        new(rank: 2, starts: new[] { (ulong)start, 0UL }, blocks: new[] { (ulong)count, width });
}
