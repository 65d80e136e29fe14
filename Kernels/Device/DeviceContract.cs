namespace GpuActivations.Device;

/// <summary>
/// A region of device memory as a kernel sees it: the native handle of an allocation
/// (an OpenCL <c>cl_mem</c> or a CUDA <c>CUdeviceptr</c>) and an element offset into it.
/// Offsets travel to the kernels as arguments, so views need no sub-buffer alignment.
/// </summary>
/// <see cref="Type"/> is the element type, which selects the program's storage (<see cref="ProgramStorage"/>).
internal readonly record struct DeviceRegion(nint Handle, long ElementOffset, StorageType Type = StorageType.Float32)
{
    /// <summary>The byte address of the first element (for alignment decisions).</summary>
    public ulong Address => (ulong)Handle + (ulong)ElementOffset * (ulong)Type.Size();

    /// <summary>Whether the region holds float32 (the vector paths take float4s of it).</summary>
    public bool IsFloat => Type == StorageType.Float32;
}

/// <summary>
/// The storage a program is compiled for: the element type of its tensor inputs (<c>ga_in_t</c>) and outputs
/// (<c>ga_out_t</c>); float32 both by default. Mixed ops (bf16 logits in, float32 probabilities out) differ.
/// </summary>
internal readonly record struct ProgramStorage(StorageType In, StorageType Out)
{
    /// <summary>float32 in and out.</summary>
    public static ProgramStorage Float => default;

    /// <summary>Inputs of <paramref name="input"/>'s type, outputs of <paramref name="output"/>'s.</summary>
    public static ProgramStorage Of(DeviceRegion input, DeviceRegion output) => new(input.Type, output.Type);

    /// <summary>The preprocessor lines selecting the storage (none for float32, so float programs are unchanged).</summary>
    public string Defines => this == Float ? "" : $"#define GA_IN_TYPE {(int)In}\n#define GA_OUT_TYPE {(int)Out}\n";

    /// <summary>A suffix for program labels: "" for float32, else e.g. "@bf16>f32".</summary>
    public string Label => this == Float ? "" : $"@{Name(In)}>{Name(Out)}";

    static string Name(StorageType type) => type switch { StorageType.Float16 => "f16", StorageType.BFloat16 => "bf16", _ => "f32" };
}

/// <summary>The scalar parameters every activation kernel receives (unused ones are zero).</summary>
internal readonly record struct ActivationParameters(float Alpha, float Beta, float Threshold);

/// <summary>
/// The device form of one activation: <see cref="Name"/> keys the program cache (with the device), and
/// <see cref="Body"/> is the body of
/// <c>static inline float ga_activation(float x, float alpha, float beta, float threshold)</c>,
/// written in the common OpenCL C 1.2 / CUDA C++ dialect of <c>DevicePrelude</c>. <see cref="DerivativeBody"/> is the
/// body of <c>ga_activation_grad(x, ...)</c> (f'(x)) and <see cref="OutputDerivativeBody"/> that of
/// <c>ga_activation_grad_out(y, ...)</c> (f'(x) from y = f(x)), null where the activation has none; only the backward
/// family uses them.
/// </summary>
internal sealed record DeviceActivation(string Name, string Body, string? DerivativeBody = null, string? OutputDerivativeBody = null);

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

/// <summary>
/// The gated-unit layouts: two separate buffers, or one packed [rows, 2*d] buffer with each row's gate half then up
/// half (<see cref="Packed"/>) or gate and up alternating (<see cref="Interleaved"/>).
/// </summary>
internal enum GluLayout { Separate, Packed, Interleaved }

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

    /// <summary>
    /// dx[i] = dy[i] * f'(input[i]); with <paramref name="fromOutput"/> the input is y = f(x) and the derivative
    /// <c>ga_activation_grad_out</c>. dx may be the input or dy.
    /// </summary>
    void UnaryBackward(DeviceActivation activation, bool fromOutput, DeviceRegion input, DeviceRegion dy, DeviceRegion dx, long n, ActivationParameters parameters);

    /// <summary>
    /// PReLU's backward over n elements of <paramref name="channels"/> channels: first dAlpha[c] (one work-item per
    /// channel summing its rows in order: deterministic), then dx (so dx may be x or dy).
    /// </summary>
    void PReluBackward(DeviceRegion x, DeviceRegion alpha, DeviceRegion dy, DeviceRegion dx, DeviceRegion dAlpha, int channels, long n);

    /// <summary>
    /// y[r, j] = act(gate[r, j]) * up[r, j]: separate (gate, up: [rows*d]) or packed (gate is [rows, 2d], up ignored).
    /// With <paramref name="limit"/> &gt; 0 the clamped form act(min(g, limit)) * (clamp(u, -limit, limit) + 1).
    /// </summary>
    void Glu(DeviceActivation gateActivation, GluLayout layout, DeviceRegion gate, DeviceRegion up, DeviceRegion y, long rows, long d,
        ActivationParameters parameters, float limit);

    /// <summary>
    /// The backward pass: dGate = dy up act'(gate), dUp = dy act(gate) (clamped form with <paramref name="limit"/> &gt; 0).
    /// Packed layouts: gate and dGate are [rows, 2d] (up, dUp ignored); dy is dense [rows, d].
    /// </summary>
    void GluBackward(DeviceActivation gateActivation, GluLayout layout, DeviceRegion gate, DeviceRegion up, DeviceRegion dy,
        DeviceRegion dGate, DeviceRegion dUp, long rows, long d, ActivationParameters parameters, float limit);

    /// <summary>Row-wise softmax (or log-softmax) of z = x * scale + mask over [rows, cols], max-subtracted.</summary>
    void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log, in DeviceSoftmaxInput input);

    /// <summary>Softmax (log: log-softmax) backward over [rows, cols] from the forward output y; dx may be y or dy.</summary>
    void SoftmaxBackward(DeviceRegion y, DeviceRegion dy, DeviceRegion dx, long rows, long cols, bool log);

    /// <summary>Cross-entropy losses [rows] and, when <paramref name="grad"/> is set, gradients [rows, cols] (may be the logits).</summary>
    void CrossEntropy(DeviceRegion logits, DeviceRegion targets, DeviceRegion losses, DeviceRegion? grad, long rows, long cols, CrossEntropyOptions options);

    /// <summary>Waits for everything queued so far.</summary>
    void Synchronize();
}

/// <summary>
/// A gated-unit layout as the kernels walk it: gate[r, j] = Gate + r RowStride + j Step, up likewise; separate buffers
/// flattened to one row of rows * d.
/// </summary>
internal readonly record struct GluRows(DeviceRegion Gate, DeviceRegion Up, long RowStride, long Step, long Rows, long D)
{
    /// <summary>The walk of <paramref name="layout"/> over [rows, d] (for the packed layouts <paramref name="gate"/> is the packed tensor, up unused).</summary>
    public static GluRows Of(GluLayout layout, DeviceRegion gate, DeviceRegion up, long rows, long d) => layout switch
    {
        GluLayout.Packed => new(gate, gate with { ElementOffset = gate.ElementOffset + d }, checked(2 * d), 1, rows, d),
        GluLayout.Interleaved => new(gate, gate with { ElementOffset = gate.ElementOffset + 1 }, checked(2 * d), 2, rows, d),
        _ => new(gate, up, checked(rows * d), 1, 1, checked(rows * d)),
    };
}
