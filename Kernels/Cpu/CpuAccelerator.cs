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

    // Every op goes through Staging: float32 tensors pass straight to the kernel, fp16/bf16 ones are converted a tile at a time.
    private protected override void RunActivation(Activation activation, TensorArg x, TensorArg y)
    {
        if (x.Type == StorageType.BFloat16 && y.Type == StorageType.BFloat16)
            CpuOps.ActivationBFloat16(activation, (ushort*)x.HostPointer, (ushort*)y.HostPointer, x.Length); // converts in registers
        else
            Staging.Run(x.Length, [StagedTensor.In(x, 1), StagedTensor.Out(y, 1)],
            (p, n) => CpuOps.Activation(activation, (float*)p[0], (float*)p[1], n));
    }

    private protected override void RunPRelu(TensorArg x, TensorArg alpha, TensorArg y)
    {
        long channels = alpha.Length;
        Staging.Run(x.Length / channels, [StagedTensor.In(x, channels), StagedTensor.In(alpha, 0), StagedTensor.Out(y, channels)],
            (p, rows) => CpuOps.PRelu((float*)p[0], (float*)p[1], channels, (float*)p[2], rows * channels), widthName: "alpha");
    }

    private protected override void RunGlu(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg y, long rows, long d)
    {
        // bf16 separate and packed halves convert in registers; interleaved pairs and fp16 are staged.
        if (gate.Type == StorageType.BFloat16 && layout != GluLayout.Interleaved)
            CpuOps.GluBFloat16(unit, layout == GluLayout.Packed, (ushort*)gate.HostPointer, (ushort*)up.HostPointer, (ushort*)y.HostPointer,
                layout == GluLayout.Packed ? rows : 1, layout == GluLayout.Packed ? d : y.Length);
        else if (layout != GluLayout.Separate)
            Staging.Run(rows, [StagedTensor.In(gate, 2 * d), StagedTensor.Out(y, d)],
                (p, n) => CpuOps.Glu(unit, layout, (float*)p[0], (float*)p[0], (float*)p[1], n, d), widthName: "d");
        else
            Staging.Run(y.Length, [StagedTensor.In(gate, 1), StagedTensor.In(up, 1), StagedTensor.Out(y, 1)],
                (p, n) => CpuOps.Glu(unit, layout, (float*)p[0], (float*)p[1], (float*)p[2], 1, n));
    }

    private protected override void RunGluBackward(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg dy,
        TensorArg dGate, TensorArg dUp, long rows, long d)
    {
        if (layout != GluLayout.Separate)
            Staging.Run(rows, [StagedTensor.In(gate, 2 * d), StagedTensor.In(dy, d), StagedTensor.Out(dGate, 2 * d)],
                (p, n) => CpuOps.GluBackward(unit, layout, (float*)p[0], (float*)p[0], (float*)p[1], (float*)p[2], (float*)p[2], n, d), widthName: "d");
        else
            Staging.Run(gate.Length, [StagedTensor.In(gate, 1), StagedTensor.In(up, 1), StagedTensor.In(dy, 1), StagedTensor.Out(dGate, 1), StagedTensor.Out(dUp, 1)],
                (p, n) => CpuOps.GluBackward(unit, layout, (float*)p[0], (float*)p[1], (float*)p[2], (float*)p[3], (float*)p[4], 1, n));
    }

    private protected override void RunActivationBackward(Activation activation, bool fromOutput, TensorArg input, TensorArg dy, TensorArg dx)
    {
        if (input.Type == StorageType.BFloat16)
            CpuOps.ActivationBackwardBFloat16(activation, fromOutput, (ushort*)input.HostPointer, (ushort*)dy.HostPointer, (ushort*)dx.HostPointer, input.Length);
        else
            Staging.Run(input.Length, [StagedTensor.In(input, 1), StagedTensor.In(dy, 1), StagedTensor.Out(dx, 1)],
            (p, n) => CpuOps.ActivationBackward(activation, fromOutput, (float*)p[0], (float*)p[1], (float*)p[2], n));
    }

    // dAlpha sums over every row: the 16-bit case is staged tile by tile in row order on one thread, the per-channel sums
    // running on across tiles (the float32 kernel's order, so the same bits).
    private protected override void RunPReluBackward(TensorArg x, TensorArg alpha, TensorArg dy, TensorArg dx, TensorArg dAlpha)
    {
        long channels = alpha.Length, rows = x.Length / channels;
        if (x.IsFloat)
        {
            CpuOps.PReluBackward((float*)x.HostPointer, (float*)alpha.HostPointer, (float*)dy.HostPointer, (float*)dx.HostPointer,
                (float*)dAlpha.HostPointer, channels, x.Length);
            return;
        }
        Staging.CheckRowLength(channels, "alpha"); // before the per-channel sums are allocated
        double[] sums = new double[channels];
        fixed (double* s = sums)
        {
            nint sp = (nint)s;
            Staging.Run(rows, [StagedTensor.In(x, channels), StagedTensor.In(alpha, 0), StagedTensor.In(dy, channels), StagedTensor.Out(dx, channels)],
                (p, n) => CpuOps.PReluBackwardRows((float*)p[0], (float*)p[1], (float*)p[2], (float*)p[3], (double*)sp, channels, n, 0, channels),
                serial: true, widthName: "alpha");
        }
        for (long c = 0; c < channels; c++) ((float*)dAlpha.HostPointer)[c] = (float)sums[c];
    }

    private protected override void RunSoftmax(TensorArg x, TensorArg y, long rows, long cols, bool log, in SoftmaxInput input)
    {
        var (scale, stride, safe) = (input.Scale, input.MaskStride, input.Safe);
        if (!input.HasMask)
        {
            Staging.Run(rows, [StagedTensor.In(x, cols), StagedTensor.Out(y, cols)],
                (p, n) => SoftmaxCpu.Run((float*)p[0], (float*)p[1], n, cols, log, scale, null, 0, safe));
            return;
        }
        // The mask is float32: one row shared by every row (stride 0) or one per row, advanced with the tile.
        Staging.Run(rows, [StagedTensor.In(x, cols), StagedTensor.Out(y, cols), StagedTensor.In(input.Mask, stride)],
            (p, n) => SoftmaxCpu.Run((float*)p[0], (float*)p[1], n, cols, log, scale, (float*)p[2], stride, safe));
    }

    private protected override void RunSoftmaxBackward(TensorArg y, TensorArg dy, TensorArg dx, long rows, long cols, bool log)
        => Staging.Run(rows, [StagedTensor.In(y, cols), StagedTensor.In(dy, cols), StagedTensor.Out(dx, cols)],
            (p, n) => SoftmaxGradCpu.Backward((float*)p[0], (float*)p[1], (float*)p[2], n, cols, log));

    // Targets (int32) and losses (float32) pass through staging untouched, one per row; only logits and their gradient convert.
    private protected override void RunCrossEntropy(TensorArg logits, TensorArg targets, TensorArg losses, TensorArg? dLogits,
        long rows, long cols, CrossEntropyOptions options)
    {
        if (dLogits is not { } gradient)
            Staging.Run(rows, [StagedTensor.In(logits, cols), StagedTensor.In(targets, 1), StagedTensor.Out(losses, 1)],
                (p, n) => SoftmaxGradCpu.CrossEntropy((float*)p[0], (int*)p[1], (float*)p[2], null, n, cols, options));
        else
            Staging.Run(rows, [StagedTensor.In(logits, cols), StagedTensor.In(targets, 1), StagedTensor.Out(losses, 1), StagedTensor.Out(gradient, cols)],
                (p, n) => SoftmaxGradCpu.CrossEntropy((float*)p[0], (int*)p[1], (float*)p[2], (float*)p[3], n, cols, options));
    }

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
