using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// quick_gelu(x) = x sigmoid(1.702 x) (the CLIP approximation). 1.702 is not a float: it is split
/// hi + lo and the product carried exactly, as for <see cref="SwishOp"/>.
/// Its derivative is sigmoid(1.702 x) + 1.702 x sigmoid'(1.702 x) (the slope's rounding moves the second term by 1.3e-8 relative).
/// </summary>
internal readonly struct QuickGeluOp : IActivationOp
{
    const float CoefficientHi = 1.70200002193450927734375f;
    const float CoefficientLo = -2.1934509319976314e-08f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV hi = VectorMath.TwoProductUnmasked(TV.Create(CoefficientHi), x, out TV lo);
        return VectorMath.TimesSigmoid(x, hi, TV.Fma(TV.Create(CoefficientLo), x, lo));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV hi = VectorMath.TwoProductUnmasked(TV.Create(CoefficientHi), x, out TV lo);
        return VectorMath.TimesSigmoidDerivative(x, hi, TV.Fma(TV.Create(CoefficientLo), x, lo), TV.Create(CoefficientHi));
    }
}
