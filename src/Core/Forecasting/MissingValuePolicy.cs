namespace MLNet.Attention.Forecasting;

/// <summary>
/// What a forecaster does with missing values (NaN) in the series it trains on, evaluates, forecasts from and scores
/// (<see cref="ForecasterOptions.MissingValues"/>). Missing <i>targets</i> are always left out of the loss and the
/// metrics; a forecast is never NaN.
/// </summary>
public enum MissingValuePolicy
{
    /// <summary>A NaN in the series or in a scored window is an error naming the column and row (the iTransformer's
    /// default: it has no notion of a missing input).</summary>
    Refuse = 0,

    /// <summary>NaN is a missing value: after scaling it becomes 0 (the training mean of its variate) and the
    /// observed mask goes to the network with the window (CRIB uses it; others see the zero-filled window); missing
    /// targets are masked out of the loss and the metrics. CRIB's default. A window with no observed value at all
    /// cannot be forecast and is reported (scoring) or skipped and counted (<see cref="ForecastMetrics.SkippedWindows"/>).</summary>
    ZeroFill = 1,
}

/// <summary>
/// What a forecaster does with rows whose timestamp equals the previous row's
/// (<see cref="ForecasterOptions.DuplicateTimestamps"/>). Timestamps that go backwards are always an error.
/// </summary>
public enum DuplicateTimestampPolicy
{
    /// <summary>An error naming the first duplicated rows (the default: usually a join or export mistake).</summary>
    Refuse = 0,

    /// <summary>Keep every row, as the forecasting papers do with Weather's repeated 2020-05-12 06:00:00.</summary>
    Keep = 1,

    /// <summary>Keep the first row of each run of equal timestamps and drop the others.</summary>
    Drop = 2,
}

/// <summary>The data policies a forecasting model was trained with and scores by (persisted from payload version 3
/// on; older payloads read as <c>Refuse</c>/<c>Refuse</c>, which is what they did; the missing-value indicator columns
/// were added later and read as none from older payloads).</summary>
internal sealed record ForecastingPolicies(MissingValuePolicy MissingValues, DuplicateTimestampPolicy DuplicateTimestamps,
    string[]? MissingIndicators = null)
{
    public static ForecastingPolicies Strict { get; } = new(MissingValuePolicy.Refuse, DuplicateTimestampPolicy.Refuse);

    public bool AllowsMissing => MissingValues != MissingValuePolicy.Refuse;

    public void Validate()
    {
        if (!Enum.IsDefined(MissingValues))
            throw new InvalidDataException($"Corrupted forecasting model header: unknown missing-value policy {(int)MissingValues}.");
        if (!Enum.IsDefined(DuplicateTimestamps))
            throw new InvalidDataException(
                $"Corrupted forecasting model header: unknown duplicate-timestamp policy {(int)DuplicateTimestamps}.");
    }
}
