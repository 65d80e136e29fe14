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
/// Row-wise softmax and log-softmax as ILGPU kernels: one group per row (grid-stride over rows), reductions through
/// shared memory (portable: no warp shuffles, so the same kernel serves CUDA, OpenCL and the CPU accelerator at any warp
/// size). Three passes over the row: the max, the sum of e^(z - max), the write.
/// <para>
/// Accuracy: z = x * scale + mask is formed exactly (the product's error by fma, the sum's by two-sum) and z - max is
/// carried exactly as hi + lo (Knuth's two-sum) into the exponential, so an element far below the max does not inherit
/// the rounding of the difference. The sum is compensated: every addition's error is collected by two-sum (exact in any
/// order of magnitudes, unlike Kahan's, which loses the small terms met before the max's 1), within a thread and when
/// threads combine. Log-softmax's log of the sum is log1p of the sum of the non-max terms, the max's own 1 counted apart
/// (<see cref="AccumulateTerm{TFma}"/>): where one logit dominates, the result near 0 keeps its digits.
/// </para>
/// Semantics as on the CPU: NaN or +inf in a row makes the row NaN; a row of only -inf is NaN, or zeros (log: -inf) when
/// safe. y may be x (in place): every element is read in the last pass before it is written, by the same thread.
/// </summary>
internal static class SoftmaxKernels
{
    /// <summary>The largest group the kernels' shared arrays hold.</summary>
    public const int MaxGroupSize = 1024;

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
    /// hi + lo = (z + zLo) - m: z - m exactly (two-sum), plus zLo; lo is 0 where the difference is infinite (z infinite, or
    /// z - m overflowing: -FLT_MAX - FLT_MAX), which then decides alone.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Difference(float z, float zLo, float m, out float lo)
    {
        float hi = TwoSum(z, -m, out lo);
        lo += zLo;
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
    /// The group's row sum from <see cref="AccumulateTerm{TFma}"/>'s parts: the whole sum, and t = sum - 1 as
    /// <paramref name="excess"/> (what log1p takes: the max's own 1 removed exactly).
    /// </summary>
    internal static float GroupRowSum(float ones, float rest, float error, ArrayView<float> floats, ArrayView<float> errors, out float excess)
    {
        rest = GroupSum(rest, error, floats, errors, out float restError);
        ones = GroupSum(ones, 0f, floats, errors, out _);
        float hi = TwoSum(ones - 1f, rest, out float lo);
        excess = hi + (lo + restError);
        return Combine(ones + rest, restError);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Exp<TFma>(float hi, float lo) where TFma : struct, IFusedMultiplyAdd
        => VectorMath.Exp(new ScalarLane<TFma>(hi), new ScalarLane<TFma>(lo)).Value;

    /// <summary>The group's max of <paramref name="v"/> (NaN never wins: callers flag NaN separately).</summary>
    internal static float GroupMax(float v, ArrayView<float> shared)
    {
        int t = Group.IdxX;
        shared[t] = v;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s && shared[t + s] > shared[t]) shared[t] = shared[t + s];
            Group.Barrier();
        }
        float result = shared[0];
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

    /// <summary>The group's compensated sum: (sum, error) pairs combined by two-sum, the errors added up.</summary>
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
                float a = sums[t], b = sums[t + s];
                float total = a + b, bv = total - a;
                sums[t] = total;
                errors[t] += errors[t + s] + ((a - (total - bv)) + (b - bv));
            }
            Group.Barrier();
        }
        float result = sums[0];
        totalError = errors[0];
        Group.Barrier();
        return result;
    }

    /// <summary>Softmax or log-softmax of each row of x into y (a group per row; the group size a power of two).</summary>
    public static void Rows<TFma, TIn, TInStorage, TOut, TOutStorage>(ArrayView<TIn> x, ArrayView<TOut> y, ArrayView<float> mask, SoftmaxRowArgs a)
        where TFma : struct, IFusedMultiplyAdd
        where TIn : unmanaged where TInStorage : struct, IStorage<TIn>
        where TOut : unmanaged where TOutStorage : struct, IStorage<TOut>
    {
        var floats = SharedMemory.Allocate<float>(MaxGroupSize);
        var errors = SharedMemory.Allocate<float>(MaxGroupSize);
        var flags = SharedMemory.Allocate<int>(MaxGroupSize);
        int t = Group.IdxX, step = Group.DimX;
        for (long row = Grid.IdxX; row < a.Rows; row += Grid.DimX)
        {
            // Pass 1: the max, whether a NaN or +inf is present (bit 0) and whether any z is above -inf (bit 1).
            float m = float.NegativeInfinity;
            int state = 0;
            for (long j = t; j < a.Cols; j += step)
            {
                float z = Z<TFma, TIn, TInStorage>(x, mask, a, row, j, out _);
                if (z > m) m = z;
                if (!(z < float.PositiveInfinity)) state |= 1;
                if (z != float.NegativeInfinity) state |= 2;
            }
            m = GroupMax(m, floats);
            state = GroupOr(state, flags);
            bool bad = (state & 1) != 0, empty = (state & 2) == 0;

            // Pass 2: the compensated sum of e^(z - m); the max's term is exactly 1.
            float ones = 0f, rest = 0f, error = 0f;
            if (!bad && !empty)
            {
                for (long j = t; j < a.Cols; j += step)
                {
                    float z = Z<TFma, TIn, TInStorage>(x, mask, a, row, j, out float zLo);
                    float hi = Difference(z, zLo, m, out float lo);
                    AccumulateTerm<TFma>(ref ones, ref rest, ref error, hi, lo);
                }
            }
            float total = GroupRowSum(ones, rest, error, floats, errors, out float excess);
            // log(total) = log1p(total - 1), the max's own 1 taken out exactly.
            float logSum = VectorMath.Log1pNonNegative(new ScalarLane<TFma>(excess)).Value;

            // Pass 3: the write.
            float fill = empty && a.Safe != 0 ? (a.Log != 0 ? float.NegativeInfinity : 0f) : float.NaN;
            for (long j = t; j < a.Cols; j += step)
            {
                float value;
                if (bad || empty) value = fill;
                else
                {
                    float z = Z<TFma, TIn, TInStorage>(x, mask, a, row, j, out float zLo);
                    float hi = Difference(z, zLo, m, out float lo);
                    value = a.Log != 0 ? (hi - logSum) + lo : Exp<TFma>(hi, lo) / total;
                }
                y[row * a.Cols + j] = TOutStorage.Store(value);
            }
        }
    }
}

/// <summary>
/// Softmax and log-softmax backward as ILGPU kernels, a group per row: s = the row's sum of y dy (softmax) or of dy
/// (log-softmax), compensated as in <see cref="SoftmaxKernels"/>, then dx = y (dy - s) or dx = dy - e^y s. dx may be y or
/// dy: both are read before dx is written, by the same thread.
/// </summary>
internal static class SoftmaxBackwardKernels
{
    /// <summary>dx of each row (rows x cols; log: log-softmax).</summary>
    public static void Rows<TFma, T, TStorage>(ArrayView<T> y, ArrayView<T> dy, ArrayView<T> dx, long rows, long cols, int log)
        where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        var sums = SharedMemory.Allocate<float>(SoftmaxKernels.MaxGroupSize);
        var errors = SharedMemory.Allocate<float>(SoftmaxKernels.MaxGroupSize);
        int t = Group.IdxX, step = Group.DimX;
        for (long row = Grid.IdxX; row < rows; row += Grid.DimX)
        {
            long o = row * cols;
            float sum = 0f, error = 0f;
            for (long j = t; j < cols; j += step)
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
            sum = SoftmaxKernels.GroupSum(sum, error, sums, errors, out float totalError);
            float s = SoftmaxKernels.Combine(sum, totalError);
            for (long j = t; j < cols; j += step)
            {
                float v = TStorage.Load(y[o + j]), g = TStorage.Load(dy[o + j]);
                float result = log != 0
                    ? g - VectorMath.Exp(new ScalarLane<TFma>(v)).Value * s
                    : v * (g - s);
                dx[o + j] = TStorage.Store(result);
            }
        }
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
/// Cross-entropy from logits as an ILGPU kernel, a group per row, loss and gradient in one launch:
/// loss = log sum e^(z - m) + (1 - eps)(m - z_t) + eps (m - mean z), dz = scale (softmax(z) - eps / C - (1 - eps) [j = t]).
/// The logits' sum for smoothing is taken scaled by 2^-24 (exact), so logits near ±FLT_MAX cannot overflow it. An ignored
/// row gives loss 0 and a zero gradient; a target outside [0, C), or a row with NaN, +inf or only -inf, gives NaN.
/// The gradient may overwrite the logits: every logit (z_t included) is read before the barrier that precedes the writes.
/// </summary>
internal static class CrossEntropyKernels
{
    const float Down = 5.9604644775390625e-8f, Up = 16777216f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Add(ref float sum, ref float error, float term) => SoftmaxKernels.Accumulate(ref sum, ref error, term);

    /// <summary>Losses (and, with <see cref="CrossEntropyArgs.HasGradient"/>, gradients) of every row.</summary>
    public static void Rows<TFma, T, TStorage>(ArrayView<T> logits, ArrayView<int> targets, ArrayView<float> losses, ArrayView<T> gradient, CrossEntropyArgs a)
        where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        var floats = SharedMemory.Allocate<float>(SoftmaxKernels.MaxGroupSize);
        var errors = SharedMemory.Allocate<float>(SoftmaxKernels.MaxGroupSize);
        var flags = SharedMemory.Allocate<int>(SoftmaxKernels.MaxGroupSize);
        int t = Group.IdxX, step = Group.DimX;
        for (long row = Grid.IdxX; row < a.Rows; row += Grid.DimX)
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
            m = SoftmaxKernels.GroupMax(m, floats);
            state = SoftmaxKernels.GroupOr(state, flags);
            sumZ = SoftmaxKernels.GroupSum(sumZ, errorZ, floats, errors, out float sumZError);
            zt = SoftmaxKernels.GroupSum(zt, 0f, floats, errors, out _);
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
            float total = SoftmaxKernels.GroupRowSum(ones, rest, error, floats, errors, out float excess);

            if (t == 0)
            {
                float logSum = VectorMath.Log1pNonNegative(new ScalarLane<TFma>(excess)).Value;
                float loss = logSum;
                if (a.Smoothing < 1f) loss += (1f - a.Smoothing) * (m - zt);
                if (a.Smoothing > 0f) loss += a.Smoothing * (m - SoftmaxKernels.Combine(sumZ, sumZError) * (Up / a.Cols));
                losses[row] = ignored ? 0f : bad ? float.NaN : loss;
            }
            if (a.HasGradient == 0) continue;

            // Pass 3: the gradient (after the barriers above, so it may overwrite the logits).
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
            Group.Barrier();
        }
    }
}
