using GpuActivations.Device;

namespace GpuActivations.Cuda;

/// <summary>
/// A CUDA GPU as an accelerator: buffers are <c>CUdeviceptr</c>s, ops are queued in order on one stream (the device's
/// own non-blocking stream, or an engine's), kernels are the shared sources of <c>Kernels/Device</c> compiled by NVRTC
/// for the GPU's own <c>sm_XY</c>. <see cref="CudaDevice"/> makes the context current on the calling thread at every call.
/// </summary>
internal sealed class CudaAccelerator : DeviceAccelerator
{
    readonly CudaDevice device;

    CudaAccelerator(AcceleratorInfo info, CudaDevice device) : base(info, device) => this.device = device;

    /// <summary>The device the ops run on.</summary>
    internal CudaDevice Device => device;

    /// <summary>Whether CUDA is present: its GPUs as <see cref="AcceleratorInfo"/>, or why not (no driver, no GPU, no NVRTC).</summary>
    public static AcceleratorAvailability Probe()
    {
        CudaEnumeration found = CudaDevice.Enumerate();
        return new(AcceleratorKind.Cuda, [.. found.Devices.Select((d, i) => Describe(d, i, NvrtcCompiler.Shared.Api))], found.AbsentReason);
    }

    static AcceleratorInfo Describe(CudaDeviceInfo d, int index, NvrtcCompiler? compiler) => new(
        AcceleratorKind.Cuda, index, d.Name, "NVIDIA", d.MultiprocessorCount, d.TotalMemoryBytes,
        $"compute capability {d.ComputeCapability} ({d.Architecture}), driver {CudaNative.FormatVersion(d.DriverVersion)}" +
        (compiler is null ? "" : $", NVRTC {compiler.Version.Major}.{compiler.Version.Minor}"));

    /// <summary>Creates the accelerator on device <paramref name="index"/> of <see cref="CudaDevice.Enumerate()"/>.</summary>
    public static CudaAccelerator Create(int index)
    {
        CudaEnumeration found = CudaDevice.Enumerate();
        if (!found.IsAvailable) throw new AcceleratorUnavailableException(AcceleratorKind.Cuda, found.AbsentReason ?? "no device");
        CudaDeviceInfo info = found.Devices[index];
        return new(Describe(info, index, NvrtcCompiler.Shared.Api), CudaDevice.Create(info.Ordinal));
    }

    /// <summary>An accelerator over an already opened device (tests: a device on the fake driver). Takes ownership of it.</summary>
    internal static CudaAccelerator Create(CudaDevice device, int index = 0) => new(Describe(device.Info, index, device.Compiler), device);

    /// <summary>
    /// Borrows an engine's context and stream: ops are queued on that stream and nothing is retained, destroyed or
    /// released (the engine keeps both alive while the accelerator is used).
    /// </summary>
    public static CudaAccelerator Wrap(nint context, nint stream)
    {
        NativeLoad<CudaNative> driver = CudaNative.Shared;
        if (driver.Api is null) throw new AcceleratorUnavailableException(AcceleratorKind.Cuda, driver.FailureReason ?? "CUDA driver not loaded");
        NativeLoad<NvrtcCompiler> compiler = NvrtcCompiler.Shared;
        if (compiler.Api is null) throw new AcceleratorUnavailableException(AcceleratorKind.Cuda, compiler.FailureReason ?? "NVRTC not loaded");
        CudaDevice device = CudaDevice.Wrap(context, stream, driver.Api, compiler.Api);
        AcceleratorInfo info = Describe(device.Info, -1, compiler.Api);
        return new(info with { Details = "wrapped context and stream, " + info.Details }, device);
    }

    private protected override BufferStorage AllocateStorage(long bytes)
    {
        // A CudaBuffer is freed by its SafeHandle if forgotten, with the context made current on whichever thread frees it.
        var buffer = device.Allocate(bytes);
        return Owned(buffer, (nint)buffer.Pointer, bytes);
    }

    private protected override BufferStorage WrapStorage(nint nativeHandle, long bytes) => Borrowed(nativeHandle, bytes);
    private protected override void WriteBytes(nint handle, long byteOffset, ReadOnlySpan<byte> source) => device.Write(new DeviceRegion(handle, byteOffset), source);
    private protected override void ReadBytes(nint handle, long byteOffset, Span<byte> destination) => device.Read(new DeviceRegion(handle, byteOffset), destination);
    private protected override void ReleaseDevice() => device.Dispose();
}
