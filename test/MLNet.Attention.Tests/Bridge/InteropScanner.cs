using System.Linq.Expressions;
using System.Reflection;
using System.Reflection.Emit;

namespace MLNet.Attention.Tests.Bridge;

/// <summary>
/// Reads the IL and signatures of our assemblies and reports two things that only src/Core/Interop may do:
/// <list type="bullet">
/// <item>use a non-public ML.NET type or member (Core compiles against publicized references, so the compiler cannot
/// stop it): in a signature, a base type or interface, a field type, or a token in a method body;</item>
/// <item>use reflection to reach members (<see cref="ReflectionUse"/>): look a member or type up by name or list the
/// members of a type, read or write through a <see cref="PropertyInfo"/>/<see cref="FieldInfo"/>, invoke a
/// <see cref="MethodBase"/>, bind a delegate, create an instance through a non-public or named constructor, or
/// declare an <c>[UnsafeAccessor]</c>. Inspecting types (<c>typeof</c>, <c>GetType()</c>, generic type definitions,
/// <c>MakeGenericType</c>, <c>GetInterfaces</c>), <c>Activator.CreateInstance</c> of public constructors and stack
/// walks stay allowed everywhere.</item>
/// </list>
/// </summary>
internal static class InteropScanner
{
    /// <summary>The folder whose code may use ML.NET internals and reflection.</summary>
    internal const string Folder = "src/Core/Interop";

    /// <summary>The namespaces of <see cref="Folder"/> (sub-namespaces included); declared nowhere else.</summary>
    internal static readonly string[] Namespaces = { "MLNet.Attention.Interop", "MLNet.Attention.Persistence" };

    /// <summary>Declared in the folder for the runtime, which finds it by this name; contains no code of note.</summary>
    internal const string AccessChecksAttribute = "System.Runtime.CompilerServices.IgnoresAccessChecksToAttribute";

    internal sealed class Findings
    {
        public SortedSet<string> Internals { get; } = new(StringComparer.Ordinal);
        public SortedSet<string> Reflection { get; } = new(StringComparer.Ordinal);
    }

    private const BindingFlags Declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance |
                                          BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static readonly Dictionary<short, OpCode> s_opCodes = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    /// <summary>Member lookups by name, member listings, and lookups of types by name.</summary>
    private static readonly HashSet<string> s_lookups = new(StringComparer.Ordinal)
    {
        "GetMember", "GetMembers", "GetMethod", "GetMethods", "GetProperty", "GetProperties", "GetField", "GetFields",
        "GetEvent", "GetEvents", "GetConstructor", "GetConstructors", "GetNestedType", "GetNestedTypes",
        "GetInterface", "GetInterfaceMap", "GetDefaultMembers", "FindMembers", "GetMemberWithSameMetadataDefinitionAs",
        "get_TypeInitializer", "GetDeclaredMethod", "GetDeclaredMethods", "GetDeclaredProperty", "GetDeclaredField",
        "GetDeclaredEvent", "GetDeclaredNestedType", "get_DeclaredMembers", "get_DeclaredMethods",
        "get_DeclaredProperties", "get_DeclaredFields", "get_DeclaredConstructors", "get_DeclaredEvents",
        "get_DeclaredNestedTypes", "GetTypes", "get_DefinedTypes", "FindTypes", "ReflectionOnlyGetType",
        "ResolveMember", "ResolveMethod", "ResolveField", "ResolveType",
        // PropertyInfo/EventInfo accessors.
        "GetGetMethod", "GetSetMethod", "GetAccessors", "get_GetMethod", "get_SetMethod", "GetAddMethod",
        "GetRemoveMethod", "GetRaiseMethod",
    };

    /// <summary>Uses of a reflected member.</summary>
    private static readonly HashSet<string> s_invocations = new(StringComparer.Ordinal)
    {
        "Invoke", "InvokeMember", "GetValue", "SetValue", "GetValueDirect", "SetValueDirect", "CreateDelegate",
        "AddEventHandler", "RemoveEventHandler", "get_MethodHandle", "get_FieldHandle", "CreateInstance",
    };

    /// <summary>Scans every type of <paramref name="assembly"/>; with <paramref name="exemptInterop"/> the types of
    /// <see cref="Namespaces"/> (in MLNet.Attention.Core only) are skipped.</summary>
    internal static Findings Scan(Assembly assembly, bool exemptInterop = true)
    {
        var findings = new Findings();
        bool isCore = assembly.GetName().Name == "MLNet.Attention.Core";
        foreach (var type in assembly.GetTypes())
        {
            if (!(exemptInterop && isCore && IsInterop(type)))
                ScanType(type, findings);
        }
        return findings;
    }

    /// <summary>True for a type declared in (or nested in a type of) one of <see cref="Namespaces"/>.</summary>
    internal static bool IsInterop(Type type)
    {
        for (var t = type; t != null; t = t.DeclaringType)
        {
            if (t.FullName == AccessChecksAttribute || IsInteropNamespace(t.Namespace))
                return true;
        }
        return false;
    }

    internal static bool IsInteropNamespace(string? ns) =>
        ns != null && Namespaces.Any(n => ns == n || ns.StartsWith(n + ".", StringComparison.Ordinal));

    internal static void ScanType(Type type, Findings findings)
    {
        string where = type.FullName ?? type.Name;
        CheckType(type.BaseType, $"{where} (base type)", findings);
        foreach (var face in type.GetInterfaces())
            CheckType(face, $"{where} (interface)", findings);
        foreach (var field in type.GetFields(Declared))
            CheckType(field.FieldType, $"{where}.{field.Name} (field type)", findings);
        foreach (var method in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
            ScanMethod(method, $"{where}.{method.Name}", findings);
    }

    internal static void ScanMethod(MethodBase method, string where, Findings findings)
    {
        if (method is MethodInfo mi)
            CheckType(mi.ReturnType, $"{where} (return type)", findings);
        foreach (var p in method.GetParameters())
            CheckType(p.ParameterType, $"{where} (parameter {p.Name})", findings);
        if (method.CustomAttributes.Any(a => a.AttributeType.FullName ==
                                             "System.Runtime.CompilerServices.UnsafeAccessorAttribute"))
            findings.Reflection.Add($"{where}: [UnsafeAccessor] (reaches members bypassing access checks)");
        ScanBody(method, where, findings);
    }

    /// <summary>What a call to <paramref name="m"/> does if it is reflection that reaches members, else null.</summary>
    internal static string? ReflectionUse(MethodBase m)
    {
        var type = m.DeclaringType;
        if (type is null)
            return null;
        string name = m.Name;
        var parameters = m.GetParameters();
        bool takesName = parameters.Any(p => p.ParameterType == typeof(string));
        bool reflectionType = typeof(MemberInfo).IsAssignableFrom(type) || typeof(Assembly).IsAssignableFrom(type) ||
                              typeof(Module).IsAssignableFrom(type) || type == typeof(IReflect) ||
                              (type.Namespace == "System.Reflection" &&
                               type.Name.EndsWith("Extensions", StringComparison.Ordinal));
        if (reflectionType)
        {
            // Type.GetType() (no arguments) is object.GetType(); Type.GetType(string) looks a type up by name.
            if ((name == "GetType" && parameters.Length > 0) || s_lookups.Contains(name) ||
                name.StartsWith("GetRuntime", StringComparison.Ordinal) || s_invocations.Contains(name))
                return $"{type.FullName}.{name}";
            return null;
        }
        if (type == typeof(Activator))
        {
            // Public constructors only: CreateInstance<T>(), (Type), (Type, object[]), (Type, object[], object[]).
            bool nonPublicOrNamed = takesName || name == "CreateInstanceFrom" ||
                                    parameters.Any(p => p.ParameterType == typeof(bool) ||
                                                        p.ParameterType == typeof(BindingFlags));
            return nonPublicOrNamed ? $"{type.FullName}.{name} (non-public or named constructor)" : null;
        }
        if (type == typeof(Delegate) && name == "CreateDelegate")
            return $"{type.FullName}.{name}";
        // Expression.Field/Property/PropertyOrField/Call by member name also bind non-public members.
        if (type == typeof(Expression) && takesName && name is "Field" or "Property" or "PropertyOrField" or "Call")
            return $"{type.FullName}.{name} (member by name)";
        return null;
    }

    private static bool IsMLNet(Assembly assembly) =>
        assembly.GetName().Name!.StartsWith("Microsoft.ML", StringComparison.Ordinal);

    private static void CheckType(Type? type, string where, Findings findings)
    {
        if (type is null)
            return;
        if (type.HasElementType)
        {
            CheckType(type.GetElementType(), where, findings);
            return;
        }
        if (type.IsGenericParameter)
            return;
        if (type.IsGenericType && !type.IsGenericTypeDefinition)
        {
            foreach (var arg in type.GetGenericArguments())
                CheckType(arg, where, findings);
            type = type.GetGenericTypeDefinition();
        }
        if (IsMLNet(type.Assembly) && !type.IsVisible)
            findings.Internals.Add($"{where}: type {type.FullName}");
    }

    private static bool IsAccessible(MethodBase m) => m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly;

    private static bool IsAccessible(FieldInfo f) => f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly;

    private static void CheckMember(MemberInfo member, string where, Findings findings)
    {
        switch (member)
        {
            case Type t:
                CheckType(t, where, findings);
                return;
            case MethodBase m:
                CheckType(m.DeclaringType, where, findings);
                if (m is MethodInfo { IsGenericMethod: true } gm)
                    foreach (var arg in gm.GetGenericArguments())
                        CheckType(arg, where, findings);
                if (m.DeclaringType != null && IsMLNet(m.DeclaringType.Assembly) && !IsAccessible(m))
                    findings.Internals.Add($"{where}: member {m.DeclaringType.FullName}.{m.Name}");
                if (ReflectionUse(m) is { } use)
                    findings.Reflection.Add($"{where}: calls {use}");
                return;
            case FieldInfo f:
                CheckType(f.DeclaringType, where, findings);
                if (f.DeclaringType != null && IsMLNet(f.DeclaringType.Assembly) && !IsAccessible(f))
                    findings.Internals.Add($"{where}: field {f.DeclaringType.FullName}.{f.Name}");
                return;
        }
    }

    private static void ScanBody(MethodBase method, string where, Findings findings)
    {
        byte[]? il;
        try
        {
            il = method.GetMethodBody()?.GetILAsByteArray();
        }
        catch (Exception)
        {
            return;
        }
        if (il is null)
            return;
        var typeArgs = method.DeclaringType is { IsGenericType: true } dt ? dt.GetGenericArguments() : null;
        var methodArgs = method is MethodInfo { IsGenericMethod: true } g ? g.GetGenericArguments() : null;
        int pos = 0;
        while (pos < il.Length)
        {
            short value = il[pos++];
            if (value == 0xFE)
                value = unchecked((short)(0xFE00 | il[pos++]));
            if (!s_opCodes.TryGetValue(value, out var op))
                Assert.Fail($"{where}: unknown IL opcode 0x{value:X} at {pos}");
            switch (op.OperandType)
            {
                case OperandType.InlineNone:
                    break;
                case OperandType.ShortInlineBrTarget:
                case OperandType.ShortInlineI:
                case OperandType.ShortInlineVar:
                    pos += 1;
                    break;
                case OperandType.InlineVar:
                    pos += 2;
                    break;
                case OperandType.InlineI8:
                case OperandType.InlineR:
                    pos += 8;
                    break;
                case OperandType.InlineSwitch:
                    int n = BitConverter.ToInt32(il, pos);
                    pos += 4 + 4 * n;
                    break;
                case OperandType.InlineField:
                case OperandType.InlineMethod:
                case OperandType.InlineTok:
                case OperandType.InlineType:
                    int token = BitConverter.ToInt32(il, pos);
                    pos += 4;
                    MemberInfo? member = null;
                    try
                    {
                        member = method.Module.ResolveMember(token, typeArgs, methodArgs);
                    }
                    catch (ArgumentException)
                    {
                    }
                    if (member != null)
                        CheckMember(member, where, findings);
                    break;
                default:
                    pos += 4;
                    break;
            }
        }
    }
}
