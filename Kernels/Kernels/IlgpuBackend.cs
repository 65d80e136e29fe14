using GpuActivations.Activations;
using GpuActivations.Cpu;
using ILGPU;
using ILGPU.Runtime;
using Half = ILGPU.Half;

namespace GpuActivations.Kernels;

using IlgpuDevice = ILGPU.Runtime.Accelerator;

/// <summary>
/// The library's accelerator over an ILGPU accelerator and one of its streams: every op is an ILGPU kernel (on CUDA,
/// OpenCL, or ILGPU's CPU accelerator when <see cref="RunsKernels"/>), or, on ILGPU's CPU accelerator by default, the
/// SIMD path on the buffers' host memory. Validation is the base class's; this class only launches.
/// </summary>
internal sealed partial class IlgpuBackend : GpuActivations.Accelerator
{
    readonly Context? ownedContext;
    readonly bool ownsDevice;

    IlgpuBackend(AcceleratorInfo info, IlgpuDevice device, AcceleratorStream stream, bool runKernels, Context? ownedContext, bool ownsDevice)
        : base(info)
    {
        Device = device;
        Stream = stream;
        RunsKernels = runKernels || device.AcceleratorType != AcceleratorType.CPU;
        Kernels = KernelSet.For(device);
        Fma = device.AcceleratorType switch
        {
            AcceleratorType.Cuda => FmaForm.Ptx,
            AcceleratorType.CPU => FmaForm.Host,
            _ => FmaForm.Emulated,
        };
        this.ownedContext = ownedContext;
        this.ownsDevice = ownsDevice;
    }

    /// <summary>An accelerator over <paramref name="device"/> on <paramref name="stream"/> (its default stream when null); borrows both.</summary>
    public static IlgpuBackend Over(IlgpuDevice device, AcceleratorStream? stream, bool runKernels)
    {
        ArgumentNullException.ThrowIfNull(device);
        return new IlgpuBackend(Describe(device, 0, runKernels), device, stream ?? device.DefaultStream, runKernels, null, false);
    }

    /// <summary>An accelerator that owns its context and device (<see cref="GpuActivations.Accelerator.Create(AcceleratorKind, int)"/>).</summary>
    public static IlgpuBackend Owning(Context context, IlgpuDevice device, int index, bool runKernels)
        => new(Describe(device, index, runKernels), device, device.DefaultStream, runKernels, context, true);

    /// <summary>The device as the library describes it.</summary>
    public static AcceleratorInfo Describe(IlgpuDevice device, int index, bool runKernels)
        => new(KindOf(device), index, device.Name, device.AcceleratorType.ToString(), device.NumMultiprocessors, device.MemorySize,
            $"ILGPU {device.AcceleratorType}, warp {device.WarpSize}, groups up to {device.MaxNumThreadsPerGroup}"
            + (device.AcceleratorType == AcceleratorType.CPU ? runKernels ? ", ILGPU kernels (emulated)" : ", SIMD path on host memory" : ""));

    /// <summary>The library's kind for an ILGPU accelerator: Cuda, OpenCL, or Ilgpu for ILGPU's CPU accelerator.</summary>
    public static AcceleratorKind KindOf(IlgpuDevice device) => device.AcceleratorType switch
    {
        AcceleratorType.Cuda => AcceleratorKind.Cuda,
        AcceleratorType.OpenCL => AcceleratorKind.OpenCL,
        _ => AcceleratorKind.Ilgpu,
    };

    /// <summary>The ILGPU accelerator.</summary>
    public IlgpuDevice Device { get; }

    /// <summary>The stream the ops are queued on.</summary>
    public AcceleratorStream Stream { get; }

    /// <summary>Whether ops run as ILGPU kernels (always, except on ILGPU's CPU accelerator without the option).</summary>
    public bool RunsKernels { get; }

    /// <summary>The loaded kernels of <see cref="Device"/>, shared by every stream's accelerator.</summary>
    public KernelSet Kernels { get; }

    /// <summary>The fma form the kernels are specialised for on this device.</summary>
    public FmaForm Fma { get; }

    private protected override BufferStorage AllocateStorage(long bytes) => IlgpuStorage.Allocate(this, Device, Stream, bytes);

    private protected override BufferStorage WrapStorage(nint nativeHandle, long bytes) => IlgpuStorage.WrapNative(this, Device, Stream, nativeHandle, bytes);

    /// <summary>Borrows an ILGPU buffer region as a library buffer's storage.</summary>
    internal BufferStorage WrapRegion(MemoryBuffer buffer, long byteIndex, long bytes) => IlgpuStorage.WrapView(this, Stream, buffer, byteIndex, bytes);

    private protected override void SynchronizeCore() => Stream.Synchronize();

    private protected override void ReleaseDevice()
    {
        splitScratch?.Dispose();
        if (!ownsDevice) return;
        Device.Dispose();
        ownedContext?.Dispose();
    }

    /// <summary>The typed ILGPU view of a tensor argument.</summary>
    internal static ArrayView<T> View<T>(TensorArg t) where T : unmanaged => ((IlgpuStorage)t.Storage).View<T>(t.Offset, t.Length);

    /// <summary>The view of a float32 parameter tensor (PReLU slopes, masks).</summary>
    internal static ArrayView<float> FloatView(TensorArg t) => View<float>(t);

    /// <summary>Runs <paramref name="launch"/> specialised for this device's fma form and the storage type <paramref name="type"/>.</summary>
    void Dispatch<TLaunch>(TLaunch launch, StorageType type) where TLaunch : struct, ILaunch
    {
        switch (Fma)
        {
            case FmaForm.Ptx: Dispatch<TLaunch, PtxFma>(launch, type); break;
            case FmaForm.Emulated: Dispatch<TLaunch, EmulatedFma>(launch, type); break;
            default: Dispatch<TLaunch, HostFma>(launch, type); break;
        }
    }

    void Dispatch<TLaunch, TFma>(TLaunch launch, StorageType type) where TLaunch : struct, ILaunch where TFma : struct, IFusedMultiplyAdd
    {
        switch (type)
        {
            case StorageType.Float16: launch.Run<TFma, Half, Float16Storage>(this); break;
            case StorageType.BFloat16: launch.Run<TFma, BFloat16, BFloat16Storage>(this); break;
            default: launch.Run<TFma, float, Float32Storage>(this); break;
        }
    }

    /// <summary>One op's launch, written once and specialised per fma form and storage by <see cref="Dispatch{TLaunch}"/>.</summary>
    internal interface ILaunch
    {
        /// <summary>Queues the op's kernels on the accelerator's stream.</summary>
        void Run<TFma, T, TStorage>(IlgpuBackend acc)
            where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>;
    }

    // ----- Elementwise, PReLU, backward and gated ops -----

    private protected override void RunActivation(Activation activation, TensorArg x, TensorArg y)
    {
        if (!RunsKernels) { CpuBackend.Activation(activation, x, y); return; }
        var visitor = new UnaryVisitor(this, x, y, Backward: false, FromOutput: false, default, activation.Alpha);
        activation.Accept<UnaryVisitor, bool>(ref visitor);
    }

    private protected override void RunActivationBackward(Activation activation, bool fromOutput, TensorArg input, TensorArg dy, TensorArg dx)
    {
        if (!RunsKernels) { CpuBackend.ActivationBackward(activation, fromOutput, input, dy, dx); return; }
        var visitor = new UnaryVisitor(this, input, dx, Backward: true, fromOutput, dy, activation.Alpha);
        activation.Accept<UnaryVisitor, bool>(ref visitor);
    }

    readonly record struct UnaryVisitor(IlgpuBackend Acc, TensorArg X, TensorArg Y, bool Backward, bool FromOutput, TensorArg Dy, float Alpha)
        : IActivationVisitor<bool>
    {
        public bool Visit<TOp>(TOp op) where TOp : struct, IActivationOp
        {
            if (!Backward) Acc.Dispatch(new MapLaunch<TOp>(op, X, Y), X.Type);
            else if (FromOutput) Acc.Dispatch(new ZipLaunch<OutputBackwardOp<TOp>>(new(Alpha), X, Dy, Y), X.Type);
            else Acc.Dispatch(new ZipLaunch<BackwardOp<TOp>>(new(op), X, Dy, Y), X.Type);
            return true;
        }
    }

    /// <summary>Whether float32 views a, b, y share their position within 16 bytes, so their middles load as float4s; the head length.</summary>
    static bool Vectorisable(out long head, params ReadOnlySpan<TensorArg> tensors)
    {
        head = 0;
        if (!tensors[0].IsFloat || tensors[0].Length < 64) return false;
        long misalignment = (long)((ulong)tensors[0].Storage.Address + (ulong)(tensors[0].Offset * 4)) % 16;
        foreach (var t in tensors)
            if ((long)((ulong)t.Storage.Address + (ulong)(t.Offset * 4)) % 16 != misalignment) return false;
        head = (16 - misalignment) % 16 / 4;
        return misalignment % 4 == 0;
    }

    readonly record struct MapLaunch<TOp>(TOp Op, TensorArg X, TensorArg Y) : ILaunch where TOp : struct, IUnaryOp
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            long n = X.Length;
            if (acc.Kernels.IsCpu is false && Vectorisable(out long head, X, Y))
            {
                long vectors = (n - head) / 4, tail = n - head - vectors * 4;
                var (x, y) = (FloatView(X), FloatView(Y));
                var kernel = acc.Kernels.Get<ArrayView<float>, ArrayView<float>, ArrayView<Float4>, ArrayView<Float4>, long, long, TOp>(ElementwiseKernels.Map4<TOp, TFma>);
                kernel(acc.Stream, acc.Kernels.GridStride(vectors), x, y, x.SubView(head, vectors * 4).Cast<Float4>(), y.SubView(head, vectors * 4).Cast<Float4>(), head, tail, Op);
                return;
            }
            var (config, range) = acc.Kernels.Elementwise(n);
            var map = acc.Kernels.Get<ArrayView<T>, ArrayView<T>, TOp, ElementRange>(ElementwiseKernels.Map<TOp, TFma, T, TStorage>);
            map(acc.Stream, config, View<T>(X), View<T>(Y), Op, range);
        }
    }

    readonly record struct ZipLaunch<TOp>(TOp Op, TensorArg A, TensorArg B, TensorArg Y) : ILaunch where TOp : struct, IBinaryOp
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            long n = Y.Length;
            if (acc.Kernels.IsCpu is false && Vectorisable(out long head, A, B, Y))
            {
                long vectors = (n - head) / 4, tail = n - head - vectors * 4;
                var (a, b, y) = (FloatView(A), FloatView(B), FloatView(Y));
                var kernel = acc.Kernels.Get<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<Float4>, ArrayView<Float4>, ArrayView<Float4>, long, long, TOp>(
                    ElementwiseKernels.Zip4<TOp, TFma>);
                kernel(acc.Stream, acc.Kernels.GridStride(vectors), a, b, y,
                    a.SubView(head, vectors * 4).Cast<Float4>(), b.SubView(head, vectors * 4).Cast<Float4>(), y.SubView(head, vectors * 4).Cast<Float4>(), head, tail, Op);
                return;
            }
            var (config, range) = acc.Kernels.Elementwise(n);
            var zip = acc.Kernels.Get<ArrayView<T>, ArrayView<T>, ArrayView<T>, TOp, ElementRange>(ElementwiseKernels.Zip<TOp, TFma, T, TStorage>);
            zip(acc.Stream, config, View<T>(A), View<T>(B), View<T>(Y), Op, range);
        }
    }

    private protected override void RunPRelu(TensorArg x, TensorArg alpha, TensorArg y)
    {
        if (!RunsKernels) { CpuBackend.PRelu(x, alpha, y); return; }
        Dispatch(new PReluLaunch(x, alpha, y), x.Type);
    }

    readonly record struct PReluLaunch(TensorArg X, TensorArg Alpha, TensorArg Y) : ILaunch
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            var (config, range) = acc.Kernels.Elementwise(X.Length);
            var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<float>, ArrayView<T>, ElementRange>(ElementwiseKernels.PRelu<TFma, T, TStorage>);
            kernel(acc.Stream, config, View<T>(X), FloatView(Alpha), View<T>(Y), range);
        }
    }

    private protected override void RunPReluBackward(TensorArg x, TensorArg alpha, TensorArg dy, TensorArg dx, TensorArg dAlpha)
    {
        if (!RunsKernels) { CpuBackend.PReluBackward(x, alpha, dy, dx, dAlpha); return; }
        Dispatch(new PReluBackwardLaunch(x, alpha, dy, dx, dAlpha), x.Type);
    }

    readonly record struct PReluBackwardLaunch(TensorArg X, TensorArg Alpha, TensorArg Dy, TensorArg Dx, TensorArg DAlpha) : ILaunch
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            // The slopes' gradient first: dx may be x or dy, and the sums read both.
            var slope = acc.Kernels.Get<ArrayView<T>, ArrayView<T>, ArrayView<float>>(ElementwiseKernels.PReluBackwardSlope<T, TStorage>);
            slope(acc.Stream, acc.Kernels.GridStride(DAlpha.Length), View<T>(X), View<T>(Dy), FloatView(DAlpha));
            var (config, range) = acc.Kernels.Elementwise(X.Length);
            var input = acc.Kernels.Get<ArrayView<T>, ArrayView<float>, ArrayView<T>, ArrayView<T>, ElementRange>(ElementwiseKernels.PReluBackwardInput<T, TStorage>);
            input(acc.Stream, config, View<T>(X), FloatView(Alpha), View<T>(Dy), View<T>(Dx), range);
        }
    }

    private protected override void RunGlu(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg y, long rows, long d)
    {
        if (!RunsKernels) { CpuBackend.Glu(unit, layout, gate, up, y, rows, d); return; }
        var visitor = new GateVisitor(this, layout, gate, up, y, default, default, d, Backward: false);
        unit.Accept<GateVisitor, bool>(ref visitor);
    }

    private protected override void RunGluBackward(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg dy,
        TensorArg dGate, TensorArg dUp, long rows, long d)
    {
        if (!RunsKernels) { CpuBackend.GluBackward(unit, layout, gate, up, dy, dGate, dUp, rows, d); return; }
        var visitor = new GateVisitor(this, layout, gate, up, dy, dGate, dUp, d, Backward: true);
        unit.Accept<GateVisitor, bool>(ref visitor);
    }

    /// <summary>
    /// A gated unit's launch: forward (<see cref="Dense"/> = y) or backward (<see cref="Dense"/> = dy; gradients into
    /// <see cref="DGate"/>, <see cref="DUp"/>, which for the packed layouts are the one dPacked).
    /// </summary>
    readonly record struct GateVisitor(IlgpuBackend Acc, GluLayout Layout, TensorArg Gate, TensorArg Up, TensorArg Dense,
        TensorArg DGate, TensorArg DUp, long D, bool Backward) : IGateVisitor<bool>
    {
        public bool Visit<TGate>(TGate gate, float limit) where TGate : struct, IGate
        {
            if (!Backward)
            {
                if (limit > 0f) Forward(new ClampedGatedOp<TGate>(gate, limit));
                else Forward(new GatedOp<TGate>(gate));
            }
            else if (limit > 0f) Acc.Dispatch(new GluBackwardLaunch<ClampedGatedGradientOp<TGate>>(new(gate, limit), this), Gate.Type);
            else Acc.Dispatch(new GluBackwardLaunch<GatedGradientOp<TGate>>(new(gate), this), Gate.Type);
            return true;
        }

        void Forward<TOp>(TOp op) where TOp : struct, IBinaryOp
        {
            if (Layout == GluLayout.Separate) Acc.Dispatch(new ZipLaunch<TOp>(op, Gate, Up, Dense), Gate.Type);
            else Acc.Dispatch(new GluPackedLaunch<TOp>(op, this), Gate.Type);
        }
    }

    readonly record struct GluPackedLaunch<TOp>(TOp Op, GateVisitor Args) : ILaunch where TOp : struct, IBinaryOp
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            var (config, range) = acc.Kernels.Elementwise(Args.Dense.Length);
            var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<T>, long, int, TOp, ElementRange>(ElementwiseKernels.ZipPacked<TOp, TFma, T, TStorage>);
            kernel(acc.Stream, config, View<T>(Args.Gate), View<T>(Args.Dense), Args.D, Args.Layout == GluLayout.Interleaved ? 1 : 0, Op, range);
        }
    }

    readonly record struct GluBackwardLaunch<TOp>(TOp Op, GateVisitor Args) : ILaunch where TOp : struct, IGradientOp
    {
        public void Run<TFma, T, TStorage>(IlgpuBackend acc) where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
        {
            var (config, range) = acc.Kernels.Elementwise(Args.Dense.Length);
            if (Args.Layout == GluLayout.Separate)
            {
                var kernel = acc.Kernels.Get<ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, TOp, ElementRange>(
                    ElementwiseKernels.Gradient<TOp, TFma, T, TStorage>);
                kernel(acc.Stream, config, View<T>(Args.Gate), View<T>(Args.Up), View<T>(Args.Dense), View<T>(Args.DGate), View<T>(Args.DUp), Op, range);
                return;
            }
            var packed = acc.Kernels.Get<ArrayView<T>, ArrayView<T>, ArrayView<T>, long, int, TOp, ElementRange>(
                ElementwiseKernels.GradientPacked<TOp, TFma, T, TStorage>);
            packed(acc.Stream, config, View<T>(Args.Gate), View<T>(Args.Dense), View<T>(Args.DGate), Args.D, Args.Layout == GluLayout.Interleaved ? 1 : 0, Op, range);
        }
    }
}

/// <summary>Which correctly rounded fma a device's kernels are specialised for (<see cref="IFusedMultiplyAdd"/>).</summary>
internal enum FmaForm
{
    /// <summary><see cref="HostFma"/>: ILGPU's CPU accelerator runs .NET IL, so the hardware fma.</summary>
    Host,
    /// <summary><see cref="PtxFma"/>: CUDA's <c>fma.rn.f32</c>.</summary>
    Ptx,
    /// <summary><see cref="EmulatedFma"/>: OpenCL, through double precision.</summary>
    Emulated,
}
