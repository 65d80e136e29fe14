using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// Results in the subnormal range are computed, not flushed: every activation and derivative on a dense grid of
/// [-130, 130] (which holds every finite input whose result or derivative is subnormal: sigmoid's [-103.3, -87.3], SiLU's,
/// GELU's far tail near -13.2..-14.1, softplus's, ELU''s, tanh''s [44.4, 51.6], ...) and on subnormal inputs, held to the
/// elementwise bound in plain ulps with no allowance for flushing (an ulp below 2^-126 is 2^-149).
/// </summary>
public sealed class SubnormalTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    static IEnumerable<ActivationCase> Cases => OpTable.Activations;

    /// <summary>The grid, plus every power of two from 2^-149 to 2^-120 of both signs and a spread of subnormal inputs.</summary>
    internal static float[] Inputs()
    {
        var values = new List<float>();
        for (int i = -13000; i <= 13000; i++) values.Add(i * 0.01f);
        for (int e = -149; e <= -120; e++) { values.Add(MathF.ScaleB(1f, e)); values.Add(-MathF.ScaleB(1f, e)); }
        for (int bits = 1; bits < 0x800000; bits += 9973) { values.Add(BitConverter.Int32BitsToSingle(bits)); values.Add(-BitConverter.Int32BitsToSingle(bits)); }
        return [.. values];
    }

    /// <summary>Ulps between <paramref name="actual"/> and <paramref name="expected"/> rounded to float, subnormals counted like any float.</summary>
    internal static double StrictDistance(float actual, double expected)
    {
        float e = (float)expected;
        if (float.IsNaN(e) || float.IsNaN(actual)) return float.IsNaN(e) && float.IsNaN(actual) ? 0 : double.PositiveInfinity;
        static long Ordinal(float f) { int b = BitConverter.SingleToInt32Bits(f); return b < 0 ? -(long)(b & 0x7FFFFFFF) : b; }
        return Math.Abs(Ordinal(actual) - Ordinal(e));
    }

    static void AssertStrict(ReadOnlySpan<float> x, ReadOnlySpan<float> actual, Func<float, double> expected, double maxUlp, string what)
    {
        double worst = 0;
        int at = -1;
        int subnormal = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double r = expected(x[i]);
            if (r != 0 && Math.Abs(r) < 1.17549435e-38) subnormal++;
            double d = StrictDistance(actual[i], r);
            if (d > worst) { worst = d; at = i; }
        }
        TestContext.Out.WriteLine($"{what}: max {worst} ulp at x = {(at < 0 ? 0 : x[at]):R}, {subnormal} subnormal results");
        if (worst > maxUlp)
            Assert.Fail($"{what}: {worst} ulp > {maxUlp} at x = {x[at]:R}: got {actual[at]:R}, expected {(float)expected(x[at]):R} ({subnormal} subnormal results checked)");
    }

    [TestCaseSource(nameof(Cases))]
    public void ForwardSubnormalResults(ActivationCase op)
    {
        float[] x = Inputs();
        var y = Run(x, x.Length, (xv, yv) => Acc.Apply(op.Activation, xv, yv));
        AssertStrict(x, y, v => op.Expected(v), op.MaxUlp, op.ToString());
    }

    [TestCaseSource(nameof(Cases))]
    public void DerivativeSubnormalResults(ActivationCase op)
    {
        float[] x = Inputs();
        using var xb = Acc.Allocate<float>(x);
        using var dyb = Acc.Allocate<float>(Enumerable.Repeat(1f, x.Length).ToArray());
        using var dxb = Acc.Allocate<float>(x.Length);
        Acc.ActivationBackward(op.Activation, xb, dyb, dxb);
        var a = op.Activation;
        // Near a derivative's zero (GELU' at -0.75, SiLU' at -1.28, mish' at -1.19) plain ulps are unbounded: those normal
        // results are BackwardTests' (ulps of the terms' scale); here only results below 2^-100 count, where nothing cancels.
        double Reference(float v) => ScalarReference.Derivative(op.Reference, v, a.Alpha, a.Beta, a.Threshold);
        var dx = dxb.ToArray();
        var tiny = Enumerable.Range(0, x.Length).Where(i => Math.Abs(Reference(x[i])) < 7.9e-31).ToArray();
        AssertStrict(tiny.Select(i => x[i]).ToArray(), tiny.Select(i => dx[i]).ToArray(), Reference, 8, op + "'");
    }
}
