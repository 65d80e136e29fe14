using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// Which accelerators the fixtures run on: every kind, each present one for real. An absent kind is
/// reported as ignored with its reason, unless the environment variable GPUACTIVATIONS_REQUIRE lists it
/// (comma-separated, e.g. "cpu,opencl" as CI sets it), in which case its absence fails the run.
/// </summary>
public static class AcceleratorFixtures
{
    /// <summary>The fixture arguments: one per accelerator kind.</summary>
    public static IEnumerable<TestFixtureData> Kinds =>
        Enum.GetValues<AcceleratorKind>().Select(k => new TestFixtureData(k).SetArgDisplayNames(k.ToString()));

    /// <summary>The kinds whose absence is a failure.</summary>
    public static IReadOnlySet<AcceleratorKind> Required { get; } = ParseRequired(Environment.GetEnvironmentVariable("GPUACTIVATIONS_REQUIRE"));

    static HashSet<AcceleratorKind> ParseRequired(string? value)
    {
        var kinds = new HashSet<AcceleratorKind> { AcceleratorKind.Cpu };
        foreach (var name in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            kinds.Add(Enum.Parse<AcceleratorKind>(name, ignoreCase: true));
        return kinds;
    }

    /// <summary>Creates the accelerator of <paramref name="kind"/>, or ignores (fails, if required) the fixture with the reason it is absent.</summary>
    public static Accelerator CreateOrSkip(AcceleratorKind kind)
    {
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
public abstract class AcceleratorTest(AcceleratorKind kind)
{
    Accelerator? accelerator;

    /// <summary>The accelerator under test.</summary>
    protected Accelerator Acc => accelerator ?? throw new InvalidOperationException("not set up");

    /// <summary>The kind under test.</summary>
    protected AcceleratorKind Kind => kind;

    [OneTimeSetUp]
    public void CreateAccelerator() => accelerator = AcceleratorFixtures.CreateOrSkip(kind);

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
