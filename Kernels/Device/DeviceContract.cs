namespace GpuActivations.Device;

/// <summary>
/// A region of device memory as a kernel sees it: the native handle of an allocation
/// (an OpenCL <c>cl_mem</c> or a CUDA <c>CUdeviceptr</c>) and an element offset into it.
/// Offsets travel to the kernels as arguments, so views need no sub-buffer alignment.
/// </summary>
internal readonly record struct DeviceRegion(nint Handle, long ElementOffset);

/// <summary>The scalar parameters every activation kernel receives (unused ones are zero).</summary>
internal readonly record struct ActivationParameters(float Alpha, float Beta, float Threshold);

/// <summary>
/// The device form of one activation: <see cref="Name"/> keys the program cache (with the device), and
/// <see cref="Body"/> is the body of
/// <c>static inline float ga_activation(float x, float alpha, float beta, float threshold)</c>,
/// written in the common OpenCL C 1.2 / CUDA C++ dialect of <c>DevicePrelude</c>.
/// </summary>
internal sealed record DeviceActivation(string Name, string Body);

/// <summary>
/// Softmax options as the kernels take them: z = x * <see cref="Scale"/> + mask[row * <see cref="MaskStride"/> + j] when
/// <see cref="HasMask"/> (stride 0: one mask row for all rows); <see cref="Safe"/>: fully masked rows give 0 (log: -inf).
/// </summary>
internal readonly record struct DeviceSoftmaxInput(float Scale, DeviceRegion Mask, long MaskStride, bool HasMask, bool Safe)
{
    /// <summary>Plain softmax.</summary>
    public static DeviceSoftmaxInput Plain => new(1f, default, 0, false, false);

    /// <summary>The kernels' flags: GA_SM_LOG 1, GA_SM_MASK 2, GA_SM_SAFE 4.</summary>
    public int Flags(bool log) => (log ? 1 : 0) | (HasMask ? 2 : 0) | (Safe ? 4 : 0);

    /// <summary>The mask's handle, or <paramref name="fallback"/> (a valid buffer the kernels never read) without a mask.</summary>
    public nint MaskHandle(nint fallback) => HasMask ? Mask.Handle : fallback;
}

/// <summary>The gated-unit layouts: two separate buffers, or one packed [rows, 2*d] buffer (gate half, then up half).</summary>
internal enum GluLayout { Separate, Packed }

/// <summary>
/// What a GPU backend (OpenCL, CUDA) runs. Every call is queued on the backend's queue/stream and returns
/// without waiting; <see cref="Synchronize"/> waits. Arguments are already validated by the caller.
/// </summary>
internal interface IDeviceKernels
{
    /// <summary>y[i] = act(x[i]) for i in [0, n).</summary>
    void Unary(DeviceActivation activation, DeviceRegion x, DeviceRegion y, long n, ActivationParameters parameters);

    /// <summary>y[i] = x[i] &gt;= 0 (or NaN) ? x[i] : alpha[i % channels] * x[i].</summary>
    void PRelu(DeviceRegion x, DeviceRegion alpha, int channels, DeviceRegion y, long n);

    /// <summary>y[r, j] = act(gate[r, j]) * up[r, j]: separate (gate, up: [rows*d]) or packed (gate is [rows, 2d], up ignored).</summary>
    void Glu(DeviceActivation gateActivation, GluLayout layout, DeviceRegion gate, DeviceRegion up, DeviceRegion y, long rows, long d);

    /// <summary>Row-wise softmax (or log-softmax) of z = x * scale + mask over [rows, cols], max-subtracted.</summary>
    void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log, in DeviceSoftmaxInput input);

    /// <summary>Softmax (log: log-softmax) backward over [rows, cols] from the forward output y; dx may be y or dy.</summary>
    void SoftmaxBackward(DeviceRegion y, DeviceRegion dy, DeviceRegion dx, long rows, long cols, bool log);

    /// <summary>Cross-entropy losses [rows] and, when <paramref name="grad"/> is set, gradients [rows, cols] (may be the logits).</summary>
    void CrossEntropy(DeviceRegion logits, DeviceRegion targets, DeviceRegion losses, DeviceRegion? grad, long rows, long cols, CrossEntropyOptions options);

    /// <summary>Waits for everything queued so far.</summary>
    void Synchronize();
}
