using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// One elementwise activation in all its forms: the vector form (any SIMD width; the scalar form is the
/// same code on one 128-bit lane, so both agree bit for bit) and the device form shared by OpenCL and CUDA.
/// Parameters (alpha, beta, threshold) are the struct's fields on the CPU and kernel arguments on devices.
/// </summary>
internal interface IActivationOp
{
    /// <summary>The activation of every lane.</summary>
    TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>;

    /// <summary>A short identifier, unique per activation (it names the device program).</summary>
    static abstract string Name { get; }

    /// <summary>
    /// The body of <c>float ga_activation(float x, float alpha, float beta, float threshold)</c> in the
    /// device dialect (OpenCL C 1.2 and CUDA C++); it may call the helpers of <c>DeviceMath</c>.
    /// </summary>
    static abstract string DeviceBody { get; }
}
