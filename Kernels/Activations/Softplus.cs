using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// softplus(x) = ln(1 + e^(beta x)) / beta, and x where beta x &gt; threshold (PyTorch's definition and defaults
/// beta = 1, threshold = 20), as max(z, 0) + ln(1 + e^-|z|) with z = beta x so no threshold can make it overflow.
/// beta x is carried exactly (hi + lo) into the exponential.
/// softplus'(x) = sigmoid(beta x) below the threshold, 1 above (PyTorch).
/// </summary>
internal readonly struct SoftplusOp(float beta, float threshold) : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        // The common vector, beta x in [-80, 87.3] in every lane (no infinity, no NaN): e^-|beta x| is a normal float
        // (|lo| <= ulp(87.3)/2 keeps -|hi| +- lo inside the exponential's range), so the exponential needs no edge path
        // and no lane the far-left form, and the loop has no call (see VectorMath.ExpInRange); the same bits as the
        // careful form below. There the product is finite, so its remainder needs no overflow mask; the careful form
        // computes its own.
        TV hi = VectorMath.TwoProductUnmasked(TV.Create(beta), x, out TV lo);
        if (!VectorMath.AllFastWithin(hi, -80f, 87.3f)) return Careful(x);
        TV negative = TV.LessThan(hi, TV.Create(0f));
        TV log1p = VectorMath.Log1pUnit(VectorMath.ExpInRange(-Simd.Abs(hi), TV.Select(negative, lo, -lo)));
        TV soft = TV.Select(negative, log1p, hi + (lo + log1p));
        if (beta != 1f) soft /= TV.Create(beta);
        return TV.Select(TV.GreaterThan(hi, TV.Create(threshold)), x, soft);
    }

    /// <summary>Softplus for a vector with a lane far left, infinite or NaN, out of line.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    TV Careful<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV hi = VectorMath.TwoProduct(TV.Create(beta), x, out TV lo);
        // ln(1 + e^z) = max(z, 0) + ln(1 + e^-|z|): the exponential never overflows, whatever the threshold.
        TV negative = TV.LessThan(hi, TV.Create(0f));
        // e^-|z| is in [0, 1]: the division-free ln(1 + e) of that interval.
        TV log1p = VectorMath.Log1pUnit(VectorMath.Exp(-Simd.Abs(hi), TV.Select(negative, lo, -lo)));
        TV soft = TV.Select(negative, log1p, hi + (lo + log1p));
        // Dividing by 1 is exact, so the default beta skips the division (a vector division per vector otherwise).
        if (beta != 1f) soft /= TV.Create(beta);
        // Far left ln(1 + e^z) = e^z (1 - e^z/2 + ...): e^z / beta rounded once, so subnormal results are not rounded twice.
        TV farLeft = TV.LessThan(hi, TV.Create(-80f));
        if (TV.Any(farLeft)) soft = TV.Select(farLeft, VectorMath.ScaledExp(hi, lo, TV.Create(1f / beta)), soft);
        return TV.Select(TV.GreaterThan(hi, TV.Create(threshold)), x, soft);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        // The remainder unmasked: where the product is infinite the sigmoid's range test fails and its careful form
        // masks lo itself.
        TV hi = VectorMath.TwoProductUnmasked(TV.Create(beta), x, out TV lo);
        return TV.Select(TV.GreaterThan(hi, TV.Create(threshold)), TV.Create(1f), VectorMath.Sigmoid(hi, lo));
    }
}
