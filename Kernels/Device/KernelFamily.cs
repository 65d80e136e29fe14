namespace GpuActivations.Device;

/// <summary>
/// One device program as both GPU backends build it: a kernel source of <c>Kernels/Device</c>, whether it is
/// specialised for an activation (then compiled once per activation), and the kernels it defines. OpenCL and CUDA
/// compile exactly these texts (<see cref="Compose"/>), and the tests compile every family for every activation.
/// </summary>
internal sealed class KernelFamily
{
    readonly Func<DeviceActivation, string>? activationPrefix;

    KernelFamily(int index, string name, string source, bool takesActivation, IReadOnlyList<string> kernels,
        Func<DeviceActivation, string>? activationPrefix = null, Func<DeviceActivation, bool>? supports = null)
    {
        this.activationPrefix = activationPrefix;
        this.supports = supports;
        Index = index;
        Name = name;
        Source = source;
        TakesActivation = takesActivation;
        Kernels = kernels;
    }

    /// <summary>y = act(x): <see cref="ElementwiseKernels.UnarySource"/>.</summary>
    public static KernelFamily Unary { get; } = new(0, "unary", ElementwiseKernels.UnarySource, true, ElementwiseKernels.UnaryKernels);

    /// <summary>PReLU: <see cref="ElementwiseKernels.PReluSource"/>.</summary>
    public static KernelFamily PRelu { get; } = new(1, "prelu", ElementwiseKernels.PReluSource, false, [ElementwiseKernels.PRelu]);

    /// <summary>Gated units y = act(gate) * up: <see cref="GluKernels.Source"/>.</summary>
    public static KernelFamily Glu { get; } = new(2, "glu", GluKernels.Source, true, GluKernels.Kernels);

    /// <summary>Row-wise softmax and log-softmax: <see cref="SoftmaxKernels.Source"/>.</summary>
    public static KernelFamily Softmax { get; } = new(3, "softmax", SoftmaxKernels.Source, false, SoftmaxKernels.Kernels);

    /// <summary>
    /// The gated units' backward pass: <see cref="GluKernels.BackwardSource"/>, after the gate activation's derivative
    /// (<see cref="GluKernels.GateDerivative"/>), so it is built for the gate activations only.
    /// </summary>
    public static KernelFamily GluBackward { get; } = new(4, "glu_backward", GluKernels.BackwardSource, true, GluKernels.BackwardKernels,
        GluKernels.GateDerivative, GluKernels.HasGateDerivative);

    /// <summary>Every family, in <see cref="Index"/> order.</summary>
    public static IReadOnlyList<KernelFamily> All { get; } = [Unary, PRelu, Glu, Softmax, GluBackward];

    readonly Func<DeviceActivation, bool>? supports;

    /// <summary>Whether the family can be built for <paramref name="activation"/> (every activation, except for <see cref="GluBackward"/>: the gates).</summary>
    public bool Supports(DeviceActivation activation) => TakesActivation && (supports?.Invoke(activation) ?? true);

    /// <summary>The family's position in <see cref="All"/> (for per-family caches).</summary>
    public int Index { get; }

    /// <summary>The family's name: "unary", "prelu", "glu", "softmax", "glu_backward".</summary>
    public string Name { get; }

    /// <summary>The kernels' source, without the prelude.</summary>
    public string Source { get; }

    /// <summary>Whether the kernels call <c>ga_activation</c> (the program is then built once per activation).</summary>
    public bool TakesActivation { get; }

    /// <summary>The kernels the program defines (in both dialects).</summary>
    public IReadOnlyList<string> Kernels { get; }

    /// <summary>
    /// The whole program for a device whose work-groups have <paramref name="groupSize"/> work-items:
    /// <see cref="DevicePrelude.Compose"/> of this family's source with <paramref name="activation"/>, which must be
    /// given exactly when <see cref="TakesActivation"/>.
    /// </summary>
    public string Compose(int groupSize, DeviceActivation? activation, bool cpuDevice = false)
    {
        if (TakesActivation != activation is not null)
            throw new ArgumentException(TakesActivation ? $"the {Name} kernels need an activation" : $"the {Name} kernels take no activation", nameof(activation));
        string source = activation is not null && activationPrefix is not null ? activationPrefix(activation) + Source : Source;
        return DevicePrelude.Compose(groupSize, activation, source, cpuDevice);
    }

    /// <summary>A label for logs and program names: "unary/gelu", "softmax".</summary>
    public string Label(DeviceActivation? activation) => activation is null ? Name : $"{Name}/{activation.Name}";

    /// <inheritdoc/>
    public override string ToString() => Name;
}
