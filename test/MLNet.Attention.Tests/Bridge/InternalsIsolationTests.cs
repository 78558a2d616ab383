using System.Diagnostics;
using System.Linq.Expressions;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using MLNet.Attention.Data;
using MLNet.Attention.Interop;
using MLNet.Attention.Runtime;

namespace MLNet.Attention.Tests.Bridge;

/// <summary>
/// MLNet.Attention.Core compiles against publicized ML.NET references, so the compiler cannot stop code from using
/// ML.NET internals. src/Core/Interop (namespaces <c>MLNet.Attention.Interop</c> and <c>MLNet.Attention.Persistence</c>)
/// is the one folder allowed to: these tests scan the IL and signatures of Core, Estimators, Modules, Transforms and Onnx
/// (<see cref="InteropScanner"/>) and fail if code elsewhere touches a non-public ML.NET type or member, or uses
/// reflection to reach members (which would hide internals access from the first check).
/// </summary>
[TestClass]
public sealed class InternalsIsolationTests
{
    private static readonly Assembly[] s_sourceAssemblies =
    {
        typeof(TorchScalars).Assembly,                                  // MLNet.Attention.Modules
        typeof(TorchTransformerBase).Assembly,                          // MLNet.Attention.Core
        typeof(MLNet.Attention.ForecastingCatalogExtensions).Assembly,  // MLNet.Attention (estimators)
        typeof(MLNet.Attention.TransformsCatalogExtensions).Assembly,   // MLNet.Attention.Transforms
        typeof(MLNet.Attention.OnnxExportExtensions).Assembly,          // MLNet.Attention.Onnx
    };

    private static readonly string s_moveHint =
        $"move such code into {InteropScanner.Folder} (namespace MLNet.Attention.Interop; MLNet.Attention.Persistence " +
        "is the persistence part of it): that folder compiles against publicized ML.NET references and uses internals " +
        "directly, typed and checked by the compiler.";

    [TestMethod]
    public void OnlyInteropUsesMLNetInternals()
    {
        var violations = s_sourceAssemblies.SelectMany(a => InteropScanner.Scan(a).Internals).ToList();
        Assert.AreEqual(0, violations.Count,
            $"Non-public ML.NET API used outside {InteropScanner.Folder}: {s_moveHint} Otherwise use public API:\n" +
            string.Join("\n", violations));
    }

    [TestMethod]
    public void OnlyInteropUsesReflectionToReachMembers()
    {
        var violations = s_sourceAssemblies.SelectMany(a => InteropScanner.Scan(a).Reflection).ToList();
        Assert.AreEqual(0, violations.Count,
            $"Reflection that looks members up, lists them or invokes them is used outside {InteropScanner.Folder}. " +
            $"To reach ML.NET internals, {s_moveHint} For our own or public types use typed code (generics, " +
            "interfaces, delegates). Still allowed everywhere: typeof, GetType(), generic type definitions, " +
            "MakeGenericType, GetInterfaces, Activator.CreateInstance of public constructors, stack walks:\n" +
            string.Join("\n", violations));
    }

    [TestMethod]
    public void InteropNamespacesAreDeclaredOnlyInTheInteropFolder()
    {
        string root = RepositoryRoot();
        string folder = Path.Combine(root, InteropScanner.Folder);
        Assert.IsTrue(Directory.Exists(folder), $"{folder} exists");
        var namespaceDeclaration = new Regex(@"^\s*namespace\s+([\w.]+)", RegexOptions.Multiline);
        var violations = new List<string>();
        int interopFiles = 0;
        foreach (string file in Directory.EnumerateFiles(Path.Combine(root, "src"), "*.cs", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(root, file).Replace('\\', '/');
            if (relative.Split('/').Any(part => part is "obj" or "bin"))
                continue;
            bool inFolder = relative.StartsWith(InteropScanner.Folder + "/", StringComparison.Ordinal);
            interopFiles += inFolder ? 1 : 0;
            foreach (Match m in namespaceDeclaration.Matches(File.ReadAllText(file)))
            {
                string ns = m.Groups[1].Value;
                bool interop = InteropScanner.IsInteropNamespace(ns);
                if (inFolder && !interop && !(ns == "System.Runtime.CompilerServices" && relative.EndsWith(
                        "/IgnoresAccessChecksToAttribute.cs", StringComparison.Ordinal)))
                    violations.Add($"{relative}: namespace {ns} inside {InteropScanner.Folder} (use an interop one)");
                if (!inFolder && interop)
                    violations.Add($"{relative}: namespace {ns} outside {InteropScanner.Folder} (move the file there)");
            }
        }
        Assert.IsTrue(interopFiles >= 3, $"found the sources of {InteropScanner.Folder} ({interopFiles} files)");
        Assert.AreEqual(0, violations.Count,
            $"The IL checks exempt the namespaces {string.Join(", ", InteropScanner.Namespaces)}; they must match the " +
            $"folder {InteropScanner.Folder} exactly:\n" + string.Join("\n", violations));
    }

    [TestMethod]
    public void ScannerSeesTheInternalsAndReflectionThatInteropUses()
    {
        // What keeps the checks above green for src/Core/Interop is the exemption, not blindness: scanned without it,
        // HostSettings' direct use of internals and the persistence loader's reflection are reported.
        var hostSettings = new InteropScanner.Findings();
        InteropScanner.ScanType(typeof(HostSettings), hostSettings);
        string internals = string.Join("\n", hostSettings.Internals);
        StringAssert.Contains(internals, "IInternalCatalog");
        StringAssert.Contains(internals, "IHostEnvironmentInternal");
        StringAssert.Contains(internals, "SchemaShape+Column..ctor");
        Assert.AreEqual(0, hostSettings.Reflection.Count, string.Join("\n", hostSettings.Reflection));

        var core = InteropScanner.Scan(typeof(TorchTransformerBase).Assembly, exemptInterop: false);
        Assert.IsTrue(core.Reflection.Any(v => v.StartsWith("MLNet.Attention.Persistence.", StringComparison.Ordinal)),
            string.Join("\n", core.Reflection));
        Assert.IsTrue(core.Internals.Any(v => v.StartsWith("MLNet.Attention.Persistence.", StringComparison.Ordinal)),
            string.Join("\n", core.Internals));
    }

    [TestMethod]
    [DataRow(nameof(ReflectionSamples.PropertyByName), "System.Type.GetProperty")]
    [DataRow(nameof(ReflectionSamples.PropertyByName), "System.Reflection.PropertyInfo.GetValue")]
    [DataRow(nameof(ReflectionSamples.NonPublicConstructor), "System.Type.GetConstructors")]
    [DataRow(nameof(ReflectionSamples.NonPublicConstructor), "System.Reflection.ConstructorInfo.Invoke")]
    [DataRow(nameof(ReflectionSamples.FieldByName), "System.Type.GetField")]
    [DataRow(nameof(ReflectionSamples.FieldByName), "System.Reflection.FieldInfo.SetValue")]
    [DataRow(nameof(ReflectionSamples.MethodByName), "System.Type.GetMethod")]
    [DataRow(nameof(ReflectionSamples.MethodByName), "System.Reflection.MethodBase.Invoke")]
    [DataRow(nameof(ReflectionSamples.MemberByName), "System.Type.InvokeMember")]
    [DataRow(nameof(ReflectionSamples.NestedTypeByName), "System.Type.GetNestedType")]
    [DataRow(nameof(ReflectionSamples.TypeByName), "System.Type.GetType")]
    [DataRow(nameof(ReflectionSamples.AssemblyTypeByName), "System.Reflection.Assembly.GetType")]
    [DataRow(nameof(ReflectionSamples.NonPublicActivator), "System.Activator.CreateInstance (non-public")]
    [DataRow(nameof(ReflectionSamples.DelegateByName), "System.Delegate.CreateDelegate")]
    [DataRow(nameof(ReflectionSamples.RuntimeProperty), "RuntimeReflectionExtensions.GetRuntimeProperty")]
    [DataRow(nameof(ReflectionSamples.ExpressionByName), "System.Linq.Expressions.Expression.Property")]
    [DataRow(nameof(ReflectionSamples.CallSecret), "[UnsafeAccessor]")]
    public void ScannerReportsReflectionThatReachesMembers(string sample, string expected)
    {
        var findings = ScanSample(sample);
        Assert.IsTrue(findings.Reflection.Any(v => v.Contains(expected, StringComparison.Ordinal)),
            $"{sample}: expected a finding with '{expected}', got:\n" + string.Join("\n", findings.Reflection));
    }

    [TestMethod]
    [DataRow(nameof(ReflectionSamples.StackWalk))]
    [DataRow(nameof(ReflectionSamples.TypeInspection))]
    [DataRow(nameof(ReflectionSamples.PublicActivator))]
    public void ScannerAllowsReflectionThatReachesNoMember(string sample)
    {
        var findings = ScanSample(sample);
        Assert.AreEqual(0, findings.Reflection.Count + findings.Internals.Count,
            string.Join("\n", findings.Reflection.Concat(findings.Internals)));
    }

    private static InteropScanner.Findings ScanSample(string name)
    {
        var method = typeof(ReflectionSamples).GetMethod(name, BindingFlags.Static | BindingFlags.NonPublic);
        Assert.IsNotNull(method, name);
        var findings = new InteropScanner.Findings();
        InteropScanner.ScanMethod(method, name, findings);
        return findings;
    }

    private static string RepositoryRoot([CallerFilePath] string thisFile = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(thisFile)!, "..", "..", ".."));

    /// <summary>Code the scanner must report (first group) or accept (last group); never called.</summary>
    internal static class ReflectionSamples
    {
        private const BindingFlags Hidden = BindingFlags.Instance | BindingFlags.NonPublic;

        internal sealed class Target
        {
            private int _field;

            private Target() => _field = 1;

            public Target(int value) => _field = value;

            private int Property => _field;

            private int Secret() => _field;

            private sealed class Nested;
        }

        internal static object? PropertyByName(Target t) => typeof(Target).GetProperty("Property", Hidden)!.GetValue(t);

        internal static object NonPublicConstructor() =>
            typeof(Target).GetConstructors(Hidden).Single(c => c.GetParameters().Length == 0).Invoke(null);

        internal static void FieldByName(Target t) => typeof(Target).GetField("_field", Hidden)!.SetValue(t, 2);

        internal static object? MethodByName(Target t) => typeof(Target).GetMethod("Secret", Hidden)!.Invoke(t, null);

        internal static object? MemberByName(Target t) =>
            typeof(Target).InvokeMember("Secret", Hidden | BindingFlags.InvokeMethod, null, t, null);

        internal static Type? NestedTypeByName() => typeof(Target).GetNestedType("Nested", BindingFlags.NonPublic);

        internal static Type? TypeByName() => Type.GetType("Microsoft.ML.IInternalCatalog, Microsoft.ML.Data");

        internal static Type? AssemblyTypeByName() =>
            typeof(Microsoft.ML.MLContext).Assembly.GetType("Microsoft.ML.Runtime.IHostEnvironmentInternal");

        internal static object? NonPublicActivator() => Activator.CreateInstance(typeof(Target), nonPublic: true);

        internal static Delegate DelegateByName(Target t) => Delegate.CreateDelegate(typeof(Func<int>), t, "Secret");

        internal static PropertyInfo? RuntimeProperty() => typeof(Target).GetRuntimeProperty("Property");

        internal static Expression ExpressionByName() =>
            Expression.Property(Expression.Parameter(typeof(Target)), "Property");

        [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "Secret")]
        internal static extern int CallSecret(Target target);

        // Allowed: the stack walk of PredictionEngineGuard, type inspection, public constructors.

        internal static bool StackWalk()
        {
            foreach (var frame in new StackTrace(skipFrames: 1, fNeedFileInfo: false).GetFrames())
            {
                var method = frame.GetMethod();
                if (method?.Name == nameof(IDisposable.Dispose) && method.DeclaringType is { IsGenericType: true } t &&
                    t.GetGenericTypeDefinition() == typeof(Microsoft.ML.PredictionEngineBase<,>))
                    return true;
            }
            return false;
        }

        internal static bool TypeInspection(object value)
        {
            var type = value.GetType();
            var list = typeof(List<>).MakeGenericType(type);
            return list.GetInterfaces().Length > 0 && type.GetType() != typeof(Target) && list.BaseType is not null &&
                   typeof(IEnumerable<>).IsAssignableFrom(list.GetGenericTypeDefinition());
        }

        internal static object PublicActivator() => Activator.CreateInstance(typeof(Target), 3)!;
    }
}
