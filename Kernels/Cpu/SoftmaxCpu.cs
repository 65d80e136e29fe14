using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace GpuActivations.Cpu;

/// <summary>
/// Row-wise softmax and log-softmax on the CPU, max-subtracted, over z = x * scale + mask (applied as x is read). Per row
/// (or per slice of a long row, <see cref="RowDriver"/>): pass 1 finds the max m and sums e^(z - m), z - m carried exactly
/// into the exponential and the sum kept in double (softmax stores those exponentials in y); pass 2 scales y by 1/sum
/// (log-softmax: y = (z - m) - ln sum, ln sum as log1p of the terms other than the max's exact 1). Slices' (m_i, s_i) combine as
/// M = max m_i, S = sum s_i e^(m_i - M), and each slice scales by e^(m_i - M) / S.
/// NaN or +inf in a row, or a row of only -inf, makes the row's sum NaN, so the whole row is NaN; a row of only -inf
/// is "empty" and gives zeros (log: -inf) when the caller asks for safe rows.
/// </summary>
internal static unsafe class SoftmaxCpu
{
    /// <summary>
    /// Row-wise softmax (or log-softmax) of z = x * <paramref name="scale"/> + mask into y; y may equal x. The mask
    /// (null: none) of row r starts at mask + r * <paramref name="maskStride"/> (0: one row for all).
    /// </summary>
    public static void Run(float* x, float* y, long rows, long cols, bool log, float scale = 1f, float* mask = null, long maskStride = 0, bool safe = false)
        => RowDriver.Run<SoftmaxRows, SoftmaxState>(new SoftmaxRows(x, y, rows, cols, log, scale, mask, maskStride, safe), rows, cols);

    /// <summary>
    /// Where the row after <paramref name="row"/> of x [rows, cols] starts, for <see cref="Reduce"/>'s prefetch when the call
    /// covers a whole row; null for the last row, or a slice of a split row (its neighbours are other cores' slices).
    /// </summary>
    internal static float* NextRow(float* x, long row, long start, long count, long rows, long cols)
        => start == 0 && count == cols && row + 1 < rows ? x + (row + 1) * cols : null;

    readonly struct SoftmaxRows(float* x, float* y, long rows, long cols, bool log, float scale, float* mask, long maskStride, bool safe) : IRowOp<SoftmaxState>
    {
        float* Mask(long row, long start) => mask == null ? null : mask + row * maskStride + start;

        public SoftmaxState Reduce(long row, long start, long count)
            => SoftmaxCpu.Reduce(x + row * cols + start, Mask(row, start), scale, y + row * cols + start, count, store: !log, split: log,
                ahead: NextRow(x, row, start, count, rows, cols));

        public SoftmaxState Merge(in SoftmaxState a, in SoftmaxState b) => SoftmaxState.Merge(a, b);

        public void Write(long row, long start, long count, in SoftmaxState slice, in SoftmaxState whole)
        {
            float* xs = x + row * cols + start, ys = y + row * cols + start;
            float removed = log ? float.NegativeInfinity : 0f;
            if (whole.Empty || whole.IsNaN)
            {
                RowDriver.Fill(ys, count, whole.Empty && safe ? removed : float.NaN);
            }
            else if (slice.Empty)
            {
                RowDriver.Fill(ys, count, removed); // its exponentials are NaN (e^(-inf - -inf)); every value is 0 (log: -inf)
            }
            else if (log)
            {
                double logSum = whole.LogSum;
                float logSumHi = (float)logSum, logSumLo = (float)(logSum - logSumHi);
                float* ms = Mask(row, start);
                // x - max is finite in every lane when no x is below -float.MaxValue/2 and the max is at most float.MaxValue/2:
                // a finite x alone is not enough (-3e38 - 3e38 overflows to -inf, and its two-sum remainder to NaN).
                bool differencesFinite = slice.MinWithinHalfRange && whole.Max <= float.MaxValue / 2;
                if (ms == null && scale == 1f) PlainLogSoftmax(xs, ys, count, whole.Max, logSumHi, logSumLo, differencesFinite);
                else if (ms == null) ElementwiseDriver.Unary(new LogSoftmaxOp(scale, whole.Max, whole.MaxLo, logSumHi, logSumLo), xs, ys, count);
                else ElementwiseDriver.Binary(new MaskedLogSoftmaxOp(scale, whole.Max, whole.MaxLo, logSumHi, logSumLo), xs, ms, ys, count);
            }
            else
            {
                // y holds e^(z - sliceMax); the row's normaliser is e^(sliceMax - rowMax) / rowSum.
                float factor = (float)((slice.Max == whole.Max ? 1.0 : Math.Exp((double)slice.Max - whole.Max)) / whole.Sum);
                ElementwiseDriver.Unary(new ScaleOp(factor), ys, ys, count);
            }
        }
    }

    /// <summary>
    /// The max of z = x * scale + mask over a slice and the sums of e^(z - max) (split as below: the terms with z below the
    /// max; at max: how many z equal it, each contributing e^0 = 1) and whether every z is -inf; with
    /// <paramref name="store"/> the exponentials go to y. Reads x (and mask) before writing y, so y may be x. Without
    /// <paramref name="split"/> (softmax, which needs only the total) the max's terms may be counted in Below instead.
    /// <paramref name="ahead"/>: where the next row starts (null: none), prefetched into L2 while pass 1 computes, so its
    /// own min/max pass does not wait on memory.
    /// </summary>
    internal static SoftmaxState Reduce(float* x, float* mask, float scale, float* y, long count, bool store, bool split = true, float* ahead = null)
    {
        // Without a next row, the prefetches of pass 1 touch this slice's own lines (in cache by then): no branch in its loop.
        if (ahead == null) ahead = x;
        (float Max, double Below, double AtMax, MaxRemainders AtLo, bool MinWithinHalfRange) state;
        if (count < V128.Count)
        {
            // Pad with -inf: it changes neither the max nor the sums (e^-inf = 0). z is formed exactly here (hi + lo, as
            // the vector inputs do) and the padded row then runs with scale 1, which carries no remainder of its own.
            float* padded = stackalloc float[V128.Count];
            float* paddedLo = stackalloc float[V128.Count];
            for (int i = 0; i < V128.Count; i++)
            {
                padded[i] = i < count ? Z(x, mask, scale, i, out paddedLo[i]) : float.NegativeInfinity;
                if (i >= count) paddedLo[i] = 0f;
            }
            var input = new PaddedInput(padded, paddedLo);
            state = !store ? Partial<V128, PaddedInput, SumsSplit>(input, padded, V128.Count, padded)
                  : split ? Partial<V128, PaddedInput, StoresSplit>(input, padded, V128.Count, padded)
                  : Partial<V128, PaddedInput, StoresTotal>(input, padded, V128.Count, padded);
            if (store && state.Max != float.NegativeInfinity) new Span<float>(padded, (int)count).CopyTo(new Span<float>(y, (int)count));
        }
        else if (mask == null && scale == 1f) state = Partial(new PlainInput(x), y, count, store, split, ahead);
        else if (mask == null) state = Partial(new ScaledInput(x, scale), y, count, store, split, ahead);
        else state = Partial(new MaskedInput(x, mask, scale), y, count, store, split, ahead);
        return new(state.Max, state.Below, state.AtMax, state.Max == float.NegativeInfinity && AllNegativeInfinity(x, mask, scale, count),
            state.MinWithinHalfRange, state.AtLo);
    }

    /// <summary>z of one element as hi (returned) + lo, as the vector inputs compute it.</summary>
    static float Z(float* x, float* mask, float scale, long i, out float lo)
    {
        var hi = mask == null ? ScaledInput.Exact(new V128(Vector128.Create(x[i])), scale, out V128 l)
                              : MaskedInput.Exact(new V128(Vector128.Create(x[i])), new V128(Vector128.Create(mask[i])), scale, out l);
        lo = V128.First(l);
        return V128.First(hi);
    }

    /// <summary>Whether every z of the slice is -inf (a max of -inf alone does not say: the vector max can drop a NaN).</summary>
    static bool AllNegativeInfinity(float* x, float* mask, float scale, long count)
    {
        for (long i = 0; i < count; i++)
        {
            if (Z(x, mask, scale, i, out _) != float.NegativeInfinity) return false;
        }
        return true;
    }

    static (float Max, double Below, double AtMax, MaxRemainders AtLo, bool MinWithinHalfRange) Partial<TIn>(TIn input, float* y, long count, bool store, bool split, float* ahead) where TIn : struct, IRowInput
    {
        if (!store) return Partial<TIn, SumsSplit>(input, y, count, ahead);
        if (split) return Partial<TIn, StoresSplit>(input, y, count, ahead);
        return Partial<TIn, StoresTotal>(input, y, count, ahead);
    }

    static (float Max, double Below, double AtMax, MaxRemainders AtLo, bool MinWithinHalfRange) Partial<TIn, TStore>(TIn input, float* y, long count, float* ahead) where TIn : struct, IRowInput where TStore : struct, IPassKind
    {
        if (V512.IsSupported && count >= V512.Count) return Partial<V512, TIn, TStore>(input, y, count, ahead);
        if (V256.IsSupported && count >= V256.Count) return Partial<V256, TIn, TStore>(input, y, count, ahead);
        return Partial<V128, TIn, TStore>(input, y, count, ahead);
    }

    /// <summary>
    /// One slice's pass 1: the max and the min (a read of their own; the min says whether the whole slice is in the fast
    /// range, and whether it holds -inf), then e^(z - m) and the sums. Vectors whose
    /// lanes all lie strictly below the max and above e^x's normal range (the bulk of any row) take <see cref="FastExp{TV}"/>
    /// inline; the rest (the max's own lanes, -inf, NaN, results below the smallest normal) leave the inner loop for the
    /// careful <see cref="ExpDifference{TV, TIn}"/>, so the loop carries no masks or calls for rare cases.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static (float Max, double Below, double AtMax, MaxRemainders AtLo, bool MinWithinHalfRange) Partial<TV, TIn, TStore>(TIn input, float* y, long count, float* ahead)
        where TV : unmanaged, ISimd<TV> where TIn : struct, IRowInput where TStore : struct, IPassKind
    {
        long last = count - TV.Count;
        (float max, float min) = RowMinMax<TV, TIn>(input, count);
        bool noNegativeInfinity = min > float.NegativeInfinity, minWithinHalfRange = min >= -float.MaxValue / 2;
        // Every d = z - max in [-87, 0] and no -inf (whose remainder would be NaN): no vector needs the careful path.
        // NaN lanes may hide from the min and max; they make e and the sum NaN on either path, and the row NaN.
        bool inRange = noNegativeInfinity && (double)min - max >= -87.0;
        // With the split and no store (log-softmax, the loss alone) over z = x itself, the unchecked loop counts the max's
        // own terms in the sum, each exactly 1 (z - max is 0 with no remainder), and the split is recovered at the end as
        // Below = S - 1, AtMax = 1. That is exact enough where S - 1 >= 2^-10 (the double sum rounds at ~2^-53 S); a
        // dominant row, whose log-sum is log1p of something tiny, runs the checked loop again (nothing was stored).
        bool merged = inRange && TStore.Split && !TStore.Store && !TIn.HasRemainder;
        if (TStore.Split && !merged) inRange = false;
        TV m = TV.Create(max);
        // A max of -inf: every z is -inf (or a NaN the vector max dropped). Store nothing, so the input stays intact for
        // Reduce's all -inf test even in place (e^(-inf - -inf) would overwrite it with NaN); Write fills such slices.
        if (TV.First(m) == float.NegativeInfinity) return (float.NegativeInfinity, double.NaN, double.NaN, MaxRemainders.None, false);

        // For the sums the overlap is masked out; the end is computed before any store (in place).
        TV tail = ExpDifferenceAt(input, last, m, out TV tailBelow, out TV tailAt, out TV tailAtLo);
        while (true)
        {
            // The sums are kept in double lanes (every float term widened exactly): 2^20 terms add no float rounding.
            TV lower = TV.Create(0f), upper = TV.Create(0f), atMax = TV.Create(0f);
            var atLo = MaxRemainders.None;
            long i = 0;
            while (true)
            {
                i = inRange ? FastRun<TV, TIn, TStore, InRange>(input, y, i, last, -m, ref lower, ref upper, ahead)
                            : FastRun<TV, TIn, TStore, Checked>(input, y, i, last, -m, ref lower, ref upper, ahead);
                if (i >= last) break;
                // A vector holding the max, -inf, NaN or a result below the smallest normal: the careful path.
                TV slow = ExpDifferenceAt(input, i, m, out TV below, out TV at, out TV lo);
                TV.AddWidened(below, ref lower, ref upper);
                atMax += at;
                atLo = atLo.Add(at, lo);
                if (TStore.Store) TV.Store(slow, y + i);
                i += TV.Count;
            }
            TV fresh = TV.GreaterThanOrEqual(TV.Indices, TV.Create(i - last));
            TV.AddWidened(tailBelow & fresh, ref lower, ref upper);
            atMax += tailAt & fresh;
            atLo = atLo.Add(tailAt & fresh, tailAtLo);
            if (TStore.Store) TV.Store(tail, y + last);
            double belowSum = TV.WidenedSum(lower, upper), atMaxSum = TV.Sum(atMax);
            if (!merged) return (TV.First(m), belowSum, atMaxSum, atLo, minWithinHalfRange);
            double total = belowSum + atMaxSum;
            if (total - 1 >= 1.0 / 1024) return (TV.First(m), total - 1, 1, MaxRemainders.Zero, minWithinHalfRange);
            merged = inRange = false;
        }
    }

    /// <summary>
    /// The bulk of pass 1 from element <paramref name="i"/>: e^(z - m) for vectors in <see cref="FastExp{TV}"/>'s range, added
    /// to the double sums (and stored), up to the first vector outside it (returned) or <paramref name="last"/>. A method of
    /// its own with no call inside, so the accumulators live in registers: in a loop that also calls the careful path the
    /// JIT keeps them on the stack (every vector register is caller-saved), a store-to-load round trip per vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static long FastRun<TV, TIn, TStore, TCheck>(TIn input, float* y, long i, long last, TV negM, ref TV lowerSum, ref TV upperSum, float* ahead)
        where TV : unmanaged, ISimd<TV> where TIn : struct, IRowInput where TStore : struct, IPassKind where TCheck : struct, IFlag
    {
        TV lower = lowerSum, upper = upperSum;
        for (; i < last; i += TV.Count)
        {
            // The next row's line at this offset into L2 (a V512 vector is one line; narrower vectors touch lines twice),
            // so its min and max pass reads from cache instead of waiting on memory while no exponential is computed.
            if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.Prefetch1(ahead + i);
            TV zhi = input.Load<TV>(i, out TV zlo);
            // d = z - m exactly as d + dlo (Knuth's two-sum); every lane taken here is finite, so dlo needs no masking.
            TV d = zhi + negM;
            TV bb = d - zhi;
            TV dlo = (zhi - (d - bb)) + (negM - bb);
            if (TIn.HasRemainder) dlo += zlo;
            if (TCheck.Value && !InFastRange(d)) break;
            TV e = FastExp(d, dlo);
            TV.AddWidened(e, ref lower, ref upper);
            if (TStore.Store) TV.Store(e, y + i);
        }
        lowerSum = lower;
        upperSum = upper;
        return i;
    }

    /// <summary>Half the width of <see cref="FastExp{TV}"/>'s range [-87.33, 0]: below -87.33 e^d is not a normal float.</summary>
    const float FastHalfRange = 43.665f;

    /// <summary>
    /// Whether -87.33 &lt;= d &lt; 0 in every lane, as one compare: |d + c| &lt; c with c = 87.33 / 2 (false for NaN and
    /// -inf; d = 0, a lane at the max, and the last few ulps below it go to the careful path too). On the SIMD widths the
    /// compare feeds a mask-register test directly.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool InFastRange<TV>(TV d) where TV : unmanaged, ISimd<TV>
    {
        TV a = d + TV.Create(FastHalfRange);
        if (typeof(TV) == typeof(V512))
            return Vector512.LessThanAll(Vector512.Abs(Unsafe.As<TV, V512>(ref a).V), Vector512.Create(FastHalfRange));
        if (typeof(TV) == typeof(V256))
            return Vector256.LessThanAll(Vector256.Abs(Unsafe.As<TV, V256>(ref a).V), Vector256.Create(FastHalfRange));
        if (typeof(TV) == typeof(V128))
            return Vector128.LessThanAll(Vector128.Abs(Unsafe.As<TV, V128>(ref a).V), Vector128.Create(FastHalfRange));
        return TV.All(TV.LessThan(Simd.Abs(a), TV.Create(FastHalfRange)));
    }

    /// <summary>
    /// The max and min of z over a slice (NaN lanes may be dropped: the sums see them), two accumulators each: one max per
    /// vector in one register is a 2-cycle dependency chain, which would hold an in-cache row to half the load rate.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (float Max, float Min) RowMinMax<TV, TIn>(TIn input, long count) where TV : unmanaged, ISimd<TV> where TIn : struct, IRowInput
    {
        long last = count - TV.Count;
        TV first = input.Load<TV>(last, out _), max0 = first, max1 = first, min0 = first, min1 = first;
        long i = 0;
        for (; i + 2 * TV.Count <= last; i += 2 * TV.Count)
        {
            TV a = input.Load<TV>(i, out _), b = input.Load<TV>(i + TV.Count, out _);
            max0 = TV.Max(max0, a);
            min0 = TV.Min(min0, a);
            max1 = TV.Max(max1, b);
            min1 = TV.Min(min1, b);
        }
        for (; i < last; i += TV.Count)
        {
            TV a = input.Load<TV>(i, out _);
            max0 = TV.Max(max0, a);
            min0 = TV.Min(min0, a);
        }
        TV min = TV.Min(min0, min1);
        return (TV.MaxAcross(TV.Max(max0, max1)), -TV.MaxAcross(-min));
    }

    /// <summary>
    /// e^(d + dlo) for -87.33 &lt;= d &lt; 0 (|dlo| &lt;= ulp(d) / 2): the reduction of <see cref="VectorMath.Exp{TV}(TV, TV)"/>
    /// with a shorter polynomial (<see cref="VectorMath.ExpMinimaxTail{TV}"/>, Horner down to the constant 1), without
    /// the edge handling, which this range never needs: n is rounded by adding <see cref="VectorMath.ExpMagic"/>, whose
    /// bits, shifted into the exponent field, are 2^n itself (n in [-126, 0]: a normal float).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV FastExp<TV>(TV d, TV dlo) where TV : unmanaged, ISimd<TV>
    {
        TV t = TV.Fma(d, TV.Create(VectorMath.Log2E), TV.Create(VectorMath.ExpMagic));
        TV n = t - TV.Create(VectorMath.ExpMagic);
        TV r = TV.Fma(n, TV.Create(-VectorMath.Ln2Hi), d);
        r = TV.Fma(n, TV.Create(-VectorMath.Ln2Lo), r) + dlo;
        TV p = TV.Fma(VectorMath.ExpMinimaxTail(r), r, TV.Create(1f));
        TV mantissa = TV.Fma(p, r, TV.Create(1f));
        return mantissa * TV.ShiftIntoExponent(t);
    }

    /// <summary><see cref="ExpDifference{TV, TIn}"/> at element <paramref name="i"/>, out of line: the rare vectors' careful path.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static TV ExpDifferenceAt<TV, TIn>(TIn input, long i, TV m, out TV below, out TV at, out TV atLo) where TV : unmanaged, ISimd<TV> where TIn : struct, IRowInput
        => ExpDifference(input, i, m, out below, out at, out atLo);

    /// <summary>
    /// e^(z - m) with z - m carried exactly: two-sum (Knuth) of z's hi and -m, plus z's own remainder, into the scaled
    /// exponential, so the result is within the exponential's own ~1 ulp (rounding z - m to float first would cost up to
    /// |z - m| 2^-24 relative, 64 ulp near the underflow). <paramref name="below"/> is the term where z is below m (else 0);
    /// where z's hi equals m, <paramref name="at"/> is 1 and <paramref name="atLo"/> is z's remainder there (else 0), which
    /// <see cref="MaxRemainders"/> keeps: the row's reference point is the exact max m + lo, so the max's own term is exactly
    /// 1 and log-softmax's log(sum) becomes log1p of the rest.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV ExpDifference<TV, TIn>(TIn input, long i, TV m, out TV below, out TV at, out TV atLo) where TV : unmanaged, ISimd<TV> where TIn : struct, IRowInput
    {
        TV zhi = input.Load<TV>(i, out TV zlo);
        TV d = VectorMath.TwoSum(zhi, -m, out TV dlo);
        dlo += zlo;
        TV e = VectorMath.Exp(d, dlo);
        TV isMax = TV.Equal(d, TV.Create(0f));
        below = TV.Select(isMax, TV.Create(0f), e);
        at = isMax & TV.Create(1f);
        atLo = isMax & dlo;
        return e;
    }

    /// <summary>
    /// Log-softmax's final pass over an unscaled, unmasked slice: <see cref="PlainLogSoftmaxOp"/> in a loop of its own, its
    /// constants broadcast once outside the loop (through the generic elementwise driver the op's fields are reloaded and
    /// broadcast every vector: 9 of its ~30 instructions).
    /// </summary>
    static void PlainLogSoftmax(float* x, float* y, long count, float max, float logSumHi, float logSumLo, bool differencesFinite)
    {
        if (count < V128.Count) ElementwiseDriver.Unary(new PlainLogSoftmaxOp(max, logSumHi, logSumLo), x, y, count);
        else if (differencesFinite) PlainLogSoftmax<InRange>(x, y, count, max, logSumHi, logSumLo);
        else PlainLogSoftmax<Checked>(x, y, count, max, logSumHi, logSumLo);
    }

    static void PlainLogSoftmax<TCheck>(float* x, float* y, long count, float max, float logSumHi, float logSumLo) where TCheck : struct, IFlag
    {
        if (V512.IsSupported && count >= V512.Count) PlainLogSoftmax<V512, TCheck>(x, y, count, max, logSumHi, logSumLo);
        else if (V256.IsSupported && count >= V256.Count) PlainLogSoftmax<V256, TCheck>(x, y, count, max, logSumHi, logSumLo);
        else PlainLogSoftmax<V128, TCheck>(x, y, count, max, logSumHi, logSumLo);
    }

    /// <summary>
    /// The loop; with <see cref="InRange"/> (every x - max finite: pass 1 saw the slice's min at or above -float.MaxValue/2
    /// and the row's max is at most float.MaxValue/2) without the select for infinite differences: every remainder is then
    /// finite (a NaN row never gets here: it is filled).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PlainLogSoftmax<TV, TCheck>(float* x, float* y, long count, float max, float logSumHi, float logSumLo)
        where TV : unmanaged, ISimd<TV> where TCheck : struct, IFlag
    {
        TV negM = TV.Create(-max), negL = TV.Create(-logSumHi), lLo = TV.Create(logSumLo);
        long last = count - TV.Count;
        // The ragged end overlaps the previous vector; it is computed before any store (in place).
        TV tail = PlainLogSoftmaxOp.Value<TV, TCheck>(TV.Load(x + last), negM, negL, lLo);
        for (long i = 0; i < last; i += TV.Count) TV.Store(PlainLogSoftmaxOp.Value<TV, TCheck>(TV.Load(x + i), negM, negL, lLo), y + i);
        TV.Store(tail, y + last);
    }

    /// <summary>
    /// (z - m) - L for log-softmax, with z - m exact (hi + lo, as <see cref="ExpDifference{TV, TIn}"/>) and L = ln(sum) given
    /// as lHi + lLo: one more two-sum so results near 0 (the max of a dominant row: -L itself) keep every digit. m is the
    /// exact max mHi + mLo (<see cref="SoftmaxState.MaxLo"/>), so at the max z's remainder less mLo is exactly 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TV LogSoftmaxValue<TV>(TV zhi, TV zlo, TV mHi, TV mLo, TV lHi, TV lLo) where TV : unmanaged, ISimd<TV>
    {
        TV d = VectorMath.TwoSum(zhi, -mHi, out TV dlo);
        TV r = VectorMath.TwoSum(d, -lHi, out TV rlo);
        return r + ((rlo - lLo) + (dlo + (zlo - mLo)));
    }
}

/// <summary>
/// A slice's softmax state: its max, the sum of e^(z - max) over the terms below the max (<see cref="Below"/>), how many z
/// equal the max (<see cref="AtMax"/>, each term exactly 1), whether every z is -inf, and whether every z is at least
/// -float.MaxValue/2 (<see cref="MinWithinHalfRange"/>: with a row max of at most float.MaxValue/2, every z - max is then
/// finite and log-softmax's final pass needs no select for infinite differences).
/// </summary>
internal readonly record struct SoftmaxState(float Max, double Below, double AtMax, bool Empty, bool MinWithinHalfRange = false,
    MaxRemainders AtLo = default)
{
    /// <summary>The sum of e^(z - max), the max's own terms e^lo = 1 + lo + lo^2/2 (|lo| &lt;= 2^-24 |max|).</summary>
    public double Sum => Below + AtMax + AtLo.Sum + AtLo.HalfSquares;

    /// <summary>The exact max is Max + MaxLo: the largest remainder of the z at Max (0 where z carries none).</summary>
    public float MaxLo => AtLo.Largest > float.NegativeInfinity ? AtLo.Largest : 0f;

    /// <summary>
    /// ln of the sum of e^(z - (Max + MaxLo)), as log1p(that sum - 1) formed without the max's own 1: a row whose other
    /// terms are tiny (a dominant logit) keeps them, where ln(1 + tiny) would round 1 + tiny first. About the exact max
    /// the terms below are Below e^-MaxLo, and each at Max is e^(lo - MaxLo) = 1 + (lo - MaxLo) + (lo - MaxLo)^2/2, summed
    /// from the remainders' moments; with one max they are exactly 1 (every product here is exact in double: the
    /// remainders are floats), so log-softmax near 0 is -log1p(the others) to the last digit, not lost beside the max's
    /// rounding (a remainder of 1e-6 beside others of 1e-15).
    /// </summary>
    public double LogSum
    {
        get
        {
            double lo = MaxLo;
            double deviation = (AtLo.Sum - AtMax * lo) + (AtLo.HalfSquares - lo * AtLo.Sum + AtMax * (0.5 * lo * lo));
            return Log1p((lo == 0 ? Below : Below * Math.Exp(-lo)) + (AtMax - 1) + deviation);
        }
    }

    /// <summary>NaN or +inf in the row (the sum is then NaN).</summary>
    public bool IsNaN => double.IsNaN(Sum) || float.IsNaN(Max);

    /// <summary>ln(1 + t) in double for t &gt;= 0: ln(u) t / (u - 1) with u = 1 + t, which cancels u's rounding (Goldberg 1991, "What every computer scientist should know about floating-point arithmetic", Theorem 4).</summary>
    static double Log1p(double t)
    {
        double u = 1 + t;
        return u == 1 ? t : Math.Log(u) * (t / (u - 1));
    }

    /// <summary>
    /// Two slices as one: M = max; a slice whose max is M adds its terms as they are, one below M adds all of its terms
    /// scaled by e^(m - M) (in double) to Below. An empty slice adds nothing; NaN maxima propagate.
    /// </summary>
    public static SoftmaxState Merge(in SoftmaxState a, in SoftmaxState b)
    {
        float m = float.IsNaN(a.Max) ? a.Max : float.IsNaN(b.Max) ? b.Max : MathF.Max(a.Max, b.Max);
        double below = 0, atMax = 0;
        var atLo = MaxRemainders.None;
        foreach (var s in new[] { a, b })
        {
            if (s.Empty) continue;
            if (s.Max == m) { below += s.Below; atMax += s.AtMax; atLo = MaxRemainders.Merge(atLo, s.AtLo); }
            else below += s.Sum * Math.Exp((double)s.Max - m);
        }
        return new(m, float.IsNaN(m) ? double.NaN : below, atMax, a.Empty && b.Empty, a.MinWithinHalfRange && b.MinWithinHalfRange, atLo);
    }
}

/// <summary>
/// The remainders lo of the z that equal a slice's max in float (z = max + lo exactly): their sum, half the sum of their
/// squares, and the largest (<see cref="SoftmaxState.LogSum"/> takes the exact max from them). Rows without remainders
/// (scale 1, no mask) have lo = 0.
/// </summary>
internal readonly record struct MaxRemainders(double Sum, double HalfSquares, float Largest)
{
    /// <summary>No remainder seen yet.</summary>
    public static MaxRemainders None => new(0, 0, float.NegativeInfinity);

    /// <summary>The max's terms known to carry no remainder.</summary>
    public static MaxRemainders Zero => new(0, 0, 0f);

    /// <summary>
    /// Adds the remainders <paramref name="lo"/> of the lanes where <paramref name="at"/> is 1 (rare: the max's own lanes);
    /// a vector without such a lane returns at once.
    /// </summary>
    public MaxRemainders Add<TV>(TV at, TV lo) where TV : unmanaged, ISimd<TV>
    {
        if (!TV.Any(TV.GreaterThan(at, TV.Create(0f)))) return this;
        Span<float> ats = stackalloc float[TV.Count], los = stackalloc float[TV.Count];
        unsafe
        {
            fixed (float* pa = ats, pl = los) { TV.Store(at, pa); TV.Store(lo, pl); }
        }
        var sums = this;
        for (int k = 0; k < TV.Count; k++)
        {
            if (ats[k] == 0f) continue;
            double l = los[k];
            sums = new(sums.Sum + l, sums.HalfSquares + 0.5 * l * l, MathF.Max(sums.Largest, los[k]));
        }
        return sums;
    }

    /// <summary>Two slices' remainders at one max.</summary>
    public static MaxRemainders Merge(in MaxRemainders a, in MaxRemainders b)
        => new(a.Sum + b.Sum, a.HalfSquares + b.HalfSquares, MathF.Max(a.Largest, b.Largest));
}

/// <summary>Where a row op reads its input vectors from: z = x * scale (+ mask), as hi (the float z) + lo (its exact remainder).</summary>
internal interface IRowInput
{
    /// <summary>Whether lo can be nonzero (false: the loops skip adding it).</summary>
    static abstract bool HasRemainder { get; }


    /// <summary>The input vector at element <paramref name="i"/> and its remainder.</summary>
    TV Load<TV>(long i, out TV lo) where TV : unmanaged, ISimd<TV>;
}

/// <summary>z = x * scale, exactly as hi + lo (two-product; scale 1 leaves x exact, lo 0).</summary>
internal readonly unsafe struct ScaledInput(float* x, float scale) : IRowInput
{
    public static bool HasRemainder => true;


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Load<TV>(long i, out TV lo) where TV : unmanaged, ISimd<TV> => Exact(TV.Load(x + i), scale, out lo);

    /// <summary>x * scale as hi + lo.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Exact<TV>(TV x, float scale, out TV lo) where TV : unmanaged, ISimd<TV>
    {
        if (scale == 1f)
        {
            lo = TV.Create(0f);
            return x;
        }
        return VectorMath.TwoProduct(x, TV.Create(scale), out lo);
    }
}

/// <summary>z = x * scale + mask as hi + lo: two-product, then two-sum with the mask (Knuth), the remainders added.</summary>
internal readonly unsafe struct MaskedInput(float* x, float* mask, float scale) : IRowInput
{
    public static bool HasRemainder => true;


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Load<TV>(long i, out TV lo) where TV : unmanaged, ISimd<TV> => Exact(TV.Load(x + i), TV.Load(mask + i), scale, out lo);

    /// <summary>x * scale + mask as hi + lo (lo rounded once: exact to about 2^-48 |z|).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Exact<TV>(TV x, TV mask, float scale, out TV lo) where TV : unmanaged, ISimd<TV>
    {
        TV p = ScaledInput.Exact(x, scale, out TV plo);
        TV z = VectorMath.TwoSum(p, mask, out TV zlo);
        lo = (zlo + plo) & TV.LessThan(Simd.Abs(z), TV.Create(float.PositiveInfinity));
        return z;
    }
}

/// <summary>z = x (scale 1, no mask): exact as it is, lo 0.</summary>
internal readonly unsafe struct PlainInput(float* x) : IRowInput
{
    public static bool HasRemainder => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Load<TV>(long i, out TV lo) where TV : unmanaged, ISimd<TV>
    {
        lo = TV.Create(0f);
        return TV.Load(x + i);
    }
}

/// <summary>What pass 1 does besides summing, as a generic argument (so the JIT drops the untaken sides).</summary>
internal interface IPassKind
{
    /// <summary>Whether pass 1 stores its exponentials (softmax, the cross-entropy gradient).</summary>
    static abstract bool Store { get; }

    /// <summary>
    /// Whether the sums must hold the max's own terms apart (<see cref="SoftmaxState.AtMax"/>): log-softmax and the loss
    /// take log1p of the rest. Softmax needs only the total, which lets rows in range skip the per-vector range check.
    /// </summary>
    static abstract bool Split { get; }
}

/// <summary>Softmax: store, total only.</summary>
internal readonly struct StoresTotal : IPassKind
{
    public static bool Store => true;
    public static bool Split => false;
}

/// <summary>Cross-entropy with a gradient: store, and split for the loss.</summary>
internal readonly struct StoresSplit : IPassKind
{
    public static bool Store => true;
    public static bool Split => true;
}

/// <summary>Log-softmax, the loss alone: sums only.</summary>
internal readonly struct SumsSplit : IPassKind
{
    public static bool Store => false;
    public static bool Split => true;
}

/// <summary>A compile-time flag (a generic argument, so the JIT drops the untaken side).</summary>
internal interface IFlag
{
    /// <summary>The flag.</summary>
    static abstract bool Value { get; }
}

/// <summary>Every vector is range-checked before the fast exponential.</summary>
internal readonly struct Checked : IFlag
{
    public static bool Value => true;
}

/// <summary>The whole slice is known to be in range (its min and max say so): no per-vector check.</summary>
internal readonly struct InRange : IFlag
{
    public static bool Value => false;
}

/// <summary>A padded short row already formed as hi + lo (scale 1).</summary>
internal readonly unsafe struct PaddedInput(float* hi, float* lo) : IRowInput
{
    public static bool HasRemainder => true;


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Load<TV>(long i, out TV l) where TV : unmanaged, ISimd<TV>
    {
        l = TV.Load(lo + i);
        return TV.Load(hi + i);
    }
}

/// <summary>Log-softmax's final pass over x * scale: (z - max) - ln(sum), exactly carried.</summary>
internal readonly struct LogSoftmaxOp(float scale, float max, float maxLo, float logSumHi, float logSumLo) : IUnaryOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV z = ScaledInput.Exact(x, scale, out TV lo);
        return SoftmaxCpu.LogSoftmaxValue(z, lo, TV.Create(max), TV.Create(maxLo), TV.Create(logSumHi), TV.Create(logSumLo));
    }
}

/// <summary>
/// Log-softmax's final pass over x itself (scale 1, no mask): (x - max) - ln(sum) as <see cref="SoftmaxCpu.LogSoftmaxValue{TV}"/>
/// computes it, with the two two-sums unmasked and one select at the end instead: only an infinite difference (a -inf x,
/// or x - max past -float.MaxValue) or NaN makes a remainder NaN, and there the rounded difference is the answer.
/// </summary>
internal readonly struct PlainLogSoftmaxOp(float max, float logSumHi, float logSumLo) : IUnaryOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => Value<TV, Checked>(x, TV.Create(-max), TV.Create(-logSumHi), TV.Create(logSumLo));

    /// <summary>The value for x given -max, -lHi and lLo as vectors; with <see cref="InRange"/>, for x whose x - max is known to be finite (no select).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Value<TV, TCheck>(TV x, TV negM, TV negL, TV lLo) where TV : unmanaged, ISimd<TV> where TCheck : struct, IFlag
    {
        TV d = x + negM;
        TV bb = d - x;
        TV dlo = (x - (d - bb)) + (negM - bb);
        TV r = d + negL;
        TV rb = r - d;
        TV rlo = (d - (r - rb)) + (negL - rb);
        TV exact = r + ((rlo - lLo) + dlo);
        if (!TCheck.Value) return exact;
        return TV.Select(TV.LessThan(Simd.Abs(r), TV.Create(float.PositiveInfinity)), exact, r);
    }
}

/// <summary>Log-softmax's final pass over x * scale + mask.</summary>
internal readonly struct MaskedLogSoftmaxOp(float scale, float max, float maxLo, float logSumHi, float logSumLo) : IBinaryOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x, TV mask) where TV : unmanaged, ISimd<TV>
    {
        TV z = MaskedInput.Exact(x, mask, scale, out TV lo);
        return SoftmaxCpu.LogSoftmaxValue(z, lo, TV.Create(max), TV.Create(maxLo), TV.Create(logSumHi), TV.Create(logSumLo));
    }
}
