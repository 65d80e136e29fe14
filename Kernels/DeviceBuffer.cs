using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GpuActivations;

/// <summary>
/// A one-dimensional array of <typeparamref name="T"/> in an accelerator's memory. Create it with
/// <see cref="Accelerator.Allocate{T}(long)"/>; pass it (or a slice of it) to the ops; copy with
/// <see cref="CopyFrom"/> and <see cref="CopyTo"/>. Dispose it to free the memory.
/// </summary>
public sealed class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    internal DeviceBuffer(BufferStorage storage, long length)
    {
        Storage = storage;
        Length = length;
    }

    internal BufferStorage Storage { get; }

    /// <summary>The number of elements.</summary>
    public long Length { get; }

    /// <summary>The accelerator whose memory this is.</summary>
    public Accelerator Accelerator => Storage.Accelerator;

    /// <summary>True once the buffer or its accelerator has been disposed.</summary>
    public bool IsDisposed => Storage.IsDisposed;

    /// <summary>The native handle: a host pointer (CPU), a <c>cl_mem</c> (OpenCL) or a <c>CUdeviceptr</c> (CUDA).</summary>
    public nint NativeHandle => Storage.Handle;

    /// <summary>The whole buffer as a view.</summary>
    public BufferView<T> View => new(this, 0, Length);

    /// <summary>The view of <paramref name="length"/> elements from <paramref name="offset"/>.</summary>
    public BufferView<T> Slice(long offset, long length) => View.Slice(offset, length);

    /// <summary>The view from <paramref name="offset"/> to the end.</summary>
    public BufferView<T> Slice(long offset) => View.Slice(offset);

    /// <summary>Copies <paramref name="source"/> into the buffer; its length must equal <see cref="Length"/>.</summary>
    public void CopyFrom(ReadOnlySpan<T> source) => View.CopyFrom(source);

    /// <summary>Copies the buffer into <paramref name="destination"/>, after queued work finishes; lengths must be equal.</summary>
    public void CopyTo(Span<T> destination) => View.CopyTo(destination);

    /// <summary>A new array holding the buffer's contents (after queued work finishes).</summary>
    public T[] ToArray() => View.ToArray();

    /// <summary>Frees the memory (unless it was borrowed with <see cref="Accelerator.Wrap{T}"/>). Idempotent.</summary>
    public void Dispose() => Storage.Dispose();

    /// <summary>The whole buffer as a view.</summary>
    public static implicit operator BufferView<T>(DeviceBuffer<T> buffer) => buffer.View;

    /// <summary>"DeviceBuffer&lt;Single&gt;[n] on accelerator".</summary>
    public override string ToString() => $"DeviceBuffer<{typeof(T).Name}>[{Length}] on {Accelerator.Info.Name}";
}

/// <summary>
/// A contiguous range of a <see cref="DeviceBuffer{T}"/>: any element offset, no alignment required.
/// Views are cheap values; they do not own memory.
/// </summary>
public readonly struct BufferView<T> where T : unmanaged
{
    internal BufferView(DeviceBuffer<T> buffer, long offset, long length)
    {
        Buffer = buffer;
        Offset = offset;
        Length = length;
    }

    /// <summary>The buffer viewed (null for the default view).</summary>
    public DeviceBuffer<T> Buffer { get; }
    /// <summary>The first element's index in <see cref="Buffer"/>.</summary>
    public long Offset { get; }
    /// <summary>The number of elements.</summary>
    public long Length { get; }
    /// <summary>True when the view has no elements.</summary>
    public bool IsEmpty => Length == 0;

    /// <summary>The sub-view of <paramref name="length"/> elements from <paramref name="offset"/> within this view.</summary>
    public BufferView<T> Slice(long offset, long length)
    {
        if (offset < 0 || offset > Length)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"offset must be in [0, {Length}] for a view of {Length} elements.");
        if (length < 0 || length > Length - offset)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"length must be in [0, {Length - offset}]: the view has {Length} elements and the slice starts at {offset}.");
        return new(Buffer, Offset + offset, length);
    }

    /// <summary>The sub-view from <paramref name="offset"/> to the end.</summary>
    public BufferView<T> Slice(long offset) => Slice(offset, Length - Math.Max(0, Math.Min(offset, Length)));

    /// <summary>Copies <paramref name="source"/> into the view; its length must equal <see cref="Length"/>.</summary>
    public void CopyFrom(ReadOnlySpan<T> source)
    {
        Guard.Live(this, "view");
        if (source.Length != Length)
            throw new ArgumentException($"source has {source.Length} elements but the view has {Length}; slice one of them so the lengths match.", nameof(source));
        // Held for the copy: a Dispose on another thread frees the memory after it, not under it.
        using (Buffer.Storage.Accelerator.Hold(new BufferStorage?[] { Buffer.Storage }))
            Buffer.Storage.Write(Offset * Unsafe.SizeOf<T>(), MemoryMarshal.AsBytes(source));
    }

    /// <summary>Copies the view into <paramref name="destination"/> after queued work finishes; lengths must be equal.</summary>
    public void CopyTo(Span<T> destination)
    {
        Guard.Live(this, "view");
        if (destination.Length != Length)
            throw new ArgumentException($"destination has {destination.Length} elements but the view has {Length}; slice one of them so the lengths match.", nameof(destination));
        using (Buffer.Storage.Accelerator.Hold(new BufferStorage?[] { Buffer.Storage }))
            Buffer.Storage.Read(Offset * Unsafe.SizeOf<T>(), MemoryMarshal.AsBytes(destination));
    }

    /// <summary>A new array holding the view's contents.</summary>
    public T[] ToArray()
    {
        if (Length > Array.MaxLength) throw new InvalidOperationException($"The view has {Length} elements, more than an array holds; copy it in slices.");
        var result = new T[Length];
        CopyTo(result);
        return result;
    }

    /// <summary>
    /// An engine's ILGPU view as a library view, without copying or taking ownership, so an engine passes the views it
    /// holds straight to the ops (<c>ops.Apply(Activation.Gelu, x.View, y.View)</c>). The ops run on the accelerator
    /// <see cref="Accelerator.FromIlgpu"/> returns for the view's ILGPU accelerator (any of its streams). Disposing the
    /// ILGPU buffer is the engine's business: an op on it afterwards throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    public static implicit operator BufferView<T>(ILGPU.ArrayView<T> view) => Kernels.IlgpuBackend.Borrow(view);

    /// <summary>An engine's dense one-dimensional ILGPU view (what <c>MemoryBuffer1D.View</c> gives) as a library view; see the <see cref="ILGPU.ArrayView{T}"/> conversion.</summary>
    public static implicit operator BufferView<T>(ILGPU.Runtime.ArrayView1D<T, ILGPU.Stride1D.Dense> view) => Kernels.IlgpuBackend.Borrow<T>(view);

    /// <summary>"[offset, offset + length) of buffer".</summary>
    public override string ToString() => $"[{Offset}, {Offset + Length}) of {Buffer}";
}
