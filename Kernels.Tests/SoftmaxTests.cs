using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>Softmax and log-softmax on every accelerator: shapes across the kernel-shape boundaries and the special rows.</summary>
public sealed class SoftmaxTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    const double Relative = 1e-5;
    const double Absolute = 1e-5;
    const double TwoUlps = 2.4e-7;

    static IEnumerable<TestCaseData> Shapes => new (int Rows, int Cols)[]
    {
        (1, 1), (3, 1), (5, 2), (4, 3), (7, 31), (7, 32), (7, 33), (3, 1000), (2, 4097), (1, 1 << 18), (2, 1 << 18), (64, 257), (1, 1 << 20),
    }.Select(s => new TestCaseData(s.Rows, s.Cols).SetArgDisplayNames($"{s.Rows}x{s.Cols}"));

    float[] Run(float[] x, int rows, int cols, bool log, bool inPlace = false)
    {
        using var xb = Acc.Allocate<float>(x);
        if (inPlace)
        {
            if (log) Acc.LogSoftmax(xb, xb, rows, cols); else Acc.Softmax(xb, xb, rows, cols);
            return xb.ToArray();
        }
        using var yb = Acc.Allocate<float>(x.Length);
        if (log) Acc.LogSoftmax(xb, yb, rows, cols); else Acc.Softmax(xb, yb, rows, cols);
        return yb.ToArray();
    }

    /// <summary>
    /// Per element within <see cref="Relative"/> of the double reference (NaN where it is NaN), and every row without NaN
    /// summing to 1 within 1e-5. Checked plainly, asserting only on a failure (NUnit constraints per element are slow).
    /// </summary>
    internal static void AssertSoftmax(float[] x, float[] y, int rows, int cols, string what)
    {
        var expected = new float[x.Length];
        ScalarReference.Softmax(x, expected, rows, cols);
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            bool nanRow = false;
            for (int c = 0; c < cols; c++)
            {
                int i = r * cols + c;
                if (float.IsNaN(expected[i]))
                {
                    nanRow = true;
                    if (!float.IsNaN(y[i])) Assert.That(y[i], Is.NaN, $"{what}: row {r} col {c} should be NaN");
                    continue;
                }
                if (!(Math.Abs(y[i] - (double)expected[i]) <= Relative * Math.Abs(expected[i]) + 1e-38))
                    Assert.That(y[i], Is.EqualTo(expected[i]).Within(Relative * Math.Abs(expected[i]) + 1e-38), $"{what}: row {r} col {c}");
                sum += y[i];
            }
            if (!nanRow && !(Math.Abs(sum - 1.0) <= 1e-5)) Assert.That(sum, Is.EqualTo(1.0).Within(1e-5), $"{what}: row {r} sums to {sum}");
        }
    }

    /// <summary>
    /// Per element within <see cref="Absolute"/> plus two float ulps (2.4e-7 relative) of the double reference; NaN and
    /// infinities exactly. The ulp term matters where |y| is large (logits spread by ~1000): there one ulp is 6e-5 to 1.2e-4,
    /// so 1e-5 alone would demand the correctly rounded result of (x - max) - ln(sum), which two float roundings do not give
    /// (found by the property tests; the 1e-7 relative term this had before was less than one ulp).
    /// </summary>
    internal static void AssertLogSoftmax(float[] x, float[] y, int rows, int cols, string what)
    {
        var expected = new float[x.Length];
        ScalarReference.LogSoftmax(x, expected, rows, cols);
        for (int i = 0; i < x.Length; i++)
        {
            if (float.IsNaN(expected[i]))
            {
                if (!float.IsNaN(y[i])) Assert.That(y[i], Is.NaN, $"{what}: element {i} should be NaN");
            }
            else if (float.IsInfinity(expected[i]))
            {
                if (y[i] != expected[i]) Assert.That(y[i], Is.EqualTo(expected[i]), $"{what}: element {i}");
            }
            else if (!(Math.Abs(y[i] - (double)expected[i]) <= Absolute + TwoUlps * Math.Abs(expected[i])))
            {
                Assert.That(y[i], Is.EqualTo(expected[i]).Within(Absolute + TwoUlps * Math.Abs(expected[i])), $"{what}: element {i}");
            }
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void Softmax(int rows, int cols)
    {
        var x = TestData.Logits((long)rows * cols, seed: rows + cols, scale: 20f);
        AssertSoftmax(x, Run(x, rows, cols, log: false), rows, cols, $"softmax {rows}x{cols}");
    }

    [TestCaseSource(nameof(Shapes))]
    public void LogSoftmax(int rows, int cols)
    {
        var x = TestData.Logits((long)rows * cols, seed: rows * cols, scale: 20f);
        AssertLogSoftmax(x, Run(x, rows, cols, log: true), rows, cols, $"log-softmax {rows}x{cols}");
    }

    [TestCaseSource(nameof(Shapes))]
    public void InPlace(int rows, int cols)
    {
        var x = TestData.Logits((long)rows * cols, seed: 3, scale: 8f);
        AssertSoftmax(x, Run(x, rows, cols, log: false, inPlace: true), rows, cols, $"softmax in place {rows}x{cols}");
        AssertLogSoftmax(x, Run(x, rows, cols, log: true, inPlace: true), rows, cols, $"log-softmax in place {rows}x{cols}");
    }

    [TestCase(33)]
    [TestCase(1000)]
    [TestCase(4097)]
    [TestCase(1 << 18)]
    public void SpecialRows(int cols)
    {
        const int rows = 8;
        var x = TestData.Logits(rows * cols, seed: cols, scale: 3f);
        x[0 * cols + cols / 2] = float.NaN;                                  // row 0: NaN -> all NaN
        x[1 * cols + 1] = float.PositiveInfinity;                            // row 1: +inf -> all NaN
        Array.Fill(x, float.NegativeInfinity, 2 * cols, cols);               // row 2: only -inf -> all NaN
        for (int c = 0; c < cols; c += 3) x[3 * cols + c] = float.NegativeInfinity;  // row 3: some -inf -> 0 there
        for (int c = 0; c < cols; c++) x[4 * cols + c] = c % 2 == 0 ? 1e30f : -1e30f; // row 4: huge logits
        for (int c = 0; c < cols; c++) x[5 * cols + c] = 88f + c % 5;        // row 5: exp would overflow without the max
        x[6 * cols + cols - 1] = float.MaxValue;                             // row 6: one FLT_MAX -> one-hot
        for (int c = 0; c < cols; c++)                                       // row 7: +-FLT_MAX: x - max overflows to -inf
            x[7 * cols + c] = (c % 3) switch { 0 => -float.MaxValue, 1 => float.MaxValue, _ => 0f };
        AssertSoftmax(x, Run(x, rows, cols, log: false), rows, cols, $"special rows, {cols} cols");
        AssertLogSoftmax(x, Run(x, rows, cols, log: true), rows, cols, $"special rows, {cols} cols");
        AssertSoftmax(x, Run(x, rows, cols, log: false, inPlace: true), rows, cols, $"special rows in place, {cols} cols");
        AssertLogSoftmax(x, Run(x, rows, cols, log: true, inPlace: true), rows, cols, $"special rows in place, {cols} cols");
    }
}
