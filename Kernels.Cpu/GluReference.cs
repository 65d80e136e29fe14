namespace GpuActivations.Reference;

/// <summary>The gated units' reference: forward in every layout, the clamped SwiGLU, and the backward pass, in double.</summary>
public static partial class ScalarReference
{
    /// <summary>gpt-oss's clamped SwiGLU sigmoid scale α (1.702). A float kernel's α is 1.702f: pass that (the unit's Alpha) to compare with it.</summary>
    public const double DefaultClampedSwiGluAlpha = 1.702;

    /// <summary>gpt-oss's clamped SwiGLU limit (7).</summary>
    public const double DefaultClampedSwiGluLimit = 7.0;

    /// <summary>
    /// One gated unit's output: act(g)·u, or for <see cref="GluId.ClampedSwiGlu"/> swish_α(min(g, limit))·(clamp(u, ±limit) + 1)
    /// (NaN is not clamped).
    /// </summary>
    /// <param name="op">The unit.</param>
    /// <param name="g">The gate.</param>
    /// <param name="u">The up value.</param>
    /// <param name="alpha">The clamped SwiGLU's sigmoid scale (ignored by the others).</param>
    /// <param name="limit">The clamped SwiGLU's limit (ignored by the others).</param>
    public static double GluValue(GluId op, double g, double u, double alpha = DefaultClampedSwiGluAlpha, double limit = DefaultClampedSwiGluLimit)
        => op == GluId.ClampedSwiGlu ? Swish(ClampGate(g, limit), alpha) * (ClampUp(u, limit) + 1.0) : Gate(op, g, alpha) * u;

    /// <summary>
    /// The gradients of <see cref="GluValue"/> with respect to g and u, scaled by dy: (dy·u·act'(g), dy·act(g)); for the
    /// clamped SwiGLU with its clamped inputs and (u + 1), each 0 where its clamp is active (g &gt; limit; |u| &gt; limit).
    /// </summary>
    /// <param name="op">The unit.</param>
    /// <param name="g">The gate.</param>
    /// <param name="u">The up value.</param>
    /// <param name="dy">The output's gradient.</param>
    /// <param name="alpha">The clamped SwiGLU's sigmoid scale.</param>
    /// <param name="limit">The clamped SwiGLU's limit.</param>
    /// <returns>(dGate, dUp) in double.</returns>
    public static (double DGate, double DUp) GluGradient(GluId op, double g, double u, double dy,
        double alpha = DefaultClampedSwiGluAlpha, double limit = DefaultClampedSwiGluLimit)
    {
        RequireGlu(op);
        if (op != GluId.ClampedSwiGlu) return (dy * u * GateDerivative(op, g, alpha), dy * Gate(op, g, alpha));
        double gc = ClampGate(g, limit);
        return (g > limit ? 0.0 : dy * (ClampUp(u, limit) + 1.0) * GateDerivative(op, gc, alpha),
                Math.Abs(u) > limit ? 0.0 : dy * Swish(gc, alpha));
    }

    /// <summary>The derivative of a unit's gate activation: silu', gelu', gelu_tanh', relu' (0 at 0) or swish_α'; the limit at ±∞, NaN for NaN.</summary>
    /// <param name="op">The unit.</param>
    /// <param name="x">The gate.</param>
    /// <param name="alpha">The clamped SwiGLU's sigmoid scale.</param>
    public static double GateDerivative(GluId op, double x, double alpha = DefaultClampedSwiGluAlpha)
    {
        if (double.IsNaN(x)) return x;
        if (double.IsInfinity(x)) return op == GluId.ClampedSwiGlu && alpha == 0 ? 0.5 : x > 0 ? 1.0 : 0.0;
        switch (op)
        {
            case GluId.SwiGlu: return SwishDerivative(x, 1.0);
            case GluId.ClampedSwiGlu: return SwishDerivative(x, alpha);
            case GluId.GeGlu: return SpecialFunctions.NormalCdf(x) + x * Math.Exp(-0.5 * x * x) / Math.Sqrt(2.0 * Math.PI);
            case GluId.GeGluTanh:
            {
                // d/dx x·σ(s), s = 2√(2/π)(x + c x³): σ(s) + x s'(x) σ(s) σ(-s).
                double s = 2.0 * SqrtTwoOverPi * x * (1.0 + GeluTanhCubic * x * x);
                double slope = 2.0 * SqrtTwoOverPi * (1.0 + 3.0 * GeluTanhCubic * x * x);
                return Sigmoid(s) + x * slope * Sigmoid(s) * Sigmoid(-s);
            }
            case GluId.ReGlu: return x > 0 ? 1.0 : 0.0;
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown GLU variant.");
        }
    }

    /// <summary>d/dx x·σ(βx) = σ(z) + z σ(z) σ(-z), z = βx (σ(-z) taken directly, not as 1 - σ(z)).</summary>
    static double SwishDerivative(double x, double beta)
    {
        double z = beta * x;
        return Sigmoid(z) + z * Sigmoid(z) * Sigmoid(-z);
    }

    /// <summary>
    /// A gated unit on a packed [rows, 2d] tensor, each row [gate(d) | up(d)] or, <paramref name="interleaved"/>,
    /// gate and up alternating (gate at even positions); y is [rows, d], rounded once per element.
    /// </summary>
    /// <param name="op">The unit.</param>
    /// <param name="packed">Row-major [rows, 2d] input.</param>
    /// <param name="y">Row-major [rows, d] output.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="d">Outputs per row.</param>
    /// <param name="interleaved">Whether gate and up alternate within a row.</param>
    /// <param name="alpha">The clamped SwiGLU's sigmoid scale.</param>
    /// <param name="limit">The clamped SwiGLU's limit.</param>
    public static void GluPacked(GluId op, ReadOnlySpan<float> packed, Span<float> y, int rows, int d, bool interleaved,
        double alpha = DefaultClampedSwiGluAlpha, double limit = DefaultClampedSwiGluLimit)
    {
        RequirePacked(op, packed.Length, rows, d);
        RequireDestination(y.Length, (long)rows * d, nameof(y));
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++)
            {
                var (g, u) = PackedIndices(r, j, d, interleaved);
                y[r * d + j] = (float)GluValue(op, packed[g], packed[u], alpha, limit);
            }
    }

    /// <summary>The backward pass of separate gated units, in double (not rounded): dGate[i], dUp[i] from gate, up, dy.</summary>
    /// <param name="op">The unit.</param>
    /// <param name="gate">Gate inputs.</param>
    /// <param name="up">Up inputs.</param>
    /// <param name="dy">Output gradients.</param>
    /// <param name="dGate">Gate gradients.</param>
    /// <param name="dUp">Up gradients.</param>
    /// <param name="alpha">The clamped SwiGLU's sigmoid scale.</param>
    /// <param name="limit">The clamped SwiGLU's limit.</param>
    public static void GluBackward(GluId op, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, ReadOnlySpan<float> dy,
        Span<double> dGate, Span<double> dUp, double alpha = DefaultClampedSwiGluAlpha, double limit = DefaultClampedSwiGluLimit)
    {
        if (gate.Length != up.Length || gate.Length != dy.Length) throw new ArgumentException("gate, up and dy must have the same length.", nameof(dy));
        RequireDestination(dGate.Length, gate.Length, nameof(dGate));
        RequireDestination(dUp.Length, gate.Length, nameof(dUp));
        for (int i = 0; i < gate.Length; i++) (dGate[i], dUp[i]) = GluGradient(op, gate[i], up[i], dy[i], alpha, limit);
    }

    /// <summary>The backward pass of <see cref="GluPacked(GluId, ReadOnlySpan{float}, Span{float}, int, int, bool, double, double)"/>: dPacked in packed's layout, in double.</summary>
    /// <param name="op">The unit.</param>
    /// <param name="packed">Row-major [rows, 2d] input.</param>
    /// <param name="dy">Row-major [rows, d] output gradients.</param>
    /// <param name="dPacked">Row-major [rows, 2d] input gradients.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="d">Outputs per row.</param>
    /// <param name="interleaved">Whether gate and up alternate within a row.</param>
    /// <param name="alpha">The clamped SwiGLU's sigmoid scale.</param>
    /// <param name="limit">The clamped SwiGLU's limit.</param>
    public static void GluPackedBackward(GluId op, ReadOnlySpan<float> packed, ReadOnlySpan<float> dy, Span<double> dPacked, int rows, int d,
        bool interleaved, double alpha = DefaultClampedSwiGluAlpha, double limit = DefaultClampedSwiGluLimit)
    {
        RequirePacked(op, packed.Length, rows, d);
        if (dy.Length != (long)rows * d) throw new ArgumentException("dy must hold rows·d elements.", nameof(dy));
        RequireDestination(dPacked.Length, packed.Length, nameof(dPacked));
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++)
            {
                var (g, u) = PackedIndices(r, j, d, interleaved);
                (dPacked[g], dPacked[u]) = GluGradient(op, packed[g], packed[u], dy[r * d + j], alpha, limit);
            }
    }

    static (int Gate, int Up) PackedIndices(int r, int j, int d, bool interleaved)
        => interleaved ? (r * 2 * d + 2 * j, r * 2 * d + 2 * j + 1) : (r * 2 * d + j, r * 2 * d + d + j);

    static void RequirePacked(GluId op, int length, int rows, int d)
    {
        RequireGlu(op);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(d);
        if (length != 2L * rows * d) throw new ArgumentException("packed must hold rows·2d elements.", "packed");
    }

    /// <summary>The gate activation of an unclamped unit (swish_α for the clamped one).</summary>
    static double Gate(GluId op, double g, double alpha) => op switch
    {
        GluId.SwiGlu => Silu(g),
        GluId.GeGlu => Gelu(g),
        GluId.GeGluTanh => GeluTanh(g),
        GluId.ReGlu => Relu(g),
        GluId.ClampedSwiGlu => Swish(g, alpha),
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown GLU variant."),
    };

    static double ClampGate(double g, double limit) => g > limit ? limit : g;

    static double ClampUp(double u, double limit) => u > limit ? limit : u < -limit ? -limit : u;
}
