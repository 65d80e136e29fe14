using GpuActivations.Cpu;
using ILGPU;
using ILGPU.Runtime;
using Half = ILGPU.Half;

namespace GpuActivations.Kernels;

internal sealed partial class IlgpuBackend
{
    private protected override void RunSoftmax(TensorArg x, TensorArg y, long rows, long cols, bool log, in SoftmaxInput input)
    {
        if (!RunsKernels) { CpuBackend.Softmax(x, y, rows, cols, log, input); return; }
        var args = new SoftmaxRowArgs(rows, cols, input.MaskStride, input.Scale, log, input.HasMask, input.Safe);
        var mask = input.HasMask ? FloatView(input.Mask) : Kernels.Placeholder;
        Dispatch(new SoftmaxLaunch(x, y, mask, args), x.Type);
    }

    /// <summary>The softmax kernels of the row plan (<see cref="SoftmaxPlan"/>) for x's storage (the dispatch) and y's (here: the same, or float32 for 16-bit logits).</summary>
    readonly record struct SoftmaxLaunch(TensorArg X, TensorArg Y, ArrayView<float> Mask, SoftmaxRowArgs Args) : ILaunch
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            if (Y.IsFloat) Run<TFma, T, TStorage, float, Float32Storage>(acc, View<float>(Y));
            else Run<TFma, T, TStorage, T, TStorage>(acc, View<T>(Y));
        }

        void Run<TFma, T, TStorage, TOut, TOutStorage>(IlgpuBackend acc, ArrayView<TOut> y)
            where TFma : struct, IFusedMultiplyAdd
            where T : unmanaged where TStorage : struct, IStorage<T>
            where TOut : unmanaged where TOutStorage : struct, IStorage<TOut>
        {
            var plan = SoftmaxPlan.For(Args.Rows, Args.Cols, acc.Kernels.RowDevice);
            var config = new KernelConfig(plan.Groups, plan.GroupSize);
            var x = View<T>(X);
            if (plan.Kind != SoftmaxPlanKind.Split)
            {
                var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<TOut>, ArrayView<float>, SoftmaxRowArgs>(plan.Kind == SoftmaxPlanKind.Warp
                    ? SoftmaxKernels.WarpRows<TFma, T, TStorage, TOut, TOutStorage>
                    : SoftmaxKernels.Rows<TFma, T, TStorage, TOut, TOutStorage>);
                kernel(acc.Stream, config, x, y, Mask, Args);
                return;
            }
            var split = new SoftmaxSplitArgs(Args.Rows, plan.Segments, plan.SegmentLength);
            var max = acc.Kernels.Get<ArrayView<T>, ArrayView<float>, ArrayView<float>, SoftmaxRowArgs, SoftmaxSplitArgs>(SoftmaxKernels.SplitMax<TFma, T, TStorage>);
            var sum = acc.Kernels.Get<ArrayView<T>, ArrayView<float>, ArrayView<float>, SoftmaxRowArgs, SoftmaxSplitArgs>(SoftmaxKernels.SplitSum<TFma, T, TStorage>);
            var write = acc.Kernels.Get<ArrayView<T>, ArrayView<TOut>, ArrayView<float>, ArrayView<float>, SoftmaxRowArgs, SoftmaxSplitArgs>(
                SoftmaxKernels.SplitWrite<TFma, T, TStorage, TOut, TOutStorage>);
            // The three launches queue back to back under the scratch's lock: stream order then keeps another thread's
            // split on this stream from touching the partials between them.
            lock (acc.splitLock)
            {
                var partials = acc.SplitScratch(split.Parts * SoftmaxSplitArgs.FloatsPerPart);
                max(acc.Stream, config, x, Mask, partials, Args, split);
                sum(acc.Stream, config, x, Mask, partials, Args, split);
                write(acc.Stream, config, x, y, Mask, partials, Args, split);
            }
        }
    }

    /// <summary>Guards <see cref="splitScratch"/> and orders the split plan's launches (<see cref="SoftmaxLaunch"/>).</summary>
    readonly object splitLock = new();

    /// <summary>
    /// The split plan's partials, allocated on first use at the most any plan of this device needs
    /// (<see cref="RowDevice.ScratchFloats"/>), so it never grows and is never freed while kernels of this stream may
    /// use it; it goes with the accelerator (<see cref="ReleaseDevice"/>, after the base class has synchronized).
    /// </summary>
    MemoryBuffer1D<float, Stride1D.Dense>? splitScratch;

    /// <summary>The first <paramref name="floats"/> of the split scratch (under <see cref="splitLock"/>).</summary>
    ArrayView<float> SplitScratch(long floats)
    {
        long capacity = Kernels.RowDevice.ScratchFloats;
        if (floats > capacity)
            throw new InvalidOperationException($"A softmax split plan needs {floats} floats of scratch, more than the {capacity} its device's plans are bounded by.");
        splitScratch ??= Device.Allocate1D<float>(capacity);
        return splitScratch.View.SubView(0, floats);
    }

    /// <summary>
    /// The launch of a row kernel without a split plan (softmax backward, cross-entropy): <see cref="SoftmaxPlan"/>'s warp
    /// per row where it takes one, else a group per row.
    /// </summary>
    (bool Warp, KernelConfig Config) RowLaunch(long rows, long cols)
    {
        var plan = SoftmaxPlan.For(rows, cols, Kernels.RowDevice);
        return plan.Kind == SoftmaxPlanKind.Warp ? (true, new KernelConfig(plan.Groups, plan.GroupSize)) : (false, Kernels.Rows(rows));
    }

    private protected override void RunSoftmaxBackward(TensorArg y, TensorArg dy, TensorArg dx, long rows, long cols, bool log)
    {
        if (!RunsKernels) { CpuBackend.SoftmaxBackward(y, dy, dx, rows, cols, log); return; }
        Dispatch(new SoftmaxBackwardLaunch(y, dy, dx, rows, cols, log), y.Type);
    }

    readonly record struct SoftmaxBackwardLaunch(TensorArg Y, TensorArg Dy, TensorArg Dx, long RowCount, long Cols, bool Log) : ILaunch
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            var (warp, config) = acc.RowLaunch(RowCount, Cols);
            var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<T>, ArrayView<T>, long, long, int>(warp
                ? SoftmaxBackwardKernels.WarpRows<TFma, T, TStorage>
                : SoftmaxBackwardKernels.Rows<TFma, T, TStorage>);
            kernel(acc.Stream, config, View<T>(Y), View<T>(Dy), View<T>(Dx), RowCount, Cols, Log ? 1 : 0);
        }
    }

    private protected override void RunCrossEntropy(TensorArg logits, TensorArg targets, TensorArg losses, TensorArg? dLogits,
        long rows, long cols, CrossEntropyOptions options)
    {
        if (!RunsKernels) { CpuBackend.CrossEntropy(logits, targets, losses, dLogits, rows, cols, options); return; }
        Dispatch(new CrossEntropyLaunch(logits, targets, losses, dLogits, new CrossEntropyArgs(rows, cols, options, dLogits is not null)), logits.Type);
    }

    readonly record struct CrossEntropyLaunch(TensorArg Logits, TensorArg Targets, TensorArg Losses, TensorArg? Gradient, CrossEntropyArgs Args) : ILaunch
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            var (warp, config) = acc.RowLaunch(Args.Rows, Args.Cols);
            var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<int>, ArrayView<float>, ArrayView<T>, CrossEntropyArgs>(warp
                ? CrossEntropyKernels.WarpRows<TFma, T, TStorage>
                : CrossEntropyKernels.Rows<TFma, T, TStorage>);
            // Without a gradient the logits stand in for it: the kernel never writes there then.
            kernel(acc.Stream, config, View<T>(Logits), View<int>(Targets), View<float>(Losses), View<T>(Gradient ?? Logits), Args);
        }
    }
}
