namespace GpuActivations.Device;

/// <summary>
/// Softmax / log-softmax backward and fused cross-entropy from logits, in the dialect of <see cref="DevicePrelude"/>,
/// on <see cref="SoftmaxKernels.Helpers"/>. They take the streaming shapes of <see cref="SoftmaxPlanner"/> (register rows
/// off): <c>*_rows</c>, a slice of work-items per row reducing the row, then writing it; or, for few long rows,
/// <c>*_partial</c> (one work-group per piece of a row, its reduction into a scratch buffer) then <c>*_finish</c>
/// (every group of a row merges the row's pieces and writes its own piece).
/// <list type="bullet">
/// <item>Backward: S = sum_j dy_j y_j (softmax) or sum_j dy_j (log-softmax), then dx = y (dy - S) or dy - exp(y) S.
/// Each element is read and written by one work-item, after the reduction, so dx may be y or dy.</item>
/// <item>Cross-entropy: per row the online (max, sum) state of the logits, their sum (label smoothing) and z_t; the loss
/// (1 - eps)(m - z_t + log s) + eps (m - sum z / C + log s) and, with a gradient, g_j = gradScale (exp(z_j - m) / s -
/// (1 - eps) [j == t] - eps / C). z_t is read before any gradient is written (a barrier apart, or in the partial
/// launch), so the gradient may overwrite the logits. Ignored rows: loss 0, gradient 0; a target outside [0, cols)
/// or a row with NaN, +inf or only -inf: NaN loss and NaN gradient.</item>
/// </list>
/// Scratch per piece: one float (backward); m, s, sum z, z_t (cross-entropy; z_t in the row's first piece).
/// </summary>
internal static class SoftmaxGradKernels
{
    /// <summary>Kernel names.</summary>
    public const string BackwardRows = "ga_softmax_backward_rows", BackwardPartial = "ga_softmax_backward_partial",
        BackwardFinish = "ga_softmax_backward_finish", CrossEntropyRows = "ga_cross_entropy_rows",
        CrossEntropyPartial = "ga_cross_entropy_partial", CrossEntropyFinish = "ga_cross_entropy_finish";

    /// <summary>Floats of scratch per piece of a split cross-entropy.</summary>
    public const int CrossEntropyScratch = 4;

    /// <summary>Every kernel of <see cref="Source"/>.</summary>
    public static IReadOnlyList<string> Kernels { get; } =
        [BackwardRows, BackwardPartial, BackwardFinish, CrossEntropyRows, CrossEntropyPartial, CrossEntropyFinish];

    /// <summary>The program: the softmax helpers and the six kernels.</summary>
    public const string Source = SoftmaxKernels.Helpers + """
        /* Backward: the reduced term and the output. */
        GA_DEVICE_FN float ga_bw_term(float y, float dy, int logMode) { return logMode ? dy : dy * y; }
        GA_DEVICE_FN float ga_bw_out(float y, float dy, float s, int logMode) { return logMode ? dy - exp(y) * s : y * (dy - s); }

        /* The sum of ga_bw_term over columns [begin, end) of a row, strided by `step` from begin + lane. */
        GA_DEVICE_FN float ga_bw_sum(GLOBAL const ga_in_t* yr, GLOBAL const ga_in_t* dyr, ga_index begin, ga_index end, int lane,
                                     int step, int active, int logMode)
        {
            float s = 0.0f;
            for (ga_index j0 = begin; j0 < end; j0 += step)
            {
                const ga_index j = j0 + lane;
                if (active && j < end) s += ga_bw_term(GA_LOAD_IN(yr, j), GA_LOAD_IN(dyr, j), logMode);
                GA_LOOP_BARRIER();
            }
            return s;
        }

        GA_DEVICE_FN void ga_bw_write(GLOBAL const ga_in_t* yr, GLOBAL const ga_in_t* dyr, GLOBAL ga_out_t* dxr, ga_index begin,
                                      ga_index end, int lane, int step, int active, float s, int logMode)
        {
            for (ga_index j0 = begin; j0 < end; j0 += step)
            {
                const ga_index j = j0 + lane;
                if (active && j < end) GA_STORE_OUT(dxr, j, ga_bw_out(GA_LOAD_IN(yr, j), GA_LOAD_IN(dyr, j), s, logMode));
                GA_LOOP_BARRIER();
            }
        }

        KERNEL void ga_softmax_backward_rows(GLOBAL const ga_in_t* y, ga_index yOffset, GLOBAL const ga_in_t* dy, ga_index dyOffset,
                                             GLOBAL ga_out_t* dx, ga_index dxOffset, ga_index rows, ga_index cols, int slice, int logMode)
        {
            LOCAL float scratch[GA_ROW_SCRATCH];
            const int lid = GA_LOCAL_ID(0);
            const int lane = lid & (slice - 1);
            const ga_index rowsPerGroup = GA_GROUP_SIZE / slice;
            for (ga_index base = GA_GROUP_ID(0) * rowsPerGroup; base < rows; base += GA_NUM_GROUPS(0) * rowsPerGroup)
            {
                const ga_index row = base + lid / slice;
                const int active = row < rows;
                const ga_index start = (active ? row : 0) * cols;
                float s = ga_bw_sum(y + yOffset + start, dy + dyOffset + start, 0, cols, lane, slice, active, logMode);
                s = ga_row_reduce(s, scratch, lid, slice, 0);
                ga_bw_write(y + yOffset + start, dy + dyOffset + start, dx + dxOffset + start, 0, cols, lane, slice, active, s, logMode);
            }
        }

        KERNEL void ga_softmax_backward_partial(GLOBAL const ga_in_t* y, ga_index yOffset, GLOBAL const ga_in_t* dy, ga_index dyOffset,
                                                ga_index rows, ga_index cols, ga_index chunks, ga_index chunkLength,
                                                GLOBAL float* partial, int logMode)
        {
            LOCAL float scratch[GA_ROW_SCRATCH];
            const int lid = GA_LOCAL_ID(0);
            for (ga_index piece = GA_GROUP_ID(0); piece < rows * chunks; piece += GA_NUM_GROUPS(0))
            {
                const ga_index row = piece / chunks;
                const ga_index begin = (piece - row * chunks) * chunkLength;
                const ga_index end = begin + chunkLength < cols ? begin + chunkLength : cols;
                float s = ga_bw_sum(y + yOffset + row * cols, dy + dyOffset + row * cols, begin, end, lid, GA_GROUP_SIZE, 1, logMode);
                s = ga_row_reduce(s, scratch, lid, GA_GROUP_SIZE, 0);
                if (lid == 0) partial[piece] = s;
            }
        }

        KERNEL void ga_softmax_backward_finish(GLOBAL const ga_in_t* y, ga_index yOffset, GLOBAL const ga_in_t* dy, ga_index dyOffset,
                                               GLOBAL ga_out_t* dx, ga_index dxOffset, ga_index rows, ga_index cols, ga_index chunks,
                                               ga_index chunkLength, GLOBAL const float* partial, int logMode)
        {
            LOCAL float scratch[GA_ROW_SCRATCH];
            const int lid = GA_LOCAL_ID(0);
            for (ga_index piece = GA_GROUP_ID(0); piece < rows * chunks; piece += GA_NUM_GROUPS(0))
            {
                const ga_index row = piece / chunks;
                const ga_index begin = (piece - row * chunks) * chunkLength;
                const ga_index end = begin + chunkLength < cols ? begin + chunkLength : cols;
                float s = 0.0f;
                for (ga_index k = lid; k < chunks; k += GA_GROUP_SIZE) s += partial[row * chunks + k];
                s = ga_row_reduce(s, scratch, lid, GA_GROUP_SIZE, 0);
                const ga_index start = row * cols;
                ga_bw_write(y + yOffset + start, dy + dyOffset + start, dx + dxOffset + start, begin, end, lid, GA_GROUP_SIZE, 1, s, logMode);
            }
        }

        /* Cross-entropy: the online state and the logits' sum over columns [begin, end), strided by `step` from begin + lane.
           The sum is kept scaled by 2^-24 (exact for every normal result): up to 2^24 logits of FLT_MAX then still fit. */
        GA_DEVICE_FN void ga_ce_reduce(GLOBAL const ga_in_t* zr, ga_index begin, ga_index end, int lane, int step, int active,
                                       float* m, float* s, float* sz)
        {
            *m = -GA_INFINITY;
            *s = 0.0f;
            *sz = 0.0f;
            for (ga_index j0 = begin; j0 < end; j0 += step)
            {
                const ga_index j = j0 + lane;
                if (active && j < end)
                {
                    const float z = GA_LOAD_IN(zr, j);
                    ga_sm_add(m, s, z);
                    *sz += z * 5.9604644775390625e-8f; /* 2^-24, exact: a sum of logits near +-FLT_MAX must not overflow */
                }
                GA_LOOP_BARRIER();
            }
        }

        /* The row's loss; NaN for a bad target (outside [0, cols) and not ignored) or a bad row (see ga_sm_bad). Terms with a
           zero weight are left out, so eps = 0 ignores the sum of logits (-inf there) and eps = 1 ignores z_t. */
        GA_DEVICE_FN float ga_ce_loss(int t, int ignoreIndex, ga_index cols, float m, float s, float sz, float zt, float eps)
        {
            if (t == ignoreIndex) return 0.0f;
            if (t < 0 || t >= cols || ga_sm_bad(m, 0)) return GA_NAN;
            float loss = log(s);
            if (eps < 1.0f) loss += (1.0f - eps) * (m - zt);
            if (eps > 0.0f) loss += eps * (m - sz / (float)cols * 16777216.0f); /* sz holds the sum times 2^-24 */
            return loss;
        }

        /* Writes the gradient of columns [begin, end) of a row (ignored rows 0, bad ones NaN). */
        GA_DEVICE_FN void ga_ce_write(GLOBAL const ga_in_t* zr, GLOBAL ga_out_t* gr, ga_index begin, ga_index end, int lane, int step,
                                      int active, int t, int ignoreIndex, ga_index cols, float m, float s, float eps, float gradScale)
        {
            const int ignored = t == ignoreIndex;
            const int bad = !ignored && (t < 0 || t >= cols || ga_sm_bad(m, 0));
            const float scaleOverSum = gradScale / s, offset = gradScale * eps / (float)cols, hit = gradScale * (1.0f - eps);
            for (ga_index j0 = begin; j0 < end; j0 += step)
            {
                const ga_index j = j0 + lane;
                if (active && j < end)
                {
                    const float g = exp(GA_LOAD_IN(zr, j) - m) * scaleOverSum - offset - (j == t ? hit : 0.0f);
                    GA_STORE_OUT(gr, j, ignored ? 0.0f : bad ? GA_NAN : g);
                }
                GA_LOOP_BARRIER();
            }
        }

        KERNEL void ga_cross_entropy_rows(GLOBAL const ga_in_t* logits, ga_index zOffset, GLOBAL const int* targets, ga_index tOffset,
                                          GLOBAL float* losses, ga_index lossOffset, GLOBAL ga_out_t* grad, ga_index gOffset,
                                          ga_index rows, ga_index cols, int slice, int ignoreIndex, float eps, float gradScale, int hasGrad)
        {
            LOCAL float lm[GA_GROUP_SIZE];
            LOCAL float ls[GA_GROUP_SIZE];
            LOCAL float scratch[GA_ROW_SCRATCH];
            const int lid = GA_LOCAL_ID(0);
            const int lane = lid & (slice - 1);
            const ga_index rowsPerGroup = GA_GROUP_SIZE / slice;
            for (ga_index base = GA_GROUP_ID(0) * rowsPerGroup; base < rows; base += GA_NUM_GROUPS(0) * rowsPerGroup)
            {
                const ga_index row = base + lid / slice;
                const int active = row < rows;
                const int t = active ? targets[tOffset + row] : ignoreIndex;
                GLOBAL const ga_in_t* zr = logits + zOffset + (active ? row : 0) * cols;
                float m, s, sz;
                ga_ce_reduce(zr, 0, cols, lane, slice, active, &m, &s, &sz);
                /* z_t before the barriers below: after them the gradient may overwrite the logits. */
                const float zt = t >= 0 && t < cols ? GA_LOAD_IN(zr, t) : 0.0f;
                ga_sm_slice_state(&m, &s, lm, ls, lid, lane, slice);
                sz = ga_row_reduce(sz, scratch, lid, slice, 0);
                if (active && lane == 0) losses[lossOffset + row] = ga_ce_loss(t, ignoreIndex, cols, m, s, sz, zt, eps);
                if (hasGrad)
                    ga_ce_write(zr, grad + gOffset + (active ? row : 0) * cols, 0, cols, lane, slice, active, t, ignoreIndex, cols, m, s, eps, gradScale);
            }
        }

        KERNEL void ga_cross_entropy_partial(GLOBAL const ga_in_t* logits, ga_index zOffset, GLOBAL const int* targets, ga_index tOffset,
                                             ga_index rows, ga_index cols, ga_index chunks, ga_index chunkLength, GLOBAL float* partial)
        {
            LOCAL float lm[GA_GROUP_SIZE];
            LOCAL float ls[GA_GROUP_SIZE];
            LOCAL float scratch[GA_ROW_SCRATCH];
            const int lid = GA_LOCAL_ID(0);
            for (ga_index piece = GA_GROUP_ID(0); piece < rows * chunks; piece += GA_NUM_GROUPS(0))
            {
                const ga_index row = piece / chunks;
                const ga_index begin = (piece - row * chunks) * chunkLength;
                const ga_index end = begin + chunkLength < cols ? begin + chunkLength : cols;
                GLOBAL const ga_in_t* zr = logits + zOffset + row * cols;
                float m, s, sz;
                ga_ce_reduce(zr, begin, end, lid, GA_GROUP_SIZE, 1, &m, &s, &sz);
                lm[lid] = m;
                ls[lid] = s;
                BARRIER();
                ga_sm_reduce(lm, ls, lid, lid, GA_GROUP_SIZE);
                sz = ga_row_reduce(sz, scratch, lid, GA_GROUP_SIZE, 0);
                if (lid == 0)
                {
                    const int t = targets[tOffset + row];
                    partial[4 * piece] = lm[0];
                    partial[4 * piece + 1] = ls[0];
                    partial[4 * piece + 2] = sz;
                    partial[4 * piece + 3] = begin == 0 && t >= 0 && t < cols ? GA_LOAD_IN(zr, t) : 0.0f;
                }
                BARRIER();
            }
        }

        KERNEL void ga_cross_entropy_finish(GLOBAL const ga_in_t* logits, ga_index zOffset, GLOBAL const int* targets, ga_index tOffset,
                                            GLOBAL float* losses, ga_index lossOffset, GLOBAL ga_out_t* grad, ga_index gOffset,
                                            ga_index rows, ga_index cols, ga_index chunks, ga_index chunkLength, GLOBAL const float* partial,
                                            int ignoreIndex, float eps, float gradScale, int hasGrad)
        {
            LOCAL float lm[GA_GROUP_SIZE];
            LOCAL float ls[GA_GROUP_SIZE];
            LOCAL float scratch[GA_ROW_SCRATCH];
            const int lid = GA_LOCAL_ID(0);
            for (ga_index piece = GA_GROUP_ID(0); piece < rows * chunks; piece += GA_NUM_GROUPS(0))
            {
                const ga_index row = piece / chunks;
                const ga_index begin = (piece - row * chunks) * chunkLength;
                const ga_index end = begin + chunkLength < cols ? begin + chunkLength : cols;
                GLOBAL const float* rowPartials = partial + 4 * row * chunks;
                float m, s, sz = 0.0f;
                ga_sm_row_state(rowPartials, chunks, 4, lm, ls, &m, &s);
                for (ga_index k = lid; k < chunks; k += GA_GROUP_SIZE) sz += rowPartials[4 * k + 2];
                sz = ga_row_reduce(sz, scratch, lid, GA_GROUP_SIZE, 0);
                const int t = targets[tOffset + row];
                if (begin == 0 && lid == 0) losses[lossOffset + row] = ga_ce_loss(t, ignoreIndex, cols, m, s, sz, rowPartials[3], eps);
                if (hasGrad)
                    ga_ce_write(logits + zOffset + row * cols, grad + gOffset + row * cols, begin, end, lid, GA_GROUP_SIZE, 1, t, ignoreIndex,
                                cols, m, s, eps, gradScale);
            }
        }

        """;
}
