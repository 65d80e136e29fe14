using GpuActivations.Cpu;
using GpuActivations.Device;

namespace GpuActivations;

/// <summary>
/// A device that runs the ops: the CPU (always present), an OpenCL device or a CUDA GPU, all behind the same
/// calls. Create one with <see cref="Create(AcceleratorKind, int)"/> or <see cref="Best"/>, allocate
/// <see cref="DeviceBuffer{T}"/>s on it, call the ops, and <see cref="Synchronize"/> (host copies synchronize by
/// themselves). Ops are queued in order; on the CPU they complete before returning. Every op accepts an
/// output equal to its input (in place). An accelerator is safe to call from several threads.
/// </summary>
public abstract class Accelerator : IDisposable
{
    readonly System.Runtime.CompilerServices.ConditionalWeakTable<BufferStorage, object?> liveBuffers = new();
    volatile bool disposed;

    private protected Accelerator(AcceleratorInfo info) => Info = info;

    /// <summary>The device this accelerator runs on.</summary>
    public AcceleratorInfo Info { get; }
    /// <summary>The accelerator kind.</summary>
    public AcceleratorKind Kind => Info.Kind;
    /// <summary>The device name.</summary>
    public string Name => Info.Name;
    /// <summary>True once disposed.</summary>
    public bool IsDisposed => disposed;

    /// <summary>Whether <paramref name="kind"/> is present, its devices, and if absent why. Never throws for an absent runtime.</summary>
    public static AcceleratorAvailability Probe(AcceleratorKind kind) => Backends.Probe(kind);

    /// <summary>Every device present on this machine, the CPU first.</summary>
    public static IReadOnlyList<AcceleratorInfo> Enumerate()
        => [.. Enum.GetValues<AcceleratorKind>().SelectMany(k => Probe(k).Devices)];

    /// <summary>Creates an accelerator on device <paramref name="deviceIndex"/> of <paramref name="kind"/>.</summary>
    /// <exception cref="AcceleratorUnavailableException">The kind or device is not present; the message says why.</exception>
    public static Accelerator Create(AcceleratorKind kind, int deviceIndex = 0) => Backends.Create(kind, deviceIndex);

    /// <summary>Creates an accelerator on a device that <see cref="Enumerate"/> returned.</summary>
    public static Accelerator Create(AcceleratorInfo device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return Create(device.Kind, device.DeviceIndex);
    }

    /// <summary>The fastest accelerator present: CUDA, else an OpenCL GPU, else the CPU.</summary>
    public static Accelerator Best()
    {
        if (Probe(AcceleratorKind.Cuda).IsAvailable) return Create(AcceleratorKind.Cuda);
        var openCl = Probe(AcceleratorKind.OpenCL).Devices.FirstOrDefault(d => d.Details.Contains("GPU", StringComparison.Ordinal));
        return openCl is not null ? Create(openCl) : Create(AcceleratorKind.Cpu);
    }

    /// <summary>
    /// An accelerator over an engine's own OpenCL context and in-order command queue: ops are queued on that
    /// queue; nothing is retained, and disposing the accelerator releases neither. Buffers come from
    /// <see cref="Wrap{T}"/> (the engine's cl_mem objects) or <see cref="Allocate{T}(long)"/>.
    /// </summary>
    public static Accelerator WrapOpenCL(nint context, nint commandQueue) => OpenCL.OpenCLAccelerator.Wrap(context, commandQueue);

    /// <summary>
    /// An accelerator over an engine's own CUDA context (<c>CUcontext</c>) and stream (<c>CUstream</c>; 0 is the legacy
    /// default stream): ops are queued on that stream, and the context is made current on the calling thread at every
    /// call. Nothing is retained: disposing the accelerator neither releases the context nor destroys the stream.
    /// Buffers come from <see cref="Wrap{T}"/> (the engine's <c>CUdeviceptr</c>s) or <see cref="Allocate{T}(long)"/>.
    /// </summary>
    /// <exception cref="AcceleratorUnavailableException">The CUDA driver or NVRTC is missing; the message says which and why.</exception>
    public static Accelerator WrapCuda(nint context, nint stream) => Cuda.CudaAccelerator.Wrap(context, stream);

    /// <summary>Allocates a buffer of <paramref name="length"/> elements (contents undefined until written).</summary>
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        ThrowIfDisposed();
        return Track(new DeviceBuffer<T>(AllocateStorage(ByteCount<T>(length)), length));
    }

    /// <summary>Allocates a buffer holding a copy of <paramref name="data"/>.</summary>
    public DeviceBuffer<T> Allocate<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        var buffer = Allocate<T>(data.Length);
        buffer.CopyFrom(data);
        return buffer;
    }

    /// <summary>
    /// Wraps memory an engine owns as a buffer, without copying or taking ownership: a host pointer (CPU),
    /// a <c>cl_mem</c> of this accelerator's context (OpenCL) or a <c>CUdeviceptr</c> (CUDA). Disposing the
    /// wrapper frees nothing; the engine keeps the memory alive while the wrapper is used.
    /// </summary>
    public DeviceBuffer<T> Wrap<T>(nint nativeHandle, long length) where T : unmanaged
    {
        ThrowIfDisposed();
        if (nativeHandle == 0) throw new ArgumentNullException(nameof(nativeHandle), "nativeHandle is null; pass the engine's pointer or memory object.");
        return Track(new DeviceBuffer<T>(WrapStorage(nativeHandle, ByteCount<T>(length)), length));
    }

    /// <summary>length * sizeof(T) in bytes, or an exception naming <c>length</c> when negative or overflowing.</summary>
    static long ByteCount<T>(long length) where T : unmanaged
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "length must be >= 0.");
        try { return checked(length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()); }
        catch (OverflowException) { throw new ArgumentOutOfRangeException(nameof(length), length, "length * element size overflows a 64-bit byte count."); }
    }

    DeviceBuffer<T> Track<T>(DeviceBuffer<T> buffer) where T : unmanaged
    {
        liveBuffers.AddOrUpdate(buffer.Storage, null);
        return buffer;
    }

    /// <summary>y = activation(x) elementwise. <paramref name="y"/> may be <paramref name="x"/> (in place).</summary>
    /// <param name="activation">The activation, e.g. <c>Activation.Gelu</c> or <c>Activation.LeakyRelu(0.2f)</c>.</param>
    /// <param name="x">The input.</param>
    /// <param name="y">The output, as long as <paramref name="x"/>.</param>
    public void Apply(Activation activation, BufferView<float> x, BufferView<float> y)
    {
        ArgumentNullException.ThrowIfNull(activation);
        CheckInOut(x, y, nameof(x), nameof(y));
        Guard.SameLength(x.Length, y.Length, nameof(x), nameof(y));
        if (x.Length > 0) RunActivation(activation, x, y);
        KeepAlive(x, y);
    }

    /// <summary>
    /// PReLU: y = x &lt; 0 ? alpha[c] x : x with one learned slope per channel, the channel being the last
    /// dimension: c = i % alpha.Length.
    /// </summary>
    /// <param name="x">The input, a whole number of rows of alpha.Length channels.</param>
    /// <param name="alpha">The per-channel slopes (at least one).</param>
    /// <param name="y">The output, as long as <paramref name="x"/>.</param>
    public void PRelu(BufferView<float> x, BufferView<float> alpha, BufferView<float> y)
    {
        CheckInOut(x, y, nameof(x), nameof(y));
        Guard.On(this, alpha, nameof(alpha));
        Guard.SameLength(x.Length, y.Length, nameof(x), nameof(y));
        CheckPReluShape(x.Length, alpha.Length);
        Guard.NoPartialOverlap(alpha, y, nameof(alpha), nameof(y));
        if (x.Length > 0) RunPRelu(x, alpha, y);
        KeepAlive(x, alpha, y);
    }

    /// <summary>
    /// A gated unit in one pass: y = act(gate) * up (the clamped SwiGLU: act(min(gate, limit)) * (clamp(up) + 1)),
    /// with gate, up and y of equal length. y may be gate or up (in place).
    /// </summary>
    /// <param name="unit">The unit, e.g. <c>GatedUnit.SwiGlu</c> or <c>GatedUnit.ClampedSwiGlu()</c>.</param>
    /// <param name="gate">The gate input.</param>
    /// <param name="up">The up input, as long as <paramref name="gate"/>.</param>
    /// <param name="y">The output, as long as <paramref name="gate"/>.</param>
    public void Glu(GatedUnit unit, BufferView<float> gate, BufferView<float> up, BufferView<float> y)
    {
        ArgumentNullException.ThrowIfNull(unit);
        CheckInOut(gate, y, nameof(gate), nameof(y));
        CheckInOut(up, y, nameof(up), nameof(y));
        Guard.SameLength(gate.Length, up.Length, nameof(gate), nameof(up));
        Guard.SameLength(gate.Length, y.Length, nameof(gate), nameof(y));
        if (y.Length > 0) RunGlu(unit, GluLayout.Separate, gate, up, y, 1, y.Length);
        KeepAlive(gate, up, y);
    }

    /// <summary>
    /// A gated unit on the packed output of a fused gate/up projection: <paramref name="packed"/> is [rows, 2d], each
    /// row holding its d gates and d ups as <paramref name="packing"/> says; y is [rows, d] and must not overlap packed.
    /// </summary>
    /// <param name="unit">The unit.</param>
    /// <param name="packed">The [rows, 2d] input.</param>
    /// <param name="y">The [rows, d] output.</param>
    /// <param name="rows">The number of rows (&gt;= 0).</param>
    /// <param name="d">The number of outputs per row (&gt;= 1).</param>
    /// <param name="packing">Halves (gate half, then up half; the default) or interleaved (gate at even, up at odd positions).</param>
    public void GluPacked(GatedUnit unit, BufferView<float> packed, BufferView<float> y, long rows, long d, GluPacking packing = GluPacking.Halves)
    {
        ArgumentNullException.ThrowIfNull(unit);
        ThrowIfDisposed();
        Guard.On(this, packed, nameof(packed));
        Guard.On(this, y, nameof(y));
        GluLayout layout = PackedLayout(packing);
        // Any overlap, not just a partial one: y is half as long as packed, so there is no exact in-place form.
        Guard.Disjoint(packed, y, nameof(packed), nameof(y), "the packed layout cannot be computed in place (y is half as long). Use a separate output.");
        long outputs = PackedShape(packed.Length, y.Length, nameof(y), rows, d);
        if (outputs > 0) RunGlu(unit, layout, packed, packed, y, rows, d);
        KeepAlive(packed, y);
    }

    /// <summary>SwiGLU in one pass: y = silu(gate) * up.</summary>
    public void SwiGlu(BufferView<float> gate, BufferView<float> up, BufferView<float> y) => Glu(GatedUnit.SwiGlu, gate, up, y);

    /// <summary>
    /// The backward pass of <see cref="Glu"/> in one pass over the inputs: dGate = dy * up * act'(gate),
    /// dUp = dy * act(gate) (the clamped SwiGLU: with its clamped inputs and (up + 1), and 0 where a clamp is active).
    /// All five views have equal length. dGate may be gate and dUp may be up (in place); dGate and dUp must not overlap.
    /// </summary>
    /// <param name="unit">The unit of the forward pass.</param>
    /// <param name="gate">The forward pass's gate input.</param>
    /// <param name="up">The forward pass's up input.</param>
    /// <param name="dy">The gradient of the loss with respect to y.</param>
    /// <param name="dGate">The gradient with respect to gate (written).</param>
    /// <param name="dUp">The gradient with respect to up (written).</param>
    public void GluBackward(GatedUnit unit, BufferView<float> gate, BufferView<float> up, BufferView<float> dy,
        BufferView<float> dGate, BufferView<float> dUp)
    {
        ArgumentNullException.ThrowIfNull(unit);
        CheckInOut(gate, dGate, nameof(gate), nameof(dGate));
        CheckInOut(up, dGate, nameof(up), nameof(dGate));
        CheckInOut(dy, dGate, nameof(dy), nameof(dGate));
        CheckInOut(gate, dUp, nameof(gate), nameof(dUp));
        CheckInOut(up, dUp, nameof(up), nameof(dUp));
        CheckInOut(dy, dUp, nameof(dy), nameof(dUp));
        Guard.Disjoint(dGate, dUp, nameof(dGate), nameof(dUp), "the two gradients must go to separate memory.");
        foreach (var (view, name) in new[] { (up, nameof(up)), (dy, nameof(dy)), (dGate, nameof(dGate)), (dUp, nameof(dUp)) })
            Guard.SameLength(gate.Length, view.Length, nameof(gate), name);
        if (gate.Length > 0) RunGluBackward(unit, GluLayout.Separate, gate, up, dy, dGate, dUp, 1, gate.Length);
        KeepAlive(gate, up, dy, dGate, dUp);
    }

    /// <summary>
    /// The backward pass of <see cref="GluPacked"/>: dPacked (the gradient with respect to packed, in packed's layout)
    /// from packed and dy [rows, d]. dPacked may be packed (in place); dy must not overlap dPacked.
    /// </summary>
    /// <param name="unit">The unit of the forward pass.</param>
    /// <param name="packed">The forward pass's [rows, 2d] input.</param>
    /// <param name="dy">The [rows, d] gradient with respect to y.</param>
    /// <param name="dPacked">The [rows, 2d] gradient with respect to packed (written).</param>
    /// <param name="rows">The number of rows (&gt;= 0).</param>
    /// <param name="d">The number of outputs per row (&gt;= 1).</param>
    /// <param name="packing">The layout of packed and dPacked (see <see cref="GluPacked"/>).</param>
    public void GluPackedBackward(GatedUnit unit, BufferView<float> packed, BufferView<float> dy, BufferView<float> dPacked,
        long rows, long d, GluPacking packing = GluPacking.Halves)
    {
        ArgumentNullException.ThrowIfNull(unit);
        CheckInOut(packed, dPacked, nameof(packed), nameof(dPacked));
        Guard.On(this, dy, nameof(dy));
        GluLayout layout = PackedLayout(packing);
        Guard.Disjoint(dy, dPacked, nameof(dy), nameof(dPacked), "dy is half as long as dPacked, so it cannot share its memory.");
        long outputs = PackedShape(packed.Length, dy.Length, nameof(dy), rows, d);
        Guard.Length(dPacked.Length, 2 * outputs, nameof(dPacked), $"rows * 2d = {rows} * {2 * d}");
        if (outputs > 0) RunGluBackward(unit, layout, packed, packed, dy, dPacked, dPacked, rows, d);
        KeepAlive(packed, dy, dPacked);
    }

    /// <summary>The internal layout of a packing, or an exception naming <c>packing</c>.</summary>
    internal static GluLayout PackedLayout(GluPacking packing) => packing switch
    {
        GluPacking.Halves => GluLayout.Packed,
        GluPacking.Interleaved => GluLayout.Interleaved,
        _ => throw new ArgumentOutOfRangeException(nameof(packing), packing, "packing must be GluPacking.Halves or GluPacking.Interleaved."),
    };

    /// <summary>
    /// rows * d for a packed [rows, 2d] tensor of <paramref name="packedLength"/> elements and a dense [rows, d] one
    /// (y or dy) of <paramref name="denseLength"/>, checking the shape (rows * 2d must fit too) and both lengths.
    /// </summary>
    internal static long PackedShape(long packedLength, long denseLength, string denseName, long rows, long d)
    {
        long outputs = Guard.Shape(rows, d);
        if (d > long.MaxValue / 2 || outputs > long.MaxValue / 2)
            throw new ArgumentOutOfRangeException(nameof(d), d, $"rows * 2d = {rows} * 2 * {d} overflows a 64-bit length.");
        Guard.Length(packedLength, 2 * outputs, "packed", $"rows * 2d = {rows} * {2 * d}");
        Guard.Length(denseLength, outputs, denseName, $"rows * d = {rows} * {d}");
        return outputs;
    }

    /// <summary>
    /// Row-wise softmax of x [rows, cols], max-subtracted so large logits do not overflow. A row containing NaN
    /// or +inf, or only -inf, comes out all NaN (as PyTorch); -inf entries of other rows give 0.
    /// </summary>
    public void Softmax(BufferView<float> x, BufferView<float> y, long rows, long cols) => SoftmaxCore(x, y, rows, cols, log: false);

    /// <summary>Row-wise log-softmax of x [rows, cols]: x - max - ln(sum e^(x - max)); special rows as <see cref="Softmax"/> (-inf entries give -inf).</summary>
    public void LogSoftmax(BufferView<float> x, BufferView<float> y, long rows, long cols) => SoftmaxCore(x, y, rows, cols, log: true);

    void SoftmaxCore(BufferView<float> x, BufferView<float> y, long rows, long cols, bool log)
    {
        CheckInOut(x, y, nameof(x), nameof(y));
        long total = Guard.Shape(rows, cols);
        Guard.Length(x.Length, total, nameof(x), $"rows * cols = {rows} * {cols}");
        Guard.Length(y.Length, total, nameof(y), $"rows * cols = {rows} * {cols}");
        if (total > 0) RunSoftmax(x, y, rows, cols, log);
        KeepAlive(x, y);
    }

    /// <summary>Waits until every queued op has finished.</summary>
    public void Synchronize()
    {
        ThrowIfDisposed();
        SynchronizeCore();
    }

    internal static void CheckPReluShape(long length, long channels)
    {
        if (channels < 1) throw new ArgumentException("alpha is empty; PReLU needs one slope per channel (at least one).", "alpha");
        if (length % channels != 0)
            throw new ArgumentException($"x has {length} elements, not a multiple of alpha's {channels} channels (the channel is the last dimension).", "x");
    }

    void CheckInOut(BufferView<float> input, BufferView<float> output, string inputName, string outputName)
    {
        ThrowIfDisposed();
        Guard.On(this, input, inputName);
        Guard.On(this, output, outputName);
        Guard.NoPartialOverlap(input, output, inputName, outputName);
    }

    /// <summary>
    /// Keeps the buffers behind the views reachable until the op has been run or queued. The backends work on raw
    /// handles (a host pointer, a cl_mem); without this, a buffer referenced only by a view argument could be
    /// finalized, and its memory freed, while the kernel still reads it.
    /// </summary>
    static void KeepAlive(params ReadOnlySpan<BufferView<float>> views)
    {
        foreach (var view in views) GC.KeepAlive(view.Buffer);
    }

    private protected void ThrowIfDisposed()
    {
        if (disposed)
            throw new ObjectDisposedException(nameof(Accelerator), $"This accelerator ({Info}) has been disposed, and its buffers with it; create a new one.");
    }

    private protected abstract BufferStorage AllocateStorage(long bytes);
    private protected abstract BufferStorage WrapStorage(nint nativeHandle, long bytes);
    private protected abstract void RunActivation(Activation activation, BufferView<float> x, BufferView<float> y);
    private protected abstract void RunPRelu(BufferView<float> x, BufferView<float> alpha, BufferView<float> y);
    private protected abstract void RunGlu(GatedUnit unit, GluLayout layout, BufferView<float> gate, BufferView<float> up, BufferView<float> y, long rows, long d);
    /// <summary>The gated backward pass; for the packed layouts gate is packed, dGate is dPacked (up, dUp repeat them).</summary>
    private protected abstract void RunGluBackward(GatedUnit unit, GluLayout layout, BufferView<float> gate, BufferView<float> up, BufferView<float> dy,
        BufferView<float> dGate, BufferView<float> dUp, long rows, long d);
    private protected abstract void RunSoftmax(BufferView<float> x, BufferView<float> y, long rows, long cols, bool log);
    private protected abstract void SynchronizeCore();
    /// <summary>Releases the device itself, after every buffer has been freed.</summary>
    private protected virtual void ReleaseDevice() { }

    /// <summary>
    /// Waits for queued work, frees every buffer still allocated on this accelerator (using one afterwards
    /// throws <see cref="ObjectDisposedException"/>) and releases the device. Idempotent.
    /// </summary>
    public void Dispose()
    {
        if (disposed) return;
        try { SynchronizeCore(); }
        catch (AcceleratorException) { /* the device is going away; free what we can */ }
        disposed = true;
        foreach (var (storage, _) in liveBuffers) storage.Dispose();
        ReleaseDevice();
        GC.SuppressFinalize(this);
    }

    /// <summary>The device, e.g. "Cpu #0: AMD EPYC (2 cores, AVX-512)".</summary>
    public override string ToString() => Info.ToString();
}
