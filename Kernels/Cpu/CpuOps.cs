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

    /// <summary>y = act(gate) * up for rows of d, separate (gate, up) or packed (gate | up per row).</summary>
    public static void Glu(GatedUnit unit, bool packed, float* gate, float* up, float* y, long rows, long d)
    {
        var visitor = new GluVisitor((nint)gate, (nint)up, (nint)y, rows, d, packed);
        GatedUnits.GateActivation(unit).Accept<GluVisitor, bool>(ref visitor);
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

    readonly struct GluVisitor(nint gate, nint up, nint y, long rows, long d, bool packed) : IActivationVisitor<bool>
    {
        public bool Visit<TOp>(TOp op) where TOp : struct, IActivationOp
        {
            nint g = gate, u = up, yp = y;
            long width = d;
            var gated = new GatedOp<TOp>(op);
            if (!packed)
            {
                CpuParallel.For(width, CpuParallel.Parts(width), (start, count) =>
                    ElementwiseDriver.Binary(gated, (float*)g + start, (float*)u + start, (float*)yp + start, count));
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
