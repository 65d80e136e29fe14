namespace GpuActivations.Cuda;

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
