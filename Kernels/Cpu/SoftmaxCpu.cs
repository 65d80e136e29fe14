using System.Runtime.CompilerServices;

namespace GpuActivations.Cpu;

/// <summary>
/// Row-wise softmax and log-softmax on the CPU, max-subtracted, over z = x * scale + mask (applied as x is read). Per row
/// (or per slice of a long row, <see cref="RowDriver"/>): pass 1 finds the max m and sums e^(z - m) (softmax stores those
/// exponentials in y); pass 2 scales y by 1/sum (log-softmax: y = z - m - ln sum). Slices' (m_i, s_i) combine as
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
        => RowDriver.Run<SoftmaxRows, SoftmaxState>(new SoftmaxRows(x, y, cols, log, scale, mask, maskStride, safe), rows, cols);

    readonly struct SoftmaxRows(float* x, float* y, long cols, bool log, float scale, float* mask, long maskStride, bool safe) : IRowOp<SoftmaxState>
    {
        float* Mask(long row, long start) => mask == null ? null : mask + row * maskStride + start;

        public SoftmaxState Reduce(long row, long start, long count)
            => SoftmaxCpu.Reduce(x + row * cols + start, Mask(row, start), scale, y + row * cols + start, count, store: !log);

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
                float logSum = (float)Math.Log(whole.Sum);
                float* ms = Mask(row, start);
                if (ms == null) ElementwiseDriver.Unary(new LogSoftmaxOp(scale, whole.Max, logSum), xs, ys, count);
                else ElementwiseDriver.Binary(new MaskedLogSoftmaxOp(scale, whole.Max, logSum), xs, ms, ys, count);
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
    /// The max of z = x * scale + mask over a slice, the sum of e^(z - max) and whether every z is -inf; with
    /// <paramref name="store"/> the exponentials go to y. Reads x (and mask) before writing y, so y may be x.
    /// </summary>
    internal static SoftmaxState Reduce(float* x, float* mask, float scale, float* y, long count, bool store)
    {
        (float Max, double Sum) state;
        if (count < V128.Count)
        {
            // Pad with -inf: it changes neither the max nor the sum (e^-inf = 0).
            float* padded = stackalloc float[V128.Count];
            for (int i = 0; i < V128.Count; i++) padded[i] = i < count ? Z(x, mask, scale, i) : float.NegativeInfinity;
            state = Partial<V128, ScaledInput>(new ScaledInput(padded, 1f), padded, V128.Count, store);
            if (store && state.Max != float.NegativeInfinity) new Span<float>(padded, (int)count).CopyTo(new Span<float>(y, (int)count));
        }
        else if (mask == null) state = Partial(new ScaledInput(x, scale), y, count, store);
        else state = Partial(new MaskedInput(x, mask, scale), y, count, store);
        return new(state.Max, state.Sum, state.Max == float.NegativeInfinity && AllNegativeInfinity(x, mask, scale, count));
    }

    /// <summary>z of one element, as the vector inputs compute it.</summary>
    static float Z(float* x, float* mask, float scale, long i) => mask == null ? x[i] * scale : MathF.FusedMultiplyAdd(x[i], scale, mask[i]);

    /// <summary>Whether every z of the slice is -inf (a max of -inf alone does not say: the vector max can drop a NaN).</summary>
    static bool AllNegativeInfinity(float* x, float* mask, float scale, long count)
    {
        for (long i = 0; i < count; i++)
        {
            if (Z(x, mask, scale, i) != float.NegativeInfinity) return false;
        }
        return true;
    }

    static (float Max, double Sum) Partial<TIn>(TIn input, float* y, long count, bool store) where TIn : struct, IRowInput
    {
        if (V512.IsSupported && count >= V512.Count) return Partial<V512, TIn>(input, y, count, store);
        if (V256.IsSupported && count >= V256.Count) return Partial<V256, TIn>(input, y, count, store);
        return Partial<V128, TIn>(input, y, count, store);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static (float Max, double Sum) Partial<TV, TIn>(TIn input, float* y, long count, bool store) where TV : unmanaged, ISimd<TV> where TIn : struct, IRowInput
    {
        long last = count - TV.Count;
        // The ragged end overlaps the previous vector: harmless for the max.
        TV maxV = input.Load<TV>(last);
        for (long i = 0; i < last; i += TV.Count) maxV = TV.Max(maxV, input.Load<TV>(i));
        TV m = TV.Create(TV.MaxAcross(maxV));
        // A max of -inf: every z is -inf (or a NaN the vector max dropped). Store nothing, so the input stays intact for
        // Reduce's all -inf test even in place (e^(-inf - -inf) would overwrite it with NaN); Write fills such slices.
        if (TV.First(m) == float.NegativeInfinity) return (float.NegativeInfinity, double.NaN);

        // For the sum the overlap is masked out; the end is computed before any store (in place).
        TV tail = ExpDifference(input.Load<TV>(last), m);
        // Float lanes sum blocks of 256 vectors, blocks add up in double: a 2^20-column row keeps 1e-7 accuracy.
        double sum = 0;
        long iEnd = 0;
        while (iEnd < last)
        {
            TV sumV = TV.Create(0f);
            long blockEnd = Math.Min(last, iEnd + 256L * TV.Count);
            for (; iEnd < blockEnd; iEnd += TV.Count)
            {
                TV e = ExpDifference(input.Load<TV>(iEnd), m);
                sumV += e;
                if (store) TV.Store(e, y + iEnd);
            }
            sum += TV.Sum(sumV);
        }
        TV fresh = TV.GreaterThanOrEqual(TV.Indices, TV.Create(iEnd - last));
        sum += TV.Sum(tail & fresh);
        if (store) TV.Store(tail, y + last);
        return (TV.First(m), sum);
    }

    /// <summary>
    /// e^(z - m). The rounding of z - m (half an ulp of |z - m|) moves the result by at most |z - m| 2^-24 relative,
    /// under 5.2e-6 wherever the result is a normal float (|z - m| &lt; 87.4): inside softmax's 1e-5 bound, so the
    /// difference is not carried exactly here (the elementwise ops, held to ulps, do carry theirs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV ExpDifference<TV>(TV z, TV m) where TV : unmanaged, ISimd<TV> => VectorMath.Exp(z - m);
}

/// <summary>A slice's softmax state: its max, the sum of e^(z - max) over it, and whether every z is -inf.</summary>
internal readonly record struct SoftmaxState(float Max, double Sum, bool Empty)
{
    /// <summary>NaN or +inf in the row (the sum is then NaN).</summary>
    public bool IsNaN => double.IsNaN(Sum) || float.IsNaN(Max);

    /// <summary>
    /// Two slices as one: M = max, S = s_a e^(m_a - M) + s_b e^(m_b - M), in double. An empty slice adds nothing (its sum
    /// is NaN: e^(-inf - -inf)); NaN maxima propagate.
    /// </summary>
    public static SoftmaxState Merge(in SoftmaxState a, in SoftmaxState b)
    {
        float m = float.IsNaN(a.Max) ? a.Max : float.IsNaN(b.Max) ? b.Max : MathF.Max(a.Max, b.Max);
        double s = (a.Empty ? 0 : a.Sum * Math.Exp((double)a.Max - m)) + (b.Empty ? 0 : b.Sum * Math.Exp((double)b.Max - m));
        return new(m, s, a.Empty && b.Empty);
    }
}

/// <summary>Where a row op reads its input vectors from: z = x * scale (+ mask).</summary>
internal interface IRowInput
{
    /// <summary>The input vector at element <paramref name="i"/>.</summary>
    TV Load<TV>(long i) where TV : unmanaged, ISimd<TV>;
}

/// <summary>z = x * scale (scale 1 leaves x exact).</summary>
internal readonly unsafe struct ScaledInput(float* x, float scale) : IRowInput
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Load<TV>(long i) where TV : unmanaged, ISimd<TV> => TV.Load(x + i) * TV.Create(scale);
}

/// <summary>z = x * scale + mask, fused (as CUDA and OpenCL compilers contract it).</summary>
internal readonly unsafe struct MaskedInput(float* x, float* mask, float scale) : IRowInput
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Load<TV>(long i) where TV : unmanaged, ISimd<TV> => TV.Fma(TV.Load(x + i), TV.Create(scale), TV.Load(mask + i));
}
