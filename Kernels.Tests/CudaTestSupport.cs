using System.Diagnostics;
using System.Runtime.InteropServices;
using GpuActivations.Cuda;
using GpuActivations.Device;
using NUnit.Framework;

namespace GpuActivations.Tests.Cuda;

/// <summary>
/// The tests' own CUDA kernels, written to the argument lists documented on <see cref="CudaKernelPlan"/>, so the
/// CUDA backend can be tested before (and independently of) the shared kernel sources.
/// </summary>
internal static class TestKernelSources
{
    /// <summary>The unary test activation: an affine map that uses the parameters.</summary>
    public static readonly DeviceActivation Affine = new("test_affine", "return x * alpha + beta;");

    /// <summary>The GLU test gate activation.</summary>
    public static readonly DeviceActivation Identity = new("test_identity", "return x;");

    public static readonly ICudaSourceProvider Provider = new DelegateSourceProvider(Source);

    public const string AddOne = """
        extern "C" __global__ void test_add_one(const float* x, float* y, long long n)
        {
            const long long stride = (long long)gridDim.x * blockDim.x;
            for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
                y[i] = x[i] + 1.0f;
        }
        """;

    private const string Prelude = """
        typedef long long i64;
        #define GA_NEG_INF __int_as_float((int)0xff800000)
        #define GA_GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

        """;

    public static string Source(string family, DeviceActivation? activation)
    {
        string act = activation is null ? "" :
            $"static __device__ __forceinline__ float ga_activation(float x, float alpha, float beta, float threshold) {{ {activation.Body} }}\n";
        return Prelude + act + family switch
        {
            "unary" => """
                extern "C" __global__ void ga_unary(const float* x, i64 xOffset, float* y, i64 yOffset, i64 n,
                                                    float alpha, float beta, float threshold)
                {
                    GA_GRID_STRIDE(i, n) y[yOffset + i] = ga_activation(x[xOffset + i], alpha, beta, threshold);
                }
                """,
            "prelu" => """
                extern "C" __global__ void ga_prelu(const float* x, i64 xOffset, const float* alpha, i64 alphaOffset, int channels,
                                                    float* y, i64 yOffset, i64 n)
                {
                    GA_GRID_STRIDE(i, n)
                    {
                        const float v = x[xOffset + i];
                        y[yOffset + i] = (v >= 0.0f || v != v) ? v : alpha[alphaOffset + i % channels] * v;
                    }
                }
                """,
            "glu" => """
                extern "C" __global__ void ga_glu(const float* gate, i64 gateOffset, const float* up, i64 upOffset,
                                                  float* y, i64 yOffset, i64 rows, i64 d)
                {
                    GA_GRID_STRIDE(i, rows * d) y[yOffset + i] = ga_activation(gate[gateOffset + i], 0.0f, 0.0f, 0.0f) * up[upOffset + i];
                }
                extern "C" __global__ void ga_glu_packed(const float* gateUp, i64 gateUpOffset, float* y, i64 yOffset, i64 rows, i64 d)
                {
                    GA_GRID_STRIDE(i, rows * d)
                    {
                        const i64 r = i / d, j = i - r * d;
                        const float* row = gateUp + gateUpOffset + r * 2 * d;
                        y[yOffset + i] = ga_activation(row[j], 0.0f, 0.0f, 0.0f) * row[d + j];
                    }
                }
                """,
            "softmax" => """
                static __device__ float warp_max(float v)
                {
                    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
                    return v;
                }
                static __device__ float warp_sum(float v)
                {
                    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
                    return v;
                }
                extern "C" __global__ void ga_softmax_warp(const float* x, i64 xOffset, float* y, i64 yOffset, i64 rows, i64 cols, int logOut)
                {
                    const int lane = threadIdx.x & 31;
                    const i64 warps = blockDim.x >> 5;
                    for (i64 r = (i64)blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += (i64)gridDim.x * warps)
                    {
                        const float* in = x + xOffset + r * cols;
                        float* out = y + yOffset + r * cols;
                        float m = GA_NEG_INF;
                        for (i64 c = lane; c < cols; c += 32) m = fmaxf(m, in[c]);
                        m = warp_max(m);
                        float s = 0.0f;
                        for (i64 c = lane; c < cols; c += 32) s += expf(in[c] - m);
                        s = warp_sum(s);
                        if (logOut) { const float ls = logf(s); for (i64 c = lane; c < cols; c += 32) out[c] = in[c] - m - ls; }
                        else { const float inv = 1.0f / s; for (i64 c = lane; c < cols; c += 32) out[c] = expf(in[c] - m) * inv; }
                    }
                }
                static __device__ float block_reduce(float v, float* scratch, bool isMax)
                {
                    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
                    v = isMax ? warp_max(v) : warp_sum(v);
                    if (lane == 0) scratch[warp] = v;
                    __syncthreads();
                    if (warp == 0)
                    {
                        v = lane < warps ? scratch[lane] : (isMax ? GA_NEG_INF : 0.0f);
                        v = isMax ? warp_max(v) : warp_sum(v);
                        if (lane == 0) scratch[0] = v;
                    }
                    __syncthreads();
                    v = scratch[0];
                    __syncthreads();
                    return v;
                }
                extern "C" __global__ void ga_softmax_block(const float* x, i64 xOffset, float* y, i64 yOffset, i64 rows, i64 cols, int logOut)
                {
                    __shared__ float scratch[32];
                    for (i64 r = blockIdx.x; r < rows; r += gridDim.x)
                    {
                        const float* in = x + xOffset + r * cols;
                        float* out = y + yOffset + r * cols;
                        float m = GA_NEG_INF;
                        for (i64 c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, in[c]);
                        m = block_reduce(m, scratch, true);
                        float s = 0.0f;
                        for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += expf(in[c] - m);
                        s = block_reduce(s, scratch, false);
                        if (logOut) { const float ls = logf(s); for (i64 c = threadIdx.x; c < cols; c += blockDim.x) out[c] = in[c] - m - ls; }
                        else { const float inv = 1.0f / s; for (i64 c = threadIdx.x; c < cols; c += blockDim.x) out[c] = expf(in[c] - m) * inv; }
                    }
                }
                """,
            _ => throw new ArgumentOutOfRangeException(nameof(family), family, "no test kernel family"),
        };
    }
}

/// <summary>What the CUDA tests need from the machine, each found once, with the reason when absent.</summary>
internal static class CudaTestEnvironment
{
    public const string RequireNvrtcVariable = "GPUACTIVATIONS_REQUIRE_NVRTC";

    /// <summary>The shared NVRTC compiler; fails the test when NVRTC is required (CI) and missing, else ignores it.</summary>
    public static NvrtcCompiler RequireNvrtc()
    {
        NativeLoad<NvrtcCompiler> load = NvrtcCompiler.Shared;
        if (load.Api is { } compiler)
            return compiler;
        string message = $"NVRTC is not available: {load.FailureReason}";
        if (Environment.GetEnvironmentVariable(RequireNvrtcVariable) == "1")
            Assert.Fail($"{message} ({RequireNvrtcVariable}=1)");
        Assert.Ignore(message);
        throw new UnreachableException();
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
    public void ClearCurrent() => ((delegate* unmanaged<void>)Export("fakecuda_clear_current"))();
}
