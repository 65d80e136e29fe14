using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// The backward ops on every accelerator against the double reference (<see cref="ScalarReference.Derivative"/>):
/// dx = dy * f'(x) for every activation of <see cref="OpTable"/>, the output form, and PReLU's dx and dAlpha.
/// </summary>
public sealed class BackwardTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    /// <summary>
    /// The bound on dx, in ulps of |dy| * <see cref="ScalarReference.DerivativeScale"/> (the magnitude of the terms f'
    /// adds, so plain ulps except near f''s zero, where the terms cancel). The CPU's f' is within 5.3 of them over
    /// 12.5 million inputs (docs/numerics.md, Backward); the product with dy adds half an ulp, and the rest is margin
    /// for the devices' own divisions and exponentials.
    /// </summary>
    const double GradientUlp = 8;

    static IEnumerable<ActivationCase> Cases => OpTable.Activations;

    static IEnumerable<ActivationCase> OutputCases => OpTable.Activations.Where(c => c.Activation.HasOutputDerivative);

    /// <summary>A dense grid of [-30, 30] (where every function bends, kinks included), the special values and random ones.</summary>
    static float[] Inputs()
    {
        var grid = Enumerable.Range(0, 6001).Select(i => (float)(-30 + i * 0.01));
        return [.. grid, .. TestData.Special, .. TestData.Values(3000, seed: 11)];
    }

    /// <summary>Random dy in [-2, 2], with 0, 1, -1 and one NaN and one infinity every 97 elements.</summary>
    static float[] Gradients(int n, int seed)
    {
        var random = new Random(seed);
        var dy = new float[n];
        for (int i = 0; i < n; i++)
        {
            dy[i] = (i % 97) switch
            {
                0 => float.NaN,
                1 => float.PositiveInfinity,
                2 => 0f,
                3 => 1f,
                4 => -1f,
                _ => (float)(random.NextDouble() * 4 - 2),
            };
        }
        return dy;
    }

    /// <summary>
    /// An infinite dy times a derivative below the smallest normal float: the float derivative may flush to 0
    /// (DESIGN.md), and inf * 0 is NaN where the reference's tiny value gives inf. Either is accepted there.
    /// </summary>
    static bool Undetermined(float dy, double derivative) => float.IsInfinity(dy) && Math.Abs(derivative) < SmallestNormal;

    const double SmallestNormal = 1.17549435e-38;

    internal static void AssertGradient(ActivationCase op, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> dx, string what)
    {
        var a = op.Activation;
        double worst = 0;
        int at = -1;
        for (int i = 0; i < x.Length; i++)
        {
            double derivative = ScalarReference.Derivative(op.Reference, x[i], a.Alpha, a.Beta, a.Threshold);
            if (Undetermined(dy[i], derivative)) continue;
            // f' below the smallest normal float may be flushed or kept subnormal (DESIGN.md), losing its precision: a
            // large finite dy brings that error into the normal range, so there it is bounded by |dy| * 2^-126.
            if (Math.Abs(derivative) < SmallestNormal && float.IsFinite(dy[i]) && Math.Abs(dx[i] - dy[i] * derivative) <= Math.Abs(dy[i]) * SmallestNormal) continue;
            double scale = Math.Abs(dy[i]) * ScalarReference.DerivativeScale(op.Reference, x[i], a.Alpha, a.Beta, a.Threshold);
            double d = ErrorMetrics.ScaledUlpDistance(dx[i], dy[i] * derivative, scale);
            if (d > worst) { worst = d; at = i; }
        }
        if (worst > GradientUlp)
            Assert.Fail($"{what}: {worst:0.##} ulp > {GradientUlp} at index {at}: x = {x[at]:R}, dy = {dy[at]:R}, got {dx[at]:R}, expected {dy[at] * ScalarReference.Derivative(op.Reference, x[at], a.Alpha, a.Beta, a.Threshold):R}");
    }

    float[] Backward(Activation activation, float[] x, float[] dy, bool fromOutput = false)
    {
        using var xb = Acc.Allocate<float>(x);
        using var dyb = Acc.Allocate<float>(dy);
        using var dxb = Acc.Allocate<float>(x.Length);
        if (fromOutput) Acc.ActivationBackwardFromOutput(activation, xb, dyb, dxb);
        else Acc.ActivationBackward(activation, xb, dyb, dxb);
        return dxb.ToArray();
    }

    [TestCaseSource(nameof(Cases))]
    public void DenseGridAndSpecialValues(ActivationCase op)
    {
        var x = Inputs();
        var dy = Gradients(x.Length, seed: 5);
        AssertGradient(op, x, dy, Backward(op.Activation, x, dy), op.ToString());
    }

    [TestCaseSource(nameof(Cases))]
    public void OddLengthsAndViews(ActivationCase op)
    {
        const int size = 1100;
        var data = TestData.Values(size, seed: 3);
        var grad = Gradients(size, seed: 4);
        using var x = Acc.Allocate<float>(data);
        using var dy = Acc.Allocate<float>(grad);
        using var dx = Acc.Allocate<float>(size);
        foreach (var (offset, length) in new[] { (0, 0), (0, 1), (1, 3), (3, 17), (5, 1037), (1099, 1) })
        {
            dx.CopyFrom(Enumerable.Repeat(-12345f, size).ToArray());
            Acc.ActivationBackward(op.Activation, x.Slice(offset, length), dy.Slice(offset, length), dx.Slice(offset, length));
            var got = dx.ToArray();
            AssertGradient(op, data.AsSpan(offset, length), grad.AsSpan(offset, length), got.AsSpan(offset, length), $"{op} offset={offset} length={length}");
            Assert.That(got[..offset], Is.All.EqualTo(-12345f), "elements before the view were written");
            Assert.That(got[(offset + length)..], Is.All.EqualTo(-12345f), "elements after the view were written");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void InPlaceIntoXOrDy(ActivationCase op)
    {
        var x = TestData.Values(1003, seed: 9);
        var dy = Gradients(x.Length, seed: 10);
        using var xb = Acc.Allocate<float>(x);
        using var dyb = Acc.Allocate<float>(dy);
        Acc.ActivationBackward(op.Activation, xb, dyb, dyb);
        AssertGradient(op, x, dy, dyb.ToArray(), $"{op} into dy");
        dyb.CopyFrom(dy);
        Acc.ActivationBackward(op.Activation, xb, dyb, xb);
        AssertGradient(op, x, dy, xb.ToArray(), $"{op} into x");
    }

    /// <summary>The output form against its own formula on y = f(x) (one or two roundings of an exact expression), and against the input form where y keeps f' well conditioned.</summary>
    [TestCaseSource(nameof(OutputCases))]
    public void OutputFormMatchesItsFormulaAndTheInputForm(ActivationCase op)
    {
        var x = Inputs();
        var dy = Gradients(x.Length, seed: 6);
        using var xb = Acc.Allocate<float>(x);
        using var yb = Acc.Allocate<float>(x.Length);
        Acc.Apply(op.Activation, xb, yb);
        float[] y = yb.ToArray();
        float[] fromOutput = Backward(op.Activation, y, dy, fromOutput: true);
        float[] fromInput = Backward(op.Activation, x, dy);
        var expected = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double derivative = ScalarReference.OutputDerivative(op.Reference, y[i], op.Activation.Alpha);
            // As Undetermined, and SELU's f' that the float constant makes 0 (below).
            expected[i] = float.IsInfinity(dy[i]) && Math.Abs(derivative) < 2e-7 ? fromOutput[i] : dy[i] * derivative;
        }
        // 2 ulp, or 1.2e-7 |dy| absolute: SELU's y + lambda alpha uses lambda alpha rounded to float (half an ulp of 1.76),
        // which is all of f' where y nears its floor -lambda alpha.
        for (int i = 0; i < x.Length; i++)
        {
            if (Ulp.Distance(fromOutput[i], expected[i]) <= 2 || Math.Abs(fromOutput[i] - expected[i]) <= 1.2e-7 * Math.Abs(dy[i])) continue;
            Assert.Fail($"{op} from y = {y[i]:R} (x = {x[i]:R}, dy = {dy[i]:R}): got {fromOutput[i]:R}, expected {expected[i]:R}");
        }
        // For |x| <= 4 the rounding of y moves f'(x) from y by at most ~1.6e-6 (sigmoid: ulp(y)/2 against 1 - y = 0.018).
        for (int i = 0; i < x.Length; i++)
        {
            if (!(Math.Abs(x[i]) <= 4) || !float.IsFinite(dy[i])) continue;
            Assert.That(fromOutput[i], Is.EqualTo(fromInput[i]).Within(2e-6 * Math.Max(1, Math.Abs(dy[i]))), $"{op} at x = {x[i]:R}, dy = {dy[i]:R}");
        }
    }

    [Test]
    public void OutputFormRejectsActivationsWithoutOne()
    {
        using var b = Acc.Allocate<float>(4);
        foreach (var activation in new[] { Activation.Gelu, Activation.Silu, Activation.Mish, Activation.LeakyRelu(0f), Activation.Elu(-0.5f) })
        {
            Assert.That(activation.HasOutputDerivative, Is.False, activation.ToString());
            var e = Assert.Throws<ArgumentException>(() => Acc.ActivationBackwardFromOutput(activation, b, b, b))!;
            Assert.That(e.ParamName, Is.EqualTo("activation"));
            Assert.That(e.Message, Does.Contain(activation.ToString()).And.Contain("Sigmoid, Tanh, Relu"));
        }
    }

    [Test]
    public void PublishedValues()
    {
        float[] x = [0f, 0f, 0f, 0f, 1f];
        float[] dy = [1f, 1f, 1f, 1f, 1f];
        Assert.Multiple(() =>
        {
            Assert.That(Backward(Activation.Sigmoid, x, dy)[0], Is.EqualTo(0.25f), "sigmoid'(0) = 1/4");
            Assert.That(Backward(Activation.Tanh, x, dy)[0], Is.EqualTo(1f), "tanh'(0) = 1");
            Assert.That(Backward(Activation.Relu, x, dy)[0], Is.EqualTo(0f), "relu'(0) = 0 (PyTorch)");
            Assert.That(Backward(Activation.LeakyRelu(0.2f), x, dy)[0], Is.EqualTo(0.2f), "leaky_relu'(0) = alpha (PyTorch)");
            Assert.That(Backward(Activation.Gelu, x, dy)[0], Is.EqualTo(0.5f), "GELU'(0) = Phi(0) = 1/2");
            // GELU'(1) = Phi(1) + phi(1) = 0.8413447460685429 + 0.24197072451914337.
            Assert.That(Backward(Activation.Gelu, x, dy)[4], Is.EqualTo(1.0833154705876864f).Within(2).Ulps);
            Assert.That(Backward(Activation.HardSwish, [-3f, 3f, -4f, 4f], [1f, 1f, 1f, 1f]), Is.EqualTo(new[] { -0.5f, 1.5f, 0f, 1f }), "hardswish' at and beyond +-3");
            Assert.That(Backward(Activation.Relu6, [0f, 6f, 3f], [1f, 1f, 1f]), Is.EqualTo(new[] { 0f, 0f, 1f }), "relu6' is 1 only on (0, 6)");
            Assert.That(float.IsNaN(Backward(Activation.Relu, [float.NaN], [1f])[0]), "relu'(NaN) * dy is NaN");
            Assert.That(float.IsNaN(Backward(Activation.Sigmoid, [1f], [float.NaN])[0]), "NaN dy gives NaN");
        });
    }

    /// <summary>(rows, channels) shapes: one channel, many, a single row, odd sizes.</summary>
    static readonly (int Rows, int Channels)[] PReluShapes = [(1, 1), (1000, 1), (7, 3), (100, 17), (33, 1000), (0, 5)];

    (float[] X, float[] Alpha, float[] Dy) PReluData(int rows, int channels, int seed)
    {
        var random = new Random(seed);
        float[] x = [.. Enumerable.Range(0, rows * channels).Select(_ => (float)(random.NextDouble() * 20 - 10))];
        float[] alpha = [.. Enumerable.Range(0, channels).Select(_ => (float)(random.NextDouble() * 0.5 - 0.1))];
        float[] dy = [.. Enumerable.Range(0, rows * channels).Select(_ => (float)(random.NextDouble() * 4 - 2))];
        return (x, alpha, dy);
    }

    /// <summary>
    /// dx exactly (one rounded product, as the reference); dAlpha within 6 * 2^-24 of the sum of |x dy| over the channel's
    /// rows: each term is rounded once (2^-24 relative) and a compensated float sum (devices) adds at most 2 * 2^-24 of the
    /// sum plus O(n 2^-48); the CPU sums in double.
    /// </summary>
    static void AssertPRelu(float[] x, float[] alpha, float[] dy, float[] dx, float[] dAlpha, string what)
    {
        var expectedDx = new float[x.Length];
        var expectedDAlpha = new float[alpha.Length];
        ScalarReference.PReluBackward(x, alpha, dy, expectedDx, expectedDAlpha);
        Assert.That(dx, Is.EqualTo(expectedDx), $"{what}: dx");
        for (int c = 0; c < alpha.Length; c++)
        {
            double magnitude = 0;
            for (int i = c; i < x.Length; i += alpha.Length) magnitude += x[i] < 0 ? Math.Abs((double)x[i] * dy[i]) : 0;
            Assert.That(dAlpha[c], Is.EqualTo(expectedDAlpha[c]).Within(6 * Math.Pow(2, -24) * magnitude + 1e-30), $"{what}: dAlpha[{c}]");
        }
    }

    [Test]
    public void PReluBackwardGivesDxAndDAlpha()
    {
        foreach (var (rows, channels) in PReluShapes)
        {
            var (x, alpha, dy) = PReluData(rows, channels, seed: rows * 31 + channels);
            using var xb = Acc.Allocate<float>(x);
            using var ab = Acc.Allocate<float>(alpha);
            using var dyb = Acc.Allocate<float>(dy);
            using var dxb = Acc.Allocate<float>(x.Length);
            using var dab = Acc.Allocate<float>(Enumerable.Repeat(123f, channels).ToArray()); // overwritten, not accumulated
            Acc.PReluBackward(xb, ab, dyb, dxb, dab);
            AssertPRelu(x, alpha, dy, dxb.ToArray(), dab.ToArray(), $"{rows}x{channels}");
        }
    }

    [Test]
    public void PReluBackwardInPlaceAndAtOffsets()
    {
        var (x, alpha, dy) = PReluData(41, 7, seed: 2);
        using var xb = Acc.Allocate<float>(x.Length + 5);
        using var ab = Acc.Allocate<float>(alpha.Length + 3);
        using var dyb = Acc.Allocate<float>(dy.Length + 1);
        using var dab = Acc.Allocate<float>(alpha.Length + 2);
        var xv = xb.Slice(5, x.Length);
        var av = ab.Slice(3, alpha.Length);
        var dyv = dyb.Slice(1, dy.Length);
        var dav = dab.Slice(1, alpha.Length);
        av.CopyFrom(alpha);
        foreach (string into in new[] { "x", "dy" })
        {
            xv.CopyFrom(x);
            dyv.CopyFrom(dy);
            var dxv = into == "x" ? xv : dyv;
            Acc.PReluBackward(xv, av, dyv, dxv, dav);
            AssertPRelu(x, alpha, dy, dxv.ToArray(), dav.ToArray(), $"into {into}");
        }
    }

    [Test]
    public void PReluBackwardPropagatesNaN()
    {
        float[] x = [1f, float.NaN, -2f, -1f, 3f, -4f];
        float[] alpha = [0.25f, 0.5f, 0.75f];
        float[] dy = [1f, 1f, 1f, float.NaN, 2f, 2f];
        using var xb = Acc.Allocate<float>(x);
        using var ab = Acc.Allocate<float>(alpha);
        using var dyb = Acc.Allocate<float>(dy);
        using var dxb = Acc.Allocate<float>(x.Length);
        using var dab = Acc.Allocate<float>(alpha.Length);
        Acc.PReluBackward(xb, ab, dyb, dxb, dab);
        Assert.That(dxb.ToArray(), Is.EqualTo(new[] { 1f, float.NaN, 0.75f, float.NaN, 2f, 1.5f }));
        Assert.That(dab.ToArray(), Is.EqualTo(new[] { float.NaN, float.NaN, -10f }), "NaN x or dy on the negative side poisons its channel only");
    }

    [Test]
    public void PReluBackwardRejectsDAlphaOverlappingAnInput()
    {
        using var b = Acc.Allocate<float>(20);
        using var alpha = Acc.Allocate<float>(3);
        using var dAlpha = Acc.Allocate<float>(3);
        var e = Assert.Throws<ArgumentException>(() => Acc.PReluBackward(b.Slice(0, 12), alpha, b.Slice(0, 12), b.Slice(0, 12), b.Slice(11, 3)))!;
        Assert.That(e.ParamName, Is.EqualTo("dAlpha"));
        Assert.That(e.Message, Does.Contain("must be disjoint"));
        Assert.Throws<ArgumentException>(() => Acc.PReluBackward(b.Slice(0, 12), alpha, b.Slice(0, 12), b.Slice(0, 12), alpha));
    }
}

/// <summary>The span API's backward ops give the CPU accelerator's results bit for bit and check their arguments the same way.</summary>
public class CpuSpanBackwardTests
{
    [Test]
    public void SpanBackwardMatchesTheCpuAccelerator()
    {
        using var acc = Accelerator.Create(AcceleratorKind.Cpu);
        float[] x = TestData.Values(1001, seed: 21);
        float[] dy = TestData.Values(1001, seed: 22);
        foreach (var activation in Activation.All)
        {
            using var xb = acc.Allocate<float>(x);
            using var dyb = acc.Allocate<float>(dy);
            acc.ActivationBackward(activation, xb, dyb, dyb);
            float[] dx = (float[])dy.Clone();
            CpuKernels.ActivationBackward(activation, x, dx, dx); // in place into dy
            Assert.That(dx, Is.EqualTo(dyb.ToArray()), activation.ToString());
            if (!activation.HasOutputDerivative) continue;
            dyb.CopyFrom(dy);
            acc.ActivationBackwardFromOutput(activation, xb, dyb, dyb);
            CpuKernels.ActivationBackwardFromOutput(activation, x, dy, dx);
            Assert.That(dx, Is.EqualTo(dyb.ToArray()), $"{activation} from y");
        }
        Assert.Throws<ArgumentException>(() => CpuKernels.ActivationBackwardFromOutput(Activation.Gelu, x, dy, new float[x.Length]));
        Assert.Throws<ArgumentException>(() => CpuKernels.ActivationBackward(Activation.Gelu, x, dy, new float[3]));
    }

    [Test]
    public void SpanPReluBackwardMatchesTheReference()
    {
        var random = new Random(5);
        float[] x = [.. Enumerable.Range(0, 60).Select(_ => (float)(random.NextDouble() * 8 - 4))];
        float[] dy = [.. Enumerable.Range(0, 60).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        float[] alpha = [0.1f, 0.2f, 0.3f, 0.4f, 0.5f];
        float[] dx = new float[60], dAlpha = new float[5], expectedDx = new float[60], expectedDAlpha = new float[5];
        CpuKernels.PReluBackward(x, alpha, dy, dx, dAlpha);
        ScalarReference.PReluBackward(x, alpha, dy, expectedDx, expectedDAlpha);
        Assert.That(dx, Is.EqualTo(expectedDx));
        Assert.That(dAlpha, Is.EqualTo(expectedDAlpha), "both sum in double, in row order");
        var e = Assert.Throws<ArgumentException>(() => CpuKernels.PReluBackward(x, alpha, dy, dx, dx.AsSpan(0, 5)))!;
        Assert.That(e.ParamName, Is.EqualTo("dAlpha"));
    }
}
