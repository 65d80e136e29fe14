using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// The exact GELU, x Phi(x) = x (1 + erf(x/sqrt2)) / 2 (Hendrycks and Gimpel, 2016). For x &lt; -0.707 it uses
/// erfc instead of 1 + erf, which would cancel; see <see cref="VectorMath.Gelu{TV}"/>.
/// </summary>
internal readonly struct GeluOp : IActivationOp
{
    // A call of its own, fully optimised: inlined into the loop it would exhaust the JIT's inlining budget.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => VectorMath.Gelu(x);
    public static string Name => "gelu";

    // On devices erfc(t) is the vendor's, evaluated at the rounded t = -x/sqrt2; the factor (1 + d),
    // d = t^2 - x^2/2 computed exactly with FMAs, moves it to the exact argument (erfc'/erfc ~ -2t).
    public static string DeviceBody => """
        float t = -x * 0.70710678118654752f;
        if (!(t > 0.5f)) return 0.5f * x * (1.0f + erf(-t));
        if (x < -20.0f) return -0.0f;
        float hx = 0.5f * x;
        float h = hx * x;
        float d = fma(t, t, -h) - fma(hx, x, -h);
        return hx * erfc(t) * (1.0f + d);
        """;
}
