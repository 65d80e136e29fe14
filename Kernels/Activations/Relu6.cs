using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>relu6(x) = min(max(x, 0), 6), as selects so NaN stays NaN. Its derivative is 1 on (0, 6), else 0 (PyTorch).</summary>
internal readonly struct Relu6Op : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.LessThan(x, TV.Create(0f)), TV.Create(0f), TV.Select(TV.GreaterThan(x, TV.Create(6f)), TV.Create(6f), x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV> => OutputDerivative(x, 0f);
    /// <summary>1 on (0, 6), else 0: relu6(x) is in (0, 6) exactly where x is.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV OutputDerivative<TV>(TV y, float alpha) where TV : unmanaged, ISimd<TV>
        => VectorMath.KeepNaN(y, TV.Create(1f) & TV.GreaterThan(y, TV.Create(0f)) & TV.LessThan(y, TV.Create(6f)));
}
