using System.Reflection;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace MLNet.Attention.Persistence;

/// <summary>The versioned model block written by <see cref="TorchModelPersistence.Save"/> (layout documented there).
/// Uses public API only; the ML.NET plumbing around it lives in <see cref="TorchTransformerLoader"/>.</summary>
internal static class PayloadFormat
{
    /// <summary>"MLNATTN" followed by 0x1A.</summary>
    internal static ReadOnlySpan<byte> Magic => "MLNATTN\u001A"u8;

    /// <summary>Version written by this build and the newest version it reads. Bump it when the block layout changes;
    /// bump <see cref="MinReaderVersion"/> too only if older builds could not read the new layout.</summary>
    // 2: the block layout is unchanged, but payloads inside it changed (iTransformer payload version 2 with generic
    // config records); MinReaderVersion 2 makes a 0.1.0 build say "saved by a newer MLNet.Attention, upgrade" instead of
    // misreading the new payload as a corrupted one. Version-1 blocks still load.
    internal const int CurrentVersion = 2;

    /// <summary>The oldest reader version able to read what this build writes.</summary>
    internal const int MinReaderVersion = 2;

    private const int HashSize = 32;

    internal static void Write(BinaryWriter writer, string typeName, byte[] payload)
    {
        writer.Write(Magic);
        writer.Write(CurrentVersion);
        writer.Write(MinReaderVersion);
        writer.Write(typeName);
        writer.Write((long)payload.Length);
        writer.Write(SHA256.HashData(payload));
        writer.Write(payload);
    }

    /// <summary>Reads one model block of <paramref name="blockLength"/> bytes and returns the loaded transformer.</summary>
    /// <param name="env">Passed to the transformer's Load.</param>
    /// <param name="reader">Positioned at the start of the block; left at its end on success.</param>
    /// <param name="blockLength">Size of the block (ML.NET's model size), or -1 if unknown.</param>
    /// <param name="where">Human-readable location used in messages, e.g. "Model entry 'TransformerChain'".</param>
    internal static ITorchPersistable Read(IHostEnvironment env, BinaryReader reader, long blockLength, string where)
    {
        const string corrupted = "The model file is corrupted (for example truncated or modified); re-save or re-download it.";
        try
        {
            var magic = reader.ReadBytes(Magic.Length);
            if (!magic.AsSpan().SequenceEqual(Magic))
                throw new InvalidDataException(
                    $"{where} does not hold an MLNet.Attention payload: found leading bytes [{Convert.ToHexString(magic)}], " +
                    $"expected the magic [{Convert.ToHexString(Magic)}] (\"MLNATTN\\x1A\"). The entry was written by another " +
                    "component under the MLNet.Attention loader name, or it is corrupted; re-save the model with MLNet.Attention.");

            int written = reader.ReadInt32();
            int minReader = reader.ReadInt32();
            if (written < 1 || minReader < 1 || minReader > written)
                throw new InvalidDataException(
                    $"{where}: invalid payload format versions (written {written}, minimum reader {minReader}); expected " +
                    $"1 <= minimum reader <= written. {corrupted}");
            if (minReader > CurrentVersion)
                throw new InvalidDataException(
                    $"{where} was saved by a newer MLNet.Attention: payload format version {written} (needs a reader of " +
                    $"version {minReader} or later), but this build ({typeof(PayloadFormat).Assembly.GetName().Version}) reads " +
                    $"payload formats up to version {CurrentVersion}. Upgrade the MLNet.Attention packages to load this model.");

            string typeName = reader.ReadString();
            var load = PersistedType.Resolve(typeName, where);
            var type = load.DeclaringType!;

            long length = reader.ReadInt64();
            long headerBytes = Magic.Length + 4 + 4 + Encoding.UTF8.GetByteCount(typeName) + SevenBitLength(typeName) + 8 + HashSize;
            long available = blockLength < 0 ? long.MaxValue : blockLength - headerBytes;
            if (length < 0 || length > Array.MaxLength || length > available)
                throw new InvalidDataException(
                    $"{where}: payload length {length} for '{type.FullName}' is invalid; expected 0..{Math.Min(available, Array.MaxLength)} " +
                    $"bytes. {corrupted}");
            byte[] expectedHash = reader.ReadBytes(HashSize);
            byte[] payload = reader.ReadBytes((int)length);
            if (expectedHash.Length != HashSize || payload.Length != length)
                throw new InvalidDataException(
                    $"{where}: payload of '{type.FullName}' is truncated: found {payload.Length} bytes, expected {length}. {corrupted}");
            byte[] actualHash = SHA256.HashData(payload);
            if (!actualHash.AsSpan().SequenceEqual(expectedHash))
                throw new InvalidDataException(
                    $"{where}: checksum mismatch in the payload of '{type.FullName}': found SHA-256 " +
                    $"{Convert.ToHexString(actualHash)[..16]}…, expected {Convert.ToHexString(expectedHash)[..16]}…. {corrupted}");

            // The file is sound; a machine that cannot load libtorch gets TorchRuntimeException (the cause and its
            // fix) here, rather than a "model file may be corrupted" wrapper around whatever the Load method hit.
            Runtime.TorchRuntime.EnsureLoaded();
            return Invoke(env, load, type, payload, where);
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException(
                $"{where} ends before the MLNet.Attention payload header is complete ({ex.Message}). {corrupted}", ex);
        }
    }

    private static ITorchPersistable Invoke(IHostEnvironment env, MethodInfo load, Type type, byte[] payload, string where)
    {
        using var stream = new MemoryStream(payload, writable: false);
        using var payloadReader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        object? result;
        try
        {
            result = load.Invoke(null, BindingFlags.DoNotWrapExceptions, binder: null, new object[] { env, payloadReader }, culture: null);
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or OutOfMemoryException
                                       or Runtime.TorchRuntimeException)
        {
            ExceptionDispatchInfo.Capture(ex).Throw();
            throw;
        }
        catch (Exception ex)
        {
            throw new InvalidDataException(
                $"{where}: {type.FullName}.{PersistedType.LoadMethodName} failed on the saved payload ({length(payload)}): " +
                $"{ex.GetType().Name}: {ex.Message} The model file may be corrupted, or was saved by a version of " +
                $"'{type.Assembly.GetName().Name}' whose payload layout differs from the one loading it.", ex);
        }

        if (result is not ITorchPersistable transformer || !type.IsInstanceOfType(result))
            throw new InvalidDataException(
                $"{where}: {type.FullName}.{PersistedType.LoadMethodName} returned {(result is null ? "null" : result.GetType().FullName)}; " +
                $"expected an instance of {type.FullName}. Fix the Load method of that type.");
        if (stream.Position != stream.Length)
        {
            (result as IDisposable)?.Dispose();
            throw new InvalidDataException(
                $"{where}: {type.FullName}.{PersistedType.LoadMethodName} read {stream.Position} of {stream.Length} payload bytes; " +
                "expected it to read the payload exactly. Its Load does not match what its save callback writes, or the " +
                "model was saved by a different version of that type.");
        }
        return transformer;

        static string length(byte[] p) => p.Length + " bytes";
    }

    private static int SevenBitLength(string s)
    {
        uint value = (uint)Encoding.UTF8.GetByteCount(s);
        int n = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            n++;
        }
        return n;
    }
}
