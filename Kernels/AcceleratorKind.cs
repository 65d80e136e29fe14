namespace GpuActivations;

/// <summary>The kinds of accelerator an op can run on.</summary>
public enum AcceleratorKind
{
    /// <summary>The CPU: SIMD and multi-threaded, always present.</summary>
    Cpu,
    /// <summary>
    /// An OpenCL device through ILGPU's OpenCL accelerator: OpenCL 2.0, or 3.0 with the generic address space (most GPU
    /// drivers; not Debian's PoCL 3.1). The ops are ILGPU kernels compiled to OpenCL C.
    /// </summary>
    OpenCL,
    /// <summary>An NVIDIA GPU through ILGPU's CUDA accelerator (the driver's libcuda.so.1): the ops are ILGPU kernels compiled to PTX.</summary>
    Cuda,
    /// <summary>
    /// Every ILGPU device: the CUDA and OpenCL devices (which <see cref="Cuda"/> and <see cref="OpenCL"/> also list), then
    /// ILGPU's CPU accelerator, on which the ops run the SIMD path on host memory unless the kernels are asked for
    /// (<see cref="Accelerator.FromIlgpu"/>). An accelerator over ILGPU's CPU accelerator reports this kind.
    /// </summary>
    Ilgpu,
}

/// <summary>One device an accelerator can be created on, as <see cref="Accelerator.Enumerate"/> reports it.</summary>
/// <param name="Kind">The accelerator kind.</param>
/// <param name="DeviceIndex">The device's index within its kind, for <see cref="Accelerator.Create(AcceleratorKind, int)"/>.</param>
/// <param name="Name">The device's name, e.g. "NVIDIA H100 80GB HBM3".</param>
/// <param name="Vendor">The device's vendor.</param>
/// <param name="ComputeUnits">Cores (CPU), compute units (OpenCL) or streaming multiprocessors (CUDA).</param>
/// <param name="MemoryBytes">The device's global memory (for the CPU: the memory available to the process).</param>
/// <param name="Details">Further facts: OpenCL C version and platform, compute capability and driver version, SIMD width.</param>
public sealed record AcceleratorInfo(
    AcceleratorKind Kind, int DeviceIndex, string Name, string Vendor, int ComputeUnits, long MemoryBytes, string Details)
{
    /// <summary>"Kind #index: name (details)".</summary>
    public override string ToString() => $"{Kind} #{DeviceIndex}: {Name} ({Details})";
}

/// <summary>Whether a kind of accelerator is present on this machine, its devices, and if absent why.</summary>
/// <param name="Kind">The accelerator kind.</param>
/// <param name="Devices">Its devices; empty when absent.</param>
/// <param name="Reason">Why it is absent (e.g. "libcuda.so.1 not found"); null when present.</param>
public sealed record AcceleratorAvailability(AcceleratorKind Kind, IReadOnlyList<AcceleratorInfo> Devices, string? Reason)
{
    /// <summary>True when at least one device of this kind can be used.</summary>
    public bool IsAvailable => Devices.Count > 0;
}

/// <summary>A failure inside an accelerator's native runtime (a driver error, a kernel build failure, out of device memory).</summary>
public class AcceleratorException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public AcceleratorException(string message) : base(message) { }
    /// <summary>Creates the exception with its message and cause.</summary>
    public AcceleratorException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Thrown by <see cref="Accelerator.Create(AcceleratorKind, int)"/> when the kind or device is not present; the message says why.</summary>
public sealed class AcceleratorUnavailableException : AcceleratorException
{
    /// <summary>Creates the exception for <paramref name="kind"/> with the reason it is absent.</summary>
    public AcceleratorUnavailableException(AcceleratorKind kind, string reason) : base($"No {kind} accelerator: {reason}") => Kind = kind;
    /// <summary>The kind that was asked for.</summary>
    public AcceleratorKind Kind { get; }
}
