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

    /// <summary>Row-wise softmax (or log-softmax) of [rows, cols], max-subtracted.</summary>
    void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log);

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
