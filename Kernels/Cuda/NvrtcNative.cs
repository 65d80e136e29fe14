using System.Runtime.CompilerServices;

namespace GpuActivations.Cuda;

/// <summary>
/// An NVRTC call that failed. The message names the call and NVRTC's name for the error (e.g.
/// <c>nvrtcCompileProgram ... NVRTC_ERROR_COMPILATION</c>); for a failed compilation it ends with the program log,
/// which <see cref="Log"/> holds too.
/// </summary>
internal sealed class NvrtcException : AcceleratorException
{
    /// <summary>Creates the exception; the log, when there is one, is part of the message.</summary>
    public NvrtcException(string message, string? log = null, string call = "", string errorName = "")
        : base(string.IsNullOrWhiteSpace(log) ? message : $"{message}{Environment.NewLine}NVRTC log:{Environment.NewLine}{log.TrimEnd()}")
    {
        Log = log ?? "";
        Call = call;
        ErrorName = errorName;
    }

    /// <summary>The NVRTC program log (empty when the failure was not a compilation).</summary>
    public string Log { get; }

    /// <summary>The failing call, e.g. <c>nvrtcCompileProgram</c>.</summary>
    public string Call { get; }

    /// <summary>NVRTC's name for the result, e.g. <c>NVRTC_ERROR_COMPILATION</c>.</summary>
    public string ErrorName { get; }
}

/// <summary>
/// NVRTC, the CUDA run-time compiler (<c>libnvrtc.so.13</c>, <c>.12</c>, <c>.11.2</c>), bound at run time into
/// unmanaged function pointers. It needs neither a GPU nor <c>libcuda</c>. <c>nvrtcResult</c> is <see cref="int"/>,
/// <c>nvrtcProgram</c> is <see cref="nint"/>, <c>size_t</c> is <see cref="nuint"/>.
/// </summary>
internal sealed unsafe class NvrtcNative
{
    /// <summary>Environment variable naming the NVRTC library to load instead of the default names.</summary>
    public const string LibraryVariable = "GPUACTIVATIONS_NVRTC_LIBRARY";

    /// <summary>The names tried, in order, when no override is set.</summary>
    public static IReadOnlyList<string> DefaultLibraryNames { get; } = OperatingSystem.IsWindows()
        ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"]
        : ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];

    /// <summary><c>NVRTC_SUCCESS</c>.</summary>
    public const int Success = 0;

    /// <summary><c>NVRTC_ERROR_COMPILATION</c>.</summary>
    public const int ErrorCompilation = 6;

    // The fields mirror nvrtc.h one to one.
    public readonly delegate* unmanaged<int, byte*> nvrtcGetErrorString;
    public readonly delegate* unmanaged<int*, int*, int> nvrtcVersion;
    public readonly delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int> nvrtcCreateProgram;
    public readonly delegate* unmanaged<nint*, int> nvrtcDestroyProgram;
    public readonly delegate* unmanaged<nint, int, byte**, int> nvrtcCompileProgram;
    public readonly delegate* unmanaged<nint, nuint*, int> nvrtcGetPTXSize;
    public readonly delegate* unmanaged<nint, byte*, int> nvrtcGetPTX;
    public readonly delegate* unmanaged<nint, nuint*, int> nvrtcGetProgramLogSize;
    public readonly delegate* unmanaged<nint, byte*, int> nvrtcGetProgramLog;

    /// <summary><c>nvrtcGetCUBINSize</c> (NVRTC 11.1+), or null.</summary>
    public readonly delegate* unmanaged<nint, nuint*, int> nvrtcGetCUBINSize;

    /// <summary><c>nvrtcGetCUBIN</c> (NVRTC 11.1+), or null.</summary>
    public readonly delegate* unmanaged<nint, byte*, int> nvrtcGetCUBIN;

    /// <summary><c>nvrtcGetNumSupportedArchs</c> (NVRTC 11.2+), or null.</summary>
    public readonly delegate* unmanaged<int*, int> nvrtcGetNumSupportedArchs;

    /// <summary><c>nvrtcGetSupportedArchs</c> (NVRTC 11.2+), or null.</summary>
    public readonly delegate* unmanaged<int*, int> nvrtcGetSupportedArchs;

    private NvrtcNative(nint library, string libraryName, List<string> missing)
    {
        Library = library;
        LibraryName = libraryName;
        nint E(string name) => CudaLibraryLoader.Export(library, missing, name);
        nint O(string name) => CudaLibraryLoader.OptionalExport(library, name);

        nvrtcGetErrorString = (delegate* unmanaged<int, byte*>)E("nvrtcGetErrorString");
        nvrtcVersion = (delegate* unmanaged<int*, int*, int>)E("nvrtcVersion");
        nvrtcCreateProgram = (delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int>)E("nvrtcCreateProgram");
        nvrtcDestroyProgram = (delegate* unmanaged<nint*, int>)E("nvrtcDestroyProgram");
        nvrtcCompileProgram = (delegate* unmanaged<nint, int, byte**, int>)E("nvrtcCompileProgram");
        nvrtcGetPTXSize = (delegate* unmanaged<nint, nuint*, int>)E("nvrtcGetPTXSize");
        nvrtcGetPTX = (delegate* unmanaged<nint, byte*, int>)E("nvrtcGetPTX");
        nvrtcGetProgramLogSize = (delegate* unmanaged<nint, nuint*, int>)E("nvrtcGetProgramLogSize");
        nvrtcGetProgramLog = (delegate* unmanaged<nint, byte*, int>)E("nvrtcGetProgramLog");
        nvrtcGetCUBINSize = (delegate* unmanaged<nint, nuint*, int>)O("nvrtcGetCUBINSize");
        nvrtcGetCUBIN = (delegate* unmanaged<nint, byte*, int>)O("nvrtcGetCUBIN");
        nvrtcGetNumSupportedArchs = (delegate* unmanaged<int*, int>)O("nvrtcGetNumSupportedArchs");
        nvrtcGetSupportedArchs = (delegate* unmanaged<int*, int>)O("nvrtcGetSupportedArchs");
    }

    /// <summary>The native library handle.</summary>
    public nint Library { get; }

    /// <summary>The name or path the library was loaded by.</summary>
    public string LibraryName { get; }

    /// <summary>NVRTC's version (the CUDA toolkit it belongs to).</summary>
    public Version Version { get; private set; } = new(0, 0);

    /// <summary>Whether this NVRTC can emit cubin (<c>nvrtcGetCUBIN</c>).</summary>
    public bool CanEmitCubin => nvrtcGetCUBIN is not null && nvrtcGetCUBINSize is not null;

    /// <summary>
    /// The <c>sm_XY</c> architectures (as 10*X+Y) this NVRTC compiles for, ascending; null when it cannot say (before 11.2).
    /// </summary>
    public IReadOnlyList<int>? SupportedArchitectures { get; private set; }

    private static readonly SharedLoad<NvrtcNative> SharedNvrtc = new(LoadFromEnvironment);

    /// <summary>The process-wide NVRTC, loaded once from <see cref="LibraryVariable"/> or the default names (failure remembered too).</summary>
    public static NativeLoad<NvrtcNative> Shared => SharedNvrtc.Value;

    /// <summary>Forgets the remembered <see cref="Shared"/> load.</summary>
    public static void ResetShared() => SharedNvrtc.Reset();

    /// <summary>Loads NVRTC named by <see cref="LibraryVariable"/>, or by the default names. Never throws.</summary>
    public static NativeLoad<NvrtcNative> LoadFromEnvironment() => Load(CudaLibraryLoader.ReadOverride(LibraryVariable));

    /// <summary>Loads NVRTC from <paramref name="libraryPath"/> (or the default names when null). Never throws.</summary>
    public static NativeLoad<NvrtcNative> Load(string? libraryPath)
    {
        IReadOnlyList<string> candidates = CudaLibraryLoader.Candidates(libraryPath, DefaultLibraryNames);
        if (!CudaLibraryLoader.TryLoadFirst(candidates, out nint library, out string name, out string reason))
            return new(null, $"NVRTC not found: {reason}");

        try
        {
            var missing = new List<string>();
            var api = new NvrtcNative(library, name, missing);
            if (missing.Count > 0)
                return new(null, $"{name} lacks {string.Join(", ", missing)}");

            int major = 0, minor = 0;
            int result = api.nvrtcVersion(&major, &minor);
            if (result != Success)
                return new(null, $"nvrtcVersion: {api.ErrorName(result)}");
            api.Version = new Version(major, minor);

            if (api.nvrtcGetNumSupportedArchs is not null && api.nvrtcGetSupportedArchs is not null)
            {
                int count = 0;
                if (api.nvrtcGetNumSupportedArchs(&count) == Success && count > 0)
                {
                    var archs = new int[count];
                    fixed (int* p = archs)
                    {
                        if (api.nvrtcGetSupportedArchs(p) == Success)
                        {
                            Array.Sort(archs);
                            api.SupportedArchitectures = archs;
                        }
                    }
                }
            }

            return new(api, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new(null, $"{name}: {e.Message}");
        }
    }

    /// <summary>NVRTC's name for a result code, e.g. <c>NVRTC_ERROR_COMPILATION</c>.</summary>
    public string ErrorName(int result) => CudaLibraryLoader.Utf8(nvrtcGetErrorString(result)) ?? $"nvrtcResult {result}";

    /// <summary>Throws an <see cref="NvrtcException"/> naming <paramref name="call"/> unless <paramref name="result"/> is success.</summary>
    public void Check(int result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result == Success)
            return;
        // "api.nvrtcGetPTX(program, p)" reads better as "nvrtcGetPTX(program, p)".
        int dot = call.IndexOf(".nvrtc", StringComparison.Ordinal);
        if (dot > 0 && call.AsSpan(0, dot).IndexOfAny('(', ' ') < 0)
            call = call[(dot + 1)..];
        string name = ErrorName(result);
        throw new NvrtcException($"{call} failed: {name} ({result})", null, call, name);
    }
}
