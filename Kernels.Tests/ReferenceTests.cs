using System.Globalization;
using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// Checks the scalar reference (the oracle of every other test) against published values, identities and an
/// independent high-precision evaluation, so that its own errors are known to be far below float resolution.
/// </summary>
public class ReferenceTests
{
    private const double Tight = 1e-15;

    private static double RelErr(double actual, double expected) =>
        expected == 0 ? Math.Abs(actual) : Math.Abs((actual - expected) / expected);

    private static bool IsNegativeZero(double v) => v == 0 && double.IsNegative(v);

    private static bool IsPositiveZero(double v) => v == 0 && !double.IsNegative(v);

    // ------------------------------------------------------------------ erf / erfc: published values

    // erf and erfc values to 16-20 significant digits (Abramowitz & Stegun table 7.1 extends to these
    // digits via any arbitrary-precision evaluation; the large-x values were computed with 40-digit arithmetic).
    [TestCase(0.5, 0.52049987781304653768)]
    [TestCase(1.0, 0.84270079294971486934)]
    [TestCase(2.0, 0.99532226501895273416)]
    [TestCase(0.1, 0.1124629160182848984)]
    [TestCase(1e-10, 1.128379167095512615e-10)]
    public void ErfMatchesPublishedValues(double x, double expected)
    {
        Assert.That(RelErr(SpecialFunctions.Erf(x), expected), Is.LessThanOrEqualTo(Tight));
        Assert.That(RelErr(SpecialFunctions.Erf(-x), -expected), Is.LessThanOrEqualTo(Tight));
    }

    [TestCase(0.1, 0.8875370839817151016)]
    [TestCase(0.5, 0.47950012218695346232)]
    [TestCase(1.0, 0.15729920705028513066)]
    [TestCase(-1.0, 1.8427007929497148693)]
    [TestCase(2.0, 0.0046777349810472658379)]
    [TestCase(3.0, 2.2090496998585441373e-5)]
    [TestCase(5.0, 1.5374597944280348502e-12)]
    [TestCase(10.0, 2.088487583762544757e-45)]
    [TestCase(15.0, 7.2129941724512066666e-100)]
    [TestCase(20.0, 5.3958656116079009289e-176)]
    [TestCase(26.0, 5.6631924088561428465e-296)]
    public void ErfcMatchesPublishedValues(double x, double expected) =>
        Assert.That(RelErr(SpecialFunctions.Erfc(x), expected), Is.LessThanOrEqualTo(Tight));

    [Test]
    public void ErfcSpecialValuesAndUnderflow()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(SpecialFunctions.Erfc(double.PositiveInfinity), Is.EqualTo(0.0));
            Assert.That(SpecialFunctions.Erfc(double.NegativeInfinity), Is.EqualTo(2.0));
            Assert.That(SpecialFunctions.Erfc(-30.0), Is.EqualTo(2.0));
            Assert.That(SpecialFunctions.Erfc(double.MinValue), Is.EqualTo(2.0));
            Assert.That(SpecialFunctions.Erfc(double.NaN), Is.NaN);
            Assert.That(SpecialFunctions.Erfc(0.0), Is.EqualTo(1.0));
            Assert.That(SpecialFunctions.Erfc(28.0), Is.EqualTo(0.0));
            Assert.That(SpecialFunctions.Erfc(double.MaxValue), Is.EqualTo(0.0));

            // erfc(27) = 5.237048923789255685e-319 is subnormal: only ~1e-5 relative precision exists there.
            Assert.That(RelErr(SpecialFunctions.Erfc(27.0), 5.237048923789255685e-319), Is.LessThanOrEqualTo(1e-4));

            Assert.That(SpecialFunctions.Erf(double.PositiveInfinity), Is.EqualTo(1.0));
            Assert.That(SpecialFunctions.Erf(double.NegativeInfinity), Is.EqualTo(-1.0));
            Assert.That(SpecialFunctions.Erf(double.NaN), Is.NaN);
            Assert.That(IsNegativeZero(SpecialFunctions.Erf(-0.0)), Is.True);
            Assert.That(IsPositiveZero(SpecialFunctions.Erf(0.0)), Is.True);
            Assert.That(SpecialFunctions.Erf(double.Epsilon), Is.EqualTo(double.Epsilon)); // 2/√π · 2^-1074 rounds to 2^-1074
        }
    }

    // ------------------------------------------------------------------ erf / erfc: identities

    [Test]
    public void ErfIsOddAndErfcReflects()
    {
        for (int k = 0; k <= 4000; k++)
        {
            double x = k * 0.0017 + k * k * 1e-6; // irregular grid over [0, ~23]
            double erf = SpecialFunctions.Erf(x);
            Assert.That(SpecialFunctions.Erf(-x), Is.EqualTo(-erf), $"erf odd at {x}");

            // erfc(-x) = 2 - erfc(x); both sides are rounded, so allow one ulp of a number in [1, 2].
            double lhs = SpecialFunctions.Erfc(-x);
            double rhs = 2.0 - SpecialFunctions.Erfc(x);
            Assert.That(lhs, Is.EqualTo(rhs).Within(2.3e-16), $"erfc reflection at {x}");

            // erf + erfc = 1 (absolute, since one of them may be tiny).
            Assert.That(erf + SpecialFunctions.Erfc(x), Is.EqualTo(1.0).Within(3.4e-16), $"erf + erfc at {x}");
        }
    }

    // ------------------------------------------------------------------ erf / erfc: independent evaluation

    // 2/√π to 28 digits, for the decimal series below.
    private const decimal TwoOverSqrtPiDecimal = 1.1283791670955125738961589031m;

    /// <summary>
    /// erf by its Maclaurin series (A&amp;S 7.1.5) in System.Decimal (~28 significant digits). For |x| ≤ 3 the
    /// largest term is ~60, so the absolute error stays near 1e-26: relative 1e-21 even for erfc(3) = 2.2e-5.
    /// </summary>
    private static decimal ErfDecimal(decimal x)
    {
        decimal x2 = x * x;
        decimal term = x;  // (-1)^n x^(2n+1) / n!
        decimal sum = x;
        for (int n = 1; n < 200; n++)
        {
            term = term * -x2 / n;
            decimal c = term / (2 * n + 1);
            sum += c;
            if (Math.Abs(c) < 1e-28m)
            {
                break;
            }
        }

        return TwoOverSqrtPiDecimal * sum;
    }

    // decimal → double through the correctly rounded double.Parse, not the decimal conversion operator.
    private static double ToDouble(decimal d) => double.Parse(d.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    [Test]
    public void ErfAndErfcMatchDecimalSeriesOnGrid()
    {
        double worstErf = 0, worstErfc = 0;
        for (int k = -3072; k <= 3072; k += 5)
        {
            if (k == 0)
            {
                continue;
            }

            // k/1024 is exact both as double and as decimal.
            double x = k / 1024.0;
            decimal xd = k / 1024m;
            decimal erf = ErfDecimal(xd);
            worstErf = Math.Max(worstErf, RelErr(SpecialFunctions.Erf(x), ToDouble(erf)));
            worstErfc = Math.Max(worstErfc, RelErr(SpecialFunctions.Erfc(x), ToDouble(1m - erf)));
        }

        // Tiny arguments, where only the leading terms matter.
        for (int e = 1; e <= 12; e++)
        {
            decimal xd = 3m / (decimal)Math.Pow(10, e);
            double x = 3.0 / Math.Pow(10, e);
            Assume.That((double)xd, Is.EqualTo(x));
            worstErf = Math.Max(worstErf, RelErr(SpecialFunctions.Erf(x), ToDouble(ErfDecimal(xd))));
        }

        TestContext.Out.WriteLine($"max rel error vs decimal series: erf {worstErf:E3}, erfc {worstErfc:E3}");
        Assert.That(worstErf, Is.LessThanOrEqualTo(Tight));
        Assert.That(worstErfc, Is.LessThanOrEqualTo(Tight));
    }

    [Test]
    public void ErfcMatchesAsymptoticSeriesAtLargeX()
    {
        // A&S 7.1.23: erfc x ~ e^(-x²)/(x√π) · Σ (-1)^n (2n-1)!!/(2x²)^n. For x ≥ 10 the terms fall by at
        // least 1/200 per step until n ≈ x², far past double precision. x = k/8 makes x² exact, so e^(-x²)
        // is a single correctly rounded-ish Math.Exp call.
        double worst = 0;
        for (int k = 80; k <= 208; k++)
        {
            double x = k / 8.0;
            double x2 = x * x;
            double sum = 1, term = 1;
            for (int n = 1; n < 60; n++)
            {
                term *= -(2 * n - 1) / (2 * x2);
                sum += term;
                if (Math.Abs(term) < 1e-18)
                {
                    break;
                }
            }

            double expected = Math.Exp(-x2) / (x * Math.Sqrt(Math.PI)) * sum;
            worst = Math.Max(worst, RelErr(SpecialFunctions.Erfc(x), expected));
        }

        TestContext.Out.WriteLine($"max rel error vs asymptotic series on [10, 26]: {worst:E3}");
        Assert.That(worst, Is.LessThanOrEqualTo(Tight));
    }

    // ------------------------------------------------------------------ normal CDF

    // Φ(x) to 20 digits (40-digit arithmetic); Φ(-37.5) is just above the smallest normal double.
    [TestCase(-37.5, 4.6053530095819548438e-308)]
    [TestCase(-37.0, 5.7255712225245768227e-300)]
    [TestCase(-30.0, 4.9067139271481870595e-198)]
    [TestCase(-20.0, 2.7536241186062336951e-89)]
    [TestCase(-10.0, 7.619853024160526066e-24)]
    [TestCase(-5.0, 2.8665157187919391167e-7)]
    [TestCase(-1.0, 0.15865525393145705141)]
    [TestCase(0.0, 0.5)]
    [TestCase(0.5, 0.69146246127401310364)]
    [TestCase(1.0, 0.84134474606854294859)]
    [TestCase(2.0, 0.9772498680518207928)]
    public void NormalCdfMatchesPublishedValues(double x, double expected) =>
        Assert.That(RelErr(SpecialFunctions.NormalCdf(x), expected), Is.LessThanOrEqualTo(Tight));

    [Test]
    public void NormalCdfTailsAndSymmetry()
    {
        using (Assert.EnterMultipleScope())
        {
            // Φ(-38) = 2.8854283600687843e-316 is subnormal (about 8 significant digits survive).
            Assert.That(RelErr(SpecialFunctions.NormalCdf(-38.0), 2.8854283600687843084e-316), Is.LessThanOrEqualTo(1e-7));
            Assert.That(SpecialFunctions.NormalCdf(-40.0), Is.EqualTo(0.0));
            Assert.That(SpecialFunctions.NormalCdf(double.NegativeInfinity), Is.EqualTo(0.0));
            Assert.That(SpecialFunctions.NormalCdf(double.PositiveInfinity), Is.EqualTo(1.0));
            Assert.That(SpecialFunctions.NormalCdf(9.0), Is.EqualTo(1.0));
            Assert.That(SpecialFunctions.NormalCdf(double.NaN), Is.NaN);
        }

        for (int k = 0; k <= 600; k++)
        {
            double x = k * 0.01;
            Assert.That(SpecialFunctions.NormalCdf(x) + SpecialFunctions.NormalCdf(-x), Is.EqualTo(1.0).Within(3.4e-16), $"x = {x}");
        }
    }

    // ------------------------------------------------------------------ expm1 / log1p

    // Values at the double nearest each decimal argument, from 40-digit arithmetic.

    [TestCase(1e-10, 1.0000000000500000364338639858077e-10)]
    [TestCase(-1e-10, -9.9999999995000003643386397852115e-11)]
    [TestCase(0.3, 0.34985880757600308899730103168863)]
    [TestCase(-0.3, -0.25918177931828212570839176405535)]
    [TestCase(1.0, 1.7182818284590452354)]
    [TestCase(-50.0, -1.0)]
    public void Expm1IsAccurate(double x, double expected) =>
        Assert.That(RelErr(SpecialFunctions.Expm1(x), expected), Is.LessThanOrEqualTo(Tight));

    [TestCase(1e-10, 9.9999999995000003643553064518761e-11)]
    [TestCase(-1e-10, -1.0000000000500000364355306524745e-10)]
    [TestCase(0.3, 0.26236426446749104349531887437975)]
    [TestCase(-0.3, -0.35667494393873236305230978802466)]
    [TestCase(1.0, 0.69314718055994530942)]
    [TestCase(-0.75, -1.3862943611198906188)]
    public void Log1pIsAccurate(double x, double expected) =>
        Assert.That(RelErr(SpecialFunctions.Log1p(x), expected), Is.LessThanOrEqualTo(Tight));

    // ------------------------------------------------------------------ scalar ops

    [Test]
    public void OpsMatchKnownValues()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ScalarReference.Sigmoid(0), Is.EqualTo(0.5));
            Assert.That(ScalarReference.Tanh(0), Is.EqualTo(0.0));
            Assert.That(RelErr(ScalarReference.Sigmoid(1), 0.7310585786300048793), Is.LessThanOrEqualTo(Tight));

            // gelu(1) = Φ(1), gelu(-1) = -Φ(-1).
            Assert.That(RelErr(ScalarReference.Gelu(1), 0.8413447460685429), Is.LessThanOrEqualTo(Tight));
            Assert.That(RelErr(ScalarReference.Gelu(-1), -0.15865525393145705), Is.LessThanOrEqualTo(Tight));
            Assert.That(RelErr(ScalarReference.GeluTanh(1), 0.8411919906082767), Is.LessThanOrEqualTo(Tight));
            Assert.That(RelErr(ScalarReference.Silu(1), 0.7310585786300049), Is.LessThanOrEqualTo(Tight));
            Assert.That(RelErr(ScalarReference.Silu(-1), -0.2689414213699951), Is.LessThanOrEqualTo(Tight));
            Assert.That(RelErr(ScalarReference.Mish(1), 0.8650983882673103), Is.LessThanOrEqualTo(Tight));
            Assert.That(RelErr(ScalarReference.Mish(-1), -0.3034014613741089), Is.LessThanOrEqualTo(Tight));

            // softplus(0) = ln 2; beyond the threshold it is the identity.
            Assert.That(RelErr(ScalarReference.Softplus(0, 1, 20), Math.Log(2)), Is.LessThanOrEqualTo(Tight));
            Assert.That(ScalarReference.Softplus(20.5, 1, 20), Is.EqualTo(20.5));
            Assert.That(RelErr(ScalarReference.Softplus(1, 2, 20), Math.Log(1 + Math.Exp(2)) / 2), Is.LessThanOrEqualTo(Tight));
            Assert.That(ScalarReference.Softplus(800, 1, 1000), Is.EqualTo(800.0)); // no overflow of e^800

            Assert.That(ScalarReference.Selu(1), Is.EqualTo(ScalarReference.SeluScale));
            Assert.That(RelErr(ScalarReference.Selu(-1), ScalarReference.SeluScale * ScalarReference.SeluAlpha * (Math.Exp(-1) - 1)), Is.LessThanOrEqualTo(Tight));
            Assert.That(RelErr(ScalarReference.Elu(-1e-12, 1.0), -9.999999999994999798866478e-13), Is.LessThanOrEqualTo(Tight));
            Assert.That(ScalarReference.LeakyRelu(-2, 0.01), Is.EqualTo(-0.02));
            Assert.That(ScalarReference.HardSigmoid(0), Is.EqualTo(0.5));
            Assert.That(ScalarReference.HardSigmoid(-3), Is.EqualTo(0.0));
            Assert.That(ScalarReference.HardSigmoid(3), Is.EqualTo(1.0));
            Assert.That(ScalarReference.HardSwish(1.5), Is.EqualTo(1.5 * 0.75));
            Assert.That(ScalarReference.Relu6(7), Is.EqualTo(6.0));
            Assert.That(ScalarReference.Relu6(3.25), Is.EqualTo(3.25));
            Assert.That(ScalarReference.Swish(2, 0), Is.EqualTo(1.0));
            Assert.That(ScalarReference.QuickGelu(1), Is.EqualTo(ScalarReference.Swish(1, 1.702)));
        }
    }

    [Test]
    public void RewrittenFormsAgreeWithTextbookForms()
    {
        // The reference evaluates some ops through identities chosen for accuracy; on a moderate range,
        // where the textbook formula has no cancellation problem, both must agree.
        double k = Math.Sqrt(2 / Math.PI);
        for (int i = -600; i <= 600; i++)
        {
            double x = i / 100.0;
            double geluTanh = 0.5 * x * (1 + Math.Tanh(k * (x + 0.044715 * x * x * x)));
            double mish = x * Math.Tanh(Math.Log(1 + Math.Exp(x)));
            double gelu = x * 0.5 * SpecialFunctions.Erfc(-x / Math.Sqrt(2));
            Assert.That(ScalarReference.GeluTanh(x), Is.EqualTo(geluTanh).Within(1e-12 * Math.Max(1e-3, Math.Abs(geluTanh))), $"gelu_tanh({x})");
            Assert.That(ScalarReference.Mish(x), Is.EqualTo(mish).Within(1e-13 * Math.Max(1e-3, Math.Abs(mish))), $"mish({x})");
            Assert.That(ScalarReference.Gelu(x), Is.EqualTo(gelu).Within(1e-14 * Math.Max(1e-3, Math.Abs(gelu))), $"gelu({x})");
            Assert.That(ScalarReference.Silu(x), Is.EqualTo(x / (1 + Math.Exp(-x))).Within(1e-15 * Math.Abs(x) + 1e-300), $"silu({x})");
        }
    }

    [Test]
    public void SpecialValuesFollowLimits()
    {
        double inf = double.PositiveInfinity, ninf = double.NegativeInfinity;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ScalarReference.Sigmoid(ninf), Is.EqualTo(0.0));
            Assert.That(ScalarReference.Sigmoid(inf), Is.EqualTo(1.0));
            Assert.That(ScalarReference.Tanh(inf), Is.EqualTo(1.0));
            Assert.That(ScalarReference.Tanh(ninf), Is.EqualTo(-1.0));
            Assert.That(IsNegativeZero(ScalarReference.Silu(ninf)), Is.True, "silu(-inf) is -0");
            Assert.That(ScalarReference.Silu(inf), Is.EqualTo(inf));
            Assert.That(IsNegativeZero(ScalarReference.Gelu(ninf)), Is.True, "gelu(-inf) is -0");
            Assert.That(ScalarReference.Gelu(inf), Is.EqualTo(inf));
            Assert.That(IsNegativeZero(ScalarReference.GeluTanh(ninf)), Is.True, "gelu_tanh(-inf) is -0");
            Assert.That(ScalarReference.GeluTanh(inf), Is.EqualTo(inf));
            Assert.That(IsNegativeZero(ScalarReference.QuickGelu(ninf)), Is.True);
            Assert.That(IsNegativeZero(ScalarReference.Swish(ninf, 1.0)), Is.True);
            Assert.That(ScalarReference.Swish(ninf, 0.0), Is.EqualTo(ninf));
            Assert.That(IsPositiveZero(ScalarReference.Swish(inf, -1.0)), Is.True);
            Assert.That(IsNegativeZero(ScalarReference.Mish(ninf)), Is.True, "mish(-inf) is -0");
            Assert.That(ScalarReference.Mish(inf), Is.EqualTo(inf));
            Assert.That(IsNegativeZero(ScalarReference.Mish(-800)), Is.True);
            Assert.That(ScalarReference.Elu(ninf, 0.5), Is.EqualTo(-0.5));
            Assert.That(ScalarReference.Selu(ninf), Is.EqualTo(-ScalarReference.SeluScale * ScalarReference.SeluAlpha));
            Assert.That(ScalarReference.Softplus(ninf, 1, 20), Is.EqualTo(0.0));
            Assert.That(ScalarReference.Softplus(inf, 1, 20), Is.EqualTo(inf));
            Assert.That(IsNegativeZero(ScalarReference.HardSwish(ninf)), Is.True);
            Assert.That(ScalarReference.HardSwish(inf), Is.EqualTo(inf));
            Assert.That(ScalarReference.LeakyRelu(ninf, 0.01), Is.EqualTo(ninf));
            Assert.That(IsNegativeZero(ScalarReference.LeakyRelu(ninf, 0.0)), Is.True);
            Assert.That(IsNegativeZero(ScalarReference.Relu(-0.0)), Is.True, "relu keeps -0");
            Assert.That(ScalarReference.Relu(ninf), Is.EqualTo(0.0));
            Assert.That(ScalarReference.Relu6(inf), Is.EqualTo(6.0));
            Assert.That(ScalarReference.HardSigmoid(ninf), Is.EqualTo(0.0));
        }

        foreach (ActivationId op in Enum.GetValues<ActivationId>())
        {
            Assert.That(ScalarReference.Evaluate(op, double.NaN, 0.01, 1.0, 20.0), Is.NaN, $"{op}(NaN)");
        }
    }

    // ------------------------------------------------------------------ array forms

    [Test]
    public void ApplyRoundsTheDoubleResultOnce()
    {
        float[] x = [-5f, -1.25f, -0.1f, 0f, 0.3f, 1f, 2.5f, 9f, float.NegativeInfinity, float.NaN];
        float[] y = new float[x.Length + 2]; // a longer destination is allowed
        foreach (ActivationId op in Enum.GetValues<ActivationId>())
        {
            ScalarReference.Apply(op, x, y, alpha: 0.2, beta: 1.5, threshold: 20);
            for (int i = 0; i < x.Length; i++)
            {
                float expected = (float)ScalarReference.Evaluate(op, x[i], 0.2, 1.5, 20);
                Assert.That(BitConverter.SingleToInt32Bits(y[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected)), $"{op}({x[i]})");
            }
        }

        Assert.Throws<ArgumentException>(() => ScalarReference.Apply(ActivationId.Relu, new float[3], new float[2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ScalarReference.Apply((ActivationId)99, new float[1], new float[1]));
    }

    [Test]
    public void PReluUsesLastDimensionAsChannel()
    {
        float[] x = [-1f, -1f, -1f, 2f, -4f, -8f]; // [2, 3]
        float[] alpha = [0.1f, 0.2f, 0.3f];
        float[] y = new float[6];
        ScalarReference.PRelu(x, alpha, y);
        Assert.That(y, Is.EqualTo(new[] { (float)(-1.0 * 0.1f), (float)(-1.0 * 0.2f), (float)(-1.0 * 0.3f), 2f, (float)(-4.0 * 0.2f), (float)(-8.0 * 0.3f) }));
        Assert.Throws<ArgumentException>(() => ScalarReference.PRelu(new float[5], new float[3], new float[5]));
    }

    [Test]
    public void GluPackedMatchesGlu()
    {
        const int Rows = 3, D = 4;
        var rng = new Random(7);
        float[] gate = new float[Rows * D], up = new float[Rows * D], packed = new float[Rows * 2 * D];
        for (int r = 0; r < Rows; r++)
        {
            for (int j = 0; j < D; j++)
            {
                gate[r * D + j] = (float)(rng.NextDouble() * 8 - 4);
                up[r * D + j] = (float)(rng.NextDouble() * 8 - 4);
                packed[r * 2 * D + j] = gate[r * D + j];
                packed[r * 2 * D + D + j] = up[r * D + j];
            }
        }

        foreach (GluId op in Enum.GetValues<GluId>())
        {
            float[] a = new float[Rows * D], b = new float[Rows * D];
            ScalarReference.Glu(op, gate, up, a);
            ScalarReference.GluPacked(op, packed, b, Rows, D);
            Assert.That(b, Is.EqualTo(a), op.ToString());
        }

        float[] one = new float[1];
        ScalarReference.Glu(GluId.SwiGlu, [1f], [3f], one);
        Assert.That(one[0], Is.EqualTo((float)(3 * ScalarReference.Silu(1))));
        ScalarReference.Glu(GluId.ReGlu, [-1f], [3f], one);
        Assert.That(one[0], Is.EqualTo(0f));
        ScalarReference.Glu(GluId.GeGlu, [1f], [2f], one);
        Assert.That(one[0], Is.EqualTo((float)(2 * ScalarReference.Gelu(1))));
        ScalarReference.Glu(GluId.GeGluTanh, [1f], [2f], one);
        Assert.That(one[0], Is.EqualTo((float)(2 * ScalarReference.GeluTanh(1))));

        Assert.Throws<ArgumentException>(() => ScalarReference.GluPacked(GluId.SwiGlu, new float[10], new float[8], 2, 4));
        Assert.Throws<ArgumentException>(() => ScalarReference.Glu(GluId.SwiGlu, new float[3], new float[4], new float[4]));
    }

    [Test]
    public void SoftmaxRowsSumToOne()
    {
        const int Rows = 5, Cols = 37;
        var rng = new Random(11);
        float[] x = new float[Rows * Cols];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)(rng.NextDouble() * 60 - 30);
        }

        float[] y = new float[x.Length], ly = new float[x.Length];
        ScalarReference.Softmax(x, y, Rows, Cols);
        ScalarReference.LogSoftmax(x, ly, Rows, Cols);
        for (int r = 0; r < Rows; r++)
        {
            double sum = 0, sumExp = 0;
            for (int j = 0; j < Cols; j++)
            {
                sum += y[r * Cols + j];
                sumExp += Math.Exp(ly[r * Cols + j]);
                Assert.That(y[r * Cols + j], Is.InRange(0f, 1f));
            }

            Assert.That(sum, Is.EqualTo(1.0).Within(1e-6), $"row {r}");
            Assert.That(sumExp, Is.EqualTo(1.0).Within(1e-5), $"row {r}");
        }

        // Invariance to a large common shift (max subtraction keeps e^x from overflowing).
        float[] big = [1000f, 1001f, 1002f], small = [0f, 1f, 2f];
        float[] yb = new float[3], ys = new float[3];
        ScalarReference.Softmax(big, yb, 1, 3);
        ScalarReference.Softmax(small, ys, 1, 3);
        Assert.That(yb, Is.EqualTo(ys));
        Assert.That(ys[2], Is.EqualTo((float)(1 / (1 + Math.Exp(-1) + Math.Exp(-2)))));
    }

    [Test]
    public void SoftmaxSpecialRows()
    {
        float nan = float.NaN, inf = float.PositiveInfinity, ninf = float.NegativeInfinity;
        float[] x =
        [
            nan, 1f, 2f,      // NaN anywhere: all NaN
            inf, 1f, 2f,      // +inf anywhere: all NaN
            ninf, ninf, ninf, // only -inf: all NaN
            ninf, 0f, 0f,     // some -inf: exactly 0 there
            3f, 3f, 3f,       // uniform
        ];
        float[] y = new float[x.Length], ly = new float[x.Length];
        ScalarReference.Softmax(x, y, 5, 3);
        ScalarReference.LogSoftmax(x, ly, 5, 3);
        using (Assert.EnterMultipleScope())
        {
            for (int j = 0; j < 9; j++)
            {
                Assert.That(y[j], Is.NaN, $"softmax element {j}");
                Assert.That(ly[j], Is.NaN, $"log_softmax element {j}");
            }

            Assert.That(y[9..12], Is.EqualTo(new[] { 0f, 0.5f, 0.5f }));
            Assert.That(ly[9], Is.EqualTo(ninf));
            Assert.That(ly[10], Is.EqualTo((float)-Math.Log(2)));
            Assert.That(ly[11], Is.EqualTo((float)-Math.Log(2)));
            Assert.That(y[12..15], Is.EqualTo(new[] { 1f / 3, 1f / 3, 1f / 3 }).Within(1e-7));
        }

        Assert.Throws<ArgumentException>(() => ScalarReference.Softmax(new float[5], new float[6], 2, 3));
        Assert.Throws<ArgumentException>(() => ScalarReference.LogSoftmax(new float[6], new float[5], 2, 3));
    }
}
