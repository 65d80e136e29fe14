namespace GpuActivations.Device;

/// <summary>
/// One device program as both GPU backends build it: a kernel source of <c>Kernels/Device</c>, whether it is
/// specialised for an activation (then compiled once per activation), and the kernels it defines. OpenCL and CUDA
/// compile exactly these texts (<see cref="Compose"/>), and the tests compile every family for every activation.
/// </summary>
internal sealed class KernelFamily
{
    readonly Func<DeviceActivation, string> functions;
    readonly Func<DeviceActivation, bool>? supports;

    KernelFamily(int index, string name, string source, bool takesActivation, IReadOnlyList<string> kernels,
        Func<DeviceActivation, string>? functions = null, Func<DeviceActivation, bool>? supports = null)
    {
        this.functions = functions ?? DevicePrelude.ActivationFunction;
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

    /// <summary>dx = dy * f'(x), from x or from y = f(x): <see cref="BackwardKernels.UnarySource"/> with the activation's derivatives.</summary>
    public static KernelFamily UnaryBackward { get; } = new(4, "unary_backward", BackwardKernels.UnarySource, true, BackwardKernels.UnaryKernels,
        DevicePrelude.DerivativeFunctions);

    /// <summary>PReLU's backward (dx and dAlpha): <see cref="BackwardKernels.PReluSource"/>.</summary>
    public static KernelFamily PReluBackward { get; } = new(5, "prelu_backward", BackwardKernels.PReluSource, false, BackwardKernels.PReluKernels);

    /// <summary>Softmax / log-softmax backward and cross-entropy from logits: <see cref="SoftmaxGradKernels.Source"/>.</summary>
    public static KernelFamily SoftmaxGrad { get; } = new(6, "softmax_grad", SoftmaxGradKernels.Source, false, SoftmaxGradKernels.Kernels);

    /// <summary>
    /// The gated units' backward pass: <see cref="GluKernels.BackwardSource"/>, with the gate activation and its derivative
    /// (<see cref="GluKernels.GateDerivative"/>), so it is built for the gate activations only.
    /// </summary>
    public static KernelFamily GluBackward { get; } = new(7, "glu_backward", GluKernels.BackwardSource, true, GluKernels.BackwardKernels,
        a => DevicePrelude.ActivationFunction(a) + GluKernels.GateDerivative(a), GluKernels.HasGateDerivative);

    /// <summary>Every family, in <see cref="Index"/> order.</summary>
    public static IReadOnlyList<KernelFamily> All { get; } = [Unary, PRelu, Glu, Softmax, UnaryBackward, PReluBackward, SoftmaxGrad, GluBackward];

    /// <summary>Whether the family can be built for <paramref name="activation"/> (every activation, except for <see cref="GluBackward"/>: the gates).</summary>
    public bool Supports(DeviceActivation activation) => TakesActivation && (supports?.Invoke(activation) ?? true);

    /// <summary>The family's position in <see cref="All"/> (for per-family caches).</summary>
    public int Index { get; }

    /// <summary>The family's name: "unary", "prelu", "glu", "softmax", "unary_backward", "prelu_backward", "softmax_grad", "glu_backward".</summary>
    public string Name { get; }

    /// <summary>The kernels' source, without the prelude.</summary>
    public string Source { get; }

    /// <summary>Whether the kernels call <c>ga_activation</c> (the program is then built once per activation).</summary>
    public bool TakesActivation { get; }

    /// <summary>The kernels the program defines (in both dialects).</summary>
    public IReadOnlyList<string> Kernels { get; }

    /// <summary>
    /// The whole program for a device whose work-groups have <paramref name="groupSize"/> work-items:
    /// <see cref="DevicePrelude.Compose"/> of this family's source with <paramref name="activation"/>'s functions (the
    /// activation, or its derivatives for the backward family), which must be given exactly when <see cref="TakesActivation"/>.
    /// </summary>
    public string Compose(int groupSize, DeviceActivation? activation, bool cpuDevice = false, ProgramStorage storage = default)
    {
        if (TakesActivation != activation is not null)
            throw new ArgumentException(TakesActivation ? $"the {Name} kernels need an activation" : $"the {Name} kernels take no activation", nameof(activation));
        return DevicePrelude.Compose(groupSize, activation is null ? null : functions(activation), Source, cpuDevice, storage);
    }

    /// <summary>A label for logs and program names: "unary/gelu", "softmax", "unary/gelu@bf16>bf16".</summary>
    public string Label(DeviceActivation? activation, ProgramStorage storage = default)
        => (activation is null ? Name : $"{Name}/{activation.Name}") + storage.Label;

    /// <inheritdoc/>
    public override string ToString() => Name;
}
