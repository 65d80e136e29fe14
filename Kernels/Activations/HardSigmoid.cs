using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>hard_sigmoid(x) = relu6(x + 3) / 6 (PyTorch). (x + 3) / 6 rather than x/6 + 1/2: exact near -3.
/// Its derivative is 1/6 on (-3, 3), else 0 (PyTorch).</summary>
internal readonly struct HardSigmoidOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV mid = (x + TV.Create(3f)) / TV.Create(6f);
        return TV.Select(TV.LessThanOrEqual(x, TV.Create(-3f)), TV.Create(0f), TV.Select(TV.GreaterThanOrEqual(x, TV.Create(3f)), TV.Create(1f), mid));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => VectorMath.KeepNaN(x, TV.Create(1f / 6f) & TV.GreaterThan(x, TV.Create(-3f)) & TV.LessThan(x, TV.Create(3f)));
}
