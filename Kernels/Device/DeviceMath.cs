namespace GpuActivations.Device;

/// <summary>
/// Device helpers the activation bodies share, in the OpenCL C 1.2 / CUDA C++ dialect. They carry a
/// rounded product's remainder (hi + lo) into exponentials, for the reason given in <c>SwishOp</c>.
/// </summary>
internal static class DeviceMath
{
    /// <summary>
    /// The polynomial c[0] + c[1] v + ... as nested <c>fma</c> calls in device code, so device and CPU forms of an
    /// op evaluate the same coefficients (written with round-trip precision) in the same order.
    /// </summary>
    public static string Horner(string variable, ReadOnlySpan<float> c)
    {
        string text = Literal(c[^1]);
        for (int i = c.Length - 2; i >= 0; i--) text = $"fma({text}, {variable}, {Literal(c[i])})";
        return text;
    }

    static string Literal(float value) => value.ToString("R", System.Globalization.CultureInfo.InvariantCulture).Replace("E", "e") switch
    {
        var s when s.Contains('.') || s.Contains('e') => s + "f",
        var s => s + ".0f",
    };

    /// <summary>The helpers' source; <c>DevicePrelude.Compose</c> places it after the prelude, before <c>ga_activation</c>.</summary>
    public static string Source { get; } = $$"""
        /* hi + *lo == a * b exactly (an overflowing product leaves lo = 0, not inf or NaN). */
        GA_DEVICE_FN float ga_two_product(float a, float b, float* lo)
        {
            float hi = a * b;
            float l = fma(a, b, -hi);
            *lo = isfinite(hi) ? l : 0.0f;
            return hi;
        }
        /* f * e^(hi + lo), the CPU's method (VectorMath.ScaledExp) so no vendor exp's error enters: Cody-Waite
           reduction r = (hi - n ln2) + lo with ln2 split for FMA, Taylor polynomial of e^r - 1 to r^8, then
           ldexp(f (1 + p), n), which rounds into the subnormal range once at most (f e^s can be normal where e^s
           is not). Below -115 (under half the smallest subnormal even for |f| up to 2^14) the result is a zero with f's
           sign, the limit of x e^s. */
        GA_DEVICE_FN float ga_scaled_exp(float f, float hi, float lo)
        {
            if (hi != hi) return hi;
            if (!isfinite(hi)) lo = 0.0f;
            float x = hi + lo;
            if (x > 88.72284f) return f * GA_INFINITY;
            if (x < -115.0f) return copysign(0.0f, f);
            float n = rint(x * 1.44269504088896341f);
            float r = fma(n, -0.693147182464599609375f, hi);
            r = fma(n, 1.904654299957768e-9f, r) + lo;
            float p = fma(fma(fma(fma(fma(fma(fma(r, 2.48015873e-05f, 1.98412698e-04f), r, 1.38888889e-03f), r,
                          8.33333333e-03f), r, 4.16666667e-02f), r, 1.66666667e-01f), r, 0.5f) * r, r, r);
            return ldexp(f * (1.0f + p), (int)n);
        }
        /* e^(hi + lo). */
        GA_DEVICE_FN float ga_exp_hilo(float hi, float lo) { return ga_scaled_exp(1.0f, hi, lo); }
        /* sigmoid(hi + lo) = 1 / (1 + e^-s); below s = -80, e^s itself (VectorMath.Sigmoid): e^s / (1 + e^s) is e^s to
           float precision there, and 1 / (1 + e^-s) would flush to 0 from s = -88.7 where the result is still subnormal. */
        GA_DEVICE_FN float ga_sigmoid(float hi, float lo)
        {
            if (hi < -80.0f) return ga_exp_hilo(hi, lo);
            return 1.0f / (1.0f + ga_exp_hilo(-hi, -lo));
        }
        /* tanh x, the CPU's method (VectorMath.Tanh): Maclaurin series to x^17 below 0.55, else 1 - 2/(e^(2|x|) + 1)
           with x's sign (the subtracted term is at most 1/2: no cancellation). tanh(+-inf) = +-1 exactly, tanh(-0) = -0. */
        GA_DEVICE_FN float ga_tanh(float x)
        {
            const float a = fabs(x);
            if (a < 0.55f)
            {
                const float x2 = x * x;
                float p = fma(x2, {{Literal(6404582f / 10854718875f)}}, {{Literal(-929569f / 638512875f)}});
                p = fma(p, x2, {{Literal(21844f / 6081075f)}});
                p = fma(p, x2, {{Literal(-1382f / 155925f)}});
                p = fma(p, x2, {{Literal(62f / 2835f)}});
                p = fma(p, x2, {{Literal(-17f / 315f)}});
                p = fma(p, x2, {{Literal(2f / 15f)}});
                p = fma(p, x2, {{Literal(-1f / 3f)}});
                return copysign(fma(p * x2, x, x), x);
            }
            return copysign(1.0f - 2.0f / (ga_exp_hilo(a + a, 0.0f) + 1.0f), x);
        }
        /* x * sigmoid(hi + lo). Far left sigmoid(s) = e^s (1 + O(e^s)) and x e^s may be normal while e^s is not;
           an infinite x there gives a zero of its sign (silu(-inf) = -0). Near s = 0, x/2 + x s/4 with one rounding
           (Taylor; VectorMath.TimesSigmoid). The result has x's sign (-0 for -0). */
        GA_DEVICE_FN float ga_times_sigmoid(float x, float hi, float lo)
        {
            if (hi < -80.0f) return ga_scaled_exp(x, hi, lo);
            if (fabs(hi) < 9.5367431640625e-7f) return copysign(fma(x, 0.25f * hi, 0.5f * x), x);
            return x / (1.0f + ga_exp_hilo(-hi, -lo));
        }
        /* sigmoid'(hi + lo) = e / (1 + e)^2 with e = e^-|s| (VectorMath.SigmoidSlope): no cancellation at either end. */
        GA_DEVICE_FN float ga_sigmoid_slope(float hi, float lo)
        {
            float e = ga_exp_hilo(-fabs(hi), hi < 0.0f ? lo : -lo);
            float r = 1.0f / (1.0f + e);
            return e * r * r;
        }
        /* d/dx [x sigmoid(s)], s = hi + lo, ds/dx = slope: sigmoid(s) + x slope sigmoid'(s) from one exponential;
           the product is 0 where sigmoid'(s) is (infinite x), not inf * 0, and at s = -inf a zero of x slope's sign (the
           limit from below for SiLU); below s = -80, e^s (1 + x slope) rounded
           once (VectorMath.TimesSigmoidDerivative). */
        GA_DEVICE_FN float ga_times_sigmoid_grad(float x, float hi, float lo, float slope)
        {
            if (hi == -GA_INFINITY) return copysign(0.0f, x * slope);
            if (hi < -80.0f) return ga_scaled_exp(fma(x, slope, 1.0f), hi, lo);
            float e = ga_exp_hilo(-fabs(hi), hi < 0.0f ? lo : -lo);
            float r = 1.0f / (1.0f + e);
            float d = e * r * r;
            float s = hi < 0.0f ? e * r : r;
            return d == 0.0f ? s : fma(x * slope, d, s);
        }
        """;
}
