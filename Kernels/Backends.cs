using GpuActivations.Cpu;
using GpuActivations.Kernels;

namespace GpuActivations;

/// <summary>Where each accelerator kind is discovered and created: the one place a new backend is registered.</summary>
internal static class Backends
{
    public static AcceleratorAvailability Probe(AcceleratorKind kind) => kind switch
    {
        AcceleratorKind.Cpu => new(kind, [CpuAccelerator.Device], null),
        AcceleratorKind.OpenCL or AcceleratorKind.Cuda or AcceleratorKind.Ilgpu => IlgpuDevices.Probe(kind),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown accelerator kind."),
    };

    public static Accelerator Create(AcceleratorKind kind, int deviceIndex)
    {
        var availability = Probe(kind);
        if (!availability.IsAvailable) throw new AcceleratorUnavailableException(kind, availability.Reason ?? "no device");
        if (deviceIndex < 0 || deviceIndex >= availability.Devices.Count)
            throw new ArgumentOutOfRangeException(nameof(deviceIndex), deviceIndex, $"{kind} has {availability.Devices.Count} device(s): use an index in [0, {availability.Devices.Count - 1}].");
        return kind switch
        {
            AcceleratorKind.Cpu => CpuAccelerator.Create(),
            AcceleratorKind.OpenCL or AcceleratorKind.Cuda or AcceleratorKind.Ilgpu => IlgpuDevices.Create(kind, deviceIndex),
            _ => throw new AcceleratorUnavailableException(kind, availability.Reason ?? "no device"),
        };
    }
}
