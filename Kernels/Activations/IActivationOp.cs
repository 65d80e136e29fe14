using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// One elementwise activation in all its forms: the vector form (any SIMD width; the scalar form is the
/// same code on one 128-bit lane, so both agree bit for bit) and the device form shared by OpenCL and CUDA,
/// each with its derivative (the backward pass: dx = dy * f'(x)).
/// Parameters (alpha, beta, threshold) are the struct's fields on the CPU and kernel arguments on devices.
/// </summary>
internal interface IActivationOp : IUnaryOp
{

    /// <summary>f'(x) for every lane (NaN stays NaN; at a kink, PyTorch's one-sided choice).</summary>
    TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>;

    /// <summary>
    /// f'(x) from the output y = f(x), for the activations where that is exact and cheaper (see
    /// <see cref="Activation.HasOutputDerivative"/>); <paramref name="alpha"/> is the activation's alpha.
    /// The others throw: callers check <see cref="Activation.HasOutputDerivative"/> first.
    /// </summary>
    static virtual TV OutputDerivative<TV>(TV y, float alpha) where TV : unmanaged, ISimd<TV>
        => throw new NotSupportedException("This activation has no derivative in terms of its output.");

    /// <summary>A short identifier, unique per activation (it names the device program).</summary>
    static abstract string Name { get; }

    /// <summary>
    /// The body of <c>float ga_activation(float x, float alpha, float beta, float threshold)</c> in the
    /// device dialect (OpenCL C 1.2 and CUDA C++); it may call the helpers of <c>DeviceMath</c>.
    /// </summary>
    static abstract string DeviceBody { get; }

    /// <summary>The body of <c>float ga_activation_grad(float x, float alpha, float beta, float threshold)</c>: f'(x).</summary>
    static abstract string DeviceDerivativeBody { get; }

    /// <summary>
    /// The body of <c>float ga_activation_grad_out(float y, float alpha, float beta, float threshold)</c>, f'(x) from
    /// y = f(x); null where the activation has none (<see cref="OutputDerivative{TV}(TV, float)"/>).
    /// </summary>
    static virtual string? DeviceOutputDerivativeBody => null;
}
