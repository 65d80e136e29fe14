using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// leaky_relu(x) = x &lt; 0 ? alpha x : x (NaN stays NaN). With alpha = 0 the negative side is a zero of the
/// product's sign, so x = -inf gives the limit, not 0 * inf = NaN.
/// </summary>
internal readonly struct LeakyReluOp(float alpha) : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV negativeSide = alpha == 0f ? Simd.SignBit(x) ^ Simd.SignBit(TV.Create(alpha)) : x * TV.Create(alpha);
        return TV.Select(TV.LessThan(x, TV.Create(0f)), negativeSide, x);
    }
    public static string Name => "leaky_relu";
    public static string DeviceBody => "return x < 0.0f ? (alpha == 0.0f ? copysign(0.0f, -alpha) : alpha * x) : x;";
}
