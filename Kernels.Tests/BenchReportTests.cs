using GpuActivations.Bench;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// The main job's console tables: laid out to 120 columns whatever the op names and numbers, "-" where a number is
/// missing (never "NaN"), and result cells that name the tolerance rule that decided them.
/// </summary>
[TestFixture]
public sealed class BenchReportTests
{
    static Timing T(double seconds, double cores = double.NaN) => new(seconds, seconds * 0.9, seconds * 1.1, 15, 4, cores);

    /// <summary>A run with the longest op name, missing peers, NaN measures and a smoke flag: the awkward cases.</summary>
    static RunResults Sample(bool smoke)
    {
        var results = new RunResults { Smoke = smoke, Machine = "test machine" };
        results.Verification.Add(new VerifyRow("ClampedSwiGluInterleavedBackward", "OpenCL#0", 1_000_000, 6, 5.3e-7, double.NaN,
            "dGate <= 8 ulp or 2^-21 |dy up|; dUp <= 5 ulp", true, "dGate gate=-1.2345678, up=3.4567891, dy=0.12345678 and more text to wrap"));
        results.Verification.Add(new VerifyRow("Silu-bf16", "Cpu#0", 65_536, 0, double.NaN, double.NaN, "= the float32 result rounded once to bf16", true, ""));
        results.Verification.Add(new VerifyRow("LogSoftmax", "Cpu#0", 500_000, double.NaN, double.NaN, 1.2e-4, "<= 1e-5 abs + 2 ulp", true, "row 3"));
        results.Verification.Add(new VerifyRow("GeluBackward", "Ilgpu#0", 500_000, 2.1, 2.6e-3, double.NaN, "<= 8 ulp of |dy| f' terms", true, "-5.5"));
        results.Verification.Add(new VerifyRow("Relu6Backward", "Cpu#0", 262_176, 0, 0, double.NaN, "<= 8 ulp of |dy| f' terms", true, "NaN"));
        var shape = new Shape(1, 1 << 24);
        results.Rows.Add(new BenchRow("ClampedSwiGluInterleavedBackward", "OpenCL#0", AcceleratorKind.OpenCL, new Shape(4096, 4096), 20L << 24,
            T(0.123456), T(0.05), 20L << 24, "identity kernel", null, null, null, new TargetCheck(">= 60% of copy", false)));
        results.Rows.Add(new BenchRow("Sigmoid", "Cpu#0", AcceleratorKind.Cpu, shape, 8L << 24, T(0.0032, 1.9), T(0.0021, 2), 8L << 24, "parallel memcpy",
            T(0.04), T(0.012), "TensorPrimitives.Sigmoid", new TargetCheck(">= 75% of copy", false), T(0.0035), "Sigmoid", T(0.0031)));
        results.Rows.Add(new BenchRow("Softmax", "Cpu#0", AcceleratorKind.Cpu, new Shape(1, 262_144), 8L << 18, T(double.NaN), T(0.0001, double.NaN), 8L << 18,
            "parallel memcpy", null, null, null, null, StoreCopy: T(0.00012)));
        results.InCache.Add(new InCacheRow("Sigmoid", 16_384, T(7e-6, 1), T(7.2e-6), T(4.4e-5), "TensorPrimitives.Sigmoid"));
        return results;
    }

    static void AssertFits(string text, int width)
    {
        foreach (string line in text.Split('\n'))
            Assert.That(line.Length, Is.LessThanOrEqualTo(width), $"line wider than {width}: '{line}'");
        Assert.That(text, Does.Not.Contain("NaN"));
        Assert.That(text, Does.Not.Contain("Infinity").And.Not.Contain("\u221E"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void BenchmarkSectionFits120ColumnsWithoutNaN(bool smoke)
    {
        string text = Report.Console(Sample(smoke));
        AssertFits(text, ConsoleUi.DefaultWidth);
        Assert.That(text, Does.Contain("ClampedSwiGluInterleavedBackward"), "a long op name must not be broken across lines");
        Assert.That(text, Does.Contain("Performance targets (informational"));
        if (smoke) Assert.That(text, Does.Contain("not meaningful"));
    }

    [Test]
    public void VerificationTableFits120ColumnsWithoutNaN()
    {
        string text = Report.VerificationTable(Sample(false)).ToConsole(ConsoleUi.DefaultWidth, Report.VerificationNarrow);
        AssertFits(text, ConsoleUi.DefaultWidth);
        Assert.That(text, Does.Contain("ClampedSwiGluInterleavedBackward"));
    }

    [Test]
    public void MarkdownReportHasNoNaN()
    {
        string markdown = Report.Markdown(Sample(false));
        Assert.That(markdown, Does.Not.Contain("NaN"));
        Assert.That(markdown, Does.Contain("## Verification"));
    }

    [Test]
    public void WideLayoutKeepsEveryColumn()
    {
        var table = Report.BenchTable(Sample(false), markdown: false);
        string wide = table.ToConsole(ConsoleUi.WideWidth);
        foreach (string header in table.Headers) Assert.That(wide, Does.Contain(header));
        Assert.That(wide, Does.Not.Contain("NaN"));
    }

    [Test]
    public void ResultCellsNameTheRuleThatApplied()
    {
        var rows = Sample(false).Verification.ToDictionary(v => v.Op, Report.VerificationResult);
        Assert.That(rows["LogSoftmax"], Does.Contain("2 ulp(y)"), "an absolute error above 1e-5 passes by the ulp term, and must say so");
        Assert.That(rows["GeluBackward"], Does.Contain("f' terms"));
        Assert.That(rows["Silu-bf16"], Does.Contain("bit-exact"));
        Assert.That(rows["ClampedSwiGluInterleavedBackward"], Does.Contain("2^-21"));
    }

    [Test]
    public void MissesNameTheCeilingsBelowTheTarget()
    {
        var results = new RunResults { Machine = "test machine" };
        var shape = new Shape(1, 1 << 24);
        // The copy takes 2.5 ms, the op 10 ms (25% of copy); an ordinary-store copy of 5 ms puts the memory ceiling at 50%,
        // one of 2.6 ms at 96%.
        BenchRow Missed(string op, double inCacheSeconds, double? storeCopySeconds = null) => new(op, "Cpu#0", AcceleratorKind.Cpu, shape, 8L << 24,
            T(0.01, 2), T(0.0025, 2), 8L << 24, "parallel memcpy", null, null, null, new TargetCheck(">= 75% of copy", false, 0.75),
            Onnx: T(0.005), OnnxLabel: op, OursBesideOnnx: T(0.01), InCache: T(inCacheSeconds, 1), InCacheBytes: 8L << 14,
            StoreCopy: storeCopySeconds is { } s ? T(s) : null);
        // In cache: 128 KiB in a second (a ceiling far below the target), and in a nanosecond (far above).
        results.Rows.Add(Missed("Gelu", 1.0));
        results.Rows.Add(Missed("SwiGlu", 1e-9));
        results.Rows.Add(Missed("Softmax", 1e-9, storeCopySeconds: 0.005));
        results.Rows.Add(Missed("LogSoftmax", 1.0, storeCopySeconds: 0.005));
        results.Rows.Add(Missed("CrossEntropy", 1e-9, storeCopySeconds: 0.0026));
        var rows = Report.FiguresTable(results, markdown: false).Rows;
        var figures = rows.Where(r => r[0].Contains("copy", StringComparison.Ordinal)).ToDictionary(r => r[1]);
        Assert.That(figures["Gelu"][^1], Is.EqualTo("MISSED: compute-bound"));
        Assert.That(figures["Gelu"][^2], Does.Contain("(ceiling 0%)"));
        Assert.That(figures["SwiGlu"][^1], Is.EqualTo("MISSED"), "ceilings above the target leave the miss unexplained");
        Assert.That(figures["Softmax"][^1], Is.EqualTo("MISSED: memory-bound"));
        Assert.That(figures["Softmax"][^2], Does.Contain("memory 50%"));
        Assert.That(figures["LogSoftmax"][^1], Is.EqualTo("MISSED: compute- and memory-bound"));
        Assert.That(figures["CrossEntropy"][^1], Is.EqualTo("MISSED"), "a memory ceiling above the target explains nothing");
        // The ONNX Runtime misses (its 5 ms against our 10) carry the same verdict.
        var onnx = rows.Where(r => r[0].Contains("ONNX", StringComparison.Ordinal)).ToDictionary(r => r[1]);
        Assert.That(onnx["Gelu"][^1], Is.EqualTo("MISSED: compute-bound"));
        Assert.That(onnx["Softmax"][^1], Is.EqualTo("MISSED: memory-bound"));
        // The fastest quarter of the in-cache samples (T's Lower: 0.9 of the median), on every core.
        Assert.That(results.Rows[0].ComputeCeiling, Is.EqualTo(Environment.ProcessorCount * (8.0 * 16_384 / 0.9) / (8.0 * (1 << 24) / 0.0025)).Within(1e-12));
        // The ordinary-store copy's time over the copy's: the same bytes.
        Assert.That(results.Rows[2].MemoryCeiling, Is.EqualTo(0.5).Within(1e-12));
        Assert.That(results.Rows[0].MemoryCeiling, Is.Null, "measured only for ops that store through the cache");
    }

    [Test]
    public void RowsMustMatchTheHeaders()
    {
        var table = new TextTable("a", ">b");
        var e = Assert.Throws<ArgumentException>(() => table.Add("only one"));
        Assert.That(e!.ParamName, Is.EqualTo("cells"));
    }

    [Test]
    public void JsonWritesEnumsAsNames()
    {
        string json = Report.Json(Sample(false));
        Assert.That(json, Does.Contain("\"Kind\": \"OpenCL\""));
        Assert.That(json, Does.Not.Contain("\"Kind\": 1"));
    }
}
