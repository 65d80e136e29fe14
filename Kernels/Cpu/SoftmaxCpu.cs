using System.Runtime.CompilerServices;

namespace GpuActivations.Cpu;

/// <summary>
/// Row-wise softmax and log-softmax on the CPU, max-subtracted. Per row (or per slice of a long row):
/// pass 1 finds the max m; pass 2 sums e^(x - m) (softmax stores those exponentials in y); pass 3 scales y
/// by 1/sum (log-softmax: y = x - m - ln sum). A row too long for one core is cut into slices whose
/// (m_i, s_i) combine as M = max m_i, S = sum s_i e^(m_i - M), and each slice scales by e^(m_i - M) / S.
/// NaN or +inf in a row, or a row of only -inf, makes the row's sum NaN, so the whole row is NaN.
/// </summary>
internal static unsafe class SoftmaxCpu
{
    /// <summary>Row-wise softmax (or log-softmax) of x [rows, cols] into y; y may equal x.</summary>
    public static void Run(float* x, float* y, long rows, long cols, bool log)
    {
        if (rows == 0) return;
        long total = rows * cols;
        int parts = CpuParallel.Parts(total);
        if (parts > 1 && rows >= parts)
        {
            nint xp = (nint)x, yp = (nint)y;
            CpuParallel.For(rows, parts, (start, count) =>
            {
                for (long r = start; r < start + count; r++) Row((float*)xp + r * cols, (float*)yp + r * cols, cols, log);
            }, alignment: 1);
        }
        else if (parts > 1)
        {
            for (long r = 0; r < rows; r++) SplitRow(x + r * cols, y + r * cols, cols, log);
        }
        else
        {
            for (long r = 0; r < rows; r++) Row(x + r * cols, y + r * cols, cols, log);
        }
    }

    /// <summary>One row on the calling thread.</summary>
    static void Row(float* x, float* y, long cols, bool log)
    {
        if (cols < V128.Count)
        {
            // Pad with -inf: it changes neither the max nor the sum (e^-inf = 0).
            float* padded = stackalloc float[V128.Count];
            new Span<float>(padded, V128.Count).Fill(float.NegativeInfinity);
            new Span<float>(x, (int)cols).CopyTo(new Span<float>(padded, V128.Count));
            Row(padded, padded, V128.Count, log);
            new Span<float>(padded, (int)cols).CopyTo(new Span<float>(y, (int)cols));
            return;
        }
        var (max, sum) = Partial(x, y, cols, store: !log);
        Finish(x, y, cols, log, max, max, sum);
    }

    /// <summary>One long row cut across cores.</summary>
    static void SplitRow(float* x, float* y, long cols, bool log)
    {
        int parts = CpuParallel.Parts(cols);
        var maxes = new float[parts];
        var sums = new double[parts];
        long chunk = (cols + parts - 1) / parts;
        nint xp = (nint)x, yp = (nint)y;
        Parallel.For(0, parts, p =>
        {
            long start = p * chunk, count = Math.Min(chunk, cols - start);
            (maxes[p], sums[p]) = Partial((float*)xp + start, (float*)yp + start, count, store: !log);
        });
        float max = float.NegativeInfinity;
        foreach (float m in maxes) max = float.IsNaN(m) ? m : MathF.Max(max, m);
        double sum = 0;
        for (int p = 0; p < parts; p++) sum += sums[p] * Math.Exp(maxes[p] - (double)max);
        Parallel.For(0, parts, p =>
        {
            long start = p * chunk, count = Math.Min(chunk, cols - start);
            Finish((float*)xp + start, (float*)yp + start, count, log, maxes[p], max, sum);
        });
    }

    /// <summary>The max of a slice and the sum of e^(x - max) over it; with <paramref name="store"/> the exponentials go to y.</summary>
    static (float Max, double Sum) Partial(float* x, float* y, long count, bool store)
    {
        if (V512.IsSupported && count >= V512.Count) return Partial<V512>(x, y, count, store);
        if (V256.IsSupported && count >= V256.Count) return Partial<V256>(x, y, count, store);
        return Partial<V128>(x, y, count, store);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static (float Max, double Sum) Partial<TV>(float* x, float* y, long count, bool store) where TV : unmanaged, ISimd<TV>
    {
        long last = count - TV.Count;
        // The ragged end overlaps the previous vector: harmless for the max.
        TV maxV = TV.Load(x + last);
        for (long i = 0; i < last; i += TV.Count) maxV = TV.Max(maxV, TV.Load(x + i));
        TV m = TV.Create(TV.MaxAcross(maxV));

        // For the sum the overlap is masked out; the end is computed before any store (in place).
        TV tail = ExpDifference(TV.Load(x + last), m);
        // Float lanes sum blocks of 256 vectors, blocks add up in double: a 2^20-column row keeps 1e-7 accuracy.
        double sum = 0;
        long iEnd = 0;
        while (iEnd < last)
        {
            TV sumV = TV.Create(0f);
            long blockEnd = Math.Min(last, iEnd + 256L * TV.Count);
            for (; iEnd < blockEnd; iEnd += TV.Count)
            {
                TV e = ExpDifference(TV.Load(x + iEnd), m);
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
    /// e^(x - m). The rounding of x - m (half an ulp of |x - m|) moves the result by at most |x - m| 2^-24 relative,
    /// under 5.2e-6 wherever the result is a normal float (|x - m| &lt; 87.4): inside softmax's 1e-5 bound, so the
    /// difference is not carried exactly here (the elementwise ops, held to ulps, do carry theirs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV ExpDifference<TV>(TV x, TV m) where TV : unmanaged, ISimd<TV> => VectorMath.Exp(x - m);

    /// <summary>The last pass over a slice whose max was <paramref name="sliceMax"/>, in a row of max <paramref name="rowMax"/> and sum <paramref name="rowSum"/>.</summary>
    static void Finish(float* x, float* y, long count, bool log, float sliceMax, float rowMax, double rowSum)
    {
        if (log)
        {
            ElementwiseDriver.Unary(new LogSoftmaxOp(rowMax, (float)Math.Log(rowSum)), x, y, count);
        }
        else
        {
            // y holds e^(x - sliceMax); the row's normaliser is e^(sliceMax - rowMax) / rowSum.
            float factor = (float)((sliceMax == rowMax ? 1.0 : Math.Exp((double)sliceMax - rowMax)) / rowSum);
            if (double.IsNaN(rowSum) || float.IsNaN(rowMax)) factor = float.NaN;
            ElementwiseDriver.Unary(new ScaleOp(factor), y, y, count);
        }
    }
}
