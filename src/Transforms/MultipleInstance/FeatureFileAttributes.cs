namespace MLNet.Attention.MultipleInstance;

/// <summary>
/// The metadata of a CLAM/TRIDENT feature file, written as HDF5 attributes on the <c>coords</c> dataset (the patch
/// geometry, as CLAM's <c>create_patches_fp.py</c> and TRIDENT write it) and on the <c>features</c> dataset and the
/// file (<see cref="Encoder"/>). Every property is optional: null writes no attribute.
/// </summary>
public sealed class FeatureFileAttributes
{
    /// <summary>CLAM/TRIDENT <c>patch_size</c>: the patch side in pixels at the patching level (e.g. 256).</summary>
    public int? PatchSize { get; set; }

    /// <summary>CLAM <c>patch_level</c>: the pyramid level the patches were read at (0 = full resolution).</summary>
    public int? PatchLevel { get; set; }

    /// <summary>CLAM <c>downsample</c>: the (x, y) downsample of <see cref="PatchLevel"/> against level 0, two values.</summary>
    public double[]? Downsample { get; set; }

    /// <summary>CLAM <c>level_dim</c>: the (width, height) of the slide at <see cref="PatchLevel"/>, two values.</summary>
    public long[]? LevelDimensions { get; set; }

    /// <summary>CLAM/TRIDENT <c>name</c>: the slide name (usually the file name without extension).</summary>
    public string? Name { get; set; }

    /// <summary>TRIDENT <c>patch_size_level0</c>: the patch side in level-0 pixels.</summary>
    public int? PatchSizeLevel0 { get; set; }

    /// <summary>TRIDENT <c>level0_magnification</c>: the objective magnification of level 0 (e.g. 40).</summary>
    public double? Level0Magnification { get; set; }

    /// <summary>TRIDENT <c>target_magnification</c>: the magnification the patches were extracted at (e.g. 20).</summary>
    public double? TargetMagnification { get; set; }

    /// <summary>TRIDENT <c>overlap</c>: the overlap between neighbouring patches in pixels.</summary>
    public int? Overlap { get; set; }

    /// <summary>TRIDENT <c>level0_width</c>: the slide width in level-0 pixels.</summary>
    public long? Level0Width { get; set; }

    /// <summary>TRIDENT <c>level0_height</c>: the slide height in level-0 pixels.</summary>
    public long? Level0Height { get; set; }

    /// <summary>TRIDENT <c>encoder</c>: the patch encoder that produced the features (e.g. <c>resnet50</c>, <c>uni_v1</c>);
    /// written on the <c>features</c> dataset and on the file.</summary>
    public string? Encoder { get; set; }

    /// <summary>The HDF5 attribute names of the <c>coords</c> dataset.</summary>
    public static class Names
    {
        public const string PatchSize = "patch_size";
        public const string PatchLevel = "patch_level";
        public const string Downsample = "downsample";
        public const string LevelDimensions = "level_dim";
        public const string Name = "name";
        public const string PatchSizeLevel0 = "patch_size_level0";
        public const string Level0Magnification = "level0_magnification";
        public const string TargetMagnification = "target_magnification";
        public const string Overlap = "overlap";
        public const string Level0Width = "level0_width";
        public const string Level0Height = "level0_height";
        public const string Encoder = "encoder";
    }

    internal void Validate(bool withCoordinates)
    {
        if (!withCoordinates && CoordinateAttributes().Count > 0)
            throw new ArgumentException("FeatureFileAttributes: the patch attributes (" +
                string.Join(", ", CoordinateAttributes().Keys) + ") are attributes of the 'coords' dataset, and this " +
                "file has no coordinates. Give the coordinates, or set only Encoder.", nameof(PatchSize));
        if (Downsample is { Length: not 2 })
            throw new ArgumentException($"FeatureFileAttributes.Downsample has {Downsample.Length} values; CLAM's " +
                "'downsample' is (x, y): give two values, e.g. { 1.0, 1.0 } for level 0.", nameof(Downsample));
        if (LevelDimensions is { Length: not 2 })
            throw new ArgumentException($"FeatureFileAttributes.LevelDimensions has {LevelDimensions.Length} values; " +
                "CLAM's 'level_dim' is (width, height) of the patching level: give two values.", nameof(LevelDimensions));
    }

    /// <summary>The <c>coords</c> attributes, in CLAM's HDF5 types (Python int → int64, float → float64, str).</summary>
    internal Dictionary<string, object> CoordinateAttributes()
    {
        var result = new Dictionary<string, object>();
        void Add(string name, object? value)
        {
            if (value is not null) result[name] = value;
        }
        Add(Names.PatchSize, (long?)PatchSize);
        Add(Names.PatchLevel, (long?)PatchLevel);
        Add(Names.Downsample, Downsample?.ToArray());
        Add(Names.LevelDimensions, LevelDimensions?.ToArray());
        Add(Names.Name, Name);
        Add(Names.PatchSizeLevel0, (long?)PatchSizeLevel0);
        Add(Names.Level0Magnification, Level0Magnification);
        Add(Names.TargetMagnification, TargetMagnification);
        Add(Names.Overlap, (long?)Overlap);
        Add(Names.Level0Width, Level0Width);
        Add(Names.Level0Height, Level0Height);
        return result;
    }
}
