namespace GpuActivations.Device;

/// <summary>
/// Row-wise softmax and log-softmax of [rows, cols] in the common dialect of <see cref="DevicePrelude"/>.
/// <para>
/// One read pass computes each row's (max, sum) online: a running max m and s = sum exp(x - m), rescaled when the
/// max grows; partial states merge as (max(m1, m2), s1 exp(m1 - m) + s2 exp(m2 - m)). NaN is mapped to +inf in
/// the state, so m = +inf marks a row holding NaN or +inf; m = -inf marks a row of only -inf; both rows come out NaN.
/// A second pass writes exp(x - m) / s, or (x - m) - log(s); -inf entries give 0 (log-softmax: -inf).
/// </para>
/// Shapes, chosen by the host from the row width:
/// <list type="bullet">
/// <item><c>ga_softmax_rows</c>: a row is handled by a slice of <c>slice</c> work-items (a power of two up to
/// the group size), so one work-group takes GA_GROUP_SIZE / slice short rows, or one long row when slice is
/// the group size. Slices reduce their states in local memory.</item>
/// <item><c>ga_softmax_partial</c> + <c>ga_softmax_finish</c>: a very long row is cut into <c>chunks</c> pieces of
/// <c>chunkLength</c>, one work-group each. The first kernel writes each piece's (m, s) into a scratch buffer
/// [rows * chunks * 2]; the second merges all the row's pieces (every group of the row does it; they are few)
/// and writes its own piece.</item>
/// </list>
/// All three need the launch's local size to be exactly GA_GROUP_SIZE.
/// </summary>
internal static class SoftmaxKernels
{
    /// <summary>Kernel names.</summary>
    public const string Rows = "ga_softmax_rows", Partial = "ga_softmax_partial", Finish = "ga_softmax_finish";

    /// <summary>The program: the state helpers and the three kernels. No activation function.</summary>
    public const string Source = """
        GA_DEVICE_FN void ga_sm_add(float* m, float* s, float v)
        {
            if (GA_ISNAN(v)) v = GA_INFINITY;
            if (v > *m) { *s = *s * exp(*m - v) + 1.0f; *m = v; }
            else if (v > -GA_INFINITY) *s += exp(v - *m);
        }

        GA_DEVICE_FN void ga_sm_merge(float* m, float* s, float m2, float s2)
        {
            const float mm = fmax(*m, m2);
            if (mm == -GA_INFINITY) return;
            *s = *s * exp(*m - mm) + s2 * exp(m2 - mm);
            *m = mm;
        }

        /* Tree-reduces the (m, s) states of each slice of `slice` work-items (slice a power of two, slices aligned
           to multiples of slice); afterwards lm[first of slice], ls[...] hold the slice's state. Call uniformly. */
        GA_DEVICE_FN void ga_sm_reduce(LOCAL float* lm, LOCAL float* ls, int lid, int lane, int slice)
        {
            for (int width = slice >> 1; width > 0; width >>= 1)
            {
                if (lane < width)
                {
                    float m = lm[lid], s = ls[lid];
                    ga_sm_merge(&m, &s, lm[lid + width], ls[lid + width]);
                    lm[lid] = m;
                    ls[lid] = s;
                }
                BARRIER();
            }
        }

        GA_DEVICE_FN void ga_sm_write(GLOBAL const float* x, GLOBAL float* y, ga_index begin, ga_index end, ga_index step,
                                      float m, float s, int logMode)
        {
            const int bad = !(m < GA_INFINITY) || m == -GA_INFINITY;
            if (bad)
            {
                for (ga_index j = begin; j < end; j += step) y[j] = GA_NAN;
            }
            else if (logMode)
            {
                const float logSum = log(s);
                for (ga_index j = begin; j < end; j += step) y[j] = (x[j] - m) - logSum;
            }
            else
            {
                const float inverse = 1.0f / s;
                for (ga_index j = begin; j < end; j += step) y[j] = exp(x[j] - m) * inverse;
            }
        }

        KERNEL void ga_softmax_rows(GLOBAL const float* x, ga_index xOffset, GLOBAL float* y, ga_index yOffset,
                                    ga_index rows, ga_index cols, int slice, int logMode)
        {
            LOCAL float lm[GA_GROUP_SIZE];
            LOCAL float ls[GA_GROUP_SIZE];
            const int lid = GA_LOCAL_ID(0);
            const int lane = lid & (slice - 1);
            const int first = lid - lane;
            const ga_index rowsPerGroup = GA_GROUP_SIZE / slice;
            const ga_index rowStep = GA_NUM_GROUPS(0) * rowsPerGroup;
            for (ga_index base = GA_GROUP_ID(0) * rowsPerGroup; base < rows; base += rowStep)
            {
                const ga_index row = base + lid / slice;
                float m = -GA_INFINITY, s = 0.0f;
                if (row < rows)
                {
                    GLOBAL const float* xr = x + xOffset + row * cols;
                    for (ga_index j = lane; j < cols; j += slice) ga_sm_add(&m, &s, xr[j]);
                }
                lm[lid] = m;
                ls[lid] = s;
                BARRIER();
                ga_sm_reduce(lm, ls, lid, lane, slice);
                m = lm[first];
                s = ls[first];
                BARRIER();
                if (row < rows)
                    ga_sm_write(x + xOffset + row * cols, y + yOffset + row * cols, lane, cols, slice, m, s, logMode);
            }
        }

        KERNEL void ga_softmax_partial(GLOBAL const float* x, ga_index xOffset, ga_index rows, ga_index cols,
                                       ga_index chunks, ga_index chunkLength, GLOBAL float* partial)
        {
            LOCAL float lm[GA_GROUP_SIZE];
            LOCAL float ls[GA_GROUP_SIZE];
            const int lid = GA_LOCAL_ID(0);
            const ga_index pieces = rows * chunks;
            for (ga_index piece = GA_GROUP_ID(0); piece < pieces; piece += GA_NUM_GROUPS(0))
            {
                const ga_index row = piece / chunks;
                const ga_index begin = (piece - row * chunks) * chunkLength;
                const ga_index end = begin + chunkLength < cols ? begin + chunkLength : cols;
                GLOBAL const float* xr = x + xOffset + row * cols;
                float m = -GA_INFINITY, s = 0.0f;
                for (ga_index j = begin + lid; j < end; j += GA_GROUP_SIZE) ga_sm_add(&m, &s, xr[j]);
                lm[lid] = m;
                ls[lid] = s;
                BARRIER();
                ga_sm_reduce(lm, ls, lid, lid, GA_GROUP_SIZE);
                if (lid == 0)
                {
                    partial[2 * piece] = lm[0];
                    partial[2 * piece + 1] = ls[0];
                }
                BARRIER();
            }
        }

        KERNEL void ga_softmax_finish(GLOBAL const float* x, ga_index xOffset, GLOBAL float* y, ga_index yOffset,
                                      ga_index rows, ga_index cols, ga_index chunks, ga_index chunkLength,
                                      GLOBAL const float* partial, int logMode)
        {
            LOCAL float lm[GA_GROUP_SIZE];
            LOCAL float ls[GA_GROUP_SIZE];
            const int lid = GA_LOCAL_ID(0);
            const ga_index pieces = rows * chunks;
            for (ga_index piece = GA_GROUP_ID(0); piece < pieces; piece += GA_NUM_GROUPS(0))
            {
                const ga_index row = piece / chunks;
                const ga_index begin = (piece - row * chunks) * chunkLength;
                const ga_index end = begin + chunkLength < cols ? begin + chunkLength : cols;
                float m = -GA_INFINITY, s = 0.0f;
                GLOBAL const float* rowPartials = partial + 2 * row * chunks;
                for (ga_index k = lid; k < chunks; k += GA_GROUP_SIZE)
                    ga_sm_merge(&m, &s, rowPartials[2 * k], rowPartials[2 * k + 1]);
                lm[lid] = m;
                ls[lid] = s;
                BARRIER();
                ga_sm_reduce(lm, ls, lid, lid, GA_GROUP_SIZE);
                m = lm[0];
                s = ls[0];
                BARRIER();
                ga_sm_write(x + xOffset + row * cols, y + yOffset + row * cols, begin + lid, end, GA_GROUP_SIZE, m, s, logMode);
            }
        }

        """;
}
