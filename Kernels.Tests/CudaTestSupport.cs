using System.Diagnostics;
using System.Runtime.InteropServices;
using GpuActivations.Cuda;
using GpuActivations.Device;
using NUnit.Framework;

namespace GpuActivations.Tests.Cuda;

/// <summary>
/// The tests' activations and one kernel of their own. The activations are device forms like any other, compiled into
/// the shared kernels of <c>Kernels/Device</c>; the fake driver computes them by name (FakeCudaControls.Use).
/// </summary>
internal static class TestKernelSources
{
    /// <summary>The unary test activation: an affine map that uses the parameters.</summary>
    public static readonly DeviceActivation Affine = new("test_affine", "return x * alpha + beta;");

    /// <summary>The GLU test gate activation.</summary>
    public static readonly DeviceActivation Identity = new("test_identity", "return x;");

    /// <summary>A kernel that is not one of the shared ones (custom modules, launch checks).</summary>
    public const string AddOne = """
        extern "C" __global__ void test_add_one(const float* x, float* y, long long n)
        {
            const long long stride = (long long)gridDim.x * blockDim.x;
            for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
                y[i] = x[i] + 1.0f;
        }
        """;
}

/// <summary>What the CUDA tests need from the machine, each found once, with the reason when absent.</summary>
internal static class CudaTestEnvironment
{
    public const string RequireNvrtcVariable = "GPUACTIVATIONS_REQUIRE_NVRTC";

    /// <summary>The shared NVRTC compiler; fails the test when NVRTC is required (CI) and missing, else ignores it.</summary>
    public static NvrtcCompiler RequireNvrtc()
    {
        (NvrtcCompiler? compiler, string? reason, bool mustFail) = FindNvrtc();
        if (compiler is not null)
            return compiler;
        string message = $"NVRTC is not available: {reason}";
        if (mustFail)
            Assert.Fail($"{message} ({RequireNvrtcVariable}=1)");
        Assert.Ignore(message);
        throw new UnreachableException();
    }

    /// <summary>The shared NVRTC compiler, or why there is none and whether that must fail the test (GPUACTIVATIONS_REQUIRE_NVRTC=1).</summary>
    public static (NvrtcCompiler? Compiler, string? Reason, bool MustFail) FindNvrtc()
    {
        NativeLoad<NvrtcCompiler> load = NvrtcCompiler.Shared;
        return load.Api is { } compiler
            ? (compiler, null, false)
            : (null, load.FailureReason, Environment.GetEnvironmentVariable(RequireNvrtcVariable) == "1");
    }

    private static readonly Lazy<(string? Path, string? Reason)> FakeDriver = new(BuildFakeDriver);

    /// <summary>The CPU stand-in for libcuda built from FakeCuda/fake_libcuda.c; ignores the test when no C compiler is there.</summary>
    public static string RequireFakeDriver()
    {
        (string? path, string? reason) = FakeDriver.Value;
        if (path is null)
            Assert.Ignore($"the fake CUDA driver could not be built: {reason}");
        return path!;
    }

    private static (string?, string?) BuildFakeDriver()
    {
        if (!OperatingSystem.IsLinux())
            return (null, "it is built only on Linux");
        string source = Path.Combine(AppContext.BaseDirectory, "FakeCuda", "fake_libcuda.c");
        if (!File.Exists(source))
            return (null, $"{source} is missing");
        string directory = Path.Combine(Path.GetTempPath(), $"gpuactivations-fakecuda-{Environment.ProcessId}");
        Directory.CreateDirectory(directory);
        string library = Path.Combine(directory, "libgpuactivations-fakecuda.so");
        foreach (string? compiler in new[] { Environment.GetEnvironmentVariable("CC"), "cc", "gcc", "clang" })
        {
            if (string.IsNullOrEmpty(compiler))
                continue;
            try
            {
                var info = new ProcessStartInfo(compiler)
                {
                    RedirectStandardError = true,
                    RedirectStandardOutput = true,
                    UseShellExecute = false,
                };
                foreach (string argument in new[] { "-shared", "-fPIC", "-O1", "-o", library, source, "-lm", "-lpthread" })
                    info.ArgumentList.Add(argument);
                using Process process = Process.Start(info)!;
                string errors = process.StandardError.ReadToEnd();
                process.StandardOutput.ReadToEnd();
                if (!process.WaitForExit(120_000))
                {
                    process.Kill();
                    return (null, $"{compiler} timed out");
                }

                return process.ExitCode == 0 ? (library, null) : (null, $"{compiler} failed: {errors}");
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // not installed: try the next name
            }
        }

        return (null, "no C compiler (cc, gcc, clang) found");
    }
}

/// <summary>The fake driver's inspection exports.</summary>
internal sealed unsafe class FakeCudaControls
{
    private readonly nint _library;

    public FakeCudaControls(string path) => _library = NativeLibrary.Load(path);

    private nint Export(string name) => NativeLibrary.GetExport(_library, name);

    public void SetDeviceCount(int count) => ((delegate* unmanaged<int, void>)Export("fakecuda_set_device_count"))(count);
    public long LiveAllocations => ((delegate* unmanaged<long>)Export("fakecuda_live_allocations"))();
    public long LiveStreams => ((delegate* unmanaged<long>)Export("fakecuda_live_streams"))();
    public long LiveModules => ((delegate* unmanaged<long>)Export("fakecuda_live_modules"))();
    public long LiveEvents => ((delegate* unmanaged<long>)Export("fakecuda_live_events"))();
    public int PrimaryRetains => ((delegate* unmanaged<int>)Export("fakecuda_primary_refs"))();
    public long Launches => ((delegate* unmanaged<long>)Export("fakecuda_launches"))();
    public long ContextErrors => ((delegate* unmanaged<long>)Export("fakecuda_context_errors"))();
    public uint LastGrid => ((delegate* unmanaged<uint>)Export("fakecuda_last_grid"))();
    public uint LastBlock => ((delegate* unmanaged<uint>)Export("fakecuda_last_block"))();
    public uint LastGridY => ((delegate* unmanaged<uint>)Export("fakecuda_last_grid_y"))();
    public uint LastBlockY => ((delegate* unmanaged<uint>)Export("fakecuda_last_block_y"))();
    public string LastKernel => Marshal.PtrToStringUTF8(((delegate* unmanaged<nint>)Export("fakecuda_last_kernel"))()) ?? "";
    public void ClearCurrent() => ((delegate* unmanaged<void>)Export("fakecuda_clear_current"))();

    /// <summary>Makes the fake's unary and GLU kernels compute <paramref name="activation"/> (it cannot read it from the cubin).</summary>
    public void Use(DeviceActivation activation)
    {
        nint name = Marshal.StringToCoTaskMemUTF8(activation.Name);
        try
        {
            if (((delegate* unmanaged<nint, int>)Export("fakecuda_set_activation"))(name) != 0)
                throw new ArgumentException($"the fake driver does not compute '{activation.Name}'", nameof(activation));
        }
        finally
        {
            Marshal.FreeCoTaskMem(name);
        }
    }
}
