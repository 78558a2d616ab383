using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;

namespace MLNet.Attention.Interop;

/// <summary>
/// Saves and restores hyper-parameter records (an architecture's <c>…Config</c>, a model's description) inside a
/// model payload, generically: each field is written once, in the record, instead of by hand in a writer and again
/// in a reader. Pair it with the weights (<c>TorchModelPersistence.WriteModule</c> / <c>ReadModule</c>).
/// </summary>
/// <remarks>
/// <para><b>What can be persisted.</b> A class or struct with one public constructor whose parameters each match a
/// public readable property of the same name (case-insensitive) — a positional record such as
/// <c>InvertedTransformerConfig</c>, <c>CribConfig</c>, <c>AcmilConfig</c> or <c>GatedAttentionMilConfig</c>. Its
/// constructor parameters are the persisted fields; computed properties (<c>ParameterCount</c>) are not stored, and a
/// settable property that is not a constructor parameter is refused (it would be lost silently). Field types:
/// <see cref="bool"/>, <see cref="int"/>, <see cref="long"/>, <see cref="float"/>, <see cref="double"/>,
/// <see cref="string"/>, enums, <see cref="TimeSpan"/>, <see cref="DateTime"/>, <see cref="Nullable{T}"/> of these,
/// one-dimensional arrays (a <c>T[]</c> parameter may be exposed as any <c>IEnumerable&lt;T&gt;</c> property, e.g.
/// <c>IReadOnlyList&lt;float&gt;</c>) and nested records of the same kind. Nullable reference types are honoured:
/// null is written and read only where the parameter is annotated nullable.</para>
/// <para><b>Layout</b> (self-describing, so a mismatch is reported by field name):</para>
/// <code>
/// byte    encoding version (currently <see cref="EncodingVersion"/>)
/// string  record type name (Type.Name, no namespace)
/// string  name and version of the record's assembly that wrote it, e.g. "MLNet.Attention.Modules 0.1.0" (messages)
/// record  int32 field count, then per field: string name, value
/// value   byte kind, then: nothing (null) | bool | int32 | int64 | float32 | float64 | string | int64 (enum) |
///         int64 ticks (TimeSpan) | int64 DateTime.ToBinary | int32 count + values (array) | record (nested)
/// </code>
/// <para>Numbers are stored as their exact bits, so a saved and reloaded record is equal to the original.</para>
/// <para><b>Reading is strict.</b> A missing field (unless its constructor parameter has a default value: a field
/// added in a later version then reads as that default from older payloads), an unknown field, a field of another type, a value outside its
/// enum, a null in a non-nullable field or a record that fails its constructor checks throws
/// <see cref="InvalidDataException"/> naming the field, what was found, what was expected, and which version of the
/// record's assembly wrote it (the version to load the model with). After construction the record's public
/// parameterless <c>Validate()</c> method, if it has one, is called, and its exception reported the same way.</para>
/// <para>To change a persisted record, bump the payload version of the models that store it and keep a reader for
/// the old layout (see <c>InvertedTransformerModel.Load</c>).</para>
/// </remarks>
public static class ConfigPersistence
{
    /// <summary>The encoding version written by this build and the newest one it reads.</summary>
    public const int EncodingVersion = 1;

    private const int MaxDepth = 16;
    private const int MaxFields = 4096;
    private static readonly ConcurrentDictionary<Type, Contract> Contracts = new();

    /// <summary>Writes <paramref name="config"/> to <paramref name="writer"/>; read it back with
    /// <see cref="ReadConfig{T}"/> of the same <typeparamref name="T"/>.</summary>
    /// <exception cref="InvalidOperationException"><typeparamref name="T"/> is not a persistable record (the message
    /// names the constructor, property or field type at fault).</exception>
    /// <exception cref="ArgumentException">A field that is not nullable holds null.</exception>
    public static void WriteConfig<T>(BinaryWriter writer, T config) where T : notnull
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(config);
        var contract = ContractOf(typeof(T));
        writer.Write((byte)EncodingVersion);
        writer.Write(typeof(T).Name);
        writer.Write(AssemblyLabel(typeof(T).Assembly));
        WriteRecord(writer, contract, config, typeof(T).Name);
    }

    /// <summary>Reads a <typeparamref name="T"/> written by <see cref="WriteConfig{T}"/>, checks every field against
    /// this build's <typeparamref name="T"/>, constructs it and calls its <c>Validate()</c> if it has one.</summary>
    /// <exception cref="InvalidDataException">The stored record does not match <typeparamref name="T"/> (missing,
    /// unknown or mis-typed field, invalid value) or the data is truncated or corrupted.</exception>
    /// <exception cref="InvalidOperationException"><typeparamref name="T"/> is not a persistable record.</exception>
    public static T ReadConfig<T>(BinaryReader reader) where T : notnull
    {
        ArgumentNullException.ThrowIfNull(reader);
        var contract = ContractOf(typeof(T));
        string name = typeof(T).Name;
        const string corrupted =
            "The model file is corrupted (for example truncated or modified); re-save or re-download it.";
        try
        {
            int encoding = reader.ReadByte();
            if (encoding < 1)
                throw new InvalidDataException(
                    $"The saved {name} has an invalid encoding version {encoding}. {corrupted}");
            if (encoding > EncodingVersion)
                throw new InvalidDataException(
                    $"The saved {name} uses config encoding version {encoding}, but this MLNet.Attention " +
                    $"({AssemblyLabel(typeof(ConfigPersistence).Assembly)}) reads versions up to {EncodingVersion}. " +
                    "Upgrade the MLNet.Attention packages to load this model.");
            string storedType = reader.ReadString();
            string savedBy = reader.ReadString();
            var context = new ReadContext(name, savedBy, AssemblyLabel(typeof(T).Assembly));
            if (storedType != name)
                throw context.Mismatch($"found a saved '{storedType}' where a {name} was expected");
            var stored = ReadRecordValues(reader, 0, name);
            return (T)Bind(stored, contract, name, context);
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException(
                $"The saved {name} ends before its last field ({ex.Message}). {corrupted}", ex);
        }
    }

    // ----- writing -----

    private static void WriteRecord(BinaryWriter writer, Contract contract, object record, string path)
    {
        writer.Write(contract.Fields.Length);
        foreach (var field in contract.Fields)
        {
            writer.Write(field.Name);
            WriteValue(writer, field.Shape, field.Property.GetValue(record), $"{path}.{field.Name}");
        }
    }

    private static void WriteValue(BinaryWriter writer, Shape shape, object? value, string path)
    {
        if (value is null)
        {
            if (!shape.Nullable)
                throw new ArgumentException($"{path} is null, but it is not declared nullable; set it before saving.");
            writer.Write((byte)Kind.Null);
            return;
        }
        writer.Write((byte)shape.Kind);
        switch (shape.Kind)
        {
            case Kind.Boolean: writer.Write((bool)value); break;
            case Kind.Int32: writer.Write((int)value); break;
            case Kind.Int64: writer.Write((long)value); break;
            case Kind.Single: writer.Write((float)value); break;
            case Kind.Double: writer.Write((double)value); break;
            case Kind.String: writer.Write((string)value); break;
            case Kind.Enum: writer.Write(System.Convert.ToInt64(value, CultureInfo.InvariantCulture)); break;
            case Kind.TimeSpan: writer.Write(((TimeSpan)value).Ticks); break;
            case Kind.DateTime: writer.Write(((DateTime)value).ToBinary()); break;
            case Kind.Array:
                var items = ((IEnumerable)value).Cast<object?>().ToList();
                writer.Write(items.Count);
                for (int i = 0; i < items.Count; i++) WriteValue(writer, shape.Element!, items[i], $"{path}[{i}]");
                break;
            case Kind.Record:
                WriteRecord(writer, shape.Record!, value, path);
                break;
            default:
                throw new InvalidOperationException($"Unhandled kind {shape.Kind} at {path}.");
        }
    }

    // ----- reading: first the stored tree (independent of T), then binding it to T -----

    private sealed record Stored(Kind Kind, object? Value);

    private static Dictionary<string, Stored> ReadRecordValues(BinaryReader reader, int depth, string path)
    {
        if (depth > MaxDepth)
            throw new InvalidDataException(
                $"The saved record nests deeper than {MaxDepth} levels at {path}; the model file is corrupted.");
        int count = reader.ReadInt32();
        if (count < 0 || count > MaxFields || count > Remaining(reader))
            throw new InvalidDataException(
                $"The saved record {path} has an invalid field count {count}; the model file is corrupted.");
        var fields = new Dictionary<string, Stored>(count, StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
        {
            string name = reader.ReadString();
            if (!fields.TryAdd(name, ReadValue(reader, depth, $"{path}.{name}")))
                throw new InvalidDataException(
                    $"The saved record {path} has the field '{name}' twice; the model file is corrupted.");
        }
        return fields;
    }

    private static Stored ReadValue(BinaryReader reader, int depth, string path)
    {
        var kind = (Kind)reader.ReadByte();
        object? value = kind switch
        {
            Kind.Null => null,
            Kind.Boolean => reader.ReadBoolean(),
            Kind.Int32 => reader.ReadInt32(),
            Kind.Int64 or Kind.Enum or Kind.TimeSpan or Kind.DateTime => reader.ReadInt64(),
            Kind.Single => reader.ReadSingle(),
            Kind.Double => reader.ReadDouble(),
            Kind.String => reader.ReadString(),
            Kind.Array => ReadArray(reader, depth, path),
            Kind.Record => ReadRecordValues(reader, depth + 1, path),
            _ => throw new InvalidDataException(
                $"{path} has an unknown value kind {(byte)kind}: the model was written by a newer MLNet.Attention " +
                "(upgrade the packages) or the file is corrupted."),
        };
        return new Stored(kind, value);
    }

    private static Stored[] ReadArray(BinaryReader reader, int depth, string path)
    {
        int count = reader.ReadInt32();
        if (count < 0 || count > Array.MaxLength || count > Remaining(reader))
            throw new InvalidDataException(
                $"{path} has an invalid element count {count}; the model file is corrupted.");
        var items = new Stored[count];
        for (int i = 0; i < count; i++) items[i] = ReadValue(reader, depth + 1, $"{path}[{i}]");
        return items;
    }

    /// <summary>Bytes left in a seekable stream (each field or element takes at least one), else no bound.</summary>
    private static long Remaining(BinaryReader reader) =>
        reader.BaseStream.CanSeek ? reader.BaseStream.Length - reader.BaseStream.Position : long.MaxValue;

    private sealed record ReadContext(string RecordName, string SavedBy, string Current)
    {
        public InvalidDataException Mismatch(string problem, Exception? inner = null)
        {
            string advice = SavedBy == Current
                ? $"It was saved by {SavedBy}, the same version as this build, so the file is corrupted or comes " +
                  "from a modified build: re-save or retrain the model."
                : $"It was saved by {SavedBy}, and this build has {Current}: load the model with {SavedBy}, or " +
                  "retrain it with this version.";
            return new InvalidDataException(
                $"The saved {RecordName} does not match this build: {problem}. {advice}", inner);
        }
    }

    private static object Bind(Dictionary<string, Stored> stored, Contract contract, string path, ReadContext context)
    {
        var expected = string.Join(", ", contract.Fields.Select(f => f.Name));
        foreach (var field in contract.Fields)
            if (!stored.ContainsKey(field.Name) && !field.Parameter.HasDefaultValue)
                throw context.Mismatch(
                    $"{path} has no field '{field.Name}' (stored: {string.Join(", ", stored.Keys)}; " +
                    $"expected: {expected})");
        var unknown = stored.Keys.Where(k => contract.Fields.All(f => f.Name != k)).ToList();
        if (unknown.Count > 0)
            throw context.Mismatch(
                $"{path} has the unknown field{(unknown.Count > 1 ? "s" : "")} '{string.Join("', '", unknown)}' " +
                $"(expected: {expected})");

        var args = new object?[contract.Fields.Length];
        for (int i = 0; i < args.Length; i++)
        {
            var field = contract.Fields[i];
            // A field added to the record later (a constructor parameter with a default) takes its default when an
            // older build's payload lacks it.
            args[i] = stored.TryGetValue(field.Name, out var value)
                ? ConvertValue(value, field.Shape, $"{path}.{field.Name}", context)
                : field.Parameter.DefaultValue;
        }
        object record;
        try
        {
            record = contract.Constructor.Invoke(BindingFlags.DoNotWrapExceptions, binder: null, args, culture: null);
            contract.Validate?.Invoke(record, BindingFlags.DoNotWrapExceptions, binder: null, null, culture: null);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw context.Mismatch(
                $"the stored values do not make a valid {path} ({ex.GetType().Name}: {ex.Message})", ex);
        }
        return record;
    }

    private static object? ConvertValue(Stored value, Shape shape, string path, ReadContext context)
    {
        if (value.Kind == Kind.Null)
        {
            if (!shape.Nullable)
                throw context.Mismatch($"{path} is null; expected a {TypeLabel(shape.Type)}");
            return null;
        }
        if (value.Kind != shape.Kind)
            throw context.Mismatch(
                $"{path} is stored as {value.Kind}; expected {shape.Kind} ({TypeLabel(shape.Type)})");
        switch (shape.Kind)
        {
            case Kind.Enum:
                return ToEnum((long)value.Value!, shape.Type, path, context);
            case Kind.TimeSpan:
                return TimeSpan.FromTicks((long)value.Value!);
            case Kind.DateTime:
                try { return DateTime.FromBinary((long)value.Value!); }
                catch (ArgumentException ex) { throw context.Mismatch($"{path} holds an invalid DateTime", ex); }
            case Kind.Array:
                var items = (Stored[])value.Value!;
                var element = shape.Element!;
                var array = Array.CreateInstance(element.Type, items.Length);
                for (int i = 0; i < items.Length; i++)
                    array.SetValue(ConvertValue(items[i], element, $"{path}[{i}]", context), i);
                return array;
            case Kind.Record:
                return Bind((Dictionary<string, Stored>)value.Value!, shape.Record!, path, context);
            default:
                return value.Value;
        }
    }

    private static object ToEnum(long raw, Type type, string path, ReadContext context)
    {
        object value;
        try
        {
            value = Enum.ToObject(type,
                System.Convert.ChangeType(raw, Enum.GetUnderlyingType(type), CultureInfo.InvariantCulture));
        }
        catch (OverflowException ex)
        {
            throw context.Mismatch($"{path} holds {raw}, outside the range of {type.Name}", ex);
        }
        bool known = type.IsDefined(typeof(FlagsAttribute), inherit: false)
            ? (raw & ~Enum.GetValues(type).Cast<object>()
                .Aggregate(0L, (all, v) => all | System.Convert.ToInt64(v, CultureInfo.InvariantCulture))) == 0
            : Enum.IsDefined(type, value);
        if (!known)
            throw context.Mismatch($"{path} holds {raw}, which is not a {type.Name} value " +
                                   $"(known: {string.Join(", ", Enum.GetNames(type))})");
        return value;
    }

    // ----- contracts: which constructor, which fields, which shapes -----

    private enum Kind : byte
    {
        Null = 0, Boolean = 1, Int32 = 2, Int64 = 3, Single = 4, Double = 5, String = 6, Enum = 7, TimeSpan = 8,
        DateTime = 9, Array = 10, Record = 11,
    }

    private sealed record Shape(Type Type, Kind Kind, bool Nullable, Shape? Element, Contract? Record);

    private sealed record Field(string Name, PropertyInfo Property, Shape Shape, ParameterInfo Parameter);

    private sealed class Contract
    {
        public required ConstructorInfo Constructor { get; init; }
        public Field[] Fields { get; set; } = Array.Empty<Field>();
        public MethodInfo? Validate { get; init; }
    }

    private static Contract ContractOf(Type type)
    {
        if (Contracts.TryGetValue(type, out var cached)) return cached;
        // NullabilityInfoContext is not thread-safe: one per build; recursive types share the partial contract.
        var built = Build(type, new NullabilityInfoContext(), new Dictionary<Type, Contract>());
        return Contracts.GetOrAdd(type, built);
    }

    private static Contract Build(Type type, NullabilityInfoContext nullability, Dictionary<Type, Contract> building)
    {
        if (building.TryGetValue(type, out var partial)) return partial;
        string refuse = $"{type.FullName} cannot be persisted by ConfigPersistence:";
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanRead && p.GetIndexParameters().Length == 0).ToArray();
        PropertyInfo? Match(ParameterInfo p) =>
            properties.FirstOrDefault(q => q.Name == p.Name)
            ?? properties.FirstOrDefault(q => string.Equals(q.Name, p.Name, StringComparison.OrdinalIgnoreCase));

        var candidates = type.GetConstructors(BindingFlags.Public | BindingFlags.Instance)
            .Where(c => !(c.GetParameters().Length == 1 && c.GetParameters()[0].ParameterType == type)) // record copy
            .Where(c => c.GetParameters().All(p => Match(p) is { } q && Compatible(q.PropertyType, p.ParameterType)))
            .ToList();
        if (candidates.Count == 0)
            throw new InvalidOperationException(
                $"{refuse} it needs a public constructor whose parameters each match a public property of the same " +
                "name and type (a positional record).");
        int most = candidates.Max(c => c.GetParameters().Length);
        if (candidates.Count(c => c.GetParameters().Length == most) > 1)
            throw new InvalidOperationException(
                $"{refuse} it has several public constructors of {most} parameters matching its properties; keep one.");
        var constructor = candidates.First(c => c.GetParameters().Length == most);
        var parameters = constructor.GetParameters();

        var lost = properties
            .Where(p => p.SetMethod is { IsPublic: true } && parameters.All(q => Match(q) != p)).ToList();
        if (lost.Count > 0)
            throw new InvalidOperationException(
                $"{refuse} the settable propert{(lost.Count > 1 ? "ies" : "y")} " +
                $"{string.Join(", ", lost.Select(p => p.Name))} would not be saved; make them constructor " +
                "parameters (or get-only computed properties).");

        var validate = type.GetMethod("Validate", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes);
        var contract = new Contract { Constructor = constructor, Validate = validate };
        building[type] = contract;
        contract.Fields = parameters.Select(p => new Field(Match(p)!.Name, Match(p)!,
            ShapeOf(p.ParameterType, nullability.Create(p), $"{type.Name}.{p.Name}", nullability, building), p)).ToArray();
        return contract;
    }

    /// <summary>The property's value can be written as the parameter's type: same or derived type, or an
    /// <c>IEnumerable&lt;T&gt;</c> for a <c>T[]</c> parameter.</summary>
    private static bool Compatible(Type property, Type parameter) =>
        parameter.IsAssignableFrom(property)
        || (parameter.IsSZArray
            && typeof(IEnumerable<>).MakeGenericType(parameter.GetElementType()!).IsAssignableFrom(property));

    private static Shape ShapeOf(Type type, NullabilityInfo info, string path, NullabilityInfoContext nullability,
        Dictionary<Type, Contract> building)
    {
        if (Nullable.GetUnderlyingType(type) is { } underlying)
            return ShapeOf(underlying, info, path, nullability, building) with { Type = type, Nullable = true };
        bool nullable = !type.IsValueType && info.ReadState != NullabilityState.NotNull;
        Kind? simple = type switch
        {
            _ when type == typeof(bool) => Kind.Boolean,
            _ when type == typeof(int) => Kind.Int32,
            _ when type == typeof(long) => Kind.Int64,
            _ when type == typeof(float) => Kind.Single,
            _ when type == typeof(double) => Kind.Double,
            _ when type == typeof(string) => Kind.String,
            _ when type.IsEnum => Kind.Enum,
            _ when type == typeof(TimeSpan) => Kind.TimeSpan,
            _ when type == typeof(DateTime) => Kind.DateTime,
            _ => null,
        };
        if (simple is { } kind) return new Shape(type, kind, nullable, null, null);
        if (type.IsSZArray)
        {
            var elementInfo = info.ElementType ?? throw new InvalidOperationException($"No nullability for {path}.");
            return new Shape(type, Kind.Array, nullable,
                ShapeOf(type.GetElementType()!, elementInfo, path + "[]", nullability, building), null);
        }
        if (type.IsPrimitive || type.IsArray || type.IsPointer || type.IsAbstract || type.IsInterface
            || type.ContainsGenericParameters || type == typeof(object) || type == typeof(decimal)
            || typeof(IEnumerable).IsAssignableFrom(type))
            throw new InvalidOperationException(
                $"{path} has the type {TypeLabel(type)}, which ConfigPersistence cannot persist. Use bool, int, " +
                "long, float, double, string, an enum, TimeSpan, DateTime, a nullable of these, a one-dimensional " +
                "array, or a nested record.");
        return new Shape(type, Kind.Record, nullable, null, Build(type, nullability, building));
    }

    private static string TypeLabel(Type type) =>
        Nullable.GetUnderlyingType(type) is { } u ? TypeLabel(u) + "?"
        : type.IsSZArray ? TypeLabel(type.GetElementType()!) + "[]"
        : type.Name;

    private static string AssemblyLabel(Assembly assembly)
    {
        var name = assembly.GetName();
        string version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
                         ?? name.Version?.ToString() ?? "?";
        int plus = version.IndexOf('+');   // drop the source-revision suffix ("0.1.0+abc123")
        return $"{name.Name} {(plus > 0 ? version[..plus] : version)}";
    }
}
