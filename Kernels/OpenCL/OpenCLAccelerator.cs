using GpuActivations.Device;

namespace GpuActivations.OpenCL;

/// <summary>An OpenCL device as an accelerator: buffers are cl_mem objects, ops are queued in order.</summary>
internal sealed class OpenCLAccelerator : DeviceAccelerator
{
    readonly OpenCLDevice device;

    OpenCLAccelerator(AcceleratorInfo info, OpenCLDevice device) : base(info, device) => this.device = device;

    /// <summary>Whether OpenCL is present: its devices as <see cref="AcceleratorInfo"/>, or why not.</summary>
    public static AcceleratorAvailability Probe()
    {
        var discovery = OpenCLDevice.Enumerate();
        return new(AcceleratorKind.OpenCL, [.. discovery.Devices.Select(Describe)], discovery.IsAvailable ? null : discovery.Reason);
    }

    static AcceleratorInfo Describe(OpenCLDeviceInfo d, int index) => new(
        AcceleratorKind.OpenCL, index, d.Name, d.Vendor, d.ComputeUnits, d.GlobalMemoryBytes,
        $"{(d.IsCpu ? "CPU" : "GPU")}, {d.PlatformName}, {d.OpenCLCVersion}");

    /// <summary>Creates the accelerator on device <paramref name="index"/> of <see cref="OpenCLDevice.Enumerate()"/>.</summary>
    public static OpenCLAccelerator Create(int index)
    {
        var info = OpenCLDevice.Enumerate().Devices[index];
        return new(Describe(info, index), OpenCLDevice.Create(info));
    }

    /// <summary>Borrows an engine's context and in-order queue (nothing is retained or released).</summary>
    public static OpenCLAccelerator Wrap(nint context, nint queue)
    {
        var device = OpenCLDevice.Wrap(context, queue);
        return new(Describe(device.Info, -1) with { Details = $"wrapped queue, {device.Info.PlatformName}" }, device);
    }

    private protected override BufferStorage AllocateStorage(long bytes)
    {
        var buffer = device.Allocate(Math.Max(bytes, 4));
        return Owned(buffer, buffer.Handle, bytes);
    }

    private protected override BufferStorage WrapStorage(nint nativeHandle, long bytes) => Borrowed(nativeHandle, bytes);
    private protected override void WriteBytes(nint handle, long byteOffset, ReadOnlySpan<byte> source) => device.Write(handle, byteOffset, source);
    private protected override void ReadBytes(nint handle, long byteOffset, Span<byte> destination) => device.Read(handle, byteOffset, destination);
    private protected override void ReleaseDevice() => device.Dispose();
}
