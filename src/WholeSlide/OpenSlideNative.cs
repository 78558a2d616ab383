using System.Runtime.InteropServices;

namespace MLNet.Attention.WholeSlide;

/// <summary>
/// The few OpenSlide C functions the slide reader needs, bound lazily from <c>libopenslide.so.0</c> (Debian/Ubuntu
/// <c>libopenslide0</c>) with <see cref="NativeLibrary.TryLoad(string, out IntPtr)"/>, so the package loads and the
/// NetVips backend works on machines without OpenSlide.
/// </summary>
internal static unsafe class OpenSlideNative
{
    private static readonly string[] Candidates =
        ["libopenslide.so.0", "libopenslide.so.1", "libopenslide.so", "libopenslide.0.dylib", "libopenslide-1.dll"];

    private static readonly Lazy<Api?> LazyApi = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The install hint used in every "OpenSlide is missing" message.</summary>
    internal const string InstallHint =
        "install OpenSlide (Debian/Ubuntu: `sudo apt-get install libopenslide0`; macOS: `brew install openslide`)";

    /// <summary>Whether the OpenSlide library could be loaded in this process.</summary>
    internal static bool IsAvailable => LazyApi.Value is not null;

    /// <summary>The bound functions; throws naming the package to install when the library is absent.</summary>
    internal static Api Functions => LazyApi.Value ?? throw new DllNotFoundException(
        $"OpenSlide is not available: none of {string.Join(", ", Candidates)} could be loaded. To read vendor "
        + $"formats (.svs, .ndpi, .mrxs, .scn, ...) {InstallHint}; pyramidal TIFF and PNG/JPEG are read through "
        + "NetVips without it.");

    private static Api? Load()
    {
        foreach (var name in Candidates)
        {
            if (!NativeLibrary.TryLoad(name, typeof(OpenSlideNative).Assembly, null, out var handle)) continue;
            try { return new Api(handle); }
            catch (EntryPointNotFoundException) { NativeLibrary.Free(handle); }
        }
        return null;
    }

    /// <summary>Function pointers into the loaded library.</summary>
    internal sealed class Api
    {
        internal readonly delegate* unmanaged<byte*, IntPtr> Open;
        internal readonly delegate* unmanaged<IntPtr, void> Close;
        internal readonly delegate* unmanaged<IntPtr, IntPtr> GetError;
        internal readonly delegate* unmanaged<IntPtr, int> GetLevelCount;
        internal readonly delegate* unmanaged<IntPtr, int, long*, long*, void> GetLevelDimensions;
        internal readonly delegate* unmanaged<IntPtr, int, double> GetLevelDownsample;
        internal readonly delegate* unmanaged<IntPtr, byte*, IntPtr> GetPropertyValue;
        internal readonly delegate* unmanaged<IntPtr, uint*, long, long, int, long, long, void> ReadRegion;
        internal readonly delegate* unmanaged<byte*, IntPtr> DetectVendor;

        internal Api(IntPtr lib)
        {
            Open = (delegate* unmanaged<byte*, IntPtr>)NativeLibrary.GetExport(lib, "openslide_open");
            Close = (delegate* unmanaged<IntPtr, void>)NativeLibrary.GetExport(lib, "openslide_close");
            GetError = (delegate* unmanaged<IntPtr, IntPtr>)NativeLibrary.GetExport(lib, "openslide_get_error");
            GetLevelCount = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "openslide_get_level_count");
            GetLevelDimensions = (delegate* unmanaged<IntPtr, int, long*, long*, void>)
                NativeLibrary.GetExport(lib, "openslide_get_level_dimensions");
            GetLevelDownsample = (delegate* unmanaged<IntPtr, int, double>)
                NativeLibrary.GetExport(lib, "openslide_get_level_downsample");
            GetPropertyValue = (delegate* unmanaged<IntPtr, byte*, IntPtr>)
                NativeLibrary.GetExport(lib, "openslide_get_property_value");
            ReadRegion = (delegate* unmanaged<IntPtr, uint*, long, long, int, long, long, void>)
                NativeLibrary.GetExport(lib, "openslide_read_region");
            DetectVendor = (delegate* unmanaged<byte*, IntPtr>)NativeLibrary.GetExport(lib, "openslide_detect_vendor");
        }

        /// <summary>Calls a native function that takes one UTF-8 string.</summary>
        internal static T WithUtf8<T>(string value, Func<IntPtr, T> call)
        {
            var ptr = Marshal.StringToCoTaskMemUTF8(value);
            try { return call(ptr); }
            finally { Marshal.FreeCoTaskMem(ptr); }
        }
    }
}
