using System.Collections.Concurrent;
using GpuActivations.Activations;

namespace GpuActivations.Device;

/// <summary>
/// The part of the OpenCL and CUDA accelerators that is the same: views become <see cref="DeviceRegion"/>s,
/// activations become their device form, and the ops go to the backend's <see cref="IDeviceKernels"/>.
/// </summary>
internal abstract class DeviceAccelerator(AcceleratorInfo info, IDeviceKernels kernels) : Accelerator(info)
{
    static readonly ConcurrentDictionary<ActivationKind, DeviceActivation> Forms = new();

    /// <summary>The device form of <paramref name="activation"/> (cached per kind; parameters travel separately).</summary>
    public static DeviceActivation DeviceForm(Activation activation) => Forms.GetOrAdd(activation.Kind, _ =>
    {
        var visitor = new FormVisitor();
        return activation.Accept<FormVisitor, DeviceActivation>(ref visitor);
    });

    readonly struct FormVisitor : IActivationVisitor<DeviceActivation>
    {
        public DeviceActivation Visit<TOp>(TOp op) where TOp : struct, IActivationOp => new(TOp.Name, TOp.DeviceBody, TOp.DeviceDerivativeBody, TOp.DeviceOutputDerivativeBody);
    }

    static DeviceRegion Region(TensorArg t) => new(t.Storage.Handle, t.Offset, t.Type);

    private protected override void RunActivation(Activation activation, TensorArg x, TensorArg y)
        => kernels.Unary(DeviceForm(activation), Region(x), Region(y), x.Length, Parameters(activation));

    private protected override void RunActivationBackward(Activation activation, bool fromOutput, TensorArg input, TensorArg dy, TensorArg dx)
        => kernels.UnaryBackward(DeviceForm(activation), fromOutput, Region(input), Region(dy), Region(dx), input.Length,
            Parameters(activation));

    private protected override void RunPReluBackward(TensorArg x, TensorArg alpha, TensorArg dy, TensorArg dx, TensorArg dAlpha)
        => kernels.PReluBackward(Region(x), Region(alpha), Region(dy), Region(dx), Region(dAlpha), Channels(alpha), x.Length);

    private protected override void RunGlu(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg y, long rows, long d)
    {
        Activation act = unit.GateActivation;
        kernels.Glu(DeviceForm(act), layout, Region(gate), Region(up), Region(y), rows, d, Parameters(act), unit.Limit);
    }

    private protected override void RunGluBackward(GatedUnit unit, GluLayout layout, TensorArg gate, TensorArg up, TensorArg dy,
        TensorArg dGate, TensorArg dUp, long rows, long d)
    {
        Activation act = unit.GateActivation;
        kernels.GluBackward(DeviceForm(act), layout, Region(gate), Region(up), Region(dy), Region(dGate), Region(dUp), rows, d, Parameters(act), unit.Limit);
    }

    static ActivationParameters Parameters(Activation activation) => new(activation.Alpha, activation.Beta, activation.Threshold);

    static int Channels(TensorArg alpha) => alpha.Length <= int.MaxValue ? (int)alpha.Length
        : throw new ArgumentException($"alpha has {alpha.Length} channels; device PReLU supports at most {int.MaxValue}.", nameof(alpha));

    private protected override void RunPRelu(TensorArg x, TensorArg alpha, TensorArg y)
        => kernels.PRelu(Region(x), Region(alpha), Channels(alpha), Region(y), x.Length);

    private protected override void RunSoftmax(TensorArg x, TensorArg y, long rows, long cols, bool log, in SoftmaxInput input)
        => kernels.Softmax(Region(x), Region(y), rows, cols, log,
            new DeviceSoftmaxInput(input.Scale, input.HasMask ? Region(input.Mask) : default, input.MaskStride, input.HasMask, input.Safe));

    private protected override void RunSoftmaxBackward(TensorArg y, TensorArg dy, TensorArg dx, long rows, long cols, bool log)
        => kernels.SoftmaxBackward(Region(y), Region(dy), Region(dx), rows, cols, log);

    private protected override void RunCrossEntropy(TensorArg logits, TensorArg targets, TensorArg losses, TensorArg? dLogits,
        long rows, long cols, CrossEntropyOptions options)
        => kernels.CrossEntropy(Region(logits), Region(targets), Region(losses), dLogits is { } g ? Region(g) : null, rows, cols, options);

    private protected override void SynchronizeCore() => kernels.Synchronize();

    /// <summary>Copies host bytes into device memory <paramref name="handle"/> at <paramref name="byteOffset"/>.</summary>
    private protected abstract void WriteBytes(nint handle, long byteOffset, ReadOnlySpan<byte> source);

    /// <summary>Copies device bytes out, after queued work has finished.</summary>
    private protected abstract void ReadBytes(nint handle, long byteOffset, Span<byte> destination);

    /// <summary>Storage over memory this accelerator allocated: <paramref name="memory"/> frees it (its SafeHandle if forgotten).</summary>
    private protected BufferStorage Owned(IDisposable memory, nint handle, long bytes) => new DeviceStorage(this, memory, handle, bytes);

    /// <summary>Storage over an engine's memory, never freed here.</summary>
    private protected BufferStorage Borrowed(nint handle, long bytes) => new DeviceStorage(this, null, handle, bytes);

    /// <summary>A cl_mem or CUdeviceptr, owned or borrowed; copies go through the owning accelerator.</summary>
    sealed class DeviceStorage(DeviceAccelerator owner, IDisposable? owned, nint handle, long bytes) : BufferStorage(owner, bytes)
    {
        public override nint Handle => handle;

        public override void Write(long byteOffset, ReadOnlySpan<byte> source)
        {
            if (source.IsEmpty) return;
            owner.WriteBytes(handle, byteOffset, source);
            GC.KeepAlive(owned);
        }

        public override void Read(long byteOffset, Span<byte> destination)
        {
            if (destination.IsEmpty) return;
            owner.ReadBytes(handle, byteOffset, destination);
            GC.KeepAlive(owned);
        }

        protected override void Release() => owned?.Dispose();
    }
}
