using System.Runtime.CompilerServices;

namespace GpuActivations.Cpu;

/// <summary>
/// Softmax and log-softmax backward, and cross-entropy from logits, on the CPU: row ops of <see cref="RowDriver"/> (a
/// reduction over the row, then an elementwise pass), with row sums in double across blocks of float lanes.
/// </summary>
internal static unsafe class SoftmaxGradCpu
{
    /// <summary>dx = y (dy - sum dy y) (softmax) or dy - e^y sum dy (log-softmax), per row; dx may equal y or dy.</summary>
    public static void Backward(float* y, float* dy, float* dx, long rows, long cols, bool log)
        => RowDriver.Run<BackwardRows, double>(new BackwardRows(y, dy, dx, cols, log), rows, cols);

    /// <summary>Per-row cross-entropy losses and (grad not null) gradients; grad may equal logits.</summary>
    public static void CrossEntropy(float* logits, int* targets, float* losses, float* grad, long rows, long cols, CrossEntropyOptions options)
        => RowDriver.Run<CrossEntropyRows, CrossEntropyState>(new CrossEntropyRows(logits, targets, losses, grad, rows, cols, options.IgnoreIndex,
            options.LabelSmoothing, options.GradientScale), rows, cols);

    readonly struct BackwardRows(float* y, float* dy, float* dx, long cols, bool log) : IRowOp<double>
    {
        public double Reduce(long row, long start, long count)
        {
            long o = row * cols + start;
            return log ? ElementwiseDriver.Sum(new SecondOp(), y + o, dy + o, count) : ElementwiseDriver.Sum(new ProductOp(), y + o, dy + o, count);
        }

        public double Merge(in double a, in double b) => a + b;

        public void Write(long row, long start, long count, in double slice, in double whole)
        {
            long o = row * cols + start;
            if (log) ElementwiseDriver.Binary(new LogSoftmaxGradOp((float)whole), y + o, dy + o, dx + o, count);
            else ElementwiseDriver.Binary(new SoftmaxGradOp((float)whole), y + o, dy + o, dx + o, count);
        }
    }

    readonly struct CrossEntropyRows(float* logits, int* targets, float* losses, float* grad, long rows, long cols, int ignore, float eps, float gradScale)
        : IRowOp<CrossEntropyState>
    {
        public CrossEntropyState Reduce(long row, long start, long count)
        {
            int t = targets[row];
            if (t == ignore) return default;
            float* z = logits + row * cols + start;
            float* g = grad == null ? null : grad + row * cols + start;
            // Everything this slice needs from the logits is read before pass 1 stores its exponentials in the gradient,
            // which may be the logits themselves: the sum for smoothing, and z_t if the target lies in this slice.
            // Scaled by 2^-24 (exact) so float lanes of logits near +-FLT_MAX cannot overflow; the blocks add up in double.
            double sumZ = eps > 0 ? ElementwiseDriver.Sum(new ScaledSecondOp(), z, z, count) * 16777216.0 : 0;
            long tt = t - start;
            bool hasZt = tt >= 0 && tt < count;
            float zt = hasZt ? z[tt] : 0f;
            // With a gradient, pass 1 leaves e^(z - slice max) in it, so the gradient pass scales them instead of spending
            // a second exponential per logit.
            SoftmaxState softmax = SoftmaxCpu.Reduce(z, null, 1f, g, count, store: g != null,
                ahead: SoftmaxCpu.NextRow(logits, row, start, count, rows, cols));
            return new(softmax, sumZ, zt, hasZt);
        }

        public CrossEntropyState Merge(in CrossEntropyState a, in CrossEntropyState b)
            => new(SoftmaxState.Merge(a.Softmax, b.Softmax), a.SumZ + b.SumZ, a.HasZt ? a.Zt : b.Zt, a.HasZt || b.HasZt);

        public void Write(long row, long start, long count, in CrossEntropyState slice, in CrossEntropyState whole)
        {
            int t = targets[row];
            float* g = grad == null ? null : grad + row * cols + start;
            SoftmaxState s = whole.Softmax;
            bool ignored = t == ignore;
            bool bad = !ignored && ((uint)t >= (ulong)cols || s.IsNaN || s.Empty || s.Max == float.PositiveInfinity);
            if (start == 0)
            {
                double logSum = s.LogSum;
                losses[row] = ignored ? 0f : bad ? float.NaN
                    : (float)(logSum + (eps < 1 ? (1 - (double)eps) * ((double)s.Max - whole.Zt) : 0)
                                     + (eps > 0 ? eps * ((double)s.Max - whole.SumZ / cols) : 0));
            }
            if (g == null) return;
            if (ignored || bad)
            {
                RowDriver.Fill(g, count, ignored ? 0f : float.NaN);
                return;
            }
            float offset = (float)((double)gradScale * eps / cols);
            if (slice.Softmax.Empty)
            {
                RowDriver.Fill(g, count, 0f - offset); // every e^(z - max) of this slice is 0 (pass 1 stored nothing)
            }
            else
            {
                // g holds e^(z - slice max); the row's factor is GradientScale e^(slice max - row max) / sum.
                SoftmaxState own = slice.Softmax;
                double factor = (double)gradScale * (own.Max == s.Max ? 1.0 : Math.Exp((double)own.Max - s.Max)) / s.Sum;
                ElementwiseDriver.Unary(new ScaleShiftOp((float)factor, offset), g, g, count);
            }
            long tt = t - start;
            if (tt >= 0 && tt < count) g[tt] -= (float)((double)gradScale * (1 - (double)eps));
        }
    }

    /// <summary>a * b.</summary>
    readonly struct ProductOp : IBinaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Invoke<TV>(TV a, TV b) where TV : unmanaged, ISimd<TV> => a * b;
    }

    /// <summary>b.</summary>
    readonly struct SecondOp : IBinaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Invoke<TV>(TV a, TV b) where TV : unmanaged, ISimd<TV> => b;
    }

    /// <summary>b * 2^-24: logits summed without overflow (the caller scales the double total back).</summary>
    readonly struct ScaledSecondOp : IBinaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Invoke<TV>(TV a, TV b) where TV : unmanaged, ISimd<TV> => b * TV.Create(5.9604644775390625e-8f);
    }

    /// <summary>y (dy - s).</summary>
    readonly struct SoftmaxGradOp(float s) : IBinaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Invoke<TV>(TV y, TV dy) where TV : unmanaged, ISimd<TV> => y * (dy - TV.Create(s));
    }

    /// <summary>dy - e^y s.</summary>
    readonly struct LogSoftmaxGradOp(float s) : IBinaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Invoke<TV>(TV y, TV dy) where TV : unmanaged, ISimd<TV> => dy - VectorMath.Exp(y) * TV.Create(s);
    }

    /// <summary>e factor - offset: the stored exponentials scaled to the softmax, minus the smoothing's eps / C, before the target's own term.</summary>
    readonly struct ScaleShiftOp(float factor, float offset) : IUnaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Invoke<TV>(TV e) where TV : unmanaged, ISimd<TV> => e * TV.Create(factor) - TV.Create(offset);
    }
}

/// <summary>A slice's cross-entropy state: its softmax state, the sum of its logits (label smoothing) and z_t (held by the slice that contains the target).</summary>
internal readonly record struct CrossEntropyState(SoftmaxState Softmax, double SumZ, float Zt, bool HasZt);
