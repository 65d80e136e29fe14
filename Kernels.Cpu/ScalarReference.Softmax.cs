namespace GpuActivations.Reference;

/// <summary>Softmax with options, the softmax and log-softmax backward passes and cross-entropy, in double.</summary>
public static partial class ScalarReference
{
    /// <summary>
    /// Row-wise softmax (or log-softmax) of z = x·scale + mask over a row-major [rows, cols] matrix, z and everything after
    /// it in double. <paramref name="mask"/> is empty (none), one row of cols (added to every row) or rows·cols.
    /// </summary>
    /// <param name="x">Inputs, exactly rows·cols long.</param>
    /// <param name="y">Outputs, at least rows·cols long.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Row length.</param>
    /// <param name="scale">The factor on x.</param>
    /// <param name="mask">The additive mask: empty, cols or rows·cols values.</param>
    /// <param name="safe">A row whose every z is -∞ gives 0 (log: -∞) instead of NaN.</param>
    /// <param name="log">Log-softmax instead of softmax.</param>
    /// <remarks>
    /// Special rows: a row whose z holds NaN or +∞, or only -∞ (unless <paramref name="safe"/>), is all NaN; otherwise -∞
    /// entries give exactly 0 (log: -∞).
    /// </remarks>
    /// <exception cref="ArgumentException">A length does not fit the shape.</exception>
    public static void Softmax(ReadOnlySpan<float> x, Span<float> y, int rows, int cols, float scale, ReadOnlySpan<float> mask, bool safe, bool log)
    {
        long count = CheckMatrix(x.Length, y.Length, rows, cols);
        if (!mask.IsEmpty && mask.Length != cols && mask.Length != count)
        {
            throw new ArgumentException("mask must be empty, cols or rows·cols long.", nameof(mask));
        }

        var z = new double[cols];
        var row = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            int maskStart = mask.Length == count ? r * cols : 0;
            for (int j = 0; j < cols; j++)
            {
                z[j] = (double)x[r * cols + j] * scale + (mask.IsEmpty ? 0.0 : mask[maskStart + j]);
            }

            SoftmaxRow(z, row, safe, log);
            for (int j = 0; j < cols; j++)
            {
                y[r * cols + j] = (float)row[j];
            }
        }
    }

    /// <summary>
    /// Row-wise softmax (or log-softmax) of x [rows, cols] in double, unrounded (<see cref="SoftmaxRow"/> per row, not safe):
    /// for tests that judge a float result against the exact value rather than its rounding.
    /// </summary>
    public static double[] SoftmaxExact(ReadOnlySpan<float> x, long rows, long cols, bool log)
    {
        var y = new double[rows * cols];
        var z = new double[cols];
        for (long r = 0; r < rows; r++)
        {
            for (long j = 0; j < cols; j++) z[j] = x[(int)(r * cols + j)];
            SoftmaxRow(z, y.AsSpan((int)(r * cols), (int)cols), safe: false, log);
        }
        return y;
    }

    /// <summary>
    /// Softmax (or log-softmax) of one row in double, max-subtracted. NaN or +∞ anywhere, or only -∞ (unless
    /// <paramref name="safe"/>: then 0, log -∞), gives an all-NaN row.
    /// </summary>
    /// <param name="z">The row.</param>
    /// <param name="y">The result, as long as z.</param>
    /// <param name="safe">A row of only -∞ gives 0 (log: -∞) instead of NaN.</param>
    /// <param name="log">Log-softmax instead of softmax.</param>
    public static void SoftmaxRow(ReadOnlySpan<double> z, Span<double> y, bool safe, bool log)
    {
        // The maximum, and whether the row is degenerate. NaN/+∞ make e^(z - max) meaningless (∞ - ∞),
        // and an all -∞ row has an empty normalizer (0/0).
        double max = double.NegativeInfinity;
        bool undefined = false;
        foreach (double v in z)
        {
            if (double.IsNaN(v) || double.IsPositiveInfinity(v))
            {
                undefined = true;
            }
            else if (v > max)
            {
                max = v;
            }
        }

        if (undefined || double.IsNegativeInfinity(max))
        {
            y[..z.Length].Fill(!undefined && safe ? (log ? double.NegativeInfinity : 0.0) : double.NaN);
            return;
        }

        // Σ e^(z_j - max) is in [1, cols]: no overflow or underflow. -∞ entries contribute 0. The max itself contributes
        // exactly 1, so ln Σ = log1p(the others' sum): a dominant logit's tiny log-softmax (-1e-30) survives, where
        // ln(1 + 1e-30) would round the sum to 1 first.
        double others = 0.0;
        bool maxSeen = false;
        foreach (double v in z)
        {
            if (v == max && !maxSeen) { maxSeen = true; continue; }
            others += Math.Exp(v - max);
        }

        double sum = 1.0 + others;
        double logSum = SpecialFunctions.Log1p(others);
        for (int j = 0; j < z.Length; j++)
        {
            y[j] = log ? (z[j] - max) - logSum : Math.Exp(z[j] - max) / sum;
        }
    }

    /// <summary>
    /// The scale of a float32 softmax (log-softmax) backward's error per element: b_j = y_j (|dy_j| + sum |dy y|)
    /// (log: |dy_j| + e^y_j sum |dy|). A float row sum errs by a small multiple of its terms' absolute sum and dy_j - S
    /// cancels, so implementations are held to a small multiple of b_j (plus ulps of the result), not to ulps alone.
    /// </summary>
    public static double[] SoftmaxBackwardBound(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, int rows, int cols, bool log)
    {
        var bound = new double[(long)rows * cols];
        for (int r = 0; r < rows; r++)
        {
            double absSum = 0;
            for (int j = 0; j < cols; j++) absSum += Math.Abs((double)dy[r * cols + j] * (log ? 1 : y[r * cols + j]));
            for (int j = 0; j < cols; j++)
            {
                int i = r * cols + j;
                bound[i] = log ? Math.Abs(dy[i]) + Math.Exp(y[i]) * absSum : y[i] * (Math.Abs(dy[i]) + absSum);
            }
        }
        return bound;
    }

    /// <summary>
    /// Softmax backward (dx = y·(dy - Σ dy·y)) or log-softmax backward (dx = dy - e^y·Σ dy) per row, in double from the
    /// float forward output <paramref name="y"/> and <paramref name="dy"/>.
    /// </summary>
    /// <param name="y">The forward output, rows·cols.</param>
    /// <param name="dy">The incoming gradient, rows·cols.</param>
    /// <param name="dx">The result, at least rows·cols.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Row length.</param>
    /// <param name="log">The log-softmax form.</param>
    /// <exception cref="ArgumentException">A length does not fit the shape.</exception>
    public static void SoftmaxBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols, bool log)
    {
        CheckMatrix(y.Length, dx.Length, rows, cols);
        CheckMatrix(dy.Length, dx.Length, rows, cols);
        var yr = new double[cols];
        var dyr = new double[cols];
        var dxr = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < cols; j++)
            {
                yr[j] = y[r * cols + j];
                dyr[j] = dy[r * cols + j];
            }

            SoftmaxBackwardRow(yr, dyr, dxr, log);
            for (int j = 0; j < cols; j++)
            {
                dx[r * cols + j] = (float)dxr[j];
            }
        }
    }

    /// <summary>One row of <see cref="SoftmaxBackward(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, bool)"/> in double.</summary>
    /// <param name="y">The forward output.</param>
    /// <param name="dy">The incoming gradient.</param>
    /// <param name="dx">The result.</param>
    /// <param name="log">The log-softmax form.</param>
    public static void SoftmaxBackwardRow(ReadOnlySpan<double> y, ReadOnlySpan<double> dy, Span<double> dx, bool log)
    {
        double s = 0.0;
        for (int j = 0; j < y.Length; j++)
        {
            s += log ? dy[j] : dy[j] * y[j];
        }

        for (int j = 0; j < y.Length; j++)
        {
            dx[j] = log ? dy[j] - Math.Exp(y[j]) * s : y[j] * (dy[j] - s);
        }
    }

    /// <summary>
    /// Cross-entropy from logits per row, PyTorch's <c>cross_entropy(reduction='none', label_smoothing=eps)</c>:
    /// loss = (1-eps)(lse - z_t) + eps/C Σ_j (lse - z_j), gradient = gradScale·(softmax - (1-eps)·onehot(t) - eps/C).
    /// Rows with target <paramref name="ignoreIndex"/>: loss 0, gradient 0. A target outside [0, cols) otherwise, or a row
    /// with NaN, +∞ or only -∞: loss NaN, gradient NaN.
    /// </summary>
    /// <param name="logits">The logits, rows·cols.</param>
    /// <param name="targets">The target class per row, rows.</param>
    /// <param name="losses">The losses, at least rows.</param>
    /// <param name="gradient">The gradient, rows·cols, or empty for none.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Classes.</param>
    /// <param name="ignoreIndex">The target value of ignored rows.</param>
    /// <param name="eps">Label smoothing in [0, 1].</param>
    /// <param name="gradScale">The gradient's factor.</param>
    /// <exception cref="ArgumentException">A length does not fit the shape.</exception>
    public static void CrossEntropy(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, Span<float> losses, Span<float> gradient,
        int rows, int cols, int ignoreIndex, double eps, double gradScale)
    {
        CheckMatrix(logits.Length, gradient.IsEmpty ? logits.Length : gradient.Length, rows, cols);
        if (targets.Length != rows || losses.Length < rows)
        {
            throw new ArgumentException("targets must hold rows values and losses at least rows.", nameof(targets));
        }

        var z = new double[cols];
        var g = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < cols; j++)
            {
                z[j] = logits[r * cols + j];
            }

            losses[r] = (float)CrossEntropyRow(z, targets[r], ignoreIndex, eps, gradScale, g);
            if (!gradient.IsEmpty)
            {
                for (int j = 0; j < cols; j++)
                {
                    gradient[r * cols + j] = (float)g[j];
                }
            }
        }
    }

    /// <summary>One row of <see cref="CrossEntropy"/> in double: returns the loss and writes the gradient into <paramref name="gradient"/>.</summary>
    /// <param name="z">The logits.</param>
    /// <param name="target">The target class.</param>
    /// <param name="ignoreIndex">The target value of ignored rows.</param>
    /// <param name="eps">Label smoothing in [0, 1].</param>
    /// <param name="gradScale">The gradient's factor.</param>
    /// <param name="gradient">The gradient, as long as z.</param>
    /// <returns>The loss.</returns>
    public static double CrossEntropyRow(ReadOnlySpan<double> z, int target, int ignoreIndex, double eps, double gradScale, Span<double> gradient)
    {
        int cols = z.Length;
        if (target == ignoreIndex)
        {
            gradient[..cols].Clear();
            return 0.0;
        }

        var p = new double[cols];
        SoftmaxRow(z, p, safe: false, log: false);
        if (target < 0 || target >= cols || double.IsNaN(p[0]))
        {
            gradient[..cols].Fill(double.NaN);
            return double.NaN;
        }

        double max = double.NegativeInfinity, sumZ = 0.0;
        foreach (double v in z)
        {
            max = Math.Max(max, v);
            sumZ += v;
        }

        double logSum = 0.0;
        foreach (double v in z)
        {
            logSum += Math.Exp(v - max);
        }

        // lse - z_j = (max - z_j) + ln Σ e^(z - max); a term with weight 0 is left out (its lse - z may be +∞).
        logSum = Math.Log(logSum);
        double loss = logSum;
        if (eps < 1)
        {
            loss += (1 - eps) * (max - z[target]);
        }

        if (eps > 0)
        {
            loss += eps * (max - sumZ / cols);
        }

        for (int j = 0; j < cols; j++)
        {
            gradient[j] = gradScale * (p[j] - (j == target ? 1 - eps : 0) - eps / cols);
        }

        return loss;
    }

    private static long CheckMatrix(int inputLength, int outputLength, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        long count = (long)rows * cols;
        if (inputLength != count)
        {
            throw new ArgumentException("The input must hold rows·cols elements.");
        }

        RequireDestination(outputLength, count, "output");
        return count;
    }
}
