using GpuActivations.Activations;
using GpuActivations.Device;

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
            var visitor = new UnaryVisitor(xp, yp, n);
            visitor.Visit(new PReluOneSlopeOp(*alpha));
            return;
        }
        CpuParallel.For(rows, CpuParallel.Parts(n), (start, count) =>
        {
            for (long r = start; r < start + count; r++)
                ElementwiseDriver.Binary(new PReluOp(), (float*)xp + r * channels, (float*)ap, (float*)yp + r * channels, channels);
        }, alignment: 1);
    }

    /// <summary>y = act(gate) * up for rows of d in <paramref name="layout"/> (packed layouts: gate is the packed tensor, up unused).</summary>
    public static void Glu(GatedUnit unit, GluLayout layout, float* gate, float* up, float* y, long rows, long d)
    {
        var visitor = new GluVisitor(layout, (nint)gate, (nint)up, 0, (nint)y, 0, rows, d);
        unit.Accept<GluVisitor, bool>(ref visitor);
    }

    /// <summary>
    /// The backward pass: (dGate, dUp) from (gate, up, dy) for rows of d in <paramref name="layout"/>; for the packed
    /// layouts gate and dGate are the packed tensors (up, dUp unused). dGate may be gate, dUp may be up.
    /// </summary>
    public static void GluBackward(GatedUnit unit, GluLayout layout, float* gate, float* up, float* dy, float* dGate, float* dUp, long rows, long d)
    {
        var visitor = new GluVisitor(layout, (nint)gate, (nint)up, (nint)dy, (nint)dGate, (nint)dUp, rows, d);
        unit.Accept<GluVisitor, bool>(ref visitor);
    }

    readonly struct UnaryVisitor(nint x, nint y, long n) : IActivationVisitor<bool>
    {
        public bool Visit<TOp>(TOp op) where TOp : struct, IActivationOp
        {
            nint xp = x, yp = y;
            CpuParallel.For(n, CpuParallel.Parts(n), (start, count) =>
                ElementwiseDriver.Unary(op, (float*)xp + start, (float*)yp + start, count));
            return true;
        }
    }

    /// <summary>
    /// Runs a gated unit forward (dy = 0: a = y) or backward (a = dGate, b = dUp) over its layout: separate buffers
    /// as one range split across cores; packed rows one row per step (halves: the row's two halves are two ranges;
    /// interleaved: pairs are split into two stack chunks, run, and the gradients interleaved back).
    /// </summary>
    readonly struct GluVisitor(GluLayout layout, nint gate, nint up, nint dy, nint a, nint b, long rows, long d) : IGateVisitor<bool>
    {
        public bool Visit<TGate>(TGate gate, float limit) where TGate : struct, IGate
        {
            if (dy == 0)
            {
                if (limit > 0f) Forward(new ClampedGatedOp<TGate>(gate, limit));
                else Forward(new GatedOp<TGate>(gate));
            }
            else if (limit > 0f) Backward(new ClampedGatedGradientOp<TGate>(gate, limit));
            else Backward(new GatedGradientOp<TGate>(gate));
            return true;
        }

        /// <summary>Interleaved pairs go through stack chunks of this many of each.</summary>
        const int Chunk = 256;

        void Forward<TOp>(TOp op) where TOp : struct, IBinaryOp
        {
            nint g = gate, u = up, yp = a;
            long width = d;
            if (layout == GluLayout.Separate)
            {
                CpuParallel.For(width * rows, CpuParallel.Parts(width * rows), (start, count) =>
                    ElementwiseDriver.Binary(op, (float*)g + start, (float*)u + start, (float*)yp + start, count));
                return;
            }
            bool interleaved = layout == GluLayout.Interleaved;
            CpuParallel.For(rows, CpuParallel.Parts(rows * width), (start, count) =>
            {
                float* gs = stackalloc float[Chunk];
                float* us = stackalloc float[Chunk];
                for (long r = start; r < start + count; r++)
                {
                    float* row = (float*)g + r * 2 * width;
                    float* y = (float*)yp + r * width;
                    if (!interleaved)
                    {
                        ElementwiseDriver.Binary(op, row, row + width, y, width);
                        continue;
                    }
                    for (long j = 0; j < width; j += Chunk)
                    {
                        int n = (int)Math.Min(Chunk, width - j);
                        Split(row + 2 * j, gs, us, n);
                        ElementwiseDriver.Binary(op, gs, us, y + j, n);
                    }
                }
            }, alignment: 1);
        }

        void Backward<TOp>(TOp op) where TOp : struct, IGradientOp
        {
            nint g = gate, u = up, dyp = dy, dg = a, du = b;
            long width = d;
            if (layout == GluLayout.Separate)
            {
                CpuParallel.For(width * rows, CpuParallel.Parts(width * rows), (start, count) =>
                    ElementwiseDriver.Gradient(op, (float*)g + start, (float*)u + start, (float*)dyp + start, (float*)dg + start, (float*)du + start, count));
                return;
            }
            bool interleaved = layout == GluLayout.Interleaved;
            CpuParallel.For(rows, CpuParallel.Parts(rows * width), (start, count) =>
            {
                float* gs = stackalloc float[Chunk];
                float* us = stackalloc float[Chunk];
                for (long r = start; r < start + count; r++)
                {
                    float* row = (float*)g + r * 2 * width;
                    float* drow = (float*)dg + r * 2 * width;
                    float* dyRow = (float*)dyp + r * width;
                    if (!interleaved)
                    {
                        ElementwiseDriver.Gradient(op, row, row + width, dyRow, drow, drow + width, width);
                        continue;
                    }
                    for (long j = 0; j < width; j += Chunk)
                    {
                        int n = (int)Math.Min(Chunk, width - j);
                        Split(row + 2 * j, gs, us, n);
                        ElementwiseDriver.Gradient(op, gs, us, dyRow + j, gs, us, n);
                        for (int k = 0; k < n; k++)
                        {
                            drow[2 * (j + k)] = gs[k];
                            drow[2 * (j + k) + 1] = us[k];
                        }
                    }
                }
            }, alignment: 1);
        }

        /// <summary>n (gate, up) pairs into two arrays.</summary>
        static void Split(float* pairs, float* g, float* u, int n)
        {
            for (int k = 0; k < n; k++)
            {
                g[k] = pairs[2 * k];
                u[k] = pairs[2 * k + 1];
            }
        }
    }
}
