using System.Globalization;
using System.Reflection;
using Microsoft.ML.SearchSpace;

namespace MLNet.Attention.Interop;

/// <summary>
/// Reads the <c>Microsoft.ML.SearchSpace</c> attributes (<see cref="RangeAttribute"/>, <see cref="ChoiceAttribute"/>,
/// <see cref="BooleanChoiceAttribute"/>) of an options class's public settable properties, and sets a property by name
/// (converting the proposed value to its type). Reflection over public members, kept here with the other reflection.
/// </summary>
internal static class OptionAttributes
{
    /// <summary>One annotated property.</summary>
    internal sealed record Annotated(string Name, Type PropertyType, Attribute Attribute);

    // Public settable properties (our options) and public writable fields (ML.NET's trainer options use fields).
    private static IEnumerable<MemberInfo> Settable(Type optionsType) =>
        optionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.SetMethod!.IsPublic).Cast<MemberInfo>()
            .Concat(optionsType.GetFields(BindingFlags.Public | BindingFlags.Instance).Where(f => !f.IsInitOnly));

    private static Type TypeOf(MemberInfo member) => member is PropertyInfo p ? p.PropertyType : ((FieldInfo)member).FieldType;

    public static IReadOnlyList<Annotated> Of(Type optionsType) =>
        Settable(optionsType)
            .Select(m => (Member: m, Attribute: (Attribute?)m.GetCustomAttribute<RangeAttribute>()
                ?? (Attribute?)m.GetCustomAttribute<ChoiceAttribute>() ?? m.GetCustomAttribute<BooleanChoiceAttribute>()))
            .Where(x => x.Attribute is not null)
            .OrderBy(x => x.Member.Name, StringComparer.Ordinal)
            .Select(x => new Annotated(x.Member.Name, TypeOf(x.Member), x.Attribute!))
            .ToList();

    /// <summary>The type of public settable property or field <paramref name="name"/>, or null when there is none.</summary>
    public static Type? PropertyType(Type optionsType, string name) =>
        Settable(optionsType).FirstOrDefault(m => m.Name == name) is { } member ? TypeOf(member) : null;

    /// <summary>Sets <paramref name="name"/> on <paramref name="options"/> to <paramref name="value"/>, converted to
    /// the member's type (a double to int by rounding; nullable types by their underlying type).</summary>
    public static void Set(object options, string name, object value)
    {
        var member = Settable(options.GetType()).FirstOrDefault(m => m.Name == name)
            ?? throw new ArgumentException($"{options.GetType().Name} has no public settable '{name}'.", nameof(name));
        if (member is PropertyInfo property) property.SetValue(options, Convert(value, property.PropertyType));
        else ((FieldInfo)member).SetValue(options, Convert(value, ((FieldInfo)member).FieldType));
    }

    internal static object Convert(object value, Type type)
    {
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (target.IsInstanceOfType(value)) return value;
        if (target.IsEnum) return value is string s ? Enum.Parse(target, s) : Enum.ToObject(target, value);
        if (target == typeof(int) && value is double d) return (int)Math.Round(d);
        if (target == typeof(long) && value is double l) return (long)Math.Round(l);
        return System.Convert.ChangeType(value, target, CultureInfo.InvariantCulture);
    }
}
