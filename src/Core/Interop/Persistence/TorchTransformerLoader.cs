// THE PERSISTENCE FILE THAT USES ML.NET INTERNALS (like all of src/Core/Interop, see its README: compiled against
// publicized references, run with IgnoresAccessChecksTo). Internal members used: LoadableClassAttributeBase,
// SignatureLoadModel, ModelLoadContext (CheckAtModel, Header.ModelSignature/CbModel, Reader, Directory),
// ModelSaveContext (CheckAtModel, SetVersionInfo, Writer), VersionInfo. They have been stable since ML.NET 1.0; the
// round-trip tests pin them for Microsoft.ML 5.0.1.

using System.Globalization;
using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Attention.Persistence;

[assembly: TorchTransformerLoader.LoadableClassCalledDirectly]

namespace MLNet.Attention.Persistence;

/// <summary>
/// The single ML.NET loadable class behind every <see cref="ITorchPersistable"/> transformer. ML.NET finds it through
/// the loader signature and the loader assembly name stored in each model header, registers this assembly on first
/// use, and calls <see cref="Create"/>, which dispatches to the saved type's static <c>Load</c>.
/// </summary>
internal static class TorchTransformerLoader
{
    /// <summary>Loader signature in the ML.NET model header (at most 24 ASCII characters).</summary>
    internal const string LoaderSignature = "MLNetAttentionTorchXf";

    /// <summary>ML.NET model signature (exactly 8 ASCII characters).</summary>
    private const string ModelSignature = "MLNATTNT";

    // The ML.NET-level header version never changes: all versioning happens in PayloadFormat, whose errors explain
    // themselves (ML.NET's own version errors name ML.NET, not MLNet.Attention).
    private const uint HeaderVersion = 0x00010001;

    private static VersionInfo GetVersionInfo() => new VersionInfo(
        modelSignature: ModelSignature,
        verWrittenCur: HeaderVersion,
        verReadableCur: HeaderVersion,
        verWeCanReadBack: HeaderVersion,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(TorchTransformerLoader).Assembly.FullName);

    internal static void Write(ModelSaveContext ctx, string typeName, byte[] payload)
    {
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        PayloadFormat.Write(ctx.Writer, typeName, payload);
    }

    // Called by ComponentCatalog through DirectCreateMethod (below): static, named Create, (IHostEnvironment,
    // ModelLoadContext), returning exactly the loadable class's instance type (ITransformer).
    private static ITransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(ctx);
        string where = $"Model entry '{(string.IsNullOrEmpty(ctx.Directory) ? "(root)" : ctx.Directory)}'";
        ctx.CheckAtModel();
        ulong expected = BitConverter.ToUInt64(System.Text.Encoding.ASCII.GetBytes(ModelSignature));
        if (ctx.Header.ModelSignature != expected)
            throw new InvalidDataException(
                $"{where} names the MLNet.Attention loader but has model signature " +
                $"'{AsciiOrHex(ctx.Header.ModelSignature)}'; expected '{ModelSignature}'. The entry was not written by " +
                "MLNet.Attention or is corrupted; re-save the model with MLNet.Attention.");
        return PayloadFormat.Read(env, ctx.Reader, ctx.Header.CbModel, where);
    }

    private static string AsciiOrHex(ulong value)
    {
        var bytes = BitConverter.GetBytes(value);
        return bytes.All(b => b is >= 0x20 and < 0x7F) ? System.Text.Encoding.ASCII.GetString(bytes) : "0x" + value.ToString("X16");
    }

    // Why not [LoadableClass(typeof(ITransformer), typeof(TorchTransformerLoader), ...)]: ComponentCatalog would find
    // Create as a RuntimeMethodInfo and call it with MethodInfo.Invoke (LoadableClassInfo.CreateInstanceCore), so every
    // InvalidDataException of ours would reach the user as the InnerException of a TargetInvocationException
    // ("Exception has been thrown by the target of an invocation"), which CreateInstanceCore rethrows unchanged.
    // ComponentCatalog takes the loader type from the attribute and looks Create up with Type.GetMethod, so this
    // attribute registers the same loadable class (same names, signature, instance type) with a loader type whose
    // Create is a MethodInfo whose Invoke calls Create directly: our exceptions then propagate as themselves.
    // Limit: ML.NET's own loaders still run through MethodInfo.Invoke. A transformer saved inside a TransformerChain
    // (what pipeline.Fit returns) is loaded from TransformerChain's constructor, which ML.NET invokes by reflection,
    // so there the user gets TargetInvocationException { InnerException = our exception }; no code of ours runs
    // between the throw and that wrapper, and its Message is fixed by the runtime.

    /// <summary>Registers <see cref="TorchTransformerLoader"/> like <c>[LoadableClass]</c>, but so that ML.NET calls
    /// <see cref="Create"/> without reflection (see the comment above).</summary>
    [AttributeUsage(AttributeTargets.Assembly, AllowMultiple = false)]
    internal sealed class LoadableClassCalledDirectlyAttribute : LoadableClassAttributeBase
    {
        public LoadableClassCalledDirectlyAttribute()
            : base("MLNet.Attention transformer", typeof(ITransformer), new DirectLoaderType(), null,
                new[] { typeof(SignatureLoadModel) }, "MLNet.Attention transformer", LoaderSignature)
        {
        }
    }

    /// <summary><see cref="TorchTransformerLoader"/> as seen by ComponentCatalog: its only method is
    /// <see cref="DirectCreateMethod"/>.</summary>
    private sealed class DirectLoaderType : TypeDelegator
    {
        private readonly DirectCreateMethod _create;

        public DirectLoaderType() : base(typeof(TorchTransformerLoader)) => _create = new DirectCreateMethod(this);

        protected override MethodInfo? GetMethodImpl(string name, BindingFlags bindingAttr, Binder? binder,
            CallingConventions callConvention, Type[]? types, ParameterModifier[]? modifiers) =>
            name == nameof(Create) && types is { Length: 2 } && types[0] == typeof(IHostEnvironment)
                && types[1] == typeof(ModelLoadContext) ? _create : null;

        protected override PropertyInfo? GetPropertyImpl(string name, BindingFlags bindingAttr, Binder? binder,
            Type? returnType, Type[]? types, ParameterModifier[]? modifiers) => null;

        protected override ConstructorInfo? GetConstructorImpl(BindingFlags bindingAttr, Binder? binder,
            CallingConventions callConvention, Type[] types, ParameterModifier[]? modifiers) => null;
    }

    /// <summary><see cref="Create"/>, invoked by a plain call instead of reflection.</summary>
    private sealed class DirectCreateMethod : MethodInfo
    {
        private static readonly MethodInfo Real = typeof(TorchTransformerLoader).GetMethod(nameof(Create),
            BindingFlags.NonPublic | BindingFlags.Static, new[] { typeof(IHostEnvironment), typeof(ModelLoadContext) })!;

        private readonly Type _owner;

        public DirectCreateMethod(Type owner) => _owner = owner;

        public override object? Invoke(object? obj, BindingFlags invokeAttr, Binder? binder, object?[]? parameters,
            CultureInfo? culture)
        {
            if (parameters is not { Length: 2 } || parameters[0] is not IHostEnvironment env
                || parameters[1] is not ModelLoadContext ctx)
                throw new ArgumentException(
                    $"{nameof(TorchTransformerLoader)}.{nameof(Create)} takes (IHostEnvironment, ModelLoadContext).",
                    nameof(parameters));
            return Create(env, ctx);
        }

        public override string Name => Real.Name;
        public override Type? DeclaringType => _owner;
        public override Type? ReflectedType => _owner;
        public override Type ReturnType => Real.ReturnType;
        public override MethodAttributes Attributes => Real.Attributes;
        public override RuntimeMethodHandle MethodHandle => Real.MethodHandle;
        public override ICustomAttributeProvider ReturnTypeCustomAttributes => Real.ReturnTypeCustomAttributes;
        public override MethodInfo GetBaseDefinition() => this;
        public override ParameterInfo[] GetParameters() => Real.GetParameters();
        public override MethodImplAttributes GetMethodImplementationFlags() => Real.GetMethodImplementationFlags();
        public override object[] GetCustomAttributes(bool inherit) => Real.GetCustomAttributes(inherit);
        public override object[] GetCustomAttributes(Type attributeType, bool inherit) =>
            Real.GetCustomAttributes(attributeType, inherit);
        public override bool IsDefined(Type attributeType, bool inherit) => Real.IsDefined(attributeType, inherit);
    }
}
