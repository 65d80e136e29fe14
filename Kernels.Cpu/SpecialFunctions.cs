namespace GpuActivations.Reference;

/// <summary>
/// Double-precision special functions used by the scalar reference: the error function, its complement,
/// the standard normal CDF, and accurate <c>exp(x)-1</c> / <c>log(1+x)</c>.
/// </summary>
/// <remarks>
/// <para>
/// These exist because .NET has no <c>Math.Erf</c>, and because <c>double.ExpM1</c> / <c>double.LogP1</c>
/// are specified only loosely (they may be evaluated as <c>Exp(x)-1</c> and <c>Log(1+x)</c>, which lose all
/// relative accuracy near zero). The reference is an oracle for float kernels, so every function here is
/// written from textbook formulas for clarity and accuracy, not speed. Measured accuracy of <see cref="Erf"/>
/// and <see cref="Erfc"/> against 40-digit arithmetic is a few times 1e-16 relative over the whole range
/// where the result is a normal double.
/// </para>
/// <para>
/// Formulas (Abramowitz &amp; Stegun, "Handbook of Mathematical Functions", 1964, ch. 7; NIST DLMF ch. 7):
/// <list type="bullet">
/// <item><description>Maclaurin series, A&amp;S 7.1.5 / DLMF 7.6.1:
/// erf x = (2/√π) Σ_{n≥0} (-1)^n x^(2n+1) / (n! (2n+1)).</description></item>
/// <item><description>Laplace continued fraction, A&amp;S 7.1.14 / DLMF 7.9.2:
/// erfc x = (e^(-x²)/√π) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), x &gt; 0.</description></item>
/// <item><description>Reflection, A&amp;S 7.1.9 / 7.1.2: erf(-x) = -erf x, erfc(-x) = 2 - erfc x, erf = 1 - erfc.</description></item>
/// <item><description>Normal CDF, A&amp;S 26.2.29 / DLMF 7.18: Φ(x) = ½ erfc(-x/√2).</description></item>
/// </list>
/// </para>
/// </remarks>
public static class SpecialFunctions
{
    // 2/sqrt(pi) = 1.12837916709551257389615890312154517... split as hi + lo with hi the nearest double
    // and lo the nearest double to the remainder, so that (hi + lo) * s carries ~2^-106 relative error.
    private const double TwoOverSqrtPiHi = 1.1283791670955126;
    private const double TwoOverSqrtPiLo = 1.533545961316588e-17;

    // 1/sqrt(pi) = 0.56418958354775628694807945156077259..., same split.
    private const double InvSqrtPiHi = 0.5641895835477563;
    private const double InvSqrtPiLo = 7.66772980658294e-18;

    // 1/sqrt(2) = 0.70710678118654752440084436210484904..., nearest double.
    private const double InvSqrt2 = 0.7071067811865476;

    // Below this |x| erf uses the Maclaurin series; at and above it, erf = 1 - erfc with erfc from the
    // continued fraction. At 0.5 the series needs ~12 terms and has almost no cancellation (the largest
    // term is x itself), while erfc(0.5) = 0.48 means 1 - erf loses at most one bit for erfc below it.
    private const double SeriesLimit = 0.5;

    // erfc(x) < 2^-1075 (half the smallest subnormal) for x >= 27.3, so the result rounds to 0 beyond 28;
    // stopping here also keeps x*x finite.
    private const double ErfcUnderflow = 28.0;

    // erfc(6) = 2.2e-17 < 2^-54, so for |x| >= 6, erf(x) = ±(1 - erfc|x|) rounds to ±1 exactly.
    private const double ErfSaturation = 6.0;

    /// <summary>The error function erf(x) = (2/√π) ∫₀ˣ e^(-t²) dt, in double precision.</summary>
    /// <param name="x">Argument; any double.</param>
    /// <returns>
    /// erf(x), relative error a few times 1e-16. erf(±∞) = ±1, erf(NaN) = NaN, erf(±0) = ±0
    /// (the sign of zero is kept because erf is odd).
    /// </returns>
    public static double Erf(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        double ax = Math.Abs(x);
        if (ax < SeriesLimit)
        {
            return ErfMaclaurin(x);
        }

        if (ax >= ErfSaturation)
        {
            return x > 0 ? 1.0 : -1.0;
        }

        // erf|x| = 1 - erfc|x|: erfc|x| <= 0.48 here, so the subtraction costs at most one bit, and it is
        // far more accurate than summing the alternating series, whose terms grow like e^(x²).
        (double sqHi, double sqLo) = ExactSquare(ax);
        double r = 1.0 - ErfcContinuedFraction(ax, sqHi, sqLo);
        return x > 0 ? r : -r;
    }

    /// <summary>The complementary error function erfc(x) = 1 - erf(x), computed without cancellation for x &gt; 0.</summary>
    /// <param name="x">Argument; any double.</param>
    /// <returns>
    /// erfc(x) with relative error a few times 1e-16 wherever the result is a normal double
    /// (i.e. for x up to about 26.5; e.g. erfc(26) ≈ 5.66e-296 is still accurate to ~1e-16).
    /// erfc(+∞) = 0, erfc(-∞) = 2, erfc(NaN) = NaN. Results below the subnormal range round to 0.
    /// </returns>
    public static double Erfc(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        if (x >= SeriesLimit)
        {
            if (x >= ErfcUnderflow)
            {
                return 0.0;
            }

            (double sqHi, double sqLo) = ExactSquare(x);
            return ErfcContinuedFraction(x, sqHi, sqLo);
        }

        if (x > -SeriesLimit)
        {
            // |erf x| < 0.53 here, so 1 - erf x in [0.47, 1.53] has no damaging cancellation.
            return 1.0 - ErfMaclaurin(x);
        }

        // erfc(x) = 2 - erfc(-x) (A&S 7.1.9 with erfc = 1 - erf); for -x >= 6, erfc(-x) < ulp(2)/2.
        double ax = -x;
        if (ax >= ErfSaturation)
        {
            return 2.0;
        }

        (double hi, double lo) = ExactSquare(ax);
        return 2.0 - ErfcContinuedFraction(ax, hi, lo);
    }

    /// <summary>
    /// The standard normal cumulative distribution function Φ(x) = ½ erfc(-x/√2) (A&amp;S 26.2.29),
    /// accurate in relative terms deep into the lower tail.
    /// </summary>
    /// <param name="x">Argument; any double.</param>
    /// <returns>
    /// Φ(x). Φ(-∞) = 0, Φ(+∞) = 1, Φ(NaN) = NaN. Relative error is a few times 1e-16 for all x where
    /// Φ(x) is a normal double (x ≥ -37.5); below that the result is subnormal and carries the precision
    /// a subnormal has, reaching 0 near x = -38.5.
    /// </returns>
    /// <remarks>
    /// Naively forming z = -x/√2 and calling erfc(z) rounds z by up to half an ulp; erfc(z) ∝ e^(-z²)
    /// amplifies a relative error δ in z into a relative error 2z²δ in the result, about 1.6e-13 at x = -38.
    /// Here the dominant factor e^(-z²) is instead evaluated from z² = x²/2 formed exactly (x² as an
    /// unevaluated sum hi + lo via a fused multiply-add, then halved exactly), so only the slowly varying
    /// continued-fraction factor sees the rounded z, where a relative error δ stays δ.
    /// </remarks>
    public static double NormalCdf(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        double z = -x * InvSqrt2;
        if (z >= SeriesLimit)
        {
            if (z >= ErfcUnderflow)
            {
                return 0.0;
            }

            (double hi, double lo) = ExactSquare(x);
            return 0.5 * ErfcContinuedFraction(z, 0.5 * hi, 0.5 * lo);
        }

        if (z > -SeriesLimit)
        {
            return 0.5 - 0.5 * ErfMaclaurin(z);
        }

        // Upper tail: Φ(x) = 1 - ½ erfc(x/√2); erfc(x/√2) < 2^-53 once x/√2 >= 6.
        double az = -z;
        if (az >= ErfSaturation)
        {
            return 1.0;
        }

        (double sqHi, double sqLo) = ExactSquare(x);
        return 1.0 - 0.5 * ErfcContinuedFraction(az, 0.5 * sqHi, 0.5 * sqLo);
    }

    /// <summary>Computes e^x - 1 accurately, including for |x| near 0 where <c>Math.Exp(x) - 1</c> cancels.</summary>
    /// <param name="x">Argument; any double.</param>
    /// <returns>e^x - 1 with relative error of a few ulp; expm1(-∞) = -1, expm1(+∞) = +∞, expm1(±0) = ±0, NaN → NaN.</returns>
    public static double Expm1(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        if (Math.Abs(x) >= 0.5)
        {
            // |e^x - 1| >= 1 - e^-0.5 = 0.39 here, so the subtraction loses under two bits.
            return Math.Exp(x) - 1.0;
        }

        if (x == 0.0)
        {
            return x; // keeps the sign of zero
        }

        // Taylor series e^x - 1 = Σ_{n≥1} x^n / n!; for |x| < 0.5 the n-th term is below 0.5^n/n!, so about
        // 18 terms reach 1e-17 relative, and the first term x dominates (no harmful cancellation even for x < 0).
        double term = x;
        double tail = 0.0;
        for (int n = 2; n < 40; n++)
        {
            term *= x / n;
            tail += term;
            if (Math.Abs(term) <= 1e-17 * Math.Abs(x))
            {
                break;
            }
        }

        return x + tail;
    }

    /// <summary>Computes ln(1 + x) accurately, including for |x| near 0 where <c>Math.Log(1 + x)</c> loses the low bits of x.</summary>
    /// <param name="x">Argument; any double.</param>
    /// <returns>ln(1 + x) with relative error of a few ulp; log1p(-1) = -∞, log1p(x &lt; -1) = NaN, log1p(+∞) = +∞, log1p(±0) = ±0.</returns>
    public static double Log1p(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        if (Math.Abs(x) >= 0.5)
        {
            // For x >= 0.5, rounding 1 + x costs one relative ulp of an argument whose log is >= 0.4.
            // For -1 <= x <= -0.5, 1 + x is exact (Sterbenz lemma).
            return Math.Log(1.0 + x);
        }

        if (x == 0.0)
        {
            return x;
        }

        // ln(1+x) = 2 artanh(s) = 2 Σ_{k≥0} s^(2k+1)/(2k+1) with s = x/(2+x) (A&S 4.1.27 with z = 1+x).
        // |s| <= 1/3 for |x| < 0.5, so the series converges geometrically by s² <= 1/9; s itself is
        // formed with two roundings and the sum is dominated by its first term.
        double s = x / (2.0 + x);
        double s2 = s * s;
        double power = s;
        double tail = 0.0;
        for (int k = 1; k < 60; k++)
        {
            power *= s2;
            double t = power / (2 * k + 1);
            tail += t;
            if (Math.Abs(t) <= 1e-17 * Math.Abs(s))
            {
                break;
            }
        }

        return 2.0 * (s + tail);
    }

    /// <summary>erf(x) for |x| &lt; 0.5 by the Maclaurin series (A&amp;S 7.1.5).</summary>
    private static double ErfMaclaurin(double x)
    {
        if (x == 0.0)
        {
            return x; // keeps the sign of zero
        }

        // term_n = (-1)^n x^(2n+1) / n!, contribution term_n / (2n+1). The terms after the first are
        // summed separately and added to x last, so their rounding errors are scaled down by |x²/3| <= 1/12.
        double x2 = x * x;
        double term = x;
        double tail = 0.0;
        for (int n = 1; n < 40; n++)
        {
            term *= -x2 / n;
            double c = term / (2 * n + 1);
            tail += c;
            if (Math.Abs(c) <= 1e-17 * Math.Abs(x))
            {
                break;
            }
        }

        double s = x + tail;
        return TwoOverSqrtPiHi * s + TwoOverSqrtPiLo * s;
    }

    /// <summary>
    /// erfc(x) for x ≥ 0.5 by the Laplace continued fraction (A&amp;S 7.1.14), with x² supplied as an exact
    /// unevaluated sum <paramref name="sqHi"/> + <paramref name="sqLo"/>.
    /// </summary>
    private static double ErfcContinuedFraction(double x, double sqHi, double sqLo)
    {
        // K = x + (1/2)/(x + (2/2)/(x + (3/2)/(x + …))), erfc x = e^(-x²) / (√π K).
        // The fraction is evaluated backwards from a fixed depth N, which (unlike forward Lentz iteration)
        // damps rather than accumulates rounding errors. The truncation error behaves like exp(-c·x·√N);
        // experiments against 40-digit values show x·√N >= 14 already gives < 1e-16, so N = (20/x)² leaves
        // a wide margin: N ≈ 1600 at x = 0.5, 100 at x = 2, under 40 beyond x = 6.
        int depth = (int)(400.0 / (x * x)) + 30;
        double k = x;
        for (int n = depth; n >= 1; n--)
        {
            k = x + (0.5 * n) / k;
        }

        // 1/(√π K) with the constant carried in two parts.
        double f = InvSqrtPiHi / k + InvSqrtPiLo / k;

        // e^(-(hi + lo)) = e^(-hi) · e^(-lo) ≈ e^(-hi) · (1 - lo), |lo| <= ulp(hi)/2, so the first-order
        // correction is exact to ~1e-26. Without it, rounding x² would cost up to 0.5·ulp(x²) ≈ 6e-14
        // relative error at x = 26.
        if (sqHi <= 700.0)
        {
            double e = Math.Exp(-sqHi);
            return Math.FusedMultiplyAdd(-e, sqLo, e) * f;
        }

        // The result is at or below the normal/subnormal boundary (e^-700 ≈ 1e-304, times f <= 0.023):
        // build it at a scale where every intermediate is a normal number and apply the final scale last,
        // so the only precision lost is the single unavoidable rounding into the subnormal result.
        // sqHi <= 28² = 784, so sqHi - 128 <= 656 keeps e^-(sqHi - 128) normal; the subtraction is exact
        // because sqHi and sqHi - 128 both lie in [512, 1024) and so share one exponent.
        const double Shift = 128.0;
        double scaled = Math.Exp(-(sqHi - Shift));
        scaled = Math.FusedMultiplyAdd(-scaled, sqLo, scaled) * f;
        return scaled * Math.Exp(-Shift);
    }

    /// <summary>Returns x² as hi + lo with hi = fl(x²) and lo the exact rounding error (Dekker/FMA two-product).</summary>
    private static (double Hi, double Lo) ExactSquare(double x)
    {
        double hi = x * x;
        double lo = Math.FusedMultiplyAdd(x, x, -hi);
        return (hi, lo);
    }
}
