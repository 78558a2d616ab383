using System.Globalization;
using PureHDF;
using PureHDF.VOL.Native;

namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// One open feature file with its layout checked: <c>features</c> is 2-D [N, D] float32 (float64 is converted), N ≥ 1,
/// and <c>coords</c>, when present, is 2-D [N, 2] integer (int64; int32 is widened). Reads instance rows on demand.
/// </summary>
internal sealed class FeatureFileReader : IDisposable
{
    internal const string FeaturesName = "features";
    internal const string CoordinatesName = "coords";
    private const string Layout = "a CLAM/TRIDENT feature file: dataset 'features' float32 [N instances, D features] " +
        "and dataset 'coords' int64 [N, 2] (level-0 x, y)";

    private readonly NativeFile _file;
    private readonly NativeDataset _features;
    private readonly NativeDataset? _coordinates;
    private readonly bool _featuresAreDouble;
    private readonly bool _coordinatesAreInt32;

    private FeatureFileReader(string path, NativeFile file)
    {
        Path = path;
        _file = file;
        if (!file.LinkExists(FeaturesName))
            throw new InvalidDataException($"Feature file '{path}' has no '{FeaturesName}' dataset (it has: " +
                $"{Contents(file)}). Expected {Layout}. A CLAM patch file (create_patches_fp.py) holds only 'coords': " +
                "extract the features first (CLAM extract_features_fp.py, TRIDENT run_batch_of_slides.py --task feat).");
        _features = file.Dataset(FeaturesName) as NativeDataset
            ?? throw new InvalidDataException($"Feature file '{path}': '{FeaturesName}' is not an HDF5 dataset. " +
                $"Expected {Layout}.");
        var dims = _features.Space.Dimensions;
        var type = _features.Type;
        if (dims.Length != 2)
            throw new InvalidDataException($"Feature file '{path}': dataset '{FeaturesName}' has shape {Shape(dims)} " +
                $"(rank {dims.Length}); expected 2-D [N instances, D features]" +
                (dims.Length == 3 && dims[0] == 1
                    ? ". It has a leading batch dimension of 1: save features.squeeze(0)."
                    : "."));
        if (type.Class != H5DataTypeClass.FloatingPoint || type.Size is not (4 or 8))
            throw new InvalidDataException($"Feature file '{path}': dataset '{FeaturesName}' has element type " +
                $"{type.Class} ({type.Size} bytes); expected float32 (float64 is converted). Save the features as float32.");
        _featuresAreDouble = type.Size == 8;
        if (dims[0] == 0)
            throw new InvalidDataException($"Feature file '{path}' holds an empty bag: '{FeaturesName}' is {Shape(dims)}, " +
                "0 instances (a slide without tissue patches?). A bag needs at least one instance: drop the slide from " +
                "the cohort, or re-run patching with a lower tissue threshold.");
        if (dims[0] > int.MaxValue || dims[1] == 0 || dims[1] > int.MaxValue || dims[0] * dims[1] > (ulong)Array.MaxLength)
            throw new InvalidDataException($"Feature file '{path}': dataset '{FeaturesName}' has shape {Shape(dims)}; " +
                $"expected N ≥ 1 instances of D ≥ 1 features with N × D ≤ {Array.MaxLength} values (one .NET array).");
        InstanceCount = (int)dims[0];
        FeatureSize = (int)dims[1];

        if (file.LinkExists(CoordinatesName))
        {
            _coordinates = file.Dataset(CoordinatesName) as NativeDataset
                ?? throw new InvalidDataException($"Feature file '{path}': '{CoordinatesName}' is not an HDF5 dataset. " +
                    $"Expected {Layout}.");
            var cdims = _coordinates.Space.Dimensions;
            var ctype = _coordinates.Type;
            if (cdims.Length != 2 || cdims[1] != 2)
                throw new InvalidDataException($"Feature file '{path}': dataset '{CoordinatesName}' has shape " +
                    $"{Shape(cdims)}; expected [N, 2] (one level-0 x, y row per instance).");
            if (cdims[0] != dims[0])
                throw new InvalidDataException($"Feature file '{path}': dataset '{CoordinatesName}' has {cdims[0]} rows " +
                    $"but '{FeaturesName}' has {dims[0]}; expected one (x, y) row per instance. The file is inconsistent " +
                    "(an interrupted extraction?): re-extract the slide's features.");
            if (ctype.Class != H5DataTypeClass.FixedPoint || ctype.Size is not (4 or 8))
                throw new InvalidDataException($"Feature file '{path}': dataset '{CoordinatesName}' has element type " +
                    $"{ctype.Class} ({ctype.Size} bytes); expected int64 (int32 is widened) level-0 pixel coordinates.");
            _coordinatesAreInt32 = ctype.Size == 4;
        }
    }

    public string Path { get; }

    public int InstanceCount { get; }

    public int FeatureSize { get; }

    public bool HasCoordinates => _coordinates is not null;

    /// <summary>Opens <paramref name="path"/> and checks its layout (no instance data is read).</summary>
    public static FeatureFileReader Open(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Feature file '{path}' was not found. Expected {Layout}.", path);
        NativeFile file;
        try
        {
            file = H5File.OpenRead(path);
        }
        catch (Exception e) when (e is not IOException and not UnauthorizedAccessException)
        {
            throw new InvalidDataException($"'{path}' is not a readable HDF5 file ({e.Message}). Expected {Layout}.", e);
        }
        try
        {
            return new FeatureFileReader(path, file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Reads instance rows [<paramref name="start"/>, start + count) into <paramref name="destination"/>
    /// (count × D values) and checks that they are finite.</summary>
    public void ReadFeatures(Span<float> destination, int start, int count)
    {
        CheckRange(start, count);
        int d = FeatureSize;
        if (destination.Length != count * d)
            throw new ArgumentException($"The destination holds {destination.Length} values; {count} × {d} are read.");
        if (count == 0) return;
        var selection = FeatureFile.Rows(start, count, (ulong)d);
        if (_featuresAreDouble)
        {
            var values = _features.Read<double[]>(fileSelection: selection);
            for (int i = 0; i < values.Length; i++) destination[i] = (float)values[i];
        }
        else
        {
            _features.Read(destination, fileSelection: selection);
        }
        int bad = FirstNonFinite(destination);
        if (bad >= 0)
            throw new InvalidDataException($"Feature file '{Path}': instance row {start + bad / d} has a non-finite " +
                $"feature ({destination[bad].ToString(CultureInfo.InvariantCulture)} at feature {bad % d} of {d}); " +
                "expected finite features. Re-extract the " +
                "slide (a NaN usually comes from a blank or corrupt patch), or drop that instance.");
    }

    /// <summary>Reads the coordinates of instance rows [<paramref name="start"/>, start + count) (count × 2 values).</summary>
    public void ReadCoordinates(Span<long> destination, int start, int count)
    {
        if (_coordinates is null)
            throw new InvalidOperationException($"Feature file '{Path}' has no '{CoordinatesName}' dataset.");
        CheckRange(start, count);
        if (destination.Length != count * 2)
            throw new ArgumentException($"The destination holds {destination.Length} values; {count} × 2 are read.");
        if (count == 0) return;
        var selection = FeatureFile.Rows(start, count, 2);
        if (_coordinatesAreInt32)
        {
            var values = _coordinates.Read<int[]>(fileSelection: selection);
            for (int i = 0; i < values.Length; i++) destination[i] = values[i];
        }
        else
        {
            _coordinates.Read(destination, fileSelection: selection);
        }
    }

    public IReadOnlyDictionary<string, object> FileAttributes() => Attributes(_file);

    public IReadOnlyDictionary<string, object> FeatureAttributes() => Attributes(_features);

    public IReadOnlyDictionary<string, object> CoordinateAttributes() =>
        _coordinates is null ? new Dictionary<string, object>() : Attributes(_coordinates);

    public void Dispose() => _file.Dispose();

    internal static int FirstNonFinite(ReadOnlySpan<float> values)
    {
        // IndexOfAnyInRange over the bit patterns: exponent all ones (NaN or ±Inf) in either sign.
        var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(values);
        for (int i = 0; i < bits.Length; i++)
            if ((bits[i] & 0x7F80_0000u) == 0x7F80_0000u) return i;
        return -1;
    }

    internal static string Shape(ulong[] dims) => "[" + string.Join(", ", dims) + "]";

    private void CheckRange(int start, int count)
    {
        if (start < 0 || count < 0 || start > InstanceCount - count)
            throw new ArgumentOutOfRangeException(nameof(start), $"Instance rows [{start}, {start + count}) are outside " +
                $"the {InstanceCount} instances of '{Path}'.");
    }

    private static string Contents(NativeFile file)
    {
        var names = file.Children().Select(c => c.Name).ToArray();
        return names.Length == 0 ? "nothing" : string.Join(", ", names);
    }

    /// <summary>The attributes of <paramref name="owner"/> as .NET values: integers as long (long[] for arrays),
    /// floating point as double (double[]), strings as string (string[]); other types are skipped.</summary>
    private static Dictionary<string, object> Attributes(IH5Object owner)
    {
        var result = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var attribute in owner.Attributes())
        {
            try
            {
                if (ReadAttribute(attribute) is { } value) result[attribute.Name] = value;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // An attribute type PureHDF cannot decode (h5py booleans, compounds, references) is metadata only.
            }
        }
        return result;
    }

    private static object? ReadAttribute(IH5Attribute attribute)
    {
        bool scalar = attribute.Space.Type == H5DataspaceType.Scalar;
        var type = attribute.Type;
        switch (type.Class)
        {
            case H5DataTypeClass.FixedPoint:
                bool signed = type.FixedPoint.IsSigned;
                long[] integers = (type.Size, signed) switch
                {
                    (8, _) => attribute.Read<long[]>(),
                    (4, true) => Array.ConvertAll(attribute.Read<int[]>(), v => (long)v),
                    (4, false) => Array.ConvertAll(attribute.Read<uint[]>(), v => (long)v),
                    (2, true) => Array.ConvertAll(attribute.Read<short[]>(), v => (long)v),
                    (2, false) => Array.ConvertAll(attribute.Read<ushort[]>(), v => (long)v),
                    (1, true) => Array.ConvertAll(attribute.Read<sbyte[]>(), v => (long)v),
                    (1, false) => Array.ConvertAll(attribute.Read<byte[]>(), v => (long)v),
                    _ => Array.Empty<long>(),
                };
                return scalar && integers.Length == 1 ? integers[0] : integers;
            case H5DataTypeClass.FloatingPoint:
                double[] reals = type.Size == 4
                    ? Array.ConvertAll(attribute.Read<float[]>(), v => (double)v)
                    : attribute.Read<double[]>();
                return scalar && reals.Length == 1 ? reals[0] : reals;
            case H5DataTypeClass.String:
            case H5DataTypeClass.VariableLength:
                var strings = attribute.Read<string[]>();
                return scalar && strings.Length == 1 ? strings[0] : strings;
            default:
                return null;
        }
    }
}
