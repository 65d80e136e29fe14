using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace GpuActivations.Kernels;

/// <summary>
/// The devices ILGPU finds here, by library kind: <see cref="AcceleratorKind.Cuda"/> (ILGPU's CUDA accelerator),
/// <see cref="AcceleratorKind.OpenCL"/> (ILGPU's OpenCL accelerator: OpenCL 2.0, or 3.0 with the generic address space)
/// and <see cref="AcceleratorKind.Ilgpu"/> (all of them, then ILGPU's CPU accelerator last, so index 0 is a GPU when
/// there is one). Discovery never throws: a missing driver means no devices of that kind, and the reason says why.
/// </summary>
internal static class IlgpuDevices
{
    static readonly Lazy<Found> Discovered = new(Discover);

    /// <summary>A context with every device ILGPU supports here, ILGPU.Algorithms enabled (group and warp reductions).</summary>
    public static Context CreateContext() => Context.Create(b => b.Cuda().OpenCL().DefaultCPU().EnableAlgorithms());

    /// <summary>The devices of <paramref name="context"/> in the library's order: GPUs before the CPU.</summary>
    static IReadOnlyList<Device> Ordered(Context context)
        => [.. context.Devices.Where(d => d.AcceleratorType != AcceleratorType.CPU), .. context.Devices.Where(d => d.AcceleratorType == AcceleratorType.CPU)];

    /// <summary>The devices of <paramref name="context"/> that <paramref name="kind"/> lists, in the order of <see cref="Probe"/>.</summary>
    static IReadOnlyList<Device> OfKind(Context context, AcceleratorKind kind) => kind switch
    {
        AcceleratorKind.Cuda => [.. context.Devices.Where(d => d.AcceleratorType == AcceleratorType.Cuda)],
        AcceleratorKind.OpenCL => [.. context.Devices.Where(d => d.AcceleratorType == AcceleratorType.OpenCL)],
        AcceleratorKind.Ilgpu => Ordered(context),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not an ILGPU kind: use Cuda, OpenCL or Ilgpu."),
    };

    /// <summary>What <see cref="Accelerator.Probe"/> reports for <paramref name="kind"/> (Cuda, OpenCL or Ilgpu).</summary>
    public static AcceleratorAvailability Probe(AcceleratorKind kind) => kind switch
    {
        AcceleratorKind.Cuda => Discovered.Value.Cuda,
        AcceleratorKind.OpenCL => Discovered.Value.OpenCL,
        AcceleratorKind.Ilgpu => Discovered.Value.All,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not an ILGPU kind: use Cuda, OpenCL or Ilgpu."),
    };

    sealed record Found(AcceleratorAvailability Cuda, AcceleratorAvailability OpenCL, AcceleratorAvailability All);

    static Found Discover()
    {
        try
        {
            using var context = CreateContext();
            AcceleratorAvailability Of(AcceleratorKind kind, string whyNone)
            {
                var devices = OfKind(context, kind);
                return new(kind, [.. devices.Select((d, i) => Info(kind, d, i))], devices.Count == 0 ? whyNone : null);
            }
            return new(
                Of(AcceleratorKind.Cuda, "ILGPU found no CUDA device (it needs the NVIDIA driver's libcuda.so.1 and a GPU)"),
                Of(AcceleratorKind.OpenCL, WhyNoOpenCL()),
                Of(AcceleratorKind.Ilgpu, "ILGPU found no device"));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            string why = $"ILGPU could not enumerate devices: {e.Message}";
            return new(new(AcceleratorKind.Cuda, [], why), new(AcceleratorKind.OpenCL, [], why), new(AcceleratorKind.Ilgpu, [], why));
        }
    }

    /// <summary>
    /// Why ILGPU's OpenCL accelerator has no device: no OpenCL platform at all, or the devices present and the versions that
    /// keep ILGPU from them (its OpenCL backend needs OpenCL C 2.0, or 3.0 with the generic address space).
    /// </summary>
    static string WhyNoOpenCL()
    {
        const string needs = "ILGPU's OpenCL backend needs OpenCL 2.0, or 3.0 with the generic address space (docs/opencl.md)";
        var all = CLDevice.GetDevices(_ => true);
        if (all.Length == 0) return $"no OpenCL device was found (is an ICD loader libOpenCL.so and a driver installed?); {needs}";
        var seen = all.OfType<CLDevice>().Select(d => $"{d.Name} ({d.PlatformName}, {d.DeviceVersion}, OpenCL C {d.CVersion}, generic address space: {(d.Capabilities.GenericAddressSpace ? "yes" : "no")})");
        return $"{needs}; found only {string.Join("; ", seen)}";
    }

    static AcceleratorInfo Info(AcceleratorKind kind, Device device, int index) => new(
        kind, index, device.Name, device.AcceleratorType.ToString(), device.NumMultiprocessors, device.MemorySize,
        $"ILGPU {device.AcceleratorType}{(device is CLDevice cl ? $" ({cl.DeviceType})" : "")}, warp {device.WarpSize}");

    /// <summary>Creates an accelerator on device <paramref name="index"/> of <see cref="Probe"/>'s list for <paramref name="kind"/>, owning its context.</summary>
    public static IlgpuBackend Create(AcceleratorKind kind, int index)
    {
        var context = CreateContext();
        try
        {
            var device = OfKind(context, kind)[index];
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
