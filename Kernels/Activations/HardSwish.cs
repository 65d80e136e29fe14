using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>hard_swish(x) = x relu6(x + 3) / 6 (Howard et al., MobileNetV3; PyTorch's hardswish); -0 for x &lt;= -3.
/// Its derivative, as PyTorch's: 0 below -3, 1 above 3, (2x + 3) / 6 on [-3, 3] (-1/2 and 3/2 at the ends).</summary>
internal readonly struct HardSwishOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV mid = x * (x + TV.Create(3f)) / TV.Create(6f);
        // Below -3 the result is x * 0 / 6 = -0 (PyTorch's x * relu6(x + 3) / 6 and the limit at -inf).
        return TV.Select(TV.LessThanOrEqual(x, TV.Create(-3f)), TV.Create(-0f), TV.Select(TV.GreaterThanOrEqual(x, TV.Create(3f)), x, mid));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        // (2x + 3) / 6: 2x + 3 is exact for x in [-3, -0.75] (Sterbenz), where the derivative crosses 0.
        TV mid = (x + x + TV.Create(3f)) / TV.Create(6f);
        return TV.Select(TV.LessThan(x, TV.Create(-3f)), TV.Create(0f), TV.Select(TV.GreaterThan(x, TV.Create(3f)), TV.Create(1f), mid));
    }
}
