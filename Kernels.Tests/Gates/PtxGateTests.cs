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

    /// <summary>Writes the run's counts and wall time.</summary>
    [Test]
    public void Summary()
    {
        PtxGateRun run = PtxGateRun.Shared;
        TestContext.Out.WriteLine($"PTX gate: {run.Results.Count} specialisations, {run.Compiled} compiled to PTX by ILGPU, " +
            $"{run.Assembled} assembled by ptxas for {string.Join(" and ", PtxGateRun.Architectures)} " +
            $"({run.Assembled * PtxGateRun.Architectures.Length} ptxas runs) in {run.Elapsed.TotalSeconds:F1} s " +
            $"(ILGPU {run.IlgpuTime.TotalSeconds:F1} s); {run.Ptxas}");
        foreach (PtxKernelResult r in run.Results)
        {
            string regs = string.Join(" ", r.Assembled.OrderBy(a => a.Key).Select(a => $"{a.Key}:{a.Value.Entry?.Registers}r/{a.Value.StackFrame}B/{a.Value.SpillBytes}sp"));
            TestContext.Out.WriteLine($"  {r.Kernel}: {regs} v4 ld {r.Structure?.VectorLoads} st {r.Structure?.VectorStores} f64 {r.Structure?.DoubleInstructions.Count} approx {r.Structure?.ApproximateInstructions.Count}");
        }
        Assert.That(run.Compiled, Is.EqualTo(run.Results.Count));
    }
}
