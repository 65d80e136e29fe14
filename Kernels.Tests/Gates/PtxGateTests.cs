using NUnit.Framework;

namespace GpuActivations.Tests.Gates;

/// <summary>
/// The PTX compile gate: every specialisation of <see cref="KernelCatalog"/> compiles to PTX with ILGPU and assembles with
/// ptxas for sm_80 and sm_90 without errors, and its code has the structure the library promises (no spills, 128-bit loads
/// in the vector kernels, no approximate math, no double precision). Needs ptxas only, no GPU.
/// </summary>
[TestFixture]
[Category("Gates")]
public sealed class PtxGateTests
{
    /// <summary>The families, one test case each.</summary>
    public static IEnumerable<TestCaseData> Families
        => KernelCatalog.Families.Select(f => new TestCaseData(f.Name).SetArgDisplayNames(f.Name));

    static IEnumerable<PtxKernelResult> Of(string family) => PtxGateRun.Shared.Results.Where(r => r.Kernel.Family.Name == family);

    /// <summary>Every kernel of the family compiles to PTX and ptxas assembles it for every architecture with exit code 0.</summary>
    [TestCaseSource(nameof(Families))]
    public void CompilesAndAssembles(string family)
    {
        var failures = new List<string>();
        foreach (PtxKernelResult r in Of(family))
        {
            if (r.CompileError is not null) { failures.Add($"{r.Kernel}: ILGPU: {r.CompileError}"); continue; }
            foreach ((string arch, PtxasReport report) in r.Assembled)
                if (report.ExitCode != 0 || report.Entry is null)
                    failures.Add($"{r.Kernel} {arch}: ptxas exit {report.ExitCode}: {string.Join(" | ", report.Problems.DefaultIfEmpty(report.Log.Trim()))}");
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
        Assert.That(Of(family).Count(), Is.EqualTo(KernelCatalog.Selected(GateBackend.Ptx).Count(k => k.Family.Name == family)));
    }

    /// <summary>The kernels ptxas assembled for every architecture (the others fail <see cref="CompilesAndAssembles"/>).</summary>
    static IEnumerable<PtxKernelResult> Assembled => PtxGateRun.Shared.Results.Where(r => r.Structure is not null
        && r.Assembled.Count == PtxGateRun.Architectures.Length && r.Assembled.Values.All(a => a.ExitCode == 0 && a.Entry is not null));

    /// <summary>No kernel spills registers to local memory on any architecture (stack frames, e.g. for inline PTX's outputs, are reported, not failed).</summary>
    [Test]
    public void NoRegisterSpills()
    {
        var spills = Assembled.SelectMany(r => r.Assembled.Values.Where(a => a.SpillBytes > 0)
            .Select(a => $"{r.Kernel} {a.Architecture}: {string.Join(", ", a.Functions.Where(f => f.SpillStores + f.SpillLoads > 0).Select(f => $"{f.Name} {f.SpillStores} B stores, {f.SpillLoads} B loads"))}")).ToList();
        int maxFrame = Assembled.SelectMany(r => r.Assembled.Values).Select(a => a.StackFrame).DefaultIfEmpty().Max();
        int withFrame = Assembled.Count(r => r.Assembled.Values.Any(a => a.StackFrame > 0));
        TestContext.Out.WriteLine($"spills: {spills.Count} kernels; stack frames: {withFrame} of {Assembled.Count()} kernels have one, the largest {maxFrame} B");
        Assert.That(spills, Is.Empty, string.Join("\n", spills));
    }

    /// <summary>The 128-bit kernels load every 16-byte input with one 128-bit load inside their main loop.</summary>
    [Test]
    public void VectorKernelsLoad128BitsInTheirMainLoop()
    {
        var kernels = Assembled.Where(r => r.Kernel.Family.VectorLoadsPerIteration > 0).ToList();
        var short_ = kernels.Where(r => r.Structure!.VectorLoadsInLoops < r.Kernel.Family.VectorLoadsPerIteration || r.Structure.VectorStores < 1)
            .Select(r => $"{r.Kernel}: {r.Structure!.VectorLoadsInLoops} 128-bit loads in a loop (of {r.Structure.VectorLoads}), {r.Structure.VectorStores} 128-bit stores; wanted {r.Kernel.Family.VectorLoadsPerIteration} and 1").ToList();
        TestContext.Out.WriteLine($"{kernels.Count} vector kernels; 128-bit loads naming .global: {kernels.Sum(r => r.Structure!.GlobalVectorLoads)} " +
            $"of {kernels.Sum(r => r.Structure!.VectorLoads)} (the rest generic ld.v4, ILGPU's form below O2)");
        if (Environment.GetEnvironmentVariable(KernelCatalog.FilterVariable) is not { Length: > 0 }) Assert.That(kernels, Is.Not.Empty);
        Assert.That(short_, Is.Empty, string.Join("\n", short_));
    }

    /// <summary>No approximate instruction (<c>ex2.approx</c>, <c>tanh.approx</c>, <c>lg2.approx</c>, any <c>.approx</c>) anywhere: the library's math is its own.</summary>
    [Test]
    public void NoApproximateMath()
    {
        var found = Assembled.Where(r => r.Structure!.ApproximateInstructions.Count > 0)
            .Select(r => $"{r.Kernel}: {string.Join("; ", r.Structure!.ApproximateInstructions.Distinct().Take(4))}").ToList();
        Assert.That(found, Is.Empty, string.Join("\n", found));
    }

    /// <summary>
    /// No f64 instruction in a CUDA kernel (double throughput is 1/64 of float on consumer GPUs), except in the families the
    /// catalog exempts with a reason; an exempted kernel that no longer uses double fails too, so a stale exemption goes.
    /// </summary>
    [Test]
    public void NoDoublePrecisionExceptExempted()
    {
        var found = Assembled.Where(r => r.Kernel.Family.DoubleInstructionsReason is null && r.Structure!.DoubleInstructions.Count > 0)
            .Select(r => $"{r.Kernel}: {string.Join("; ", r.Structure!.DoubleInstructions.Distinct().Take(4))}").ToList();
        var stale = Assembled.Where(r => r.Kernel.Family.DoubleInstructionsReason is not null && r.Structure!.DoubleInstructions.Count == 0)
            .Select(r => $"{r.Kernel} is exempted from the no-f64 rule but has no f64 instruction").ToList();
        foreach (var family in Assembled.Where(r => r.Kernel.Family.DoubleInstructionsReason is not null).GroupBy(r => r.Kernel.Family))
            TestContext.Out.WriteLine($"exempt: {family.Key.Name} ({family.Max(r => r.Structure!.DoubleInstructions.Count)} f64 instructions): {family.Key.DoubleInstructionsReason}");
        Assert.That(found.Concat(stale), Is.Empty, string.Join("\n", found.Concat(stale)));
    }

    /// <summary>
    /// Registers against occupancy at the launch group size on sm_90 (and sm_80, the same limits): every kernel keeps at
    /// least its family's <see cref="KernelFamilyEntry.MinimumOccupancy"/> of the multiprocessor's threads resident. The table
    /// of registers and occupancy per family is written to the test output.
    /// </summary>
    [Test]
    public void RegistersAllowTheFamilysOccupancy()
    {
        var rows = new List<string>();
        var below = new List<string>();
        foreach (var family in Assembled.GroupBy(r => r.Kernel.Family))
        {
            foreach (string arch in PtxGateRun.Architectures)
            {
                int[] regs = family.Select(r => r.Assembled[arch].Entry?.Registers ?? -1).ToArray();
                double worst = regs.Min(r => Occupancy.Fraction(r, family.Key.GroupSize));
                int full = regs.Count(r => Occupancy.Fraction(r, family.Key.GroupSize) >= 1.0);
                rows.Add($"{family.Key.Name,-20} {arch} group {family.Key.GroupSize}: registers {regs.Min()}-{regs.Max()}, " +
                    $"full occupancy {full}/{regs.Length}, lowest {worst:P0} (required {family.Key.MinimumOccupancy:P0})");
                below.AddRange(family.Where(r => Occupancy.Fraction(r.Assembled[arch].Entry?.Registers ?? 255, family.Key.GroupSize) < family.Key.MinimumOccupancy)
                    .Select(r => $"{r.Kernel} {arch}: {r.Assembled[arch].Entry?.Registers} registers, {Occupancy.Fraction(r.Assembled[arch].Entry?.Registers ?? 255, family.Key.GroupSize):P0} occupancy"));
            }
        }
        TestContext.Out.WriteLine($"full occupancy needs <= {Occupancy.FullOccupancyRegisters} registers per thread");
        foreach (string row in rows) TestContext.Out.WriteLine(row);
        Assert.That(below, Is.Empty, string.Join("\n", below));
    }

    /// <summary>Writes the run's counts and wall time; every kernel compiled and assembled.</summary>
    [Test]
    public void Summary()
    {
        PtxGateRun run = PtxGateRun.Shared;
        TestContext.Out.WriteLine($"PTX gate: {run.Results.Count} specialisations, {run.Compiled} compiled to PTX by ILGPU, " +
            $"{run.Assembled} assembled by ptxas for {string.Join(" and ", PtxGateRun.Architectures)} " +
            $"({run.Assembled * PtxGateRun.Architectures.Length} ptxas runs) in {run.Elapsed.TotalSeconds:F1} s " +
            $"(ILGPU {run.IlgpuTime.TotalSeconds:F1} s); {run.Ptxas}");
        Assert.That(run.Compiled, Is.EqualTo(run.Results.Count));
        Assert.That(run.Assembled, Is.EqualTo(run.Results.Count));
    }

    /// <summary>The environment variable naming the markdown file whose generated table <see cref="WriteTable"/> replaces.</summary>
    public const string TableVariable = "GPUACTIVATIONS_WRITE_CUDA_TABLE";

    /// <summary>
    /// With <see cref="TableVariable"/> set to a markdown file (docs/cuda.md), replaces the text between its
    /// <c>&lt;!-- ptx-gate-table --&gt;</c> and <c>&lt;!-- /ptx-gate-table --&gt;</c> markers with the table of every kernel;
    /// without it, does nothing.
    /// </summary>
    [Test]
    public void WriteTable()
    {
        string? path = Environment.GetEnvironmentVariable(TableVariable);
        if (path is not { Length: > 0 }) Assert.Ignore($"set {TableVariable} to the markdown file to update (docs/cuda.md)");
        PtxGateRun run = PtxGateRun.SharedAlone;
        string table = PtxTable.Render(run);
        string text = File.ReadAllText(path);
        const string begin = "<!-- ptx-gate-table -->", end = "<!-- /ptx-gate-table -->";
        int a = text.IndexOf(begin, StringComparison.Ordinal), b = text.IndexOf(end, StringComparison.Ordinal);
        Assert.That(a >= 0 && b > a, $"{path} has no {begin} ... {end} section");
        File.WriteAllText(path, text[..(a + begin.Length)] + "\n" + table + text[b..]);
        TestContext.Out.WriteLine($"wrote {run.Results.Count} rows to {path}");
    }
}
