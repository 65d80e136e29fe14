using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// mish(x) = x tanh(softplus(x)) (Misra, 2019), via the identity tanh(ln(1 + e^x)) = n / (n + 2) with
/// n = e^x (e^x + 2): one exponential, no cancellation for negative x. n is e^2x + 2 e^x rounded once (an fma; 2 e^x is
/// exact): rounding e^x + 2 and then the product took the forward to 5 ulp at x = -5.9445534 in the exhaustive sweep,
/// past the 4-ulp bound.
/// </summary>
internal readonly struct MishOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV e = VectorMath.Exp(x);
        TV n = TV.Fma(e, e, e + e);
        TV result = x * (n / (n + TV.Create(2f)));
        result = TV.Select(TV.GreaterThan(x, TV.Create(20f)), x, result);
        // Far left mish(x) = x e^x (1 + O(e^x)), normal while e^x is not.
        TV farLeft = TV.LessThan(x, TV.Create(-80f));
        if (TV.Any(farLeft))
        {
            // x e^x rounded once (into the subnormal range too: e^(x/2) itself is subnormal below x = -175).
            TV tiny = TV.Select(TV.Equal(x, TV.Create(float.NegativeInfinity)), TV.Create(-0f), VectorMath.ScaledExp(x, TV.Create(0f), x));
            result = TV.Select(farLeft, tiny, result);
        }
        return result;
    }
    /// <summary>
    /// mish'(x) = tanh(sp) + x sech^2(sp) sigmoid(x), sp = softplus(x). With e = e^x and n = e (e + 2):
    /// tanh(sp) = n / (n + 2) and sech^2(sp) sigmoid(x) = 4 e (1 + e) / (n + 2)^2 (as 1 + n = (1 + e)^2).
    /// Above 20 it is 1 in float; below -80 it is e^x (1 + x) rounded once; x is clamped at -200 (past the underflow of
    /// e^x (1 + x), near -99.9) so that -inf gives -0, the limit from below, not -inf * 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV xc = TV.Max(TV.Min(x, TV.Create(20f)), TV.Create(-200f));
        TV e = VectorMath.Exp(xc);
        TV n = TV.Fma(e, e, e + e);
        TV q = TV.Create(1f) / (n + TV.Create(2f));
        TV result = TV.Fma(TV.Create(4f) * xc * e * (e + TV.Create(1f)), q * q, n / (n + TV.Create(2f)));
        // Far left both terms are e^x to float precision: e^x (1 + x) rounded once, normal where e^x is not.
        TV farLeft = TV.LessThan(x, TV.Create(-80f));
        if (TV.Any(farLeft)) result = TV.Select(farLeft, VectorMath.ScaledExp(xc, TV.Create(0f), xc + TV.Create(1f)), result);
        return VectorMath.KeepNaN(x, TV.Select(TV.GreaterThan(x, TV.Create(20f)), TV.Create(1f), result));
    }
}
