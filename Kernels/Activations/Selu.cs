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
    const float ScaleAlpha = 1.7580993408473768599f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(x, TV.Create(0f)), x * TV.Create(Scale), TV.Create(ScaleAlpha) * VectorMath.Expm1(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(x, TV.Create(0f)), TV.Create(Scale), VectorMath.ScaledExp(x, TV.Create(0f), TV.Create(ScaleAlpha)));
    /// <summary>y &gt; 0 ? scale : y + scale alpha (= scale alpha e^x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV OutputDerivative<TV>(TV y, float alpha) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(y, TV.Create(0f)), TV.Create(Scale), y + TV.Create(ScaleAlpha));
}
