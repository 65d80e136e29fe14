using System.Runtime.CompilerServices;
using GpuActivations.Cpu;
using ILGPU;

namespace GpuActivations.Kernels;

/// <summary>The scalar arguments of a softmax row launch.</summary>
internal readonly struct SoftmaxRowArgs
{
    /// <summary>Rows and columns of x and y.</summary>
    public readonly long Rows, Cols;
    /// <summary>Elements between two rows' masks (0: one mask row for all).</summary>
    public readonly long MaskStride;
    /// <summary>z = x * scale (+ mask).</summary>
    public readonly float Scale;
    /// <summary>1: log-softmax; 1: a mask is added; 1: fully masked rows give zeros (log: -inf) instead of NaN.</summary>
    public readonly int Log, HasMask, Safe;

    public SoftmaxRowArgs(long rows, long cols, long maskStride, float scale, bool log, bool hasMask, bool safe)
    {
        Rows = rows; Cols = cols; MaskStride = maskStride; Scale = scale;
        Log = log ? 1 : 0; HasMask = hasMask ? 1 : 0; Safe = safe ? 1 : 0;
    }
}

/// <summary>
/// The split plan's arguments (<see cref="SoftmaxPlan"/>): each row cut into <see cref="Segments"/> segments of
/// <see cref="Length"/> columns (the last may be shorter), one group per segment, <see cref="Parts"/> segments in all.
/// </summary>
internal readonly struct SoftmaxSplitArgs
{
    /// <summary>Segments per row, columns per segment, and rows x segments (the partials of each kind).</summary>
    public readonly long Segments, Length, Parts;

    /// <summary>The floats of scratch one segment's partials take: max (hi, lo), state, ones, rest, error.</summary>
    public const int FloatsPerPart = 6;

    public SoftmaxSplitArgs(long rows, long segments, long length)
    {
        Segments = segments; Length = length; Parts = rows * segments;
    }
}

/// <summary>
/// A reduction across the threads that share a row: every thread passes its part and gets the whole (the same bits in
/// every thread). <see cref="GroupReducer"/> reduces a group through shared memory; <see cref="WarpReducer"/> a warp
/// through shuffles. Both combine in the same pairs with the same arithmetic (<see cref="SoftmaxKernels.GroupSum"/>).
/// </summary>
internal interface IRowReducer
{
    /// <summary>
    /// The max of (v, lo) pairs, by v and then lo (<see cref="SoftmaxKernels.Above"/>; NaN never wins: callers flag NaN
    /// separately), and the winner's lo as <paramref name="maxLo"/>.
    /// </summary>
    float Max(float v, float lo, out float maxLo);

    /// <summary>The bitwise or.</summary>
    int Or(int v);

    /// <summary>The compensated sum of (sum, error) pairs: combined by two-sum, the errors added up.</summary>
    float Sum(float sum, float error, out float totalError);
}

/// <summary>A group's reductions through shared memory (portable: CUDA, OpenCL, the CPU accelerator at any warp size).</summary>
internal readonly struct GroupReducer : IRowReducer
{
    readonly ArrayView<float> floats, errors;
    readonly ArrayView<int> flags;

    /// <summary>Over shared arrays of at least the group's size.</summary>
    public GroupReducer(ArrayView<float> floats, ArrayView<float> errors, ArrayView<int> flags)
    {
        this.floats = floats; this.errors = errors; this.flags = flags;
    }

    public float Max(float v, float lo, out float maxLo) => SoftmaxKernels.GroupMax(v, lo, floats, errors, out maxLo);

    public int Or(int v) => SoftmaxKernels.GroupOr(v, flags);

    public float Sum(float sum, float error, out float totalError) => SoftmaxKernels.GroupSum(sum, error, floats, errors, out totalError);
}

/// <summary>
/// A warp's reductions through shuffles (CUDA, and the CPU accelerator, which emulates them; ILGPU's OpenCL backend has
/// shuffles for Intel only). A butterfly over <see cref="Warp.WarpSize"/> lanes, whatever it is: lane t meets lane
/// t ^ s for s = size / 2 .. 1, the pairs of <see cref="SoftmaxKernels.GroupSum"/>'s tree, and each pair's arithmetic is
/// symmetric (a + b, the exact two-sum error, (e_a + e_b) + error), so every lane ends with the same bits.
/// </summary>
internal readonly struct WarpReducer : IRowReducer
{
    public float Max(float v, float lo, out float maxLo)
    {
        for (int lanes = Warp.WarpSize / 2; lanes > 0; lanes >>= 1)
        {
            float other = Warp.ShuffleXor(v, lanes), otherLo = Warp.ShuffleXor(lo, lanes);
            if (SoftmaxKernels.Above(other, otherLo, v, lo)) { v = other; lo = otherLo; }
        }
        maxLo = lo;
        return v;
    }

    public int Or(int v)
    {
        for (int lanes = Warp.WarpSize / 2; lanes > 0; lanes >>= 1) v |= Warp.ShuffleXor(v, lanes);
        return v;
    }

    public float Sum(float sum, float error, out float totalError)
    {
        for (int lanes = Warp.WarpSize / 2; lanes > 0; lanes >>= 1)
        {
            float otherSum = Warp.ShuffleXor(sum, lanes), otherError = Warp.ShuffleXor(error, lanes);
            sum = SoftmaxKernels.TwoSum(sum, otherSum, out float rounding);
            error = (error + otherError) + rounding;
        }
        totalError = error;
        return sum;
    }
}

/// <summary>
/// Row-wise softmax and log-softmax as ILGPU kernels, one kernel shape per plan (<see cref="SoftmaxPlan"/>): a warp per
/// row (<see cref="WarpRows{TFma, TIn, TInStorage, TOut, TOutStorage}"/>, shuffles), a group per row
/// (<see cref="Rows{TFma, TIn, TInStorage, TOut, TOutStorage}"/>, shared memory, portable), and long rows split across
/// groups in three launches (<see cref="SplitMax{TFma, TIn, TInStorage}"/>, <see cref="SplitSum{TFma, TIn, TInStorage}"/>,
/// <see cref="SplitWrite{TFma, TIn, TInStorage, TOut, TOutStorage}"/>). Every plan makes the same three passes over a
/// row with the same per-element arithmetic: the max, the sum of e^(z - max), the write.
/// <para>
/// Accuracy: z = x * scale + mask is formed exactly (the product's error by fma, the sum's by two-sum) as z + zLo, the
/// max is the largest z + zLo (m + mLo, so the max's own term is exactly 1), and z - max is carried exactly as hi + lo
/// (Knuth's two-sum) into the exponential, so an element far below the max does not inherit the rounding of the
/// difference. The sum is compensated: every addition's error is collected by two-sum (exact in any
/// order of magnitudes, unlike Kahan's, which loses the small terms met before the max's 1), within a thread and when
/// threads, warps or segments combine. Log-softmax's log of the sum is log1p of the sum of the non-max terms, the max's
/// own 1 counted apart (<see cref="AccumulateTerm{TFma}"/>): where one logit dominates, the result near 0 keeps its digits.
/// </para>
/// Semantics as on the CPU: NaN or +inf in a row makes the row NaN; a row of only -inf is NaN, or zeros (log: -inf) when
/// safe. y may be x (in place): every element is read in the last pass before it is written, by the same thread.
/// </summary>
internal static class SoftmaxKernels
{
    /// <summary>The largest group the kernels' shared arrays hold.</summary>
    public const int MaxGroupSize = 1024;

    /// <summary>A row's state bits (pass 1): bit 0 a NaN or +inf, bit 1 some z above -inf. Only this value computes.</summary>
    const int Usable = 2;

    /// <summary>
    /// z = x * scale + mask of element <paramref name="j"/> of row <paramref name="row"/>, as z + <paramref name="zLo"/>
    /// exactly (the product's error by fma, the sum's by two-sum); <paramref name="zLo"/> is 0 where z is not finite.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Z<TFma, TIn, TInStorage>(ArrayView<TIn> x, ArrayView<float> mask, in SoftmaxRowArgs a, long row, long j, out float zLo)
        where TFma : struct, IFusedMultiplyAdd where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
    {
        float v = TInStorage.Load(x[row * a.Cols + j]);
        float p = v * a.Scale;
        float pLo = TFma.Fma(v, a.Scale, -p);
        float z = p;
        zLo = 0f;
        if (a.HasMask != 0) z = TwoSum(p, mask[row * a.MaskStride + j], out zLo);
        zLo += pLo;
        if (!(z > float.NegativeInfinity && z < float.PositiveInfinity)) zLo = 0f;
        return z;
    }

    /// <summary>a + b = sum + error exactly (Knuth's two-sum, any magnitudes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float TwoSum(float a, float b, out float error)
    {
        float sum = a + b;
        float bv = sum - a;
        error = (a - (sum - bv)) + (b - bv);
        return sum;
    }

    /// <summary>sum += term with the rounding error collected in <paramref name="error"/> (two-sum: exact whatever the order of magnitudes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Accumulate(ref float sum, ref float error, float term)
    {
        sum = TwoSum(sum, term, out float e);
        error += e;
    }

    /// <summary>A compensated sum's value: sum + error, or the sum alone where an infinite term made it infinite (the error is NaN then).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Combine(float sum, float error) => sum > float.NegativeInfinity && sum < float.PositiveInfinity ? sum + error : sum;

    /// <summary>
    /// hi + lo = (z + zLo) - (m + mLo): z - m exactly (two-sum), plus zLo - mLo; lo is 0 where the difference is infinite
    /// (z infinite, or z - m overflowing: -FLT_MAX - FLT_MAX), which then decides alone. The max's own difference is
    /// exactly 0 (its term exactly 1): measuring from m alone would leave the max's term e^mLo, whose log1p in float
    /// cancels against mLo and loses a dominant logit's log-softmax (-6.8e-16 came out 0 with a scale and a mask).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Difference(float z, float zLo, float m, float mLo, out float lo)
    {
        float hi = TwoSum(z, -m, out lo);
        lo += zLo - mLo;
        if (!(hi > float.NegativeInfinity && hi < float.PositiveInfinity)) lo = 0f;
        return hi;
    }

    /// <summary>
    /// Adds e^(hi + lo) to a row's sum, kept as a count of ones and a compensated sum of the rest. A max's own term
    /// (hi = 0) counts as 1 with e^lo - 1 added to the rest: lo (the rounding of z = x * scale + mask) can be far larger
    /// than the other terms, whose sum log-softmax takes log1p of. Keeping the ones apart also keeps the rest's
    /// compensation in proportion to the rest: added to 1, every small term would be all rounding error, and the error
    /// term a plain float sum of them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void AccumulateTerm<TFma>(ref float ones, ref float rest, ref float error, float hi, float lo) where TFma : struct, IFusedMultiplyAdd
    {
        if (hi == 0f)
        {
            ones += 1f;
            Accumulate(ref rest, ref error, VectorMath.Expm1(new ScalarLane<TFma>(lo)).Value);
        }
        else
        {
            Accumulate(ref rest, ref error, Exp<TFma>(hi, lo));
        }
    }

    /// <summary>
    /// Combines the threads' parts of <see cref="AccumulateTerm{TFma}"/> across <paramref name="reduce"/>: the rest's
    /// compensated sum (<paramref name="error"/> becomes its whole error) and the count of ones.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ReduceParts<TReducer>(ref float ones, ref float rest, ref float error, TReducer reduce) where TReducer : struct, IRowReducer
    {
        rest = reduce.Sum(rest, error, out error);
        ones = reduce.Sum(ones, 0f, out _);
    }

    /// <summary>
    /// The row sum from <see cref="AccumulateTerm{TFma}"/>'s parts, combined across <paramref name="reduce"/>: the whole
    /// sum, and t = sum - 1 as <paramref name="excess"/> (what log1p takes: the max's own 1 removed exactly). Both are
    /// rounded once (two-sum of the ones and the rest, their error and the rest's added below it): rounding ones + rest
    /// before adding the error cost softmax a third ulp in the division (measured, 200 rows of 17 logits).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float RowSum<TReducer>(float ones, float rest, float error, TReducer reduce, out float excess) where TReducer : struct, IRowReducer
    {
        ReduceParts(ref ones, ref rest, ref error, reduce);
        float hi = TwoSum(ones - 1f, rest, out float lo);
        excess = hi + (lo + error);
        float sum = TwoSum(ones, rest, out float sumLo);
        return Combine(sum, sumLo + error);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Exp<TFma>(float hi, float lo) where TFma : struct, IFusedMultiplyAdd
        => VectorMath.Exp(new ScalarLane<TFma>(hi), new ScalarLane<TFma>(lo)).Value;

    /// <summary>Whether (v, vLo) is above (m, mLo): by v, then by lo (NaN never is).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool Above(float v, float vLo, float m, float mLo) => v > m || (v == m && vLo > mLo);

    /// <summary>The group's max of (v, lo) pairs (<see cref="Above"/>) and the winner's lo.</summary>
    internal static float GroupMax(float v, float lo, ArrayView<float> shared, ArrayView<float> los, out float maxLo)
    {
        int t = Group.IdxX;
        shared[t] = v;
        los[t] = lo;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s && Above(shared[t + s], los[t + s], shared[t], los[t]))
            {
                shared[t] = shared[t + s];
                los[t] = los[t + s];
            }
            Group.Barrier();
        }
        float result = shared[0];
        maxLo = los[0];
        Group.Barrier();
        return result;
    }

    /// <summary>The group's bitwise or of <paramref name="v"/>.</summary>
    internal static int GroupOr(int v, ArrayView<int> shared)
    {
        int t = Group.IdxX;
        shared[t] = v;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s) shared[t] |= shared[t + s];
            Group.Barrier();
        }
        int result = shared[0];
        Group.Barrier();
        return result;
    }

    /// <summary>
    /// The group's compensated sum: (sum, error) pairs combined by two-sum, the errors added up as (e_a + e_b) + rounding,
    /// the arithmetic <see cref="WarpReducer.Sum"/> does in the same pairs.
    /// </summary>
    internal static float GroupSum(float sum, float error, ArrayView<float> sums, ArrayView<float> errors, out float totalError)
    {
        int t = Group.IdxX;
        sums[t] = sum;
        errors[t] = error;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s)
            {
                sums[t] = TwoSum(sums[t], sums[t + s], out float rounding);
                errors[t] = (errors[t] + errors[t + s]) + rounding;
            }
            Group.Barrier();
        }
        float result = sums[0];
        totalError = errors[0];
        Group.Barrier();
        return result;
    }

    // ----- The passes, over the elements j, j + step, ... below end of one row (a whole row, or a split plan's segment) -----

    /// <summary>
    /// Pass 1: this thread's max of z + zLo (as m + <paramref name="mLo"/>, <see cref="Above"/>) and its state bits
    /// (<see cref="Usable"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float ScanMax<TFma, TIn, TInStorage>(ArrayView<TIn> x, ArrayView<float> mask, in SoftmaxRowArgs a, long row, long j, long end, int step,
        out float mLo, out int state)
        where TFma : struct, IFusedMultiplyAdd where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
    {
        float m = float.NegativeInfinity;
        mLo = 0f;
        state = 0;
        for (; j < end; j += step)
        {
            float z = Z<TFma, TIn, TInStorage>(x, mask, a, row, j, out float zLo);
            if (Above(z, zLo, m, mLo)) { m = z; mLo = zLo; }
            if (!(z < float.PositiveInfinity)) state |= 1;
            if (z != float.NegativeInfinity) state |= 2;
        }
        return m;
    }

    /// <summary>Pass 2: this thread's compensated sum of e^(z - m) (<see cref="AccumulateTerm{TFma}"/>); the max's term is exactly 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ScanSum<TFma, TIn, TInStorage>(ArrayView<TIn> x, ArrayView<float> mask, in SoftmaxRowArgs a, long row, long j, long end, int step, float m,
        float mLo, ref float ones, ref float rest, ref float error)
        where TFma : struct, IFusedMultiplyAdd where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
    {
        for (; j < end; j += step)
        {
            float z = Z<TFma, TIn, TInStorage>(x, mask, a, row, j, out float zLo);
            float hi = Difference(z, zLo, m, mLo, out float lo);
            AccumulateTerm<TFma>(ref ones, ref rest, ref error, hi, lo);
        }
    }

    /// <summary>Pass 3: the write, from the row's max, state and sum (<see cref="RowSum{TReducer}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Write<TFma, TIn, TInStorage, TOut, TOutStorage>(ArrayView<TIn> x, ArrayView<TOut> y, ArrayView<float> mask, in SoftmaxRowArgs a,
        long row, long j, long end, int step, float m, float mLo, int state, float total, float excess)
        where TFma : struct, IFusedMultiplyAdd
        where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
        where TOut : unmanaged where TOutStorage : struct, IStorage<TOut>
    {
        // log(total) = log1p(total - 1), the max's own 1 taken out exactly.
        float logSum = VectorMath.Log1pNonNegative(new ScalarLane<TFma>(excess)).Value;
        float fill = (state & 2) == 0 && a.Safe != 0 ? (a.Log != 0 ? float.NegativeInfinity : 0f) : float.NaN;
        for (; j < end; j += step)
        {
            float value;
            if (state != Usable) value = fill;
            else
            {
                float z = Z<TFma, TIn, TInStorage>(x, mask, a, row, j, out float zLo);
                float hi = Difference(z, zLo, m, mLo, out float lo);
                value = a.Log != 0 ? (hi - logSum) + lo : Exp<TFma>(hi, lo) / total;
            }
            y[row * a.Cols + j] = TOutStorage.Store(value);
        }
    }

    /// <summary>One whole row by the threads that <paramref name="reduce"/> spans: thread <paramref name="lane"/> of <paramref name="step"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Row<TFma, TIn, TInStorage, TOut, TOutStorage, TReducer>(ArrayView<TIn> x, ArrayView<TOut> y, ArrayView<float> mask, in SoftmaxRowArgs a,
        long row, int lane, int step, TReducer reduce)
        where TFma : struct, IFusedMultiplyAdd
        where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
        where TOut : unmanaged where TOutStorage : struct, IStorage<TOut>
        where TReducer : struct, IRowReducer
    {
        float m = ScanMax<TFma, TIn, TInStorage>(x, mask, a, row, lane, a.Cols, step, out float mLo, out int state);
        m = reduce.Max(m, mLo, out mLo);
        state = reduce.Or(state);
        float ones = 0f, rest = 0f, error = 0f;
        if (state == Usable) ScanSum<TFma, TIn, TInStorage>(x, mask, a, row, lane, a.Cols, step, m, mLo, ref ones, ref rest, ref error);
        float total = RowSum(ones, rest, error, reduce, out float excess);
        Write<TFma, TIn, TInStorage, TOut, TOutStorage>(x, y, mask, a, row, lane, a.Cols, step, m, mLo, state, total, excess);
    }

    // ----- The kernels -----

    /// <summary>Softmax or log-softmax of each row of x into y, a group per row (grid-stride over rows; the group size a power of two).</summary>
    public static void Rows<TFma, TIn, TInStorage, TOut, TOutStorage>(ArrayView<TIn> x, ArrayView<TOut> y, ArrayView<float> mask, SoftmaxRowArgs a)
        where TFma : struct, IFusedMultiplyAdd
        where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
        where TOut : unmanaged where TOutStorage : struct, IStorage<TOut>
    {
        var reduce = new GroupReducer(SharedMemory.Allocate<float>(MaxGroupSize), SharedMemory.Allocate<float>(MaxGroupSize), SharedMemory.Allocate<int>(MaxGroupSize));
        for (long row = Grid.IdxX; row < a.Rows; row += Grid.DimX)
            Row<TFma, TIn, TInStorage, TOut, TOutStorage, GroupReducer>(x, y, mask, a, row, Group.IdxX, Group.DimX, reduce);
    }

    /// <summary>
    /// Softmax or log-softmax of each row of x into y, a warp per row (grid-stride over rows, the group's warps on
    /// consecutive rows): no barriers and no shared memory, the reductions by shuffles at the device's warp size.
    /// </summary>
    public static void WarpRows<TFma, TIn, TInStorage, TOut, TOutStorage>(ArrayView<TIn> x, ArrayView<TOut> y, ArrayView<float> mask, SoftmaxRowArgs a)
        where TFma : struct, IFusedMultiplyAdd
        where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
        where TOut : unmanaged where TOutStorage : struct, IStorage<TOut>
    {
        int warps = Group.DimX / Warp.WarpSize;
        for (long row = (long)Grid.IdxX * warps + Warp.WarpIdx; row < a.Rows; row += (long)Grid.DimX * warps)
            Row<TFma, TIn, TInStorage, TOut, TOutStorage, WarpReducer>(x, y, mask, a, row, Warp.LaneIdx, Warp.WarpSize, default);
    }

    /// <summary>The row and column range of split part <paramref name="part"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static long Segment(in SoftmaxRowArgs a, in SoftmaxSplitArgs s, long part, out long begin, out long end)
    {
        long row = part / s.Segments;
        begin = (part - row * s.Segments) * s.Length;
        end = begin + s.Length < a.Cols ? begin + s.Length : a.Cols;
        return row;
    }

    /// <summary>
    /// The row's max and state from its segments' partials (<see cref="SplitMax{TFma, TIn, TInStorage}"/>): exact in any
    /// order, so every group of the row gets the same.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float PartialMax(ArrayView<float> partials, in SoftmaxSplitArgs s, long row, GroupReducer reduce, out float mLo, out int state)
    {
        float m = float.NegativeInfinity;
        mLo = 0f;
        state = 0;
        for (long k = row * s.Segments + Group.IdxX; k < (row + 1) * s.Segments; k += Group.DimX)
        {
            float v = partials[k], vLo = partials[s.Parts + k];
            if (Above(v, vLo, m, mLo)) { m = v; mLo = vLo; }
            state |= (int)partials[2 * s.Parts + k];
        }
        state = reduce.Or(state);
        return reduce.Max(m, mLo, out mLo);
    }

    /// <summary>Split plan, launch 1 of 3: each group's segment max and state bits into the partials.</summary>
    public static void SplitMax<TFma, TIn, TInStorage>(ArrayView<TIn> x, ArrayView<float> mask, ArrayView<float> partials, SoftmaxRowArgs a, SoftmaxSplitArgs s)
        where TFma : struct, IFusedMultiplyAdd where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
    {
        var reduce = new GroupReducer(SharedMemory.Allocate<float>(MaxGroupSize), SharedMemory.Allocate<float>(MaxGroupSize), SharedMemory.Allocate<int>(MaxGroupSize));
        for (long part = Grid.IdxX; part < s.Parts; part += Grid.DimX)
        {
            long row = Segment(a, s, part, out long begin, out long end);
            float m = ScanMax<TFma, TIn, TInStorage>(x, mask, a, row, begin + Group.IdxX, end, Group.DimX, out float mLo, out int state);
            m = reduce.Max(m, mLo, out mLo);
            state = reduce.Or(state);
            if (Group.IdxX == 0)
            {
                partials[part] = m;
                partials[s.Parts + part] = mLo;
                partials[2 * s.Parts + part] = state;
            }
        }
    }

    /// <summary>
    /// Split plan, launch 2 of 3: the row's max from the partials, then each group's segment sum of e^(z - max) as
    /// (ones, rest, error) into the partials, reduced within the group as <see cref="RowSum{TReducer}"/> does.
    /// </summary>
    public static void SplitSum<TFma, TIn, TInStorage>(ArrayView<TIn> x, ArrayView<float> mask, ArrayView<float> partials, SoftmaxRowArgs a, SoftmaxSplitArgs s)
        where TFma : struct, IFusedMultiplyAdd where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
    {
        var reduce = new GroupReducer(SharedMemory.Allocate<float>(MaxGroupSize), SharedMemory.Allocate<float>(MaxGroupSize), SharedMemory.Allocate<int>(MaxGroupSize));
        for (long part = Grid.IdxX; part < s.Parts; part += Grid.DimX)
        {
            long row = Segment(a, s, part, out long begin, out long end);
            float m = PartialMax(partials, s, row, reduce, out float mLo, out int state);
            float ones = 0f, rest = 0f, error = 0f;
            if (state == Usable) ScanSum<TFma, TIn, TInStorage>(x, mask, a, row, begin + Group.IdxX, end, Group.DimX, m, mLo, ref ones, ref rest, ref error);
            ReduceParts(ref ones, ref rest, ref error, reduce);
            if (Group.IdxX == 0)
            {
                partials[3 * s.Parts + part] = ones;
                partials[4 * s.Parts + part] = rest;
                partials[5 * s.Parts + part] = error;
            }
        }
    }

    /// <summary>
    /// Split plan, launch 3 of 3: the row's max and sum from the partials (every group of a row folds them in the same
    /// order, so all get the same bits: each thread two-sums its strided share, then <see cref="RowSum{TReducer}"/>),
    /// then the group's segment is written.
    /// </summary>
    public static void SplitWrite<TFma, TIn, TInStorage, TOut, TOutStorage>(ArrayView<TIn> x, ArrayView<TOut> y, ArrayView<float> mask, ArrayView<float> partials,
        SoftmaxRowArgs a, SoftmaxSplitArgs s)
        where TFma : struct, IFusedMultiplyAdd
        where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
        where TOut : unmanaged where TOutStorage : struct, IStorage<TOut>
    {
        var reduce = new GroupReducer(SharedMemory.Allocate<float>(MaxGroupSize), SharedMemory.Allocate<float>(MaxGroupSize), SharedMemory.Allocate<int>(MaxGroupSize));
        for (long part = Grid.IdxX; part < s.Parts; part += Grid.DimX)
        {
            long row = Segment(a, s, part, out long begin, out long end);
            float m = PartialMax(partials, s, row, reduce, out float mLo, out int state);
            float ones = 0f, rest = 0f, error = 0f;
            for (long k = row * s.Segments + Group.IdxX; k < (row + 1) * s.Segments; k += Group.DimX)
            {
                ones += partials[3 * s.Parts + k];
                Accumulate(ref rest, ref error, partials[4 * s.Parts + k]);
                error += partials[5 * s.Parts + k];
            }
            float total = RowSum(ones, rest, error, reduce, out float excess);
            Write<TFma, TIn, TInStorage, TOut, TOutStorage>(x, y, mask, a, row, begin + Group.IdxX, end, Group.DimX, m, mLo, state, total, excess);
        }
    }
}

/// <summary>
/// Softmax and log-softmax backward as ILGPU kernels, a group per row or a warp per row (as <see cref="SoftmaxPlan"/>
/// chooses; a split of long rows is not built for it): s = the row's sum of y dy (softmax) or of dy (log-softmax),
/// compensated as in <see cref="SoftmaxKernels"/>, then dx = y (dy - s) or dx = dy - e^y s. dx may be y or dy: both are
/// read before dx is written, by the same thread.
/// </summary>
internal static class SoftmaxBackwardKernels
{
    /// <summary>One row by the threads <paramref name="reduce"/> spans: thread <paramref name="lane"/> of <paramref name="step"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Row<TFma, T, TStorage, TReducer>(ArrayView<T> y, ArrayView<T> dy, ArrayView<T> dx, long row, long cols, int log, int lane, int step, TReducer reduce)
        where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T> where TReducer : struct, IRowReducer
    {
        long o = row * cols;
        float sum = 0f, error = 0f;
        for (long j = lane; j < cols; j += step)
        {
            float g = TStorage.Load(dy[o + j]);
            if (log != 0) SoftmaxKernels.Accumulate(ref sum, ref error, g);
            else
            {
                // y dy exactly as hi + lo (fma), both parts summed.
                float v = TStorage.Load(y[o + j]), p = v * g;
                SoftmaxKernels.Accumulate(ref sum, ref error, p);
                error += TFma.Fma(v, g, -p);
            }
        }
        sum = reduce.Sum(sum, error, out float totalError);
        float s = SoftmaxKernels.Combine(sum, totalError);
        for (long j = lane; j < cols; j += step)
        {
            float v = TStorage.Load(y[o + j]), g = TStorage.Load(dy[o + j]);
            float result = log != 0
                ? g - VectorMath.Exp(new ScalarLane<TFma>(v)).Value * s
                : v * (g - s);
            dx[o + j] = TStorage.Store(result);
        }
    }

    /// <summary>dx of each row (rows x cols; log: log-softmax), a group per row.</summary>
    public static void Rows<TFma, T, TStorage>(ArrayView<T> y, ArrayView<T> dy, ArrayView<T> dx, long rows, long cols, int log)
        where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        // No flags: the backward reduces sums only.
        var reduce = new GroupReducer(SharedMemory.Allocate<float>(SoftmaxKernels.MaxGroupSize), SharedMemory.Allocate<float>(SoftmaxKernels.MaxGroupSize), default);
        for (long row = Grid.IdxX; row < rows; row += Grid.DimX)
            Row<TFma, T, TStorage, GroupReducer>(y, dy, dx, row, cols, log, Group.IdxX, Group.DimX, reduce);
    }

    /// <summary>dx of each row (rows x cols; log: log-softmax), a warp per row (as <see cref="SoftmaxKernels.WarpRows{TFma, TIn, TInStorage, TOut, TOutStorage}"/>).</summary>
    public static void WarpRows<TFma, T, TStorage>(ArrayView<T> y, ArrayView<T> dy, ArrayView<T> dx, long rows, long cols, int log)
        where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        int warps = Group.DimX / Warp.WarpSize;
        for (long row = (long)Grid.IdxX * warps + Warp.WarpIdx; row < rows; row += (long)Grid.DimX * warps)
            Row<TFma, T, TStorage, WarpReducer>(y, dy, dx, row, cols, log, Warp.LaneIdx, Warp.WarpSize, default);
    }
}

/// <summary>The scalar arguments of a cross-entropy launch (<see cref="CrossEntropyOptions"/>).</summary>
internal readonly struct CrossEntropyArgs
{
    /// <summary>Rows and classes.</summary>
    public readonly long Rows, Cols;
    /// <summary>The target that marks a row ignored.</summary>
    public readonly int IgnoreIndex;
    /// <summary>1 when the gradient is written.</summary>
    public readonly int HasGradient;
    /// <summary>Label smoothing and the gradient's scale.</summary>
    public readonly float Smoothing, GradientScale;

    public CrossEntropyArgs(long rows, long cols, CrossEntropyOptions options, bool hasGradient)
    {
        Rows = rows; Cols = cols; IgnoreIndex = options.IgnoreIndex; HasGradient = hasGradient ? 1 : 0;
        Smoothing = options.LabelSmoothing; GradientScale = options.GradientScale;
    }
}

/// <summary>
/// Cross-entropy from logits as ILGPU kernels, loss and gradient in one launch, a group per row
/// (<see cref="Rows{TFma, T, TStorage}"/>) or, for short rows where <see cref="SoftmaxPlan"/> takes a warp per row, a
/// warp per row (<see cref="WarpRows{TFma, T, TStorage}"/>, shuffles, no barriers): the same per-element arithmetic and
/// the same reduction pairs (<see cref="IRowReducer"/>).
/// loss = log sum e^(z - m) + (1 - eps)(m - z_t) + eps (m - mean z), dz = scale (softmax(z) - eps / C - (1 - eps) [j = t]).
/// The logits' sum for smoothing is taken scaled by 2^-24 (exact), so logits near ±FLT_MAX cannot overflow it. An ignored
/// row gives loss 0 and a zero gradient; a target outside [0, C), or a row with NaN, +inf or only -inf, gives NaN.
/// The gradient may overwrite the logits: each thread reads and writes only its own elements (z_t too: its thread writes
/// the loss), and every read of a pass comes before the reductions that precede the writes.
/// </summary>
internal static class CrossEntropyKernels
{
    const float Down = 5.9604644775390625e-8f, Up = 16777216f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Add(ref float sum, ref float error, float term) => SoftmaxKernels.Accumulate(ref sum, ref error, term);

    /// <summary>Row <paramref name="row"/>'s loss (by the thread that reads z_t) and gradient, by the threads <paramref name="reduce"/> spans: thread <paramref name="t"/> of <paramref name="step"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Row<TFma, T, TStorage, TReducer>(ArrayView<T> logits, ArrayView<int> targets, ArrayView<float> losses, ArrayView<T> gradient, in CrossEntropyArgs a,
        long row, int t, int step, TReducer reduce)
        where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T> where TReducer : struct, IRowReducer
    {
        long o = row * a.Cols;
        int target = targets[row];
        bool ignored = target == a.IgnoreIndex;
        bool outOfRange = target < 0 || target >= a.Cols;

        // Pass 1: max, NaN/+inf (bit 0), anything above -inf (bit 1), the scaled logit sum and z_t.
        float m = float.NegativeInfinity, sumZ = 0f, errorZ = 0f, zt = 0f;
        int state = 0;
        if (!ignored)
        {
            for (long j = t; j < a.Cols; j += step)
            {
                float z = TStorage.Load(logits[o + j]);
                if (z > m) m = z;
                if (!(z < float.PositiveInfinity)) state |= 1;
                if (z != float.NegativeInfinity) state |= 2;
                if (a.Smoothing > 0f) Add(ref sumZ, ref errorZ, z * Down);
                if (j == target) zt = z;
            }
        }
        m = reduce.Max(m, 0f, out _);
        state = reduce.Or(state);
        sumZ = reduce.Sum(sumZ, errorZ, out float sumZError);
        bool bad = !ignored && (outOfRange || (state & 1) != 0 || (state & 2) == 0);

        // Pass 2: the compensated sum of e^(z - m).
        float ones = 0f, rest = 0f, error = 0f;
        if (!ignored && !bad)
        {
            for (long j = t; j < a.Cols; j += step)
            {
                // z - m exactly (hi + lo): rounding it first would cost up to 64 ulp in the terms far below the max.
                float hi = SoftmaxKernels.TwoSum(TStorage.Load(logits[o + j]), -m, out float lo);
                SoftmaxKernels.AccumulateTerm<TFma>(ref ones, ref rest, ref error, hi, hi > float.NegativeInfinity && hi < float.PositiveInfinity ? lo : 0f);
            }
        }
        float total = SoftmaxKernels.RowSum(ones, rest, error, reduce, out float excess);

        // The loss is written by the thread that read z_t (every thread holds the reduced max and sums): no thread reads
        // an element another writes. A warp's shuffles order its lanes' execution but not their memory, so lane 0
        // reading z_t while its owner writes the gradient over it (in place) would race on a GPU.
        int writer = ignored || outOfRange ? 0 : (int)(target % step);
        if (t == writer)
        {
            float logSum = VectorMath.Log1pNonNegative(new ScalarLane<TFma>(excess)).Value;
            float loss = logSum;
            if (a.Smoothing < 1f) loss += (1f - a.Smoothing) * (m - zt);
            if (a.Smoothing > 0f) loss += a.Smoothing * (m - SoftmaxKernels.Combine(sumZ, sumZError) * (Up / a.Cols));
            losses[row] = ignored ? 0f : bad ? float.NaN : loss;
        }
        if (a.HasGradient == 0) return;

        // Pass 3: the gradient (after the reductions above, so it may overwrite the logits).
        float scaleOverSum = a.GradientScale / total, offset = a.GradientScale * a.Smoothing / a.Cols;
        float targetTerm = a.GradientScale * (1f - a.Smoothing);
        for (long j = t; j < a.Cols; j += step)
        {
            float g;
            if (ignored) g = 0f;
            else if (bad) g = float.NaN;
            else
            {
                float hi = SoftmaxKernels.TwoSum(TStorage.Load(logits[o + j]), -m, out float lo);
                g = SoftmaxKernels.Exp<TFma>(hi, hi > float.NegativeInfinity && hi < float.PositiveInfinity ? lo : 0f) * scaleOverSum - offset;
                if (j == target) g -= targetTerm;
            }
            gradient[o + j] = TStorage.Store(g);
        }
    }

    /// <summary>Losses (and, with <see cref="CrossEntropyArgs.HasGradient"/>, gradients) of every row, a group per row.</summary>
    public static void Rows<TFma, T, TStorage>(ArrayView<T> logits, ArrayView<int> targets, ArrayView<float> losses, ArrayView<T> gradient, CrossEntropyArgs a)
        where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        var reduce = new GroupReducer(SharedMemory.Allocate<float>(SoftmaxKernels.MaxGroupSize), SharedMemory.Allocate<float>(SoftmaxKernels.MaxGroupSize),
            SharedMemory.Allocate<int>(SoftmaxKernels.MaxGroupSize));
        for (long row = Grid.IdxX; row < a.Rows; row += Grid.DimX)
            Row<TFma, T, TStorage, GroupReducer>(logits, targets, losses, gradient, a, row, Group.IdxX, Group.DimX, reduce);
    }

    /// <summary>
    /// Losses (and gradients) of every row, a warp per row (grid-stride over rows, the group's warps on consecutive
    /// rows; as <see cref="SoftmaxKernels.WarpRows{TFma, TIn, TInStorage, TOut, TOutStorage}"/>).
    /// </summary>
    public static void WarpRows<TFma, T, TStorage>(ArrayView<T> logits, ArrayView<int> targets, ArrayView<float> losses, ArrayView<T> gradient, CrossEntropyArgs a)
        where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        int warps = Group.DimX / Warp.WarpSize;
        for (long row = (long)Grid.IdxX * warps + Warp.WarpIdx; row < a.Rows; row += (long)Grid.DimX * warps)
            Row<TFma, T, TStorage, WarpReducer>(logits, targets, losses, gradient, a, row, Warp.LaneIdx, Warp.WarpSize, default);
    }
}
