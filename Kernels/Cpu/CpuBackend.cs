
namespace GpuActivations.Cpu;

/// <summary>
/// The CPU's ops on validated tensors in host memory: the library's CPU accelerator and ILGPU's CPU accelerator (whose
/// buffers are host memory too) both run them, so an engine's CI on ILGPU's CPU accelerator runs at SIMD speed.
/// </summary>
internal static unsafe class CpuBackend
{
    // Every op goes through Staging: float32 tensors pass straight to the kernel, fp16/bf16 ones are converted a tile at a time.
    public static void Activation(Activation activation, TensorArg x, TensorArg y)
    {
        if (x.Type == StorageType.BFloat16 && y.Type == StorageType.BFloat16)
            CpuOps.ActivationBFloat16(activation, (ushort*)x.HostPointer, (ushort*)y.HostPointer, x.Length); // converts in registers
        else
            Staging.Run(x.Length, [StagedTensor.In(x, 1), StagedTensor.Out(y, 1)],
            (p, n) => CpuOps.Activation(activation, (float*)p[0], (float*)p[1], n));
    }

    public static void PRelu(TensorArg x, TensorArg alpha, TensorArg y)
    {
        long channels = alpha.Length;
        Staging.Run(x.Length / channels, [StagedTensor.In(x, channels), StagedTensor.In(alpha, 0), StagedTensor.Out(y, channels)],
            (p, rows) => CpuOps.PRelu((float*)p[0], (float*)p[1], channels, (float*)p[2], rows * channels), widthName: "alpha");
    }

    public static void Glu(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg y, long rows, long d)
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

    public static void GluBackward(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg dy,
        TensorArg dGate, TensorArg dUp, long rows, long d)
    {
        if (layout != GluLayout.Separate)
            Staging.Run(rows, [StagedTensor.In(gate, 2 * d), StagedTensor.In(dy, d), StagedTensor.Out(dGate, 2 * d)],
                (p, n) => CpuOps.GluBackward(unit, layout, (float*)p[0], (float*)p[0], (float*)p[1], (float*)p[2], (float*)p[2], n, d), widthName: "d");
        else
            Staging.Run(gate.Length, [StagedTensor.In(gate, 1), StagedTensor.In(up, 1), StagedTensor.In(dy, 1), StagedTensor.Out(dGate, 1), StagedTensor.Out(dUp, 1)],
                (p, n) => CpuOps.GluBackward(unit, layout, (float*)p[0], (float*)p[1], (float*)p[2], (float*)p[3], (float*)p[4], 1, n));
    }

    public static void ActivationBackward(Activation activation, bool fromOutput, TensorArg input, TensorArg dy, TensorArg dx)
    {
        if (input.Type == StorageType.BFloat16)
            CpuOps.ActivationBackwardBFloat16(activation, fromOutput, (ushort*)input.HostPointer, (ushort*)dy.HostPointer, (ushort*)dx.HostPointer, input.Length);
        else
            Staging.Run(input.Length, [StagedTensor.In(input, 1), StagedTensor.In(dy, 1), StagedTensor.Out(dx, 1)],
            (p, n) => CpuOps.ActivationBackward(activation, fromOutput, (float*)p[0], (float*)p[1], (float*)p[2], n));
    }

    // dAlpha sums over every row: the 16-bit case is staged tile by tile in row order on one thread, the per-channel sums
    // running on across tiles (the float32 kernel's order, so the same bits).
    public static void PReluBackward(TensorArg x, TensorArg alpha, TensorArg dy, TensorArg dx, TensorArg dAlpha)
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

    public static void Softmax(TensorArg x, TensorArg y, long rows, long cols, bool log, in SoftmaxInput input)
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

    public static void SoftmaxBackward(TensorArg y, TensorArg dy, TensorArg dx, long rows, long cols, bool log)
        => Staging.Run(rows, [StagedTensor.In(y, cols), StagedTensor.In(dy, cols), StagedTensor.Out(dx, cols)],
            (p, n) => SoftmaxGradCpu.Backward((float*)p[0], (float*)p[1], (float*)p[2], n, cols, log));

    // Targets (int32) and losses (float32) pass through staging untouched, one per row; only logits and their gradient convert.
    public static void CrossEntropy(TensorArg logits, TensorArg targets, TensorArg losses, TensorArg? dLogits,
        long rows, long cols, CrossEntropyOptions options)
    {
        if (dLogits is not { } gradient)
            Staging.Run(rows, [StagedTensor.In(logits, cols), StagedTensor.In(targets, 1), StagedTensor.Out(losses, 1)],
                (p, n) => SoftmaxGradCpu.CrossEntropy((float*)p[0], (int*)p[1], (float*)p[2], null, n, cols, options));
        else
            Staging.Run(rows, [StagedTensor.In(logits, cols), StagedTensor.In(targets, 1), StagedTensor.Out(losses, 1), StagedTensor.Out(gradient, cols)],
                (p, n) => SoftmaxGradCpu.CrossEntropy((float*)p[0], (int*)p[1], (float*)p[2], (float*)p[3], n, cols, options));
    }
}
