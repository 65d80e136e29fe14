using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace GpuActivations.Kernels;

/// <summary>
/// Device memory another engine owns, seen as a buffer of an ILGPU CUDA or OpenCL accelerator: a <c>CUdeviceptr</c>
/// of the accelerator's context, or a <c>cl_mem</c> of its OpenCL context. ILGPU's kernels take a buffer's
/// <see cref="MemoryBuffer.NativePtr"/> as the device address (CUDA) or the memory object (OpenCL), so a buffer whose
/// native pointer is the engine's gives views over that memory with no copy. Copies and fills go through ILGPU's own
/// CUDA and OpenCL memory operations; disposing frees nothing, because the engine keeps ownership.
/// </summary>
internal sealed class BorrowedDeviceMemory : MemoryBuffer
{
    /// <summary>Borrows <paramref name="bytes"/> bytes at <paramref name="handle"/> on <paramref name="device"/> (CUDA or OpenCL).</summary>
    public BorrowedDeviceMemory(ILGPU.Runtime.Accelerator device, nint handle, long bytes)
        : base(device, bytes, 1)
    {
        if (device.AcceleratorType is not (AcceleratorType.Cuda or AcceleratorType.OpenCL))
            throw new ArgumentException($"Device memory is borrowed on CUDA or OpenCL accelerators, not on {device.AcceleratorType}.", nameof(device));
        NativePtr = handle;
    }

    protected override void MemSet(AcceleratorStream stream, byte value, in ArrayView<byte> targetView)
    {
        if (AcceleratorType == AcceleratorType.Cuda) CudaMemoryBuffer.CudaMemSet(stream as CudaStream, value, targetView);
        else CLMemoryBuffer.CLMemSet((CLStream)stream, value, targetView);
    }

    protected override void CopyFrom(AcceleratorStream stream, in ArrayView<byte> sourceView, in ArrayView<byte> targetView)
        => Copy(stream, sourceView, targetView);

    protected override void CopyTo(AcceleratorStream stream, in ArrayView<byte> sourceView, in ArrayView<byte> targetView)
        => Copy(stream, sourceView, targetView);

    void Copy(AcceleratorStream stream, in ArrayView<byte> source, in ArrayView<byte> target)
    {
        if (AcceleratorType == AcceleratorType.Cuda) CudaMemoryBuffer.CudaCopy(stream as CudaStream, source, target);
        else CLMemoryBuffer.CLCopy((CLStream)stream, source, target);
    }

    /// <summary>Frees nothing: the memory is the engine's.</summary>
    protected override void DisposeAcceleratorObject(bool disposing) => NativePtr = 0;
}
