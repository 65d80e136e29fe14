using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// The exact GELU, x Phi(x) = x (1 + erf(x/sqrt2)) / 2 (Hendrycks and Gimpel, 2016), the same way on every
/// accelerator (the device form is generated from the same coefficients). With a = |x|:
/// Phi(-a) = G(a) e^(-a^2/2) / 2, where G(a) = erfc(a/sqrt2) e^(a^2/2) is smooth, 1 at a = 0 and above 0.05 up to
/// a = 14.5 (beyond, the result is 0 or x). G was fitted for this library by Chebyshev interpolation against the
/// reference erfc: a degree-13 polynomial in a itself on [0, 2.5] (no rounded argument), and u S(u) with
/// u = 1/(1 + a), degree 10, on [2.5, 14.5] (the change of variable of Numerical Recipes' erfcc); fit error about
/// 1e-9. e^(-a^2/2) takes its argument exactly (hi + lo): its relative error is a^2/2 times the argument's.
/// Below zero the result is x Phi(-a) directly (1 + erf would cancel); above, x - x Phi(-a) (Phi(-a) &lt;= 1/2).
/// </summary>
internal readonly struct GeluOp : IActivationOp
{
    /// <summary>G(a) on [0, 2.5] in v = 0.8 a - 1, degree 13. Written out as a Horner chain on literals: ILGPU kernels cannot read span or array tables.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV NearTail<TV>(TV v) where TV : unmanaged, ISimd<TV>
    {
        TV p = TV.Create(-2.0343234E-06f);
        p = TV.Fma(p, v, TV.Create(7.2149355E-06f));
        p = TV.Fma(p, v, TV.Create(-1.7722721E-05f));
        p = TV.Fma(p, v, TV.Create(5.7637957E-05f));
        p = TV.Fma(p, v, TV.Create(-0.00019026762f));
        p = TV.Fma(p, v, TV.Create(0.00057684316f));
        p = TV.Fma(p, v, TV.Create(-0.0016680782f));
        p = TV.Fma(p, v, TV.Create(0.0046119057f));
        p = TV.Fma(p, v, TV.Create(-0.012086316f));
        p = TV.Fma(p, v, TV.Create(0.029798543f));
        p = TV.Fma(p, v, TV.Create(-0.06847455f));
        p = TV.Fma(p, v, TV.Create(0.14475854f));
        p = TV.Fma(p, v, TV.Create(-0.2762297f));
        p = TV.Fma(p, v, TV.Create(0.46152064f));
        return p;
    }

    /// <summary>S(u) = G(a) / u on [2.5, 14.5], u = 1/(1 + a), in v = u * 9.041667 - 1.5833334, degree 10. Written out as a Horner chain on literals: ILGPU kernels cannot read span or array tables.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV FarTail<TV>(TV v) where TV : unmanaged, ISimd<TV>
    {
        TV p = TV.Create(3.168302E-08f);
        p = TV.Fma(p, v, TV.Create(-2.6305082E-07f));
        p = TV.Fma(p, v, TV.Create(4.0180373E-07f));
        p = TV.Fma(p, v, TV.Create(3.16991E-06f));
        p = TV.Fma(p, v, TV.Create(-1.82186E-05f));
        p = TV.Fma(p, v, TV.Create(1.3016002E-06f));
        p = TV.Fma(p, v, TV.Create(0.0003967433f));
        p = TV.Fma(p, v, TV.Create(-0.0012280366f));
        p = TV.Fma(p, v, TV.Create(-0.009808447f));
        p = TV.Fma(p, v, TV.Create(0.071428f));
        p = TV.Fma(p, v, TV.Create(0.92854464f));
        return p;
    }

    /// <summary>1 / sqrt(2 pi), the standard normal density at 0.</summary>
    const float InvSqrt2Pi = 0.398942280401432678f;

    /// <summary>
    /// G(a) = erfc(a/sqrt2) e^(a^2/2) for a &gt;= 0 (0 at a = +inf). The near fit is used below 2.45, not 2.5 where its
    /// interval ends: at the interval's end its error reached 5 ulp in GELU (x = -2.497621, found by the exhaustive sweep),
    /// while the far fit, a little outside its own interval there, keeps [-2.8, -2.2] within 4 ulp (the near fit's own at
    /// -2.2005).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV Tail<TV>(TV a) where TV : unmanaged, ISimd<TV>
    {
        // Each fit only where some lane needs it (the same per-lane results: the select below picks per lane). Inputs
        // near a standard normal's scale put every lane of most vectors below 2.45, where the far fit's division and
        // eleven multiply-adds are skipped; the kernels' one-float lane computes both and selects.
        TV isNear = TV.LessThan(a, TV.Create(2.45f));
        if (TV.BranchesPerVector && TV.All(isNear)) return NearTail(TV.Fma(a, TV.Create(0.8f), TV.Create(-1f)));
        TV u = TV.Create(1f) / (TV.Create(1f) + a);
        TV far = u * FarTail(TV.Fma(u, TV.Create(9.041667f), TV.Create(-1.5833334f)));
        if (TV.BranchesPerVector && !TV.Any(isNear)) return far;
        return TV.Select(isNear, NearTail(TV.Fma(a, TV.Create(0.8f), TV.Create(-1f))), far);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV g = Tail(Simd.Abs(x));

        // -x^2/2 exactly as hi + lo; x is clamped where the square would overflow (the result is 0 or x there). The
        // clamped square is at most 200, so the product's remainder needs no overflow mask.
        TV xc = TV.Max(TV.Min(x, TV.Create(20f)), TV.Create(-20f));
        TV sqHi = VectorMath.TwoProductUnmasked(xc * TV.Create(0.5f), xc, out TV sqLo);
        // One exponential serves both signs: below zero it is x Phi(x) itself (x goes in before the last scaling,
        // as x Phi(x) can be normal while Phi(x) is not, near x = -13); above, Phi(-x) and gelu = x - x Phi(-x).
        TV negative = TV.LessThan(x, TV.Create(0f));
        TV factor = g * TV.Select(negative, x * TV.Create(0.5f), TV.Create(0.5f));
        // The common vector, |x| <= 13.2 in every lane (no infinity, no NaN: their clamped squares leave the range):
        // the exponential without its edge path, so the loop has no call (see VectorMath.ExpInRange).
        if (!VectorMath.AllInRange(-sqHi - sqLo)) return Careful(x, negative, factor, sqHi, sqLo);
        TV tail = VectorMath.ScaledExpInRange(-sqHi, -sqLo, factor);
        // gelu has x's sign (Phi > 0), so the sign bit goes back on: x = -0 gives -0 (x - x Phi(-a) is (+0) + (-0) = +0 there).
        return TV.Select(negative, tail, TV.Fma(-x, tail, x)) | Simd.SignBit(x);
    }

    /// <summary>
    /// The vectors with a lane past |x| = 13.2, infinite or NaN, out of line: the exponential with its edges (subnormal
    /// results rounded once), and gelu(+-inf) the limits +inf and -0, not inf * 0; NaN stays NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV Careful<TV>(TV x, TV negative, TV factor, TV sqHi, TV sqLo) where TV : unmanaged, ISimd<TV>
    {
        TV tail = VectorMath.ScaledExp(-sqHi, -sqLo, factor);
        TV result = TV.Select(negative, tail, TV.Fma(-x, tail, x)) | Simd.SignBit(x);
        result = TV.Select(TV.Equal(x, TV.Create(float.PositiveInfinity)), x, result);
        result = TV.Select(TV.Equal(x, TV.Create(float.NegativeInfinity)), TV.Create(-0f), result);
        return TV.Select(Simd.IsNaN(x), x, result);
    }

    /// <summary>
    /// GELU'(x) = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi). With t = e^(-x^2/2) (exact argument, as above)
    /// and Phi(-a) = G(a) t / 2: below zero t (x / sqrt(2 pi) + G/2), above 1 + t (x / sqrt(2 pi) - G/2) (no 1 - Phi
    /// cancellation). The only cancellation left is at the derivative's zero near x = -0.7518, inherent to the value.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        // Beyond |x| = 20, t = 0: the derivative is 0 or 1 (the infinities included).
        TV xc = TV.Max(TV.Min(x, TV.Create(20f)), TV.Create(-20f));
        TV halfG = Tail(Simd.Abs(xc)) * TV.Create(0.5f);
        TV negative = TV.LessThan(x, TV.Create(0f));
        TV c = TV.Fma(xc, TV.Create(InvSqrt2Pi), TV.Select(negative, halfG, -halfG));
        // The clamped square is at most 200: its remainder needs no overflow mask.
        TV sqHi = VectorMath.TwoProductUnmasked(xc * TV.Create(0.5f), xc, out TV sqLo);
        // The common vector (|x| <= 13.2, no NaN) without the exponential's edge path: no call in the loop, and so no
        // vectors spilled around one (see VectorMath.ExpInRange); NaN lanes fail the range test.
        if (!VectorMath.AllInRange(-sqHi - sqLo)) return DerivativeCareful(x, negative, c, sqHi, sqLo);
        TV t = VectorMath.ScaledExpInRange(-sqHi, -sqLo, c);
        return TV.Select(negative, t, t + TV.Create(1f));
    }

    /// <summary>The derivative for a vector with a lane past |x| = 13.2, infinite or NaN, out of line.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV DerivativeCareful<TV>(TV x, TV negative, TV c, TV sqHi, TV sqLo) where TV : unmanaged, ISimd<TV>
    {
        TV t = VectorMath.ScaledExp(-sqHi, -sqLo, c);
        return VectorMath.KeepNaN(x, TV.Select(negative, t, t + TV.Create(1f)));
    }
}
