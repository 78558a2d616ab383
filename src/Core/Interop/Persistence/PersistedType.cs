using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace MLNet.Attention.Persistence;

/// <summary>Maps transformer types to the version-less names stored in model files and back, refusing anything that
/// is not an <see cref="ITorchPersistable"/> with a static <c>Load(IHostEnvironment, BinaryReader)</c>.</summary>
internal static class PersistedType
{
    internal const string LoadMethodName = "Load";

    /// <summary>"Namespace.Type+Nested, AssemblySimpleName" (no version, culture or public key token).</summary>
    internal static string GetName(Type type)
    {
        if (type.IsGenericType || type.ContainsGenericParameters || type.FullName is null)
            throw new InvalidOperationException(
                $"Type '{type}' cannot be saved by MLNet.Attention: generic transformer types are not supported. " +
                "Save a non-generic subclass instead.");
        return type.FullName + ", " + type.Assembly.GetName().Name;
    }

    /// <summary>Finds <c>public static T Load(IHostEnvironment, BinaryReader)</c> declared on <paramref name="type"/>.
    /// Returns null and a message explaining the fix when the type does not satisfy the contract.</summary>
    internal static MethodInfo? FindLoadMethod(Type type, out string? problem)
    {
        problem = null;
        if (!typeof(ITorchPersistable).IsAssignableFrom(type))
        {
            problem = $"Type '{type.FullName}' does not implement {nameof(ITorchPersistable)}.";
            return null;
        }
        if (type.IsAbstract || type.IsInterface)
        {
            problem = $"Type '{type.FullName}' is abstract; only concrete transformer types can be saved and loaded.";
            return null;
        }
        var method = type.GetMethod(LoadMethodName, BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly,
            binder: null, new[] { typeof(IHostEnvironment), typeof(BinaryReader) }, modifiers: null);
        if (method is null || !type.IsAssignableFrom(method.ReturnType))
        {
            problem = $"Type '{type.FullName}' has no loader: declare 'public static {type.Name} {LoadMethodName}(IHostEnvironment env, " +
                      $"BinaryReader reader)' on it, reading back what its save callback writes (see {nameof(ITorchPersistable)}).";
            return null;
        }
        return method;
    }

    /// <summary>Resolves a stored type name. Only names of the form written by <see cref="GetName"/> are accepted, the
    /// assembly must be MLNet.Attention.Core or reference it, and the type must satisfy the loader contract.</summary>
    internal static MethodInfo Resolve(string storedName, string where)
    {
        const string fix = "Reference the assembly that defines the transformer from the loading application (and make " +
                           "sure it is the MLNet.Attention version the model was saved with), or re-save the model.";
        int comma = storedName.IndexOf(',');
        string typeName = comma < 0 ? "" : storedName[..comma].Trim();
        string assemblyName = comma < 0 ? "" : storedName[(comma + 1)..].Trim();
        if (typeName.Length == 0 || assemblyName.Length == 0 || !IsPlainName(typeName) || !IsPlainName(assemblyName))
            throw new InvalidDataException(
                $"{where}: the stored transformer type name '{Shorten(storedName)}' is malformed; expected " +
                "'Namespace.Type, AssemblyName'. The model file is corrupted or was not written by MLNet.Attention.");

        Assembly assembly;
        try
        {
            assembly = AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => a.GetName().Name == assemblyName)
                       ?? Assembly.Load(new AssemblyName(assemblyName));
        }
        catch (Exception ex) when (ex is FileNotFoundException or FileLoadException or BadImageFormatException)
        {
            throw new InvalidDataException(
                $"{where}: the model needs transformer type '{typeName}' from assembly '{assemblyName}', which could not be " +
                $"loaded ({ex.GetType().Name}: {ex.Message}). {fix}", ex);
        }

        string coreName = typeof(PersistedType).Assembly.GetName().Name!;
        if (assembly.GetName().Name != coreName && !assembly.GetReferencedAssemblies().Any(r => r.Name == coreName))
            throw new InvalidDataException(
                $"{where}: the stored transformer type '{typeName}' lives in assembly '{assemblyName}', which does not " +
                $"reference {coreName}; expected an {nameof(ITorchPersistable)} transformer. Refusing to instantiate it: " +
                "model files are untrusted input. The model file was not written by MLNet.Attention or was tampered with.");

        var type = assembly.GetType(typeName, throwOnError: false, ignoreCase: false);
        if (type is null)
            throw new InvalidDataException(
                $"{where}: transformer type '{typeName}' was not found in assembly '{assembly.GetName().Name}, " +
                $"Version={assembly.GetName().Version}'. {fix}");

        var method = FindLoadMethod(type, out string? problem);
        if (method is null)
            throw new InvalidDataException(
                $"{where}: refusing to load type '{type.FullName}': {problem} Expected an {nameof(ITorchPersistable)} " +
                "transformer with a static Load method; model files are untrusted input, so nothing else is instantiated. " +
                "The model file was not written by MLNet.Attention, was tampered with, or the type changed since it was saved.");
        return method;
    }

    private static bool IsPlainName(string name)
    {
        foreach (char c in name)
        {
            // Letters, digits, '_', '.', '+', '`' and '-' only: no generic arguments, no assembly attributes, no paths.
            if (!(char.IsLetterOrDigit(c) || c is '_' or '.' or '+' or '`' or '-'))
                return false;
        }
        return true;
    }

    internal static string Shorten(string s) => s.Length <= 200 ? s : s[..200] + "…";
}
