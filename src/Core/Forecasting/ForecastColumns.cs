namespace MLNet.Attention.Forecasting;

/// <summary>The column lists a forecasting model or window transform reads, checked once for both
/// (<see cref="ForecasterOptions"/> and the CreateForecastWindows settings).</summary>
internal static class ForecastColumns
{
    /// <summary>Every column a window reads, in channel order: variates, past covariates, future covariates.</summary>
    public static string[] Channels(string[] variates, string[]? past, string[]? future) =>
        variates.Concat(past ?? Array.Empty<string>()).Concat(future ?? Array.Empty<string>()).ToArray();

    /// <summary>Throws <see cref="ArgumentException"/> naming a column listed twice across the three lists, or an
    /// indicator list that does not name one separate column per variate.</summary>
    public static void Check(string[] variates, string[]? past, string[]? future, string[]? indicators)
    {
        var channels = Channels(variates, past, future);
        var repeated = channels.GroupBy(c => c).FirstOrDefault(g => g.Count() > 1);
        if (repeated is not null)
            throw new ArgumentException($"Column '{repeated.Key}' is named more than once across VariateColumnNames, " +
                "PastCovariateColumnNames and FutureCovariateColumnNames; name each column in one list only (a " +
                "covariate that should also be forecast is a variate).", "PastCovariateColumnNames");
        if (indicators is not { Length: > 0 }) return;
        if (indicators.Length != variates.Length)
            throw new ArgumentException($"MissingIndicatorColumnNames names {indicators.Length} column(s) for " +
                $"{variates.Length} variate(s); expected one indicator per variate, in VariateColumnNames order.",
                "MissingIndicatorColumnNames");
        var clash = indicators.FirstOrDefault(i => string.IsNullOrWhiteSpace(i) || channels.Contains(i)
                                                   || indicators.Count(j => j == i) > 1);
        if (clash is not null)
            throw new ArgumentException($"Missing-value indicator column '{clash}' is empty, named twice or also a " +
                "variate or covariate; name one separate indicator column per variate.", "MissingIndicatorColumnNames");
    }
}
