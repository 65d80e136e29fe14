namespace GpuActivations.Device;

/// <summary>
/// Gated units y[r, j] = act(gate[r, j]) * up[r, j] and their backward pass, in the common dialect of
/// <see cref="DevicePrelude"/>. One kernel serves every layout through a row stride and an element step:
/// separate buffers are contiguous, so the host flattens them to one row of rows*d elements (step 1);
/// packed halves [rows, 2d] pass the same buffer twice, gate at column 0 and up at column d (row stride 2d, step 1);
/// interleaved [rows, 2d] pass it with gate at 0 and up at 1 (row stride 2d, step 2).
/// The launch is 2-D: dimension 0 walks the columns of a row, dimension 1 the rows, each with a grid-stride loop,
/// so short rows (d of 1..32) still fill a work-group with several rows. <c>ga_glu_vec4</c> is the same over float4s
/// (128-bit loads and stores, step 1 only): the host picks it for float storage when the three row starts are 16-byte
/// aligned in every row, dimension 0 then walks the row's d / 4 float4s, then its last d % 4 elements.
/// <c>ga_glu_flat</c> is <c>ga_glu</c> without loops, one element per work-item over a grid covering [d, rows] (for CPU
/// devices; see <see cref="ElementwiseKernels"/>). A limit &gt; 0 selects the clamped SwiGLU (a uniform branch).
/// </summary>
internal static class GluKernels
{
    /// <summary>Kernel name.</summary>
    public const string Glu = "ga_glu", GluVec4 = "ga_glu_vec4", GluFlat = "ga_glu_flat",
        Backward = "ga_glu_backward", BackwardFlat = "ga_glu_backward_flat";

    /// <summary>Every kernel of <see cref="Source"/>.</summary>
    public static IReadOnlyList<string> Kernels { get; } = [Glu, GluVec4, GluFlat];

    /// <summary>Every kernel of <see cref="BackwardSource"/>.</summary>
    public static IReadOnlyList<string> BackwardKernels { get; } = [Backward, BackwardFlat];

    /// <summary>
    /// <c>ga_glu(gate, gateOffset, up, upOffset, rowStride, step, y, yOffset, rows, d, alpha, beta, threshold, limit)</c>;
    /// gate[r, j] is gate[gateOffset + r rowStride + j step], likewise up; y is dense [rows, d]. <c>ga_glu_vec4</c> and
    /// <c>ga_glu_flat</c> take the same arguments. Needs an activation (<see cref="DevicePrelude.ActivationFunction"/>).
    /// y may be gate or up (in place): every element is read and written by one work-item, loads before the store.
    /// </summary>
    public const string Source = """
        /* act(g) * u, or with limit > 0 the clamped SwiGLU act(min(g, limit)) * (clamp(u, -limit, limit) + 1);
           comparisons, not fmin/fmax, so NaN is not clamped away. */
        GA_DEVICE_FN float ga_glu_pair(float g, float u, float alpha, float beta, float threshold, float limit)
        {
            if (limit > 0.0f)
            {
                g = g > limit ? limit : g;
                u = u > limit ? limit : (u < -limit ? -limit : u);
                return ga_activation(g, alpha, beta, threshold) * (u + 1.0f);
            }
            return ga_activation(g, alpha, beta, threshold) * u;
        }

        /* The forward kernels' parameters. */
        #define GA_GLU_PARAMETERS GLOBAL const ga_in_t* gate, ga_index gateOffset, GLOBAL const ga_in_t* up, ga_index upOffset, \
            ga_index rowStride, ga_index step, GLOBAL ga_out_t* y, ga_index yOffset, ga_index rows, ga_index d, \
            float alpha, float beta, float threshold, float limit

        KERNEL void ga_glu(GA_GLU_PARAMETERS)
        {
            const ga_index columnStep = GA_GLOBAL_SIZE(0);
            const ga_index rowStep = GA_GLOBAL_SIZE(1);
            const ga_index firstColumn = GA_GLOBAL_ID(0);
            for (ga_index r = GA_GLOBAL_ID(1); r < rows; r += rowStep)
            {
                const ga_index g = gateOffset + r * rowStride, u = upOffset + r * rowStride, o = yOffset + r * d;
                for (ga_index j = firstColumn; j < d; j += columnStep)
                    GA_STORE_OUT(y, o + j, ga_glu_pair(GA_LOAD_IN(gate, g + j * step), GA_LOAD_IN(up, u + j * step), alpha, beta, threshold, limit));
            }
        }

        /* Float storage only (the host picks it so): float4 views of the rows. */
        KERNEL void ga_glu_vec4(GA_GLU_PARAMETERS)
        {
            const ga_index d4 = d >> 2;
            const ga_index columnStep = GA_GLOBAL_SIZE(0);
            const ga_index rowStep = GA_GLOBAL_SIZE(1);
            const ga_index firstColumn = GA_GLOBAL_ID(0);
            for (ga_index r = GA_GLOBAL_ID(1); r < rows; r += rowStep)
            {
                const ga_index g = gateOffset + r * rowStride, u = upOffset + r * rowStride, o = yOffset + r * d;
                GLOBAL const float4* g4 = (GLOBAL const float4*)(gate + g);
                GLOBAL const float4* u4 = (GLOBAL const float4*)(up + u);
                GLOBAL float4* o4 = (GLOBAL float4*)(y + o);
                for (ga_index j = firstColumn; j < d4; j += columnStep)
                {
                    const float4 a = g4[j];
                    const float4 b = u4[j];
                    float4 c;
                    c.x = ga_glu_pair(a.x, b.x, alpha, beta, threshold, limit);
                    c.y = ga_glu_pair(a.y, b.y, alpha, beta, threshold, limit);
                    c.z = ga_glu_pair(a.z, b.z, alpha, beta, threshold, limit);
                    c.w = ga_glu_pair(a.w, b.w, alpha, beta, threshold, limit);
                    o4[j] = c;
                }
                for (ga_index j = (d4 << 2) + firstColumn; j < d; j += columnStep)
                    GA_STORE_OUT(y, o + j, ga_glu_pair(GA_LOAD_IN(gate, g + j), GA_LOAD_IN(up, u + j), alpha, beta, threshold, limit));
            }
        }

        KERNEL void ga_glu_flat(GA_GLU_PARAMETERS)
        {
            const ga_index j = GA_GLOBAL_ID(0);
            const ga_index r = GA_GLOBAL_ID(1);
            if (j < d && r < rows)
                GA_STORE_OUT(y, yOffset + r * d + j, ga_glu_pair(GA_LOAD_IN(gate, gateOffset + r * rowStride + j * step),
                                                                 GA_LOAD_IN(up, upOffset + r * rowStride + j * step), alpha, beta, threshold, limit));
        }

        """;

    /// <summary>
    /// <c>ga_glu_backward(gate, gateOffset, up, upOffset, rowStride, step, dy, dyOffset, dGate, dGateOffset, dUp, dUpOffset,
    /// rows, d, alpha, beta, threshold, limit)</c>: dGate = dy up act'(gate), dUp = dy act(gate) (clamped form for limit &gt; 0:
    /// 0 where a clamp is active). dGate and dUp have gate's and up's strides (dPacked has packed's layout); dy is dense
    /// [rows, d]. <c>ga_glu_backward_flat</c>: one element per work-item. Needs an activation and its derivative
    /// (<see cref="GateDerivative"/>, placed before this source). dGate may be gate, dUp up: loads before stores per element.
    /// </summary>
    public const string BackwardSource = """
        GA_DEVICE_FN void ga_glu_grad(float g, float u, float dy, float alpha, float beta, float threshold, float limit,
                                      float* dg, float* du)
        {
            if (limit > 0.0f)
            {
                const float gc = g > limit ? limit : g;
                const float uc = u > limit ? limit : (u < -limit ? -limit : u);
                const float value = ga_activation(gc, alpha, beta, threshold);
                *dg = g > limit ? 0.0f : dy * (uc + 1.0f) * ga_gate_derivative(gc, value, alpha, beta, threshold);
                *du = fabs(u) > limit ? 0.0f : dy * value;
                return;
            }
            const float value = ga_activation(g, alpha, beta, threshold);
            *dg = dy * u * ga_gate_derivative(g, value, alpha, beta, threshold);
            *du = dy * value;
        }

        GA_DEVICE_FN void ga_glu_grad_at(GLOBAL const ga_in_t* gate, ga_index g, GLOBAL const ga_in_t* up, ga_index u,
                                         GLOBAL const ga_in_t* dy, ga_index o, GLOBAL ga_out_t* dGate, ga_index dg,
                                         GLOBAL ga_out_t* dUp, ga_index du, float alpha, float beta, float threshold, float limit)
        {
            float a, b;
            ga_glu_grad(GA_LOAD_IN(gate, g), GA_LOAD_IN(up, u), GA_LOAD_IN(dy, o), alpha, beta, threshold, limit, &a, &b);
            GA_STORE_OUT(dGate, dg, a);
            GA_STORE_OUT(dUp, du, b);
        }

        /* The backward kernels' parameters. */
        #define GA_GLU_BACKWARD_PARAMETERS GLOBAL const ga_in_t* gate, ga_index gateOffset, GLOBAL const ga_in_t* up, ga_index upOffset, \
            ga_index rowStride, ga_index step, GLOBAL const ga_in_t* dy, ga_index dyOffset, \
            GLOBAL ga_out_t* dGate, ga_index dGateOffset, GLOBAL ga_out_t* dUp, ga_index dUpOffset, \
            ga_index rows, ga_index d, float alpha, float beta, float threshold, float limit

        KERNEL void ga_glu_backward(GA_GLU_BACKWARD_PARAMETERS)
        {
            const ga_index columnStep = GA_GLOBAL_SIZE(0);
            const ga_index rowStep = GA_GLOBAL_SIZE(1);
            const ga_index firstColumn = GA_GLOBAL_ID(0);
            for (ga_index r = GA_GLOBAL_ID(1); r < rows; r += rowStep)
            {
                const ga_index row = r * rowStride, o = dyOffset + r * d;
                for (ga_index j = firstColumn; j < d; j += columnStep)
                {
                    const ga_index at = row + j * step;
                    ga_glu_grad_at(gate, gateOffset + at, up, upOffset + at, dy, o + j, dGate, dGateOffset + at, dUp, dUpOffset + at,
                                   alpha, beta, threshold, limit);
                }
            }
        }

        KERNEL void ga_glu_backward_flat(GA_GLU_BACKWARD_PARAMETERS)
        {
            const ga_index j = GA_GLOBAL_ID(0);
            const ga_index r = GA_GLOBAL_ID(1);
            if (j < d && r < rows)
            {
                const ga_index at = r * rowStride + j * step;
                ga_glu_grad_at(gate, gateOffset + at, up, upOffset + at, dy, dyOffset + r * d + j, dGate, dGateOffset + at, dUp, dUpOffset + at,
                               alpha, beta, threshold, limit);
            }
        }

        """;

    /// <summary>
    /// <c>ga_swish_slope(hi, lo, factor)</c> = sigmoid(z) + factor sigmoid(z) sigmoid(-z) with z = hi + lo, the CPU's
    /// <c>GateDerivatives.SwishSlope</c>: e = e^-|z|, sigmoid(z) = (z &gt;= 0 ? 1 : e) / (1 + e), sigmoid(z) sigmoid(-z) =
    /// e / (1 + e)^2 (no 1 - sigmoid cancellation); the second term is 0 where e is.
    /// </summary>
    const string SwishSlope = """
        GA_DEVICE_FN float ga_swish_slope(float hi, float lo, float factor)
        {
            const int negative = hi < 0.0f;
            const float e = ga_exp_hilo(negative ? hi : -hi, negative ? lo : -lo);
            const float p = 1.0f + e;
            return (negative ? e : 1.0f) / p + (e == 0.0f ? 0.0f : factor * (e / (p * p)));
        }

        """;

    /// <summary>The gate activations (by device name) whose derivative <see cref="GateDerivative"/> knows.</summary>
    public static bool HasGateDerivative(DeviceActivation activation) => DerivativeBody(activation.Name) is not null;

    /// <summary>
    /// <c>float ga_gate_derivative(float x, float value, float alpha, float beta, float threshold)</c> for a gated unit's gate
    /// activation, given value = ga_activation(x): the same formulas as the CPU's <c>Cpu/GateDerivatives.cs</c>.
    /// </summary>
    public static string GateDerivative(DeviceActivation activation) =>
        SwishSlope + "GA_DEVICE_FN float ga_gate_derivative(float x, float value, float alpha, float beta, float threshold)\n{\n"
        + (DerivativeBody(activation.Name) ?? throw new ArgumentException($"no gate derivative for the activation {activation.Name}", nameof(activation)))
        + "\n}\n";

    static string? DerivativeBody(string activation) => activation switch
    {
        "silu" => "return ga_swish_slope(x, 0.0f, x);",
        "swish" => "if (beta == 0.0f) return x != x ? x : 0.5f;\nfloat lo; float hi = ga_two_product(beta, x, &lo); return ga_swish_slope(hi, lo, hi);",
        "relu" => "return x > 0.0f ? 1.0f : (x != x ? x : 0.0f);",
        // Phi(x) + x phi(x): Phi = gelu(x) / x (1/2 near 0, 1 at +inf), x phi(x) with the square exact; |x| > 20 gives 0 there.
        "gelu" => """
            const float cdf = fabs(x) < 1e-7f ? 0.5f : (x == GA_INFINITY ? 1.0f : value / x);
            const float xc = x > 20.0f ? 20.0f : (x < -20.0f ? -20.0f : x);
            float sqLo;
            const float sqHi = ga_two_product(0.5f * xc, xc, &sqLo);
            return x != x ? x : cdf + ga_scaled_exp(xc * 0.3989422804014327f, -sqHi, -sqLo);
            """,
        // sigmoid(s) + x (K0 + 3 K1 x^2) sigmoid(s) sigmoid(-s), s = K0 x + K1 x^3.
        "gelu_tanh" => """
            const float sq = x * x;
            return ga_swish_slope(x * fma(0.07135481627159233f, sq, 1.5957691216057308f), 0.0f, x * fma(0.21406444881477699f, sq, 1.5957691216057308f));
            """,
        _ => null,
    };
}
