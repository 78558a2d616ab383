namespace MLNet.Attention.Forecasting;

/// <summary>Calendar covariates added as extra tokens (Time-Series-Library's "timeF" encoding, each in [−0.5, 0.5]).</summary>
public enum CalendarFeatures
{
    /// <summary>No covariates.</summary>
    None = 0,
    /// <summary>Hour of day, day of week (Monday = 0), day of month, day of year — the papers' setting (freq 'h'), also used for 15-minute ETT.</summary>
    Hourly = 1,
    /// <summary>Minute of hour followed by the four hourly features (freq 't'), for sub-hourly data.</summary>
    Minutely = 2,
}

internal static class CalendarFeatureEncoder
{
    public static int Count(CalendarFeatures f) => f switch { CalendarFeatures.Hourly => 4, CalendarFeatures.Minutely => 5, _ => 0 };

    /// <summary>Writes the features of <paramref name="time"/> into <paramref name="into"/>.</summary>
    public static void Encode(CalendarFeatures f, DateTime time, Span<float> into)
    {
        int i = 0;
        if (f == CalendarFeatures.Minutely) into[i++] = (float)(time.Minute / 59.0 - 0.5);
        into[i++] = (float)(time.Hour / 23.0 - 0.5);
        into[i++] = (float)(((int)time.DayOfWeek + 6) % 7 / 6.0 - 0.5);
        into[i++] = (float)((time.Day - 1) / 30.0 - 0.5);
        into[i] = (float)((time.DayOfYear - 1) / 365.0 - 0.5);
    }

    /// <summary>[rows × Count(f)] features for every timestamp.</summary>
    public static float[] EncodeAll(CalendarFeatures f, IReadOnlyList<DateTime> times)
    {
        int m = Count(f);
        var result = new float[times.Count * m];
        for (int t = 0; t < times.Count; t++) Encode(f, times[t], result.AsSpan(t * m, m));
        return result;
    }
}
