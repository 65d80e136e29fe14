using GpuActivations.Cpu;
using GpuActivations.Device;
using ILGPU.Runtime;

namespace GpuActivations.Kernels;

internal sealed partial class IlgpuBackend
{
    // The softmax family's ILGPU kernels are not wired in yet: on ILGPU's CPU accelerator these ops run the SIMD path
    // on host memory whatever RunsKernels says; on a GPU they refuse rather than touch device memory from the host.
    private protected override void RunSoftmax(TensorArg x, TensorArg y, long rows, long cols, bool log, in SoftmaxInput input)
    {
        RequireHost("Softmax");
        CpuBackend.Softmax(x, y, rows, cols, log, input);
    }

    private protected override void RunSoftmaxBackward(TensorArg y, TensorArg dy, TensorArg dx, long rows, long cols, bool log)
    {
        RequireHost("SoftmaxBackward");
        CpuBackend.SoftmaxBackward(y, dy, dx, rows, cols, log);
    }

    private protected override void RunCrossEntropy(TensorArg logits, TensorArg targets, TensorArg losses, TensorArg? dLogits,
        long rows, long cols, CrossEntropyOptions options)
    {
        RequireHost("CrossEntropy");
        CpuBackend.CrossEntropy(logits, targets, losses, dLogits, rows, cols, options);
    }

    void RequireHost(string op)
    {
        if (Device.AcceleratorType != AcceleratorType.CPU)
            throw new NotSupportedException($"{op} has no ILGPU kernel yet on {Device.AcceleratorType}; use the library's own CUDA or OpenCL accelerator for it.");
        Stream.Synchronize();
    }
}
