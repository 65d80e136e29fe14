using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>tanh(x); see <see cref="VectorMath.Tanh{TV}"/> for the two regimes.
/// tanh'(x) = 4 e^-2|x| / (1 + e^-2|x|)^2 = 4 sigmoid'(2x): 1 - tanh^2 would lose every digit for large |x|.</summary>
internal readonly struct TanhOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => VectorMath.Tanh(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV result = TV.Create(4f) * VectorMath.SigmoidSlope(x + x, TV.Create(0f));
        // Beyond |x| = 40 it is 4 e^-2|x| to float precision, subnormal from |x| = 44.4: rounded once, not twice (x 4).
        TV far = TV.GreaterThan(Simd.Abs(x), TV.Create(40f));
        return TV.Any(far) ? TV.Select(far, VectorMath.ScaledExp(-Simd.Abs(x + x), TV.Create(0f), TV.Create(4f)), result) : result;
    }
    /// <summary>1 - y^2 with one rounding (FMA).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV OutputDerivative<TV>(TV y, float alpha) where TV : unmanaged, ISimd<TV> => TV.Fma(-y, y, TV.Create(1f));
}
