using GpuActivations.Cpu;

namespace GpuActivations;

/// <summary>
/// A device that runs the ops: the CPU (always present), an OpenCL device or a CUDA GPU, all behind the same
/// calls. Create one with <see cref="Create(AcceleratorKind, int)"/> or <see cref="Best"/>, allocate
/// <see cref="DeviceBuffer{T}"/>s on it, call the ops, and <see cref="Synchronize"/> (host copies synchronize by
/// themselves). Ops are queued in order; on the CPU they complete before returning. An output may be exactly an input
/// of its length (in place) except where an op says otherwise (packed GLU's y, cross-entropy's losses, PReLU's dAlpha
/// must be disjoint). An accelerator is safe to call from several threads.
/// <para>
/// Tensors may be stored as <see cref="float"/>, <see cref="Half"/> or <see cref="BFloat16"/> (the ops' element type
/// parameter; any other type throws <see cref="NotSupportedException"/>): every op loads its inputs, computes in float32
/// and rounds each result once into the output's type. Parameters (PReLU slopes, masks) are float32.
/// </para>
/// </summary>
public abstract class Accelerator : IDisposable
{
    readonly System.Runtime.CompilerServices.ConditionalWeakTable<BufferStorage, object?> liveBuffers = new();
    int disposedFlag;
    /// <summary>Ops, copies and allocations in progress (<see cref="Hold(BufferStorage[])"/>); Dispose waits for none.</summary>
    int activeOps;
    static readonly BufferStorage?[] NoStorage = [];

    private protected Accelerator(AcceleratorInfo info) => Info = info;

    /// <summary>The device this accelerator runs on.</summary>
    public AcceleratorInfo Info { get; }
    /// <summary>The accelerator kind.</summary>
    public AcceleratorKind Kind => Info.Kind;
    /// <summary>The device name.</summary>
    public string Name => Info.Name;
    /// <summary>True once disposed.</summary>
    public bool IsDisposed => Volatile.Read(ref disposedFlag) != 0;

    /// <summary>Whether <paramref name="kind"/> is present, its devices, and if absent why. Never throws for an absent runtime.</summary>
    public static AcceleratorAvailability Probe(AcceleratorKind kind) => Backends.Probe(kind);

    /// <summary>
    /// Every device present on this machine, each once: the CPU (SIMD path) first, then CUDA and OpenCL devices, then
    /// ILGPU's CPU accelerator (<see cref="AcceleratorKind.Ilgpu"/> also lists the GPUs, which are already listed by kind).
    /// </summary>
    public static IReadOnlyList<AcceleratorInfo> Enumerate()
        =>
        [
            .. Probe(AcceleratorKind.Cpu).Devices, .. Probe(AcceleratorKind.Cuda).Devices, .. Probe(AcceleratorKind.OpenCL).Devices,
            .. Probe(AcceleratorKind.Ilgpu).Devices.Where(d => d.Vendor == nameof(ILGPU.Runtime.AcceleratorType.CPU)),
        ];

    /// <summary>Creates an accelerator on device <paramref name="deviceIndex"/> of <paramref name="kind"/>.</summary>
    /// <exception cref="AcceleratorUnavailableException">The kind or device is not present; the message says why.</exception>
    public static Accelerator Create(AcceleratorKind kind, int deviceIndex = 0) => Backends.Create(kind, deviceIndex);

    /// <summary>Creates an accelerator on a device that <see cref="Enumerate"/> returned.</summary>
    public static Accelerator Create(AcceleratorInfo device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return Create(device.Kind, device.DeviceIndex);
    }

    /// <summary>
    /// The fastest accelerator present: an ILGPU CUDA device, else an ILGPU OpenCL GPU, else the CPU (SIMD path). An engine on
    /// a CUDA stream of its own wraps it with ILGPU (<c>cudaAccelerator.CreateStream(streamPtr, responsible: false)</c>) and
    /// passes that stream to <see cref="FromIlgpu"/>.
    /// </summary>
    public static Accelerator Best()
    {
        if (Probe(AcceleratorKind.Cuda).IsAvailable) return Create(AcceleratorKind.Cuda);
        var openCl = Probe(AcceleratorKind.OpenCL).Devices.FirstOrDefault(d => d.Details.Contains("GPU", StringComparison.Ordinal));
        return openCl is not null ? Create(openCl) : Create(AcceleratorKind.Cpu);
    }

    /// <summary>
    /// The library's ops on an engine's own ILGPU accelerator, queued on <paramref name="stream"/> (the accelerator's default
    /// stream when null). Nothing is taken over: disposing the result frees only the buffers allocated through it, never the
    /// ILGPU accelerator, its context or the stream. On CUDA and OpenCL every op is an ILGPU kernel. On ILGPU's CPU
    /// accelerator the ops run the library's SIMD path on the buffers' host memory (CPU speed), unless
    /// <paramref name="runKernelsOnCpu"/> asks for the ILGPU kernels themselves (emulated thread by thread: for testing them).
    /// </summary>
    /// <param name="accelerator">The engine's ILGPU accelerator.</param>
    /// <param name="stream">The stream to queue on, one of <paramref name="accelerator"/>'s; null for its default stream.</param>
    /// <param name="runKernelsOnCpu">On ILGPU's CPU accelerator, run the ILGPU kernels instead of the SIMD path.</param>
    public static Accelerator FromIlgpu(ILGPU.Runtime.Accelerator accelerator, ILGPU.Runtime.AcceleratorStream? stream = null, bool runKernelsOnCpu = false)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (stream is not null && stream.Accelerator != accelerator)
            throw new ArgumentException($"stream belongs to {stream.Accelerator.Name}, not to {accelerator.Name}; pass one of accelerator's streams.", nameof(stream));
        return Kernels.IlgpuBackend.Over(accelerator, stream, runKernelsOnCpu);
    }

    /// <summary>Allocates a buffer of <paramref name="length"/> elements (contents undefined until written).</summary>
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        ThrowIfDisposed();
        long bytes = ByteCount<T>(length);
        using (Hold(NoStorage))
            return Track(new DeviceBuffer<T>(AllocateStorage(bytes), length));
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
        long bytes = ByteCount<T>(length);
        using (Hold(NoStorage))
            return Track(new DeviceBuffer<T>(WrapStorage(nativeHandle, bytes), length));
    }

    /// <summary>length * sizeof(T) in bytes, or an exception naming <c>length</c> when negative or overflowing.</summary>
    static long ByteCount<T>(long length) where T : unmanaged
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "length must be >= 0.");
        try { return checked(length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()); }
        catch (OverflowException) { throw new ArgumentOutOfRangeException(nameof(length), length, "length * element size overflows a 64-bit byte count."); }
    }

    /// <summary>
    /// Whether buffers of <paramref name="other"/> are this accelerator's memory: the same accelerator, or (ILGPU) another
    /// stream of the same ILGPU accelerator.
    /// </summary>
    internal virtual bool SharesMemoryWith(Accelerator other) => ReferenceEquals(this, other);

    /// <summary>Lists <paramref name="buffer"/> among the live buffers that disposing this accelerator releases.</summary>
    internal DeviceBuffer<T> Track<T>(DeviceBuffer<T> buffer) where T : unmanaged
    {
        liveBuffers.AddOrUpdate(buffer.Storage, null);
        return buffer;
    }

    /// <summary>y = activation(x) elementwise. <paramref name="y"/> may be <paramref name="x"/> (in place).</summary>
    /// <param name="activation">The activation, e.g. <c>Activation.Gelu</c> or <c>Activation.LeakyRelu(0.2f)</c>.</param>
    /// <param name="x">The input.</param>
    /// <param name="y">The output, as long as <paramref name="x"/>.</param>
    public void Apply(Activation activation, BufferView<float> x, BufferView<float> y) => ApplyCore(activation, x, y);

    /// <summary>y = activation(x) on fp16 storage: computed in float32, each result rounded once to fp16.</summary>
    /// <inheritdoc cref="Apply(Activation, BufferView{float}, BufferView{float})"/>
    public void Apply(Activation activation, BufferView<Half> x, BufferView<Half> y) => ApplyCore(activation, x, y);

    /// <summary>y = activation(x) on bf16 storage: computed in float32, each result rounded once to bf16 (nearest even).</summary>
    /// <inheritdoc cref="Apply(Activation, BufferView{float}, BufferView{float})"/>
    public void Apply(Activation activation, BufferView<BFloat16> x, BufferView<BFloat16> y) => ApplyCore(activation, x, y);

    void ApplyCore<T>(Activation activation, BufferView<T> x, BufferView<T> y) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(activation);
        CheckInOut(x, y, nameof(x), nameof(y));
        Guard.SameLength(x.Length, y.Length, nameof(x), nameof(y));
        var (tx, ty) = (TensorArg.Of(x), TensorArg.Of(y));
        using (Hold(tx, ty))
            if (x.Length > 0) RunActivation(activation, tx, ty);
    }

    /// <summary>
    /// PReLU: y = x &lt; 0 ? alpha[c] x : x with one learned slope per channel, the channel being the last
    /// dimension: c = i % alpha.Length.
    /// </summary>
    /// <param name="x">The input, a whole number of rows of alpha.Length channels.</param>
    /// <param name="alpha">The per-channel slopes (at least one).</param>
    /// <param name="y">The output, as long as <paramref name="x"/>.</param>
    public void PRelu(BufferView<float> x, BufferView<float> alpha, BufferView<float> y) => PReluCore(x, alpha, y);

    /// <summary>PReLU on fp16 storage (float32 slopes), each result rounded once to fp16.</summary>
    /// <inheritdoc cref="PRelu(BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void PRelu(BufferView<Half> x, BufferView<float> alpha, BufferView<Half> y) => PReluCore(x, alpha, y);

    /// <summary>PReLU on bf16 storage (float32 slopes), each result rounded once to bf16.</summary>
    /// <inheritdoc cref="PRelu(BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void PRelu(BufferView<BFloat16> x, BufferView<float> alpha, BufferView<BFloat16> y) => PReluCore(x, alpha, y);

    void PReluCore<T>(BufferView<T> x, BufferView<float> alpha, BufferView<T> y) where T : unmanaged
    {
        CheckInOut(x, y, nameof(x), nameof(y));
        Guard.On(this, alpha, nameof(alpha));
        Guard.SameLength(x.Length, y.Length, nameof(x), nameof(y));
        CheckPReluShape(x.Length, alpha.Length);
        var (tx, ta, ty) = (TensorArg.Of(x), TensorArg.Of(alpha), TensorArg.Of(y));
        Guard.NoPartialOverlap(ta, ty, nameof(alpha), nameof(y));
        using (Hold(tx, ta, ty))
            if (x.Length > 0) RunPRelu(tx, ta, ty);
    }

    /// <summary>
    /// The backward pass of an activation: dx = dy * f'(x) elementwise, with PyTorch's derivatives (ReLU'(0) = 0,
    /// Leaky ReLU'(0) = alpha, ...); NaN in x or dy gives NaN. <paramref name="dx"/> may be <paramref name="x"/> or
    /// <paramref name="dy"/> (in place).
    /// </summary>
    /// <param name="activation">The activation the forward pass applied (with the same parameters).</param>
    /// <param name="x">The forward pass's input.</param>
    /// <param name="dy">The gradient of the loss with respect to the output, as long as <paramref name="x"/>.</param>
    /// <param name="dx">The gradient with respect to the input, as long as <paramref name="x"/>.</param>
    public void ActivationBackward(Activation activation, BufferView<float> x, BufferView<float> dy, BufferView<float> dx)
        => BackwardCore(activation, false, x, dy, dx, nameof(x));

    /// <summary>The activation's backward pass on fp16 storage: computed in float32, dx rounded once to fp16.</summary>
    /// <inheritdoc cref="ActivationBackward(Activation, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void ActivationBackward(Activation activation, BufferView<Half> x, BufferView<Half> dy, BufferView<Half> dx)
        => BackwardCore(activation, false, x, dy, dx, nameof(x));

    /// <summary>The activation's backward pass on bf16 storage: computed in float32, dx rounded once to bf16.</summary>
    /// <inheritdoc cref="ActivationBackward(Activation, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void ActivationBackward(Activation activation, BufferView<BFloat16> x, BufferView<BFloat16> dy, BufferView<BFloat16> dx)
        => BackwardCore(activation, false, x, dy, dx, nameof(x));

    void BackwardCore<T>(Activation activation, bool fromOutput, BufferView<T> input, BufferView<T> dy, BufferView<T> dx, string inputName) where T : unmanaged
    {
        if (fromOutput) CheckOutputDerivative(activation); else ArgumentNullException.ThrowIfNull(activation);
        CheckBackward(input, dy, dx, inputName);
        var (ti, tdy, tdx) = (TensorArg.Of(input, inputName), TensorArg.Of(dy), TensorArg.Of(dx));
        using (Hold(ti, tdy, tdx))
            if (input.Length > 0) RunActivationBackward(activation, fromOutput, ti, tdy, tdx);
    }

    /// <summary>
    /// The backward pass from the forward pass's output y = f(x), where that is exact and cheaper
    /// (<see cref="Activation.HasOutputDerivative"/>): dx = dy * f'(x), e.g. dy y (1 - y) for sigmoid. Lets the
    /// forward pass overwrite its input. <paramref name="dx"/> may be <paramref name="y"/> or <paramref name="dy"/>.
    /// </summary>
    /// <param name="activation">The activation; <see cref="Activation.HasOutputDerivative"/> must hold.</param>
    /// <param name="y">The forward pass's output.</param>
    /// <param name="dy">The gradient with respect to the output, as long as <paramref name="y"/>.</param>
    /// <param name="dx">The gradient with respect to the input, as long as <paramref name="y"/>.</param>
    /// <exception cref="ArgumentException">The activation has no derivative in terms of its output.</exception>
    public void ActivationBackwardFromOutput(Activation activation, BufferView<float> y, BufferView<float> dy, BufferView<float> dx)
        => BackwardCore(activation, true, y, dy, dx, nameof(y));

    /// <summary>The backward pass from the output on fp16 storage: computed in float32, dx rounded once to fp16.</summary>
    /// <inheritdoc cref="ActivationBackwardFromOutput(Activation, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void ActivationBackwardFromOutput(Activation activation, BufferView<Half> y, BufferView<Half> dy, BufferView<Half> dx)
        => BackwardCore(activation, true, y, dy, dx, nameof(y));

    /// <summary>The backward pass from the output on bf16 storage: computed in float32, dx rounded once to bf16.</summary>
    /// <inheritdoc cref="ActivationBackwardFromOutput(Activation, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void ActivationBackwardFromOutput(Activation activation, BufferView<BFloat16> y, BufferView<BFloat16> dy, BufferView<BFloat16> dx)
        => BackwardCore(activation, true, y, dy, dx, nameof(y));

    /// <summary>
    /// PReLU's backward pass: dx = x &lt; 0 ? alpha[c] dy : dy (NaN x gives NaN), and the slopes' gradient
    /// dAlpha[c] = the sum over rows of (x &lt; 0 ? x dy : 0), overwriting <paramref name="dAlpha"/>; c = i % alpha.Length.
    /// The sums are deterministic (the same inputs give the same bits on a device; on the CPU they are accumulated in
    /// double). <paramref name="dx"/> may be <paramref name="x"/> or <paramref name="dy"/>.
    /// </summary>
    /// <param name="x">The forward pass's input, a whole number of rows of alpha.Length channels.</param>
    /// <param name="alpha">The per-channel slopes (at least one).</param>
    /// <param name="dy">The gradient with respect to the output, as long as <paramref name="x"/>.</param>
    /// <param name="dx">The gradient with respect to the input, as long as <paramref name="x"/>.</param>
    /// <param name="dAlpha">The gradient with respect to the slopes, as long as <paramref name="alpha"/>; disjoint from every other argument.</param>
    public void PReluBackward(BufferView<float> x, BufferView<float> alpha, BufferView<float> dy, BufferView<float> dx, BufferView<float> dAlpha)
        => PReluBackwardCore(x, alpha, dy, dx, dAlpha);

    /// <summary>PReLU's backward pass on fp16 storage (float32 slopes and dAlpha); dx rounded once to fp16.</summary>
    /// <inheritdoc cref="PReluBackward(BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void PReluBackward(BufferView<Half> x, BufferView<float> alpha, BufferView<Half> dy, BufferView<Half> dx, BufferView<float> dAlpha)
        => PReluBackwardCore(x, alpha, dy, dx, dAlpha);

    /// <summary>PReLU's backward pass on bf16 storage (float32 slopes and dAlpha); dx rounded once to bf16.</summary>
    /// <inheritdoc cref="PReluBackward(BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void PReluBackward(BufferView<BFloat16> x, BufferView<float> alpha, BufferView<BFloat16> dy, BufferView<BFloat16> dx, BufferView<float> dAlpha)
        => PReluBackwardCore(x, alpha, dy, dx, dAlpha);

    void PReluBackwardCore<T>(BufferView<T> x, BufferView<float> alpha, BufferView<T> dy, BufferView<T> dx, BufferView<float> dAlpha) where T : unmanaged
    {
        CheckBackward(x, dy, dx, nameof(x));
        Guard.On(this, alpha, nameof(alpha));
        Guard.On(this, dAlpha, nameof(dAlpha));
        CheckPReluShape(x.Length, alpha.Length);
        Guard.Length(dAlpha.Length, alpha.Length, nameof(dAlpha), "alpha.Length");
        var (tx, ta, tdy, tdx, tda) = (TensorArg.Of(x), TensorArg.Of(alpha), TensorArg.Of(dy), TensorArg.Of(dx), TensorArg.Of(dAlpha));
        Guard.NoPartialOverlap(ta, tdx, nameof(alpha), nameof(dx));
        foreach (var (t, name) in new[] { (tx, nameof(x)), (ta, nameof(alpha)), (tdy, nameof(dy)), (tdx, nameof(dx)) })
            Guard.Disjoint(t, tda, name, nameof(dAlpha));
        using (Hold(tx, ta, tdy, tdx, tda))
            RunPReluBackward(tx, ta, tdy, tdx, tda); // also with no rows: dAlpha is then zeros
    }

    /// <summary>
    /// A gated unit in one pass: y = act(gate) * up (the clamped SwiGLU: act(min(gate, limit)) * (clamp(up) + 1)),
    /// with gate, up and y of equal length. y may be gate or up (in place).
    /// </summary>
    /// <param name="unit">The unit, e.g. <c>GatedUnit.SwiGlu</c> or <c>GatedUnit.ClampedSwiGlu()</c>.</param>
    /// <param name="gate">The gate input.</param>
    /// <param name="up">The up input, as long as <paramref name="gate"/>.</param>
    /// <param name="y">The output, as long as <paramref name="gate"/>.</param>
    public void Glu(GatedUnit unit, BufferView<float> gate, BufferView<float> up, BufferView<float> y) => GluCore(unit, gate, up, y);

    /// <summary>A gated unit on fp16 storage, computed in float32, each result rounded once to fp16.</summary>
    /// <inheritdoc cref="Glu(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void Glu(GatedUnit unit, BufferView<Half> gate, BufferView<Half> up, BufferView<Half> y) => GluCore(unit, gate, up, y);

    /// <summary>A gated unit on bf16 storage, computed in float32, each result rounded once to bf16.</summary>
    /// <inheritdoc cref="Glu(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void Glu(GatedUnit unit, BufferView<BFloat16> gate, BufferView<BFloat16> up, BufferView<BFloat16> y) => GluCore(unit, gate, up, y);

    void GluCore<T>(GatedUnit unit, BufferView<T> gate, BufferView<T> up, BufferView<T> y) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(unit);
        CheckInOut(gate, y, nameof(gate), nameof(y));
        CheckInOut(up, y, nameof(up), nameof(y));
        Guard.SameLength(gate.Length, up.Length, nameof(gate), nameof(up));
        Guard.SameLength(gate.Length, y.Length, nameof(gate), nameof(y));
        var (tg, tu, ty) = (TensorArg.Of(gate), TensorArg.Of(up), TensorArg.Of(y));
        using (Hold(tg, tu, ty))
            if (y.Length > 0) RunGlu(unit, GluLayout.Separate, tg, tu, ty, 1, y.Length);
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
        => GluPackedCore(unit, packed, y, rows, d, packing);

    /// <summary>A gated unit on packed fp16 input, computed in float32, each result rounded once to fp16.</summary>
    /// <inheritdoc cref="GluPacked(GatedUnit, BufferView{float}, BufferView{float}, long, long, GluPacking)"/>
    public void GluPacked(GatedUnit unit, BufferView<Half> packed, BufferView<Half> y, long rows, long d, GluPacking packing = GluPacking.Halves)
        => GluPackedCore(unit, packed, y, rows, d, packing);

    /// <summary>A gated unit on packed bf16 input, computed in float32, each result rounded once to bf16.</summary>
    /// <inheritdoc cref="GluPacked(GatedUnit, BufferView{float}, BufferView{float}, long, long, GluPacking)"/>
    public void GluPacked(GatedUnit unit, BufferView<BFloat16> packed, BufferView<BFloat16> y, long rows, long d, GluPacking packing = GluPacking.Halves)
        => GluPackedCore(unit, packed, y, rows, d, packing);

    void GluPackedCore<T>(GatedUnit unit, BufferView<T> packed, BufferView<T> y, long rows, long d, GluPacking packing) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(unit);
        ThrowIfDisposed();
        Guard.On(this, packed, nameof(packed));
        Guard.On(this, y, nameof(y));
        GluLayout layout = PackedLayout(packing);
        // Any overlap, not just a partial one: y is half as long as packed, so there is no exact in-place form.
        Guard.Disjoint(packed, y, nameof(packed), nameof(y), "the packed layout cannot be computed in place (y is half as long). Use a separate output.");
        long outputs = PackedShape(packed.Length, y.Length, nameof(y), rows, d);
        var (tp, ty) = (TensorArg.Of(packed), TensorArg.Of(y));
        using (Hold(tp, ty))
            if (outputs > 0) RunGlu(unit, layout, tp, tp, ty, rows, d);
    }

    /// <summary>SwiGLU in one pass: y = silu(gate) * up.</summary>
    public void SwiGlu(BufferView<float> gate, BufferView<float> up, BufferView<float> y) => GluCore(GatedUnit.SwiGlu, gate, up, y);

    /// <summary>SwiGLU on fp16 storage: y = silu(gate) * up in float32, rounded once to fp16.</summary>
    public void SwiGlu(BufferView<Half> gate, BufferView<Half> up, BufferView<Half> y) => GluCore(GatedUnit.SwiGlu, gate, up, y);

    /// <summary>SwiGLU on bf16 storage: y = silu(gate) * up in float32, rounded once to bf16.</summary>
    public void SwiGlu(BufferView<BFloat16> gate, BufferView<BFloat16> up, BufferView<BFloat16> y) => GluCore(GatedUnit.SwiGlu, gate, up, y);

    /// <summary>
    /// The backward pass of <see cref="Glu(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float})"/> in one pass
    /// over the inputs: dGate = dy * up * act'(gate), dUp = dy * act(gate) (the clamped SwiGLU: with its clamped inputs and
    /// (up + 1), and 0 where a clamp is active). All five views have equal length. dGate may be gate and dUp may be up
    /// (in place); dGate and dUp must not overlap.
    /// </summary>
    /// <param name="unit">The unit of the forward pass.</param>
    /// <param name="gate">The forward pass's gate input.</param>
    /// <param name="up">The forward pass's up input.</param>
    /// <param name="dy">The gradient of the loss with respect to y.</param>
    /// <param name="dGate">The gradient with respect to gate (written).</param>
    /// <param name="dUp">The gradient with respect to up (written).</param>
    public void GluBackward(GatedUnit unit, BufferView<float> gate, BufferView<float> up, BufferView<float> dy, BufferView<float> dGate, BufferView<float> dUp)
        => GluBackwardCore(unit, gate, up, dy, dGate, dUp);

    /// <summary>The gated backward pass on fp16 storage, computed in float32, both gradients rounded once to fp16.</summary>
    /// <inheritdoc cref="GluBackward(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void GluBackward(GatedUnit unit, BufferView<Half> gate, BufferView<Half> up, BufferView<Half> dy, BufferView<Half> dGate, BufferView<Half> dUp)
        => GluBackwardCore(unit, gate, up, dy, dGate, dUp);

    /// <summary>The gated backward pass on bf16 storage, computed in float32, both gradients rounded once to bf16.</summary>
    /// <inheritdoc cref="GluBackward(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float}, BufferView{float})"/>
    public void GluBackward(GatedUnit unit, BufferView<BFloat16> gate, BufferView<BFloat16> up, BufferView<BFloat16> dy, BufferView<BFloat16> dGate, BufferView<BFloat16> dUp)
        => GluBackwardCore(unit, gate, up, dy, dGate, dUp);

    void GluBackwardCore<T>(GatedUnit unit, BufferView<T> gate, BufferView<T> up, BufferView<T> dy, BufferView<T> dGate, BufferView<T> dUp) where T : unmanaged
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
        var (tg, tu, tdy, tdg, tdu) = (TensorArg.Of(gate), TensorArg.Of(up), TensorArg.Of(dy), TensorArg.Of(dGate), TensorArg.Of(dUp));
        using (Hold(tg, tu, tdy, tdg, tdu))
            if (gate.Length > 0) RunGluBackward(unit, GluLayout.Separate, tg, tu, tdy, tdg, tdu, 1, gate.Length);
    }

    /// <summary>
    /// The backward pass of <see cref="GluPacked(GatedUnit, BufferView{float}, BufferView{float}, long, long, GluPacking)"/>:
    /// dPacked (the gradient with respect to packed, in packed's layout) from packed and dy [rows, d]. dPacked may be packed
    /// (in place); dy must not overlap dPacked.
    /// </summary>
    /// <param name="unit">The unit of the forward pass.</param>
    /// <param name="packed">The forward pass's [rows, 2d] input.</param>
    /// <param name="dy">The [rows, d] gradient with respect to y.</param>
    /// <param name="dPacked">The [rows, 2d] gradient with respect to packed (written).</param>
    /// <param name="rows">The number of rows (&gt;= 0).</param>
    /// <param name="d">The number of outputs per row (&gt;= 1).</param>
    /// <param name="packing">The layout of packed and dPacked.</param>
    public void GluPackedBackward(GatedUnit unit, BufferView<float> packed, BufferView<float> dy, BufferView<float> dPacked,
        long rows, long d, GluPacking packing = GluPacking.Halves)
        => GluPackedBackwardCore(unit, packed, dy, dPacked, rows, d, packing);

    /// <summary>The packed gated backward pass on fp16 storage, computed in float32, dPacked rounded once to fp16.</summary>
    /// <inheritdoc cref="GluPackedBackward(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float}, long, long, GluPacking)"/>
    public void GluPackedBackward(GatedUnit unit, BufferView<Half> packed, BufferView<Half> dy, BufferView<Half> dPacked,
        long rows, long d, GluPacking packing = GluPacking.Halves)
        => GluPackedBackwardCore(unit, packed, dy, dPacked, rows, d, packing);

    /// <summary>The packed gated backward pass on bf16 storage, computed in float32, dPacked rounded once to bf16.</summary>
    /// <inheritdoc cref="GluPackedBackward(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float}, long, long, GluPacking)"/>
    public void GluPackedBackward(GatedUnit unit, BufferView<BFloat16> packed, BufferView<BFloat16> dy, BufferView<BFloat16> dPacked,
        long rows, long d, GluPacking packing = GluPacking.Halves)
        => GluPackedBackwardCore(unit, packed, dy, dPacked, rows, d, packing);

    void GluPackedBackwardCore<T>(GatedUnit unit, BufferView<T> packed, BufferView<T> dy, BufferView<T> dPacked, long rows, long d, GluPacking packing)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(unit);
        CheckInOut(packed, dPacked, nameof(packed), nameof(dPacked));
        Guard.On(this, dy, nameof(dy));
        GluLayout layout = PackedLayout(packing);
        Guard.Disjoint(dy, dPacked, nameof(dy), nameof(dPacked), "dy is half as long as dPacked, so it cannot share its memory.");
        long outputs = PackedShape(packed.Length, dy.Length, nameof(dy), rows, d);
        Guard.Length(dPacked.Length, 2 * outputs, nameof(dPacked), $"rows * 2d = {rows} * {2 * d}");
        var (tp, tdy, tdp) = (TensorArg.Of(packed), TensorArg.Of(dy), TensorArg.Of(dPacked));
        using (Hold(tp, tdy, tdp))
            if (outputs > 0) RunGluBackward(unit, layout, tp, tp, tdy, tdp, tdp, rows, d);
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

    /// <summary>Row-wise softmax on fp16 storage, computed in float32, each probability rounded once to fp16.</summary>
    /// <inheritdoc cref="Softmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>
    public void Softmax(BufferView<Half> x, BufferView<Half> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: false, options);

    /// <summary>Row-wise softmax on bf16 storage, computed in float32, each probability rounded once to bf16.</summary>
    /// <inheritdoc cref="Softmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>
    public void Softmax(BufferView<BFloat16> x, BufferView<BFloat16> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: false, options);

    /// <summary>Row-wise softmax of fp16 logits into float32 probabilities (mixed precision: nothing rounded to fp16).</summary>
    /// <inheritdoc cref="Softmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>
    public void Softmax(BufferView<Half> x, BufferView<float> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: false, options);

    /// <summary>Row-wise softmax of bf16 logits into float32 probabilities (mixed precision: nothing rounded to bf16).</summary>
    /// <inheritdoc cref="Softmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>
    public void Softmax(BufferView<BFloat16> x, BufferView<float> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: false, options);

    /// <summary>
    /// Row-wise log-softmax of x [rows, cols]: z - max - ln(sum e^(z - max)) with z = x * scale + mask; special rows as
    /// <see cref="Softmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/> (-inf entries give -inf; a safe all -inf row gives -inf).
    /// </summary>
    /// <param name="x">The logits, rows * cols.</param>
    /// <param name="y">The output, rows * cols; may be <paramref name="x"/> (in place).</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Columns per row (&gt;= 1).</param>
    /// <param name="options">Scale, mask and safe rows; null: plain log-softmax.</param>
    public void LogSoftmax(BufferView<float> x, BufferView<float> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: true, options);

    /// <summary>Row-wise log-softmax on fp16 storage, computed in float32, rounded once to fp16.</summary>
    /// <inheritdoc cref="LogSoftmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>
    public void LogSoftmax(BufferView<Half> x, BufferView<Half> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: true, options);

    /// <summary>Row-wise log-softmax on bf16 storage, computed in float32, rounded once to bf16.</summary>
    /// <inheritdoc cref="LogSoftmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>
    public void LogSoftmax(BufferView<BFloat16> x, BufferView<BFloat16> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: true, options);

    /// <summary>Row-wise log-softmax of fp16 logits into float32 (mixed precision).</summary>
    /// <inheritdoc cref="LogSoftmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>
    public void LogSoftmax(BufferView<Half> x, BufferView<float> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: true, options);

    /// <summary>Row-wise log-softmax of bf16 logits into float32 (mixed precision).</summary>
    /// <inheritdoc cref="LogSoftmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>
    public void LogSoftmax(BufferView<BFloat16> x, BufferView<float> y, long rows, long cols, SoftmaxOptions? options = null)
        => SoftmaxCore(x, y, rows, cols, log: true, options);

    void SoftmaxCore<TIn, TOut>(BufferView<TIn> x, BufferView<TOut> y, long rows, long cols, bool log, SoftmaxOptions? options)
        where TIn : unmanaged where TOut : unmanaged
    {
        ThrowIfDisposed();
        Guard.On(this, x, nameof(x));
        Guard.On(this, y, nameof(y));
        var (tx, ty) = (TensorArg.Of(x), TensorArg.Of(y));
        Guard.NoPartialOverlap(tx, ty, nameof(x), nameof(y));
        long total = CheckRows(rows, cols, (tx, nameof(x)), (ty, nameof(y)));
        var input = SoftmaxInput.Plain;
        if (options is not null)
        {
            if (!float.IsFinite(options.Scale) || options.Scale <= 0)
                throw new ArgumentOutOfRangeException("options.Scale", options.Scale, "options.Scale must be finite and > 0 (1 for none).");
            long maskStride = 0;
            if (options.HasMask)
            {
                Guard.On(this, options.Mask, "options.Mask");
                long length = options.Mask.Length;
                if (length != cols && length != total)
                    throw new ArgumentException(
                        $"options.Mask has {length} elements; it must hold cols = {cols} (one row for all rows) or rows * cols = {total} (one per element).", "options.Mask");
                maskStride = length == cols && rows != 1 ? 0 : cols;
                Guard.NoPartialOverlap(TensorArg.Of(options.Mask), ty, "options.Mask", nameof(y));
            }
            input = new SoftmaxInput(options.Scale, options.HasMask ? TensorArg.Of(options.Mask) : default, maskStride, options.Safe);
        }
        using (Hold(tx, ty, input.Mask))
            if (total > 0) RunSoftmax(tx, ty, rows, cols, log, input);
    }

    /// <summary>
    /// The gradient of <see cref="Softmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>: dx = y * (dy - sum_j dy_j y_j)
    /// per row, from the forward output y. If the forward used <see cref="SoftmaxOptions.Scale"/>, multiply dx by it to get the
    /// gradient with respect to x (the mask has gradient dx itself).
    /// </summary>
    /// <param name="y">The forward output, rows * cols.</param>
    /// <param name="dy">The gradient of the loss with respect to y, rows * cols.</param>
    /// <param name="dx">The gradient with respect to the softmax input, rows * cols; may be <paramref name="dy"/> or <paramref name="y"/> (in place).</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Columns per row (&gt;= 1).</param>
    public void SoftmaxBackward(BufferView<float> y, BufferView<float> dy, BufferView<float> dx, long rows, long cols)
        => SoftmaxBackwardCore(y, dy, dx, rows, cols, log: false);

    /// <summary>Softmax's gradient on fp16 storage, computed in float32, dx rounded once to fp16.</summary>
    /// <inheritdoc cref="SoftmaxBackward(BufferView{float}, BufferView{float}, BufferView{float}, long, long)"/>
    public void SoftmaxBackward(BufferView<Half> y, BufferView<Half> dy, BufferView<Half> dx, long rows, long cols)
        => SoftmaxBackwardCore(y, dy, dx, rows, cols, log: false);

    /// <summary>Softmax's gradient on bf16 storage, computed in float32, dx rounded once to bf16.</summary>
    /// <inheritdoc cref="SoftmaxBackward(BufferView{float}, BufferView{float}, BufferView{float}, long, long)"/>
    public void SoftmaxBackward(BufferView<BFloat16> y, BufferView<BFloat16> dy, BufferView<BFloat16> dx, long rows, long cols)
        => SoftmaxBackwardCore(y, dy, dx, rows, cols, log: false);

    /// <summary>
    /// The gradient of <see cref="LogSoftmax(BufferView{float}, BufferView{float}, long, long, SoftmaxOptions?)"/>: dx = dy - exp(y) * sum_j dy_j
    /// per row, from the forward output y (scale: as <see cref="SoftmaxBackward(BufferView{float}, BufferView{float}, BufferView{float}, long, long)"/>).
    /// </summary>
    /// <param name="y">The forward output (log-probabilities), rows * cols.</param>
    /// <param name="dy">The gradient of the loss with respect to y, rows * cols.</param>
    /// <param name="dx">The gradient with respect to the log-softmax input, rows * cols; may be <paramref name="dy"/> or <paramref name="y"/>.</param>
    /// <param name="rows">Rows (&gt;= 0).</param>
    /// <param name="cols">Columns per row (&gt;= 1).</param>
    public void LogSoftmaxBackward(BufferView<float> y, BufferView<float> dy, BufferView<float> dx, long rows, long cols)
        => SoftmaxBackwardCore(y, dy, dx, rows, cols, log: true);

    /// <summary>Log-softmax's gradient on fp16 storage, computed in float32, dx rounded once to fp16.</summary>
    /// <inheritdoc cref="LogSoftmaxBackward(BufferView{float}, BufferView{float}, BufferView{float}, long, long)"/>
    public void LogSoftmaxBackward(BufferView<Half> y, BufferView<Half> dy, BufferView<Half> dx, long rows, long cols)
        => SoftmaxBackwardCore(y, dy, dx, rows, cols, log: true);

    /// <summary>Log-softmax's gradient on bf16 storage, computed in float32, dx rounded once to bf16.</summary>
    /// <inheritdoc cref="LogSoftmaxBackward(BufferView{float}, BufferView{float}, BufferView{float}, long, long)"/>
    public void LogSoftmaxBackward(BufferView<BFloat16> y, BufferView<BFloat16> dy, BufferView<BFloat16> dx, long rows, long cols)
        => SoftmaxBackwardCore(y, dy, dx, rows, cols, log: true);

    void SoftmaxBackwardCore<T>(BufferView<T> y, BufferView<T> dy, BufferView<T> dx, long rows, long cols, bool log) where T : unmanaged
    {
        CheckInOut(dy, dx, nameof(dy), nameof(dx));
        CheckInOut(y, dx, nameof(y), nameof(dx));
        var (ty, tdy, tdx) = (TensorArg.Of(y), TensorArg.Of(dy), TensorArg.Of(dx));
        long total = CheckRows(rows, cols, (ty, nameof(y)), (tdy, nameof(dy)), (tdx, nameof(dx)));
        using (Hold(ty, tdy, tdx))
            if (total > 0) RunSoftmaxBackward(ty, tdy, tdx, rows, cols, log);
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
        => CrossEntropyCore(logits, targets, losses, dLogits, rows, cols, options);

    /// <summary>Cross-entropy from fp16 logits (mixed precision): float32 losses; the gradient, if asked, rounded once to fp16.</summary>
    /// <inheritdoc cref="CrossEntropy(BufferView{float}, BufferView{int}, BufferView{float}, BufferView{float}, long, long, CrossEntropyOptions?)"/>
    public void CrossEntropy(BufferView<Half> logits, BufferView<int> targets, BufferView<float> losses, BufferView<Half> dLogits,
        long rows, long cols, CrossEntropyOptions? options = null)
        => CrossEntropyCore(logits, targets, losses, dLogits, rows, cols, options);

    /// <summary>Cross-entropy from bf16 logits (mixed precision): float32 losses; the gradient, if asked, rounded once to bf16.</summary>
    /// <inheritdoc cref="CrossEntropy(BufferView{float}, BufferView{int}, BufferView{float}, BufferView{float}, long, long, CrossEntropyOptions?)"/>
    public void CrossEntropy(BufferView<BFloat16> logits, BufferView<int> targets, BufferView<float> losses, BufferView<BFloat16> dLogits,
        long rows, long cols, CrossEntropyOptions? options = null)
        => CrossEntropyCore(logits, targets, losses, dLogits, rows, cols, options);

    void CrossEntropyCore<T>(BufferView<T> logits, BufferView<int> targets, BufferView<float> losses, BufferView<T> dLogits,
        long rows, long cols, CrossEntropyOptions? options) where T : unmanaged
    {
        ThrowIfDisposed();
        options = CheckCrossEntropyOptions(options);
        Guard.On(this, logits, nameof(logits));
        Guard.On(this, targets, nameof(targets));
        Guard.On(this, losses, nameof(losses));
        var (tl, tt, tloss) = (TensorArg.Of(logits), new TensorArg(targets.Buffer.Storage, targets.Offset, targets.Length, StorageType.Float32), TensorArg.Of(losses));
        bool gradient = dLogits.Buffer is not null;
        TensorArg tdl = default;
        if (gradient)
        {
            Guard.On(this, dLogits, nameof(dLogits));
            tdl = TensorArg.Of(dLogits);
            Guard.NoPartialOverlap(tl, tdl, nameof(logits), nameof(dLogits));
            Guard.Disjoint(tdl, tloss, nameof(dLogits), nameof(losses));
        }
        Guard.Disjoint(tl, tloss, nameof(logits), nameof(losses));
        // Targets (int32) and the outputs may be views of one memory through different types: compared as bytes.
        Guard.Disjoint(tt, tloss, nameof(targets), nameof(losses));
        if (gradient) Guard.Disjoint(tt, tdl, nameof(targets), nameof(dLogits));
        long total = CheckRows(rows, cols, (tl, nameof(logits)));
        if (gradient) Guard.Length(dLogits.Length, total, nameof(dLogits), $"rows * cols = {rows} * {cols}");
        Guard.Length(targets.Length, rows, nameof(targets), "rows");
        Guard.Length(losses.Length, rows, nameof(losses), "rows");
        using (Hold(tl, tt, tloss, tdl))
            if (total > 0) RunCrossEntropy(tl, tt, tloss, gradient ? tdl : null, rows, cols, options);
    }

    static readonly CrossEntropyOptions DefaultCrossEntropy = new();

    /// <summary>The options, or the defaults for null; throws, naming the option, for a smoothing outside [0, 1] or a non-finite gradient scale.</summary>
    internal static CrossEntropyOptions CheckCrossEntropyOptions(CrossEntropyOptions? options)
    {
        options ??= DefaultCrossEntropy;
        if (!(options.LabelSmoothing >= 0 && options.LabelSmoothing <= 1))
            throw new ArgumentOutOfRangeException("options.LabelSmoothing", options.LabelSmoothing, "options.LabelSmoothing must be in [0, 1].");
        if (!float.IsFinite(options.GradientScale))
            throw new ArgumentOutOfRangeException("options.GradientScale", options.GradientScale, "options.GradientScale must be finite.");
        return options;
    }

    /// <summary>Checks the shape and that every tensor holds rows * cols; returns rows * cols.</summary>
    static long CheckRows(long rows, long cols, params ReadOnlySpan<(TensorArg Tensor, string Name)> tensors)
    {
        long total = Guard.Shape(rows, cols);
        foreach (var (tensor, name) in tensors) Guard.Length(tensor.Length, total, name, $"rows * cols = {rows} * {cols}");
        return total;
    }

    /// <summary>Waits until every queued op has finished.</summary>
    public void Synchronize()
    {
        ThrowIfDisposed();
        using (Hold(NoStorage))
            SynchronizeCore();
    }

    /// <summary>Throws, naming <c>activation</c>, unless it is non-null and has a derivative in terms of its output.</summary>
    internal static void CheckOutputDerivative(Activation activation)
    {
        ArgumentNullException.ThrowIfNull(activation);
        if (!activation.HasOutputDerivative)
            throw new ArgumentException(
                $"{activation} has no derivative in terms of its output; call ActivationBackward with the input x instead. "
                + "HasOutputDerivative holds for Sigmoid, Tanh, Relu, Relu6, Selu, and LeakyRelu and Elu with alpha > 0.", nameof(activation));
    }

    /// <summary>The checks of a backward op: input, dy and dx on this accelerator, of one length, dx in place or disjoint.</summary>
    void CheckBackward<T>(BufferView<T> input, BufferView<T> dy, BufferView<T> dx, string inputName) where T : unmanaged
    {
        CheckInOut(input, dx, inputName, nameof(dx));
        CheckInOut(dy, dx, nameof(dy), nameof(dx));
        Guard.SameLength(input.Length, dy.Length, inputName, nameof(dy));
        Guard.SameLength(input.Length, dx.Length, inputName, nameof(dx));
    }

    internal static void CheckPReluShape(long length, long channels)
    {
        if (channels < 1) throw new ArgumentException("alpha is empty; PReLU needs one slope per channel (at least one).", "alpha");
        if (length % channels != 0)
            throw new ArgumentException($"x has {length} elements, not a multiple of alpha's {channels} channels (the channel is the last dimension).", "x");
    }

    void CheckInOut<T>(BufferView<T> input, BufferView<T> output, string inputName, string outputName) where T : unmanaged
    {
        ThrowIfDisposed();
        Guard.On(this, input, inputName);
        Guard.On(this, output, outputName);
        Guard.NoPartialOverlap(input, output, inputName, outputName);
    }

    /// <summary>
    /// Holds the accelerator and the memory of <paramref name="tensors"/> (default ones skipped) until the lease is
    /// disposed, when the op has run or been queued: a buffer disposed meanwhile by another thread is freed when the
    /// lease ends, and the accelerator's Dispose waits for it. The lease also keeps the buffers reachable (the backends
    /// work on raw handles, so a buffer referenced only by a view could otherwise be finalized under the kernel).
    /// </summary>
    /// <exception cref="ObjectDisposedException">The accelerator, or a buffer, was disposed by another thread after the checks.</exception>
    internal Lease Hold(params ReadOnlySpan<TensorArg> tensors)
    {
        var held = new BufferStorage[tensors.Length];
        for (int i = 0; i < tensors.Length; i++) held[i] = tensors[i].Storage;
        return Hold(held);
    }

    /// <summary>Holds the accelerator and <paramref name="storages"/> (null entries skipped); see <see cref="Hold(ReadOnlySpan{TensorArg})"/>.</summary>
    internal Lease Hold(BufferStorage?[] storages)
    {
        Interlocked.Increment(ref activeOps);
        if (Volatile.Read(ref disposedFlag) != 0)
        {
            Interlocked.Decrement(ref activeOps);
            ThrowIfDisposed();
        }
        int taken = 0;
        try
        {
            for (; taken < storages.Length; taken++)
                if (storages[taken] is { } s && !s.TryAddReference())
                    throw new ObjectDisposedException("buffer",
                        "A buffer of this op was disposed by another thread while the op was starting; dispose buffers only after the ops using them.");
        }
        catch
        {
            for (int i = 0; i < taken; i++) storages[i]?.ReleaseReference();
            Interlocked.Decrement(ref activeOps);
            throw;
        }
        return new Lease(this, storages);
    }

    /// <summary>An op's hold on its accelerator and its buffers' memory (<see cref="Hold(BufferStorage[])"/>); Dispose releases it.</summary>
    internal readonly struct Lease(Accelerator accelerator, BufferStorage?[] storages) : IDisposable
    {
        /// <summary>Drops the buffer references (freeing any buffer disposed meanwhile) and leaves the accelerator.</summary>
        public void Dispose()
        {
            foreach (var s in storages) s?.ReleaseReference();
            Interlocked.Decrement(ref accelerator.activeOps);
        }
    }

    private protected void ThrowIfDisposed()
    {
        if (IsDisposed)
            throw new ObjectDisposedException(nameof(Accelerator), $"This accelerator ({Info}) has been disposed, and its buffers with it; create a new one.");
    }

    private protected abstract BufferStorage AllocateStorage(long bytes);
    private protected abstract BufferStorage WrapStorage(nint nativeHandle, long bytes);
    private protected abstract void RunActivation(Activation activation, TensorArg x, TensorArg y);
    private protected abstract void RunPRelu(TensorArg x, TensorArg alpha, TensorArg y);
    /// <summary>dx = dy * f'(x), from x or (<paramref name="fromOutput"/>) from y = f(x) passed as <paramref name="input"/>.</summary>
    private protected abstract void RunActivationBackward(Activation activation, bool fromOutput, TensorArg input, TensorArg dy, TensorArg dx);
    private protected abstract void RunPReluBackward(TensorArg x, TensorArg alpha, TensorArg dy, TensorArg dx, TensorArg dAlpha);
    private protected abstract void RunGlu(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg y, long rows, long d);
    /// <summary>The gated backward pass; for the packed layouts gate is packed, dGate is dPacked (up, dUp repeat them).</summary>
    private protected abstract void RunGluBackward(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg dy,
        TensorArg dGate, TensorArg dUp, long rows, long d);
    private protected abstract void RunSoftmax(TensorArg x, TensorArg y, long rows, long cols, bool log, in SoftmaxInput input);
    private protected abstract void RunSoftmaxBackward(TensorArg y, TensorArg dy, TensorArg dx, long rows, long cols, bool log);
    /// <summary>Cross-entropy; <paramref name="targets"/> holds int32 (typed Float32 only for its 4-byte size); no gradient when <paramref name="dLogits"/> is null.</summary>
    private protected abstract void RunCrossEntropy(TensorArg logits, TensorArg targets, TensorArg losses, TensorArg? dLogits,
        long rows, long cols, CrossEntropyOptions options);
    private protected abstract void SynchronizeCore();
    /// <summary>Releases the device itself, after every buffer has been freed.</summary>
    private protected virtual void ReleaseDevice() { }

    /// <summary>
    /// Waits for ops other threads have in progress (ops started afterwards throw <see cref="ObjectDisposedException"/>)
    /// and for queued work, frees every buffer still allocated on this accelerator (using one afterwards throws
    /// <see cref="ObjectDisposedException"/>) and releases the device. Idempotent.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposedFlag, 1) != 0) return;
        // New ops now throw ObjectDisposedException; wait for those other threads have in progress.
        var spin = new SpinWait();
        while (Volatile.Read(ref activeOps) != 0) spin.SpinOnce(sleep1Threshold: 20);
        try { SynchronizeCore(); }
        catch (AcceleratorException) { /* the device is going away; free what we can */ }
        foreach (var (storage, _) in liveBuffers) storage.Dispose();
        ReleaseDevice();
        GC.SuppressFinalize(this);
    }

    /// <summary>The device, e.g. "Cpu #0: AMD EPYC (2 cores, AVX-512)".</summary>
    public override string ToString() => Info.ToString();
}
