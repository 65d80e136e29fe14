using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// One elementwise activation and its derivative (the backward pass: dx = dy * f'(x)), written once over a lane type:
/// the SIMD path runs it on vectors of any width, and the ILGPU kernels on one float per thread (<c>ScalarLane</c>), so
/// the forms agree bit for bit wherever the lane's fma is exact. Parameters (alpha, beta, threshold) are the struct's
/// fields, passed to kernels with the struct.
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
}
