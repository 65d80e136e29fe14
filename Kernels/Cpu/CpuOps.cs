using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using GpuActivations.Activations;

namespace GpuActivations.Cpu;

/// <summary>The CPU ops on raw pointers, after validation: threading decisions and dispatch to the drivers.</summary>
internal static unsafe class CpuOps
{
    /// <summary>y = activation(x) over n elements.</summary>
    public static void Activation(Activation activation, float* x, float* y, long n)
    {
        var visitor = new UnaryVisitor((nint)x, (nint)y, n, false);
        activation.Accept<UnaryVisitor, bool>(ref visitor);
    }

    /// <summary>y = activation(x) over n bf16 elements, converting in registers (<see cref="BFloat16Driver"/>).</summary>
    public static void ActivationBFloat16(Activation activation, ushort* x, ushort* y, long n)
    {
        var visitor = new UnaryVisitor((nint)x, (nint)y, n, true);
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
        var visitor = new BackwardVisitor((nint)a, (nint)dy, (nint)dx, n, fromOutput, activation.Alpha, false);
        activation.Accept<BackwardVisitor, bool>(ref visitor);
    }

    /// <summary><see cref="ActivationBackward"/> on bf16 storage, converting in registers.</summary>
    public static void ActivationBackwardBFloat16(Activation activation, bool fromOutput, ushort* a, ushort* dy, ushort* dx, long n)
    {
        var visitor = new BackwardVisitor((nint)a, (nint)dy, (nint)dx, n, fromOutput, activation.Alpha, true);
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
            fixed (double* s = sums) PReluBackwardRows((float*)xp, (float*)ap, (float*)gp, (float*)dxp, s, channels, rows, start, count);
            for (long c = 0; c < count; c++) ((float*)dap)[start + c] = (float)sums[c];
        }, alignment: 1);
    }

    /// <summary>
    /// PReLU's backward over <paramref name="rows"/> rows for channels [start, start + count): dx, and x dy (x &lt; 0 or NaN)
    /// added to <paramref name="sums"/>[c - start] in row order. Called on consecutive row tiles with the same sums, it
    /// gives the whole tensor's sums in the same order, so staged 16-bit storage gets float32's dAlpha bit for bit.
    /// </summary>
    public static void PReluBackwardRows(float* x, float* alpha, float* dy, float* dx, double* sums, long channels, long rows, long start, long count)
    {
        for (long r = 0; r < rows; r++)
        {
            long row = r * channels + start;
            float* xr = x + row, gr = dy + row, dr = dx + row, ar = alpha + start;
            for (long c = 0; c < count; c++)
            {
                float v = xr[c], g = gr[c];
                if (!(v >= 0f)) sums[c] += (double)v * g;
                dr[c] = v < 0f ? ar[c] * g : float.IsNaN(v) ? v : g;
            }
        }
    }

    /// <summary>y = act(gate) * up for rows of d in <paramref name="layout"/> (packed layouts: gate is the packed tensor, up unused).</summary>
    public static void Glu(GatedUnit unit, GluLayout layout, float* gate, float* up, float* y, long rows, long d)
    {
        var visitor = new GluVisitor(layout, (nint)gate, (nint)up, (nint)y, 0, 0, rows, d, Backward: false);
        unit.Accept<GluVisitor, bool>(ref visitor);
    }

    /// <summary>
    /// y = act(gate) * up on bf16, converting in registers (<see cref="BFloat16Driver"/>): separate buffers (rows = 1,
    /// d = n) or packed halves ([rows, 2d], gate then up per row; <paramref name="up"/> unused).
    /// </summary>
    public static void GluBFloat16(GatedUnit unit, bool packed, ushort* gate, ushort* up, ushort* y, long rows, long d)
    {
        var visitor = new GluBFloat16Visitor(packed, (nint)gate, (nint)up, (nint)y, rows, d);
        unit.Accept<GluBFloat16Visitor, bool>(ref visitor);
    }

    readonly struct GluBFloat16Visitor(bool packed, nint gate, nint up, nint y, long rows, long d) : IGateVisitor<bool>
    {
        public bool Visit<TGate>(TGate g, float limit) where TGate : struct, IGate
        {
            if (limit > 0f) Walk(new ClampedGatedOp<TGate>(g, limit));
            else Walk(new GatedOp<TGate>(g));
            return true;
        }

        void Walk<TOp>(TOp op) where TOp : struct, IBinaryOp
        {
            if (!packed)
            {
                BinaryBFloat16(op, gate, up, y, d);
                return;
            }
            nint pg = gate, py = y;
            long width = d, total = rows * d;
            CpuParallel.For(rows, CpuParallel.Parts(total), (start, count) =>
            {
                for (long r = start; r < start + count; r++)
                {
                    ushort* row = (ushort*)pg + r * 2 * width;
                    BFloat16Driver.Binary(op, row, row + width, (ushort*)py + r * width, width, total);
                }
            }, alignment: 1);
        }
    }

    /// <summary>
    /// The backward pass: (dGate, dUp) from (gate, up, dy) for rows of d in <paramref name="layout"/>; for the packed
    /// layouts gate and dGate are the packed tensors (up, dUp unused). dGate may be gate, dUp may be up.
    /// </summary>
    public static void GluBackward(GatedUnit unit, GluLayout layout, float* gate, float* up, float* dy, float* dGate, float* dUp, long rows, long d)
    {
        var visitor = new GluVisitor(layout, (nint)gate, (nint)up, (nint)dy, (nint)dGate, (nint)dUp, rows, d, Backward: true);
        unit.Accept<GluVisitor, bool>(ref visitor);
    }

    /// <summary>y[i] = op(a[i], b[i]) over n elements, split across cores.</summary>
    static void Binary<TOp>(TOp op, nint a, nint b, nint y, long n) where TOp : struct, IBinaryOp
        => CpuParallel.For(n, CpuParallel.Parts(n), (start, count) =>
            ElementwiseDriver.Binary(op, (float*)a + start, (float*)b + start, (float*)y + start, count));

    static void Unary<TOp>(TOp op, nint x, nint y, long n) where TOp : struct, IUnaryOp
        => CpuParallel.For(n, CpuParallel.Parts(n), (start, count) =>
            ElementwiseDriver.Unary(op, (float*)x + start, (float*)y + start, count));

    static void UnaryBFloat16<TOp>(TOp op, nint x, nint y, long n) where TOp : struct, IUnaryOp
        => CpuParallel.For(n, CpuParallel.Parts(n), (start, count) =>
            BFloat16Driver.Unary(op, (ushort*)x + start, (ushort*)y + start, count));

    static void BinaryBFloat16<TOp>(TOp op, nint a, nint b, nint y, long n) where TOp : struct, IBinaryOp
        => CpuParallel.For(n, CpuParallel.Parts(n), (start, count) =>
            BFloat16Driver.Binary(op, (ushort*)a + start, (ushort*)b + start, (ushort*)y + start, count));

    readonly struct UnaryVisitor(nint x, nint y, long n, bool bf16) : IActivationVisitor<bool>
    {
        public bool Visit<TOp>(TOp op) where TOp : struct, IActivationOp
        {
            if (bf16) UnaryBFloat16(op, x, y, n); else Unary(op, x, y, n);
            return true;
        }
    }

    readonly struct BackwardVisitor(nint a, nint dy, nint dx, long n, bool fromOutput, float alpha, bool bf16) : IActivationVisitor<bool>
    {
        public bool Visit<TOp>(TOp op) where TOp : struct, IActivationOp
        {
            if (fromOutput) Run(new OutputBackwardOp<TOp>(alpha));
            else Run(new BackwardOp<TOp>(op));
            return true;
        }

        void Run<TBinary>(TBinary op) where TBinary : struct, IBinaryOp
        {
            if (bf16) BinaryBFloat16(op, a, dy, dx, n); else Binary(op, a, dy, dx, n);
        }
    }

    /// <summary>A gated pass on (gate, up) pairs and a dense [n] tensor (forward: y, written; backward: dy, read).</summary>
    interface IPairKernel
    {
        /// <summary>Runs n pairs, part of an output of <paramref name="outputTotal"/>: forward writes dense; backward reads dense and writes dGate, dUp.</summary>
        void Run(float* gate, float* up, float* dense, float* dGate, float* dUp, long n, long outputTotal);
        /// <summary>Runs n interleaved pairs: forward writes dense; backward reads dense and writes dPairs in the pairs' layout.</summary>
        void RunPairs(float* pairs, float* dense, float* dPairs, long n);
    }

    readonly struct ForwardKernel<TOp>(TOp op) : IPairKernel where TOp : struct, IBinaryOp
    {
        public void Run(float* gate, float* up, float* dense, float* dGate, float* dUp, long n, long outputTotal)
            => ElementwiseDriver.Binary(op, gate, up, dense, n, outputTotal);
        public void RunPairs(float* pairs, float* dense, float* dPairs, long n) => ElementwiseDriver.Pairs(op, pairs, dense, n);
    }

    readonly struct BackwardKernel<TOp>(TOp op) : IPairKernel where TOp : struct, IGradientOp
    {
        public void Run(float* gate, float* up, float* dense, float* dGate, float* dUp, long n, long outputTotal)
            => ElementwiseDriver.Gradient(op, gate, up, dense, dGate, dUp, n, outputTotal);
        public void RunPairs(float* pairs, float* dense, float* dPairs, long n) => ElementwiseDriver.PairsGradient(op, pairs, dense, dPairs, n);
    }

    /// <summary>
    /// Runs a gated unit forward (dense = y) or backward (dense = dy; gradients into dGate, dUp in the inputs' layout) over
    /// its layout: separate buffers, and interleaved pairs (taken apart in registers), as one range split across cores;
    /// packed halves one row per step, the row's two halves being two ranges.
    /// </summary>
    readonly struct GluVisitor(GluLayout layout, nint gate, nint up, nint dense, nint dGate, nint dUp, long rows, long d, bool Backward) : IGateVisitor<bool>
    {
        public bool Visit<TGate>(TGate gate, float limit) where TGate : struct, IGate
        {
            if (!Backward)
            {
                if (limit > 0f) Walk(new ForwardKernel<ClampedGatedOp<TGate>>(new(gate, limit)));
                else Walk(new ForwardKernel<GatedOp<TGate>>(new(gate)));
            }
            else if (limit > 0f) Walk(new BackwardKernel<ClampedGatedGradientOp<TGate>>(new(gate, limit)));
            else Walk(new BackwardKernel<GatedGradientOp<TGate>>(new(gate)));
            return true;
        }

        void Walk<TKernel>(TKernel kernel) where TKernel : struct, IPairKernel
        {
            nint g = gate, u = up, dn = dense, dg = dGate, du = dUp;
            long width = d, total = rows * d;
            if (layout == GluLayout.Separate)
            {
                CpuParallel.For(total, CpuParallel.Parts(total), (start, count) =>
                    kernel.Run((float*)g + start, (float*)u + start, (float*)dn + start, (float*)dg + start, (float*)du + start, count, 0));
                return;
            }
            if (layout == GluLayout.Interleaved)
            {
                // Rows of pairs follow one another, so [rows, 2d] is rows * d pairs in one range.
                CpuParallel.For(total, CpuParallel.Parts(total), (start, count) =>
                    kernel.RunPairs((float*)g + 2 * start, (float*)dn + start, (float*)dg + 2 * start, count));
                return;
            }
            CpuParallel.For(rows, CpuParallel.Parts(total), (start, count) =>
            {
                for (long r = start; r < start + count; r++)
                {
                    float* row = (float*)g + r * 2 * width;
                    float* gradients = (float*)dg + r * 2 * width;
                    kernel.Run(row, row + width, (float*)dn + r * width, gradients, gradients + width, width, total);
                }
            }, alignment: 1);
        }
    }
}
