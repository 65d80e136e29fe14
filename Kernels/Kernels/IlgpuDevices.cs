using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace GpuActivations.Kernels;

/// <summary>
/// The devices ILGPU finds here (<see cref="AcceleratorKind.Ilgpu"/>): CUDA GPUs, OpenCL 2.0+ devices, and ILGPU's CPU
/// accelerator (last, so index 0 is a GPU when there is one). Discovery never throws: a missing driver means no devices
/// of that kind, and an ILGPU failure is the reason.
/// </summary>
internal static class IlgpuDevices
{
    static readonly Lazy<AcceleratorAvailability> Found = new(Discover);

    /// <summary>A context with every device ILGPU supports here, ILGPU.Algorithms enabled (group and warp reductions).</summary>
    public static Context CreateContext() => Context.Create(b => b.Cuda().OpenCL().DefaultCPU().EnableAlgorithms());

    /// <summary>The devices of <paramref name="context"/> in the library's order: GPUs before the CPU.</summary>
    static IReadOnlyList<ILGPU.Runtime.Device> Ordered(Context context)
        => [.. context.Devices.Where(d => d.AcceleratorType != AcceleratorType.CPU), .. context.Devices.Where(d => d.AcceleratorType == AcceleratorType.CPU)];

    /// <summary>What <see cref="Accelerator.Probe"/> reports for <see cref="AcceleratorKind.Ilgpu"/>.</summary>
    public static AcceleratorAvailability Probe() => Found.Value;

    static AcceleratorAvailability Discover()
    {
        try
        {
            using var context = CreateContext();
            var devices = Ordered(context);
            return new(AcceleratorKind.Ilgpu, [.. devices.Select((d, i) => Info(d, i))], devices.Count == 0 ? "ILGPU found no device" : null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new(AcceleratorKind.Ilgpu, [], $"ILGPU could not enumerate devices: {e.Message}");
        }
    }

    static AcceleratorInfo Info(ILGPU.Runtime.Device device, int index) => new(
        AcceleratorKind.Ilgpu, index, device.Name, device.AcceleratorType.ToString(), device.NumMultiprocessors, device.MemorySize,
        $"ILGPU {device.AcceleratorType}, warp {device.WarpSize}");

    /// <summary>Creates an accelerator on device <paramref name="index"/> of <see cref="Probe"/>'s list, owning its context.</summary>
    public static IlgpuBackend Create(int index)
    {
        var context = CreateContext();
        try
        {
            var device = Ordered(context)[index];
            return IlgpuBackend.Owning(context, device.CreateAccelerator(context), index, runKernels: false);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>A context holding one ILGPU CPU accelerator of the given shape (the tests' and the benchmark's device shapes).</summary>
    public static IlgpuBackend CreateCpu(CPUDevice shape, bool runKernels)
    {
        var context = Context.Create(b => b.CPU(shape).EnableAlgorithms());
        try
        {
            var device = context.GetCPUDevice(0);
            return IlgpuBackend.Owning(context, device.CreateCPUAccelerator(context), 0, runKernels);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }
}
