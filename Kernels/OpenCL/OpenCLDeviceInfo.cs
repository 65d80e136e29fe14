namespace GpuActivations.OpenCL;

/// <summary>One OpenCL device as discovery found it.</summary>
/// <param name="Name">CL_DEVICE_NAME.</param>
/// <param name="Vendor">CL_DEVICE_VENDOR.</param>
/// <param name="ComputeUnits">CL_DEVICE_MAX_COMPUTE_UNITS.</param>
/// <param name="GlobalMemoryBytes">CL_DEVICE_GLOBAL_MEM_SIZE.</param>
/// <param name="OpenCLCVersion">CL_DEVICE_OPENCL_C_VERSION, e.g. "OpenCL C 1.2 PoCL".</param>
/// <param name="PlatformName">CL_PLATFORM_NAME of the device's platform.</param>
/// <param name="DeviceVersion">CL_DEVICE_VERSION.</param>
/// <param name="DriverVersion">CL_DRIVER_VERSION.</param>
/// <param name="IsCpu">Whether CL_DEVICE_TYPE includes CL_DEVICE_TYPE_CPU (PoCL, for instance).</param>
/// <param name="MaxWorkGroupSize">CL_DEVICE_MAX_WORK_GROUP_SIZE.</param>
/// <param name="LocalMemoryBytes">CL_DEVICE_LOCAL_MEM_SIZE.</param>
/// <param name="MaxAllocationBytes">CL_DEVICE_MAX_MEM_ALLOC_SIZE.</param>
/// <param name="Platform">The cl_platform_id.</param>
/// <param name="Device">The cl_device_id.</param>
internal sealed record OpenCLDeviceInfo(
    string Name,
    string Vendor,
    int ComputeUnits,
    long GlobalMemoryBytes,
    string OpenCLCVersion,
    string PlatformName,
    string DeviceVersion,
    string DriverVersion,
    bool IsCpu,
    long MaxWorkGroupSize,
    long LocalMemoryBytes,
    long MaxAllocationBytes,
    nint Platform,
    nint Device)
{
    /// <summary>The binding the ids belong to.</summary>
    internal required OpenCLNative Api { get; init; }

    /// <summary>"name (platform, N CUs, X GiB, OpenCL C version)".</summary>
    public override string ToString() =>
        $"{Name} ({PlatformName}, {ComputeUnits} CUs, {GlobalMemoryBytes / (1024.0 * 1024 * 1024):0.#} GiB, {OpenCLCVersion})";

    /// <summary>Reads the properties of <paramref name="device"/>.</summary>
    internal static OpenCLDeviceInfo Query(OpenCLNative api, nint device)
    {
        nint platform = api.DeviceValue<nint>(device, OpenCLNative.CL_DEVICE_PLATFORM);
        ulong type = api.DeviceValue<ulong>(device, OpenCLNative.CL_DEVICE_TYPE);
        return new OpenCLDeviceInfo(
            Name: api.DeviceString(device, OpenCLNative.CL_DEVICE_NAME),
            Vendor: api.DeviceString(device, OpenCLNative.CL_DEVICE_VENDOR),
            ComputeUnits: (int)api.DeviceValue<uint>(device, OpenCLNative.CL_DEVICE_MAX_COMPUTE_UNITS),
            GlobalMemoryBytes: (long)api.DeviceValue<ulong>(device, OpenCLNative.CL_DEVICE_GLOBAL_MEM_SIZE),
            OpenCLCVersion: api.DeviceString(device, OpenCLNative.CL_DEVICE_OPENCL_C_VERSION),
            PlatformName: api.PlatformString(platform, OpenCLNative.CL_PLATFORM_NAME),
            DeviceVersion: api.DeviceString(device, OpenCLNative.CL_DEVICE_VERSION),
            DriverVersion: api.DeviceString(device, OpenCLNative.CL_DRIVER_VERSION),
            IsCpu: (type & OpenCLNative.CL_DEVICE_TYPE_CPU) != 0,
            MaxWorkGroupSize: (long)api.DeviceValue<nuint>(device, OpenCLNative.CL_DEVICE_MAX_WORK_GROUP_SIZE),
            LocalMemoryBytes: (long)api.DeviceValue<ulong>(device, OpenCLNative.CL_DEVICE_LOCAL_MEM_SIZE),
            MaxAllocationBytes: (long)api.DeviceValue<ulong>(device, OpenCLNative.CL_DEVICE_MAX_MEM_ALLOC_SIZE),
            Platform: platform,
            Device: device)
        { Api = api };
    }
}

/// <summary>What discovery found: the devices, or none and why.</summary>
/// <param name="Devices">Every device of every platform, in platform order.</param>
/// <param name="Reason">Null when devices were found; otherwise a human reason such as "libOpenCL.so.1 not found",
/// "no platform (CL_PLATFORM_NOT_FOUND_KHR -1001)" or "no devices".</param>
internal sealed record OpenCLDiscovery(IReadOnlyList<OpenCLDeviceInfo> Devices, string? Reason)
{
    /// <summary>Whether at least one device was found.</summary>
    public bool IsAvailable => Devices.Count > 0;
}

/// <summary>A device buffer (cl_mem) owned by this library; a forgotten Dispose is released by the finalizer.</summary>
internal sealed class OpenCLBuffer : IDisposable
{
    readonly OpenCLMemHandle _handle;

    internal OpenCLBuffer(OpenCLMemHandle handle, long byteLength)
    {
        _handle = handle;
        ByteLength = byteLength;
    }

    /// <summary>The cl_mem.</summary>
    public nint Handle => _handle.Value;

    /// <summary>The size asked for, in bytes.</summary>
    public long ByteLength { get; }

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => _handle.IsClosed;

    /// <summary>This buffer as a kernel argument, starting <paramref name="elementOffset"/> elements in.</summary>
    public Device.DeviceRegion Region(long elementOffset = 0) => new(Handle, elementOffset);

    /// <summary>Releases the cl_mem (OpenCL defers the free until queued commands using it have finished).</summary>
    public void Dispose() => _handle.Dispose();
}
