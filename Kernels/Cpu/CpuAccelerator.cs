using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using GpuActivations.Device;

namespace GpuActivations.Cpu;

/// <summary>The CPU accelerator: buffers in 64-byte-aligned native memory, ops run synchronously on SIMD cores.</summary>
internal sealed unsafe class CpuAccelerator : Accelerator
{
    CpuAccelerator(AcceleratorInfo info) : base(info) { }

    /// <summary>This machine's CPU as an accelerator.</summary>
    public static AcceleratorInfo Device { get; } = new(
        AcceleratorKind.Cpu, 0, CpuName(), "host", Environment.ProcessorCount, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
        $"{Environment.ProcessorCount} cores, {SimdName()}");

    /// <summary>Creates the CPU accelerator.</summary>
    public static CpuAccelerator Create() => new(Device);

    static string SimdName() => Vector512.IsHardwareAccelerated ? "AVX-512" : Vector256.IsHardwareAccelerated ? "256-bit SIMD" : Vector128.IsHardwareAccelerated ? "128-bit SIMD" : "no SIMD";

    static string CpuName()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return RuntimeInformation.ProcessArchitecture + " CPU";
    }

    static float* Pointer(BufferView<float> view) => (float*)view.Buffer.Storage.Handle + view.Offset;

    private protected override BufferStorage AllocateStorage(long bytes)
    {
        try
        {
            return new HostStorage(this, bytes);
        }
        catch (OutOfMemoryException e)
        {
            // The library's own type, like a device's out-of-memory error; nothing was allocated, the accelerator stays usable.
            throw new AcceleratorException(
                $"Allocating {bytes} bytes of host memory on {Info.Name} failed: out of memory (the aligned allocation returned null: OutOfMemoryException).", e);
        }
    }
    private protected override BufferStorage WrapStorage(nint nativeHandle, long bytes) => new HostStorage(this, nativeHandle, bytes);

    private protected override void RunActivation(Activation activation, BufferView<float> x, BufferView<float> y)
        => CpuOps.Activation(activation, Pointer(x), Pointer(y), x.Length);

    private protected override void RunPRelu(BufferView<float> x, BufferView<float> alpha, BufferView<float> y)
        => CpuOps.PRelu(Pointer(x), Pointer(alpha), alpha.Length, Pointer(y), x.Length);

    private protected override void RunGlu(GatedUnit unit, GluLayout layout, BufferView<float> gate, BufferView<float> up, BufferView<float> y, long rows, long d)
        => CpuOps.Glu(unit, layout, Pointer(gate), Pointer(up), Pointer(y), rows, d);

    private protected override void RunGluBackward(GatedUnit unit, GluLayout layout, BufferView<float> gate, BufferView<float> up, BufferView<float> dy,
        BufferView<float> dGate, BufferView<float> dUp, long rows, long d)
        => CpuOps.GluBackward(unit, layout, Pointer(gate), Pointer(up), Pointer(dy), Pointer(dGate), Pointer(dUp), rows, d);

    private protected override void RunSoftmax(BufferView<float> x, BufferView<float> y, long rows, long cols, bool log)
        => SoftmaxCpu.Run(Pointer(x), Pointer(y), rows, cols, log);

    private protected override void SynchronizeCore() { }

    /// <summary>Native host memory, owned (aligned, freed once) or borrowed from an engine.</summary>
    sealed class HostStorage : BufferStorage
    {
        readonly nint pointer;
        readonly bool owned;

        public HostStorage(Accelerator accelerator, long bytes) : base(accelerator, bytes)
        {
            pointer = (nint)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64);
            owned = true;
            if (bytes > 0) GC.AddMemoryPressure(bytes);
        }

        public HostStorage(Accelerator accelerator, nint borrowed, long bytes) : base(accelerator, bytes) => pointer = borrowed;

        ~HostStorage()
        {
            if (TryMarkDisposed()) Release(); // once, whoever comes first (see TryMarkDisposed)
        }

        public override nint Handle => pointer;

        public override void Write(long byteOffset, ReadOnlySpan<byte> source)
            => Copy(source, (byte*)pointer + byteOffset);

        public override void Read(long byteOffset, Span<byte> destination)
            => Copy((byte*)pointer + byteOffset, destination);

        static void Copy(ReadOnlySpan<byte> source, byte* destination)
        {
            fixed (byte* s = source) Buffer.MemoryCopy(s, destination, source.Length, source.Length);
        }

        static void Copy(byte* source, Span<byte> destination)
        {
            fixed (byte* d = destination) Buffer.MemoryCopy(source, d, destination.Length, destination.Length);
        }

        protected override void Release()
        {
            if (!owned) return;
            NativeMemory.AlignedFree((void*)pointer);
            if (Bytes > 0) GC.RemoveMemoryPressure(Bytes);
        }
    }
}
