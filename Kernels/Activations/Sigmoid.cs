using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>sigmoid(x) = 1 / (1 + e^-x). e^-x is exact in its argument, so the result is within ~2 ulp; below -80, e^x
/// (subnormal results computed, not flushed: see <see cref="VectorMath.Sigmoid{TV}(TV, TV)"/>).
/// sigmoid'(x) = e^-|x| / (1 + e^-|x|)^2, which keeps its relative accuracy for large |x| where s (1 - s) cannot.</summary>
internal readonly struct SigmoidOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => VectorMath.Sigmoid(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV> => VectorMath.SigmoidSlope(x, TV.Create(0f));
    /// <summary>y (1 - y): 1 - y is exact for y &gt;= 1/2, so this is the exact derivative at the stored y to ~1 ulp.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV OutputDerivative<TV>(TV y, float alpha) where TV : unmanaged, ISimd<TV> => y * (TV.Create(1f) - y);
}
