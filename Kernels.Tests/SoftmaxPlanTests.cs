using GpuActivations.Kernels;
using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// The softmax row plans (<see cref="SoftmaxPlan"/>) on every accelerator: shapes chosen to land in each plan (a warp per
/// row, a group per row, rows split across groups), asserted through <see cref="SoftmaxPlan.For"/> on ILGPU's CPU
/// accelerator (whose plans follow a small GPU's: <see cref="KernelSet.CpuWaveGroups"/>), each held to softmax 2 ulp and
/// log-softmax 4 ulp per element with the options (scale, per-element mask, safe), special rows and in place.
/// </summary>
public sealed class SoftmaxPlanTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    /// <summary>Softmax's per-element bound in ulp (log-softmax's is <see cref="SoftmaxUlpTests.MaxUlp"/>).</summary>
    const double SoftmaxMaxUlp = 2;

    /// <summary>Rows, columns (w: the device's warp size) and the plan the CPU accelerator's facts give.</summary>
    static readonly (int Rows, string Cols, string Plan)[] ShapeTable =
    [
        (1, "1", "Warp"), (3, "3", "Warp"), (9, "w-1", "Warp"), (9, "w", "Warp"), (9, "w+1", "Warp"), (5, "2w+3", "Warp"),
        (60, "17", "Warp"), (40, "1023", "Warp"), (2, "1024", "Warp"),
        (3, "1025", "Group"), (5, "2047", "Group"), (40, "1500", "Group"), (17, "4097", "Group"),
        (1, "2049", "Split"), (3, "5000", "Split"), (7, "6147", "Split"), (1, "262144", "Split"), (2, "1048576", "Split"),
    ];

    /// <summary>The shapes as test cases.</summary>
    public static IEnumerable<TestCaseData> Shapes
        => ShapeTable.Select(s => new TestCaseData(s.Rows, s.Cols, s.Plan).SetArgDisplayNames($"{s.Rows}x{s.Cols}", s.Plan));

    /// <summary>The shapes but the 2 x 2^20 one, for the special rows (at least 6 rows: 6 x 2^20 is slow on the CPU emulator).</summary>
    public static IEnumerable<TestCaseData> SpecialShapes
        => ShapeTable.Where(s => s.Cols != "1048576").Select(s => new TestCaseData(s.Rows, s.Cols, s.Plan).SetArgDisplayNames($"{s.Rows}x{s.Cols}", s.Plan));

    /// <summary>The shapes small enough for every option on the CPU emulator (up to 6147 columns).</summary>
    public static IEnumerable<TestCaseData> SmallShapes
        => ShapeTable.Where(s => s.Cols.Length < 6).Select(s => new TestCaseData(s.Rows, s.Cols, s.Plan).SetArgDisplayNames($"{s.Rows}x{s.Cols}", s.Plan));

    /// <summary>The plan facts of the fixture's device, where it runs the ILGPU kernels.</summary>
    RowDevice? Device => RunsKernels && Acc is IlgpuBackend backend ? backend.Kernels.RowDevice : null;

    /// <summary>The columns of a shape on this device (w: its warp size).</summary>
    int Columns(string cols)
    {
        int warp = Device?.WarpSize ?? 32;
        return cols switch
        {
            "w-1" => warp - 1, "w" => warp, "w+1" => warp + 1, "2w+3" => 2 * warp + 3,
            _ => int.Parse(cols, System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    /// <summary>The plan rows x cols takes here, asserted where the facts are the CPU accelerator's (a GPU's may differ).</summary>
    void AssertPlan(int rows, int cols, string plan)
    {
        if (Device is not { } device) return;
        SoftmaxPlan chosen = SoftmaxPlan.For(rows, cols, device);
        TestContext.Out.WriteLine($"{rows}x{cols} on {Fixture}: {chosen}");
        if (IsEmulated) Assert.That(chosen.Kind.ToString(), Is.EqualTo(plan), $"{rows}x{cols}: the plan the shape is meant to cover");
    }

    /// <summary>The columns of a shape, its plan asserted for <paramref name="rows"/>.</summary>
    int Columns(int rows, string cols, string plan)
    {
        int n = Columns(cols);
        AssertPlan(rows, n, plan);
        return n;
    }

    float[] Run(float[] x, int rows, int cols, bool log, float scale = 1f, float[]? mask = null, bool safe = false, bool inPlace = false)
    {
        using var xb = Acc.Allocate<float>(x);
        using var yb = inPlace ? null : Acc.Allocate<float>(x.Length);
        using var mb = mask is null ? null : Acc.Allocate<float>(mask);
        var options = new SoftmaxOptions { Scale = scale, Mask = mb is null ? default : mb.View, Safe = safe };
        var y = yb ?? xb;
        if (log) Acc.LogSoftmax(xb, y, rows, cols, options); else Acc.Softmax(xb, y, rows, cols, options);
        return y.ToArray();
    }

    /// <summary>The exact result of z = x * scale + mask (mask: one value per element, or none) in double.</summary>
    static double[] Exact(float[] x, int rows, int cols, bool log, float scale = 1f, float[]? mask = null, bool safe = false)
    {
        var y = new double[x.Length];
        var z = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < cols; j++) z[j] = (double)x[r * cols + j] * scale + (mask is null ? 0.0 : mask[r * cols + j]);
            ScalarReference.SoftmaxRow(z, y.AsSpan(r * cols, cols), safe, log);
        }
        return y;
    }

    void AssertBoth(float[] x, int rows, int cols, string what, float scale = 1f, float[]? mask = null, bool safe = false)
    {
        double worst = SoftmaxUlpTests.AssertUlp(Exact(x, rows, cols, false, scale, mask, safe), Run(x, rows, cols, false, scale, mask, safe), $"softmax {what}");
        Assert.That(worst, Is.LessThanOrEqualTo(SoftmaxMaxUlp), $"softmax {what}");
        SoftmaxUlpTests.AssertUlp(Exact(x, rows, cols, true, scale, mask, safe), Run(x, rows, cols, true, scale, mask, safe), $"log-softmax {what}");
    }

    [TestCaseSource(nameof(Shapes))]
    public void PlainRows(int rows, string cols, string plan)
    {
        int n = Columns(rows, cols, plan);
        AssertBoth(TestData.Logits((long)rows * n, seed: rows + n, scale: 40f), rows, n, $"{rows}x{n}");
    }

    /// <summary>NaN, +inf, only -inf (NaN, or zeros / -inf when safe), some -inf, and huge logits, in one launch (at least 6 rows).</summary>
    [TestCaseSource(nameof(SpecialShapes))]
    public void SpecialRows(int rows, string cols, string plan)
    {
        const int special = 6;
        int total = Math.Max(rows, special);
        int n = Columns(total, cols, plan);
        var x = TestData.Logits((long)total * n, seed: n, scale: 3f);
        x[n / 2] = float.NaN;                                                    // row 0: NaN
        x[1 * n + (n - 1)] = float.PositiveInfinity;                             // row 1: +inf
        Array.Fill(x, float.NegativeInfinity, 2 * n, n);                         // row 2: only -inf
        for (int c = 0; c < n; c += 3) x[3 * n + c] = float.NegativeInfinity;    // row 3: some -inf
        for (int c = 0; c < n; c++) x[4 * n + c] = c % 2 == 0 ? 1e30f : -1e30f;  // row 4: huge
        x[5 * n + n / 3] = float.MaxValue;                                       // row 5: one FLT_MAX
        foreach (bool safe in new[] { false, true })
            AssertBoth(x, total, n, $"special rows {total}x{n}{(safe ? " safe" : "")}", safe: safe);
    }

    /// <summary>Scale and a per-element mask with -inf holes and a fully masked row, safe and not.</summary>
    [TestCaseSource(nameof(SmallShapes))]
    public void ScaleAndMask(int rows, string cols, string plan)
    {
        // The short rows here have dominant logits whose log-softmax is near -1e-15 while z = x * scale + mask rounds by
        // ~1e-6: measured from the rounded max, log(sum) is about that remainder plus 1e-15, which no double carries to the
        // 1e-15; the kernels and the SIMD path both take the exact max m + mLo instead (found by this test: 0 came out).
        int n = Columns(rows, cols, plan);
        var x = TestData.Logits((long)rows * n, seed: 9, scale: 300f);
        var mask = TestData.Logits((long)rows * n, seed: 10, scale: 50f);
        for (int j = 0; j < mask.Length; j += 7) mask[j] = float.NegativeInfinity;
        Array.Fill(mask, float.NegativeInfinity, (rows - 1) * n, n);             // the last row fully masked
        foreach (bool safe in new[] { false, true })
            AssertBoth(x, rows, n, $"scale + mask {rows}x{n}{(safe ? " safe" : "")}", 0.3f, mask, safe);
    }

    /// <summary>In place gives the bits of out of place (the same kernels; each element read before it is written).</summary>
    [TestCaseSource(nameof(Shapes))]
    public void InPlace(int rows, string cols, string plan)
    {
        int n = Columns(rows, cols, plan);
        var x = TestData.Logits((long)rows * n, seed: 3, scale: 8f);
        foreach (bool log in new[] { false, true })
            Assert.That(Run(x, rows, n, log, inPlace: true), Is.EqualTo(Run(x, rows, n, log)), $"{(log ? "log-" : "")}softmax in place {rows}x{n}");
    }
}

/// <summary>The plan choice itself (<see cref="SoftmaxPlan.For"/>) on the facts of devices this machine does not have.</summary>
[TestFixture]
public sealed class SoftmaxPlanChoiceTests
{
    // An H100's facts as KernelSet derives them: 132 SMs, 2048 threads per SM, groups of 256.
    static RowDevice Cuda => new(WarpSize: 32, GroupSize: 256, WarpGroupSize: 256, MaxGroups: 132 * 8 * 2 * 4, WaveGroups: 132 * 8, WarpShuffles: true);
    static RowDevice OpenCL => Cuda with { WarpShuffles = false };
    static RowDevice CpuWarp4 => new(WarpSize: 4, GroupSize: 4, WarpGroupSize: 8, MaxGroups: 1, WaveGroups: KernelSet.CpuWaveGroups, WarpShuffles: true);

    [Test]
    public void AWarpPerRowUpTo1024Columns()
    {
        Assert.That(SoftmaxPlan.For(1, 1, Cuda).Kind, Is.EqualTo(SoftmaxPlanKind.Warp));
        Assert.That(SoftmaxPlan.For(4096, 1024, Cuda), Is.EqualTo(new SoftmaxPlan(SoftmaxPlanKind.Warp, 512, 256, 1, 1024)));
        Assert.That(SoftmaxPlan.For(4096, 1025, Cuda).Kind, Is.EqualTo(SoftmaxPlanKind.Group));
        Assert.That(SoftmaxPlan.For(100_000_000, 64, Cuda).Groups, Is.EqualTo(Cuda.MaxGroups), "grid-stride beyond the resident groups");
        Assert.That(SoftmaxPlan.For(9, 3, CpuWarp4), Is.EqualTo(new SoftmaxPlan(SoftmaxPlanKind.Warp, 1, 8, 1, 3)));
    }

    [Test]
    public void OpenCLTakesNoWarpPlan()
    {
        Assert.That(SoftmaxPlan.For(4096, 1000, OpenCL).Kind, Is.EqualTo(SoftmaxPlanKind.Group));
        Assert.That(SoftmaxPlan.For(1, 262144, OpenCL).Kind, Is.EqualTo(SoftmaxPlanKind.Split));
    }

    [Test]
    public void FewLongRowsSplitToFillTheDevice()
    {
        Assert.That(SoftmaxPlan.For(1, 262144, Cuda), Is.EqualTo(new SoftmaxPlan(SoftmaxPlanKind.Split, 128, 256, 128, 2048)));
        Assert.That(SoftmaxPlan.For(2, 1 << 20, Cuda), Is.EqualTo(new SoftmaxPlan(SoftmaxPlanKind.Split, 1024, 256, 512, 2048)));
        Assert.That(SoftmaxPlan.For(64, 32000, Cuda), Is.EqualTo(new SoftmaxPlan(SoftmaxPlanKind.Split, 1024, 256, 16, 2000)));
        Assert.That(SoftmaxPlan.For(528, 32000, Cuda).Kind, Is.EqualTo(SoftmaxPlanKind.Split));
        Assert.That(SoftmaxPlan.For(529, 32000, Cuda).Kind, Is.EqualTo(SoftmaxPlanKind.Group), "rows that fill half the device take a group each");
        Assert.That(SoftmaxPlan.For(1, 2048, Cuda).Kind, Is.EqualTo(SoftmaxPlanKind.Group), "a row of one segment is not split");
        Assert.That(SoftmaxPlan.For(1, 262144, CpuWarp4), Is.EqualTo(new SoftmaxPlan(SoftmaxPlanKind.Split, 16, 4, 16, 16384)));
    }

    /// <summary>Every split covers each row with non-empty segments, one group each, within the scratch the device is bounded by.</summary>
    [Test]
    public void SplitsCoverTheRowWithinTheScratch()
    {
        foreach (RowDevice device in new[] { Cuda, OpenCL, CpuWarp4 })
            foreach (long rows in new long[] { 1, 2, 3, 7, 16, 100, 527, 528 })
                foreach (long cols in new long[] { 1025, 2049, 4097, 5000, 32000, 262144, 1 << 20, 3 << 20, (1L << 31) - 1 })
                {
                    SoftmaxPlan plan = SoftmaxPlan.For(rows, cols, device);
                    if (plan.Kind != SoftmaxPlanKind.Split) continue;
                    string what = $"{rows}x{cols} on {device}: {plan}";
                    Assert.That(plan.Segments, Is.GreaterThanOrEqualTo(2), what);
                    Assert.That(plan.Segments * plan.SegmentLength, Is.GreaterThanOrEqualTo(cols), what);
                    Assert.That((plan.Segments - 1) * plan.SegmentLength, Is.LessThan(cols), what);
                    Assert.That(plan.Groups, Is.EqualTo(rows * plan.Segments), what);
                    Assert.That(rows * plan.Segments * SoftmaxSplitArgs.FloatsPerPart, Is.LessThanOrEqualTo(device.ScratchFloats), what);
                }
    }
}
