namespace MLNet.Attention.Sweeps;

/// <summary>The values of one trial: options property → value.</summary>
/// <param name="TrialId">1-based trial number.</param>
/// <param name="Values">Property name → the value to set.</param>
public sealed record TrialSettings(int TrialId, IReadOnlyDictionary<string, object> Values)
{
    /// <summary>"Name=value, …" in the order of the space.</summary>
    public override string ToString() => string.Join(", ", Values.Select(v => $"{v.Key}={Format(v.Value)}"));

    internal static string Format(object value) => value switch
    {
        double d => d.ToString("G4", System.Globalization.CultureInfo.InvariantCulture),
        float f => f.ToString("G4", System.Globalization.CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}

/// <summary>
/// Proposes the next trial and learns from finished ones — the shape of AutoML's <c>ITuner</c>
/// (<c>Propose</c>/<c>Update</c>), so that a model-based tuner can replace <see cref="RandomSearchTuner"/> or
/// <see cref="GridSearchTuner"/>.
/// </summary>
public interface ISweepTuner
{
    /// <summary>The next trial's values over <paramref name="parameters"/>, or null when the tuner has nothing left.</summary>
    TrialSettings? Propose(IReadOnlyList<SweepParameter> parameters, int trialId);

    /// <summary>A trial finished (its metric, or its error).</summary>
    void Update(TrialResult result);
}

/// <summary>Independent uniform draws (log-uniform on a log scale), reproducible from the seed.</summary>
public sealed class RandomSearchTuner(int seed = 0) : ISweepTuner
{
    private readonly Random _random = new(seed);

    /// <inheritdoc/>
    public TrialSettings? Propose(IReadOnlyList<SweepParameter> parameters, int trialId) =>
        new(trialId, parameters.ToDictionary(p => p.Name, p => p.ValueAt(_random.NextDouble())));

    /// <inheritdoc/>
    public void Update(TrialResult result) { }
}

/// <summary>Every combination of the choices and of <c>stepsPerRange</c> evenly spaced values per range, in order;
/// exhausted after the last one.</summary>
public sealed class GridSearchTuner : ISweepTuner
{
    private readonly int _stepsPerRange;
    private List<Dictionary<string, object>>? _grid;

    /// <param name="stepsPerRange">Values per numeric range (at least 1; 1 takes the middle).</param>
    public GridSearchTuner(int stepsPerRange = 3)
    {
        if (stepsPerRange < 1) throw new ArgumentOutOfRangeException(nameof(stepsPerRange), stepsPerRange, "At least one step per range.");
        _stepsPerRange = stepsPerRange;
    }

    /// <summary>The number of grid points of <paramref name="parameters"/>.</summary>
    public long Size(IReadOnlyList<SweepParameter> parameters) =>
        parameters.Aggregate(1L, (n, p) => n * p.GridValues(_stepsPerRange).Count);

    /// <inheritdoc/>
    public TrialSettings? Propose(IReadOnlyList<SweepParameter> parameters, int trialId)
    {
        _grid ??= Build(parameters);
        return trialId - 1 < _grid.Count ? new TrialSettings(trialId, _grid[trialId - 1]) : null;
    }

    /// <inheritdoc/>
    public void Update(TrialResult result) { }

    private List<Dictionary<string, object>> Build(IReadOnlyList<SweepParameter> parameters)
    {
        var grid = new List<Dictionary<string, object>> { new() };
        foreach (var p in parameters)
            grid = grid.SelectMany(point => p.GridValues(_stepsPerRange).Select(v => new Dictionary<string, object>(point) { [p.Name] = v }))
                .ToList();
        return grid;
    }
}
