namespace GpuActivations.Reference;

/// <summary>The backward pass's reference: analytic derivatives in double, PyTorch's one-sided choices at kinks.</summary>
public static partial class ScalarReference
{
    // 1/sqrt(2 pi), nearest double.
    private const double InvSqrtTwoPi = 0.3989422804014327;

    /// <summary>σ'(z) = e/(1 + e)² with e = e^(-|z|): no cancellation for large |z|; 0 at ±∞, NaN → NaN.</summary>
    /// <param name="z">Argument.</param>
    /// <returns>σ(z)·σ(-z).</returns>
    public static double SigmoidDerivative(double z)
    {
        double e = Math.Exp(-Math.Abs(z));
        return e / ((1.0 + e) * (1.0 + e));
    }

    /// <summary>tanh'(x) = sech²(x) = 4e/(1 + e)² with e = e^(-2|x|) (1 - tanh² would cancel for large |x|).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The derivative; tanh'(0) = 1.</returns>
    public static double TanhDerivative(double x) => 4.0 * SigmoidDerivative(2.0 * x);

    /// <summary>d/dx [x·σ(b·x)] = σ(bx) + bx·σ'(bx), the limit 1 or 0 at ±∞ (bx·σ'(bx) → 0).</summary>
    private static double TimesSigmoidDerivative(double x, double b)
    {
        double z = b * x;
        double d = SigmoidDerivative(z);
        return Sigmoid(z) + (d == 0.0 ? 0.0 : z * d);
    }

    /// <summary>GELU'(x) = Φ(x) + x·φ(x), φ(x) = e^(-x²/2)/√(2π); 1 at +∞, 0 at -∞.</summary>
    /// <param name="x">Input.</param>
    /// <returns>The derivative; GELU'(0) = ½.</returns>
    public static double GeluDerivative(double x)
    {
        if (double.IsInfinity(x))
        {
            return x > 0 ? 1.0 : 0.0;
        }

        return SpecialFunctions.NormalCdf(x) + x * Math.Exp(-0.5 * x * x) * InvSqrtTwoPi;
    }

    /// <summary>d/dx of <see cref="GeluTanh"/> = x·σ(2u): σ(2u) + x·σ'(2u)·2u', 2u' = 2√(2/π)(1 + 3·0.044715x²).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The derivative; 1 at +∞, 0 at -∞.</returns>
    public static double GeluTanhDerivative(double x)
    {
        double s = 2.0 * SqrtTwoOverPi * x * (1.0 + GeluTanhCubic * x * x);
        double d = SigmoidDerivative(s);
        return Sigmoid(s) + (d == 0.0 ? 0.0 : x * d * 2.0 * SqrtTwoOverPi * (1.0 + 3.0 * GeluTanhCubic * x * x));
    }

    /// <summary>Mish'(x) = tanh(sp) + x·sech²(sp)·σ(x), sp = softplus(x); with e = e^x, n = e(e + 2): n/(n + 2) + 4xe(1 + e)/(n + 2)².</summary>
    /// <param name="x">Input.</param>
    /// <returns>The derivative; 1 at +∞ (and from x = 40 on, where it is 1 in double), 0 at -∞.</returns>
    public static double MishDerivative(double x)
    {
        if (x >= 40.0)
        {
            return 1.0;
        }

        double e = Math.Exp(x);
        if (e == 0.0)
        {
            return 0.0;
        }

        double n = e * (e + 2.0);
        return n / (n + 2.0) + 4.0 * x * e * (1.0 + e) / ((n + 2.0) * (n + 2.0));
    }

    /// <summary>
    /// f'(x) of the activation <paramref name="op"/>, with PyTorch's value at kinks: ReLU'(0) = 0, Leaky ReLU'(0) = alpha,
    /// ELU'(0) = alpha, ReLU6' = 1 only on (0, 6), hard sigmoid' = 1/6 on (-3, 3), hard swish' = (2x + 3)/6 on [-3, 3];
    /// softplus' = σ(beta x) up to the threshold, 1 above. NaN → NaN.
    /// </summary>
    /// <param name="op">The operation.</param>
    /// <param name="x">Input.</param>
    /// <param name="alpha">As for <see cref="Evaluate"/>.</param>
    /// <param name="beta">As for <see cref="Evaluate"/>.</param>
    /// <param name="threshold">As for <see cref="Evaluate"/>.</param>
    /// <returns>The derivative in double.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="op"/> is not a defined <see cref="ActivationId"/>.</exception>
    public static double Derivative(ActivationId op, double x, double alpha, double beta, double threshold)
    {
        if (double.IsNaN(x))
        {
            return x;
        }

        return op switch
        {
            ActivationId.Sigmoid => SigmoidDerivative(x),
            ActivationId.Tanh => TanhDerivative(x),
            ActivationId.Relu => x > 0 ? 1.0 : 0.0,
            ActivationId.LeakyRelu => x > 0 ? 1.0 : alpha,
            ActivationId.Elu => x > 0 ? 1.0 : alpha * Math.Exp(x),
            ActivationId.Selu => x > 0 ? SeluScale : SeluScale * SeluAlpha * Math.Exp(x),
            ActivationId.Gelu => GeluDerivative(x),
            ActivationId.GeluTanh => GeluTanhDerivative(x),
            ActivationId.Silu => TimesSigmoidDerivative(x, 1.0),
            ActivationId.Swish => beta == 0 ? 0.5 : TimesSigmoidDerivative(x, beta),
            ActivationId.QuickGelu => TimesSigmoidDerivative(x, QuickGeluSlope),
            ActivationId.Softplus => x * beta > threshold ? 1.0 : Sigmoid(x * beta),
            ActivationId.Mish => MishDerivative(x),
            ActivationId.HardSigmoid => x > -3.0 && x < 3.0 ? 1.0 / 6.0 : 0.0,
            ActivationId.HardSwish => x < -3.0 ? 0.0 : x > 3.0 ? 1.0 : (2.0 * x + 3.0) / 6.0,
            ActivationId.Relu6 => x > 0 && x < 6.0 ? 1.0 : 0.0,
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown activation."),
        };
    }

    /// <summary>
    /// The magnitude of the terms that <see cref="Derivative"/> adds: |g| + |x·g'| for the x·g(x) activations (GELU's
    /// Φ + |x|φ, SiLU's σ + |x σ'|, Mish's tanh(sp) + |x sech²(sp) σ|), |f'(x)| for the others. A float evaluation of
    /// f' errs by a few ulps of this scale; it equals |f'(x)| except near f''s zero (GELU near -0.75, SiLU near -1.28),
    /// where the terms cancel and no float formula keeps the tiny value's relative accuracy.
    /// </summary>
    /// <param name="op">The operation.</param>
    /// <param name="x">Input.</param>
    /// <param name="alpha">As for <see cref="Evaluate"/>.</param>
    /// <param name="beta">As for <see cref="Evaluate"/>.</param>
    /// <param name="threshold">As for <see cref="Evaluate"/>.</param>
    /// <returns>The scale in double (NaN for NaN).</returns>
    public static double DerivativeScale(ActivationId op, double x, double alpha, double beta, double threshold)
    {
        double d = Math.Abs(Derivative(op, x, alpha, beta, threshold));
        if (!double.IsFinite(x))
        {
            return d;
        }

        double TimesSigmoid(double b)
        {
            double z = b * x;
            return Sigmoid(z) + Math.Abs(z * SigmoidDerivative(z));
        }

        switch (op)
        {
            case ActivationId.Gelu:
                return SpecialFunctions.NormalCdf(x) + Math.Abs(x * Math.Exp(-0.5 * x * x) * InvSqrtTwoPi);
            case ActivationId.GeluTanh:
                double s = 2.0 * SqrtTwoOverPi * x * (1.0 + GeluTanhCubic * x * x);
                return Sigmoid(s) + Math.Abs(x * SigmoidDerivative(s) * 2.0 * SqrtTwoOverPi * (1.0 + 3.0 * GeluTanhCubic * x * x));
            case ActivationId.Silu:
                return TimesSigmoid(1.0);
            case ActivationId.Swish when beta != 0:
                return TimesSigmoid(beta);
            case ActivationId.QuickGelu:
                return TimesSigmoid(QuickGeluSlope);
            case ActivationId.Mish when x < 40.0:
                double e = Math.Exp(x), n = e * (e + 2.0);
                return n / (n + 2.0) + Math.Abs(4.0 * x * e * (1.0 + e) / ((n + 2.0) * (n + 2.0)));
            default:
                return d;
        }
    }

    /// <summary>
    /// f'(x) from the output y = f(x), for the activations where that is exact: sigmoid y(1 - y), tanh 1 - y²,
    /// ReLU / ReLU6 (1 where y is in (0, ∞) / (0, 6)), Leaky ReLU and ELU with alpha &gt; 0 (y &gt; 0 ? 1 : alpha, resp.
    /// y + alpha), SELU (y &gt; 0 ? λ : y + λα). NaN → NaN.
    /// </summary>
    /// <param name="op">The operation.</param>
    /// <param name="y">The activation's output.</param>
    /// <param name="alpha">The activation's alpha (Leaky ReLU, ELU).</param>
    /// <returns>The derivative in double.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="op"/> has no derivative in terms of its output.</exception>
    public static double OutputDerivative(ActivationId op, double y, double alpha)
    {
        if (double.IsNaN(y))
        {
            return y;
        }

        return op switch
        {
            ActivationId.Sigmoid => y * (1.0 - y),
            ActivationId.Tanh => 1.0 - y * y,
            ActivationId.Relu => y > 0 ? 1.0 : 0.0,
            ActivationId.Relu6 => y > 0 && y < 6.0 ? 1.0 : 0.0,
            ActivationId.LeakyRelu => y > 0 ? 1.0 : alpha,
            ActivationId.Elu => y > 0 ? 1.0 : y + alpha,
            ActivationId.Selu => y > 0 ? SeluScale : y + SeluScale * SeluAlpha,
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "This activation has no derivative in terms of its output."),
        };
    }

    /// <summary>dx[i] = (float)(dy[i]·f'(x[i])), the product in double, rounded once.</summary>
    /// <param name="op">The operation.</param>
    /// <param name="x">Inputs (or, with <paramref name="fromOutput"/>, the outputs y = f(x)).</param>
    /// <param name="dy">Gradients with respect to the output, as long as <paramref name="x"/>.</param>
    /// <param name="dx">Gradients with respect to the input; at least as long as <paramref name="x"/>.</param>
    /// <param name="alpha">See <see cref="Evaluate"/>.</param>
    /// <param name="beta">See <see cref="Evaluate"/>.</param>
    /// <param name="threshold">See <see cref="Evaluate"/>.</param>
    /// <param name="fromOutput">Use <see cref="OutputDerivative"/> on x (then holding y).</param>
    /// <exception cref="ArgumentException">The lengths do not fit.</exception>
    public static void Backward(
        ActivationId op,
        ReadOnlySpan<float> x,
        ReadOnlySpan<float> dy,
        Span<float> dx,
        double alpha = default,
        double beta = default,
        double threshold = default,
        bool fromOutput = false)
    {
        if (dy.Length != x.Length)
        {
            throw new ArgumentException("dy must be as long as x.", nameof(dy));
        }

        RequireDestination(dx.Length, x.Length, nameof(dx));
        for (int i = 0; i < x.Length; i++)
        {
            double d = fromOutput ? OutputDerivative(op, x[i], alpha) : Derivative(op, x[i], alpha, beta, threshold);
            dx[i] = (float)(dy[i] * d);
        }
    }

    /// <summary>
    /// PReLU's backward pass: dx[i] = x[i] &lt; 0 ? alpha[c]·dy[i] : dy[i] (NaN x → NaN), and
    /// dAlpha[c] = Σ over rows of (x &lt; 0 ? x·dy : 0) in double (NaN x contributes NaN), c = i % alpha.Length.
    /// </summary>
    /// <param name="x">Inputs, length a multiple of alpha.Length.</param>
    /// <param name="alpha">Per-channel slopes.</param>
    /// <param name="dy">Gradients with respect to the output, as long as x.</param>
    /// <param name="dx">Gradients with respect to the input; at least as long as x.</param>
    /// <param name="dAlpha">Gradients with respect to the slopes; at least as long as alpha.</param>
    /// <exception cref="ArgumentException">The lengths do not fit.</exception>
    public static void PReluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> alpha, ReadOnlySpan<float> dy, Span<float> dx, Span<float> dAlpha)
    {
        if (alpha.Length == 0 || x.Length % alpha.Length != 0 || dy.Length != x.Length)
        {
            throw new ArgumentException("alpha must be non-empty, x a whole number of rows of alpha.Length, dy as long as x.", nameof(x));
        }

        RequireDestination(dx.Length, x.Length, nameof(dx));
        RequireDestination(dAlpha.Length, alpha.Length, nameof(dAlpha));
        var sums = new double[alpha.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int c = i % alpha.Length;
            double v = x[i];
            sums[c] += v >= 0 ? 0.0 : v * dy[i];
            dx[i] = (float)(v < 0 ? alpha[c] * (double)dy[i] : double.IsNaN(v) ? v : dy[i]);
        }

        for (int c = 0; c < alpha.Length; c++)
        {
            dAlpha[c] = (float)sums[c];
        }
    }
}
