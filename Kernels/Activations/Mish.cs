using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// mish(x) = x tanh(softplus(x)) (Misra, 2019), via the identity tanh(ln(1 + e^x)) = n / (n + 2) with
/// n = e^x (e^x + 2): one exponential, no cancellation for negative x.
/// </summary>
internal readonly struct MishOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV e = VectorMath.Exp(x);
        TV n = e * (e + TV.Create(2f));
        TV result = x * (n / (n + TV.Create(2f)));
        result = TV.Select(TV.GreaterThan(x, TV.Create(20f)), x, result);
        // Far left mish(x) = x e^x (1 + O(e^x)), normal while e^x is not: (x e^(x/2)) e^(x/2), as silu.
        TV farLeft = TV.LessThan(x, TV.Create(-80f));
        if (TV.Any(farLeft))
        {
            TV root = VectorMath.Exp(x * TV.Create(0.5f));
            TV tiny = TV.Select(TV.Equal(x, TV.Create(float.NegativeInfinity)), TV.Create(-0f), x * root * root);
            result = TV.Select(farLeft, tiny, result);
        }
        return result;
    }
    public static string Name => "mish";
    public static string DeviceBody =>
        "if (x > 20.0f) return x;" +
        " if (x < -80.0f) return ga_scaled_exp(x, x, 0.0f);" +
        " float e = exp(x); float n = e * (e + 2.0f); return x * (n / (n + 2.0f));";
}
