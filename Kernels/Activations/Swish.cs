using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// swish(x) = x sigmoid(beta x). beta x is carried exactly (hi + lo): its rounding would otherwise be
/// multiplied by |beta x| in e^(-beta x), hundreds of ulp for large negative x.
/// swish'(x) = sigmoid(beta x) + x beta sigmoid'(beta x).
/// </summary>
internal readonly struct SwishOp(float beta) : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        // beta = 0 is x / 2 everywhere, infinities included (0 * inf must not reach the sigmoid).
        if (beta == 0f) return x * TV.Create(0.5f);
        TV hi = VectorMath.TwoProductUnmasked(TV.Create(beta), x, out TV lo);
        return VectorMath.TimesSigmoid(x, hi, lo);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        if (beta == 0f) return VectorMath.KeepNaN(x, TV.Create(0.5f));
        TV hi = VectorMath.TwoProductUnmasked(TV.Create(beta), x, out TV lo);
        return VectorMath.TimesSigmoidDerivative(x, hi, lo, TV.Create(beta));
    }
}
