namespace GpuActivations;

/// <summary>
/// The memory behind a <see cref="DeviceBuffer{T}"/>: host memory, a <c>cl_mem</c> or a <c>CUdeviceptr</c>,
/// owned (freed on Dispose or, if forgotten, by a finalizer-backed handle) or borrowed from an engine.
/// </summary>
internal abstract class BufferStorage : IDisposable
{
    protected BufferStorage(Accelerator accelerator, long bytes)
    {
        Accelerator = accelerator;
        Bytes = bytes;
    }

    /// <summary>The accelerator the memory belongs to.</summary>
    public Accelerator Accelerator { get; }
    /// <summary>The size in bytes.</summary>
    public long Bytes { get; }

    int disposed;
    /// <summary>References to the memory: 1 for the owner until Dispose, plus one per op using it (SafeHandle-style).</summary>
    int references = 1;

    /// <summary>True after Dispose (of the buffer or of its accelerator) or finalization.</summary>
    public bool IsDisposed => Volatile.Read(ref disposed) != 0 || IsReleasedByOwner;

    /// <summary>True when borrowed memory was freed by its owner (an engine disposing its own ILGPU buffer).</summary>
    protected virtual bool IsReleasedByOwner => false;

    /// <summary>
    /// Takes a reference for an op: false once the storage is disposed. While any reference is held, Dispose only marks
    /// the storage disposed; the memory is released when the last reference goes (<see cref="ReleaseReference"/>).
    /// </summary>
    public bool TryAddReference()
    {
        while (true)
        {
            int r = Volatile.Read(ref references);
            if (r == 0 || IsDisposed) return false;
            if (Interlocked.CompareExchange(ref references, r + 1, r) == r) return true;
        }
    }

    /// <summary>Drops a reference; the last one releases the memory.</summary>
    public void ReleaseReference()
    {
        if (Interlocked.Decrement(ref references) == 0) Release();
    }

    /// <summary>The native address of the memory's first byte (a host pointer, a CUDA device pointer; on OpenCL the cl_mem).</summary>
    public abstract nint Handle { get; }

    /// <summary>
    /// The space <see cref="Address"/> counts in, compared with <see cref="object.Equals(object, object)"/>: storages in
    /// different spaces never overlap. By default one flat space per accelerator (host and CUDA pointers); OpenCL memory
    /// objects (cl_mem) are each a space of their own, named by their handle.
    /// </summary>
    public virtual object AddressSpace => Accelerator;

    /// <summary>The first byte's address within <see cref="AddressSpace"/>, for overlap and alignment checks.</summary>
    public virtual long Address => Handle;

    /// <summary>Copies host bytes in at <paramref name="byteOffset"/>.</summary>
    public abstract void Write(long byteOffset, ReadOnlySpan<byte> source);
    /// <summary>Copies bytes out at <paramref name="byteOffset"/>, waiting for queued work first.</summary>
    public abstract void Read(long byteOffset, Span<byte> destination);
    /// <summary>Frees the memory if owned.</summary>
    protected abstract void Release();

    /// <summary>
    /// Frees the memory (if owned) once: now, or when the last op using it finishes; later use throws
    /// <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Dispose()
    {
        if (!TryMarkDisposed()) return;
        ReleaseReference(); // the owner's
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// Marks the storage disposed; true for the one caller (Dispose, the accelerator's Dispose or a finalizer) that
    /// must then call <see cref="Release"/>. A finalizer must go through this too: the accelerator's table of live
    /// buffers (a ConditionalWeakTable) still lists a storage after its finalizer ran, until a later collection, and
    /// disposing the accelerator in between would otherwise release the memory a second time.
    /// </summary>
    private protected bool TryMarkDisposed() => Interlocked.Exchange(ref disposed, 1) == 0;
}
