namespace GpuActivations.Cuda;

/// <summary>What the driver says about one CUDA device.</summary>
/// <param name="Ordinal">The device's ordinal (<c>cuDeviceGet</c>'s argument).</param>
/// <param name="Name">The marketing name, e.g. "NVIDIA H100 80GB HBM3".</param>
/// <param name="ComputeMajor">Compute capability, major part.</param>
/// <param name="ComputeMinor">Compute capability, minor part.</param>
/// <param name="MultiprocessorCount">Streaming multiprocessors.</param>
/// <param name="TotalMemoryBytes">Global memory.</param>
/// <param name="MemoryClockKHz">Peak memory clock in kHz (0 when the driver does not say).</param>
/// <param name="MemoryBusWidthBits">Memory bus width in bits (0 when the driver does not say).</param>
/// <param name="MaxThreadsPerBlock">The block size limit.</param>
/// <param name="MaxThreadsPerMultiprocessor">Resident threads per SM.</param>
/// <param name="WarpSize">Threads per warp.</param>
/// <param name="DriverVersion">The driver's CUDA version, 1000 * major + 10 * minor.</param>
internal sealed record CudaDeviceInfo(
    int Ordinal,
    string Name,
    int ComputeMajor,
    int ComputeMinor,
    int MultiprocessorCount,
    long TotalMemoryBytes,
    int MemoryClockKHz,
    int MemoryBusWidthBits,
    int MaxThreadsPerBlock,
    int MaxThreadsPerMultiprocessor,
    int WarpSize,
    int DriverVersion)
{
    /// <summary>The architecture NVRTC compiles cubin for, e.g. "sm_90".</summary>
    public string Architecture => $"sm_{ComputeMajor}{ComputeMinor}";

    /// <summary>The compute capability as "major.minor".</summary>
    public string ComputeCapability => $"{ComputeMajor}.{ComputeMinor}";

    /// <summary>
    /// The theoretical memory bandwidth in GB/s from clock and bus width (double data rate), or 0 when unknown.
    /// A ceiling to compare measured copies with, not a measurement.
    /// </summary>
    public double TheoreticalBandwidthGBs => 2.0 * MemoryClockKHz * 1e3 * (MemoryBusWidthBits / 8.0) / 1e9;

    /// <inheritdoc />
    public override string ToString() =>
        $"CUDA device {Ordinal}: {Name} (sm_{ComputeMajor}{ComputeMinor}, {MultiprocessorCount} SMs, " +
        $"{TotalMemoryBytes / (1024.0 * 1024 * 1024):F1} GiB, driver {CudaNative.FormatVersion(DriverVersion)})";
}

/// <summary>
/// The CUDA devices usable by this library, or none and the human reason why
/// ("libcuda.so.1 not found", "cuInit: CUDA_ERROR_NO_DEVICE", "NVRTC not found: ...").
/// </summary>
/// <param name="Devices">The usable devices (empty when CUDA is absent).</param>
/// <param name="AbsentReason">Why there are none; null when there are some.</param>
internal sealed record CudaEnumeration(IReadOnlyList<CudaDeviceInfo> Devices, string? AbsentReason)
{
    /// <summary>Whether at least one device is usable.</summary>
    public bool IsAvailable => Devices.Count > 0;

    /// <summary>No devices, for <paramref name="reason"/>.</summary>
    public static CudaEnumeration Absent(string reason) => new([], reason);
}
