namespace GpuActivations.Device;

/// <summary>
/// The backward (training) kernels in the common dialect of <see cref="DevicePrelude"/>: dx = dy * f'(x) for every
/// activation, from x or from y = f(x), and PReLU's dx and dAlpha. Shapes as <see cref="ElementwiseKernels"/>: a
/// grid-stride loop for GPUs and a flat one-element-per-work-item form for CPU devices (no float4 path: a backward pass
/// reads two arrays and the derivative's arithmetic, not the loads, dominates the scalar kernels). dx may be either
/// input (each element is read and written by the same work-item).
/// </summary>
internal static class BackwardKernels
{
    /// <summary>Kernel names.</summary>
    public const string Unary = "ga_unary_backward", UnaryFlat = "ga_unary_backward_flat",
        UnaryFromOutput = "ga_unary_backward_out", UnaryFromOutputFlat = "ga_unary_backward_out_flat",
        PRelu = "ga_prelu_backward", PReluAlpha = "ga_prelu_backward_alpha";

    /// <summary>Every kernel of <see cref="UnarySource"/>.</summary>
    public static IReadOnlyList<string> UnaryKernels { get; } = [Unary, UnaryFlat, UnaryFromOutput, UnaryFromOutputFlat];

    /// <summary>Every kernel of <see cref="PReluSource"/>.</summary>
    public static IReadOnlyList<string> PReluKernels { get; } = [PRelu, PReluAlpha];

    /// <summary>
    /// <c>ga_unary_backward(input, inputOffset, dy, dyOffset, dx, dxOffset, n, alpha, beta, threshold)</c>:
    /// dx = dy * ga_activation_grad(input); <c>ga_unary_backward_out</c>, same arguments, with
    /// <c>ga_activation_grad_out</c> (the input is then y = f(x)); the <c>_flat</c> forms without the loop (the grid
    /// covers n). Written once as a macro over the derivative function. Needs the activation's derivatives
    /// (<see cref="DevicePrelude.DerivativeFunctions"/>).
    /// </summary>
    public const string UnarySource = """
        #define GA_BACKWARD_KERNELS(NAME, GRAD) \
        KERNEL void NAME(GLOBAL const ga_in_t* v, ga_index vOffset, GLOBAL const ga_in_t* dy, ga_index dyOffset, \
                         GLOBAL ga_out_t* dx, ga_index dxOffset, ga_index n, float alpha, float beta, float threshold) \
        { \
            const ga_index stride = GA_GLOBAL_SIZE(0); \
            for (ga_index i = GA_GLOBAL_ID(0); i < n; i += stride) \
                GA_STORE_OUT(dx, dxOffset + i, GA_LOAD_IN(dy, dyOffset + i) * GRAD(GA_LOAD_IN(v, vOffset + i), alpha, beta, threshold)); \
        } \
        KERNEL void NAME##_flat(GLOBAL const ga_in_t* v, ga_index vOffset, GLOBAL const ga_in_t* dy, ga_index dyOffset, \
                                GLOBAL ga_out_t* dx, ga_index dxOffset, ga_index n, float alpha, float beta, float threshold) \
        { \
            const ga_index i = GA_GLOBAL_ID(0); \
            if (i < n) GA_STORE_OUT(dx, dxOffset + i, GA_LOAD_IN(dy, dyOffset + i) * GRAD(GA_LOAD_IN(v, vOffset + i), alpha, beta, threshold)); \
        }

        GA_BACKWARD_KERNELS(ga_unary_backward, ga_activation_grad)
        GA_BACKWARD_KERNELS(ga_unary_backward_out, ga_activation_grad_out)

        """;

    /// <summary>
    /// <c>ga_prelu_backward_alpha(x, xOffset, dy, dyOffset, rows, channels, dAlpha, dAlphaOffset)</c>: one work-item per
    /// channel sums (x &lt; 0 ? x dy : 0; NaN x gives NaN) over the rows in order, in double where the device supports it
    /// (exact products; the CPU's bits), else compensated in float (Kahan), so the result is the same on every run; neighbouring work-items read neighbouring channels (coalesced). Launched before
    /// <c>ga_prelu_backward(x, xOffset, alpha, alphaOffset, channels, dy, dyOffset, dx, dxOffset, n)</c>:
    /// dx = x &lt; 0 ? alpha[c] dy : dy (NaN x gives NaN), grid-stride with the channel stepped as in <c>ga_prelu</c>.
    /// </summary>
    public static string PReluSource { get; } = $$"""
        /* dAlpha in double where the device has it (CUDA; OpenCL with cl_khr_fp64, as PoCL): each product x dy is exact
           in double and the sum in row order is the CPU's, bit for bit, cancelling terms near +-FLT_MAX included.
           Without fp64: a Kahan sum in float, whose products overflow past FLT_MAX. */
        #if defined(GA_CUDA)
        #define GA_PRELU_FP64 1
        #elif defined(cl_khr_fp64)
        #pragma OPENCL EXTENSION cl_khr_fp64 : enable
        #define GA_PRELU_FP64 1
        #endif
        KERNEL void ga_prelu_backward_alpha(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL const ga_in_t* dy, ga_index dyOffset,
                                            ga_index rows, int channels, GLOBAL float* dAlpha, ga_index dAlphaOffset)
        {
            const ga_index c = GA_GLOBAL_ID(0);
            if (c >= channels) return;
        #if defined(GA_PRELU_FP64)
            double sum = 0.0;
            for (ga_index r = 0; r < rows; r++)
            {
                const ga_index i = r * channels + c;
                const float v = GA_LOAD_IN(x, xOffset + i);
                if (!(v >= 0.0f)) sum += (double)v * (double)GA_LOAD_IN(dy, dyOffset + i);
            }
            dAlpha[dAlphaOffset + c] = (float)sum;
        #else
            float sum = 0.0f, carry = 0.0f;
            for (ga_index r = 0; r < rows; r++)
            {
                const ga_index i = r * channels + c;
                const float v = GA_LOAD_IN(x, xOffset + i);
                const float term = v >= 0.0f ? 0.0f : v * GA_LOAD_IN(dy, dyOffset + i);
                const float k = term - carry;
                const float t = sum + k;
                carry = isfinite(t) ? (t - sum) - k : 0.0f;
                sum = t;
            }
            dAlpha[dAlphaOffset + c] = sum;
        #endif
        }

        KERNEL void ga_prelu_backward(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL const float* alpha, ga_index alphaOffset,
                                      int channels, GLOBAL const ga_in_t* dy, ga_index dyOffset, GLOBAL ga_out_t* dx, ga_index dxOffset,
                                      ga_index n)
        {
        {{ElementwiseKernels.ChannelLoop("""
                const float v = GA_LOAD_IN(x, xOffset + i);
                const float g = GA_LOAD_IN(dy, dyOffset + i);
                GA_STORE_OUT(dx, dxOffset + i, v < 0.0f ? alpha[alphaOffset + channel] * g : (v != v ? v : g));
        """)}}
        }

        """;
}
