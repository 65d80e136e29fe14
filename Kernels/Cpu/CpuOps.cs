using GpuActivations.Activations;

namespace GpuActivations.Cpu;

/// <summary>The CPU ops on raw pointers, after validation: threading decisions and dispatch to the drivers.</summary>
internal static unsafe class CpuOps
{
    /// <summary>y = activation(x) over n elements.</summary>
    public static void Activation(Activation activation, float* x, float* y, long n)
    {
        var visitor = new UnaryVisitor((nint)x, (nint)y, n);
        activation.Accept<UnaryVisitor, bool>(ref visitor);
    }

    /// <summary>PReLU over n elements with <paramref name="channels"/> slopes.</summary>
    public static void PRelu(float* x, float* alpha, long channels, float* y, long n)
    {
        long rows = n / channels;
        nint xp = (nint)x, ap = (nint)alpha, yp = (nint)y;
        if (channels == 1)
        {
            // The slope is data, not a parameter: any value (NaN, infinities) computes as in the per-channel loop
            // and on the devices (Activation.LeakyRelu would reject non-finite slopes, and its alpha = 0 case gives the limit).
            Unary(new PReluOneSlopeOp(*alpha), xp, yp, n);
            return;
        }
        CpuParallel.For(rows, CpuParallel.Parts(n), (start, count) =>
        {
            for (long r = start; r < start + count; r++)
                ElementwiseDriver.Binary(new PReluOp(), (float*)xp + r * channels, (float*)ap, (float*)yp + r * channels, channels);
        }, alignment: 1);
    }

    /// <summary>dx = dy * f'(x) over n elements, or from the output (<paramref name="a"/> is then y = f(x)).</summary>
    public static void ActivationBackward(Activation activation, bool fromOutput, float* a, float* dy, float* dx, long n)
    {
        var visitor = new BackwardVisitor((nint)a, (nint)dy, (nint)dx, n, fromOutput, activation.Alpha);
        activation.Accept<BackwardVisitor, bool>(ref visitor);
    }

    /// <summary>
    /// PReLU's backward over n elements of <paramref name="channels"/> channels: dx = x &lt; 0 ? alpha[c] dy : dy (NaN x
    /// gives NaN), dAlpha[c] = the sum over rows of (x &lt; 0 ? x dy : 0), NaN x included, accumulated in double in row order.
    /// Each element is read before it is written, so dx may be x or dy. Channels are split across cores (rows are not),
    /// so the sums do not depend on the core count.
    /// </summary>
    public static void PReluBackward(float* x, float* alpha, float* dy, float* dx, float* dAlpha, long channels, long n)
    {
        long rows = n / channels;
        nint xp = (nint)x, ap = (nint)alpha, gp = (nint)dy, dxp = (nint)dx, dap = (nint)dAlpha;
        CpuParallel.For(channels, (int)Math.Min(CpuParallel.Parts(n), channels), (start, count) =>
        {
            double[] sums = new double[count];
            for (long r = 0; r < rows; r++)
            {
                long row = r * channels + start;
                float* xr = (float*)xp + row, gr = (float*)gp + row, dr = (float*)dxp + row, ar = (float*)ap + start;
                for (long c = 0; c < count; c++)
                {
                    float v = xr[c], g = gr[c];
                    if (!(v >= 0f)) sums[c] += (double)v * g;
                    dr[c] = v < 0f ? ar[c] * g : float.IsNaN(v) ? v : g;
                }
            }
            for (long c = 0; c < count; c++) ((float*)dap)[start + c] = (float)sums[c];
        }, alignment: 1);
    }

    /// <summary>y = act(gate) * up for rows of d, separate (gate, up) or packed (gate | up per row).</summary>
    public static void Glu(GatedUnit unit, bool packed, float* gate, float* up, float* y, long rows, long d)
    {
        var visitor = new GluVisitor((nint)gate, (nint)up, (nint)y, rows, d, packed);
        GatedUnits.GateActivation(unit).Accept<GluVisitor, bool>(ref visitor);
    }

    /// <summary>y[i] = op(a[i], b[i]) over n elements, split across cores.</summary>
    static void Binary<TOp>(TOp op, nint a, nint b, nint y, long n) where TOp : struct, IBinaryOp
        => CpuParallel.For(n, CpuParallel.Parts(n), (start, count) =>
            ElementwiseDriver.Binary(op, (float*)a + start, (float*)b + start, (float*)y + start, count));

    static void Unary<TOp>(TOp op, nint x, nint y, long n) where TOp : struct, IUnaryOp
        => CpuParallel.For(n, CpuParallel.Parts(n), (start, count) =>
            ElementwiseDriver.Unary(op, (float*)x + start, (float*)y + start, count));

    readonly struct UnaryVisitor(nint x, nint y, long n) : IActivationVisitor<bool>
    {
        public bool Visit<TOp>(TOp op) where TOp : struct, IActivationOp
        {
            Unary(op, x, y, n);
            return true;
        }
    }

    readonly struct BackwardVisitor(nint a, nint dy, nint dx, long n, bool fromOutput, float alpha) : IActivationVisitor<bool>
    {
        public bool Visit<TOp>(TOp op) where TOp : struct, IActivationOp
        {
            if (fromOutput) Binary(new OutputBackwardOp<TOp>(alpha), a, dy, dx, n);
            else Binary(new BackwardOp<TOp>(op), a, dy, dx, n);
            return true;
        }
    }

    readonly struct GluVisitor(nint gate, nint up, nint y, long rows, long d, bool packed) : IActivationVisitor<bool>
    {
        public bool Visit<TOp>(TOp op) where TOp : struct, IActivationOp
        {
            nint g = gate, u = up, yp = y;
            long width = d;
            var gated = new GatedOp<TOp>(op);
            if (!packed)
            {
                Binary(gated, g, u, yp, width);
                return true;
            }
            CpuParallel.For(rows, CpuParallel.Parts(rows * width), (start, count) =>
            {
                for (long r = start; r < start + count; r++)
                {
                    float* row = (float*)g + r * 2 * width;
                    ElementwiseDriver.Binary(gated, row, row + width, (float*)yp + r * width, width);
                }
            }, alignment: 1);
            return true;
        }
    }
}
