using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// Softmax options, softmax / log-softmax backward and fused cross-entropy on every accelerator, against the double
/// reference. Shapes cross every kernel shape: one column, short rows (several per group), rows of 1000+ columns (a group
/// each) and 262144 columns (split across groups on devices, across cores on the CPU when there is one row).
/// </summary>
public sealed class SoftmaxGradTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    /// <summary>Softmax outputs: DESIGN.md's 1e-5 relative per element.</summary>
    const double Relative = 1e-5;

    /// <summary>Two float ulps, relative: the roundings of a float subtraction and product after the reduction.</summary>
    const double TwoUlps = 2.4e-7;

    static IEnumerable<TestCaseData> Shapes => new (int Rows, int Cols)[]
    {
        (1, 1), (3, 1), (4, 3), (7, 17), (5, 33), (3, 1000), (40, 1023), (9, 1025), (2, 4097), (64, 257), (1, 1 << 18), (2, 1 << 18),
    }.Select(s => new TestCaseData(s.Rows, s.Cols).SetArgDisplayNames($"{s.Rows}x{s.Cols}"));

    // ------------------------------------------------------------------------------------------------ softmax options

    /// <summary>
    /// Scale and both mask shapes, safe or not, softmax and log-softmax. The mask removes a column pattern (-inf), every
    /// column of row 1 (a fully masked row: NaN, or 0 / -inf when safe) and adds finite biases elsewhere; row 0 holds a NaN.
    /// </summary>
    [TestCaseSource(nameof(Shapes))]
    public void OptionsMatchTheReference(int rows, int cols)
    {
        var x = TestData.Logits((long)rows * cols, seed: rows + 7 * cols, scale: 20f);
        if (rows > 2) x[cols / 2] = float.NaN; // row 0: NaN -> all NaN, safe or not
        foreach (bool perRow in new[] { false, true })
        foreach (bool safe in new[] { false, true })
        foreach (bool log in new[] { false, true })
        {
            float[] mask = Mask(rows, cols, perRow, seed: cols);
            var options = new SoftmaxOptions { Scale = 0.37f, Safe = safe };
            float[] y = RunSoftmax(x, mask, rows, cols, options, log, offset: 5);
            var expected = new float[x.Length];
            ScalarReference.Softmax(x, expected, rows, cols, options.Scale, mask, safe, log);
            AssertSoftmaxOutput(expected, y, log, $"{(log ? "log-" : "")}softmax {rows}x{cols} {(perRow ? "per-row" : "broadcast")} mask{(safe ? ", safe" : "")}");
        }
    }

    [Test]
    public void ScaleAloneAndInPlaceOnTheMask([Values(1, 33, 5000)] int cols)
    {
        const int rows = 3;
        var x = TestData.Logits(rows * cols, seed: cols, scale: 30f);
        foreach (bool log in new[] { false, true })
        {
            var expected = new float[x.Length];
            ScalarReference.Softmax(x, expected, rows, cols, 0.125f, [], false, log);
            AssertSoftmaxOutput(expected, RunSoftmax(x, null, rows, cols, new SoftmaxOptions { Scale = 0.125f }, log, offset: 0), log, "scale only");

            // y may be the (per-element) mask itself.
            float[] mask = Mask(rows, cols, perRow: true, seed: 3);
            using var xb = Acc.Allocate<float>(x);
            using var mb = Acc.Allocate<float>(mask);
            var options = new SoftmaxOptions { Scale = 2f, Mask = mb };
            if (log) Acc.LogSoftmax(xb, mb, rows, cols, options); else Acc.Softmax(xb, mb, rows, cols, options);
            ScalarReference.Softmax(x, expected, rows, cols, 2f, mask, false, log);
            AssertSoftmaxOutput(expected, mb.ToArray(), log, "into its own mask");
        }
    }

    /// <summary>A mask of the row's length (broadcast) or of the whole matrix: -inf on every third column, all of row 1, finite biases elsewhere.</summary>
    static float[] Mask(int rows, int cols, bool perRow, int seed)
    {
        int n = perRow ? rows * cols : cols;
        var mask = TestData.Logits(n, seed, scale: 4f);
        for (int i = 0; i < n; i += 3) mask[i] = float.NegativeInfinity;
        if (rows > 1 && cols > 1) Array.Fill(mask, float.NegativeInfinity, perRow ? cols : 0, perRow ? cols : cols);
        if (!perRow && rows > 1 && cols > 1) mask[cols - 1] = 1f; // broadcast: keep one column open so only per-row masks empty a row
        return mask;
    }

    float[] RunSoftmax(float[] x, float[]? mask, int rows, int cols, SoftmaxOptions options, bool log, int offset)
    {
        using var xb = Acc.Allocate<float>(x.Length + offset);
        using var yb = Acc.Allocate<float>(x.Length + offset);
        using var mb = Acc.Allocate<float>((mask?.Length ?? 0) + offset);
        var xv = xb.Slice(offset, x.Length);
        xv.CopyFrom(x);
        if (mask is not null)
        {
            mb.Slice(offset, mask.Length).CopyFrom(mask);
            options = new SoftmaxOptions { Scale = options.Scale, Safe = options.Safe, Mask = mb.Slice(offset, mask.Length) };
        }
        var yv = yb.Slice(offset, x.Length);
        if (log) Acc.LogSoftmax(xv, yv, rows, cols, options); else Acc.Softmax(xv, yv, rows, cols, options);
        return yv.ToArray();
    }

    /// <summary>NaN and infinities exactly; softmax within 1e-5 relative, log-softmax within 1e-5 absolute plus two ulps.</summary>
    static void AssertSoftmaxOutput(float[] expected, float[] actual, bool log, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            bool ok = double.IsNaN(e) ? double.IsNaN(a)
                : double.IsInfinity(e) ? a == e
                : Math.Abs(a - e) <= (log ? 1e-5 + TwoUlps * Math.Abs(e) : Relative * Math.Abs(e) + 1e-38);
            if (!ok) Assert.Fail($"{what}: element {i} is {a}, expected {e}");
        }
    }

    // ------------------------------------------------------------------------------------------------ backward

    [TestCaseSource(nameof(Shapes))]
    public void BackwardMatchesTheReference(int rows, int cols)
    {
        foreach (bool log in new[] { false, true })
        {
            var (y, dy) = BackwardInputs(rows, cols, log, seed: rows * 31 + cols);
            AssertBackward(y, dy, RunBackward(y, dy, rows, cols, log, InPlace.None, offset: 3), rows, cols, log, $"{(log ? "log-" : "")}softmax backward {rows}x{cols}");
        }
    }

    public enum InPlace { None, IntoDy, IntoY }

    [Test]
    public void BackwardInPlace([Values(3, 1000, 1 << 18)] int cols, [Values(InPlace.IntoDy, InPlace.IntoY)] InPlace inPlace, [Values] bool log)
    {
        int rows = cols > 5000 ? 1 : 5;
        var (y, dy) = BackwardInputs(rows, cols, log, seed: cols);
        AssertBackward(y, dy, RunBackward(y, dy, rows, cols, log, inPlace, offset: 1), rows, cols, log, $"backward {inPlace}");
    }

    /// <summary>y: the (log-)softmax of logits, with some exact zeros (-inf in log form); dy: random, with a NaN in row 1.</summary>
    static (float[] Y, float[] Dy) BackwardInputs(int rows, int cols, bool log, int seed)
    {
        var x = TestData.Logits((long)rows * cols, seed, scale: 8f);
        for (int i = 0; i < x.Length; i += 5) x[i] = float.NegativeInfinity;
        for (int r = 0; r < rows; r++) x[r * cols + cols - 1] = 1f; // no row of only -inf
        var y = new float[x.Length];
        ScalarReference.Softmax(x, y, rows, cols, 1f, [], false, log);
        var dy = TestData.Logits(x.Length, seed + 1, scale: 3f);
        if (rows > 2) dy[cols + cols / 2] = float.NaN;
        return (y, dy);
    }

    float[] RunBackward(float[] y, float[] dy, int rows, int cols, bool log, InPlace inPlace, int offset)
    {
        using var yb = Acc.Allocate<float>(y.Length + offset);
        using var db = Acc.Allocate<float>(y.Length + 2 * offset);
        using var xb = Acc.Allocate<float>(y.Length);
        var yv = yb.Slice(offset, y.Length);
        var dv = db.Slice(2 * offset, y.Length);
        yv.CopyFrom(y);
        dv.CopyFrom(dy);
        var dx = inPlace switch { InPlace.IntoDy => dv, InPlace.IntoY => yv, _ => xb.View };
        if (log) Acc.LogSoftmaxBackward(yv, dv, dx, rows, cols); else Acc.SoftmaxBackward(yv, dv, dx, rows, cols);
        return dx.ToArray();
    }

    /// <summary>
    /// Within 1e-5 of the error bound of the row reduction, plus two ulps of the result: |dx_j - ref_j| &lt;= 1e-5 b_j +
    /// 2.4e-7 |ref_j|, with b_j = y_j (|dy_j| + sum |dy y|) (softmax) or |dy_j| + e^y_j sum |dy| (log-softmax): the float sum
    /// errs by a small multiple of its terms' absolute sum, and dy_j - S cancels. NaN where the reference is NaN.
    /// </summary>
    internal static void AssertBackward(float[] y, float[] dy, float[] dx, int rows, int cols, bool log, string what)
    {
        var expected = new float[y.Length];
        ScalarReference.SoftmaxBackward(y, dy, expected, rows, cols, log);
        double[] bounds = ScalarReference.SoftmaxBackwardBound(y, dy, rows, cols, log);
        for (int i = 0; i < dx.Length; i++)
        {
            double e = expected[i], a = dx[i], bound = bounds[i];
            bool ok = double.IsNaN(e) ? double.IsNaN(a) : Math.Abs(a - e) <= 1e-5 * bound + TwoUlps * Math.Abs(e) + 1e-38;
            if (!ok) Assert.Fail($"{what}: row {i / cols} col {i % cols} is {a}, expected {e} (bound {bound:g3})");
        }
    }

    // ------------------------------------------------------------------------------------------------ cross-entropy

    static IEnumerable<TestCaseData> CrossEntropyCases()
    {
        foreach (var (rows, cols) in new[] { (4, 1), (9, 3), (7, 17), (6, 1000), (3, 4097), (64, 257), (1, 1 << 18), (2, 1 << 18) })
        foreach (var (eps, scale) in new[] { (0f, 1f), (0.1f, 0.25f), (1f, -2f) })
            yield return new TestCaseData(rows, cols, eps, scale).SetArgDisplayNames($"{rows}x{cols}", $"eps {eps}", $"gradScale {scale}");
    }

    [TestCaseSource(nameof(CrossEntropyCases))]
    public void CrossEntropyMatchesTheReference(int rows, int cols, float eps, float gradScale)
    {
        var (logits, targets) = CrossEntropyInputs(rows, cols, seed: rows + cols);
        var options = new CrossEntropyOptions { LabelSmoothing = eps, GradientScale = gradScale };
        var (losses, grad) = RunCrossEntropy(logits, targets, rows, cols, options, inPlace: false, gradient: true, offset: 3);
        AssertCrossEntropy(logits, targets, losses, grad, rows, cols, options, $"CE {rows}x{cols} eps {eps}");
    }

    [Test]
    public void CrossEntropyInPlaceAndWithoutGradient([Values(1, 17, 5000, 1 << 18)] int cols)
    {
        int rows = cols > 5000 ? 1 : 6;
        var (logits, targets) = CrossEntropyInputs(rows, cols, seed: cols);
        var options = new CrossEntropyOptions { LabelSmoothing = 0.2f, IgnoreIndex = 7 % cols, GradientScale = 0.5f };
        var (losses, grad) = RunCrossEntropy(logits, targets, rows, cols, options, inPlace: true, gradient: true, offset: 2);
        AssertCrossEntropy(logits, targets, losses, grad, rows, cols, options, "CE in place");
        var (alone, _) = RunCrossEntropy(logits, targets, rows, cols, options, inPlace: false, gradient: false, offset: 0);
        AssertCrossEntropy(logits, targets, alone, null, rows, cols, options, "CE losses only");
    }

    /// <summary>A safe softmax in place (found by the concurrency tests): an all -inf row gives zeros, as out of place.</summary>
    [Test]
    public void SafeSoftmaxInPlaceGivesZerosForAnAllMinusInfinityRow()
    {
        using var xb = Acc.Allocate<float>([1, 2, 3, float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity]);
        Acc.Softmax(xb, xb, 2, 3, new SoftmaxOptions { Safe = true });
        Assert.That(xb.ToArray()[3..], Is.EqualTo(new float[3]).AsCollection, "the all -inf row, in place");
    }

    /// <summary>
    /// Label smoothing on rows of finite logits near the float extremes, one with a -inf (found by the cross-entropy property
    /// test): the smoothing term sums the row's logits, and a float sum overflows (FLT_MAX + FLT_MAX, 3e38 + 3e38) where the
    /// double reference does not, giving NaN for a loss of +inf (row 0: -inf logit, so lse - z_j is +inf) or 3e37 (row 1:
    /// the logits' mean is 0, loss = 0.1 * (lse - 0) + 0.9 * (lse - z_t)). Neither row holds NaN or +inf.
    /// </summary>
    [Test]
    public void CrossEntropySmoothingWithLogitsNearTheFloatExtremes()
    {
        const int cols = 16;
        var logits = new float[2 * cols];
        float[] extremes = [float.MaxValue, float.MaxValue, float.NegativeInfinity, 0, 1, 2, 3, 4];
        extremes.CopyTo(logits, 0);
        for (int j = 0; j < cols; j++) logits[cols + j] = j % 8 == 0 ? 3e38f : j % 8 == 1 ? -3e38f : 0f;
        int[] targets = [3, 0];
        var options = new CrossEntropyOptions { LabelSmoothing = 0.1f };
        var (losses, grad) = RunCrossEntropy(logits, targets, 2, cols, options, inPlace: false, gradient: true, offset: 1);
        AssertCrossEntropy(logits, targets, losses, grad, 2, cols, options, "CE smoothing, logits near +-FLT_MAX");
    }

    /// <summary>
    /// Logits with -inf entries; rows whose target is ignored (-100), out of range (cols, -1: NaN), at a -inf logit (loss
    /// +inf unless eps is 1) and rows holding NaN, +inf or only -inf (NaN).
    /// </summary>
    static (float[] Logits, int[] Targets) CrossEntropyInputs(int rows, int cols, int seed)
    {
        var logits = TestData.Logits((long)rows * cols, seed, scale: 12f);
        var random = new Random(seed);
        var targets = Enumerable.Range(0, rows).Select(_ => random.Next(cols)).ToArray();
        for (int i = 3; i < logits.Length; i += 7) logits[i] = float.NegativeInfinity;
        for (int r = 0; r < rows; r++) logits[(long)r * cols + targets[r]] = Math.Max(logits[(long)r * cols + targets[r]], -5f);
        if (rows >= 4) targets[1] = -100;
        if (rows >= 6)
        {
            targets[2] = cols;
            targets[3] = -1;
        }
        if (rows >= 9)
        {
            logits[4 * cols] = float.NaN;
            logits[5 * cols] = float.PositiveInfinity;
            Array.Fill(logits, float.NegativeInfinity, 6 * cols, cols);
            logits[7 * cols + targets[7]] = float.NegativeInfinity;
        }
        return (logits, targets);
    }

    (float[] Losses, float[]? Grad) RunCrossEntropy(float[] logits, int[] targets, int rows, int cols, CrossEntropyOptions options,
        bool inPlace, bool gradient, int offset)
    {
        using var zb = Acc.Allocate<float>(logits.Length + offset);
        using var tb = Acc.Allocate<int>(rows + offset);
        using var lb = Acc.Allocate<float>(rows + 2 * offset);
        using var gb = Acc.Allocate<float>(logits.Length + 2 * offset);
        var z = zb.Slice(offset, logits.Length);
        var t = tb.Slice(offset, rows);
        var l = lb.Slice(2 * offset, rows);
        z.CopyFrom(logits);
        t.CopyFrom(targets);
        BufferView<float> g = !gradient ? default : inPlace ? z : gb.Slice(2 * offset, logits.Length);
        Acc.CrossEntropy(z, t, l, g, rows, cols, options);
        return (l.ToArray(), gradient ? g.ToArray() : null);
    }

    /// <summary>
    /// Losses within 1e-5 (1 + |ref|) plus eps 1e-6 mean|z| (the float sum of logits for smoothing); gradients within
    /// |gradScale| (1e-5 p_j + 2.4e-7): softmax's 1e-5 on p_j, and two ulps of the one-hot and eps / C terms. NaN and
    /// infinities exactly.
    /// </summary>
    internal static void AssertCrossEntropy(float[] logits, int[] targets, float[] losses, float[]? grad, int rows, int cols, CrossEntropyOptions o, string what)
    {
        var expectedLoss = new float[rows];
        var expectedGrad = new float[logits.Length];
        ScalarReference.CrossEntropy(logits, targets, expectedLoss, expectedGrad, rows, cols, o.IgnoreIndex, o.LabelSmoothing, o.GradientScale);
        var p = new float[logits.Length];
        ScalarReference.Softmax(logits, p, rows, cols);
        for (int r = 0; r < rows; r++)
        {
            double meanAbs = 0;
            for (int j = 0; j < cols; j++) meanAbs += float.IsFinite(logits[(long)r * cols + j]) ? Math.Abs(logits[(long)r * cols + j]) / cols : 0;
            if (!Close(losses[r], expectedLoss[r], 1e-5 * (1 + Math.Abs(expectedLoss[r])) + o.LabelSmoothing * 1e-6 * meanAbs))
                Assert.Fail($"{what}: loss of row {r} (target {targets[r]}) is {losses[r]}, expected {expectedLoss[r]}");
            if (grad is null) continue;
            for (int j = 0; j < cols; j++)
            {
                long i = (long)r * cols + j;
                double pj = float.IsNaN(p[i]) ? 0 : p[i];
                if (!Close(grad[i], expectedGrad[i], Math.Abs(o.GradientScale) * (1e-5 * pj + TwoUlps)))
                    Assert.Fail($"{what}: gradient of row {r} (target {targets[r]}) col {j} is {grad[i]}, expected {expectedGrad[i]}");
            }
        }
    }

    static bool Close(double actual, double expected, double tolerance)
        => double.IsNaN(expected) ? double.IsNaN(actual) : double.IsInfinity(expected) ? actual == expected : Math.Abs(actual - expected) <= tolerance + 1e-38;
}

/// <summary>
/// In place, the rows whose z are all -inf must be recognised from the input before it is overwritten (a review found
/// the CPU storing e^(-inf - -inf) = NaN over them first): safe rows stay zeros and a long row's -inf slice adds nothing.
/// </summary>
public sealed class SoftmaxInPlaceTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    [TestCase(2, 8)]
    [TestCase(2, 3)]
    [TestCase(3, 1000)]
    public void SafeFullyMaskedRowInPlaceGivesZeros(int rows, int cols)
    {
        float[] x = TestData.Logits((long)rows * cols, 5);
        Array.Fill(x, float.NegativeInfinity, 0, cols);
        var expected = new float[x.Length];
        using (var separate = Acc.Allocate<float>(x))
        using (var y = Acc.Allocate<float>(x.Length))
        {
            Acc.Softmax(separate, y, rows, cols, new SoftmaxOptions { Safe = true });
            expected = y.ToArray();
        }
        using var buffer = Acc.Allocate<float>(x);
        Acc.Softmax(buffer, buffer, rows, cols, new SoftmaxOptions { Safe = true });
        float[] actual = buffer.ToArray();
        Assert.That(actual[..cols], Is.All.EqualTo(0f), "the fully masked row");
        Assert.That(actual, Is.EqualTo(expected), "in place equals out of place");
    }

    [Test]
    public void LongRowWithAnAllNegativeInfinityHalfInPlace()
    {
        const int cols = 1 << 18;
        float[] x = TestData.Logits(cols, 6);
        Array.Fill(x, float.NegativeInfinity, cols / 2, cols / 2);
        var expected = new float[cols];
        Reference.ScalarReference.Softmax(x, expected, 1, cols);
        using var buffer = Acc.Allocate<float>(x);
        Acc.Softmax(buffer, buffer, 1, cols);
        SoftmaxTests.AssertSoftmax(x, buffer.ToArray(), 1, cols, "in place, -inf second half");
    }
}
