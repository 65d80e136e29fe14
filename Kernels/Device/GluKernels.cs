namespace GpuActivations.Device;

/// <summary>
/// Gated units y[r, j] = act(gate[r, j]) * up[r, j] in the common dialect of <see cref="DevicePrelude"/>.
/// One kernel serves both layouts through row strides:
/// separate buffers are contiguous, so the host flattens them to one row of rows*d elements;
/// packed [rows, 2d] passes the same buffer twice, gate at column 0 and up at column d, both with stride 2d.
/// The launch is 2-D: dimension 0 walks the columns of a row, dimension 1 the rows, each with a grid-stride loop,
/// so short rows (d of 1..32) still fill a work-group with several rows. <c>ga_glu_vec4</c> is the same over float4s
/// (128-bit loads and stores): the host picks it when the three row starts are 16-byte aligned in every row, dimension 0
/// then walks the row's d / 4 float4s, then its last d % 4 elements. <c>ga_glu_flat</c> is
/// <c>ga_glu</c> without loops, one element per work-item over a grid covering [d, rows] (for CPU devices; see
/// <see cref="ElementwiseKernels"/>).
/// </summary>
internal static class GluKernels
{
    /// <summary>Kernel name.</summary>
    public const string Glu = "ga_glu", GluVec4 = "ga_glu_vec4", GluFlat = "ga_glu_flat";

    /// <summary>Every kernel of <see cref="Source"/>.</summary>
    public static IReadOnlyList<string> Kernels { get; } = [Glu, GluVec4, GluFlat];

    /// <summary>
    /// <c>ga_glu(gate, gateOffset, gateStride, up, upOffset, upStride, y, yOffset, rows, d, alpha, beta, threshold)</c>;
    /// y is dense [rows, d]. <c>ga_glu_vec4</c> and <c>ga_glu_flat</c> take the same arguments. Needs an activation
    /// (<see cref="DevicePrelude.ActivationFunction"/>). y may be gate or up (in place): every element is read and
    /// written by one work-item, loads before the store.
    /// </summary>
    public const string Source = """
        KERNEL void ga_glu(GLOBAL const float* gate, ga_index gateOffset, ga_index gateStride,
                           GLOBAL const float* up, ga_index upOffset, ga_index upStride,
                           GLOBAL float* y, ga_index yOffset, ga_index rows, ga_index d,
                           float alpha, float beta, float threshold)
        {
            const ga_index columnStep = GA_GLOBAL_SIZE(0);
            const ga_index rowStep = GA_GLOBAL_SIZE(1);
            const ga_index firstColumn = GA_GLOBAL_ID(0);
            for (ga_index r = GA_GLOBAL_ID(1); r < rows; r += rowStep)
            {
                GLOBAL const float* g = gate + gateOffset + r * gateStride;
                GLOBAL const float* u = up + upOffset + r * upStride;
                GLOBAL float* o = y + yOffset + r * d;
                for (ga_index j = firstColumn; j < d; j += columnStep)
                    o[j] = ga_activation(g[j], alpha, beta, threshold) * u[j];
            }
        }

        KERNEL void ga_glu_vec4(GLOBAL const float* gate, ga_index gateOffset, ga_index gateStride,
                                GLOBAL const float* up, ga_index upOffset, ga_index upStride,
                                GLOBAL float* y, ga_index yOffset, ga_index rows, ga_index d,
                                float alpha, float beta, float threshold)
        {
            const ga_index d4 = d >> 2;
            const ga_index columnStep = GA_GLOBAL_SIZE(0);
            const ga_index rowStep = GA_GLOBAL_SIZE(1);
            const ga_index firstColumn = GA_GLOBAL_ID(0);
            for (ga_index r = GA_GLOBAL_ID(1); r < rows; r += rowStep)
            {
                GLOBAL const float* g = gate + gateOffset + r * gateStride;
                GLOBAL const float* u = up + upOffset + r * upStride;
                GLOBAL float* o = y + yOffset + r * d;
                GLOBAL const float4* g4 = (GLOBAL const float4*)g;
                GLOBAL const float4* u4 = (GLOBAL const float4*)u;
                GLOBAL float4* o4 = (GLOBAL float4*)o;
                for (ga_index j = firstColumn; j < d4; j += columnStep)
                {
                    const float4 a = g4[j];
                    const float4 b = u4[j];
                    float4 c;
                    c.x = ga_activation(a.x, alpha, beta, threshold) * b.x;
                    c.y = ga_activation(a.y, alpha, beta, threshold) * b.y;
                    c.z = ga_activation(a.z, alpha, beta, threshold) * b.z;
                    c.w = ga_activation(a.w, alpha, beta, threshold) * b.w;
                    o4[j] = c;
                }
                for (ga_index j = (d4 << 2) + firstColumn; j < d; j += columnStep)
                    o[j] = ga_activation(g[j], alpha, beta, threshold) * u[j];
            }
        }

        KERNEL void ga_glu_flat(GLOBAL const float* gate, ga_index gateOffset, ga_index gateStride,
                                GLOBAL const float* up, ga_index upOffset, ga_index upStride,
                                GLOBAL float* y, ga_index yOffset, ga_index rows, ga_index d,
                                float alpha, float beta, float threshold)
        {
            const ga_index j = GA_GLOBAL_ID(0);
            const ga_index r = GA_GLOBAL_ID(1);
            if (j < d && r < rows)
                y[yOffset + r * d + j] = ga_activation(gate[gateOffset + r * gateStride + j], alpha, beta, threshold)
                                       * up[upOffset + r * upStride + j];
        }

        """;
}
