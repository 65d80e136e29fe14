namespace GpuActivations.Device;

/// <summary>
/// Device helpers the activation bodies share, in the OpenCL C 1.2 / CUDA C++ dialect. They carry a
/// rounded product's remainder (hi + lo) into exponentials, for the reason given in <c>SwishOp</c>.
/// </summary>
internal static class DeviceMath
{
    /// <summary>The helpers' source; it is placed after the prelude and before <c>ga_activation</c>.</summary>
    public const string Source = """
        #ifdef __CUDACC__
        #define GA_MATH_FN static __device__ __forceinline__
        #else
        #define GA_MATH_FN static inline
        #endif
        /* hi + *lo == a * b exactly (an overflowing product leaves lo = 0, not inf or NaN). */
        GA_MATH_FN float ga_two_product(float a, float b, float* lo)
        {
            float hi = a * b;
            float l = fma(a, b, -hi);
            *lo = isfinite(hi) ? l : 0.0f;
            return hi;
        }
        /* e^(hi + lo) for |lo| tiny beside 1: e^hi (1 + lo). */
        GA_MATH_FN float ga_exp_hilo(float hi, float lo) { return exp(hi) * (1.0f + lo); }
        /* x * sigmoid(hi + lo). Far left, x e^s may be normal while e^s is not: (x e^(s/2)) e^(s/2);
           an infinite x there gives a zero of its sign (silu(-inf) = -0). */
        GA_MATH_FN float ga_times_sigmoid(float x, float hi, float lo)
        {
            if (hi < -80.0f)
            {
                float root = ga_exp_hilo(0.5f * hi, 0.5f * lo);
                return isinf(x) ? copysign(0.0f, x) : (x * root) * root;
            }
            return x / (1.0f + ga_exp_hilo(-hi, -lo));
        }
        """;
}
