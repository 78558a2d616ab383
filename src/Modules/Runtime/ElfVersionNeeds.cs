using System.Text;

namespace MLNet.Attention.Runtime;

/// <summary>Reads the symbol-version requirements (.gnu.version_r) of an ELF64 little-endian shared library.</summary>
internal static class ElfVersionNeeds
{
    internal static bool ContainsAscii(byte[] data, string text)
    {
        byte[] needle = Encoding.ASCII.GetBytes(text + "\0");
        return data.AsSpan().IndexOf(needle) >= 0;
    }

    /// <summary>True when the library needs <paramref name="version"/> and that need is not marked weak.</summary>
    internal static bool RequiresStrictly(byte[] elf, string version)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != 'E' || elf[4] != 2 || elf[5] != 1) return false;
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A), shnum = BitConverter.ToUInt16(elf, 0x3C);
        for (int s = 0; s < shnum; s++)
        {
            int sh = (int)(shoff + (long)s * shentsize);
            if (BitConverter.ToUInt32(elf, sh + 4) != 0x6ffffffe) continue; // SHT_GNU_verneed
            int vn = (int)BitConverter.ToInt64(elf, sh + 0x18);
            int link = (int)BitConverter.ToUInt32(elf, sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, sh + 0x2C);
            int strtab = (int)BitConverter.ToInt64(elf, (int)(shoff + (long)link * shentsize + 0x18));
            for (int r = 0; r < count; r++)
            {
                int aux = vn + (int)BitConverter.ToUInt32(elf, vn + 8);
                for (int a = 0, cnt = BitConverter.ToUInt16(elf, vn + 2); a < cnt; a++)
                {
                    int name = strtab + (int)BitConverter.ToUInt32(elf, aux + 8);
                    int end = Array.IndexOf(elf, (byte)0, name);
                    if (Encoding.ASCII.GetString(elf, name, end - name) == version)
                        return (BitConverter.ToUInt16(elf, aux + 4) & 0x2) == 0;
                    aux += (int)BitConverter.ToUInt32(elf, aux + 12);
                }
                vn += (int)BitConverter.ToUInt32(elf, vn + 12);
            }
        }
        return false;
    }
}
