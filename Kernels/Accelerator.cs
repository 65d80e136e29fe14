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

    /// <summary>A gated unit in one pass: y = act(gate) * up, with gate, up and y of equal length.</summary>
    public void Glu(GatedUnit unit, BufferView<float> gate, BufferView<float> up, BufferView<float> y)
    {
        CheckUnit(unit);
        CheckInOut(gate, y, nameof(gate), nameof(y));
        CheckInOut(up, y, nameof(up), nameof(y));
        Guard.SameLength(gate.Length, up.Length, nameof(gate), nameof(up));
        Guard.SameLength(gate.Length, y.Length, nameof(gate), nameof(y));
        if (y.Length > 0) RunGlu(unit, GluLayout.Separate, gate, up, y, 1, y.Length);
        KeepAlive(gate, up, y);
    }

    /// <summary>
    /// A gated unit on the packed output of a fused gate/up projection: <paramref name="packed"/> is
    /// [rows, 2d] with each row's gate half first, then its up half; y is [rows, d].
    /// </summary>
    public void GluPacked(GatedUnit unit, BufferView<float> packed, BufferView<float> y, long rows, long d)
    {
        CheckUnit(unit);
        ThrowIfDisposed();
        Guard.On(this, packed, nameof(packed));
        Guard.On(this, y, nameof(y));
        // Any overlap, not just a partial one: y is half as long as packed, so there is no exact in-place form.
        if (ReferenceEquals(packed.Buffer.Storage, y.Buffer.Storage) && packed.Length > 0 && y.Length > 0
            && packed.Offset < y.Offset + y.Length && y.Offset < packed.Offset + packed.Length)
            throw new ArgumentException("y overlaps packed; the packed layout cannot be computed in place (y is half as long). Use a separate output.", nameof(y));
        long outputs = Guard.Shape(rows, d);
        if (d > long.MaxValue / 2 || outputs > long.MaxValue / 2)
            throw new ArgumentOutOfRangeException(nameof(d), d, $"rows * 2d = {rows} * 2 * {d} overflows a 64-bit length.");
        Guard.Length(packed.Length, 2 * outputs, nameof(packed), $"rows * 2d = {rows} * {2 * d}");
        Guard.Length(y.Length, outputs, nameof(y), $"rows * d = {rows} * {d}");
        if (outputs > 0) RunGlu(unit, GluLayout.Packed, packed, packed, y, rows, d);
        KeepAlive(packed, y);
    }

    /// <summary>SwiGLU in one pass: y = silu(gate) * up.</summary>
    public void SwiGlu(BufferView<float> gate, BufferView<float> up, BufferView<float> y) => Glu(GatedUnit.SwiGlu, gate, up, y);

    /// <summary>
    /// Row-wise softmax of x [rows, cols], max-subtracted so large logits do not overflow, over z = x * scale + mask when
    /// <paramref name="options"/> give them. A row containing NaN or +inf, or only -inf, comes out all NaN (as PyTorch;
    /// <see cref="SoftmaxOptions.Safe"/> makes an all -inf row zeros); -inf entries of other rows give 0.
    /// </summary>
    /// <param name="x">The logits, rows * cols.</param>
    /// <param name="y">The output, rows * cols; may be <paramref name="x"/> (in place).</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Columns per row (&gt;= 1).</param>
    /// <param name="options">Scale, mask and safe rows; null: plain softmax.</param>
    public void Softmax(BufferView<float> x, BufferView<float> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: false, options);

    /// <summary>
    /// Row-wise log-softmax of x [rows, cols]: z - max - ln(sum e^(z - max)) with z = x * scale + mask; special rows as
    /// <see cref="Softmax"/> (-inf entries give -inf; a safe all -inf row gives -inf).
    /// </summary>
    /// <param name="x">The logits, rows * cols.</param>
    /// <param name="y">The output, rows * cols; may be <paramref name="x"/> (in place).</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Columns per row (&gt;= 1).</param>
    /// <param name="options">Scale, mask and safe rows; null: plain log-softmax.</param>
    public void LogSoftmax(BufferView<float> x, BufferView<float> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: true, options);

    void SoftmaxCore(BufferView<float> x, BufferView<float> y, long rows, long cols, bool log, SoftmaxOptions? options)
    {
        CheckInOut(x, y, nameof(x), nameof(y));
        long total = CheckRows(rows, cols, (x, nameof(x)), (y, nameof(y)));
        var input = SoftmaxInput.Plain;
        if (options is not null)
        {
            if (!float.IsFinite(options.Scale) || options.Scale <= 0)
                throw new ArgumentOutOfRangeException("Scale", options.Scale, "options.Scale must be finite and > 0 (1 for none).");
            long maskStride = 0;
            if (options.HasMask)
            {
                Guard.On(this, options.Mask, "Mask");
                long length = options.Mask.Length;
                if (length != cols && length != total)
                    throw new ArgumentException(
                        $"Mask has {length} elements; it must hold cols = {cols} (one row for all rows) or rows * cols = {total} (one per element).", "Mask");
                maskStride = length == cols && rows != 1 ? 0 : cols;
                Guard.NoPartialOverlap(options.Mask, y, "Mask", nameof(y));
            }
            input = new SoftmaxInput(options.Scale, options.Mask, maskStride, options.Safe);
        }
        if (total > 0) RunSoftmax(x, y, rows, cols, log, input);
        KeepAlive(x, y, input.Mask);
    }

    /// <summary>
    /// The gradient of <see cref="Softmax"/>: dx = y * (dy - sum_j dy_j y_j) per row, from the forward output y. If the
    /// forward used <see cref="SoftmaxOptions.Scale"/>, multiply dx by it to get the gradient with respect to x (the mask
    /// has gradient dx itself).
    /// </summary>
    /// <param name="y">The forward output, rows * cols.</param>
    /// <param name="dy">The gradient of the loss with respect to y, rows * cols.</param>
    /// <param name="dx">The gradient with respect to the softmax input, rows * cols; may be <paramref name="dy"/> or <paramref name="y"/> (in place).</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Columns per row (&gt;= 1).</param>
    public void SoftmaxBackward(BufferView<float> y, BufferView<float> dy, BufferView<float> dx, long rows, long cols)
        => BackwardCore(y, dy, dx, rows, cols, log: false);

    /// <summary>
    /// The gradient of <see cref="LogSoftmax"/>: dx = dy - exp(y) * sum_j dy_j per row, from the forward output y (scale:
    /// as <see cref="SoftmaxBackward"/>).
    /// </summary>
    /// <param name="y">The forward output (log-probabilities), rows * cols.</param>
    /// <param name="dy">The gradient of the loss with respect to y, rows * cols.</param>
    /// <param name="dx">The gradient with respect to the log-softmax input, rows * cols; may be <paramref name="dy"/> or <paramref name="y"/>.</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Columns per row (&gt;= 1).</param>
    public void LogSoftmaxBackward(BufferView<float> y, BufferView<float> dy, BufferView<float> dx, long rows, long cols)
        => BackwardCore(y, dy, dx, rows, cols, log: true);

    void BackwardCore(BufferView<float> y, BufferView<float> dy, BufferView<float> dx, long rows, long cols, bool log)
    {
        CheckInOut(dy, dx, nameof(dy), nameof(dx));
        CheckInOut(y, dx, nameof(y), nameof(dx));
        long total = CheckRows(rows, cols, (y, nameof(y)), (dy, nameof(dy)), (dx, nameof(dx)));
        if (total > 0) RunSoftmaxBackward(y, dy, dx, rows, cols, log);
        KeepAlive(y, dy, dx);
    }

    /// <summary>
    /// Cross-entropy from logits, fused per row: the row's log-sum-exp (max-subtracted), its loss and, when
    /// <paramref name="dLogits"/> is given, its gradient, in one kernel. With eps the label smoothing and C = cols:
    /// loss_r = (1 - eps)(lse - z_t) + eps/C sum_j (lse - z_j); dLogits = GradientScale (softmax(z) - (1 - eps) onehot(t) - eps/C).
    /// Rows whose target is <see cref="CrossEntropyOptions.IgnoreIndex"/> get loss 0 and gradient 0. A target outside
    /// [0, cols) that is not the ignore index, or a row holding NaN or +inf or only -inf, gives a NaN loss and a NaN
    /// gradient row (devices cannot throw mid-kernel; check <c>float.IsNaN</c> on the losses).
    /// </summary>
    /// <param name="logits">The logits z, rows * cols.</param>
    /// <param name="targets">The class index of each row, rows (or the ignore index).</param>
    /// <param name="losses">The loss of each row, rows (float; reduce it yourself); disjoint from the other views.</param>
    /// <param name="dLogits">The gradient, rows * cols; a default view for none; may be <paramref name="logits"/> (the gradient overwrites them).</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Classes (&gt;= 1).</param>
    /// <param name="options">Ignore index, label smoothing, gradient scale; null: the defaults.</param>
    public void CrossEntropy(BufferView<float> logits, BufferView<int> targets, BufferView<float> losses, BufferView<float> dLogits,
        long rows, long cols, CrossEntropyOptions? options = null)
    {
        ThrowIfDisposed();
        options ??= DefaultCrossEntropy;
        if (!(options.LabelSmoothing >= 0 && options.LabelSmoothing <= 1))
            throw new ArgumentOutOfRangeException("LabelSmoothing", options.LabelSmoothing, "options.LabelSmoothing must be in [0, 1].");
        if (!float.IsFinite(options.GradientScale))
            throw new ArgumentOutOfRangeException("GradientScale", options.GradientScale, "options.GradientScale must be finite.");
        Guard.On(this, logits, nameof(logits));
        Guard.On(this, targets, nameof(targets));
        Guard.On(this, losses, nameof(losses));
        bool gradient = dLogits.Buffer is not null;
        if (gradient)
        {
            Guard.On(this, dLogits, nameof(dLogits));
            Guard.NoPartialOverlap(logits, dLogits, nameof(logits), nameof(dLogits));
            Guard.Disjoint(dLogits, losses, nameof(dLogits), nameof(losses));
        }
        Guard.Disjoint(logits, losses, nameof(logits), nameof(losses));
        long total = CheckRows(rows, cols, (logits, nameof(logits)));
        if (gradient) Guard.Length(dLogits.Length, total, nameof(dLogits), $"rows * cols = {rows} * {cols}");
        Guard.Length(targets.Length, rows, nameof(targets), "rows");
        Guard.Length(losses.Length, rows, nameof(losses), "rows");
        if (total > 0) RunCrossEntropy(logits, targets, losses, dLogits, rows, cols, options);
        KeepAlive(logits, losses, dLogits);
        GC.KeepAlive(targets.Buffer);
    }

    static readonly CrossEntropyOptions DefaultCrossEntropy = new();

    /// <summary>Checks the shape and that every view holds rows * cols; returns rows * cols.</summary>
    static long CheckRows(long rows, long cols, params ReadOnlySpan<(BufferView<float> View, string Name)> views)
    {
        long total = Guard.Shape(rows, cols);
        foreach (var (view, name) in views) Guard.Length(view.Length, total, name, $"rows * cols = {rows} * {cols}");
        return total;
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

    static void CheckUnit(GatedUnit unit)
    {
        if (!Enum.IsDefined(unit))
            throw new ArgumentOutOfRangeException(nameof(unit), unit, $"unit must be one of {string.Join(", ", Enum.GetNames<GatedUnit>())}.");
    }

    /// <summary>
    /// Keeps the buffers behind the views reachable until the op has been run or queued. The backends work on raw
    /// handles (a host pointer, a cl_mem); without this, a buffer referenced only by a view argument could be
    /// finalized, and its memory freed, while the kernel still reads it.
    /// </summary>
    static void KeepAlive(BufferView<float> a, BufferView<float> b, BufferView<float> c = default)
    {
        GC.KeepAlive(a.Buffer);
        GC.KeepAlive(b.Buffer);
        GC.KeepAlive(c.Buffer);
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
    private protected abstract void RunSoftmax(BufferView<float> x, BufferView<float> y, long rows, long cols, bool log, in SoftmaxInput input);
    private protected abstract void RunSoftmaxBackward(BufferView<float> y, BufferView<float> dy, BufferView<float> dx, long rows, long cols, bool log);
    private protected abstract void RunCrossEntropy(BufferView<float> logits, BufferView<int> targets, BufferView<float> losses, BufferView<float> dLogits,
        long rows, long cols, CrossEntropyOptions options);
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
