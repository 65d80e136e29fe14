using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// mish(x) = x tanh(softplus(x)) (Misra, 2019), via the identity tanh(ln(1 + e^x)) = n / (n + 2) with
/// n = e^x (e^x + 2): one exponential, no cancellation for negative x.
/// </summary>
internal readonly struct MishOp : IActivationOp
{
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV e = VectorMath.Exp(x);
        TV n = e * (e + TV.Create(2f));
        TV result = x * (n / (n + TV.Create(2f)));
        result = TV.Select(TV.GreaterThan(x, TV.Create(20f)), x, result);
        return TV.Select(TV.LessThan(x, TV.Create(-100f)), Simd.SignBit(x), result);
    }
    public static string Name => "mish";
    public static string DeviceBody =>
        "if (x > 20.0f) return x; if (x < -100.0f) return -0.0f;" +
        " float e = exp(x); float n = e * (e + 2.0f); return x * (n / (n + 2.0f));";
}
