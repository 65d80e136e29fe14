using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>silu(x) = x sigmoid(x); silu(-inf) = -0, the limit. silu'(x) = sigmoid(x) + x sigmoid'(x).</summary>
internal readonly struct SiluOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => VectorMath.TimesSigmoid(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV> => VectorMath.TimesSigmoidDerivative(x, x, TV.Create(0f), TV.Create(1f));
}
