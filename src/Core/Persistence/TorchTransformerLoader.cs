// THE ONLY FILE THAT USES ML.NET INTERNALS (Route B: compiled against publicized references, run with
// IgnoresAccessChecksTo). Internal members used: LoadableClassAttribute, SignatureLoadModel, ModelLoadContext
// (CheckAtModel, Header.ModelSignature/CbModel, Reader, Directory), ModelSaveContext (CheckAtModel, SetVersionInfo,
// Writer), VersionInfo. They have been stable since ML.NET 1.0; the round-trip tests pin them for Microsoft.ML 5.0.1.

using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Attention.Persistence;

[assembly: LoadableClass(typeof(ITransformer), typeof(TorchTransformerLoader), null, typeof(SignatureLoadModel),
    "MLNet.Attention transformer", TorchTransformerLoader.LoaderSignature)]

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

    // Found by ComponentCatalog through reflection: static, named Create, (IHostEnvironment, ModelLoadContext),
    // returning exactly the LoadableClass instance type (ITransformer).
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
}
