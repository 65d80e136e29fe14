using System.Runtime.CompilerServices;

namespace GpuActivations.Cuda;

/// <summary>The CUDA driver result codes this backend names (the rest are named by <c>cuGetErrorName</c>).</summary>
internal static class CudaResult
{
    public const int Success = 0;
    public const int InvalidValue = 1;
    public const int OutOfMemory = 2;
    public const int NotInitialized = 3;
    public const int Deinitialized = 4;
    public const int InsufficientDriver = 35;
    public const int NoDevice = 100;
    public const int InvalidDevice = 101;
    public const int InvalidImage = 200;
    public const int InvalidContext = 201;
    public const int NoBinaryForGpu = 209;
    public const int InvalidPtx = 218;
    public const int UnsupportedPtxVersion = 222;
    public const int InvalidHandle = 400;
    public const int NotFound = 500;
    public const int NotReady = 600;
    public const int LaunchOutOfResources = 701;
    public const int LaunchFailed = 719;

    /// <summary>Names for the codes above, used when the driver cannot name a code itself.</summary>
    public static string FallbackName(int code) => code switch
    {
        Success => "CUDA_SUCCESS",
        InvalidValue => "CUDA_ERROR_INVALID_VALUE",
        OutOfMemory => "CUDA_ERROR_OUT_OF_MEMORY",
        NotInitialized => "CUDA_ERROR_NOT_INITIALIZED",
        Deinitialized => "CUDA_ERROR_DEINITIALIZED",
        InsufficientDriver => "CUDA_ERROR_INSUFFICIENT_DRIVER",
        NoDevice => "CUDA_ERROR_NO_DEVICE",
        InvalidDevice => "CUDA_ERROR_INVALID_DEVICE",
        InvalidImage => "CUDA_ERROR_INVALID_IMAGE",
        InvalidContext => "CUDA_ERROR_INVALID_CONTEXT",
        NoBinaryForGpu => "CUDA_ERROR_NO_BINARY_FOR_GPU",
        InvalidPtx => "CUDA_ERROR_INVALID_PTX",
        UnsupportedPtxVersion => "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
        InvalidHandle => "CUDA_ERROR_INVALID_HANDLE",
        NotFound => "CUDA_ERROR_NOT_FOUND",
        NotReady => "CUDA_ERROR_NOT_READY",
        LaunchOutOfResources => "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
        LaunchFailed => "CUDA_ERROR_LAUNCH_FAILED",
        _ => $"CUresult {code}",
    };
}

/// <summary>The <c>CUdevice_attribute</c> values this backend reads.</summary>
internal enum CudaDeviceAttribute
{
    MaxThreadsPerBlock = 1,
    MaxSharedMemoryPerBlock = 8,
    WarpSize = 10,
    ClockRate = 13,
    MultiprocessorCount = 16,
    MemoryClockRate = 36,
    GlobalMemoryBusWidth = 37,
    L2CacheSize = 38,
    MaxThreadsPerMultiprocessor = 39,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
}

/// <summary>A CUDA driver call that returned an error: names the call and CUDA's name for the error.</summary>
internal sealed class CudaException : AcceleratorException
{
    /// <summary>Creates the exception for <paramref name="call"/> returning <paramref name="result"/>.</summary>
    public CudaException(string call, int result, string errorName, string? description)
        : base($"{call} failed: {errorName} ({result}){(string.IsNullOrEmpty(description) ? "" : ": " + description)}")
    {
        Call = call;
        Result = result;
        ErrorName = errorName;
    }

    /// <summary>The failing call as written in the source.</summary>
    public string Call { get; }

    /// <summary>The <c>CUresult</c> code.</summary>
    public int Result { get; }

    /// <summary>CUDA's name for <see cref="Result"/>, e.g. <c>CUDA_ERROR_OUT_OF_MEMORY</c>.</summary>
    public string ErrorName { get; }
}

/// <summary>
/// The CUDA driver API (<c>libcuda.so.1</c>), bound at run time through <see cref="System.Runtime.InteropServices.NativeLibrary"/>
/// into unmanaged function pointers. Types: <c>CUresult</c>, <c>CUdevice</c> are <see cref="int"/>;
/// <c>CUdeviceptr</c> is <see cref="ulong"/>; <c>size_t</c> is <see cref="nuint"/>; handles
/// (<c>CUcontext</c>, <c>CUmodule</c>, <c>CUfunction</c>, <c>CUstream</c>, <c>CUevent</c>) are <see cref="nint"/>.
/// The <c>_v2</c> exports are bound where <c>cuda.h</c> maps the plain name onto them.
/// </summary>
internal sealed unsafe class CudaNative
{
    /// <summary>Environment variable naming the driver library to load instead of the default names.</summary>
    public const string LibraryVariable = "GPUACTIVATIONS_CUDA_LIBRARY";

    /// <summary>The names tried, in order, when no override is set.</summary>
    public static IReadOnlyList<string> DefaultLibraryNames { get; } =
        OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"];

    /// <summary><c>CU_STREAM_NON_BLOCKING</c>: no implicit synchronisation with the legacy default stream.</summary>
    public const uint StreamNonBlocking = 1;

    /// <summary><c>CU_EVENT_DEFAULT</c>.</summary>
    public const uint EventDefault = 0;

// The fields mirror cuda.h one to one (the _v2 export where cuda.h maps the plain name onto it).
    public readonly delegate* unmanaged<uint, int> cuInit;
    public readonly delegate* unmanaged<int*, int> cuDriverGetVersion;
    public readonly delegate* unmanaged<int, byte**, int> cuGetErrorName;
    public readonly delegate* unmanaged<int, byte**, int> cuGetErrorString;

    public readonly delegate* unmanaged<int*, int> cuDeviceGetCount;
    public readonly delegate* unmanaged<int*, int, int> cuDeviceGet;
    public readonly delegate* unmanaged<byte*, int, int, int> cuDeviceGetName;
    public readonly delegate* unmanaged<int*, CudaDeviceAttribute, int, int> cuDeviceGetAttribute;
    public readonly delegate* unmanaged<nuint*, int, int> cuDeviceTotalMem;

    public readonly delegate* unmanaged<nint*, int, int> cuDevicePrimaryCtxRetain;
    public readonly delegate* unmanaged<int, int> cuDevicePrimaryCtxRelease;
    public readonly delegate* unmanaged<nint, int> cuCtxSetCurrent;
    public readonly delegate* unmanaged<nint*, int> cuCtxGetCurrent;
    public readonly delegate* unmanaged<int*, int> cuCtxGetDevice;
    public readonly delegate* unmanaged<int> cuCtxSynchronize;

    public readonly delegate* unmanaged<ulong*, nuint, int> cuMemAlloc;
    public readonly delegate* unmanaged<ulong, int> cuMemFree;
    public readonly delegate* unmanaged<ulong, void*, nuint, int> cuMemcpyHtoD;
    public readonly delegate* unmanaged<void*, ulong, nuint, int> cuMemcpyDtoH;
    public readonly delegate* unmanaged<ulong, ulong, nuint, int> cuMemcpyDtoD;
    public readonly delegate* unmanaged<ulong, void*, nuint, nint, int> cuMemcpyHtoDAsync;
    public readonly delegate* unmanaged<void*, ulong, nuint, nint, int> cuMemcpyDtoHAsync;
    public readonly delegate* unmanaged<ulong, ulong, nuint, nint, int> cuMemcpyDtoDAsync;
    public readonly delegate* unmanaged<ulong, uint, nuint, int> cuMemsetD32;
    public readonly delegate* unmanaged<ulong, uint, nuint, nint, int> cuMemsetD32Async;

    public readonly delegate* unmanaged<nint*, void*, int> cuModuleLoadData;
    public readonly delegate* unmanaged<nint, int> cuModuleUnload;
    public readonly delegate* unmanaged<nint*, nint, byte*, int> cuModuleGetFunction;
    public readonly delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int> cuLaunchKernel;

    public readonly delegate* unmanaged<nint*, uint, int> cuStreamCreate;
    public readonly delegate* unmanaged<nint, int> cuStreamSynchronize;
    public readonly delegate* unmanaged<nint, int> cuStreamDestroy;

    public readonly delegate* unmanaged<nint*, uint, int> cuEventCreate;
    public readonly delegate* unmanaged<nint, nint, int> cuEventRecord;
    public readonly delegate* unmanaged<nint, int> cuEventSynchronize;
    public readonly delegate* unmanaged<float*, nint, nint, int> cuEventElapsedTime;
    public readonly delegate* unmanaged<nint, int> cuEventDestroy;

    private CudaNative(nint library, string libraryName, List<string> missing)
    {
        Library = library;
        LibraryName = libraryName;
        nint E(params string[] names) => CudaLibraryLoader.Export(library, missing, names);

        cuInit = (delegate* unmanaged<uint, int>)E("cuInit");
        cuDriverGetVersion = (delegate* unmanaged<int*, int>)E("cuDriverGetVersion");
        cuGetErrorName = (delegate* unmanaged<int, byte**, int>)E("cuGetErrorName");
        cuGetErrorString = (delegate* unmanaged<int, byte**, int>)E("cuGetErrorString");

        cuDeviceGetCount = (delegate* unmanaged<int*, int>)E("cuDeviceGetCount");
        cuDeviceGet = (delegate* unmanaged<int*, int, int>)E("cuDeviceGet");
        cuDeviceGetName = (delegate* unmanaged<byte*, int, int, int>)E("cuDeviceGetName");
        cuDeviceGetAttribute = (delegate* unmanaged<int*, CudaDeviceAttribute, int, int>)E("cuDeviceGetAttribute");
        cuDeviceTotalMem = (delegate* unmanaged<nuint*, int, int>)E("cuDeviceTotalMem_v2");

        cuDevicePrimaryCtxRetain = (delegate* unmanaged<nint*, int, int>)E("cuDevicePrimaryCtxRetain");
        // cuda.h (11.0+) maps cuDevicePrimaryCtxRelease onto _v2; older drivers export only the plain name.
        cuDevicePrimaryCtxRelease = (delegate* unmanaged<int, int>)E("cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease");
        cuCtxSetCurrent = (delegate* unmanaged<nint, int>)E("cuCtxSetCurrent");
        cuCtxGetCurrent = (delegate* unmanaged<nint*, int>)E("cuCtxGetCurrent");
        cuCtxGetDevice = (delegate* unmanaged<int*, int>)E("cuCtxGetDevice");
        cuCtxSynchronize = (delegate* unmanaged<int>)E("cuCtxSynchronize");

        cuMemAlloc = (delegate* unmanaged<ulong*, nuint, int>)E("cuMemAlloc_v2");
        cuMemFree = (delegate* unmanaged<ulong, int>)E("cuMemFree_v2");
        cuMemcpyHtoD = (delegate* unmanaged<ulong, void*, nuint, int>)E("cuMemcpyHtoD_v2");
        cuMemcpyDtoH = (delegate* unmanaged<void*, ulong, nuint, int>)E("cuMemcpyDtoH_v2");
        cuMemcpyDtoD = (delegate* unmanaged<ulong, ulong, nuint, int>)E("cuMemcpyDtoD_v2");
        cuMemcpyHtoDAsync = (delegate* unmanaged<ulong, void*, nuint, nint, int>)E("cuMemcpyHtoDAsync_v2");
        cuMemcpyDtoHAsync = (delegate* unmanaged<void*, ulong, nuint, nint, int>)E("cuMemcpyDtoHAsync_v2");
        cuMemcpyDtoDAsync = (delegate* unmanaged<ulong, ulong, nuint, nint, int>)E("cuMemcpyDtoDAsync_v2");
        cuMemsetD32 = (delegate* unmanaged<ulong, uint, nuint, int>)E("cuMemsetD32_v2");
        cuMemsetD32Async = (delegate* unmanaged<ulong, uint, nuint, nint, int>)E("cuMemsetD32Async");

        cuModuleLoadData = (delegate* unmanaged<nint*, void*, int>)E("cuModuleLoadData");
        cuModuleUnload = (delegate* unmanaged<nint, int>)E("cuModuleUnload");
        cuModuleGetFunction = (delegate* unmanaged<nint*, nint, byte*, int>)E("cuModuleGetFunction");
        cuLaunchKernel = (delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int>)E("cuLaunchKernel");

        cuStreamCreate = (delegate* unmanaged<nint*, uint, int>)E("cuStreamCreate");
        cuStreamSynchronize = (delegate* unmanaged<nint, int>)E("cuStreamSynchronize");
        cuStreamDestroy = (delegate* unmanaged<nint, int>)E("cuStreamDestroy_v2");

        cuEventCreate = (delegate* unmanaged<nint*, uint, int>)E("cuEventCreate");
        cuEventRecord = (delegate* unmanaged<nint, nint, int>)E("cuEventRecord");
        cuEventSynchronize = (delegate* unmanaged<nint, int>)E("cuEventSynchronize");
        cuEventElapsedTime = (delegate* unmanaged<float*, nint, nint, int>)E("cuEventElapsedTime");
        cuEventDestroy = (delegate* unmanaged<nint, int>)E("cuEventDestroy_v2");
    }

    /// <summary>The native library handle.</summary>
    public nint Library { get; }

    /// <summary>The name or path the library was loaded by.</summary>
    public string LibraryName { get; }

    /// <summary>The driver's CUDA version, e.g. 12040 for 12.4.</summary>
    public int DriverVersion { get; private set; }

    /// <summary>The driver version as "major.minor".</summary>
    public string DriverVersionText => FormatVersion(DriverVersion);

    /// <summary>Formats a CUDA version number (1000 * major + 10 * minor) as "major.minor".</summary>
    public static string FormatVersion(int version) => $"{version / 1000}.{version % 1000 / 10}";

    private static readonly SharedLoad<CudaNative> SharedDriver = new(LoadFromEnvironment);

    /// <summary>
    /// The process-wide driver, loaded once from <see cref="LibraryVariable"/> or the default names.
    /// A failed load is remembered too (its reason), until <see cref="ResetShared"/>.
    /// </summary>
    public static NativeLoad<CudaNative> Shared => SharedDriver.Value;

    /// <summary>Forgets the remembered <see cref="Shared"/> load so the next use loads again (tests; a driver installed later).</summary>
    public static void ResetShared() => SharedDriver.Reset();

    /// <summary>Loads the driver named by <see cref="LibraryVariable"/>, or by the default names when it is unset. Never throws.</summary>
    public static NativeLoad<CudaNative> LoadFromEnvironment() => Load(CudaLibraryLoader.ReadOverride(LibraryVariable));

    /// <summary>
    /// Loads the driver from <paramref name="libraryPath"/> (or the default names when null), binds every entry point
    /// and calls <c>cuInit(0)</c>. Never throws: a missing library, a missing export or a failing <c>cuInit</c>
    /// comes back as the failure reason, e.g. "libcuda.so.1 not found" or "cuInit: CUDA_ERROR_NO_DEVICE".
    /// </summary>
    public static NativeLoad<CudaNative> Load(string? libraryPath)
    {
        IReadOnlyList<string> candidates = CudaLibraryLoader.Candidates(libraryPath, DefaultLibraryNames);
        if (!CudaLibraryLoader.TryLoadFirst(candidates, out nint library, out string name, out string reason))
            return new(null, reason);

        try
        {
            var missing = new List<string>();
            var api = new CudaNative(library, name, missing);
            if (missing.Count > 0)
                return new(null, $"{name} lacks {string.Join(", ", missing)} (driver too old?)");

            int result = api.cuInit(0);
            if (result != CudaResult.Success)
                return new(null, $"cuInit: {api.ErrorName(result)}");

            int version = 0;
            result = api.cuDriverGetVersion(&version);
            if (result != CudaResult.Success)
                return new(null, $"cuDriverGetVersion: {api.ErrorName(result)}");
            api.DriverVersion = version;
            return new(api, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new(null, $"{name}: {e.Message}");
        }
    }

    /// <summary>CUDA's name for a result code (<c>cuGetErrorName</c>), e.g. <c>CUDA_ERROR_NO_DEVICE</c>.</summary>
    public string ErrorName(int result)
    {
        byte* text = null;
        if (cuGetErrorName is not null && cuGetErrorName(result, &text) == CudaResult.Success && text is not null)
            return CudaLibraryLoader.Utf8(text)!;
        return CudaResult.FallbackName(result);
    }

    /// <summary>CUDA's description of a result code (<c>cuGetErrorString</c>), or null.</summary>
    public string? ErrorDescription(int result)
    {
        byte* text = null;
        if (cuGetErrorString is not null && cuGetErrorString(result, &text) == CudaResult.Success && text is not null)
            return CudaLibraryLoader.Utf8(text);
        return null;
    }

    /// <summary>Throws a <see cref="CudaException"/> naming <paramref name="call"/> unless <paramref name="result"/> is success.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Check(int result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result != CudaResult.Success)
            Throw(result, call);
    }

    /// <summary>Creates the exception for a failed call without throwing it.</summary>
    public CudaException Failure(int result, string call) => new(TrimCall(call), result, ErrorName(result), ErrorDescription(result));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Throw(int result, string call) => throw Failure(result, call);

    // "_cu.cuMemAlloc(&p, (nuint)bytes)" reads better as "cuMemAlloc(&p, (nuint)bytes)".
    private static string TrimCall(string call)
    {
        int dot = call.IndexOf(".cu", StringComparison.Ordinal);
        return dot > 0 && call.AsSpan(0, dot).IndexOfAny('(', ' ') < 0 ? call[(dot + 1)..] : call;
    }
}
