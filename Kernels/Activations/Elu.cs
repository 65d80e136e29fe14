using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>elu(x) = x &gt; 0 ? x : alpha (e^x - 1), with expm1 so small negative x keeps its digits; elu(-inf) = -alpha.
/// elu'(x) = x &gt; 0 ? 1 : alpha e^x (PyTorch: alpha at x = 0), alpha e^x rounded once where it is subnormal.
/// elu(-0) = -0: expm1 keeps the sign of zero.</summary>
internal readonly struct EluOp(float alpha) : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(x, TV.Create(0f)), x, TV.Create(alpha) * VectorMath.Expm1(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(x, TV.Create(0f)), TV.Create(1f), VectorMath.ScaledExp(x, TV.Create(0f), TV.Create(alpha)));
    /// <summary>y &gt; 0 ? 1 : y + alpha (= alpha e^x), for alpha &gt; 0 (the output's sign is then the input's).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV OutputDerivative<TV>(TV y, float alpha) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(y, TV.Create(0f)), TV.Create(1f), y + TV.Create(alpha));
}
