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

    /// <summary>The softmax rows kernel for x's storage (the dispatch) and y's (here: the same, or float32 for 16-bit logits).</summary>
    readonly record struct SoftmaxLaunch(TensorArg X, TensorArg Y, ArrayView<float> Mask, SoftmaxRowArgs Args) : ILaunch
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            var config = acc.Kernels.Rows(Args.Rows);
            if (Y.IsFloat)
            {
                var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<float>, ArrayView<float>, SoftmaxRowArgs>(
                    SoftmaxKernels.Rows<TFma, T, TStorage, float, Float32Storage>);
                kernel(acc.Stream, config, View<T>(X), View<float>(Y), Mask, Args);
            }
            else
            {
                var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<T>, ArrayView<float>, SoftmaxRowArgs>(
                    SoftmaxKernels.Rows<TFma, T, TStorage, T, TStorage>);
                kernel(acc.Stream, config, View<T>(X), View<T>(Y), Mask, Args);
            }
        }
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
            var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<T>, ArrayView<T>, long, long, int>(SoftmaxBackwardKernels.Rows<TFma, T, TStorage>);
            kernel(acc.Stream, acc.Kernels.Rows(RowCount), View<T>(Y), View<T>(Dy), View<T>(Dx), RowCount, Cols, Log ? 1 : 0);
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
            var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<int>, ArrayView<float>, ArrayView<T>, CrossEntropyArgs>(CrossEntropyKernels.Rows<TFma, T, TStorage>);
            // Without a gradient the logits stand in for it: the kernel never writes there then.
            kernel(acc.Stream, acc.Kernels.Rows(Args.Rows), View<T>(Logits), View<int>(Targets), View<float>(Losses),
                View<T>(Gradient ?? Logits), Args);
        }
    }
}
