using System.Runtime.CompilerServices;
using GpuActivations.Cpu;
using GpuActivations.Device;

namespace GpuActivations.Activations;

/// <summary>
/// The exact GELU, x Phi(x) = x (1 + erf(x/sqrt2)) / 2 (Hendrycks and Gimpel, 2016). Three regimes, the same on
/// every accelerator (the device form is generated from the same coefficients):
/// <list type="bullet">
/// <item>x in [-0.707, 1.19]: 1 + erf(z), z = x/sqrt2, with erf's Maclaurin series to z^19 (truncation &lt; 1e-8).</item>
/// <item>otherwise, with a = |x|: Phi(-a) = G(a) e^(-a^2/2) / 2, where G(a) = erfc(a/sqrt2) e^(a^2/2) is smooth and
/// between 0.05 and 0.62 for a in [0.7, 14.5] (beyond, the result is 0 or x). G was fitted for this library by
/// Chebyshev interpolation against the reference erfc: a polynomial in a itself on [0.7, 2.5] (no rounded argument),
/// and u S(u) with u = 1/(1 + a) on [2.5, 14.5] (the change of variable of Numerical Recipes' erfcc); fit error
/// about 1e-9. e^(-a^2/2) takes its argument exactly (hi + lo): its relative error is a^2/2 times the argument's.</item>
/// <item>below zero the result is x Phi(-a) directly (1 + erf would cancel); above, x - x Phi(-a).</item>
/// </list>
/// </summary>
internal readonly struct GeluOp : IActivationOp
{
    /// <summary>2/sqrt(pi) times the Maclaurin coefficients of erf in z^2: (-1)^n / (n! (2n+1)), n = 0..9.</summary>
    static readonly float[] ErfSeries =
    [
        1.12837916709551257f, 1.12837916709551257f * (-1f / 3f), 1.12837916709551257f / 10f, 1.12837916709551257f * (-1f / 42f),
        1.12837916709551257f / 216f, 1.12837916709551257f * (-1f / 1320f), 1.12837916709551257f / 9360f,
        1.12837916709551257f * (-1f / 75600f), 1.12837916709551257f / 685440f, 1.12837916709551257f * (-1f / 6894720f),
    ];

    /// <summary>G(a) on [0.7, 2.5] in v = a * 1.1111112 - 1.7777778.</summary>
    static readonly float[] NearTail =
    [
        0.39418662f, -0.15046738f, 0.05130907f, -0.015997836f, 0.004630866f, -0.0012579542f, 0.00032325534f,
        -7.9085825E-05f, 1.8501803E-05f, -4.1226876E-06f, 8.9344996E-07f, -2.1447157E-07f, 4.3146223E-08f,
    ];

    /// <summary>S(u) = G(a) / u on [2.5, 14.5], u = 1/(1 + a), in v = u * 9.041667 - 1.5833334.</summary>
    static readonly float[] FarTail =
    [
        0.92854464f, 0.071428f, -0.009808447f, -0.0012280366f, 0.0003967433f, 1.3016002E-06f, -1.82186E-05f,
        3.16991E-06f, 4.0180373E-07f, -2.6305082E-07f, 3.168302E-08f,
    ];

    // A call of its own, fully optimised: inlined into the loop it would exhaust the JIT's inlining budget.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV z = x * TV.Create(0.70710678118654752f);
        TV z2 = z * z;
        TV half = x * TV.Create(0.5f);
        TV middle = TV.Fma(half, z * VectorMath.Polynomial(z2, ErfSeries), half);

        TV a = Simd.Abs(x);
        TV near = VectorMath.Polynomial(TV.Fma(a, TV.Create(1.1111112f), TV.Create(-1.7777778f)), NearTail);
        TV u = TV.Create(1f) / (TV.Create(1f) + a);
        TV far = u * VectorMath.Polynomial(TV.Fma(u, TV.Create(9.041667f), TV.Create(-1.5833334f)), FarTail);
        TV g = TV.Select(TV.LessThan(a, TV.Create(2.5f)), near, far);

        // -x^2/2 exactly as hi + lo; x is clamped where the square would overflow (the result is 0 or x there).
        TV xc = TV.Max(TV.Min(x, TV.Create(20f)), TV.Create(-20f));
        TV sqHi = VectorMath.TwoProduct(xc * TV.Create(0.5f), xc, out TV sqLo);
        // One exponential serves both tails: below zero it is x Phi(x) itself (x goes in before the last scaling,
        // as x Phi(x) can be normal while Phi(x) is not, near x = -13); above, Phi(-x) and gelu = x - x Phi(-x).
        TV tail = VectorMath.ScaledExp(-sqHi, -sqLo, g * TV.Select(TV.LessThan(x, TV.Create(0f)), half, TV.Create(0.5f)));
        TV result = TV.Select(TV.GreaterThan(z, TV.Create(0.84f)), TV.Fma(-x, tail, x), middle);
        result = TV.Select(TV.LessThan(z, TV.Create(-0.5f)), tail, result);
        // gelu(+-inf) are the limits +inf and -0, not inf * 0.
        result = TV.Select(TV.Equal(x, TV.Create(float.PositiveInfinity)), x, result);
        return TV.Select(TV.Equal(x, TV.Create(float.NegativeInfinity)), TV.Create(-0f), result);
    }

    public static string Name => "gelu";

    public static string DeviceBody { get; } = $$"""
        if (x != x) return x;
        if (x == GA_INFINITY) return x;
        if (x < -20.0f) return -0.0f;
        float z = x * 0.70710678118654752f;
        if (z >= -0.5f && z <= 0.84f)
        {
            float hx = 0.5f * x;
            float z2 = z * z;
            return fma(hx, z * {{DeviceMath.Horner("z2", ErfSeries)}}, hx);
        }
        float a = fabs(x);
        float g;
        if (a < 2.5f) { float v = fma(a, 1.1111112f, -1.7777778f); g = {{DeviceMath.Horner("v", NearTail)}}; }
        else { float u = 1.0f / (1.0f + a); float v = fma(u, 9.041667f, -1.5833334f); g = u * {{DeviceMath.Horner("v", FarTail)}}; }
        float xc = fmin(x, 20.0f);
        float sqLo;
        float sqHi = ga_two_product(0.5f * xc, xc, &sqLo);
        if (x < 0.0f) return ga_scaled_exp(0.5f * x * g, -sqHi, -sqLo);
        return fma(-x, 0.5f * g * ga_exp_hilo(-sqHi, -sqLo), x);
        """;
}
