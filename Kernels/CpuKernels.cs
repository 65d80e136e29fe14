using System.Runtime.InteropServices;
using GpuActivations.Cpu;

namespace GpuActivations;

/// <summary>
/// The CPU ops on spans, for engines that keep their tensors in managed or native host memory (like
/// <c>TensorPrimitives</c>): same kernels, semantics and checks as the CPU <see cref="Accelerator"/>, no buffers.
/// Outputs may be their inputs (in place) but must not partially overlap them. Large spans use every core.
/// Every op takes float spans; fp16/bf16 spans are offered for the inference ops (Apply, Glu, and Softmax with 16-bit
/// or float32 output); the other ops' 16-bit forms, and softmax options, are on <see cref="Accelerator"/> (its CPU
/// accelerator wraps host memory with <see cref="Accelerator.Wrap{T}"/> without copying).
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

    /// <summary>dx = dy * f'(x) elementwise (<see cref="Accelerator.ActivationBackward(Activation, BufferView{float}, BufferView{float}, BufferView{float})"/>); dx may be x or dy.</summary>
    public static void ActivationBackward(Activation activation, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        ArgumentNullException.ThrowIfNull(activation);
        Backward(activation, false, x, dy, dx, nameof(x));
    }

    /// <summary>dx = dy * f'(x) from the output y = f(x) (<see cref="Accelerator.ActivationBackwardFromOutput(Activation, BufferView{float}, BufferView{float}, BufferView{float})"/>); dx may be y or dy.</summary>
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
    /// PReLU's backward pass (<see cref="Accelerator.PReluBackward(BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float})"/>): dx = x &lt; 0 ? alpha[c] dy : dy and
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
    /// <summary>A gated unit in one pass: y = act(gate) * up (see <see cref="Accelerator.Glu(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float})"/>).</summary>
    public static void Glu(GatedUnit unit, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(unit);
        InOut(gate, y, nameof(gate), nameof(y));
        InOut(up, y, nameof(up), nameof(y));
        Guard.SameLength(gate.Length, up.Length, nameof(gate), nameof(up));
        fixed (float* pg = gate, pu = up, py = y) if (y.Length > 0) CpuOps.Glu(unit, GluLayout.Separate, pg, pu, py, 1, y.Length);
    }

    /// <summary>A gated unit on packed [rows, 2d] input into y [rows, d] (see <see cref="Accelerator.GluPacked(GatedUnit, BufferView{float}, BufferView{float}, long, long, GluPacking)"/>).</summary>
    public static void GluPacked(GatedUnit unit, ReadOnlySpan<float> packed, Span<float> y, int rows, int d, GluPacking packing = GluPacking.Halves)
    {
        ArgumentNullException.ThrowIfNull(unit);
        GluLayout layout = Accelerator.PackedLayout(packing);
        long outputs = Accelerator.PackedShape(packed.Length, y.Length, nameof(y), rows, d);
        if (packed.Overlaps(y)) throw new ArgumentException("y overlaps packed; the packed layout cannot be computed in place. Use a separate output.", nameof(y));
        fixed (float* pp = packed, py = y) if (outputs > 0) CpuOps.Glu(unit, layout, pp, pp, py, rows, d);
    }

    /// <summary>The backward pass of <see cref="Glu(GatedUnit, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float})"/>: dGate = dy up act'(gate), dUp = dy act(gate) (see <see cref="Accelerator.GluBackward(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float})"/>).</summary>
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

    /// <summary>The backward pass of <see cref="GluPacked"/>: dPacked, in packed's layout, from packed and dy [rows, d] (see <see cref="Accelerator.GluPackedBackward(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float}, long, long, GluPacking)"/>).</summary>
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

    /// <summary>Row-wise softmax of x [rows, cols], max-subtracted (special rows as <see cref="Accelerator.Softmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>).</summary>
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

    /// <summary>
    /// The gradient of <see cref="Softmax(ReadOnlySpan{float}, Span{float}, int, int)"/> from its output y [rows, cols]:
    /// dx = y (dy - sum_j dy_j y_j) per row, row sums accumulated in double (see
    /// <see cref="Accelerator.SoftmaxBackward(BufferView{float}, BufferView{float}, BufferView{float}, long, long)"/>).
    /// </summary>
    /// <param name="y">The forward output, rows * cols.</param>
    /// <param name="dy">The gradient with respect to y, rows * cols.</param>
    /// <param name="dx">The gradient with respect to the softmax input, rows * cols; may be <paramref name="dy"/> or <paramref name="y"/> (in place).</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Columns per row (&gt;= 1).</param>
    public static void SoftmaxBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols)
        => SoftmaxBackwardCore(y, dy, dx, rows, cols, log: false);

    /// <summary>
    /// The gradient of <see cref="LogSoftmax(ReadOnlySpan{float}, Span{float}, int, int)"/> from its output y [rows, cols]:
    /// dx = dy - e^y sum_j dy_j per row (see
    /// <see cref="Accelerator.LogSoftmaxBackward(BufferView{float}, BufferView{float}, BufferView{float}, long, long)"/>).
    /// </summary>
    /// <param name="y">The forward output (log-probabilities), rows * cols.</param>
    /// <param name="dy">The gradient with respect to y, rows * cols.</param>
    /// <param name="dx">The gradient with respect to the log-softmax input, rows * cols; may be <paramref name="dy"/> or <paramref name="y"/> (in place).</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Columns per row (&gt;= 1).</param>
    public static void LogSoftmaxBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols)
        => SoftmaxBackwardCore(y, dy, dx, rows, cols, log: true);

    static void SoftmaxBackwardCore(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols, bool log)
    {
        Guard.NoPartialOverlap(dy, dx, nameof(dy), nameof(dx));
        Guard.NoPartialOverlap(y, dx, nameof(y), nameof(dx));
        long total = Guard.Shape(rows, cols);
        Guard.Length(y.Length, total, nameof(y), $"rows * cols = {rows} * {cols}");
        Guard.Length(dy.Length, total, nameof(dy), $"rows * cols = {rows} * {cols}");
        Guard.Length(dx.Length, total, nameof(dx), $"rows * cols = {rows} * {cols}");
        fixed (float* py = y, pdy = dy, pdx = dx) if (total > 0) SoftmaxGradCpu.Backward(py, pdy, pdx, rows, cols, log);
    }

    /// <summary>
    /// Cross-entropy from logits, fused per row (see
    /// <see cref="Accelerator.CrossEntropy(BufferView{float}, BufferView{int}, BufferView{float}, BufferView{float}, long, long, CrossEntropyOptions?)"/>):
    /// each row's loss (1 - eps)(lse - z_t) + eps/C sum_j (lse - z_j) and, when <paramref name="dLogits"/> is not empty, its
    /// gradient GradientScale (softmax(z) - (1 - eps) onehot(t) - eps/C). Ignored rows get loss and gradient 0; a target out of
    /// [0, cols) or a row holding NaN, +inf or only -inf gives a NaN loss and gradient row.
    /// </summary>
    /// <param name="logits">The logits z, rows * cols.</param>
    /// <param name="targets">The class index of each row (or the ignore index), rows.</param>
    /// <param name="losses">The loss of each row, rows; disjoint from the other spans.</param>
    /// <param name="dLogits">The gradient, rows * cols, or an empty span for none; may be <paramref name="logits"/> (the gradient overwrites them).</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Classes (&gt;= 1).</param>
    /// <param name="options">Ignore index, label smoothing, gradient scale; null: the defaults.</param>
    public static void CrossEntropy(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, Span<float> losses, Span<float> dLogits,
        int rows, int cols, CrossEntropyOptions? options = null)
    {
        options = Accelerator.CheckCrossEntropyOptions(options);
        long total = Guard.Shape(rows, cols);
        bool gradient = !dLogits.IsEmpty;
        if (gradient)
        {
            Guard.NoPartialOverlap(logits, dLogits, nameof(logits), nameof(dLogits));
            Guard.Disjoint(dLogits, losses, nameof(dLogits), nameof(losses));
        }
        Guard.Disjoint(logits, losses, nameof(logits), nameof(losses));
        // targets are int32 and the outputs float32: views of one buffer through different types are compared as bytes.
        Guard.Disjoint(MemoryMarshal.AsBytes(targets), MemoryMarshal.AsBytes((ReadOnlySpan<float>)losses), nameof(targets), nameof(losses));
        if (gradient) Guard.Disjoint(MemoryMarshal.AsBytes(targets), MemoryMarshal.AsBytes((ReadOnlySpan<float>)dLogits), nameof(targets), nameof(dLogits));
        Guard.Length(logits.Length, total, nameof(logits), $"rows * cols = {rows} * {cols}");
        if (gradient) Guard.Length(dLogits.Length, total, nameof(dLogits), $"rows * cols = {rows} * {cols}");
        Guard.Length(targets.Length, rows, nameof(targets), "rows");
        Guard.Length(losses.Length, rows, nameof(losses), "rows");
        fixed (float* pz = logits, pl = losses, pg = dLogits) fixed (int* pt = targets)
            if (total > 0) SoftmaxGradCpu.CrossEntropy(pz, pt, pl, gradient ? pg : null, rows, cols, options);
    }

    /// <summary>y = activation(x) on fp16 storage: computed in float32, each result rounded once to fp16.</summary>
    public static void Apply(Activation activation, ReadOnlySpan<Half> x, Span<Half> y) => ApplyStaged(activation, x, y);

    /// <summary>y = activation(x) on bf16 storage: computed in float32, each result rounded once to bf16.</summary>
    public static void Apply(Activation activation, ReadOnlySpan<BFloat16> x, Span<BFloat16> y) => ApplyStaged(activation, x, y);

    /// <summary>A gated unit on fp16 storage: y = act(gate) * up in float32, rounded once to fp16.</summary>
    public static void Glu(GatedUnit unit, ReadOnlySpan<Half> gate, ReadOnlySpan<Half> up, Span<Half> y) => GluStaged(unit, gate, up, y);

    /// <summary>A gated unit on bf16 storage: y = act(gate) * up in float32, rounded once to bf16.</summary>
    public static void Glu(GatedUnit unit, ReadOnlySpan<BFloat16> gate, ReadOnlySpan<BFloat16> up, Span<BFloat16> y) => GluStaged(unit, gate, up, y);

    /// <summary>Row-wise softmax of fp16 logits into float32 probabilities (mixed precision).</summary>
    public static void Softmax(ReadOnlySpan<Half> x, Span<float> y, int rows, int cols) => SoftmaxStaged(x, y, rows, cols, log: false);

    /// <summary>Row-wise softmax of bf16 logits into float32 probabilities (mixed precision).</summary>
    public static void Softmax(ReadOnlySpan<BFloat16> x, Span<float> y, int rows, int cols) => SoftmaxStaged(x, y, rows, cols, log: false);

    /// <summary>Row-wise softmax on bf16 storage, rounded once to bf16.</summary>
    public static void Softmax(ReadOnlySpan<BFloat16> x, Span<BFloat16> y, int rows, int cols) => SoftmaxStaged(x, y, rows, cols, log: false);

    /// <summary>Row-wise softmax on fp16 storage, rounded once to fp16.</summary>
    public static void Softmax(ReadOnlySpan<Half> x, Span<Half> y, int rows, int cols) => SoftmaxStaged(x, y, rows, cols, log: false);

    static void ApplyStaged<T>(Activation activation, ReadOnlySpan<T> x, Span<T> y) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(activation);
        Guard.SameLength(x.Length, y.Length, nameof(x), nameof(y));
        Guard.NoPartialOverlap(MemoryMarshal.AsBytes(x), MemoryMarshal.AsBytes(y), nameof(x), nameof(y));
        var type = StorageTypes.Of<T>(nameof(x));
        fixed (T* px = x, py = y)
            if (type == StorageType.BFloat16) CpuOps.ActivationBFloat16(activation, (ushort*)px, (ushort*)py, x.Length);
            else Staging.Run(x.Length, [new((nint)px, type, 1, true, false), new((nint)py, type, 1, false, true)],
                (p, n) => CpuOps.Activation(activation, (float*)p[0], (float*)p[1], n));
    }

    static void GluStaged<T>(GatedUnit unit, ReadOnlySpan<T> gate, ReadOnlySpan<T> up, Span<T> y) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(unit); // before staging: the kernel runs on worker threads
        Guard.SameLength(gate.Length, up.Length, nameof(gate), nameof(up));
        Guard.SameLength(gate.Length, y.Length, nameof(gate), nameof(y));
        Guard.NoPartialOverlap(MemoryMarshal.AsBytes(gate), MemoryMarshal.AsBytes(y), nameof(gate), nameof(y));
        Guard.NoPartialOverlap(MemoryMarshal.AsBytes(up), MemoryMarshal.AsBytes(y), nameof(up), nameof(y));
        var type = StorageTypes.Of<T>(nameof(gate));
        fixed (T* pg = gate, pu = up, py = y)
            Staging.Run(y.Length, [new((nint)pg, type, 1, true, false), new((nint)pu, type, 1, true, false), new((nint)py, type, 1, false, true)],
                (p, n) => CpuOps.Glu(unit, GluLayout.Separate, (float*)p[0], (float*)p[1], (float*)p[2], 1, n));
    }

    static void SoftmaxStaged<TIn, TOut>(ReadOnlySpan<TIn> x, Span<TOut> y, int rows, int cols, bool log) where TIn : unmanaged where TOut : unmanaged
    {
        long total = Guard.Shape(rows, cols);
        Guard.Length(x.Length, total, nameof(x), $"rows * cols = {rows} * {cols}");
        Guard.Length(y.Length, total, nameof(y), $"rows * cols = {rows} * {cols}");
        Guard.NoPartialOverlap(MemoryMarshal.AsBytes(x), MemoryMarshal.AsBytes(y), nameof(x), nameof(y));
        var (tin, tout) = (StorageTypes.Of<TIn>(nameof(x)), StorageTypes.Of<TOut>(nameof(y)));
        fixed (TIn* px = x) fixed (TOut* py = y)
            Staging.Run(rows, [new((nint)px, tin, cols, true, false), new((nint)py, tout, cols, false, true)],
                (p, n) => SoftmaxCpu.Run((float*)p[0], (float*)p[1], n, cols, log));
    }

    static void InOut(ReadOnlySpan<float> x, Span<float> y, string xName, string yName)
    {
        Guard.SameLength(x.Length, y.Length, xName, yName);
        Guard.NoPartialOverlap(x, y, xName, yName);
    }
}
