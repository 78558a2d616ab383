using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace MLNet.Attention.Data;

/// <summary>The item type a <see cref="TorchTransformerBase"/> expects in an input column.</summary>
public enum TorchColumnKind
{
    /// <summary><see cref="float"/>: a scalar or a known-size vector. Fed to the module as float32
    /// <c>[B]</c> (scalar) or <c>[B, dims...]</c> (vector).</summary>
    Single = 0,

    /// <summary>A scalar <see cref="System.DateTime"/>. Fed to the module as int64 <c>[B]</c> of
    /// <see cref="System.DateTime.Ticks"/>.</summary>
    DateTime = 1,

    /// <summary>A scalar Key (<see cref="uint"/>, as <c>MapValueToKey</c> makes), e.g. a class label. Fed to the
    /// module as int64 <c>[B]</c> of the 0-based key index; a missing key (0) is an error naming column and row. As an
    /// output, the module returns the 0-based index as float32 <c>[B]</c>.</summary>
    Key = 2,

    /// <summary>A scalar <see cref="bool"/>: as an input (e.g. a binary label) fed as int64 <c>[B]</c> of 0/1; as an output
    /// the module returns float32 <c>[B]</c>, true where &gt; 0.5.</summary>
    Boolean = 3,

    /// <summary>An ML.NET image (<see cref="MLImage"/>, from <c>LoadImages</c>, optionally <c>ResizeImages</c>). Fed to
    /// the module as float32 <c>[B, C, H, W]</c> pixels in 0–255, RGB planes (as <c>ExtractPixels</c> writes them) or
    /// one luminance plane; an image of another size is resized to cover H × W and centre-cropped (ML.NET's
    /// <c>ResizeImages</c> default, <c>IsoCrop</c>).</summary>
    Image = 4,

    /// <summary>Encoded image bytes (JPEG, PNG, BMP, GIF, WebP: a <c>Vector&lt;Byte&gt;</c> from
    /// <c>LoadRawImageBytes</c>), decoded and resized per row as for <see cref="Image"/>; bytes that do not decode are an
    /// error naming column and row.</summary>
    EncodedImage = 5,

    /// <summary>A bag of instances (multiple-instance learning): a variable-size <c>Vector&lt;Single&gt;</c> of N × D values,
    /// instance-major (the layout of <c>InstanceBags</c>, made by <c>GroupIntoBags</c> or the feature-file loaders),
    /// N ≥ 1 varying by row. A batch is fed to the module as float32 <c>[B, N_max, D]</c>, zero-padded, and its mask
    /// bool <c>[B, N_max]</c> (true = a real instance) is appended after the last input column (one mask per bag
    /// column, in column order), so the other columns keep their positions. As an output (see
    /// <see cref="TorchOutputColumn.PerInstance"/>) the module returns <c>[B, N_max]</c> or <c>[B, N_max, K]</c> and
    /// each row gets its own N × K values.</summary>
    Bag = 6,
}

/// <summary>
/// Describes one input column of a <see cref="TorchTransformerBase"/>: its name, item type and (for vectors) the
/// tensor dimensions of one row. Create it with <see cref="Single(string, int[])"/> or <see cref="DateTime(string)"/>.
/// </summary>
public sealed class TorchInputColumn
{
    private readonly int[] _dimensions;

    private TorchInputColumn(string name, TorchColumnKind kind, int[] dimensions)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        foreach (int d in dimensions)
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(d, nameof(dimensions));
        Name = name;
        Kind = kind;
        _dimensions = dimensions;
        long size = 1;
        foreach (int d in dimensions)
            size = checked(size * d);
        if (size > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(dimensions), $"Column '{name}' would hold {size} values per row; at most {int.MaxValue} are supported.");
        Size = (int)size;
        ExpectedType = kind switch
        {
            TorchColumnKind.DateTime => DateTimeDataViewType.Instance,
            TorchColumnKind.Key => new KeyDataViewType(typeof(uint), ulong.MaxValue >> 32),
            TorchColumnKind.Boolean => BooleanDataViewType.Instance,
            TorchColumnKind.Image => new ImageDataViewType(),
            TorchColumnKind.EncodedImage => new VectorDataViewType(NumberDataViewType.Byte),
            TorchColumnKind.Bag => new VectorDataViewType(NumberDataViewType.Single),
            _ => dimensions.Length == 0 ? NumberDataViewType.Single : new VectorDataViewType(NumberDataViewType.Single, dimensions),
        };
    }

    /// <summary>A <see cref="float"/> column: scalar when <paramref name="dimensions"/> is empty, otherwise a
    /// known-size vector whose row is fed to the module as a tensor of these dimensions (e.g. <c>{96, 7}</c>).</summary>
    /// <param name="name">The column name in the input schema.</param>
    /// <param name="dimensions">Per-row tensor dimensions; empty for a scalar.</param>
    public static TorchInputColumn Single(string name, params int[] dimensions) =>
        new(name, TorchColumnKind.Single, (int[])(dimensions ?? Array.Empty<int>()).Clone());

    /// <summary>A scalar <see cref="System.DateTime"/> column, fed to the module as int64 ticks.</summary>
    /// <param name="name">The column name in the input schema.</param>
    public static TorchInputColumn DateTime(string name) => new(name, TorchColumnKind.DateTime, Array.Empty<int>());

    /// <summary>A scalar Key column (a class label made by <c>MapValueToKey</c>), fed to the module as the int64
    /// 0-based key index.</summary>
    /// <param name="name">The column name in the input schema.</param>
    public static TorchInputColumn Key(string name) => new(name, TorchColumnKind.Key, Array.Empty<int>());

    /// <summary>A scalar Boolean column (e.g. a binary label), fed to the module as int64 0/1.</summary>
    /// <param name="name">The column name in the input schema.</param>
    public static TorchInputColumn Boolean(string name) => new(name, TorchColumnKind.Boolean, Array.Empty<int>());

    /// <summary>An image column (<see cref="TorchColumnKind.Image"/>) fed as float32 pixels
    /// [<paramref name="channels"/>, <paramref name="height"/>, <paramref name="width"/>].</summary>
    /// <param name="name">The column name in the input schema.</param>
    /// <param name="channels">3 (RGB planes) or 1 (luminance).</param>
    /// <param name="height">Pixel rows the module receives.</param>
    /// <param name="width">Pixel columns the module receives.</param>
    public static TorchInputColumn Image(string name, int channels, int height, int width) =>
        new(name, TorchColumnKind.Image, ImageDimensions(channels, height, width));

    /// <summary>An encoded-image column (<see cref="TorchColumnKind.EncodedImage"/>, e.g. from
    /// <c>LoadRawImageBytes</c>) fed as float32 pixels [<paramref name="channels"/>, <paramref name="height"/>,
    /// <paramref name="width"/>].</summary>
    /// <param name="name">The column name in the input schema.</param>
    /// <param name="channels">3 (RGB planes) or 1 (luminance).</param>
    /// <param name="height">Pixel rows the module receives.</param>
    /// <param name="width">Pixel columns the module receives.</param>
    public static TorchInputColumn EncodedImage(string name, int channels, int height, int width) =>
        new(name, TorchColumnKind.EncodedImage, ImageDimensions(channels, height, width));

    /// <summary>A bag column (<see cref="TorchColumnKind.Bag"/>): a variable-size float vector of N instances ×
    /// <paramref name="instanceSize"/> features, fed as padded <c>[B, N_max, D]</c> plus a mask.</summary>
    /// <param name="name">The column name in the input schema.</param>
    /// <param name="instanceSize">Features per instance D.</param>
    public static TorchInputColumn Bag(string name, int instanceSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(instanceSize);
        return new(name, TorchColumnKind.Bag, new[] { instanceSize });
    }

    private static int[] ImageDimensions(int channels, int height, int width)
    {
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "Image columns have 3 (RGB) or 1 (grey) channels.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        return new[] { channels, height, width };
    }

    /// <summary>The column name.</summary>
    public string Name { get; }

    /// <summary>True when the module receives float32 values (Single and image columns); false for the int64 kinds.</summary>
    public bool IsFloat => Kind is TorchColumnKind.Single or TorchColumnKind.Image or TorchColumnKind.EncodedImage
        or TorchColumnKind.Bag;

    /// <summary>True for a bag column (<see cref="TorchColumnKind.Bag"/>); <see cref="Size"/> is then the size of one
    /// instance.</summary>
    public bool IsBag => Kind == TorchColumnKind.Bag;

    /// <summary>True for the image kinds (<see cref="TorchColumnKind.Image"/>, <see cref="TorchColumnKind.EncodedImage"/>).</summary>
    public bool IsImage => Kind is TorchColumnKind.Image or TorchColumnKind.EncodedImage;

    /// <summary>The expected item type.</summary>
    public TorchColumnKind Kind { get; }

    /// <summary>Per-row tensor dimensions; empty for a scalar.</summary>
    public IReadOnlyList<int> Dimensions => _dimensions;

    /// <summary>Number of values per row (1 for a scalar); for a bag, per instance.</summary>
    public int Size { get; }

    /// <summary>True for a scalar column.</summary>
    public bool IsScalar => _dimensions.Length == 0;

    /// <summary>The ML.NET type this column must have: <c>Single</c>, <c>Vector&lt;Single, dims&gt;</c> or
    /// <c>DateTime</c>. A known-size <see cref="float"/> vector with the same total size but other (or no) dimensions is
    /// accepted too; the module always receives <see cref="Dimensions"/>.</summary>
    public DataViewType ExpectedType { get; }

    internal string Describe() => Kind == TorchColumnKind.Bag
        ? $"a bag, a variable-size Vector<Single> of N instances x {_dimensions[0]} features (GroupIntoBags, LoadFeatureBags)"
        : Kind == TorchColumnKind.Key ? "a Key column (uint keys, e.g. from MapValueToKey)"
        : Kind == TorchColumnKind.Image ? $"an Image column (LoadImages), fed as {_dimensions[0]} x {_dimensions[1]} x {_dimensions[2]} pixels"
        : Kind == TorchColumnKind.EncodedImage ? $"encoded image bytes, Vector<Byte> (LoadRawImageBytes), fed as {_dimensions[0]} x {_dimensions[1]} x {_dimensions[2]} pixels"
        : Kind == TorchColumnKind.DateTime || IsScalar
        ? ExpectedType.ToString()!
        : _dimensions.Length == 1 ? ExpectedType.ToString()! : $"{ExpectedTypeFlat()} ({string.Join(" x ", _dimensions)})";

    private string ExpectedTypeFlat() => new VectorDataViewType(NumberDataViewType.Single, Size).ToString();

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {Describe()}";
}

/// <summary>
/// Describes one output column of a <see cref="TorchTransformerBase"/>: a <see cref="float"/> known-size vector with
/// the given per-row dimensions (or a scalar when no dimensions are given), or a scalar Key or Boolean (classifier
/// outputs, see <see cref="Key"/> and <see cref="Boolean"/>). The module returns float32 <c>[B, dims...]</c>
/// (<c>[B]</c> for a scalar).
/// </summary>
public sealed class TorchOutputColumn
{
    private readonly int[] _dimensions;

    /// <summary>A scalar Key output (e.g. <c>PredictedLabel</c>): the module returns the 0-based key index as float32
    /// <c>[B]</c>; ML.NET sees key index + 1 in a key type of <paramref name="count"/> values.</summary>
    /// <param name="name">Output column name.</param>
    /// <param name="count">Number of key values (classes).</param>
    public static TorchOutputColumn Key(string name, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        return new TorchOutputColumn(name, TorchColumnKind.Key, new KeyDataViewType(typeof(uint), count));
    }

    /// <summary>A scalar Boolean output (e.g. a binary classifier's <c>PredictedLabel</c>): the module returns float32
    /// <c>[B]</c>; values above 0.5 are true.</summary>
    /// <param name="name">Output column name.</param>
    public static TorchOutputColumn Boolean(string name) => new(name, TorchColumnKind.Boolean, BooleanDataViewType.Instance);

    /// <summary>A per-instance output of a bag model (e.g. attention): the module returns float32 <c>[B, N_max]</c>
    /// (<paramref name="valuesPerInstance"/> = 1) or <c>[B, N_max, K]</c>; each row gets the N × K values of its own
    /// instances as a variable-size <c>Vector&lt;Single&gt;</c> (instance-major).</summary>
    /// <param name="name">Output column name.</param>
    /// <param name="bagInputName">The bag input column whose instances the values belong to.</param>
    /// <param name="valuesPerInstance">Values per instance K (e.g. one per attention branch).</param>
    public static TorchOutputColumn PerInstance(string name, string bagInputName, int valuesPerInstance = 1)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(bagInputName);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(valuesPerInstance);
        return new TorchOutputColumn(name, TorchColumnKind.Bag, new VectorDataViewType(NumberDataViewType.Single))
        {
            BagInputName = bagInputName,
            Size = valuesPerInstance,
        };
    }

    /// <summary>For a per-instance output (<see cref="PerInstance"/>): the bag input column; else null.</summary>
    public string? BagInputName { get; private init; }

    private TorchOutputColumn(string name, TorchColumnKind kind, DataViewType type)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        Kind = kind;
        _dimensions = Array.Empty<int>();
        Size = 1;
        Type = type;
    }

    /// <summary><see cref="TorchColumnKind.Single"/> (float scalar or vector), <see cref="TorchColumnKind.Key"/>,
    /// <see cref="TorchColumnKind.Boolean"/> or <see cref="TorchColumnKind.Bag"/> (per-instance values).</summary>
    public TorchColumnKind Kind { get; } = TorchColumnKind.Single;

    /// <summary>Creates an output column description.</summary>
    /// <param name="name">Output column name. An input column with the same name is hidden by it.</param>
    /// <param name="dimensions">Per-row dimensions, e.g. <c>{24, 7}</c>; empty for a scalar.</param>
    public TorchOutputColumn(string name, params int[] dimensions)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        dimensions = (int[])(dimensions ?? Array.Empty<int>()).Clone();
        foreach (int d in dimensions)
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(d, nameof(dimensions));
        long size = 1;
        foreach (int d in dimensions)
            size = checked(size * d);
        if (size > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(dimensions), $"Column '{name}' would hold {size} values per row; at most {int.MaxValue} are supported.");
        Name = name;
        _dimensions = dimensions;
        Size = (int)size;
        Type = dimensions.Length == 0 ? NumberDataViewType.Single : new VectorDataViewType(NumberDataViewType.Single, dimensions);
    }

    /// <summary>The column name.</summary>
    public string Name { get; }

    /// <summary>Per-row dimensions; empty for a scalar.</summary>
    public IReadOnlyList<int> Dimensions => _dimensions;

    /// <summary>Number of values per row; for a per-instance output, per instance.</summary>
    public int Size { get; private init; }

    /// <summary>True for a scalar column.</summary>
    public bool IsScalar => _dimensions.Length == 0 && Kind != TorchColumnKind.Bag;

    /// <summary>The ML.NET type of the column: <c>Vector&lt;Single, dims&gt;</c>, or <c>Single</c> for a scalar.</summary>
    public DataViewType Type { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {Type}";
}
