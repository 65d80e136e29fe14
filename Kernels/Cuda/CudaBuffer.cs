using System.Runtime.InteropServices;
using GpuActivations.Device;

namespace GpuActivations.Cuda;

/// <summary>
/// A CUDA context this library uses. For a device it created, it holds one retain of the device's primary context and
/// releases it (<c>cuDevicePrimaryCtxRelease</c>) when the device is disposed and the last buffer allocated from it is
/// freed: each owned <see cref="CudaBuffer"/> holds a reference on this handle. A wrapped (engine-owned) context is
/// never released.
/// </summary>
internal sealed class CudaContextHandle : SafeHandle
{
    private readonly CudaNative _cu;

    /// <summary>Wraps <paramref name="context"/>; <paramref name="ownsPrimaryRetain"/> when it came from <c>cuDevicePrimaryCtxRetain</c>.</summary>
    public CudaContextHandle(CudaNative cu, nint context, int device, bool ownsPrimaryRetain)
        : base(0, ownsPrimaryRetain)
    {
        _cu = cu;
        Device = device;
        SetHandle(context);
    }

    /// <summary>The <c>CUdevice</c> the context belongs to.</summary>
    public int Device { get; }

    /// <summary>The <c>CUcontext</c>.</summary>
    public nint Context => handle;

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override unsafe bool ReleaseHandle() => _cu.cuDevicePrimaryCtxRelease(Device) == CudaResult.Success;
}

/// <summary>
/// Device memory: a <c>CUdeviceptr</c> and its size. An owned buffer is freed with <c>cuMemFree_v2</c> (its context made
/// current first, on whichever thread frees it) on <see cref="SafeHandle.Dispose()"/> or finalisation; a wrapped one
/// (an engine's pointer) is never freed.
/// </summary>
internal sealed class CudaBuffer : SafeHandle
{
    private readonly CudaNative _cu;
    private readonly CudaContextHandle _context;
    private readonly bool _holdsContext;

    internal CudaBuffer(CudaNative cu, CudaContextHandle context, ulong pointer, long bytes, bool owns)
        : base(0, owns && pointer != 0)
    {
        _cu = cu;
        _context = context;
        Bytes = bytes;
        if (owns && pointer != 0)
        {
            bool added = false;
            context.DangerousAddRef(ref added);
            _holdsContext = added;
        }

        SetHandle((nint)pointer);
    }

    /// <summary>The size in bytes.</summary>
    public long Bytes { get; }

    /// <summary>Whether this buffer frees its memory (false for a wrapped engine pointer).</summary>
    public bool OwnsMemory => _holdsContext;

    /// <summary>The <c>CUdeviceptr</c> (0 for an empty buffer).</summary>
    public ulong Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsClosed, this);
            return (ulong)handle;
        }
    }

    /// <summary>The region a kernel sees: this buffer at <paramref name="elementOffset"/> elements.</summary>
    public DeviceRegion Region(long elementOffset = 0) => new((nint)Pointer, elementOffset);

    /// <summary>Elements of <typeparamref name="T"/> that fit.</summary>
    public unsafe long Length<T>() where T : unmanaged => Bytes / sizeof(T);

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override unsafe bool ReleaseHandle()
    {
        try
        {
            // Contexts are per thread: the finaliser thread or a worker thread may be the one freeing.
            int result = _cu.cuCtxSetCurrent(_context.Context);
            if (result == CudaResult.Success)
                result = _cu.cuMemFree((ulong)handle);
            return result == CudaResult.Success;
        }
        finally
        {
            if (_holdsContext)
                _context.DangerousRelease();
        }
    }
}
