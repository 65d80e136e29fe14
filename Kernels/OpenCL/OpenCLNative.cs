using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GpuActivations.OpenCL;

/// <summary>
/// The OpenCL entry points this library calls, resolved from the ICD loader with <see cref="NativeLibrary"/>
/// into unmanaged function pointers. One instance is one loaded library; <see cref="Shared"/> is the process-wide
/// one, and <see cref="Load"/> makes a fresh one (it re-reads <see cref="LibraryVariable"/>; tests use it).
/// Types: cl_int = int, cl_uint = uint, cl_bool = uint, bitfields = ulong, size_t = nuint, handles = nint.
/// </summary>
internal sealed unsafe class OpenCLNative
{
    /// <summary>Environment variable naming the OpenCL library to load instead of the ICD loader's usual names.</summary>
    public const string LibraryVariable = "GPUACTIVATIONS_OPENCL_LIBRARY";

    static readonly string[] DefaultNames = OperatingSystem.IsWindows()
        ? ["OpenCL.dll"]
        : OperatingSystem.IsMacOS()
            ? ["/System/Library/Frameworks/OpenCL.framework/OpenCL", "libOpenCL.so.1", "libOpenCL.so"]
            : ["libOpenCL.so.1", "libOpenCL.so"];

    static readonly Lazy<(OpenCLNative? Api, string? Reason)> SharedLoad = new(() => Load(), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The process-wide binding, or null when OpenCL could not be loaded (see <see cref="SharedFailure"/>).</summary>
    public static OpenCLNative? Shared => SharedLoad.Value.Api;

    /// <summary>Why <see cref="Shared"/> is null; null when it loaded.</summary>
    public static string? SharedFailure => SharedLoad.Value.Reason;

    /// <summary>The path or name the library was loaded from.</summary>
    public string LibraryName { get; }

    // --- platforms and devices
    public readonly delegate* unmanaged<uint, nint*, uint*, int> clGetPlatformIDs;
    public readonly delegate* unmanaged<nint, uint, nuint, void*, nuint*, int> clGetPlatformInfo;
    public readonly delegate* unmanaged<nint, ulong, uint, nint*, uint*, int> clGetDeviceIDs;
    public readonly delegate* unmanaged<nint, uint, nuint, void*, nuint*, int> clGetDeviceInfo;
    // --- contexts and queues
    public readonly delegate* unmanaged<nint*, uint, nint*, nint, void*, int*, nint> clCreateContext;
    public readonly delegate* unmanaged<nint, int> clReleaseContext;
    public readonly delegate* unmanaged<nint, uint, nuint, void*, nuint*, int> clGetContextInfo;
    public readonly delegate* unmanaged<nint, nint, ulong, int*, nint> clCreateCommandQueue;
    public readonly delegate* unmanaged<nint, int> clReleaseCommandQueue;
    public readonly delegate* unmanaged<nint, uint, nuint, void*, nuint*, int> clGetCommandQueueInfo;
    public readonly delegate* unmanaged<nint, int> clFinish;
    public readonly delegate* unmanaged<nint, int> clFlush;
    // --- buffers
    public readonly delegate* unmanaged<nint, ulong, nuint, void*, int*, nint> clCreateBuffer;
    public readonly delegate* unmanaged<nint, int> clReleaseMemObject;
    public readonly delegate* unmanaged<nint, nint, uint, nuint, nuint, void*, uint, nint*, nint*, int> clEnqueueWriteBuffer;
    public readonly delegate* unmanaged<nint, nint, uint, nuint, nuint, void*, uint, nint*, nint*, int> clEnqueueReadBuffer;
    public readonly delegate* unmanaged<nint, nint, nint, nuint, nuint, nuint, uint, nint*, nint*, int> clEnqueueCopyBuffer;
    public readonly delegate* unmanaged<nint, nint, void*, nuint, nuint, nuint, uint, nint*, nint*, int> clEnqueueFillBuffer;
    // --- programs and kernels
    public readonly delegate* unmanaged<nint, uint, byte**, nuint*, int*, nint> clCreateProgramWithSource;
    public readonly delegate* unmanaged<nint, uint, nint*, byte*, nint, void*, int> clBuildProgram;
    public readonly delegate* unmanaged<nint, nint, uint, nuint, void*, nuint*, int> clGetProgramBuildInfo;
    public readonly delegate* unmanaged<nint, int> clReleaseProgram;
    public readonly delegate* unmanaged<nint, byte*, int*, nint> clCreateKernel;
    public readonly delegate* unmanaged<nint, uint, nuint, void*, int> clSetKernelArg;
    public readonly delegate* unmanaged<nint, nint, uint, nuint, void*, nuint*, int> clGetKernelWorkGroupInfo;
    public readonly delegate* unmanaged<nint, int> clReleaseKernel;
    public readonly delegate* unmanaged<nint, nint, uint, nuint*, nuint*, nuint*, uint, nint*, nint*, int> clEnqueueNDRangeKernel;

    OpenCLNative(nint library, string name)
    {
        LibraryName = name;
        clGetPlatformIDs = (delegate* unmanaged<uint, nint*, uint*, int>)NativeLibrary.GetExport(library, nameof(clGetPlatformIDs));
        clGetPlatformInfo = (delegate* unmanaged<nint, uint, nuint, void*, nuint*, int>)NativeLibrary.GetExport(library, nameof(clGetPlatformInfo));
        clGetDeviceIDs = (delegate* unmanaged<nint, ulong, uint, nint*, uint*, int>)NativeLibrary.GetExport(library, nameof(clGetDeviceIDs));
        clGetDeviceInfo = (delegate* unmanaged<nint, uint, nuint, void*, nuint*, int>)NativeLibrary.GetExport(library, nameof(clGetDeviceInfo));
        clCreateContext = (delegate* unmanaged<nint*, uint, nint*, nint, void*, int*, nint>)NativeLibrary.GetExport(library, nameof(clCreateContext));
        clReleaseContext = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, nameof(clReleaseContext));
        clGetContextInfo = (delegate* unmanaged<nint, uint, nuint, void*, nuint*, int>)NativeLibrary.GetExport(library, nameof(clGetContextInfo));
        clCreateCommandQueue = (delegate* unmanaged<nint, nint, ulong, int*, nint>)NativeLibrary.GetExport(library, nameof(clCreateCommandQueue));
        clReleaseCommandQueue = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, nameof(clReleaseCommandQueue));
        clGetCommandQueueInfo = (delegate* unmanaged<nint, uint, nuint, void*, nuint*, int>)NativeLibrary.GetExport(library, nameof(clGetCommandQueueInfo));
        clFinish = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, nameof(clFinish));
        clFlush = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, nameof(clFlush));
        clCreateBuffer = (delegate* unmanaged<nint, ulong, nuint, void*, int*, nint>)NativeLibrary.GetExport(library, nameof(clCreateBuffer));
        clReleaseMemObject = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, nameof(clReleaseMemObject));
        clEnqueueWriteBuffer = (delegate* unmanaged<nint, nint, uint, nuint, nuint, void*, uint, nint*, nint*, int>)NativeLibrary.GetExport(library, nameof(clEnqueueWriteBuffer));
        clEnqueueReadBuffer = (delegate* unmanaged<nint, nint, uint, nuint, nuint, void*, uint, nint*, nint*, int>)NativeLibrary.GetExport(library, nameof(clEnqueueReadBuffer));
        clEnqueueCopyBuffer = (delegate* unmanaged<nint, nint, nint, nuint, nuint, nuint, uint, nint*, nint*, int>)NativeLibrary.GetExport(library, nameof(clEnqueueCopyBuffer));
        clEnqueueFillBuffer = (delegate* unmanaged<nint, nint, void*, nuint, nuint, nuint, uint, nint*, nint*, int>)NativeLibrary.GetExport(library, nameof(clEnqueueFillBuffer));
        clCreateProgramWithSource = (delegate* unmanaged<nint, uint, byte**, nuint*, int*, nint>)NativeLibrary.GetExport(library, nameof(clCreateProgramWithSource));
        clBuildProgram = (delegate* unmanaged<nint, uint, nint*, byte*, nint, void*, int>)NativeLibrary.GetExport(library, nameof(clBuildProgram));
        clGetProgramBuildInfo = (delegate* unmanaged<nint, nint, uint, nuint, void*, nuint*, int>)NativeLibrary.GetExport(library, nameof(clGetProgramBuildInfo));
        clReleaseProgram = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, nameof(clReleaseProgram));
        clCreateKernel = (delegate* unmanaged<nint, byte*, int*, nint>)NativeLibrary.GetExport(library, nameof(clCreateKernel));
        clSetKernelArg = (delegate* unmanaged<nint, uint, nuint, void*, int>)NativeLibrary.GetExport(library, nameof(clSetKernelArg));
        clGetKernelWorkGroupInfo = (delegate* unmanaged<nint, nint, uint, nuint, void*, nuint*, int>)NativeLibrary.GetExport(library, nameof(clGetKernelWorkGroupInfo));
        clReleaseKernel = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, nameof(clReleaseKernel));
        clEnqueueNDRangeKernel = (delegate* unmanaged<nint, nint, uint, nuint*, nuint*, nuint*, uint, nint*, nint*, int>)NativeLibrary.GetExport(library, nameof(clEnqueueNDRangeKernel));
    }

    /// <summary>
    /// Loads a fresh binding: the library named by <see cref="LibraryVariable"/> when it is set (and only that one),
    /// otherwise the ICD loader's usual names. Never throws; on failure returns a null binding and a reason.
    /// Prepares PoCL's cache directory first (see <see cref="PrepareCacheDirectory"/>).
    /// </summary>
    public static (OpenCLNative? Api, string? Reason) Load()
    {
        string? overridePath = Environment.GetEnvironmentVariable(LibraryVariable);
        string[] names = string.IsNullOrWhiteSpace(overridePath) ? DefaultNames : [overridePath];
        nint library = 0;
        string? loadedName = null;
        foreach (string name in names)
        {
            if (NativeLibrary.TryLoad(name, out library)) { loadedName = name; break; }
        }
        if (loadedName is null)
        {
            return (null, string.IsNullOrWhiteSpace(overridePath)
                ? $"{names[0]} not found"
                : $"{overridePath} not found (named by {LibraryVariable})");
        }

        try
        {
            PrepareCacheDirectory();
            return (new OpenCLNative(library, loadedName), null);
        }
        catch (EntryPointNotFoundException e)
        {
            return (null, $"{loadedName} is not a usable OpenCL 1.2 library: {e.Message}");
        }
    }

    /// <summary>
    /// PoCL compiles kernels into a cache under $POCL_CACHE_DIR, else $XDG_CACHE_HOME/pocl, else $HOME/.cache/pocl,
    /// and fails to build anything when that is not writable. When POCL_CACHE_DIR is unset and the default is not
    /// writable, point it at a folder under the temp path. .NET's Environment.SetEnvironmentVariable does not reach
    /// the native environment on Unix, so the C library's setenv is called as well.
    /// </summary>
    internal static void PrepareCacheDirectory()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("POCL_CACHE_DIR"))) return;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string? home = Environment.GetEnvironmentVariable("HOME");
        string? cacheRoot = !string.IsNullOrEmpty(xdg) ? xdg : !string.IsNullOrEmpty(home) ? Path.Combine(home, ".cache") : null;
        if (cacheRoot is not null && IsWritableDirectory(cacheRoot)) return;

        string fallback = Path.Combine(Path.GetTempPath(), $"gpuactivations-pocl-cache-{Environment.UserName}");
        try { Directory.CreateDirectory(fallback); }
        catch (IOException) { return; }
        catch (UnauthorizedAccessException) { return; }
        SetNativeEnvironmentVariable("POCL_CACHE_DIR", fallback);
    }

    static bool IsWritableDirectory(string path)
    {
        try
        {
            Directory.CreateDirectory(path);
            string probe = Path.Combine(path, $".gpuactivations-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    internal static void SetNativeEnvironmentVariable(string name, string value)
    {
        Environment.SetEnvironmentVariable(name, value);
        if (OperatingSystem.IsWindows()) return;
        foreach (string libc in (string[])["libc.so.6", "libc.so", "libc.dylib", "/usr/lib/libSystem.dylib"])
        {
            if (!NativeLibrary.TryLoad(libc, out nint handle)) continue;
            if (NativeLibrary.TryGetExport(handle, "setenv", out nint setenv))
            {
                byte[] n = System.Text.Encoding.UTF8.GetBytes(name + "\0");
                byte[] v = System.Text.Encoding.UTF8.GetBytes(value + "\0");
                fixed (byte* pn = n, pv = v) _ = ((delegate* unmanaged<byte*, byte*, int, int>)setenv)(pn, pv, 1);
                return;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Error checking

    /// <summary>Throws <see cref="OpenCLException"/> when <paramref name="status"/> is not CL_SUCCESS.</summary>
    public static void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != 0) throw OpenCLException.ForCall(call, status);
    }

    /// <summary>For the create calls: checks the error code they wrote and returns the handle they returned.</summary>
    public static nint Checked(nint handle, int status, [CallerArgumentExpression(nameof(handle))] string call = "")
    {
        if (status != 0) throw OpenCLException.ForCall(call, status);
        if (handle == 0) throw new OpenCLException(call + " returned a null handle", status);
        return handle;
    }

    /// <summary>The name of an OpenCL error code, e.g. CL_OUT_OF_RESOURCES.</summary>
    public static string ErrorName(int code) => code switch
    {
        0 => "CL_SUCCESS",
        -1 => "CL_DEVICE_NOT_FOUND",
        -2 => "CL_DEVICE_NOT_AVAILABLE",
        -3 => "CL_COMPILER_NOT_AVAILABLE",
        -4 => "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        -5 => "CL_OUT_OF_RESOURCES",
        -6 => "CL_OUT_OF_HOST_MEMORY",
        -7 => "CL_PROFILING_INFO_NOT_AVAILABLE",
        -8 => "CL_MEM_COPY_OVERLAP",
        -9 => "CL_IMAGE_FORMAT_MISMATCH",
        -10 => "CL_IMAGE_FORMAT_NOT_SUPPORTED",
        -11 => "CL_BUILD_PROGRAM_FAILURE",
        -12 => "CL_MAP_FAILURE",
        -13 => "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        -14 => "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        -15 => "CL_COMPILE_PROGRAM_FAILURE",
        -16 => "CL_LINKER_NOT_AVAILABLE",
        -17 => "CL_LINK_PROGRAM_FAILURE",
        -18 => "CL_DEVICE_PARTITION_FAILED",
        -19 => "CL_KERNEL_ARG_INFO_NOT_AVAILABLE",
        -30 => "CL_INVALID_VALUE",
        -31 => "CL_INVALID_DEVICE_TYPE",
        -32 => "CL_INVALID_PLATFORM",
        -33 => "CL_INVALID_DEVICE",
        -34 => "CL_INVALID_CONTEXT",
        -35 => "CL_INVALID_QUEUE_PROPERTIES",
        -36 => "CL_INVALID_COMMAND_QUEUE",
        -37 => "CL_INVALID_HOST_PTR",
        -38 => "CL_INVALID_MEM_OBJECT",
        -39 => "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR",
        -40 => "CL_INVALID_IMAGE_SIZE",
        -41 => "CL_INVALID_SAMPLER",
        -42 => "CL_INVALID_BINARY",
        -43 => "CL_INVALID_BUILD_OPTIONS",
        -44 => "CL_INVALID_PROGRAM",
        -45 => "CL_INVALID_PROGRAM_EXECUTABLE",
        -46 => "CL_INVALID_KERNEL_NAME",
        -47 => "CL_INVALID_KERNEL_DEFINITION",
        -48 => "CL_INVALID_KERNEL",
        -49 => "CL_INVALID_ARG_INDEX",
        -50 => "CL_INVALID_ARG_VALUE",
        -51 => "CL_INVALID_ARG_SIZE",
        -52 => "CL_INVALID_KERNEL_ARGS",
        -53 => "CL_INVALID_WORK_DIMENSION",
        -54 => "CL_INVALID_WORK_GROUP_SIZE",
        -55 => "CL_INVALID_WORK_ITEM_SIZE",
        -56 => "CL_INVALID_GLOBAL_OFFSET",
        -57 => "CL_INVALID_EVENT_WAIT_LIST",
        -58 => "CL_INVALID_EVENT",
        -59 => "CL_INVALID_OPERATION",
        -60 => "CL_INVALID_GL_OBJECT",
        -61 => "CL_INVALID_BUFFER_SIZE",
        -62 => "CL_INVALID_MIP_LEVEL",
        -63 => "CL_INVALID_GLOBAL_WORK_SIZE",
        -64 => "CL_INVALID_PROPERTY",
        -65 => "CL_INVALID_IMAGE_DESCRIPTOR",
        -66 => "CL_INVALID_COMPILER_OPTIONS",
        -67 => "CL_INVALID_LINKER_OPTIONS",
        -68 => "CL_INVALID_DEVICE_PARTITION_COUNT",
        -69 => "CL_INVALID_PIPE_SIZE",
        -70 => "CL_INVALID_DEVICE_QUEUE",
        -71 => "CL_INVALID_SPEC_ID",
        -72 => "CL_MAX_SIZE_RESTRICTION_EXCEEDED",
        -1001 => "CL_PLATFORM_NOT_FOUND_KHR",
        _ => "CL_UNKNOWN_ERROR",
    };

    // ---------------------------------------------------------------------------------------------
    // Constants (cl.h values)

    internal const ulong CL_DEVICE_TYPE_CPU = 1 << 1;
    internal const ulong CL_DEVICE_TYPE_GPU = 1 << 2;
    internal const ulong CL_DEVICE_TYPE_ALL = 0xFFFFFFFF;

    internal const uint CL_PLATFORM_VERSION = 0x0901;
    internal const uint CL_PLATFORM_NAME = 0x0902;
    internal const uint CL_PLATFORM_VENDOR = 0x0903;

    internal const uint CL_DEVICE_TYPE = 0x1000;
    internal const uint CL_DEVICE_MAX_COMPUTE_UNITS = 0x1002;
    internal const uint CL_DEVICE_MAX_WORK_GROUP_SIZE = 0x1004;
    internal const uint CL_DEVICE_MAX_MEM_ALLOC_SIZE = 0x1010;
    internal const uint CL_DEVICE_GLOBAL_MEM_SIZE = 0x101F;
    internal const uint CL_DEVICE_LOCAL_MEM_SIZE = 0x1023;
    internal const uint CL_DEVICE_NAME = 0x102B;
    internal const uint CL_DEVICE_VENDOR = 0x102C;
    internal const uint CL_DRIVER_VERSION = 0x102D;
    internal const uint CL_DEVICE_VERSION = 0x102F;
    internal const uint CL_DEVICE_PLATFORM = 0x1031;
    internal const uint CL_DEVICE_OPENCL_C_VERSION = 0x103D;

    internal const uint CL_CONTEXT_REFERENCE_COUNT = 0x1080;
    internal const uint CL_CONTEXT_DEVICES = 0x1081;
    internal const uint CL_QUEUE_CONTEXT = 0x1090;
    internal const uint CL_QUEUE_DEVICE = 0x1091;
    internal const uint CL_QUEUE_REFERENCE_COUNT = 0x1092;
    internal const uint CL_QUEUE_PROPERTIES = 0x1093;
    internal const ulong CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE = 1 << 0;

    internal const ulong CL_MEM_READ_WRITE = 1 << 0;

    internal const uint CL_PROGRAM_BUILD_LOG = 0x1183;
    internal const uint CL_KERNEL_WORK_GROUP_SIZE = 0x11B0;

    internal const uint CL_TRUE = 1;
    internal const uint CL_FALSE = 0;

    // ---------------------------------------------------------------------------------------------
    // Info helpers

    /// <summary>A string-valued device property.</summary>
    public string DeviceString(nint device, uint param)
    {
        nuint size;
        Check(clGetDeviceInfo(device, param, 0, null, &size));
        if (size == 0) return "";
        byte[] buffer = new byte[(int)size];
        fixed (byte* p = buffer) Check(clGetDeviceInfo(device, param, size, p, null));
        return DecodeCString(buffer);
    }

    /// <summary>A fixed-size (blittable) device property.</summary>
    public T DeviceValue<T>(nint device, uint param) where T : unmanaged
    {
        T value = default;
        Check(clGetDeviceInfo(device, param, (nuint)sizeof(T), &value, null));
        return value;
    }

    /// <summary>A string-valued platform property.</summary>
    public string PlatformString(nint platform, uint param)
    {
        nuint size;
        Check(clGetPlatformInfo(platform, param, 0, null, &size));
        if (size == 0) return "";
        byte[] buffer = new byte[(int)size];
        fixed (byte* p = buffer) Check(clGetPlatformInfo(platform, param, size, p, null));
        return DecodeCString(buffer);
    }

    /// <summary>The build log of <paramref name="program"/> for <paramref name="device"/> (empty if it cannot be read).</summary>
    public string BuildLog(nint program, nint device)
    {
        nuint size;
        if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, 0, null, &size) != 0 || size == 0) return "";
        byte[] buffer = new byte[(int)size];
        fixed (byte* p = buffer)
        {
            if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, size, p, null) != 0) return "";
        }
        return DecodeCString(buffer);
    }

    static string DecodeCString(byte[] buffer)
    {
        int length = Array.IndexOf(buffer, (byte)0);
        if (length < 0) length = buffer.Length;
        return System.Text.Encoding.UTF8.GetString(buffer, 0, length).Trim();
    }
}

/// <summary>An OpenCL call that returned an error code.</summary>
internal sealed class OpenCLException : AcceleratorException
{
    /// <summary>Creates the exception with its full message.</summary>
    public OpenCLException(string message, int errorCode) : base(message) => ErrorCode = errorCode;

    /// <summary>The exception for the call expression <paramref name="call"/> returning <paramref name="errorCode"/>.</summary>
    public static OpenCLException ForCall(string call, int errorCode) =>
        new($"{call} failed: {OpenCLNative.ErrorName(errorCode)} ({errorCode})", errorCode);

    /// <summary>The OpenCL error code (negative), e.g. -5 for CL_OUT_OF_RESOURCES.</summary>
    public int ErrorCode { get; }

    /// <summary>The name of <see cref="ErrorCode"/>.</summary>
    public string ErrorName => OpenCLNative.ErrorName(ErrorCode);
}
