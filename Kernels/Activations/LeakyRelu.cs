using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// leaky_relu(x) = x &lt; 0 ? alpha x : x (NaN stays NaN). With alpha = 0 the negative side is a zero of the
/// product's sign, so x = -inf gives the limit, not 0 * inf = NaN.
/// The derivative is x &gt; 0 ? 1 : alpha (PyTorch: alpha at x = 0).
/// </summary>
internal readonly struct LeakyReluOp(float alpha) : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV negativeSide = alpha == 0f ? Simd.SignBit(x) ^ Simd.SignBit(TV.Create(alpha)) : x * TV.Create(alpha);
        return TV.Select(TV.LessThan(x, TV.Create(0f)), negativeSide, x);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV> => OutputDerivative(x, alpha);
    /// <summary>y &gt; 0 ? 1 : alpha: for alpha &gt; 0 the output has the input's sign (alpha x &lt;= 0 for x &lt;= 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV OutputDerivative<TV>(TV y, float alpha) where TV : unmanaged, ISimd<TV>
        => VectorMath.KeepNaN(y, TV.Select(TV.GreaterThan(y, TV.Create(0f)), TV.Create(1f), TV.Create(alpha)));
}
