// Publicizer: writes copies of .NET assemblies in which every type and member is public.
//
// Used at build time only (see src/Core/MLNet.Attention.Core.csproj, target MLNetAttentionPublicize): the copies are
// compile-time references; the real assemblies are used at run time, where the referencing assembly carries
// [IgnoresAccessChecksTo("...")] so the CLR skips its access checks against them.
//
// Rules (chosen so the C# compiler sees a consistent, compilable surface):
//  * top-level types become public, nested types NestedPublic;
//  * methods, constructors and fields become public (private, internal, protected, private protected and protected
//    internal alike), EXCEPT
//      - static constructors;
//      - explicit interface implementations (private methods with an .override clause): their names contain dots,
//        exposing them would only add noise;
//      - overrides whose override chain ends in an assembly that is not being publicized (e.g. protected override
//        Finalize / Dispose(bool) over a BCL base): the C# compiler demands that an override keeps the accessibility of
//        the member it overrides, and that base member keeps its accessibility;
//      - compiler-generated types and members (names starting with '<' or marked [CompilerGenerated]): unspeakable in
//        C#, publicizing them gains nothing;
//      - protected (and protected internal) virtual methods and their overrides: consumers subclass these types
//        (e.g. DataViewRowCursor.Dispose(bool)) and override them as protected, which a public base would forbid;
//      - fields that share their name with an event of the same type (field-like event backing fields): a public field
//        next to the event would make every use of the event name ambiguous (CS0229);
//  * overrides whose chain ends inside the publicized set become public together with the member they override, so
//    virtual/override accessibility stays consistent;
//  * the strong-name signature flag is cleared (the copy is not signed; compilers do not verify signatures), the
//    assembly identity (name, version, public key) is kept so references still bind.
//
// Usage: MLNet.Attention.Publicizer --out <directory> [--search <directory>]... <assembly.dll>...
// Each input is written to <directory>/<file name>. Inputs are publicized together so overrides across them
// (e.g. Microsoft.ML.Data over Microsoft.ML.Core) are resolved consistently. Output files are written atomically.

using Mono.Cecil;

namespace MLNet.Attention.Publicizer;

internal static class Program
{
    private static int Main(string[] args)
    {
        string? outDir = null;
        var searchDirs = new List<string>();
        var inputs = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--out" when i + 1 < args.Length: outDir = args[++i]; break;
                case "--search" when i + 1 < args.Length: searchDirs.Add(args[++i]); break;
                case "-h" or "--help": PrintUsage(); return 0;
                default:
                    if (args[i].StartsWith("--", StringComparison.Ordinal))
                    {
                        Console.Error.WriteLine($"Publicizer: unknown option '{args[i]}'.");
                        PrintUsage();
                        return 2;
                    }
                    inputs.Add(args[i]);
                    break;
            }
        }
        if (outDir is null || inputs.Count == 0)
        {
            PrintUsage();
            return 2;
        }

        try
        {
            var stats = Publicize(inputs, outDir, searchDirs);
            foreach (var s in stats)
                Console.WriteLine($"Publicizer: {s.Name}: {s.Types} types, {s.Methods} methods, {s.Fields} fields made public -> {s.Output}");
            return 0;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"Publicizer: error : {ex.GetType().Name}: {ex.Message}");
            return 1;
        }
    }

    private static void PrintUsage() =>
        Console.Error.WriteLine("Usage: MLNet.Attention.Publicizer --out <directory> [--search <directory>]... <assembly.dll>...");

    internal sealed record Stats(string Name, int Types, int Methods, int Fields, string Output);

    internal static List<Stats> Publicize(IReadOnlyList<string> inputs, string outDir, IReadOnlyList<string> searchDirs)
    {
        using var resolver = new DefaultAssemblyResolver();
        foreach (var dir in inputs.Select(p => Path.GetDirectoryName(Path.GetFullPath(p))!).Concat(searchDirs).Distinct())
            if (Directory.Exists(dir))
                resolver.AddSearchDirectory(dir);

        var readerParameters = new ReaderParameters
        {
            AssemblyResolver = resolver,
            InMemory = true,          // do not keep the input file open; it may be shared by parallel builds
            ReadSymbols = false,
            ReadingMode = ReadingMode.Immediate,
        };

        var assemblies = inputs.Select(p => AssemblyDefinition.ReadAssembly(p, readerParameters)).ToList();
        try
        {
            var publicized = new Publicizer(assemblies);
            Directory.CreateDirectory(outDir);
            var result = new List<Stats>();
            for (int i = 0; i < assemblies.Count; i++)
            {
                var asm = assemblies[i];
                var (types, methods, fields) = publicized.Process(asm);
                foreach (var module in asm.Modules)
                    module.Attributes &= ~ModuleAttributes.StrongNameSigned;

                string target = Path.Combine(outDir, Path.GetFileName(inputs[i]));
                string temp = target + "." + Environment.ProcessId + ".tmp";
                asm.Write(temp);
                File.Move(temp, target, overwrite: true);
                result.Add(new Stats(asm.Name.Name, types, methods, fields, target));
            }
            return result;
        }
        finally
        {
            foreach (var a in assemblies)
                a.Dispose();
        }
    }
}

internal sealed class Publicizer
{
    private readonly HashSet<string> _inputNames;
    private readonly Dictionary<string, TypeDefinition> _typesByFullName = new(StringComparer.Ordinal);
    private readonly Dictionary<MethodDefinition, bool> _rootIsInternalCache = new();

    public Publicizer(IEnumerable<AssemblyDefinition> assemblies)
    {
        var list = assemblies.ToList();
        _inputNames = new HashSet<string>(list.Select(a => a.Name.Name), StringComparer.OrdinalIgnoreCase);
        foreach (var asm in list)
            foreach (var module in asm.Modules)
                foreach (var type in AllTypes(module.Types))
                    _typesByFullName[Key(asm.Name.Name, type.FullName)] = type;
    }

    private static string Key(string assembly, string fullName) => assembly + "|" + fullName;

    private static IEnumerable<TypeDefinition> AllTypes(IEnumerable<TypeDefinition> types)
    {
        foreach (var t in types)
        {
            yield return t;
            foreach (var n in AllTypes(t.NestedTypes))
                yield return n;
        }
    }

    public (int Types, int Methods, int Fields) Process(AssemblyDefinition asm)
    {
        int types = 0, methods = 0, fields = 0;
        foreach (var module in asm.Modules)
        {
            foreach (var type in module.Types)
                Visit(type, ref types, ref methods, ref fields);
        }
        return (types, methods, fields);
    }

    private void Visit(TypeDefinition type, ref int types, ref int methods, ref int fields)
    {
        if (type.Name == "<Module>" || IsCompilerGenerated(type))
            return;

        if (type.IsNested)
        {
            if (!type.IsNestedPublic) { type.IsNestedPublic = true; types++; }
        }
        else if (!type.IsPublic)
        {
            type.IsPublic = true;
            types++;
        }

        var eventNames = new HashSet<string>(type.Events.Select(e => e.Name), StringComparer.Ordinal);

        foreach (var field in type.Fields)
        {
            if (field.IsPublic || IsCompilerGenerated(field) || eventNames.Contains(field.Name))
                continue;
            field.IsPublic = true;
            fields++;
        }

        foreach (var method in type.Methods)
        {
            if (method.IsPublic || !ShouldPublicize(method))
                continue;
            method.IsPublic = true;
            methods++;
        }

        foreach (var nested in type.NestedTypes)
            Visit(nested, ref types, ref methods, ref fields);
    }

    private bool ShouldPublicize(MethodDefinition method)
    {
        if (method.IsConstructor && method.IsStatic)
            return false;
        if (method.HasOverrides && method.IsPrivate)
            return false;                                   // explicit interface implementation
        if (IsCompilerGenerated(method))
            return false;
        if (method.IsVirtual && (method.IsFamily || method.IsFamilyOrAssembly))
            return false;                                   // protected virtual: consumers override it as protected
        if (method.IsVirtual && !method.IsNewSlot)
            return OverrideRootIsInInputs(method);           // an override: follow the member it overrides
        return true;
    }

    /// <summary>True when the virtual method at the root of <paramref name="method"/>'s override chain is declared
    /// in one of the publicized assemblies (so it becomes public too); false when the chain leaves the set or cannot
    /// be followed (then the accessibility is left alone, which is always safe).</summary>
    private bool OverrideRootIsInInputs(MethodDefinition method)
    {
        if (_rootIsInternalCache.TryGetValue(method, out bool cached))
            return cached;
        bool result = false;
        var baseRef = method.DeclaringType.BaseType;
        while (baseRef != null)
        {
            var baseDef = FindInputType(baseRef);
            if (baseDef == null)
                break;                                       // left the publicized set
            var candidate = FindMatchingVirtual(baseDef, method);
            if (candidate != null)
            {
                result = candidate.IsNewSlot || !candidate.IsVirtual ? true : OverrideRootIsInInputs(candidate);
                break;
            }
            baseRef = baseDef.BaseType;
        }
        _rootIsInternalCache[method] = result;
        return result;
    }

    private TypeDefinition? FindInputType(TypeReference reference)
    {
        var element = reference is GenericInstanceType git ? git.ElementType : reference;
        string? assembly = element.Scope switch
        {
            AssemblyNameReference anr => anr.Name,
            ModuleDefinition md => md.Assembly.Name.Name,
            _ => null,
        };
        if (assembly == null || !_inputNames.Contains(assembly))
            return null;
        return _typesByFullName.TryGetValue(Key(assembly, element.FullName), out var def) ? def : null;
    }

    private static MethodDefinition? FindMatchingVirtual(TypeDefinition type, MethodDefinition method)
    {
        MethodDefinition? loose = null;
        int looseCount = 0;
        foreach (var m in type.Methods)
        {
            if (!m.IsVirtual || m.Name != method.Name || m.Parameters.Count != method.Parameters.Count
                || m.GenericParameters.Count != method.GenericParameters.Count)
                continue;
            bool exact = true;
            for (int i = 0; i < m.Parameters.Count && exact; i++)
            {
                var a = m.Parameters[i].ParameterType;
                var b = method.Parameters[i].ParameterType;
                if (ContainsGenericParameter(a) || ContainsGenericParameter(b))
                    continue;                                // cannot compare without substitution; accept
                exact = a.FullName == b.FullName;
            }
            if (exact)
            {
                loose = m;
                looseCount++;
            }
        }
        return looseCount >= 1 ? loose : null;
    }

    private static bool ContainsGenericParameter(TypeReference t) => t switch
    {
        GenericParameter => true,
        GenericInstanceType git => git.GenericArguments.Any(ContainsGenericParameter),
        TypeSpecification spec => ContainsGenericParameter(spec.ElementType),
        _ => false,
    };

    private static bool IsCompilerGenerated(IMemberDefinition member) =>
        member.Name.StartsWith('<')
        || member.CustomAttributes.Any(a => a.AttributeType.FullName == "System.Runtime.CompilerServices.CompilerGeneratedAttribute");
}
