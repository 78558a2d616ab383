using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace MLNet.Attention.Checkpoints;

/// <summary>A <c>module.name</c> global named by a pickle (<c>GLOBAL</c> / <c>STACK_GLOBAL</c>). Never resolved to code.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public override string ToString() => Module + "." + Name;
}

/// <summary>An object of a class the reader does not know (for example <c>argparse.Namespace</c> or a pickled
/// <c>nn.Module</c>): its class and constructor arguments are kept as data, nothing is instantiated.</summary>
internal sealed class PickleOpaque(PickleGlobal type, object? args)
{
    public PickleGlobal Type { get; } = type;
    public object? Args { get; } = args;
    public object? State { get; set; }
}

/// <summary>A pickled dict (<c>dict</c> or <c>collections.OrderedDict</c>), in insertion order.</summary>
internal sealed class PickleDict
{
    private readonly List<KeyValuePair<object, object?>> _items = new();
    private readonly Dictionary<object, int> _index = new();

    public IReadOnlyList<KeyValuePair<object, object?>> Items => _items;

    public void Set(object key, object? value)
    {
        if (_index.TryGetValue(key, out int i)) _items[i] = new(key, value);
        else
        {
            _index[key] = _items.Count;
            _items.Add(new(key, value));
        }
    }

    public bool TryGet(string key, out object? value)
    {
        if (_index.TryGetValue(key, out int i))
        {
            value = _items[i].Value;
            return true;
        }
        value = null;
        return false;
    }
}

/// <summary>A reference to one of the archive's raw storages (<c>data/&lt;key&gt;</c>).</summary>
internal sealed record StorageRef(string Key, string StorageType, long Elements);

/// <summary>What <c>torch._utils._rebuild_tensor_v2</c> would build: a strided view of a storage.</summary>
internal sealed record TensorRef(StorageRef Storage, long Offset, long[] Size, long[] Stride);

/// <summary>
/// A small, safe unpickler for PyTorch checkpoints (pickle protocols 0–5). It never imports or runs code: the globals it
/// understands (<c>collections.OrderedDict</c>, <c>torch._utils._rebuild_tensor_v2</c> and its relatives,
/// <c>torch.*Storage</c>, <c>_codecs.encode</c>) are interpreted as data; any other global becomes a
/// <see cref="PickleOpaque"/> record that callers reject with its name where they need a tensor or a dict.
/// </summary>
internal sealed class PickleReader
{
    private readonly BinaryReader _in;
    private readonly List<object?> _stack = new();
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();
    private readonly string _where;

    private static readonly object Mark = new();

    private PickleReader(Stream stream, string where)
    {
        _in = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        _where = where;
    }

    /// <summary>Reads one pickle from <paramref name="stream"/> and returns its top-level object.</summary>
    public static object? Read(Stream stream, string where)
    {
        try
        {
            return new PickleReader(stream, where).Run();
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException($"{where}: the pickle ends before its STOP opcode (truncated file).", ex);
        }
    }

    private InvalidDataException Error(string message) => new($"{_where}: {message}");

    private object? Pop()
    {
        if (_stack.Count == 0) throw Error("malformed pickle (pop from an empty stack).");
        var v = _stack[^1];
        if (ReferenceEquals(v, Mark)) throw Error("malformed pickle (unexpected MARK).");
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private object? Peek() => _stack.Count > 0 ? _stack[^1] : throw Error("malformed pickle (empty stack).");

    private List<object?> PopToMark()
    {
        if (_marks.Count == 0) throw Error("malformed pickle (no MARK).");
        int at = _marks.Pop();
        var items = _stack.GetRange(at + 1, _stack.Count - at - 1);
        _stack.RemoveRange(at, _stack.Count - at);
        return items;
    }

    private void Push(object? v) => _stack.Add(v);

    private string Line()
    {
        var sb = new StringBuilder();
        for (byte b = _in.ReadByte(); b != (byte)'\n'; b = _in.ReadByte()) sb.Append((char)b);
        return sb.ToString();
    }

    private int Length32()
    {
        uint n = _in.ReadUInt32();
        if (n > int.MaxValue) throw Error($"string or bytes length {n} is too large.");
        return (int)n;
    }

    private byte[] Bytes(long n)
    {
        if (n < 0 || n > int.MaxValue) throw Error($"invalid length {n}.");
        var b = _in.ReadBytes((int)n);
        if (b.Length != n) throw new EndOfStreamException();
        return b;
    }

    private object? Run()
    {
        while (true)
        {
            int op = _in.BaseStream.ReadByte();
            if (op < 0) throw new EndOfStreamException();
            switch (op)
            {
                case 0x80: _in.ReadByte(); break;                         // PROTO
                case 0x95: _in.ReadInt64(); break;                        // FRAME (length; data follows inline)
                case '.': return Pop();                                   // STOP
                case '(': _marks.Push(_stack.Count); _stack.Add(Mark); break;
                case '0': Pop(); break;                                   // POP
                case '1': PopToMark(); break;                             // POP_MARK
                case '2': Push(Peek()); break;                            // DUP
                case 'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case 'J': Push((long)_in.ReadInt32()); break;             // BININT
                case 'K': Push((long)_in.ReadByte()); break;              // BININT1
                case 'M': Push((long)_in.ReadUInt16()); break;            // BININT2
                case 0x8a: Push(Long(_in.ReadByte())); break;             // LONG1
                case 0x8b: Push(Long(Length32())); break;                 // LONG4
                case 'I':                                                 // INT (text)
                {
                    string s = Line();
                    Push(s switch { "00" => false, "01" => true, _ => long.Parse(s, CultureInfo.InvariantCulture) });
                    break;
                }
                case 'L': Push(long.Parse(Line().TrimEnd('L'), CultureInfo.InvariantCulture)); break;
                case 'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Bytes(8))); break;   // BINFLOAT
                case 'F': Push(double.Parse(Line(), CultureInfo.InvariantCulture)); break;
                case 'X': Push(Encoding.UTF8.GetString(Bytes(Length32()))); break;        // BINUNICODE
                case 0x8c: Push(Encoding.UTF8.GetString(Bytes(_in.ReadByte()))); break;   // SHORT_BINUNICODE
                case 0x8d: Push(Encoding.UTF8.GetString(Bytes(_in.ReadInt64()))); break;  // BINUNICODE8
                case 'T': Push(Encoding.Latin1.GetString(Bytes(Length32()))); break;      // BINSTRING
                case 'U': Push(Encoding.Latin1.GetString(Bytes(_in.ReadByte()))); break;  // SHORT_BINSTRING
                case 'B': Push(Bytes(Length32())); break;                                 // BINBYTES
                case 'C': Push(Bytes(_in.ReadByte())); break;                             // SHORT_BINBYTES
                case 0x8e: Push(Bytes(_in.ReadInt64())); break;                           // BINBYTES8
                case 0x96: Push(Bytes(_in.ReadInt64())); break;                           // BYTEARRAY8
                case ')': Push(Array.Empty<object?>()); break;                            // EMPTY_TUPLE
                case 't': Push(PopToMark().ToArray()); break;                             // TUPLE
                case 0x85: Push(new[] { Pop() }); break;                                  // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; }
                case ']': Push(new List<object?>()); break;                               // EMPTY_LIST
                case 'l': Push(PopToMark()); break;                                       // LIST
                case 'a': { var v = Pop(); AsList(Peek()).Add(v); break; }                // APPEND
                case 'e': { var items = PopToMark(); AsList(Peek()).AddRange(items); break; }
                case '}': Push(new PickleDict()); break;                                  // EMPTY_DICT
                case 'd': Push(ToDict(PopToMark())); break;                               // DICT
                case 's': { var v = Pop(); var k = Pop(); SetItem(Peek(), k, v); break; }
                case 'u': { var items = PopToMark(); var d = Peek(); for (int i = 0; i + 1 < items.Count; i += 2) SetItem(d, items[i], items[i + 1]); break; }
                case 0x8f: Push(new List<object?>()); break;                              // EMPTY_SET (as a list)
                case 0x90: { var items = PopToMark(); AsList(Peek()).AddRange(items); break; }   // ADDITEMS
                case 0x91: Push(PopToMark()); break;                                      // FROZENSET
                case 'c': { string module = Line(); Push(new PickleGlobal(module, Line())); break; }   // GLOBAL
                case 0x93:                                                                // STACK_GLOBAL
                {
                    var name = Pop() as string; var module = Pop() as string;
                    if (name is null || module is null) throw Error("malformed pickle (STACK_GLOBAL needs two strings).");
                    Push(new PickleGlobal(module, name));
                    break;
                }
                case 'R': { var args = Pop(); var f = Pop(); Push(Reduce(f, args)); break; }      // REDUCE
                case 0x81: { var args = Pop(); var cls = Pop(); Push(Reduce(cls, args)); break; } // NEWOBJ
                case 0x92: { Pop(); var args = Pop(); var cls = Pop(); Push(Reduce(cls, args)); break; }  // NEWOBJ_EX
                case 'b': { var state = Pop(); Build(Peek(), state); break; }             // BUILD
                case 'Q': Push(PersistentLoad(Pop())); break;                             // BINPERSID
                case 'P': Push(PersistentLoad(Line())); break;                            // PERSID
                case 'q': _memo[_in.ReadByte()] = Peek(); break;                          // BINPUT
                case 'r': _memo[_in.ReadUInt32()] = Peek(); break;                        // LONG_BINPUT
                case 'p': _memo[long.Parse(Line(), CultureInfo.InvariantCulture)] = Peek(); break;
                case 0x94: _memo[_memo.Count] = Peek(); break;                            // MEMOIZE
                case 'h': Push(Get(_in.ReadByte())); break;                               // BINGET
                case 'j': Push(Get(_in.ReadUInt32())); break;                             // LONG_BINGET
                case 'g': Push(Get(long.Parse(Line(), CultureInfo.InvariantCulture))); break;
                default:
                    throw Error($"unsupported pickle opcode 0x{op:X2} at byte {_in.BaseStream.Position - 1}. " +
                                "This is not a PyTorch checkpoint, or it uses a pickle feature this reader does not read.");
            }
        }
    }

    private object? Get(long key) =>
        _memo.TryGetValue(key, out var v) ? v : throw Error($"malformed pickle (memo key {key} was never stored).");

    private object Long(int n)
    {
        var bytes = Bytes(n);
        var value = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (long)value : value;
    }

    private List<object?> AsList(object? o) =>
        o as List<object?> ?? throw Error($"malformed pickle (APPEND to a {Describe(o)}).");

    private PickleDict ToDict(List<object?> items)
    {
        var d = new PickleDict();
        for (int i = 0; i + 1 < items.Count; i += 2) SetItem(d, items[i], items[i + 1]);
        return d;
    }

    private void SetItem(object? target, object? key, object? value)
    {
        if (target is not PickleDict d) throw Error($"malformed pickle (SETITEM on a {Describe(target)}).");
        d.Set(key switch
        {
            null => "None",
            object[] tuple => "(" + string.Join(", ", tuple) + ")",
            _ => key,
        }, value);
    }

    private static void Build(object? target, object? state)
    {
        // OrderedDict state (its _metadata attribute), tensor state, and opaque objects' state are data only.
        if (target is PickleOpaque opaque) opaque.State = state;
    }

    private object? PersistentLoad(object? pid)
    {
        // torch.save's zip format: ('storage', storage_type, key, location, numel).
        if (pid is object?[] { Length: >= 5 } t && t[0] is "storage" && t[1] is PickleGlobal type && t[2] is string key)
        {
            long elements = t[4] is long n ? n : -1;
            return new StorageRef(key, type.Name, elements);
        }
        throw Error($"unsupported persistent id {Describe(pid)}; expected ('storage', type, key, location, size) as " +
                    "torch.save writes.");
    }

    private object? Reduce(object? callable, object? args)
    {
        if (callable is not PickleGlobal g)
            throw Error($"malformed pickle (REDUCE on a {Describe(callable)}).");
        var a = args as object?[] ?? Array.Empty<object?>();
        switch (g.Module, g.Name)
        {
            case ("collections", "OrderedDict"):
            case ("builtins", "dict"):
            case ("__builtin__", "dict"):
                return new PickleDict();
            case ("torch._utils", "_rebuild_tensor_v2"):
            case ("torch._utils", "_rebuild_tensor"):
                if (a.Length < 4 || a[0] is not StorageRef storage || a[1] is not long offset || a[2] is not object?[] size ||
                    a[3] is not object?[] stride || size.Length != stride.Length)
                    throw Error($"{g}: unexpected arguments {Describe(args)}.");
                return new TensorRef(storage, offset, size.Select(ToLong).ToArray(), stride.Select(ToLong).ToArray());
            case ("torch._utils", "_rebuild_parameter"):
            case ("torch._utils", "_rebuild_parameter_with_state"):
                return a.Length > 0 ? a[0] : throw Error($"{g}: no data argument.");
            case ("_codecs", "encode"):
                return a.Length > 0 && a[0] is string s ? Encoding.Latin1.GetBytes(s) : throw Error($"{g}: unexpected arguments.");
            case ("torch", "Size"):
                return a.Length > 0 ? a[0] : Array.Empty<object?>();
            default:
                return new PickleOpaque(g, args);
        }
    }

    private long ToLong(object? o) => o is long l ? l : throw Error($"expected an integer in a tensor shape, got {Describe(o)}.");

    internal static string Describe(object? o) => o switch
    {
        null => "None",
        PickleOpaque p => $"pickled '{p.Type}' object",
        PickleGlobal g => $"global '{g}'",
        PickleDict => "dict",
        TensorRef => "tensor",
        List<object?> => "list",
        object?[] t => "tuple (" + string.Join(", ", t.Select(Describe)) + ")",
        string s => $"string '{(s.Length > 40 ? s[..40] + "…" : s)}'",
        _ => o.GetType().Name,
    };
}
