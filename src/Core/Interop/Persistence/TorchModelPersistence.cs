using System.Reflection;
using System.Text;
using Microsoft.ML;
using TorchSharp;

namespace MLNet.Attention.Persistence;

/// <summary>
/// Saves MLNet.Attention transformers into the ML.NET model zip so that <c>mlContext.Model.Load</c> restores them in
/// any process without a registration call, and helpers to write TorchSharp weights inside that payload.
/// </summary>
/// <remarks>
/// <para>Each saved transformer becomes one model entry (for example <c>TransformerChain/Transform_001/Model.key</c>).
/// Its ML.NET header names the loader <see cref="LoaderSignature"/> and the loader assembly <c>MLNet.Attention.Core</c>,
/// which ML.NET loads and registers automatically. The entry's model block is:</para>
/// <code>
/// magic "MLNATTN" 0x1A (8 bytes)
/// int32  format version written              (currently <see cref="CurrentFormatVersion"/>)
/// int32  minimum format version able to read it
/// string type name "Namespace.Type, AssemblySimpleName" (BinaryWriter string)
/// int64  payload length in bytes
/// 32     SHA-256 of the payload
/// bytes  payload: what the transformer's save callback wrote
/// </code>
/// <para>Loading checks every field, resolves the type, requires it to implement <see cref="ITorchPersistable"/>,
/// verifies the checksum and calls the type's <c>public static T Load(IHostEnvironment env, BinaryReader reader)</c>
/// on the payload, which must be consumed exactly. Every failure is an <see cref="InvalidDataException"/> naming what
/// was found, what was expected and how to fix it, and <c>mlContext.Model.Load</c> throws it as itself for a transformer
/// saved on its own. For one saved inside a <c>TransformerChain</c> (what <c>pipeline.Fit</c> returns) it is the
/// <see cref="Exception.InnerException"/> of a <see cref="TargetInvocationException"/>: ML.NET calls its own chain
/// loader by reflection, and nothing of ours runs between the throw and that wrapper.</para>
/// </remarks>
public static class TorchModelPersistence
{
    /// <summary>The ML.NET loader signature written in the model header of every MLNet.Attention transformer.</summary>
    public const string LoaderSignature = TorchTransformerLoader.LoaderSignature;

    /// <summary>The payload format version this build writes and the newest it can read.</summary>
    public static int CurrentFormatVersion => PayloadFormat.CurrentVersion;

    /// <summary>
    /// Writes <paramref name="transformer"/> into <paramref name="ctx"/>. Call it from the transformer's
    /// <see cref="ICanSaveModel.Save(ModelSaveContext)"/>; <paramref name="writePayload"/> writes the transformer's own
    /// bytes (hyper-parameters first, then weights, e.g. with <see cref="WriteModule"/>).
    /// </summary>
    /// <param name="ctx">The context ML.NET passes to <see cref="ICanSaveModel.Save(ModelSaveContext)"/>.</param>
    /// <param name="transformer">The transformer being saved; its runtime type is what the loader instantiates.</param>
    /// <param name="writePayload">Writes the payload. The writer must not be closed or disposed.</param>
    /// <exception cref="InvalidOperationException">The runtime type of <paramref name="transformer"/> does not
    /// satisfy the <see cref="ITorchPersistable"/> contract (generic type, or no static <c>Load</c> method).</exception>
    public static void Save(ModelSaveContext ctx, ITorchPersistable transformer, Action<BinaryWriter> writePayload)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ArgumentNullException.ThrowIfNull(transformer);
        ArgumentNullException.ThrowIfNull(writePayload);

        var type = transformer.GetType();
        string typeName = PersistedType.GetName(type);
        PersistedType.FindLoadMethod(type, out string? problem);
        if (problem != null)
            throw new InvalidOperationException(problem);

        byte[] payload;
        using (var stream = new MemoryStream())
        {
            using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            {
                writePayload(writer);
                writer.Flush();
            }
            payload = stream.ToArray();
        }
        TorchTransformerLoader.Write(ctx, typeName, payload);
    }

    /// <summary>
    /// Writes the parameters and buffers of <paramref name="module"/> to <paramref name="writer"/>, length-prefixed,
    /// through TorchSharp's <c>Module.save(BinaryWriter)</c> overload (the <c>Stream</c> overloads close the stream).
    /// Read it back with <see cref="ReadModule"/> into a module of the same architecture.
    /// </summary>
    public static void WriteModule(BinaryWriter writer, torch.nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(module);
        using var buffer = new MemoryStream();
        using (var inner = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            module.save(inner);
            inner.Flush();
        }
        writer.Write(buffer.Length);
        buffer.Position = 0;
        buffer.CopyTo(writer.BaseStream);
    }

    /// <summary>
    /// Loads weights written by <see cref="WriteModule"/> into <paramref name="module"/> (strict: every parameter and
    /// buffer must match in name and shape). Throws <see cref="InvalidDataException"/> if the block is truncated, if
    /// the weights do not fit the module, or if the module does not consume the block exactly.
    /// </summary>
    public static void ReadModule(BinaryReader reader, torch.nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(module);
        long length = reader.ReadInt64();
        if (length < 0 || length > Array.MaxLength)
            throw new InvalidDataException(
                $"The weights block of {module.GetType().Name} has an invalid length {length}; expected 0..{Array.MaxLength} bytes. " +
                "The model file is corrupted; re-save or re-download it.");
        byte[] bytes = reader.ReadBytes((int)length);
        if (bytes.Length != length)
            throw new InvalidDataException(
                $"The weights block of {module.GetType().Name} is truncated: found {bytes.Length} bytes, expected {length}. " +
                "The model file is corrupted; re-save or re-download it.");
        using var stream = new MemoryStream(bytes, writable: false);
        using var inner = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        try
        {
            module.load(inner, strict: true);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new InvalidDataException(
                $"The saved weights do not fit {module.GetType().Name}: {ex.Message} " +
                "The hyper-parameters saved with the model must rebuild the same architecture; the model file may be corrupted " +
                "or saved by an incompatible version of the transformer's assembly.", ex);
        }
        if (stream.Position != stream.Length)
            throw new InvalidDataException(
                $"The weights block of {module.GetType().Name} has {stream.Length - stream.Position} unread bytes after loading " +
                $"{stream.Position} of {stream.Length}; expected the module to consume it exactly. The module's architecture " +
                "differs from the one that was saved.");
    }
}
