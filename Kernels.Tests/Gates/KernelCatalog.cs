using System.Reflection;
using GpuActivations.Activations;
using GpuActivations.Cpu;
using GpuActivations.Kernels;
using IlgpuKernels = GpuActivations.Kernels.ElementwiseKernels;

namespace GpuActivations.Tests.Gates;

/// <summary>The backend an offline compile gate generates code for.</summary>
public enum GateBackend
{
    /// <summary>CUDA: ILGPU's PTX backend, assembled by ptxas; the fma form is <see cref="PtxFma"/>.</summary>
    Ptx,
    /// <summary>OpenCL: ILGPU's OpenCL C backend, checked by clang; the fma form is <see cref="EmulatedFma"/>.</summary>
    OpenCL,
}

/// <summary>One value along an axis: the label that names it in a kernel's name and the type arguments it supplies.</summary>
/// <param name="Label">A short name, e.g. <c>SiluOp</c> or <c>bf16</c>.</param>
/// <param name="TypeArguments">The generic arguments it fills, in order (a storage fills two: the element and its storage struct).</param>
public sealed record AxisValue(string Label, Type[] TypeArguments);

/// <summary>
/// One dimension of the specialisations of a kernel family: the op structs, the fma form of a backend, the storage types.
/// Its values may depend on the backend (the fma form does).
/// </summary>
/// <param name="Name">The axis name, e.g. <c>unary op</c>.</param>
/// <param name="Values">Its values for a backend.</param>
public sealed record KernelAxis(string Name, Func<GateBackend, IReadOnlyList<AxisValue>> Values);

/// <summary>
/// A kernel method and the axes that close it: its specialisations are every combination of one value per axis, the
/// axes' type arguments concatenated in the order of the method's generic parameters.
/// </summary>
/// <param name="Name">The family's name, e.g. <c>Map4</c>.</param>
/// <param name="Definition">The kernel method (a generic definition, or a non-generic kernel with no axes).</param>
/// <param name="Axes">The axes, in the order of <paramref name="Definition"/>'s generic parameters.</param>
/// <param name="GroupSize">The threads per group the library launches it with on CUDA (its occupancy is judged at that size).</param>
/// <param name="VectorLoadsPerIteration">
/// The 128-bit global loads (<c>ld.global.v4</c>) its PTX must hold: the number of 16-byte inputs of its main loop, 0 for
/// kernels that load element by element.
/// </param>
/// <param name="DoubleInstructionsReason">
/// Null for a kernel that must hold no f64 instruction in PTX; otherwise why it computes in double (the exemption).
/// </param>
/// <param name="MinimumOccupancy">
/// The fraction of an sm_90 multiprocessor's 2048 threads its register count must leave resident at <paramref name="GroupSize"/>
/// (1: full occupancy, at most 32 registers per thread), as measured; a kernel that needs more registers lowers it, with a reason.
/// </param>
/// <param name="OnlyOn">
/// The one backend the library launches it on (null: every backend), e.g. the warp-shuffle kernels, which the library
/// launches on CUDA only (ILGPU's OpenCL backend has shuffles for Intel devices only).
/// </param>
public sealed record KernelFamilyEntry(
    string Name, MethodInfo Definition, IReadOnlyList<KernelAxis> Axes, int GroupSize,
    int VectorLoadsPerIteration = 0, string? DoubleInstructionsReason = null, double MinimumOccupancy = 1.0, GateBackend? OnlyOn = null)
{
    /// <summary>Whether the library launches this family on <paramref name="backend"/>.</summary>
    public bool RunsOn(GateBackend backend) => OnlyOn is null || OnlyOn == backend;

    /// <summary>Every specialisation of this family for <paramref name="backend"/> (none where it does not run).</summary>
    public IEnumerable<KernelSpecialisation> Specialise(GateBackend backend)
    {
        if (!RunsOn(backend)) yield break;
        IEnumerable<(string Label, Type[] Types)> combinations = [("", [])];
        foreach (KernelAxis axis in Axes)
        {
            IReadOnlyList<AxisValue> values = axis.Values(backend);
            combinations = combinations.SelectMany(c => values.Select(v =>
                (c.Label.Length == 0 ? v.Label : $"{c.Label}, {v.Label}", c.Types.Concat(v.TypeArguments).ToArray())));
        }
        foreach ((string label, Type[] types) in combinations)
        {
            MethodInfo method = types.Length == 0 ? Definition : Definition.MakeGenericMethod(types);
            yield return new KernelSpecialisation(this, backend, types.Length == 0 ? Name : $"{Name}<{label}>", method);
        }
    }
}

/// <summary>One closed kernel: what ILGPU compiles and the gate checks.</summary>
/// <param name="Family">The family it belongs to.</param>
/// <param name="Backend">The backend it is closed for (its fma form).</param>
/// <param name="Name">A readable name, e.g. <c>Map&lt;SiluOp, PtxFma, bf16&gt;</c>.</param>
/// <param name="Method">The closed kernel method.</param>
public sealed record KernelSpecialisation(KernelFamilyEntry Family, GateBackend Backend, string Name, MethodInfo Method)
{
    /// <summary>The name.</summary>
    public override string ToString() => Name;
}

/// <summary>
/// Every ILGPU kernel specialisation the library can launch, for the offline compile gates (PTX with ptxas, OpenCL C
/// with clang). A kernel family is one entry of <see cref="Families"/>: its method and the axes that close it. A new
/// family (the softmax kernels, say) adds one entry, e.g.
/// <c>Family(typeof(SoftmaxKernels), nameof(SoftmaxKernels.Rows), Fma, Storage)</c>; a new activation, gated unit or
/// storage type is picked up through <see cref="Activation.All"/>, <see cref="GatedUnit.All"/> and <see cref="Storages"/>.
/// </summary>
public static class KernelCatalog
{
    /// <summary>
    /// The group size of the elementwise launches on CUDA: <c>KernelSet</c> takes min(256, the device's maximum) rounded
    /// to whole warps, which is 256 on every CUDA GPU.
    /// </summary>
    public const int ElementwiseGroupSize = 256;

    /// <summary>Why the PReLU slope gradient computes in double on every backend.</summary>
    public const string PReluSlopeDoubleReason =
        "the slope gradient sums x * dy in double, in row order, exactly as the CPU does: each product is exact in double, " +
        "so every accelerator gives the same bits, and +-FLT_MAX products or cancelling terms cannot overflow a float sum. " +
        "It is one thread per channel reading a column, bound by memory, so the double adds cost little.";

    // ---- Axes -------------------------------------------------------------------------------------------------------

    /// <summary>The fma form of each backend: <see cref="PtxFma"/> (inline <c>fma.rn.f32</c>) for PTX, <see cref="EmulatedFma"/> for OpenCL.</summary>
    public static KernelAxis Fma { get; } = new("fma", backend => backend switch
    {
        GateBackend.Ptx => [new AxisValue(nameof(PtxFma), [typeof(PtxFma)])],
        GateBackend.OpenCL => [new AxisValue(nameof(EmulatedFma), [typeof(EmulatedFma)])],
        _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Unknown backend."),
    });

    /// <summary>The storage types: float32, fp16 (<see cref="ILGPU.Half"/>) and bf16 (<see cref="BFloat16"/>), each as (element, storage struct).</summary>
    public static IReadOnlyList<AxisValue> Storages { get; } =
    [
        new("f32", [typeof(float), typeof(Float32Storage)]),
        new("f16", [typeof(ILGPU.Half), typeof(Float16Storage)]),
        new("bf16", [typeof(BFloat16), typeof(BFloat16Storage)]),
    ];

    /// <summary>
    /// The softmax rows kernel's (input, output) storages: each type into itself, and 16-bit logits into float32
    /// probabilities (the mixed forms).
    /// </summary>
    public static KernelAxis SoftmaxStorages { get; } = new("storages", _ =>
    [
        new("f32", [typeof(float), typeof(Float32Storage), typeof(float), typeof(Float32Storage)]),
        new("f16", [typeof(ILGPU.Half), typeof(Float16Storage), typeof(ILGPU.Half), typeof(Float16Storage)]),
        new("bf16", [typeof(BFloat16), typeof(BFloat16Storage), typeof(BFloat16), typeof(BFloat16Storage)]),
        new("f16-f32", [typeof(ILGPU.Half), typeof(Float16Storage), typeof(float), typeof(Float32Storage)]),
        new("bf16-f32", [typeof(BFloat16), typeof(BFloat16Storage), typeof(float), typeof(Float32Storage)]),
    ]);

    /// <summary>The storage axis (<see cref="Storages"/>), the same on every backend.</summary>
    public static KernelAxis Storage { get; } = new("storage", _ => Storages);

    /// <summary>The activation op structs: every built-in one (<see cref="Activation.All"/>) and the tests' user-defined one.</summary>
    public static IReadOnlyList<Type> ActivationOps { get; } =
        Activation.All.Select(a => { var v = new OpTypeOf(); return a.Accept<OpTypeOf, Type>(ref v); })
            .Append(typeof(TanhShrinkOp)).Distinct().ToArray();

    /// <summary>
    /// The unary ops of <c>Map</c>/<c>Map4</c>: the activations' forward passes, and the single-slope PReLU (an
    /// <see cref="IUnaryOp"/> of the library's, launched as a map when there is one channel).
    /// </summary>
    public static KernelAxis UnaryOps { get; } = new("unary op", _ => Values(ActivationOps.Append(typeof(PReluOneSlopeOp))));

    /// <summary>
    /// The binary ops of <c>Zip</c>/<c>Zip4</c>: the activations' backward passes from the input (<see cref="BackwardOp{TAct}"/>)
    /// and, where the activation has one, from the output (<see cref="OutputBackwardOp{TAct}"/>), then the gated units'
    /// forward passes.
    /// </summary>
    public static KernelAxis BinaryOps { get; } = new("binary op", _ => Values(
        ActivationOps.Select(a => typeof(BackwardOp<>).MakeGenericType(a))
            .Concat(ActivationOps.Where(HasOutputDerivative).Select(a => typeof(OutputBackwardOp<>).MakeGenericType(a)))
            .Concat(GatedForwardOps)));

    /// <summary>The gated units' forward ops (<see cref="GatedOp{TGate}"/>, <see cref="ClampedGatedOp{TGate}"/>): the ops of <c>ZipPacked</c>.</summary>
    public static KernelAxis GatedOps { get; } = new("gated op", _ => Values(GatedForwardOps));

    /// <summary>The gated units' backward ops (<see cref="GatedGradientOp{TGate}"/>, <see cref="ClampedGatedGradientOp{TGate}"/>): the ops of <c>Gradient</c>/<c>GradientPacked</c>.</summary>
    public static KernelAxis GradientOps { get; } = new("gradient op", _ => Values(
        GatedUnit.All.Select(u => { var v = new GateTypeOf(Backward: true); return u.Accept<GateTypeOf, Type>(ref v); }).Distinct()));

    static IEnumerable<Type> GatedForwardOps =>
        GatedUnit.All.Select(u => { var v = new GateTypeOf(Backward: false); return u.Accept<GateTypeOf, Type>(ref v); }).Distinct();

    /// <summary>
    /// Whether an activation struct defines its derivative from the output (<see cref="IActivationOp.OutputDerivative{TV}"/>
    /// implemented by the struct rather than the interface's default, which throws and so cannot compile into a kernel).
    /// </summary>
    public static bool HasOutputDerivative(Type activation)
        => activation.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly)
            .Any(m => m.Name == nameof(IActivationOp.OutputDerivative) && m.IsGenericMethodDefinition);

    static IReadOnlyList<AxisValue> Values(IEnumerable<Type> types) => types.Select(t => new AxisValue(Label(t), [t])).ToArray();

    /// <summary>A type's short name with its type arguments, e.g. <c>BackwardOp&lt;SiluOp&gt;</c>.</summary>
    public static string Label(Type type)
        => type.IsGenericType ? $"{type.Name[..type.Name.IndexOf('`')]}<{string.Join(", ", type.GetGenericArguments().Select(Label))}>" : type.Name;

    // ---- Families ---------------------------------------------------------------------------------------------------

    /// <summary>A family: the kernel <paramref name="name"/> of <paramref name="owner"/>, closed over <paramref name="axes"/>.</summary>
    static KernelFamilyEntry Family(Type owner, string name, KernelAxis[] axes, int vectorLoads = 0, string? doubleReason = null,
        double minimumOccupancy = 1.0, string? familyName = null, GateBackend? onlyOn = null)
    {
        MethodInfo method = owner.GetMethod(name, BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
            ?? throw new InvalidOperationException($"{owner.Name}.{name} is not a static method.");
        return new KernelFamilyEntry(familyName ?? name, method, axes, ElementwiseGroupSize, vectorLoads, doubleReason, minimumOccupancy, onlyOn);
    }

    /// <summary>
    /// Why the scalar map may use up to 40 registers (3/4 occupancy): softplus keeps its subnormal-range tail (the scaled
    /// exponential of the far left, rounded once) beside the main branch (measured: 34 registers on sm_80); every other
    /// activation's map stays within 32.
    /// </summary>
    const double MapOccupancy = 0.75;

    /// <summary>
    /// Why the 128-bit kernels may use more than 32 registers: each thread computes four elements per iteration (the four
    /// lanes of a 16-byte load), so four op bodies are live at once; they stay memory-bound at the occupancy left.
    /// </summary>
    const double VectorKernelOccupancy = 0.5;

    /// <summary>
    /// Why the gated units' backward kernels may use up to 40 registers (3/4 occupancy): each element keeps the gate's value
    /// and derivative, up and dy live together to produce two outputs (measured: 22-37 registers; SiLU, GELU-tanh and
    /// the clamped SwiGLU above 32).
    /// </summary>
    const double GradientOccupancy = 0.75;

    /// <summary>
    /// Why the binary maps, the packed gated units and the softmax family's forward rows may use up to 40 registers (3/4
    /// occupancy). Measured on 2026-12-07: they held 32 (full occupancy) until the activations' exponentials gained their
    /// exact-range forms and the row kernels their exact sums (z - max carried as two-sum into the exponential, the max's
    /// own term counted apart); since then the gated SiLU/swish/GELU-tanh bodies and the backward ops take 37-39 registers
    /// and the rows 33-39. The kernels compile only the careful form of each exponential
    /// (<c>ISimd.BranchesPerVector</c> is false for their lane), which took a few registers back. Whether 3/4 costs bandwidth
    /// on a GPU is for the GPU run to measure; three groups of 256 per quarter of an SM still keep loads in flight.
    /// </summary>
    const double ExactSumsOccupancy = 0.75;

    /// <summary>The packed gated backward kernel: two outputs from a packed row, measured 41 registers on sm_80 (5/8).</summary>
    const double PackedGradientOccupancy = 0.625;

    /// <summary>
    /// Cross-entropy's warp-per-row kernel: 37-42 registers on sm_80 and 40-45 on sm_90 (5/8), against the group-per-row
    /// kernel's 36-39: the shuffle butterflies are unrolled, and the max, the state bits, the smoothing sum, z_t and the
    /// row sum with their errors stay live across them. Its rows are at most 1024 columns, read three times
    /// from L1/L2 by one warp; whether 5/8 costs time there is for the GPU run to measure.
    /// </summary>
    const double CrossEntropyWarpOccupancy = 0.625;

    /// <summary>Every kernel family the library launches, each with the axes that close it.</summary>
    public static IReadOnlyList<KernelFamilyEntry> Families { get; } =
    [
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.Map), [UnaryOps, Fma, Storage], minimumOccupancy: MapOccupancy),
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.Map4), [UnaryOps, Fma], vectorLoads: 1, minimumOccupancy: VectorKernelOccupancy),
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.Zip), [BinaryOps, Fma, Storage], minimumOccupancy: ExactSumsOccupancy),
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.Zip4), [BinaryOps, Fma], vectorLoads: 2, minimumOccupancy: VectorKernelOccupancy),
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.ZipPacked), [GatedOps, Fma, Storage], minimumOccupancy: ExactSumsOccupancy),
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.Gradient), [GradientOps, Fma, Storage], minimumOccupancy: GradientOccupancy),
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.GradientPacked), [GradientOps, Fma, Storage], minimumOccupancy: PackedGradientOccupancy),
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.PRelu), [Fma, Storage]),
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.PReluBackwardInput), [Storage]),
        Family(typeof(IlgpuKernels), nameof(IlgpuKernels.PReluBackwardSlope), [Storage], doubleReason: PReluSlopeDoubleReason),
        Family(typeof(SoftmaxKernels), nameof(SoftmaxKernels.Rows), [Fma, SoftmaxStorages], familyName: "SoftmaxRows", minimumOccupancy: ExactSumsOccupancy),
        Family(typeof(SoftmaxKernels), nameof(SoftmaxKernels.WarpRows), [Fma, SoftmaxStorages], familyName: "SoftmaxWarpRows", minimumOccupancy: ExactSumsOccupancy,
            onlyOn: GateBackend.Ptx),
        Family(typeof(SoftmaxKernels), nameof(SoftmaxKernels.SplitMax), [Fma, Storage], familyName: "SoftmaxSplitMax"),
        Family(typeof(SoftmaxKernels), nameof(SoftmaxKernels.SplitSum), [Fma, Storage], familyName: "SoftmaxSplitSum"),
        Family(typeof(SoftmaxKernels), nameof(SoftmaxKernels.SplitWrite), [Fma, SoftmaxStorages], familyName: "SoftmaxSplitWrite", minimumOccupancy: ExactSumsOccupancy),
        Family(typeof(SoftmaxBackwardKernels), nameof(SoftmaxBackwardKernels.Rows), [Fma, Storage], familyName: "SoftmaxBackwardRows"),
        Family(typeof(SoftmaxBackwardKernels), nameof(SoftmaxBackwardKernels.WarpRows), [Fma, Storage], familyName: "SoftmaxBackwardWarpRows", onlyOn: GateBackend.Ptx),
        Family(typeof(CrossEntropyKernels), nameof(CrossEntropyKernels.Rows), [Fma, Storage], familyName: "CrossEntropyRows", minimumOccupancy: ExactSumsOccupancy),
        Family(typeof(CrossEntropyKernels), nameof(CrossEntropyKernels.WarpRows), [Fma, Storage], familyName: "CrossEntropyWarpRows", minimumOccupancy: CrossEntropyWarpOccupancy,
            onlyOn: GateBackend.Ptx),
    ];

    /// <summary>Every specialisation of every family for <paramref name="backend"/>.</summary>
    public static IReadOnlyList<KernelSpecialisation> For(GateBackend backend)
        => Families.SelectMany(f => f.Specialise(backend)).ToArray();

    /// <summary>
    /// The environment variable that narrows a gate run to the kernels whose name contains its value (case-insensitive),
    /// for working on one kernel; unset, the gates take every kernel.
    /// </summary>
    public const string FilterVariable = "GPUACTIVATIONS_GATE_FILTER";

    /// <summary>The specialisations a gate run takes: <see cref="For"/>, narrowed by <see cref="FilterVariable"/> when set.</summary>
    public static IReadOnlyList<KernelSpecialisation> Selected(GateBackend backend)
    {
        string? filter = Environment.GetEnvironmentVariable(FilterVariable);
        return filter is { Length: > 0 } ? For(backend).Where(k => k.Name.Contains(filter, StringComparison.OrdinalIgnoreCase)).ToArray() : For(backend);
    }

    /// <summary>The type of an activation's op struct.</summary>
    readonly struct OpTypeOf : IActivationVisitor<Type>
    {
        public Type Visit<TOp>(TOp op) where TOp : struct, IActivationOp => typeof(TOp);
    }

    /// <summary>The type of a gated unit's forward or backward op struct (clamped where the unit has a limit).</summary>
    readonly record struct GateTypeOf(bool Backward) : IGateVisitor<Type>
    {
        public Type Visit<TGate>(TGate gate, float limit) where TGate : struct, IGate => (Backward, limit > 0f) switch
        {
            (false, false) => typeof(GatedOp<TGate>),
            (false, true) => typeof(ClampedGatedOp<TGate>),
            (true, false) => typeof(GatedGradientOp<TGate>),
            (true, true) => typeof(ClampedGatedGradientOp<TGate>),
        };
    }
}
