namespace GpuActivations.Device;

/// <summary>
/// Gated units y[r, j] = act(gate[r, j]) * up[r, j] in the common dialect of <see cref="DevicePrelude"/>.
/// One kernel serves both layouts through row strides:
/// separate buffers are contiguous, so the host flattens them to one row of rows*d elements;
/// packed [rows, 2d] passes the same buffer twice, gate at column 0 and up at column d, both with stride 2d.
/// The launch is 2-D: dimension 0 walks the columns of a row, dimension 1 the rows, each with a grid-stride loop,
/// so short rows (d of 1..32) still fill a work-group with several rows. <c>ga_glu_flat</c> is the same without loops,
/// one element per work-item over a grid covering [d, rows] (for CPU devices; see <see cref="ElementwiseKernels"/>).
/// </summary>
internal static class GluKernels
{
    /// <summary>Kernel name.</summary>
    public const string Glu = "ga_glu", GluFlat = "ga_glu_flat";

    /// <summary>
    /// <c>ga_glu(gate, gateOffset, gateStride, up, upOffset, upStride, y, yOffset, rows, d, alpha, beta, threshold)</c>;
    /// y is dense [rows, d]. Needs an activation (<see cref="DevicePrelude.ActivationFunction"/>).
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
