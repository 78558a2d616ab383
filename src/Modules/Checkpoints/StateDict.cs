using System.Collections;
using System.IO.Compression;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Attention.Checkpoints;

/// <summary>
/// Named tensors read from a checkpoint, in the file's order (a PyTorch <c>state_dict</c>). Owns its tensors (CPU,
/// outside every dispose scope): dispose it when the weights have been copied into a module.
/// </summary>
public sealed class StateDict : IReadOnlyDictionary<string, Tensor>, IDisposable
{
    private readonly List<KeyValuePair<string, Tensor>> _items;
    private readonly Dictionary<string, Tensor> _byName;
    private bool _disposed;

    internal StateDict(string source, List<KeyValuePair<string, Tensor>> items)
    {
        Source = source;
        _items = items;
        _byName = items.ToDictionary(p => p.Key, p => p.Value);
    }

    /// <summary>Where the tensors came from (the file path, for messages).</summary>
    public string Source { get; }

    /// <summary>The tensor names, in file order.</summary>
    public IEnumerable<string> Keys => _items.Select(p => p.Key);

    /// <summary>The tensors, in file order.</summary>
    public IEnumerable<Tensor> Values => _items.Select(p => p.Value);

    /// <summary>Number of tensors.</summary>
    public int Count => _items.Count;

    /// <summary>The tensor named <paramref name="key"/>.</summary>
    public Tensor this[string key]
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _byName.TryGetValue(key, out var t) ? t
                : throw new KeyNotFoundException($"{Source} has no tensor '{key}'.");
        }
    }

    /// <inheritdoc/>
    public bool ContainsKey(string key) => _byName.ContainsKey(key);

    /// <inheritdoc/>
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out Tensor value) =>
        _byName.TryGetValue(key, out value);

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _items.GetEnumerator();
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Disposes every tensor.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var p in _items) p.Value.Dispose();
    }
}

/// <summary>
/// Reads PyTorch checkpoints written by <c>torch.save</c> (the zip format, the default since PyTorch 1.6) without
/// PyTorch and without running code from the file.
/// </summary>
/// <remarks>
/// <para>The archive holds <c>&lt;name&gt;/data.pkl</c> (a pickle whose tensors are
/// <c>torch._utils._rebuild_tensor_v2</c> calls on persistent storage ids), <c>&lt;name&gt;/data/&lt;key&gt;</c> (one raw
/// storage per key) and <c>&lt;name&gt;/byteorder</c>. The pickle is interpreted, never executed: only
/// <c>collections.OrderedDict</c>, the tensor and parameter rebuild functions and the storage types are understood; any
/// other class (a pickled <c>nn.Module</c>, <c>argparse.Namespace</c>) is kept as an inert record and rejected with its
/// name if it is where tensors are expected.</para>
/// <para>Accepted layouts, as timm's loader: a state dict itself, or a checkpoint dict holding it under
/// <c>state_dict</c> or <c>model</c> (or the key passed as <c>entry</c>); a <c>module.</c> prefix
/// (<c>nn.DataParallel</c>) is removed from every key. Tensors keep their element type (float32, float16 and
/// bfloat16 become float32; float64, int64, int32, int16, int8, uint8 and bool stay); non-contiguous and shared
/// storages are handled. Non-tensor entries of a state dict (such as <c>_extra_state</c>) are skipped.</para>
/// <para>The legacy format (<c>torch.save(..., _use_new_zipfile_serialization=False)</c>) is recognised and refused
/// with the fix: re-save it with a default <c>torch.save</c>.</para>
/// </remarks>
public static class StateDictFile
{
    /// <summary>Reads the state dict in <paramref name="path"/>.</summary>
    /// <param name="path">A <c>.pth</c> / <c>.pt</c> / <c>.bin</c> file written by <c>torch.save</c>.</param>
    /// <param name="entry">The key of the state dict inside a checkpoint dict; null: the file itself if it is a state
    /// dict, else its <c>state_dict</c> or <c>model</c> entry.</param>
    /// <exception cref="InvalidDataException">The file is not a zip-format PyTorch checkpoint, holds no state dict, or
    /// is damaged; the message says which and what to do.</exception>
    public static StateDict Read(string path, string? entry = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' was not found.", path);
        using var stream = File.OpenRead(path);
        return Read(stream, path, entry);
    }

    /// <summary>Reads a state dict from a seekable <paramref name="stream"/> holding a <c>torch.save</c> file.</summary>
    /// <param name="stream">The file's bytes (left open).</param>
    /// <param name="source">A name for messages (the file path).</param>
    /// <param name="entry">See <see cref="Read(string, string?)"/>.</param>
    public static StateDict Read(Stream stream, string source, string? entry = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(source);
        Runtime.TorchRuntime.EnsureLoaded();
        var head = new byte[4];
        int got = stream.Read(head, 0, 4);
        stream.Seek(-got, SeekOrigin.Current);
        if (got < 4 || head[0] != 'P' || head[1] != 'K')
        {
            if (got >= 2 && head[0] == 0x80 && head[1] <= 5)
                throw new InvalidDataException(
                    $"'{source}' is a PyTorch checkpoint in the legacy (pre-1.6, non-zip) format, which is not read here. " +
                    "Re-save it in the default zip format: torch.save(torch.load(path), new_path).");
            throw new InvalidDataException(
                $"'{source}' is not a PyTorch checkpoint: a file written by torch.save starts with a zip header ('PK'), " +
                $"found bytes [{Convert.ToHexString(head, 0, got)}]. Pass a .pth/.pt file written by torch.save(state_dict, path).");
        }

        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"'{source}' starts like a zip file but cannot be read as one ({ex.Message}); it " +
                                           "is damaged or truncated. Re-save or re-download it.", ex);
        }
        using (zip)
        {
            var pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) &&
                                                      e.FullName.Count(c => c == '/') == 1)
                ?? zip.Entries.FirstOrDefault(e => e.FullName == "data.pkl")
                ?? throw new InvalidDataException(
                    $"'{source}' is a zip file but not a PyTorch checkpoint: it has no '<name>/data.pkl' entry (entries: " +
                    $"{string.Join(", ", zip.Entries.Take(8).Select(e => e.FullName))}). Pass a file written by torch.save.");
            string prefix = pkl.FullName[..^"data.pkl".Length];
            bool bigEndian = false;
            var order = zip.GetEntry(prefix + "byteorder");
            if (order is not null)
            {
                using var r = new StreamReader(order.Open());
                string text = r.ReadToEnd().Trim();
                bigEndian = text switch
                {
                    "little" => false,
                    "big" => true,
                    _ => throw new InvalidDataException($"'{source}': unknown byteorder '{text}' (expected 'little' or 'big')."),
                };
            }

            object? root;
            using (var s = pkl.Open())
            using (var buffered = new MemoryStream())
            {
                s.CopyTo(buffered);
                buffered.Position = 0;
                root = PickleReader.Read(buffered, $"'{source}' ({pkl.FullName})");
            }

            var (dict, where) = Select(root, source, entry);
            var storages = new Dictionary<string, Tensor>();
            var items = new List<KeyValuePair<string, Tensor>>();
            try
            {
                foreach (var (k, v) in dict.Items)
                {
                    string key = k as string ?? k.ToString()!;
                    if (v is not TensorRef t)
                    {
                        if (v is PickleOpaque opaque && !key.EndsWith("_extra_state", StringComparison.Ordinal))
                            throw new InvalidDataException(
                                $"'{source}': entry '{key}' of {where} is a pickled '{opaque.Type}' object, not a tensor. " +
                                "Only tensors are read from a state dict; save model.state_dict() with torch.save.");
                        continue;   // numbers, strings, _extra_state: not weights
                    }
                    if (key.StartsWith("module.", StringComparison.Ordinal)) key = key["module.".Length..];
                    if (!storages.TryGetValue(t.Storage.Key, out var storage))
                    {
                        storage = ReadStorage(zip, prefix, t.Storage, bigEndian, source);
                        storages[t.Storage.Key] = storage;
                    }
                    items.Add(new(key, View(storage, t, key, source)));
                }
            }
            catch
            {
                foreach (var p in items) p.Value.Dispose();
                throw;
            }
            finally
            {
                foreach (var s in storages.Values) s.Dispose();
            }
            var duplicate = items.GroupBy(p => p.Key).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null)
            {
                foreach (var p in items) p.Value.Dispose();
                throw new InvalidDataException($"'{source}': key '{duplicate.Key}' appears twice after removing the " +
                                               "'module.' prefix (both 'module.X' and 'X' exist).");
            }
            return new StateDict(source, items);
        }
    }

    private static (PickleDict Dict, string Where) Select(object? root, string source, string? entry)
    {
        if (root is PickleOpaque opaque)
            throw new InvalidDataException(
                $"'{source}' holds a pickled '{opaque.Type}' object (torch.save(model) pickles the whole module, which needs " +
                "its Python code), not a state dict. Save the weights instead: torch.save(model.state_dict(), path).");
        if (root is not PickleDict top)
            throw new InvalidDataException($"'{source}' holds a {PickleReader.Describe(root)}, not a state dict (a dict of " +
                                           "tensors). Save one with torch.save(model.state_dict(), path).");
        if (entry is not null)
        {
            if (!top.TryGet(entry, out var chosen))
                throw new InvalidDataException($"'{source}' has no entry '{entry}'; its top-level keys are {Keys(top)}.");
            return chosen is PickleDict d ? (d, $"entry '{entry}'")
                : throw new InvalidDataException($"'{source}': entry '{entry}' is a {PickleReader.Describe(chosen)}, not a state dict.");
        }
        foreach (string key in new[] { "state_dict", "model" })
            if (top.TryGet(key, out var inner) && inner is PickleDict d && d.Items.Any(p => p.Value is TensorRef))
                return (d, $"entry '{key}'");
        if (top.Items.Any(p => p.Value is TensorRef)) return (top, "the state dict");
        throw new InvalidDataException(
            $"'{source}' holds a dict without tensors and without a 'state_dict' or 'model' entry; its top-level keys are " +
            $"{Keys(top)}. Pass the entry that holds the weights (entry: \"...\"), or save model.state_dict().");
    }

    private static string Keys(PickleDict d) =>
        d.Items.Count == 0 ? "(none)" : string.Join(", ", d.Items.Take(12).Select(p => $"'{p.Key}'")) + (d.Items.Count > 12 ? ", …" : "");

    private static (ScalarType Type, int Size) ElementOf(string storageType, string source) => storageType switch
    {
        "FloatStorage" => (ScalarType.Float32, 4),
        "DoubleStorage" => (ScalarType.Float64, 8),
        "HalfStorage" => (ScalarType.Float16, 2),
        "BFloat16Storage" => (ScalarType.BFloat16, 2),
        "LongStorage" => (ScalarType.Int64, 8),
        "IntStorage" => (ScalarType.Int32, 4),
        "ShortStorage" => (ScalarType.Int16, 2),
        "CharStorage" => (ScalarType.Int8, 1),
        "ByteStorage" => (ScalarType.Byte, 1),
        "BoolStorage" => (ScalarType.Bool, 1),
        _ => throw new InvalidDataException($"'{source}': storage type 'torch.{storageType}' is not supported; tensors of " +
                                            "float32/16/64, bfloat16, int64/32/16/8, uint8 and bool are read."),
    };

    private static Tensor ReadStorage(ZipArchive zip, string prefix, StorageRef storage, bool bigEndian, string source)
    {
        var (type, size) = ElementOf(storage.StorageType, source);
        var zipEntry = zip.GetEntry(prefix + "data/" + storage.Key)
            ?? throw new InvalidDataException($"'{source}': storage '{prefix}data/{storage.Key}' is missing (damaged file).");
        if (zipEntry.Length > Array.MaxLength)
            throw new InvalidDataException($"'{source}': storage '{storage.Key}' is too large ({zipEntry.Length} bytes).");
        var bytes = new byte[zipEntry.Length];
        using (var s = zipEntry.Open()) s.ReadExactly(bytes);
        if (bytes.Length % size != 0 || (storage.Elements >= 0 && bytes.Length / size != storage.Elements))
            throw new InvalidDataException($"'{source}': storage '{storage.Key}' holds {bytes.Length} bytes; expected " +
                                           $"{storage.Elements} elements of {size} bytes (damaged file).");
        if (bigEndian && size > 1)
            for (int i = 0; i < bytes.Length; i += size) Array.Reverse(bytes, i, size);
        long n = bytes.Length / size;
        var shape = new[] { n };
        Tensor t = type switch
        {
            ScalarType.Float32 => tensor(MemoryMarshal.Cast<byte, float>(bytes).ToArray(), shape),
            ScalarType.Float64 => tensor(MemoryMarshal.Cast<byte, double>(bytes).ToArray(), shape),
            ScalarType.Float16 => tensor(MemoryMarshal.Cast<byte, Half>(bytes).ToArray().Select(h => (float)h).ToArray(), shape),
            ScalarType.BFloat16 => tensor(MemoryMarshal.Cast<byte, ushort>(bytes).ToArray()
                .Select(b => BitConverter.Int32BitsToSingle(b << 16)).ToArray(), shape),
            ScalarType.Int64 => tensor(MemoryMarshal.Cast<byte, long>(bytes).ToArray(), shape),
            ScalarType.Int32 => tensor(MemoryMarshal.Cast<byte, int>(bytes).ToArray(), shape),
            ScalarType.Int16 => tensor(MemoryMarshal.Cast<byte, short>(bytes).ToArray(), shape),
            ScalarType.Int8 => tensor(MemoryMarshal.Cast<byte, sbyte>(bytes).ToArray(), shape),
            ScalarType.Byte => tensor(bytes, shape),
            _ => tensor(bytes.Select(b => b != 0).ToArray(), shape),
        };
        return t.DetachFromDisposeScope();
    }

    private static Tensor View(Tensor storage, TensorRef t, string key, string source)
    {
        long n = storage.shape[0];
        long extent = t.Offset;
        for (int i = 0; i < t.Size.Length; i++)
        {
            if (t.Size[i] < 0 || t.Stride[i] < 0)
                throw new InvalidDataException($"'{source}': tensor '{key}' has an invalid shape or stride.");
            if (t.Size[i] == 0) { extent = -1; break; }
            extent += (t.Size[i] - 1) * t.Stride[i];
        }
        if (t.Offset < 0 || extent >= n)
            throw new InvalidDataException($"'{source}': tensor '{key}' [{string.Join(", ", t.Size)}] reaches element " +
                                           $"{extent} of a storage of {n} (damaged file).");
        using var scope = NewDisposeScope();
        var view = storage.as_strided(t.Size, t.Stride, t.Offset).clone();
        return view.MoveToOuterDisposeScope().DetachFromDisposeScope();
    }
}
