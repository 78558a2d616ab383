using System.Reflection;
using System.Reflection.Emit;
using MLNet.Attention.Data;

namespace MLNet.Attention.Tests.Bridge;

/// <summary>
/// MLNet.Attention.Core compiles against publicized ML.NET references, so the compiler cannot stop code from using
/// ML.NET internals. This test scans Core's IL and signatures and fails if anything outside the namespace
/// <c>MLNet.Attention.Persistence</c> (src/Core/Persistence) touches a non-public ML.NET type or member.
/// </summary>
[TestClass]
public sealed class InternalsIsolationTests
{
    private const string AllowedNamespace = "MLNet.Attention.Persistence";

    private static readonly Dictionary<short, OpCode> s_opCodes = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    [TestMethod]
    public void OnlyPersistenceUsesMLNetInternals()
    {
        var core = typeof(TorchTransformerBase).Assembly;
        var violations = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in core.GetTypes())
        {
            if (IsAllowed(type))
                continue;
            string where = type.FullName ?? type.Name;
            CheckType(type.BaseType, $"{where} (base type)", violations);
            foreach (var face in type.GetInterfaces())
                CheckType(face, $"{where} (interface)", violations);
            const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var field in type.GetFields(all))
                CheckType(field.FieldType, $"{where}.{field.Name} (field type)", violations);
            foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                string at = $"{where}.{method.Name}";
                if (method is MethodInfo mi)
                    CheckType(mi.ReturnType, $"{at} (return type)", violations);
                foreach (var p in method.GetParameters())
                    CheckType(p.ParameterType, $"{at} (parameter {p.Name})", violations);
                ScanBody(method, at, violations);
            }
        }
        Assert.AreEqual(0, violations.Count,
            "Non-public ML.NET API used outside src/Core/Persistence (keep ML.NET internals there, or use public API):\n" +
            string.Join("\n", violations));
    }

    private static bool IsAllowed(Type type)
    {
        for (var t = type; t != null; t = t.DeclaringType)
        {
            if (t.Namespace == AllowedNamespace || t.FullName == "System.Runtime.CompilerServices.IgnoresAccessChecksToAttribute")
                return true;
        }
        return false;
    }

    private static bool IsMLNet(Assembly assembly) => assembly.GetName().Name!.StartsWith("Microsoft.ML", StringComparison.Ordinal);

    private static void CheckType(Type? type, string where, SortedSet<string> violations)
    {
        if (type is null)
            return;
        if (type.HasElementType)
        {
            CheckType(type.GetElementType(), where, violations);
            return;
        }
        if (type.IsGenericParameter)
            return;
        if (type.IsGenericType && !type.IsGenericTypeDefinition)
        {
            foreach (var arg in type.GetGenericArguments())
                CheckType(arg, where, violations);
            type = type.GetGenericTypeDefinition();
        }
        if (IsMLNet(type.Assembly) && !type.IsVisible)
            violations.Add($"{where}: type {type.FullName}");
    }

    private static void CheckMember(MemberInfo member, string where, SortedSet<string> violations)
    {
        switch (member)
        {
            case Type t:
                CheckType(t, where, violations);
                return;
            case MethodBase m:
                CheckType(m.DeclaringType, where, violations);
                if (m is MethodInfo { IsGenericMethod: true } gm)
                    foreach (var arg in gm.GetGenericArguments())
                        CheckType(arg, where, violations);
                if (m.DeclaringType != null && IsMLNet(m.DeclaringType.Assembly) && !(m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly))
                    violations.Add($"{where}: member {m.DeclaringType.FullName}.{m.Name}");
                return;
            case FieldInfo f:
                CheckType(f.DeclaringType, where, violations);
                if (f.DeclaringType != null && IsMLNet(f.DeclaringType.Assembly) && !(f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly))
                    violations.Add($"{where}: field {f.DeclaringType.FullName}.{f.Name}");
                return;
        }
    }

    private static void ScanBody(MethodBase method, string where, SortedSet<string> violations)
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
                        CheckMember(member, where, violations);
                    break;
                default:
                    pos += 4;
                    break;
            }
        }
    }
}
