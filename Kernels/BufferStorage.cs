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
    /// <summary>True after Dispose (of the buffer or of its accelerator).</summary>
    public bool IsDisposed { get; private set; }
    /// <summary>The native handle the kernels receive (host pointer, cl_mem or CUdeviceptr).</summary>
    public abstract nint Handle { get; }

    /// <summary>Copies host bytes in at <paramref name="byteOffset"/>.</summary>
    public abstract void Write(long byteOffset, ReadOnlySpan<byte> source);
    /// <summary>Copies bytes out at <paramref name="byteOffset"/>, waiting for queued work first.</summary>
    public abstract void Read(long byteOffset, Span<byte> destination);
    /// <summary>Frees the memory if owned.</summary>
    protected abstract void Release();

    /// <summary>Frees the memory (if owned) once; later use throws <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (this)
        {
            if (IsDisposed) return;
            IsDisposed = true;
        }
        Release();
        GC.SuppressFinalize(this);
    }
}
