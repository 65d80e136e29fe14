using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>relu(x) = x &lt; 0 ? 0 : x. Written as a select, not max(x, 0), so NaN stays NaN.
/// relu'(x) = x &gt; 0 ? 1 : 0 (0 at x = 0, as PyTorch).</summary>
internal readonly struct ReluOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => TV.Select(TV.LessThan(x, TV.Create(0f)), TV.Create(0f), x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV> => OutputDerivative(x, 0f);
    /// <summary>y &gt; 0 ? 1 : 0 (relu(x) &gt; 0 exactly where x &gt; 0), NaN propagating.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV OutputDerivative<TV>(TV y, float alpha) where TV : unmanaged, ISimd<TV>
        => VectorMath.KeepNaN(y, TV.Create(1f) & TV.GreaterThan(y, TV.Create(0f)));
}
