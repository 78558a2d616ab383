using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Attention.Forecasting;
using MLNet.Attention.Interop;
using MLNet.Attention.Persistence;

namespace MLNet.Attention.Transforms;

/// <summary>Options of <see cref="ForecastWindowsEstimator"/>: which series columns, how long the windows are and
/// what the window columns are called (the forecasters' defaults, so the windows feed a trained model directly).</summary>
public sealed class ForecastWindowsOptions
{
    /// <summary>Numeric scalar columns holding the series, one row per timestamp.</summary>
    public string[] VariateColumnNames { get; set; } = Array.Empty<string>();

    /// <summary>Optional timestamp column: rows are checked for order and duplicates, and each window gets the
    /// timestamp of its last lookback row (needed by models with calendar covariates).</summary>
    public string? TimestampColumnName { get; set; }

    /// <summary>Rows of history per window (L).</summary>
    public int Lookback { get; set; } = 96;

    /// <summary>Rows of target after each window (S); 0 for none (scoring windows, one ending at every row from L − 1).</summary>
    public int Horizon { get; set; }

    /// <summary>Output column of the lookback rows: Vector&lt;Single, L, N&gt;, time-major.</summary>
    public string LookbackColumnName { get; set; } = "Lookback";

    /// <summary>Output column of each window's last lookback timestamp (with <see cref="TimestampColumnName"/>).</summary>
    public string WindowTimestampColumnName { get; set; } = "Timestamp";

    /// <summary>Output column of the target rows: Vector&lt;Single, S, N&gt; (with a horizon).</summary>
    public string TargetColumnName { get; set; } = "Target";

    /// <summary>Missing values (NaN): refused naming column and row (default), or kept as NaN in the windows.</summary>
    public MissingValuePolicy MissingValues { get; set; } = MissingValuePolicy.Refuse;

    /// <summary>Rows whose timestamp repeats the previous row's: refuse (default), keep, or drop all but the first.</summary>
    public DuplicateTimestampPolicy DuplicateTimestamps { get; set; } = DuplicateTimestampPolicy.Refuse;

    /// <summary>Past covariate columns (as a forecaster's <c>PastCovariateColumnNames</c>): extra channels of
    /// <see cref="LookbackColumnName"/> after the variates, not in the target.</summary>
    public string[] PastCovariateColumnNames { get; set; } = Array.Empty<string>();

    /// <summary>Known-future covariate columns (as a forecaster's <c>FutureCovariateColumnNames</c>): the last channels of
    /// the lookback, and their next <see cref="Horizon"/> rows in <see cref="FutureCovariatesColumnName"/>
    /// (Vector&lt;Single, S, F&gt;). Needs a horizon.</summary>
    public string[] FutureCovariateColumnNames { get; set; } = Array.Empty<string>();

    /// <summary>Output column of the future covariates' horizon values (with <see cref="FutureCovariateColumnNames"/>).</summary>
    public string FutureCovariatesColumnName { get; set; } = "FutureCovariates";

    /// <summary>With a horizon: write <see cref="TargetColumnName"/> (default). False for scoring windows of a model
    /// with known-future covariates: the horizon rows then only supply the covariates.</summary>
    public bool IncludeTargets { get; set; } = true;

    /// <summary>Optional missing-value indicators, one per variate (as a forecaster's
    /// <c>MissingIndicatorColumnNames</c>): flagged values become NaN in the windows.</summary>
    public string[]? MissingIndicatorColumnNames { get; set; }

    internal ForecastWindowsSettings ToSettings()
    {
        var settings = new ForecastWindowsSettings(VariateColumnNames ?? Array.Empty<string>(), TimestampColumnName, Lookback,
            Horizon, LookbackColumnName, WindowTimestampColumnName, TargetColumnName, MissingValues, DuplicateTimestamps,
            (PastCovariateColumnNames ?? Array.Empty<string>()).ToArray(), (FutureCovariateColumnNames ?? Array.Empty<string>()).ToArray(),
            FutureCovariatesColumnName, IncludeTargets,
            MissingIndicatorColumnNames is { Length: > 0 } indicators ? indicators.ToArray() : null);
        settings.Validate();
        return settings;
    }
}

/// <summary>The persisted form of <see cref="ForecastWindowsOptions"/> (the covariate, target and indicator fields were
/// added later: older payloads read them as their defaults).</summary>
internal sealed record ForecastWindowsSettings(string[] VariateColumnNames, string? TimestampColumnName, int Lookback,
    int Horizon, string LookbackColumnName, string WindowTimestampColumnName, string TargetColumnName,
    MissingValuePolicy MissingValues, DuplicateTimestampPolicy DuplicateTimestamps, string[]? PastCovariateColumnNames = null,
    string[]? FutureCovariateColumnNames = null, string FutureCovariatesColumnName = "FutureCovariates",
    bool IncludeTargets = true, string[]? MissingIndicatorColumnNames = null)
{
    /// <summary>Every column a window reads, in channel order: variates, past covariates, future covariates.</summary>
    public string[] ChannelColumnNames =>
        ForecastColumns.Channels(VariateColumnNames, PastCovariateColumnNames, FutureCovariateColumnNames);

    public int FutureCount => FutureCovariateColumnNames?.Length ?? 0;

    /// <summary>The windows: every channel in the lookback, the future covariates and (optionally) the target after it.</summary>
    public WindowLayout Layout => new(ChannelColumnNames.Length, VariateColumnNames.Length, FutureCount, Lookback, Horizon,
        IncludeTargets && Horizon > 0);

    public void Validate()
    {
        ForecastColumns.Check(VariateColumnNames, PastCovariateColumnNames, FutureCovariateColumnNames,
            MissingIndicatorColumnNames);
        if (FutureCount > 0 && Horizon < 1)
            throw new ArgumentException("FutureCovariateColumnNames needs Horizon (the model's horizon): each window carries " +
                "the covariates' next Horizon rows. Set Horizon, and IncludeTargets = false for scoring windows.",
                nameof(Horizon));
        if (VariateColumnNames.Length == 0)
            throw new ArgumentException("Name at least one variate column (VariateColumnNames).", nameof(VariateColumnNames));
        if (Lookback < 1) throw new ArgumentOutOfRangeException(nameof(Lookback), Lookback, "Lookback must be at least 1.");
        if (Horizon < 0) throw new ArgumentOutOfRangeException(nameof(Horizon), Horizon, "Horizon must be 0 (no target) or more.");
        var outputs = new[] { LookbackColumnName, WindowTimestampColumnName, TargetColumnName };
        if (outputs.Any(string.IsNullOrWhiteSpace) || outputs.Distinct().Count() != 3)
            throw new ArgumentException("LookbackColumnName, WindowTimestampColumnName and TargetColumnName must be three " +
                "different non-empty names.", nameof(LookbackColumnName));
        if (!Enum.IsDefined(MissingValues))
            throw new ArgumentOutOfRangeException(nameof(MissingValues), MissingValues, "MissingValues must be Refuse or ZeroFill.");
        if (!Enum.IsDefined(DuplicateTimestamps))
            throw new ArgumentOutOfRangeException(nameof(DuplicateTimestamps), DuplicateTimestamps, "Use Refuse, Keep or Drop.");
    }
}

/// <summary>
/// Turns a series (one row per timestamp) into one row per window, so that windows are an ordinary pipeline step:
/// <c>Lookback</c> (Vector&lt;Single, L, N&gt;), <c>Timestamp</c> (the last lookback row's, with a timestamp column)
/// and, with a horizon, <c>Target</c> (Vector&lt;Single, S, N&gt;, the next S rows). Windows slide by one row. Nothing
/// is learnt: <see cref="Fit"/> checks the columns. Create it with
/// <c>mlContext.Transforms.CreateForecastWindows(...)</c>.
/// </summary>
public sealed class ForecastWindowsEstimator : IEstimator<ForecastWindowsTransformer>
{
    private readonly IHostEnvironment _env;
    private readonly ForecastWindowsSettings _settings;

    internal ForecastWindowsEstimator(IHostEnvironment env, ForecastWindowsOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        ArgumentNullException.ThrowIfNull(options);
        _settings = options.ToSettings();
    }

    /// <summary>Checks the series columns and returns the transformer.</summary>
    public ForecastWindowsTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var transformer = new ForecastWindowsTransformer(_env, _settings);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <summary>Checks that the series columns exist with the right types and describes the window columns.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var byName = inputSchema.ToDictionary(c => c.Name);
        foreach (var variate in _settings.ChannelColumnNames)
            if (!byName.TryGetValue(variate, out var column) || column.Kind != SchemaShape.Column.VectorKind.Scalar
                || column.ItemType is not NumberDataViewType)
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"CreateForecastWindows: variate column '{variate}' " +
                    (column.Name is null ? "was not found in the input schema" : $"has type {column.ItemType} ({column.Kind})") +
                    "; expected a numeric scalar column (one row per timestamp).");
        var result = new List<SchemaShape.Column>
        {
            HostSettings.SchemaColumn(_settings.LookbackColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single),
        };
        if (_settings.TimestampColumnName is not null)
            result.Add(HostSettings.SchemaColumn(_settings.WindowTimestampColumnName, SchemaShape.Column.VectorKind.Scalar,
                DateTimeDataViewType.Instance));
        if (_settings.FutureCount > 0)
            result.Add(HostSettings.SchemaColumn(_settings.FutureCovariatesColumnName, SchemaShape.Column.VectorKind.Vector,
                NumberDataViewType.Single));
        if (_settings.Layout.WithTargets)
            result.Add(HostSettings.SchemaColumn(_settings.TargetColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single));
        return new SchemaShape(result);
    }
}

/// <summary>
/// The fitted <see cref="ForecastWindowsEstimator"/>: <see cref="Transform"/> reads the series (checking order,
/// duplicates and missing values by the options) and serves its windows. It changes the number of rows, so it is not a
/// row-to-row mapper: in a <c>PredictionEngine</c> pass windows directly. Saved and loaded with <c>mlContext.Model</c>.
/// </summary>
public sealed class ForecastWindowsTransformer : ITorchPersistable
{
    private const int PayloadVersion = 1;
    private readonly IHostEnvironment _env;
    private readonly ForecastWindowsSettings _settings;

    internal ForecastWindowsTransformer(IHostEnvironment env, ForecastWindowsSettings settings)
    {
        _env = env;
        _settings = settings;
    }

    /// <summary>The series columns, in the order of each window's variates.</summary>
    public IReadOnlyList<string> VariateColumnNames => _settings.VariateColumnNames;

    /// <summary>Rows of history per window.</summary>
    public int Lookback => _settings.Lookback;

    /// <summary>Rows of target per window (0 for none).</summary>
    public int Horizon => _settings.Horizon;

    /// <inheritdoc/>
    public bool IsRowToRowMapper => false;

    private WindowLayout Layout => _settings.Layout;

    private WindowColumnNames Names => new(_settings.LookbackColumnName, _settings.WindowTimestampColumnName,
        _settings.TargetColumnName, _settings.FutureCovariatesColumnName);

    /// <summary>The window columns; throws naming a missing or non-numeric series column.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        foreach (var variate in _settings.ChannelColumnNames)
            if (inputSchema.GetColumnOrNull(variate) is not { } column || column.Type is not NumberDataViewType)
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"CreateForecastWindows: variate column '{variate}' " +
                    (inputSchema.GetColumnOrNull(variate) is { } c ? $"has type {c.Type}" : "was not found") +
                    "; expected a numeric scalar column (one row per timestamp).");
        if (_settings.TimestampColumnName is { } time && inputSchema.GetColumnOrNull(time) is null)
            throw new ArgumentOutOfRangeException(nameof(inputSchema),
                $"CreateForecastWindows: timestamp column '{time}' was not found.");
        return WindowDataView.SchemaOf(Layout, _settings.TimestampColumnName is not null, Names);
    }

    /// <summary>The windows of <paramref name="input"/>, in row order.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        GetOutputSchema(input.Schema);
        int need = _settings.Lookback + Layout.RowsAfter;
        var frame = TimeSeriesFrame.FromDataView(input, _settings.ChannelColumnNames, _settings.TimestampColumnName,
            _settings.MissingValues == MissingValuePolicy.ZeroFill, "CreateForecastWindows input",
            $"at least {need} rows (lookback {_settings.Lookback} + horizon {_settings.Horizon})", _settings.DuplicateTimestamps,
            _settings.MissingIndicatorColumnNames);
        if (frame.Rows < need)
            throw new InvalidOperationException($"CreateForecastWindows: the series has {frame.Rows} rows, fewer than the " +
                $"{need} (lookback {_settings.Lookback} + horizon {_settings.Horizon}) one window needs.");
        return new WindowDataView(frame, Layout, Names);
    }

    /// <summary>Not available: a window spans several series rows. Pass windows to a prediction engine instead.</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) =>
        throw new InvalidOperationException("CreateForecastWindows turns many series rows into one window, so it has no " +
            "row-to-row mapper (PredictionEngine). Score windows directly: create the engine from the forecasting model.");

    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        TorchModelPersistence.Save(ctx, this, writer =>
        {
            writer.Write(PayloadVersion);
            ConfigPersistence.WriteConfig(writer, _settings);
        });

    /// <summary>Reads a saved transformer; called by the persistence bridge on mlContext.Model.Load.</summary>
    public static ForecastWindowsTransformer Load(IHostEnvironment env, BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version != PayloadVersion)
            throw new InvalidDataException($"This CreateForecastWindows transform has payload format {version}; this build " +
                $"reads format {PayloadVersion}. Load it with the MLNet.Attention version that saved it, or recreate it.");
        return new ForecastWindowsTransformer(env, ConfigPersistence.ReadConfig<ForecastWindowsSettings>(reader));
    }
}
