using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// The tanh approximation of GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated as the
/// identical x sigmoid(2u) so negative x does not cancel. 2u is carried as an exact-enough hi + lo
/// (double-float products of split constants), because e^(-2u) multiplies u's rounding by |2u|.
/// </summary>
internal readonly struct GeluTanhOp : IActivationOp
{
    // K0 = 2 sqrt(2/pi), K1 = K0 * 0.044715, each split hi + lo.
    const float K0Hi = 1.5957691669464111328125f;
    const float K0Lo = -4.534068054340423e-08f;
    const float K1Hi = 0.07135481387376785f;
    const float K1Lo = 2.3988324659995897e-09f;

    /// <summary>2u = K0 x + K1 x^3 as hi (returned) + <paramref name="lo"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV TwoU<TV>(TV x, out TV lo) where TV : unmanaged, ISimd<TV>
    {
        TV sq = VectorMath.TwoProductUnmasked(x, x, out TV sqLo);
        TV cube = VectorMath.TwoProductUnmasked(x, sq, out TV cubeLo);
        cubeLo = TV.Fma(x, sqLo, cubeLo);
        TV a = VectorMath.TwoProductUnmasked(TV.Create(K0Hi), x, out TV aLo);
        aLo = TV.Fma(TV.Create(K0Lo), x, aLo);
        TV b = VectorMath.TwoProductUnmasked(TV.Create(K1Hi), cube, out TV bLo);
        bLo = TV.Fma(TV.Create(K1Hi), cubeLo, TV.Fma(TV.Create(K1Lo), cube, bLo));
        // Knuth's two-sum: s + e = a + b exactly. Nothing is masked: a remainder overflows only where b and so s is
        // infinite (or x is NaN), and there every use of lo is decided by s alone (the sigmoid forms' range tests fail
        // for an infinite or NaN hi + lo, and the exponentials' edge path masks lo where hi is infinite).
        TV s = a + b;
        TV bb = s - a;
        TV e = (a - (s - bb)) + (b - bb);
        lo = e + aLo + bLo;
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV s = TwoU(x, out TV lo);
        return VectorMath.TimesSigmoid(x, s, lo);
    }

    /// <summary>d/dx [x sigmoid(2u)] = sigmoid(2u) + x sigmoid'(2u) (K0 + 3 K1 x^2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV s = TwoU(x, out TV lo);
        return VectorMath.TimesSigmoidDerivative(x, s, lo, TV.Fma(TV.Create(3f * K1Hi) * x, x, TV.Create(K0Hi)));
    }
}
