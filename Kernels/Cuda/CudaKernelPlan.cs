using GpuActivations.Device;

namespace GpuActivations.Cuda;

/// <summary>
/// Supplies CUDA C++ source text for a kernel family ("unary", "prelu", "glu", "softmax"), specialised for an
/// activation where the family takes one (null otherwise). The text is compiled once per (family, activation name)
/// per device, so it must depend only on those. Kernels are <c>extern "C"</c>, named as in <see cref="CudaKernelPlan"/>.
/// </summary>
internal interface ICudaSourceProvider
{
    /// <summary>The complete CUDA C++ source (prelude included) of <paramref name="family"/> for <paramref name="activation"/>.</summary>
    string Source(string family, DeviceActivation? activation);
}

/// <summary>An <see cref="ICudaSourceProvider"/> over a delegate.</summary>
internal sealed class DelegateSourceProvider(Func<string, DeviceActivation?, string> source) : ICudaSourceProvider
{
    /// <inheritdoc />
    public string Source(string family, DeviceActivation? activation) => source(family, activation);
}

/// <summary>
/// The kernel families, entry names and launch shapes the <see cref="IDeviceKernels"/> methods of <see cref="CudaDevice"/>
/// use. The kernels these names stand for take exactly these arguments (every pointer is a <c>CUdeviceptr</c> base
/// followed by a 64-bit element offset, as in <see cref="DeviceRegion"/>; <c>i64</c> is <c>long</c> in OpenCL C and
/// <c>long long</c> in CUDA C++; every loop is grid-stride, so any grid size is correct):
/// <code>
/// family "unary":   ga_unary(const float* x, i64 xOffset, float* y, i64 yOffset, i64 n,
///                            float alpha, float beta, float threshold)
///                   y[i] = ga_activation(x[i], alpha, beta, threshold), i in [0, n)
/// family "prelu":   ga_prelu(const float* x, i64 xOffset, const float* alpha, i64 alphaOffset, int channels,
///                            float* y, i64 yOffset, i64 n)
///                   y[i] = x[i] &gt;= 0 || isnan(x[i]) ? x[i] : alpha[i % channels] * x[i]
/// family "glu":     ga_glu(const float* gate, i64 gateOffset, const float* up, i64 upOffset,
///                          float* y, i64 yOffset, i64 rows, i64 d)
///                   y[i] = ga_activation(gate[i], 0, 0, 0) * up[i], i in [0, rows*d)
///                   ga_glu_packed(const float* gateUp, i64 gateUpOffset, float* y, i64 yOffset, i64 rows, i64 d)
///                   y[r*d + j] = ga_activation(gateUp[r*2d + j], 0, 0, 0) * gateUp[r*2d + d + j]
/// family "softmax": ga_softmax_warp (const float* x, i64 xOffset, float* y, i64 yOffset, i64 rows, i64 cols, int log)
///                   one 32-lane warp per row, blockDim.x = 32 * SoftmaxWarpsPerBlock, rows strided by
///                   gridDim.x * (blockDim.x / 32); used when cols &lt;= SoftmaxWarpMaxColumns
///                   ga_softmax_block(const float* x, i64 xOffset, float* y, i64 yOffset, i64 rows, i64 cols, int log)
///                   one block per row, blockDim.x = SoftmaxBlockSize (a multiple of 32, at most 1024), rows strided
///                   by gridDim.x; reduction scratch is the kernel's own static shared memory (no dynamic shared memory)
/// </code>
/// Elementwise launches are 1-D: <see cref="ElementwiseBlockSize"/> threads, at most
/// <see cref="BlocksPerMultiprocessor"/> blocks per SM (fewer for small n).
/// </summary>
internal sealed record CudaKernelPlan
{
    /// <summary>The plan the shared kernel sources are written against.</summary>
    public static CudaKernelPlan Default { get; } = new();

    /// <summary>Family of the elementwise activation kernel.</summary>
    public string UnaryFamily { get; init; } = "unary";

    /// <summary>Entry of the elementwise activation kernel.</summary>
    public string UnaryEntry { get; init; } = "ga_unary";

    /// <summary>Family of the PReLU kernel.</summary>
    public string PReluFamily { get; init; } = "prelu";

    /// <summary>Entry of the PReLU kernel.</summary>
    public string PReluEntry { get; init; } = "ga_prelu";

    /// <summary>Family of the gated-unit kernels.</summary>
    public string GluFamily { get; init; } = "glu";

    /// <summary>Entry of the gated unit over separate gate and up buffers.</summary>
    public string GluEntry { get; init; } = "ga_glu";

    /// <summary>Entry of the gated unit over one packed [rows, 2d] buffer.</summary>
    public string GluPackedEntry { get; init; } = "ga_glu_packed";

    /// <summary>Family of the softmax kernels.</summary>
    public string SoftmaxFamily { get; init; } = "softmax";

    /// <summary>Entry of the warp-per-row softmax (short rows).</summary>
    public string SoftmaxWarpEntry { get; init; } = "ga_softmax_warp";

    /// <summary>Entry of the block-per-row softmax (long rows).</summary>
    public string SoftmaxBlockEntry { get; init; } = "ga_softmax_block";

    /// <summary>Threads per block of elementwise and GLU launches.</summary>
    public int ElementwiseBlockSize { get; init; } = 256;

    /// <summary>Blocks per SM, at most, of grid-stride launches (enough resident warps to cover memory latency).</summary>
    public int BlocksPerMultiprocessor { get; init; } = 8;

    /// <summary>Rows up to this many columns use the warp-per-row softmax.</summary>
    public long SoftmaxWarpMaxColumns { get; init; } = 1024;

    /// <summary>Warps (rows) per block of the warp-per-row softmax.</summary>
    public int SoftmaxWarpsPerBlock { get; init; } = 8;

    /// <summary>Threads per block of the block-per-row softmax.</summary>
    public int SoftmaxBlockSize { get; init; } = 512;
}

/// <summary>One kernel argument as <c>cuLaunchKernel</c> reads it: up to 8 bytes, little-endian, low bytes first.</summary>
internal readonly struct KernelArgument
{
    private KernelArgument(ulong bits) => Bits = bits;

    /// <summary>The value's bytes (a 4-byte value sits in the low half).</summary>
    public ulong Bits { get; }

    /// <summary>A device pointer (<c>CUdeviceptr</c>, 8 bytes).</summary>
    public static KernelArgument Pointer(ulong devicePointer) => new(devicePointer);

    /// <summary>A device pointer (<c>CUdeviceptr</c>, 8 bytes) from a native handle.</summary>
    public static KernelArgument Pointer(nint devicePointer) => new((ulong)devicePointer);

    /// <summary>A 64-bit integer (<c>long long</c>).</summary>
    public static KernelArgument Int64(long value) => new((ulong)value);

    /// <summary>A 32-bit integer (<c>int</c>).</summary>
    public static KernelArgument Int32(int value) => new((uint)value);

    /// <summary>A 32-bit float.</summary>
    public static KernelArgument Float32(float value) => new(BitConverter.SingleToUInt32Bits(value));
}

/// <summary>A launch configuration: a 2-D grid of (up to) 2-D blocks and the dynamic shared memory.</summary>
/// <param name="GridX">Blocks in x.</param>
/// <param name="BlockX">Threads per block in x.</param>
/// <param name="SharedBytes">Dynamic shared memory per block.</param>
/// <param name="GridY">Blocks in y.</param>
/// <param name="BlockY">Threads per block in y.</param>
internal readonly record struct LaunchShape(uint GridX, uint BlockX, uint SharedBytes = 0, uint GridY = 1, uint BlockY = 1)
{
    /// <summary>Threads per block.</summary>
    public ulong ThreadsPerBlock => (ulong)BlockX * BlockY;
}

/// <summary>A kernel entry point in a loaded module.</summary>
/// <param name="Function">The <c>CUfunction</c>.</param>
/// <param name="Name">The entry's name.</param>
internal readonly record struct CudaKernel(nint Function, string Name);
