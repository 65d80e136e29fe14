namespace GpuActivations.Device;

/// <summary>
/// Row-wise softmax and log-softmax of [rows, cols] in the common dialect of <see cref="DevicePrelude"/>.
/// <para>
/// One read pass computes each row's (max, sum) online: a running max m and s = sum exp(x - m), rescaled when the
/// max grows; partial states merge as (max(m1, m2), s1 exp(m1 - m) + s2 exp(m2 - m)). NaN is mapped to +inf in
/// the state, so m = +inf marks a row holding NaN or +inf; m = -inf marks a row of only -inf; both rows come out NaN.
/// A second pass writes exp(x - m) / s, or (x - m) - log(s); -inf entries give 0 (log-softmax: -inf).
/// </para>
/// Shapes, chosen by the host from the row width (<see cref="SoftmaxPlanner"/>):
/// <list type="bullet">
/// <item><c>ga_softmax_registers_P</c> (P = 1, 2, 4, ..., 32): register-resident rows. A row is held by <c>lanes</c>
/// work-items, P values each, read once into registers, reduced (max, then sum of exponentials) and written once: the
/// least memory traffic there is, and one exponential per element. <c>lanes</c> up to 32 puts several rows in a group
/// (one warp per row on CUDA, rows of up to 32 P columns); <c>lanes</c> equal to the group size gives the group one row.
/// The reductions are warp shuffles on CUDA (<c>__shfl_xor_sync</c>, plus one shared-memory step across the warps of a
/// block) and a local-memory tree elsewhere. On CUDA the block form takes any multiple of 32 threads up to 1024
/// (<c>__launch_bounds__(1024)</c> keeps every P within 64 registers); elsewhere the group is GA_GROUP_SIZE.</item>
/// <item><c>ga_softmax_rows</c>: a row is handled by a slice of <c>slice</c> work-items (a power of two up to
/// the group size) in two streaming passes, so one work-group takes GA_GROUP_SIZE / slice short rows, or one long row
/// when slice is the group size. Slices reduce their states in local memory (CUDA: warp shuffles).</item>
/// <item><c>ga_softmax_partial</c> + <c>ga_softmax_finish</c>: a very long row is cut into <c>chunks</c> pieces of
/// <c>chunkLength</c>, one work-group each. The first kernel writes each piece's (m, s) into a scratch buffer
/// [rows * chunks * 2]; the second merges all the row's pieces (every group of the row does it; they are few)
/// and writes its own piece.</item>
/// </list>
/// The rows, partial and finish kernels need the launch's local size to be exactly GA_GROUP_SIZE.
/// </summary>
internal static class SoftmaxKernels
{
    /// <summary>Kernel names.</summary>
    public const string Rows = "ga_softmax_rows", Partial = "ga_softmax_partial", Finish = "ga_softmax_finish";

    /// <summary>The values per work-item the register-resident kernels come in (powers of two).</summary>
    public static IReadOnlyList<int> RegisterCounts { get; } = [1, 2, 4, 8, 16, MaxRegistersPerLane];

    /// <summary>The most values one work-item holds in the register-resident kernels.</summary>
    public const int MaxRegistersPerLane = 32;

    /// <summary>The register-resident kernel holding <paramref name="perLane"/> values per work-item.</summary>
    public static string Registers(int perLane) => perLane switch
    {
        1 or 2 or 4 or 8 or 16 or 32 => "ga_softmax_registers_" + perLane.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => throw new ArgumentOutOfRangeException(nameof(perLane), perLane, "the register-resident softmax holds 1, 2, 4, ..., 32 values per work-item"),
    };

    /// <summary>Every kernel of <see cref="Source"/>.</summary>
    public static IReadOnlyList<string> Kernels { get; } = [Rows, Partial, Finish, .. RegisterCounts.Select(Registers)];

    /// <summary>The program: <see cref="Helpers"/> and the softmax kernels. No activation function.</summary>
    public const string Source = Helpers + Forward;

    /// <summary>
    /// The row helpers every softmax-shaped program shares (this family and <see cref="SoftmaxGradKernels"/>): the online
    /// (max, sum) state and its reductions, the plain row reduction, the input z = x * scale + mask and the special rows.
    /// </summary>
    public const string Helpers = """
        /* GA_LOOP_BARRIER: a barrier at the end of each step of the uniform element loops on CPU devices (the host
           defines GA_CPU_DEVICE). PoCL then runs each step as its own loop over the work-items, which it vectorises;
           a loop inside a work-item it cannot. On GPUs it is nothing. */
        #ifdef GA_CPU_DEVICE
        #define GA_LOOP_BARRIER() BARRIER()
        #else
        #define GA_LOOP_BARRIER()
        #endif

        /* Adds v to the state with one exp and no branch: of m and v one is the new max, the other's term is
           exp(min - max); rows of only -inf keep s = 0 (exp(-inf - -inf) would be NaN). */
        GA_DEVICE_FN void ga_sm_add(float* m, float* s, float v)
        {
            v = GA_ISNAN(v) ? GA_INFINITY : v;
            const float mm = fmax(*m, v);
            float e = exp(fmin(*m, v) - mm);
            e = mm == -GA_INFINITY ? 0.0f : e;
            *s = v > *m ? fma(*s, e, 1.0f) : *s + e;
            *m = mm;
        }

        GA_DEVICE_FN void ga_sm_merge(float* m, float* s, float m2, float s2)
        {
            const float mm = fmax(*m, m2);
            if (mm == -GA_INFINITY) return;
            *s = *s * exp(*m - mm) + s2 * exp(m2 - mm);
            *m = mm;
        }

        /* Reduces the (m, s) states of each slice of `slice` work-items (slice a power of two, slices aligned to multiples
           of slice); afterwards lm[first of slice], ls[...] hold the slice's state. Call uniformly. */
        #if defined(GA_CUDA)
        /* CUDA: butterfly shuffles inside each warp (every lane ends with the same state: the merge is symmetric), then,
           for slices wider than a warp, the first work-item merges its warps' states from shared memory. */
        GA_DEVICE_FN void ga_sm_reduce(LOCAL_PTR float* lm, LOCAL_PTR float* ls, int lid, int lane, int slice)
        {
            float m = lm[lid], s = ls[lid];
            for (int offset = (slice < 32 ? slice : 32) >> 1; offset > 0; offset >>= 1)
            {
                const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
                const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
                ga_sm_merge(&m, &s, m2, s2);
            }
            if (slice > 32)
            {
                if ((lid & 31) == 0)
                {
                    lm[lid] = m;
                    ls[lid] = s;
                }
                __syncthreads();
                if (lane == 0)
                {
                    for (int w = 32; w < slice; w += 32) ga_sm_merge(&m, &s, lm[lid + w], ls[lid + w]);
                    lm[lid] = m;
                    ls[lid] = s;
                }
            }
            else if (lane == 0)
            {
                lm[lid] = m;
                ls[lid] = s;
            }
            __syncthreads();
        }
        #else
        GA_DEVICE_FN void ga_sm_reduce(LOCAL_PTR float* lm, LOCAL_PTR float* ls, int lid, int lane, int slice)
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
        #endif

        /* Flags of the softmax kernels: log-softmax, a mask is added, fully masked rows give 0 (log: -inf) instead of NaN. */
        #define GA_SM_LOG 1
        #define GA_SM_MASK 2
        #define GA_SM_SAFE 4

        /* The row's mask (null without one): row r starts at mask + maskOffset + r * maskStride (stride 0: one row for all). */
        GA_DEVICE_FN GLOBAL const float* ga_sm_mask_row(GLOBAL const float* mask, ga_index maskOffset, ga_index maskStride, ga_index row, int flags)
        {
            return (flags & GA_SM_MASK) ? mask + maskOffset + row * maskStride : 0;
        }

        /* The softmax input z = x * scale + mask[j] (scale 1 and no mask leave x exact). */
        GA_DEVICE_FN float ga_sm_z(float x, float scale, GLOBAL const float* maskRow, ga_index j)
        {
            return maskRow ? x * scale + maskRow[j] : x * scale;
        }

        /* The row's kind from its max: 0 normal; 1 NaN (NaN/+inf, m = +inf; or only -inf, m = -inf); 2 only -inf, safe. */
        GA_DEVICE_FN int ga_sm_bad(float m, int flags)
        {
            if (m == -GA_INFINITY) return (flags & GA_SM_SAFE) ? 2 : 1;
            return !(m < GA_INFINITY);
        }

        /* One output element from z and the row's state; scale is ga_sm_scale's. */
        GA_DEVICE_FN float ga_sm_out(float z, float m, float scale, int bad, int logMode)
        {
            if (bad) return bad == 1 ? GA_NAN : logMode ? -GA_INFINITY : 0.0f;
            return logMode ? (z - m) - scale : exp(z - m) * scale;
        }

        /* scale: log(s) for log-softmax, 1 / s for softmax. */
        GA_DEVICE_FN float ga_sm_scale(float s, int logMode) { return logMode ? log(s) : 1.0f / s; }

        /* The max (isMax) or sum of v over the `lanes` work-items holding one row; every one of them gets the result.
           lanes is a power of two dividing the group, or the whole group (one row per group). Call uniformly. */
        #if defined(GA_CUDA)
        #define GA_ROW_SCRATCH 32
        GA_DEVICE_FN float ga_row_reduce(float v, float* scratch, int lid, int lanes, int isMax)
        {
            for (int offset = (lanes < 32 ? lanes : 32) >> 1; offset > 0; offset >>= 1)
            {
                const float other = __shfl_xor_sync(0xffffffffu, v, offset);
                v = isMax ? fmax(v, other) : v + other;
            }
            if (lanes <= 32) return v;
            /* Rows of several warps (a multiple of 32 threads): the warps' results meet in shared memory, and every warp
               of a row reduces that row's in the same order, so all its threads agree bit for bit. */
            if ((lid & 31) == 0) scratch[lid >> 5] = v;
            __syncthreads();
            /* The row's first warp: 0 for one row per block (any multiple of 32), else lanes is a power of two. */
            const int firstWarp = lanes >= GA_LOCAL_SIZE(0) ? 0 : (lid & ~(lanes - 1)) >> 5;
            v = (lid & 31) < (lanes >> 5) ? scratch[firstWarp + (lid & 31)] : (isMax ? -GA_INFINITY : 0.0f);
            for (int offset = 16; offset > 0; offset >>= 1)
            {
                const float other = __shfl_xor_sync(0xffffffffu, v, offset);
                v = isMax ? fmax(v, other) : v + other;
            }
            __syncthreads();
            return v;
        }
        #else
        #define GA_ROW_SCRATCH GA_GROUP_SIZE
        GA_DEVICE_FN float ga_row_reduce(float v, LOCAL_PTR float* scratch, int lid, int lanes, int isMax)
        {
            const int lane = lid & (lanes - 1);
            scratch[lid] = v;
            BARRIER();
            for (int width = lanes >> 1; width > 0; width >>= 1)
            {
                if (lane < width)
                    scratch[lid] = isMax ? fmax(scratch[lid], scratch[lid + width]) : scratch[lid] + scratch[lid + width];
                BARRIER();
            }
            v = scratch[lid - lane];
            BARRIER();
            return v;
        }
        #endif

        /* Merges the (m, s) of the `slice` work-items holding one row (this one is `lane` of them) through the local arrays
           and gives every one of them the row's state; the barriers make it safe to call again at once. All work-items of
           the group must call it (uniform control flow). */
        GA_DEVICE_FN void ga_sm_slice_state(float* m, float* s, LOCAL_PTR float* lm, LOCAL_PTR float* ls, int lid, int lane, int slice)
        {
            lm[lid] = *m;
            ls[lid] = *s;
            BARRIER();
            ga_sm_reduce(lm, ls, lid, lane, slice);
            *m = lm[lid - lane];
            *s = ls[lid - lane];
            BARRIER();
        }

        /* The (m, s) of the row's pieces in the scratch, merged by the whole group; every group of the row merges them in
           the same order, so all agree. */
        GA_DEVICE_FN void ga_sm_row_state(GLOBAL const float* rowPartials, ga_index chunks, int stride, LOCAL_PTR float* lm,
                                          LOCAL_PTR float* ls, float* m, float* s)
        {
            const int lid = GA_LOCAL_ID(0);
            float pm = -GA_INFINITY, ps = 0.0f;
            for (ga_index k = lid; k < chunks; k += GA_GROUP_SIZE)
                ga_sm_merge(&pm, &ps, rowPartials[stride * k], rowPartials[stride * k + 1]);
            ga_sm_slice_state(&pm, &ps, lm, ls, lid, lid, GA_GROUP_SIZE);
            *m = pm;
            *s = ps;
        }

        """;

    /// <summary>The forward kernels (after <see cref="Helpers"/>).</summary>
    const string Forward = """
        /* Every forward kernel takes the input options after its shape: z = x * scale + mask (ga_sm_z), and flags
           (GA_SM_LOG, GA_SM_MASK, GA_SM_SAFE). Without GA_SM_MASK the mask pointer is never read. */
        #define GA_SM_OPTIONS float scale, GLOBAL const float* mask, ga_index maskOffset, ga_index maskStride, int flags

        /* Register-resident rows: `lanes` work-items per row, perLane values each (a literal at every call, so the loops
           unroll and v[] lives in registers). Each element is read once and written once, by the same work-item, so
           y may be x. Padding beyond the row is -inf, which adds nothing to the max or the sum. */
        GA_DEVICE_FN void ga_softmax_registers(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL ga_out_t* y, ga_index yOffset,
                                               ga_index rows, ga_index cols, int lanes, GA_SM_OPTIONS, const int perLane,
                                               LOCAL_PTR float* scratch)
        {
            const int lid = GA_LOCAL_ID(0);
            const int lane = lid % lanes;
            const int logMode = flags & GA_SM_LOG;
            const ga_index rowsPerGroup = GA_LOCAL_SIZE(0) / lanes;
            const ga_index rowStep = GA_NUM_GROUPS(0) * rowsPerGroup;
            for (ga_index base = GA_GROUP_ID(0) * rowsPerGroup; base < rows; base += rowStep)
            {
                const ga_index row = base + lid / lanes;
                /* This work-item's columns are lane + k * lanes for k * lanes < remaining (cols <= lanes * perLane fits
                   an int); 32-bit offsets keep the 32 values' addressing out of the register budget. */
                const int remaining = row < rows ? (int)cols - lane : 0;
                const ga_index start = (row < rows ? row * cols : 0) + lane;
                GLOBAL const ga_in_t* xr = x + xOffset + start;
                GLOBAL const float* mr = ga_sm_mask_row(mask, maskOffset + lane, maskStride, row < rows ? row : 0, flags);
                float v[32];
                float m = -GA_INFINITY;
                /* The mask first, so its pointer is dead before x is read (the 32-value form has no register to spare). */
                #pragma unroll
                for (int k = 0; k < perLane; k++) v[k] = mr && k * lanes < remaining ? mr[k * lanes] : 0.0f;
                #pragma unroll
                for (int k = 0; k < perLane; k++) v[k] = k * lanes < remaining ? GA_LOAD_IN(xr, k * lanes) * scale + v[k] : -GA_INFINITY;
                #pragma unroll
                for (int k = 0; k < perLane; k++) m = fmax(m, GA_ISNAN(v[k]) ? GA_INFINITY : v[k]);
                m = ga_row_reduce(m, scratch, lid, lanes, 1);
                const int bad = ga_sm_bad(m, flags);
                float s = 0.0f;
                #pragma unroll
                for (int k = 0; k < perLane; k++)
                {
                    const float e = exp(v[k] - m);
                    s += e;
                    if (!logMode) v[k] = e;
                }
                s = ga_row_reduce(s, scratch, lid, lanes, 0);
                const float norm = ga_sm_scale(s, logMode);
                GLOBAL ga_out_t* yr = y + yOffset + start;
                #pragma unroll
                for (int k = 0; k < perLane; k++)
                {
                    if (k * lanes < remaining) GA_STORE_OUT(yr, k * lanes, bad ? ga_sm_out(0.0f, m, norm, bad, logMode) : logMode ? (v[k] - m) - norm : v[k] * norm);
                }
            }
        }

        #define GA_SOFTMAX_REGISTERS(P) \
        KERNEL GA_MAX_THREADS(1024) void ga_softmax_registers_##P(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL ga_out_t* y, \
            ga_index yOffset, ga_index rows, ga_index cols, int lanes, GA_SM_OPTIONS) \
        { \
            LOCAL float scratch[GA_ROW_SCRATCH]; \
            ga_softmax_registers(x, xOffset, y, yOffset, rows, cols, lanes, scale, mask, maskOffset, maskStride, flags, P, scratch); \
        }
        GA_SOFTMAX_REGISTERS(1)
        GA_SOFTMAX_REGISTERS(2)
        GA_SOFTMAX_REGISTERS(4)
        GA_SOFTMAX_REGISTERS(8)
        GA_SOFTMAX_REGISTERS(16)
        GA_SOFTMAX_REGISTERS(32)

        KERNEL void ga_softmax_rows(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL ga_out_t* y, ga_index yOffset,
                                    ga_index rows, ga_index cols, int slice, GA_SM_OPTIONS)
        {
            LOCAL float lm[GA_GROUP_SIZE];
            LOCAL float ls[GA_GROUP_SIZE];
            const int lid = GA_LOCAL_ID(0);
            const int lane = lid & (slice - 1);
            const int logMode = flags & GA_SM_LOG;
            const ga_index rowsPerGroup = GA_GROUP_SIZE / slice;
            const ga_index rowStep = GA_NUM_GROUPS(0) * rowsPerGroup;
            for (ga_index base = GA_GROUP_ID(0) * rowsPerGroup; base < rows; base += rowStep)
            {
                const ga_index row = base + lid / slice;
                const int active = row < rows;
                GLOBAL const ga_in_t* xr = x + xOffset + (active ? row : 0) * cols;
                GLOBAL ga_out_t* yr = y + yOffset + (active ? row : 0) * cols;
                GLOBAL const float* mr = ga_sm_mask_row(mask, maskOffset, maskStride, active ? row : 0, flags);
                float m = -GA_INFINITY, s = 0.0f;
                for (ga_index j0 = 0; j0 < cols; j0 += slice)
                {
                    const ga_index j = j0 + lane;
                    if (active && j < cols) ga_sm_add(&m, &s, ga_sm_z(GA_LOAD_IN(xr, j), scale, mr, j));
                    GA_LOOP_BARRIER();
                }
                ga_sm_slice_state(&m, &s, lm, ls, lid, lane, slice);
                const int bad = ga_sm_bad(m, flags);
                const float norm = ga_sm_scale(s, logMode);
                for (ga_index j0 = 0; j0 < cols; j0 += slice)
                {
                    const ga_index j = j0 + lane;
                    if (active && j < cols) GA_STORE_OUT(yr, j, ga_sm_out(ga_sm_z(GA_LOAD_IN(xr, j), scale, mr, j), m, norm, bad, logMode));
                    GA_LOOP_BARRIER();
                }
            }
        }

        KERNEL void ga_softmax_partial(GLOBAL const ga_in_t* x, ga_index xOffset, ga_index rows, ga_index cols,
                                       ga_index chunks, ga_index chunkLength, GLOBAL float* partial, GA_SM_OPTIONS)
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
                GLOBAL const ga_in_t* xr = x + xOffset + row * cols;
                GLOBAL const float* mr = ga_sm_mask_row(mask, maskOffset, maskStride, row, flags);
                float m = -GA_INFINITY, s = 0.0f;
                for (ga_index j0 = begin; j0 < end; j0 += GA_GROUP_SIZE)
                {
                    const ga_index j = j0 + lid;
                    if (j < end) ga_sm_add(&m, &s, ga_sm_z(GA_LOAD_IN(xr, j), scale, mr, j));
                    GA_LOOP_BARRIER();
                }
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

        KERNEL void ga_softmax_finish(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL ga_out_t* y, ga_index yOffset,
                                      ga_index rows, ga_index cols, ga_index chunks, ga_index chunkLength,
                                      GLOBAL const float* partial, GA_SM_OPTIONS)
        {
            LOCAL float lm[GA_GROUP_SIZE];
            LOCAL float ls[GA_GROUP_SIZE];
            const int lid = GA_LOCAL_ID(0);
            const int logMode = flags & GA_SM_LOG;
            const ga_index pieces = rows * chunks;
            for (ga_index piece = GA_GROUP_ID(0); piece < pieces; piece += GA_NUM_GROUPS(0))
            {
                const ga_index row = piece / chunks;
                const ga_index begin = (piece - row * chunks) * chunkLength;
                const ga_index end = begin + chunkLength < cols ? begin + chunkLength : cols;
                float m, s;
                ga_sm_row_state(partial + 2 * row * chunks, chunks, 2, lm, ls, &m, &s);
                const int bad = ga_sm_bad(m, flags);
                const float norm = ga_sm_scale(s, logMode);
                GLOBAL const ga_in_t* xr = x + xOffset + row * cols;
                GLOBAL ga_out_t* yr = y + yOffset + row * cols;
                GLOBAL const float* mr = ga_sm_mask_row(mask, maskOffset, maskStride, row, flags);
                for (ga_index j0 = begin; j0 < end; j0 += GA_GROUP_SIZE)
                {
                    const ga_index j = j0 + lid;
                    if (j < end) GA_STORE_OUT(yr, j, ga_sm_out(ga_sm_z(GA_LOAD_IN(xr, j), scale, mr, j), m, norm, bad, logMode));
                    GA_LOOP_BARRIER();
                }
            }
        }

        """;
}
