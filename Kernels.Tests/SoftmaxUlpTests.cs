using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// Softmax and log-softmax held to 4 ulp per element of the exact (double) result: plain rows across the kernel-shape
/// boundaries up to 2^20 columns, dominant-logit rows (log-softmax of the max near -1e-30), logits up to +-FLT_MAX/2, and
/// the options (scale, mask). Ulps are counted through the subnormal range, where one ulp is 2^-149: there the bound is an
/// absolute floor of 4 * 2^-149, and where the double reference itself is 0 (e^(z - max) below 2^-1074) the result must be
/// within that floor of 0.
/// </summary>
public sealed class SoftmaxUlpTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    /// <summary>DESIGN.md's per-element bound for softmax and log-softmax.</summary>
    public const double MaxUlp = 4;

    static IEnumerable<TestCaseData> Shapes => new (int Rows, int Cols)[]
    {
        (1, 1), (5, 2), (7, 31), (7, 33), (3, 1000), (2, 4097), (64, 257), (2, 1 << 18), (1, 1 << 20),
    }.Select(s => new TestCaseData(s.Rows, s.Cols).SetArgDisplayNames($"{s.Rows}x{s.Cols}"));

    /// <summary>Softmax and log-softmax, both held to 4 ulp on every accelerator.</summary>
    static readonly bool[] LogForms = [false, true];

    float[] Run(float[] x, int rows, int cols, bool log, SoftmaxOptions? options = null, float[]? mask = null)
    {
        using var xb = Acc.Allocate<float>(x);
        using var yb = Acc.Allocate<float>(x.Length);
        using var mb = mask is null ? null : Acc.Allocate<float>(mask);
        if (mb is not null) options = new SoftmaxOptions { Scale = options?.Scale ?? 1f, Mask = mb };
        if (log) Acc.LogSoftmax(xb, yb, rows, cols, options); else Acc.Softmax(xb, yb, rows, cols, options);
        return yb.ToArray();
    }

    /// <summary>The exact result of z = x * scale + mask (mask: cols values for every row, or none) in double.</summary>
    static double[] Exact(float[] x, int rows, int cols, bool log, float scale = 1f, float[]? mask = null)
    {
        var y = new double[x.Length];
        var z = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < cols; j++) z[j] = (double)x[r * cols + j] * scale + (mask is null ? 0.0 : mask[j]);
            ScalarReference.SoftmaxRow(z, y.AsSpan(r * cols, cols), safe: false, log);
        }
        return y;
    }

    internal static double AssertUlp(double[] expected, float[] y, string what)
    {
        double worst = 0;
        int at = 0;
        for (int i = 0; i < y.Length; i++)
        {
            double d = double.IsInfinity(expected[i]) ? (y[i] == expected[i] ? 0 : double.PositiveInfinity) : SubnormalTests.StrictDistance(y[i], expected[i]);
            if (d > worst) { worst = d; at = i; }
        }
        TestContext.Out.WriteLine($"{what}: max {worst} ulp at {at}: got {y[at]:R}, exact {expected[at]:R}");
        if (worst > MaxUlp) Assert.Fail($"{what}: {worst} ulp > {MaxUlp} at element {at}: got {y[at]:R}, exact {expected[at]:R}");
        return worst;
    }

    [TestCaseSource(nameof(Shapes))]
    public void PlainRows(int rows, int cols)
    {
        var x = TestData.Logits((long)rows * cols, seed: rows + cols, scale: 40f);
        foreach (bool log in LogForms)
            AssertUlp(Exact(x, rows, cols, log), Run(x, rows, cols, log), $"{(log ? "log-" : "")}softmax {rows}x{cols}");
    }

    [TestCase(2)]
    [TestCase(33)]
    [TestCase(32000)]
    public void DominantLogit(int cols)
    {
        // Row r: one logit ahead of the others by 2 + 10 r (up to 72): the max's log-softmax is -(cols - 1) e^-gap, down to ~1e-31.
        const int rows = 8;
        var x = TestData.Logits((long)rows * cols, seed: cols, scale: 1f);
        for (int r = 0; r < rows; r++) x[r * cols + (r * 7919) % cols] = 2f + 10f * r;
        foreach (bool log in LogForms)
            AssertUlp(Exact(x, rows, cols, log), Run(x, rows, cols, log), $"{(log ? "log-" : "")}softmax dominant {rows}x{cols}");
    }

    [Test]
    public void HugeLogits()
    {
        const int rows = 4, cols = 1000;
        var x = new float[rows * cols];
        var random = new Random(5);
        for (int i = 0; i < x.Length; i++)
        {
            int r = i / cols;
            // Rows: spread across +-FLT_MAX/2; near FLT_MAX/2 with small differences; around -FLT_MAX/2; within 100 of 1e30.
            x[i] = r switch
            {
                0 => (float)((random.NextDouble() * 2 - 1) * float.MaxValue / 2),
                1 => float.MaxValue / 2 - (float)(random.NextDouble() * 1e33),
                2 => -float.MaxValue / 2 + (float)(random.NextDouble() * 1e33),
                _ => 1e30f + (float)(random.NextDouble() * 100),
            };
        }
        foreach (bool log in LogForms)
            AssertUlp(Exact(x, rows, cols, log), Run(x, rows, cols, log), $"{(log ? "log-" : "")}softmax huge logits");
    }

    [TestCase(1000)]
    [TestCase(70000)]
    public void ScaleAndMask(int cols)
    {
        const int rows = 5;
        var x = TestData.Logits((long)rows * cols, seed: 9, scale: 300f);
        var mask = TestData.Logits(cols, seed: 10, scale: 50f);
        for (int j = 0; j < cols; j += 7) mask[j] = float.NegativeInfinity;
        const float scale = 0.3f;
        foreach (bool log in LogForms)
        {
            AssertUlp(Exact(x, rows, cols, log, scale), Run(x, rows, cols, log, new SoftmaxOptions { Scale = scale }), $"{(log ? "log-" : "")}softmax scale {cols}");
            AssertUlp(Exact(x, rows, cols, log, scale, mask), Run(x, rows, cols, log, new SoftmaxOptions { Scale = scale }, mask), $"{(log ? "log-" : "")}softmax scale + mask {cols}");
        }
    }
}
