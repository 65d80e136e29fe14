using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace GpuActivations.Kernels;

using IlgpuAccelerator = ILGPU.Runtime.Accelerator;

/// <summary>
/// A library buffer's memory on an ILGPU accelerator: a byte buffer ILGPU allocated (owned, freed once), or memory an
/// engine owns (a host pointer, a <c>CUdeviceptr</c> or a <c>cl_mem</c>, or a view of the engine's own ILGPU buffer) that is borrowed
/// and never freed. Kernels see it as typed <see cref="ArrayView{T}"/>s at any element offset (<see cref="View{T}"/>).
/// </summary>
internal sealed class IlgpuStorage : BufferStorage
{
    readonly IDisposable? owned;
    readonly MemoryBuffer memory;
    readonly long byteIndex;
    readonly AcceleratorStream stream;

    IlgpuStorage(GpuActivations.Accelerator owner, MemoryBuffer memory, long byteIndex, long bytes, IDisposable? owns, AcceleratorStream stream)
        : base(owner, bytes)
    {
        this.memory = memory;
        this.byteIndex = byteIndex;
        this.stream = stream;
        owned = owns;
    }

    /// <summary>Allocates <paramref name="bytes"/> on <paramref name="device"/> (at least one byte: ILGPU refuses empty buffers).</summary>
    public static IlgpuStorage Allocate(GpuActivations.Accelerator owner, IlgpuAccelerator device, AcceleratorStream stream, long bytes)
    {
        try
        {
            var buffer = device.Allocate1D<byte>(Math.Max(bytes, 1));
            return new IlgpuStorage(owner, ((IArrayView)buffer.View).Buffer, 0, bytes, owns: buffer, stream);
        }
        catch (Exception e) when (e is OutOfMemoryException or AcceleratorException or InvalidOperationException)
        {
            throw new AcceleratorException($"Allocating {bytes} bytes on {device.Name} ({device.AcceleratorType}) failed{(e is OutOfMemoryException ? " (out of memory)" : "")}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Borrows memory an engine owns (no copy, not freed): host memory at <paramref name="handle"/> on ILGPU's CPU
    /// accelerator, a <c>CUdeviceptr</c> of the accelerator's context on CUDA, a <c>cl_mem</c> of its context on OpenCL.
    /// </summary>
    public static IlgpuStorage WrapNative(GpuActivations.Accelerator owner, IlgpuAccelerator device, AcceleratorStream stream, nint handle, long bytes)
    {
        MemoryBuffer buffer = device.AcceleratorType == AcceleratorType.CPU
            ? CPUMemoryBuffer.Create(device, handle, Math.Max(bytes, 1), 1)
            : new BorrowedDeviceMemory(device, handle, Math.Max(bytes, 1));
        return new IlgpuStorage(owner, buffer, 0, bytes, owns: null, stream);
    }

    /// <summary>Borrows the memory behind an engine's own ILGPU view (no copy, not freed).</summary>
    public static IlgpuStorage WrapView(GpuActivations.Accelerator owner, AcceleratorStream stream, MemoryBuffer buffer, long byteIndex, long bytes)
        => new(owner, buffer, byteIndex, bytes, owns: null, stream);

    /// <summary>The ILGPU buffer the memory lives in.</summary>
    public MemoryBuffer Memory => memory;

    /// <summary>The byte offset of this storage within <see cref="Memory"/>.</summary>
    public long ByteIndex => byteIndex;

    /// <summary>The native address of the first byte: a host pointer on ILGPU's CPU accelerator, a device pointer on CUDA.</summary>
    public override nint Handle => memory.NativePtr + (nint)byteIndex;

    /// <summary>
    /// On OpenCL the memory object's handle (a cl_mem is no address: distinct objects never alias, an object's base is
    /// aligned to at least 128 bytes, CL_DEVICE_MEM_BASE_ADDR_ALIGN, and the engine's object borrowed twice, or an ILGPU
    /// buffer's object borrowed, is still one space), elsewhere the accelerator's flat address space.
    /// </summary>
    public override object AddressSpace => memory.AcceleratorType == AcceleratorType.OpenCL ? memory.NativePtr : base.AddressSpace;

    /// <summary>The byte offset within the OpenCL buffer, elsewhere the native address.</summary>
    public override long Address => memory.AcceleratorType == AcceleratorType.OpenCL ? byteIndex : Handle;

    /// <summary>
    /// <paramref name="length"/> elements of <typeparamref name="T"/> from element <paramref name="offset"/>. Element offsets are
    /// multiples of the element size in bytes, and ILGPU buffers are aligned to more than that, so the view's index is exact.
    /// </summary>
    public ArrayView<T> View<T>(long offset, long length) where T : unmanaged
    {
        long size = Interop.SizeOf<T>();
        return new ArrayView<T>(memory, byteIndex / size + offset, length);
    }

    public override void Write(long byteOffset, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty) return;
        View<byte>(byteOffset, source.Length).CopyFromCPU(stream, source);
        stream.Synchronize();
    }

    public override void Read(long byteOffset, Span<byte> destination)
    {
        if (destination.IsEmpty) return;
        View<byte>(byteOffset, destination.Length).CopyToCPU(stream, destination);
        stream.Synchronize();
    }

    protected override bool IsReleasedByOwner => memory.IsDisposed;

    protected override void Release() => owned?.Dispose();
}
