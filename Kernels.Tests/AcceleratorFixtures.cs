using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// Which accelerators the fixtures run on: every kind, each present one for real. An absent kind is
/// reported as ignored with its reason, unless the environment variable GPUACTIVATIONS_REQUIRE lists it
/// (comma-separated, e.g. "cpu,cuda" on a GPU machine), in which case its absence fails the run.
/// </summary>
public static class AcceleratorFixtures
{
    /// <summary>
    /// The fixture arguments: the CPU (SIMD path); ILGPU's CUDA and OpenCL devices (when present); and ILGPU's CPU
    /// accelerator, once on the SIMD path (as engines' CI runs it) and running the ILGPU kernels themselves in three device
    /// shapes (warp 4, warp 32 with groups of 1024, warp 64), so a kernel that assumes a warp size fails here.
    /// </summary>
    public static IEnumerable<TestFixtureData> Kinds =>
        AcceleratorTarget.All.Select(t => new TestFixtureData(t).SetArgDisplayNames(t.ToString()));

    /// <summary>The kinds whose absence is a failure.</summary>
    public static IReadOnlySet<AcceleratorKind> Required { get; } = ParseRequired(Environment.GetEnvironmentVariable("GPUACTIVATIONS_REQUIRE"));

    static HashSet<AcceleratorKind> ParseRequired(string? value)
    {
        var kinds = new HashSet<AcceleratorKind> { AcceleratorKind.Cpu };
        foreach (var name in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            kinds.Add(Enum.Parse<AcceleratorKind>(name, ignoreCase: true));
        return kinds;
    }

    /// <summary>Creates the accelerator of <paramref name="target"/>, or ignores (fails, if required) the fixture with the reason it is absent.</summary>
    public static Accelerator CreateOrSkip(AcceleratorTarget target)
    {
        if (target.CpuShape is { } shape) return Kernels.IlgpuDevices.CreateCpu(shape, target.RunKernels);
        var kind = target.Kind;
        var availability = Accelerator.Probe(kind);
        if (availability.IsAvailable) return Accelerator.Create(kind);
        string message = $"{kind} is absent: {availability.Reason}";
        if (Required.Contains(kind)) Assert.Fail(message + " (required by GPUACTIVATIONS_REQUIRE)");
        Assert.Ignore(message);
        throw new InvalidOperationException("unreachable");
    }
}

/// <summary>A fixture run once per accelerator kind, holding the accelerator for its tests.</summary>
[TestFixtureSource(typeof(AcceleratorFixtures), nameof(AcceleratorFixtures.Kinds))]
public abstract class AcceleratorTest(AcceleratorTarget target)
{
    readonly AcceleratorKind kind = target.Kind;

    Accelerator? accelerator;

    /// <summary>The accelerator under test.</summary>
    protected Accelerator Acc => accelerator ?? throw new InvalidOperationException("not set up");

    /// <summary>The kind under test.</summary>
    protected AcceleratorKind Kind => kind;

    /// <summary>
    /// A new accelerator of the fixture's own target (for tests that need a fresh or a second one): of the same kind and,
    /// on ILGPU's CPU accelerator, the same device shape and path (kernels or SIMD), so results compare bit for bit.
    /// </summary>
    protected Accelerator CreateFresh() => AcceleratorFixtures.CreateOrSkip(target);

    /// <summary>The fixture's accelerator, as named in test results.</summary>
    protected AcceleratorTarget Fixture => target;

    /// <summary>Whether the ops run as ILGPU kernels on ILGPU's CPU emulator (slow: size-heavy tests take smaller cases).</summary>
    protected bool IsEmulated => target.CpuShape is not null && target.RunKernels;

    /// <summary>Whether the ops run as ILGPU kernels (on CUDA, OpenCL, or emulated on ILGPU's CPU accelerator), not the SIMD path.</summary>
    protected bool RunsKernels => IsEmulated || kind is AcceleratorKind.Cuda or AcceleratorKind.OpenCL;

    [OneTimeSetUp]
    public void CreateAccelerator()
    {
        if (IsEmulated && target.ShapeName != AcceleratorTarget.HostSideShape && GetType().IsDefined(typeof(HostSideAttribute), false))
            Assert.Ignore($"host-side checks (arguments, threads, lifetime, failures) run on {AcceleratorTarget.HostSideShape}; the other device shapes run the kernel tests");
        accelerator = AcceleratorFixtures.CreateOrSkip(target);
    }

    [OneTimeTearDown]
    public void DisposeAccelerator() => accelerator?.Dispose();

    /// <summary>Runs an op on device copies of the inputs and returns the output (y starts as <paramref name="initialY"/>).</summary>
    protected float[] Run(float[] x, int yLength, Action<BufferView<float>, BufferView<float>> op, float initialY = float.NaN)
    {
        using var xb = Acc.Allocate<float>(x);
        using var yb = Acc.Allocate<float>(yLength);
        yb.CopyFrom(Enumerable.Repeat(initialY, yLength).ToArray());
        op(xb, yb);
        return yb.ToArray();
    }
}

/// <summary>
/// Marks a fixture whose checks are the host's (argument validation, threads, lifetime, runtime failures): on ILGPU's CPU
/// accelerator it runs the kernels in one device shape (<see cref="AcceleratorTarget.HostSideShape"/>), not all three,
/// since the host code is the same whatever the warp size.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class HostSideAttribute : Attribute;

/// <summary>One accelerator the fixtures run on: a kind, or an ILGPU CPU accelerator of a device shape.</summary>
/// <param name="Kind">The library's accelerator kind.</param>
/// <param name="CpuShape">For ILGPU's CPU accelerator, its device shape; null otherwise.</param>
/// <param name="ShapeName">The shape's name in test results.</param>
/// <param name="RunKernels">On ILGPU's CPU accelerator: the ILGPU kernels (true) or the SIMD path on host memory.</param>
public sealed record AcceleratorTarget(AcceleratorKind Kind, ILGPU.Runtime.CPU.CPUDevice? CpuShape = null, string? ShapeName = null, bool RunKernels = false)
{
    /// <summary>Every target, the library's own kinds first.</summary>
    public static IReadOnlyList<AcceleratorTarget> All { get; } =
    [
        new(AcceleratorKind.Cpu), new(AcceleratorKind.Cuda), new(AcceleratorKind.OpenCL),
        new(AcceleratorKind.Ilgpu, ILGPU.Runtime.CPU.CPUDevice.Default, "IlgpuCpuSimd"),
        new(AcceleratorKind.Ilgpu, ILGPU.Runtime.CPU.CPUDevice.Default, "IlgpuCpuWarp4", RunKernels: true),
        new(AcceleratorKind.Ilgpu, ILGPU.Runtime.CPU.CPUDevice.Nvidia, "IlgpuCpuWarp32", RunKernels: true),
        new(AcceleratorKind.Ilgpu, ILGPU.Runtime.CPU.CPUDevice.LegacyAMD, "IlgpuCpuWarp64", RunKernels: true),
    ];

    /// <summary>The device shape that runs the <see cref="HostSideAttribute"/> fixtures with the ILGPU kernels.</summary>
    public const string HostSideShape = "IlgpuCpuWarp32";

    /// <summary>The name in test results, e.g. "Cpu" or "IlgpuCpuWarp32".</summary>
    public override string ToString() => ShapeName ?? Kind.ToString();
}
