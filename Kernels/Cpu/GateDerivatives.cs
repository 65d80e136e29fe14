using System.Runtime.CompilerServices;
using GpuActivations.Activations;

namespace GpuActivations.Cpu;

/// <summary>
/// A gated unit's gate activation with its derivative, for the forward (<see cref="Value{TV}"/>) and backward
/// (<see cref="Derivative{TV}"/>) passes. The values are the activation structs of <c>Activations/</c>, and so are the
/// derivatives of the sigmoid-family gates (one code path, exhaustively swept with the activations); GELU's is written
/// here, from the forward value (every derivative is the limit at +-inf and NaN for NaN).
/// </summary>
internal interface IGate
{
    /// <summary>act(g) lane by lane.</summary>
    TV Value<TV>(TV g) where TV : unmanaged, ISimd<TV>;

    /// <summary>act'(g) lane by lane, given <paramref name="value"/> = act(g) (GELU's Phi is gelu(g) / g: one GELU per element, not two).</summary>
    TV Derivative<TV>(TV g, TV value) where TV : unmanaged, ISimd<TV>;
}

/// <summary>Receives a gated unit's gate, specialised per gate by the JIT; <c>limit</c> is the clamp (0: none).</summary>
internal interface IGateVisitor<TResult>
{
    /// <summary>Called with the gate of the unit being visited and its clamp limit (0 for the unclamped units).</summary>
    TResult Visit<TGate>(TGate gate, float limit) where TGate : struct, IGate;
}

/// <summary>silu, silu'(x) = sigmoid(x) + x sigmoid(x) sigmoid(-x): the activation's own derivative.</summary>
internal readonly struct SiluGate : IGate
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Value<TV>(TV g) where TV : unmanaged, ISimd<TV> => new SiluOp().Invoke(g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV g, TV value) where TV : unmanaged, ISimd<TV> => new SiluOp().Derivative(g);
}

/// <summary>
/// x sigmoid(alpha x) (the clamped SwiGLU's gate), derivative sigmoid(z) + z sigmoid(z) sigmoid(-z) with z = alpha x:
/// the activation's own derivative.
/// </summary>
internal readonly struct SwishGate(float alpha) : IGate
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Value<TV>(TV g) where TV : unmanaged, ISimd<TV> => new SwishOp(alpha).Invoke(g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV g, TV value) where TV : unmanaged, ISimd<TV> => new SwishOp(alpha).Derivative(g);
}

/// <summary>The exact GELU, gelu'(x) = Phi(x) + x phi(x).</summary>
internal readonly struct GeluGate : IGate
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Value<TV>(TV g) where TV : unmanaged, ISimd<TV> => new GeluOp().Invoke(g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV g, TV value) where TV : unmanaged, ISimd<TV>
    {
        // Phi(x) = gelu(x) / x, two roundings beyond gelu's; 1/2 near 0 (and at 0, where it is 0/0), 1 at +inf.
        TV cdf = value / g;
        cdf = TV.Select(TV.LessThan(Simd.Abs(g), TV.Create(1e-7f)), TV.Create(0.5f), cdf);
        cdf = TV.Select(TV.Equal(g, TV.Create(float.PositiveInfinity)), TV.Create(1f), cdf);
        // x phi(x) = x e^(-x^2/2) / sqrt(2 pi), the square exact (hi + lo); beyond |x| = 20 it is 0 (x clamped there).
        TV xc = TV.Max(TV.Min(g, TV.Create(20f)), TV.Create(-20f));
        // The clamped square is at most 200: its remainder needs no overflow mask (a NaN lane returns g below).
        TV sqHi = VectorMath.TwoProductUnmasked(xc * TV.Create(0.5f), xc, out TV sqLo);
        TV density = VectorMath.ScaledExp(-sqHi, -sqLo, xc * TV.Create(0.3989422804014327f));
        return TV.Select(Simd.IsNaN(g), g, cdf + density);
    }
}

/// <summary>
/// GELU's tanh form x sigmoid(s), s = K0 x + K1 x^3: derivative sigmoid(s) + x (K0 + 3 K1 x^2) sigmoid(s) sigmoid(-s),
/// the activation's own derivative (s carried exactly there).
/// </summary>
internal readonly struct GeluTanhGate : IGate
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Value<TV>(TV g) where TV : unmanaged, ISimd<TV> => new GeluTanhOp().Invoke(g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV g, TV value) where TV : unmanaged, ISimd<TV> => new GeluTanhOp().Derivative(g);
}

/// <summary>relu, relu'(x) = x &gt; 0 ? 1 : 0 (0 at 0, as PyTorch), NaN for NaN.</summary>
internal readonly struct ReluGate : IGate
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Value<TV>(TV g) where TV : unmanaged, ISimd<TV> => new ReluOp().Invoke(g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV g, TV value) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(g, TV.Create(0f)), TV.Create(1f), TV.Select(Simd.IsNaN(g), g, TV.Create(0f)));
}
