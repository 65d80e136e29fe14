using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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

    private protected override void RunActivation(Activation activation, TensorArg x, TensorArg y) => CpuBackend.Activation(activation, x, y);
    private protected override void RunPRelu(TensorArg x, TensorArg alpha, TensorArg y) => CpuBackend.PRelu(x, alpha, y);
    private protected override void RunGlu(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg y, long rows, long d)
        => CpuBackend.Glu(unit, layout, gate, up, y, rows, d);
    private protected override void RunGluBackward(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg dy,
        TensorArg dGate, TensorArg dUp, long rows, long d) => CpuBackend.GluBackward(unit, layout, gate, up, dy, dGate, dUp, rows, d);
    private protected override void RunActivationBackward(Activation activation, bool fromOutput, TensorArg input, TensorArg dy, TensorArg dx)
        => CpuBackend.ActivationBackward(activation, fromOutput, input, dy, dx);
    private protected override void RunPReluBackward(TensorArg x, TensorArg alpha, TensorArg dy, TensorArg dx, TensorArg dAlpha)
        => CpuBackend.PReluBackward(x, alpha, dy, dx, dAlpha);
    private protected override void RunSoftmax(TensorArg x, TensorArg y, long rows, long cols, bool log, in SoftmaxInput input)
        => CpuBackend.Softmax(x, y, rows, cols, log, input);
    private protected override void RunSoftmaxBackward(TensorArg y, TensorArg dy, TensorArg dx, long rows, long cols, bool log)
        => CpuBackend.SoftmaxBackward(y, dy, dx, rows, cols, log);
    private protected override void RunCrossEntropy(TensorArg logits, TensorArg targets, TensorArg losses, TensorArg? dLogits,
        long rows, long cols, CrossEntropyOptions options) => CpuBackend.CrossEntropy(logits, targets, losses, dLogits, rows, cols, options);

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
