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

    private protected override BufferStorage AllocateStorage(long bytes) => new Storage(this, device.Allocate(Math.Max(bytes, 4)), bytes);
    private protected override BufferStorage WrapStorage(nint nativeHandle, long bytes) => new Storage(this, nativeHandle, bytes);
    private protected override void ReleaseDevice() => device.Dispose();

    /// <summary>A cl_mem, owned (an <see cref="OpenCLBuffer"/>, freed by its SafeHandle if forgotten) or borrowed.</summary>
    sealed class Storage : BufferStorage
    {
        readonly OpenCLAccelerator owner;
        readonly OpenCLBuffer? owned;
        readonly nint handle;

        public Storage(OpenCLAccelerator owner, OpenCLBuffer buffer, long bytes) : base(owner, bytes)
        {
            this.owner = owner;
            owned = buffer;
            handle = buffer.Handle;
        }

        public Storage(OpenCLAccelerator owner, nint borrowed, long bytes) : base(owner, bytes)
        {
            this.owner = owner;
            handle = borrowed;
        }

        public override nint Handle => handle;
        public override void Write(long byteOffset, ReadOnlySpan<byte> source) { if (!source.IsEmpty) owner.device.Write(handle, byteOffset, source); }
        public override void Read(long byteOffset, Span<byte> destination) { if (!destination.IsEmpty) owner.device.Read(handle, byteOffset, destination); }
        protected override void Release() => owned?.Dispose();
    }
}
