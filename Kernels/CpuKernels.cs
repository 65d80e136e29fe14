using GpuActivations.Cpu;

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

    /// <summary>dx = dy * f'(x) elementwise (<see cref="Accelerator.ActivationBackward"/>); dx may be x or dy.</summary>
    public static void ActivationBackward(Activation activation, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        ArgumentNullException.ThrowIfNull(activation);
        Backward(activation, false, x, dy, dx, nameof(x));
    }

    /// <summary>dx = dy * f'(x) from the output y = f(x) (<see cref="Accelerator.ActivationBackwardFromOutput"/>); dx may be y or dy.</summary>
    /// <exception cref="ArgumentException">The activation has no derivative in terms of its output (<see cref="Activation.HasOutputDerivative"/>).</exception>
    public static void ActivationBackwardFromOutput(Activation activation, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        Accelerator.CheckOutputDerivative(activation);
        Backward(activation, true, y, dy, dx, nameof(y));
    }

    static void Backward(Activation activation, bool fromOutput, ReadOnlySpan<float> input, ReadOnlySpan<float> dy, Span<float> dx, string inputName)
    {
        InOut(input, dx, inputName, nameof(dx));
        InOut(dy, dx, nameof(dy), nameof(dx));
        Guard.SameLength(input.Length, dy.Length, inputName, nameof(dy));
        fixed (float* pa = input, pg = dy, pd = dx) if (dx.Length > 0) CpuOps.ActivationBackward(activation, fromOutput, pa, pg, pd, dx.Length);
    }

    /// <summary>
    /// PReLU's backward pass (<see cref="Accelerator.PReluBackward"/>): dx = x &lt; 0 ? alpha[c] dy : dy and
    /// dAlpha[c] = the sum over rows of (x &lt; 0 ? x dy : 0), accumulated in double; dx may be x or dy.
    /// </summary>
    public static void PReluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> alpha, ReadOnlySpan<float> dy, Span<float> dx, Span<float> dAlpha)
    {
        InOut(x, dx, nameof(x), nameof(dx));
        InOut(dy, dx, nameof(dy), nameof(dx));
        Guard.SameLength(x.Length, dy.Length, nameof(x), nameof(dy));
        Accelerator.CheckPReluShape(x.Length, alpha.Length);
        Guard.Length(dAlpha.Length, alpha.Length, nameof(dAlpha), "alpha.Length");
        Guard.NoPartialOverlap(alpha, dx, nameof(alpha), nameof(dx));
        Guard.Disjoint(x, dAlpha, nameof(x), nameof(dAlpha));
        Guard.Disjoint(alpha, dAlpha, nameof(alpha), nameof(dAlpha));
        Guard.Disjoint(dy, dAlpha, nameof(dy), nameof(dAlpha));
        Guard.Disjoint(dx, dAlpha, nameof(dx), nameof(dAlpha));
        fixed (float* px = x, pa = alpha, pg = dy, pd = dx, pda = dAlpha) CpuOps.PReluBackward(px, pa, pg, pd, pda, alpha.Length, x.Length);
    }

    /// <summary>A gated unit in one pass: y = act(gate) * up.</summary>
    public static void Glu(GatedUnit unit, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        InOut(gate, y, nameof(gate), nameof(y));
        InOut(up, y, nameof(up), nameof(y));
        Guard.SameLength(gate.Length, up.Length, nameof(gate), nameof(up));
        fixed (float* pg = gate, pu = up, py = y) if (y.Length > 0) CpuOps.Glu(unit, false, pg, pu, py, 1, y.Length);
    }

    /// <summary>A gated unit on packed [rows, 2d] input (gate half, then up half, per row) into y [rows, d].</summary>
    public static void GluPacked(GatedUnit unit, ReadOnlySpan<float> packed, Span<float> y, int rows, int d)
    {
        long outputs = Guard.Shape(rows, d);
        Guard.Length(packed.Length, Guard.Shape(rows, 2L * d), nameof(packed), $"rows * 2d = {rows} * {2L * d}");
        Guard.Length(y.Length, outputs, nameof(y), $"rows * d = {rows} * {d}");
        if (packed.Overlaps(y)) throw new ArgumentException("y overlaps packed; the packed layout cannot be computed in place. Use a separate output.", nameof(y));
        fixed (float* pp = packed, py = y) if (outputs > 0) CpuOps.Glu(unit, true, pp, pp, py, rows, d);
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
