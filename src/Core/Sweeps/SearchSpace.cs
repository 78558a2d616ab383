using System.Globalization;
using Microsoft.ML.SearchSpace;
using MLNet.Attention.Interop;

namespace MLNet.Attention.Sweeps;

/// <summary>One dimension of a <see cref="SearchSpace{TOptions}"/>: an options property and the values it may take.</summary>
/// <param name="Name">The options property.</param>
public abstract record SweepParameter(string Name)
{
    /// <summary>The value at <paramref name="unit"/> ∈ [0, 1] (random search draws it; grid search steps it).</summary>
    public abstract object ValueAt(double unit);

    /// <summary>Values a grid visits: the candidates of a choice, or <paramref name="steps"/> evenly spaced values of a
    /// range (log-spaced on a log scale; distinct integers only).</summary>
    public abstract IReadOnlyList<object> GridValues(int steps);
}

/// <summary>A numeric range [Min, Max], linear or logarithmic, of integers or reals.</summary>
public sealed record RangeParameter(string Name, double Min, double Max, bool LogScale, bool Integer) : SweepParameter(Name)
{
    /// <inheritdoc/>
    public override object ValueAt(double unit)
    {
        double v = LogScale ? Math.Exp(Math.Log(Min) + unit * (Math.Log(Max) - Math.Log(Min))) : Min + unit * (Max - Min);
        v = Math.Clamp(v, Min, Max);
        return Integer ? (object)(int)Math.Round(v) : v;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<object> GridValues(int steps) =>
        Enumerable.Range(0, steps).Select(i => ValueAt(steps == 1 ? 0.5 : i / (double)(steps - 1))).Distinct().ToList();
}

/// <summary>One of a fixed set of values (also booleans).</summary>
public sealed record ChoiceParameter(string Name, IReadOnlyList<object> Candidates) : SweepParameter(Name)
{
    /// <inheritdoc/>
    public override object ValueAt(double unit) => Candidates[Math.Min(Candidates.Count - 1, (int)(unit * Candidates.Count))];

    /// <inheritdoc/>
    public override IReadOnlyList<object> GridValues(int steps) => Candidates;
}

/// <summary>
/// What a sweep may change in a trainer's options: from the <c>Microsoft.ML.SearchSpace</c> attributes on the options
/// class (<c>[Range]</c>, <c>[Choice]</c>, <c>[BooleanChoice]</c>, as AutoML's <c>SearchSpace&lt;T&gt;</c> reads them)
/// and/or added by name. Every name is checked against the options type when added.
/// </summary>
/// <typeparam name="TOptions">The trainer's options class.</typeparam>
public sealed class SearchSpace<TOptions> where TOptions : class
{
    private readonly List<SweepParameter> _parameters = new();

    /// <summary>The dimensions, in the order they were added.</summary>
    public IReadOnlyList<SweepParameter> Parameters => _parameters;

    /// <summary>The space of the annotated properties of <typeparamref name="TOptions"/> (all of them, or the
    /// <paramref name="names"/> given).</summary>
    public static SearchSpace<TOptions> FromAttributes(params string[] names)
    {
        var annotated = OptionAttributes.Of(typeof(TOptions));
        var unknown = names.Where(n => annotated.All(a => a.Name != n)).ToArray();
        if (unknown.Length > 0)
            throw new ArgumentException($"{typeof(TOptions).Name} has no [Range]/[Choice]/[BooleanChoice] property " +
                $"{string.Join(", ", unknown.Select(n => $"'{n}'"))}; annotated: {string.Join(", ", annotated.Select(a => a.Name))}. " +
                "Add the others with Range(...) or Choice(...).", nameof(names));
        var space = new SearchSpace<TOptions>();
        foreach (var a in annotated.Where(a => names.Length == 0 || names.Contains(a.Name)))
        {
            switch (a.Attribute)
            {
                case RangeAttribute r:
                    space.Range(a.Name, ToDouble(r.Min), ToDouble(r.Max), r.LogBase);
                    break;
                case ChoiceAttribute c:
                    space.Choice(a.Name, c.Candidates);
                    break;
                case BooleanChoiceAttribute:
                    space.Choice(a.Name, true, false);
                    break;
            }
        }
        return space;
    }

    /// <summary>Adds a numeric range for property <paramref name="name"/> (an int property gets integers).</summary>
    public SearchSpace<TOptions> Range(string name, double min, double max, bool logScale = false)
    {
        var type = CheckNew(name);
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        if (!IsInteger(underlying) && underlying != typeof(double) && underlying != typeof(float))
            throw new ArgumentException($"{typeof(TOptions).Name}.{name} is {type.Name}; a range needs a numeric property. " +
                "Use Choice for other types.", nameof(name));
        if (!(min <= max) || !double.IsFinite(min) || !double.IsFinite(max))
            throw new ArgumentOutOfRangeException(nameof(min), $"Range of {name}: need finite min ≤ max; got [{min}, {max}].");
        if (logScale && !(min > 0))
            throw new ArgumentOutOfRangeException(nameof(min), $"Range of {name}: a log scale needs min > 0; got {min}.");
        _parameters.Add(new RangeParameter(name, min, max, logScale, IsInteger(underlying)));
        return this;
    }

    /// <summary>Adds a choice among <paramref name="candidates"/> for property <paramref name="name"/>.</summary>
    public SearchSpace<TOptions> Choice(string name, params object[] candidates)
    {
        var type = CheckNew(name);
        if (candidates is null || candidates.Length == 0)
            throw new ArgumentException($"Choice of {name}: give at least one candidate.", nameof(candidates));
        foreach (var c in candidates)
        {
            try { OptionAttributes.Convert(c, type); }
            catch (Exception e) when (e is InvalidCastException or FormatException or ArgumentException or OverflowException)
            {
                throw new ArgumentException($"Choice of {name}: candidate '{c}' cannot be a {type.Name}.", nameof(candidates), e);
            }
        }
        _parameters.Add(new ChoiceParameter(name, candidates.ToArray()));
        return this;
    }

    /// <summary>Options made by <paramref name="create"/> with <paramref name="values"/> applied.</summary>
    internal TOptions Apply(Func<TOptions> create, IReadOnlyDictionary<string, object> values)
    {
        var options = create() ?? throw new InvalidOperationException("The options factory returned null.");
        foreach (var (name, value) in values) OptionAttributes.Set(options, name, value);
        return options;
    }

    private Type CheckNew(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var type = OptionAttributes.PropertyType(typeof(TOptions), name)
            ?? throw new ArgumentException($"{typeof(TOptions).Name} has no public settable property '{name}'.", nameof(name));
        if (_parameters.Any(p => p.Name == name))
            throw new ArgumentException($"'{name}' is already in the search space.", nameof(name));
        return type;
    }

    private static bool IsInteger(Type t) => (Nullable.GetUnderlyingType(t) ?? t) is var u && (u == typeof(int) || u == typeof(long));

    private static double ToDouble(object v) => System.Convert.ToDouble(v, CultureInfo.InvariantCulture);
}
