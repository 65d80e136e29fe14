using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace GpuActivations.Kernels;

using IlgpuDevice = ILGPU.Runtime.Accelerator;

internal sealed partial class IlgpuBackend
{
    /// <summary>The accelerator an engine's views convert through: one per ILGPU accelerator, on its default stream, borrowing it.</summary>
    static readonly ConditionalWeakTable<IlgpuDevice, IlgpuBackend> ByDevice = new();

    /// <summary>The library's accelerator over <paramref name="device"/>'s default stream, created once and never owning it.</summary>
    internal static IlgpuBackend Of(IlgpuDevice device) => ByDevice.GetValue(device, d => Over(d, null, runKernels: false));

    /// <summary>Views of every stream's accelerator over the same ILGPU accelerator are the same memory.</summary>
    internal override bool SharesMemoryWith(GpuActivations.Accelerator other)
        => ReferenceEquals(this, other) || other is IlgpuBackend ilgpu && ReferenceEquals(ilgpu.Device, Device);

    /// <summary>
    /// An engine's ILGPU view as a library view, without copying: the buffer behind it is borrowed once per element type
    /// (never freed by the library), so two conversions of one ILGPU buffer are the same library buffer and in-place and
    /// overlap checks see them as such. A default view gives the default <see cref="BufferView{T}"/> and a view of a disposed
    /// buffer a disposed one, which the ops reject naming the argument.
    /// </summary>
    internal static BufferView<T> Borrow<T>(ArrayView<T> view) where T : unmanaged
    {
        var memory = ((IArrayView)view).Buffer;
        if (memory is null) return default;
        long indexInBytes = ((IContiguousArrayView)view).IndexInBytes;
        var buffer = Borrowed<T>.Buffers.GetValue(memory, m =>
        {
            var backend = Of(m.Accelerator);
            var storage = backend.WrapRegion(m, 0, m.LengthInBytes);
            return backend.Track(new DeviceBuffer<T>(storage, m.LengthInBytes / Unsafe.SizeOf<T>()));
        });
        return buffer.Slice(indexInBytes / Unsafe.SizeOf<T>(), view.Length);
    }

    /// <summary>The borrowed library buffers of ILGPU buffers, per element type.</summary>
    static class Borrowed<T> where T : unmanaged
    {
        public static readonly ConditionalWeakTable<MemoryBuffer, DeviceBuffer<T>> Buffers = new();
    }
}
