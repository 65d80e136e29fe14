using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// selu(x) = scale (x &gt; 0 ? x : alpha (e^x - 1)) with Klambauer et al.'s constants (as PyTorch):
/// alpha = 1.6732632423543772848, scale = 1.0507009873554804934.
/// </summary>
internal readonly struct SeluOp : IActivationOp
{
    const float Scale = 1.0507009873554804934f;
    /// <summary>scale - (float)scale: scale x as fma(x, Scale, x ScaleRemainder) is the product with the exact scale rounded
    /// once, so the result near the overflow threshold is finite where scale x rounds to a finite float (x Scale alone,
    /// the float scale 3.3e-8 too large, overflows at x = 3.2386221e38, whose exact product rounds to float.MaxValue). The
    /// remainder's product takes x capped at float.MaxValue, so x = +inf gives +inf, not inf - inf.</summary>
    const float ScaleRemainder = -3.479265231476347e-08f;
    const float ScaleAlpha = 1.7580993408473768599f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(x, TV.Create(0f)), TV.Fma(x, TV.Create(Scale), TV.Min(x, TV.Create(float.MaxValue)) * TV.Create(ScaleRemainder)), TV.Create(ScaleAlpha) * VectorMath.Expm1(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(x, TV.Create(0f)), TV.Create(Scale), VectorMath.ScaledExp(x, TV.Create(0f), TV.Create(ScaleAlpha)));
    /// <summary>y &gt; 0 ? scale : y + scale alpha (= scale alpha e^x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV OutputDerivative<TV>(TV y, float alpha) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(y, TV.Create(0f)), TV.Create(Scale), y + TV.Create(ScaleAlpha));
}
