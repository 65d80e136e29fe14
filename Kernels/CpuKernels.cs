using GpuActivations.Cpu;
using GpuActivations.Device;

namespace GpuActivations;

/// <summary>
/// The CPU ops on spans, for engines that keep their tensors in managed or native host memory (like
/// <c>TensorPrimitives</c>): same kernels, semantics and checks as the CPU <see cref="Accelerator"/>, no buffers.
/// Outputs may be their inputs (in place) but must not partially overlap them. Large spans use every core.
/// </summary>
public static unsafe class CpuKernels
{
    /// <summary>y = activation(x) elementwise; y.Length must equal x.Length.</summary>
    public static void Apply(Activation activation, ReadOnlySpan<float> x, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(activation);
        InOut(x, y, nameof(x), nameof(y));
        fixed (float* px = x, py = y) if (x.Length > 0) CpuOps.Activation(activation, px, py, x.Length);
    }

    /// <summary>PReLU with one slope per channel, the channel being the last dimension (c = i % alpha.Length).</summary>
    public static void PRelu(ReadOnlySpan<float> x, ReadOnlySpan<float> alpha, Span<float> y)
    {
        InOut(x, y, nameof(x), nameof(y));
        Accelerator.CheckPReluShape(x.Length, alpha.Length);
        Guard.NoPartialOverlap(alpha, y, nameof(alpha), nameof(y));
        fixed (float* px = x, pa = alpha, py = y) if (x.Length > 0) CpuOps.PRelu(px, pa, alpha.Length, py, x.Length);
    }

    /// <summary>A gated unit in one pass: y = act(gate) * up (see <see cref="Accelerator.Glu"/>).</summary>
    public static void Glu(GatedUnit unit, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(unit);
        InOut(gate, y, nameof(gate), nameof(y));
        InOut(up, y, nameof(up), nameof(y));
        Guard.SameLength(gate.Length, up.Length, nameof(gate), nameof(up));
        fixed (float* pg = gate, pu = up, py = y) if (y.Length > 0) CpuOps.Glu(unit, GluLayout.Separate, pg, pu, py, 1, y.Length);
    }

    /// <summary>A gated unit on packed [rows, 2d] input into y [rows, d] (see <see cref="Accelerator.GluPacked"/>).</summary>
    public static void GluPacked(GatedUnit unit, ReadOnlySpan<float> packed, Span<float> y, int rows, int d, GluPacking packing = GluPacking.Halves)
    {
        ArgumentNullException.ThrowIfNull(unit);
        GluLayout layout = Accelerator.PackedLayout(packing);
        long outputs = Accelerator.PackedShape(packed.Length, y.Length, nameof(y), rows, d);
        if (packed.Overlaps(y)) throw new ArgumentException("y overlaps packed; the packed layout cannot be computed in place. Use a separate output.", nameof(y));
        fixed (float* pp = packed, py = y) if (outputs > 0) CpuOps.Glu(unit, layout, pp, pp, py, rows, d);
    }

    /// <summary>The backward pass of <see cref="Glu"/>: dGate = dy up act'(gate), dUp = dy act(gate) (see <see cref="Accelerator.GluBackward"/>).</summary>
    public static void GluBackward(GatedUnit unit, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, ReadOnlySpan<float> dy, Span<float> dGate, Span<float> dUp)
    {
        ArgumentNullException.ThrowIfNull(unit);
        Guard.SameLength(gate.Length, up.Length, nameof(gate), nameof(up));
        Guard.SameLength(gate.Length, dy.Length, nameof(gate), nameof(dy));
        InOut(gate, dGate, nameof(gate), nameof(dGate));
        InOut(gate, dUp, nameof(gate), nameof(dUp));
        Guard.NoPartialOverlap(up, dGate, nameof(up), nameof(dGate));
        Guard.NoPartialOverlap(dy, dGate, nameof(dy), nameof(dGate));
        Guard.NoPartialOverlap(up, dUp, nameof(up), nameof(dUp));
        Guard.NoPartialOverlap(dy, dUp, nameof(dy), nameof(dUp));
        if (dGate.Overlaps(dUp)) throw new ArgumentException("dUp overlaps dGate; the two gradients must go to separate memory.", nameof(dUp));
        fixed (float* pg = gate, pu = up, pd = dy, pdg = dGate, pdu = dUp)
            if (gate.Length > 0) CpuOps.GluBackward(unit, GluLayout.Separate, pg, pu, pd, pdg, pdu, 1, gate.Length);
    }

    /// <summary>The backward pass of <see cref="GluPacked"/>: dPacked, in packed's layout, from packed and dy [rows, d] (see <see cref="Accelerator.GluPackedBackward"/>).</summary>
    public static void GluPackedBackward(GatedUnit unit, ReadOnlySpan<float> packed, ReadOnlySpan<float> dy, Span<float> dPacked, int rows, int d,
        GluPacking packing = GluPacking.Halves)
    {
        ArgumentNullException.ThrowIfNull(unit);
        GluLayout layout = Accelerator.PackedLayout(packing);
        long outputs = Accelerator.PackedShape(packed.Length, dy.Length, nameof(dy), rows, d);
        Guard.Length(dPacked.Length, 2 * outputs, nameof(dPacked), $"rows * 2d = {rows} * {2L * d}");
        Guard.NoPartialOverlap(packed, dPacked, nameof(packed), nameof(dPacked));
        if (dy.Overlaps(dPacked)) throw new ArgumentException("dPacked overlaps dy; dy is half as long as dPacked, so it cannot share its memory.", nameof(dPacked));
        fixed (float* pp = packed, pd = dy, pdp = dPacked)
            if (outputs > 0) CpuOps.GluBackward(unit, layout, pp, pp, pd, pdp, pdp, rows, d);
    }

    /// <summary>Row-wise softmax of x [rows, cols], max-subtracted (special rows as <see cref="Accelerator.Softmax"/>).</summary>
    public static void Softmax(ReadOnlySpan<float> x, Span<float> y, int rows, int cols) => SoftmaxCore(x, y, rows, cols, log: false);

    /// <summary>Row-wise log-softmax of x [rows, cols].</summary>
    public static void LogSoftmax(ReadOnlySpan<float> x, Span<float> y, int rows, int cols) => SoftmaxCore(x, y, rows, cols, log: true);

    static void SoftmaxCore(ReadOnlySpan<float> x, Span<float> y, int rows, int cols, bool log)
    {
        InOut(x, y, nameof(x), nameof(y));
        long total = Guard.Shape(rows, cols);
        Guard.Length(x.Length, total, nameof(x), $"rows * cols = {rows} * {cols}");
        fixed (float* px = x, py = y) if (total > 0) SoftmaxCpu.Run(px, py, rows, cols, log);
    }

    static void InOut(ReadOnlySpan<float> x, Span<float> y, string xName, string yName)
    {
        Guard.SameLength(x.Length, y.Length, xName, yName);
        Guard.NoPartialOverlap(x, y, xName, yName);
    }
}
