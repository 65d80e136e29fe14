namespace GpuActivations.Reference;

/// <summary>
/// The scalar reference ("oracle") for every activation kernel: deliberately plain loops that compute in
/// double precision and round to float exactly once per output element.
/// </summary>
/// <remarks>
/// <para>
/// Semantics follow PyTorch's definitions of each operation, with two project rules on special values that
/// PyTorch does not always honour: a NaN input gives a NaN output, and an infinite input gives the
/// mathematical limit of the function (e.g. silu(-∞) = -0, gelu(+∞) = +∞, elu(-∞) = -alpha, mish(-∞) = -0)
/// rather than the NaN that a literal <c>x * f(x)</c> evaluation produces as ∞·0.
/// </para>
/// <para>
/// Products of the form x·s(x), where s is a sigmoid-like factor in [0, 1], are formed so that an infinite
/// x with s = 0 gives a zero carrying the sign of x: that is the limit, since s decays exponentially.
/// </para>
/// <para>
/// Parameterized operations use their parameters exactly as passed; the PyTorch defaults are provided as
/// constants (<see cref="DefaultLeakyReluSlope"/>, <see cref="DefaultEluAlpha"/>, <see cref="DefaultSwishBeta"/>,
/// <see cref="DefaultSoftplusBeta"/>, <see cref="DefaultSoftplusThreshold"/>) for callers to pass explicitly.
/// </para>
/// </remarks>
public static partial class ScalarReference
{
    /// <summary>SELU α from Klambauer et al., "Self-Normalizing Neural Networks" (2017), as used by PyTorch (1.6732632423543772848170429916717).</summary>
    public const double SeluAlpha = 1.6732632423543772848170429916717;

    /// <summary>SELU scale λ from Klambauer et al. (2017), as used by PyTorch (1.0507009873554804934193349852946).</summary>
    public const double SeluScale = 1.0507009873554804934193349852946;

    /// <summary>The cubic coefficient 0.044715 of the tanh GELU approximation (Hendrycks &amp; Gimpel, "Gaussian Error Linear Units", 2016).</summary>
    public const double GeluTanhCubic = 0.044715;

    /// <summary>The sigmoid slope 1.702 of QuickGELU x·σ(1.702x) (Hendrycks &amp; Gimpel 2016, as used in CLIP).</summary>
    public const double QuickGeluSlope = 1.702;

    /// <summary>PyTorch's default negative slope of <c>leaky_relu</c> (0.01).</summary>
    public const double DefaultLeakyReluSlope = 0.01;

    /// <summary>PyTorch's default alpha of <c>elu</c> (1.0).</summary>
    public const double DefaultEluAlpha = 1.0;

    /// <summary>The default beta of Swish (1.0, which makes it SiLU).</summary>
    public const double DefaultSwishBeta = 1.0;

    /// <summary>PyTorch's default beta of <c>softplus</c> (1.0).</summary>
    public const double DefaultSoftplusBeta = 1.0;

    /// <summary>PyTorch's default threshold of <c>softplus</c> (20.0).</summary>
    public const double DefaultSoftplusThreshold = 20.0;

    // sqrt(2/pi) = 0.79788456080286535587989211986876..., nearest double.
    private const double SqrtTwoOverPi = 0.7978845608028654;

    // ---------------------------------------------------------------- scalar operations

    /// <summary>Logistic sigmoid σ(x) = 1/(1 + e^(-x)).</summary>
    /// <param name="x">Input.</param>
    /// <returns>σ(x); σ(-∞) = 0, σ(+∞) = 1, NaN → NaN.</returns>
    public static double Sigmoid(double x)
    {
        // Evaluate with the exponential of -|x| so it never overflows: for x < 0, σ(x) = e^x/(1 + e^x).
        if (x >= 0)
        {
            return 1.0 / (1.0 + Math.Exp(-x));
        }

        double e = Math.Exp(x); // NaN falls through here and stays NaN
        return e / (1.0 + e);
    }

    /// <summary>Hyperbolic tangent.</summary>
    /// <param name="x">Input.</param>
    /// <returns>tanh(x); tanh(±∞) = ±1, NaN → NaN.</returns>
    public static double Tanh(double x) => Math.Tanh(x);

    /// <summary>Rectified linear unit, written as <c>x &lt; 0 ? 0 : x</c>.</summary>
    /// <param name="x">Input.</param>
    /// <returns>0 for x &lt; 0, otherwise x itself, so NaN stays NaN and -0 stays -0.</returns>
    public static double Relu(double x) => x < 0 ? 0.0 : x;

    /// <summary>Leaky ReLU (PyTorch <c>leaky_relu</c>): x for x &gt; 0, else alpha·x.</summary>
    /// <param name="x">Input.</param>
    /// <param name="alpha">Negative slope (PyTorch default <see cref="DefaultLeakyReluSlope"/>).</param>
    /// <returns>The activation; NaN → NaN; with alpha = 0, -∞ gives -0 (the limit) rather than ∞·0.</returns>
    public static double LeakyRelu(double x, double alpha) => x > 0 ? x : MulLimit(x, alpha);

    /// <summary>ELU (PyTorch <c>elu</c>): x for x &gt; 0, else alpha·(e^x - 1).</summary>
    /// <param name="x">Input.</param>
    /// <param name="alpha">Saturation value for x → -∞ (PyTorch default <see cref="DefaultEluAlpha"/>).</param>
    /// <returns>The activation; elu(-∞) = -alpha, NaN → NaN.</returns>
    public static double Elu(double x, double alpha) => x > 0 ? x : alpha * SpecialFunctions.Expm1(x);

    /// <summary>SELU: <see cref="SeluScale"/>·(x for x &gt; 0, else <see cref="SeluAlpha"/>·(e^x - 1)).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The activation; selu(-∞) = -λα ≈ -1.7581, NaN → NaN.</returns>
    public static double Selu(double x) => SeluScale * (x > 0 ? x : SeluAlpha * SpecialFunctions.Expm1(x));

    /// <summary>Exact GELU x·Φ(x), Φ the standard normal CDF (PyTorch <c>gelu(approximate='none')</c>).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The activation; gelu(-∞) = -0, gelu(+∞) = +∞, NaN → NaN.</returns>
    public static double Gelu(double x) => MulLimit(x, SpecialFunctions.NormalCdf(x));

    /// <summary>
    /// Tanh-approximated GELU ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³) (PyTorch <c>gelu(approximate='tanh')</c>).
    /// </summary>
    /// <param name="x">Input.</param>
    /// <returns>The activation; -∞ → -0, +∞ → +∞, NaN → NaN.</returns>
    /// <remarks>
    /// Evaluated through the identity ½(1 + tanh u) = σ(2u), i.e. as x·σ(2u): the same function, but for very
    /// negative x it avoids 1 + tanh(u) cancelling to a tiny number with large relative error.
    /// For x → -∞ the function behaves like x·e^(2u), so it is intrinsically ill-conditioned: a relative
    /// perturbation δ of u (from rounding, or from using float rather than double constants) becomes 2|u|δ in the
    /// result. In double this bounds the reference's own error by about |2u|·3e-16 (≤ 3e-14 wherever the float
    /// result is a normal number); a float kernel's constants alone can account for a few float ulps there.
    /// </remarks>
    public static double GeluTanh(double x)
    {
        // u = √(2/π)·x·(1 + 0.044715x²): factoring x out keeps the sign and lets ±∞ flow through as ±∞.
        double u = SqrtTwoOverPi * x * (1.0 + GeluTanhCubic * x * x);
        return MulLimit(x, Sigmoid(2.0 * u));
    }

    /// <summary>SiLU x·σ(x).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The activation; silu(-∞) = -0, silu(+∞) = +∞, NaN → NaN.</returns>
    public static double Silu(double x) => MulLimit(x, Sigmoid(x));

    /// <summary>Swish x·σ(beta·x).</summary>
    /// <param name="x">Input.</param>
    /// <param name="beta">Sigmoid slope (<see cref="DefaultSwishBeta"/> = 1 gives SiLU; 0 gives x/2).</param>
    /// <returns>The activation, taking the limit for infinite x; NaN → NaN.</returns>
    public static double Swish(double x, double beta)
    {
        // With beta = 0, beta·x must be 0 even for infinite x (σ(0) = ½ for every x), not ∞·0 = NaN.
        double z = beta == 0 ? 0.0 : beta * x;
        return MulLimit(x, Sigmoid(z));
    }

    /// <summary>QuickGELU x·σ(1.702x).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The activation; -∞ → -0, +∞ → +∞, NaN → NaN.</returns>
    /// <remarks>
    /// The constant is the double nearest 1.702. For very negative x the result ≈ x·e^(1.702x), so the
    /// float constant 1.702f (relative difference 1.3e-8) shifts it by about 1.3e-8·1.702|x| relative: roughly
    /// one float ulp per 5 units of |x|, about 9 ulps at x = -50. Tolerances for float kernels should allow for that.
    /// </remarks>
    public static double QuickGelu(double x) => MulLimit(x, Sigmoid(QuickGeluSlope * x));

    /// <summary>
    /// Softplus with PyTorch semantics: x where beta·x &gt; threshold, otherwise ln(1 + e^(beta·x))/beta.
    /// </summary>
    /// <param name="x">Input.</param>
    /// <param name="beta">Sharpness; must be nonzero (PyTorch default <see cref="DefaultSoftplusBeta"/>).</param>
    /// <param name="threshold">Above this value of beta·x the function reverts to the identity (PyTorch default <see cref="DefaultSoftplusThreshold"/>).</param>
    /// <returns>The activation; for beta &gt; 0, -∞ → 0 and +∞ → +∞; NaN → NaN.</returns>
    /// <remarks>
    /// ln(1 + e^z) is evaluated as z + ln(1 + e^(-z)) for z &gt; 0 (an identity), so a large threshold never lets
    /// e^z overflow; for z ≤ 0, log1p keeps full relative accuracy of the small result.
    /// </remarks>
    public static double Softplus(double x, double beta, double threshold)
    {
        double z = x * beta;
        if (z > threshold)
        {
            return x;
        }

        double sp = z > 0
            ? z + SpecialFunctions.Log1p(Math.Exp(-z))
            : SpecialFunctions.Log1p(Math.Exp(z));
        return sp / beta;
    }

    /// <summary>Mish x·tanh(softplus(x)) (Misra, "Mish: A Self Regularized Non-Monotonic Activation Function", 2019).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The activation; mish(-∞) = -0, mish(+∞) = +∞, NaN → NaN.</returns>
    /// <remarks>
    /// With e = e^x, tanh(ln(1 + e)) = ((1+e)² - 1)/((1+e)² + 1) = n/(n + 2), n = e(e + 2). This closed form has
    /// no cancellation anywhere: for x → -∞ it tends to e/(1 + e) ≈ e^x with full relative accuracy, where
    /// composing tanh, log1p and exp would round three times. For x ≥ 20, 1 - n/(n+2) ≈ 2e^(-2x) &lt; 1e-17, so
    /// the factor is exactly 1 in double and the result is x (this also keeps e² from overflowing).
    /// </remarks>
    public static double Mish(double x)
    {
        if (x >= 20.0)
        {
            return x;
        }

        double e = Math.Exp(x);
        double n = e * (e + 2.0);
        return MulLimit(x, n / (n + 2.0));
    }

    /// <summary>Hard sigmoid (PyTorch <c>hardsigmoid</c>): 0 for x ≤ -3, 1 for x ≥ 3, x/6 + ½ between.</summary>
    /// <param name="x">Input.</param>
    /// <returns>The activation; NaN → NaN.</returns>
    public static double HardSigmoid(double x) => x <= -3.0 ? 0.0 : x >= 3.0 ? 1.0 : x / 6.0 + 0.5;

    /// <summary>Hard swish (PyTorch <c>hardswish</c>) x·HardSigmoid(x).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The activation; -0 for x ≤ -3 (including -∞), x for x ≥ 3, NaN → NaN.</returns>
    public static double HardSwish(double x) => MulLimit(x, HardSigmoid(x));

    /// <summary>ReLU6: x clamped to [0, 6], written so that NaN propagates and -0 stays -0.</summary>
    /// <param name="x">Input.</param>
    /// <returns>0 for x &lt; 0, 6 for x &gt; 6, otherwise x.</returns>
    public static double Relu6(double x) => x < 0 ? 0.0 : x > 6.0 ? 6.0 : x;

    /// <summary>Evaluates the activation <paramref name="op"/> at one point.</summary>
    /// <param name="op">The operation.</param>
    /// <param name="x">Input.</param>
    /// <param name="alpha">Used by <see cref="ActivationId.LeakyRelu"/> (negative slope) and <see cref="ActivationId.Elu"/>; ignored otherwise.</param>
    /// <param name="beta">Used by <see cref="ActivationId.Swish"/> and <see cref="ActivationId.Softplus"/>; ignored otherwise.</param>
    /// <param name="threshold">Used by <see cref="ActivationId.Softplus"/>; ignored otherwise.</param>
    /// <returns>The activation value in double.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="op"/> is not a defined <see cref="ActivationId"/>.</exception>
    public static double Evaluate(ActivationId op, double x, double alpha, double beta, double threshold) => op switch
    {
        ActivationId.Sigmoid => Sigmoid(x),
        ActivationId.Tanh => Tanh(x),
        ActivationId.Relu => Relu(x),
        ActivationId.LeakyRelu => LeakyRelu(x, alpha),
        ActivationId.Elu => Elu(x, alpha),
        ActivationId.Selu => Selu(x),
        ActivationId.Gelu => Gelu(x),
        ActivationId.GeluTanh => GeluTanh(x),
        ActivationId.Silu => Silu(x),
        ActivationId.Swish => Swish(x, beta),
        ActivationId.QuickGelu => QuickGelu(x),
        ActivationId.Softplus => Softplus(x, beta, threshold),
        ActivationId.Mish => Mish(x),
        ActivationId.HardSigmoid => HardSigmoid(x),
        ActivationId.HardSwish => HardSwish(x),
        ActivationId.Relu6 => Relu6(x),
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown activation."),
    };

    // ---------------------------------------------------------------- array operations

    /// <summary>
    /// Applies <paramref name="op"/> element-wise: y[i] = (float)f(x[i]), computed in double and rounded once.
    /// </summary>
    /// <param name="op">The operation.</param>
    /// <param name="x">Inputs.</param>
    /// <param name="y">Outputs; at least as long as <paramref name="x"/> (only the first x.Length elements are written).</param>
    /// <param name="alpha">See <see cref="Evaluate"/>. Parameters are used as given; pass the PyTorch defaults explicitly.</param>
    /// <param name="beta">See <see cref="Evaluate"/>.</param>
    /// <param name="threshold">See <see cref="Evaluate"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="y"/> is shorter than <paramref name="x"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="op"/> is not defined.</exception>
    public static void Apply(
        ActivationId op,
        ReadOnlySpan<float> x,
        Span<float> y,
        double alpha = default,
        double beta = default,
        double threshold = default)
    {
        if (!Enum.IsDefined(op))
        {
            throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown activation.");
        }

        RequireDestination(y.Length, x.Length, nameof(y));
        for (int i = 0; i < x.Length; i++)
        {
            y[i] = (float)Evaluate(op, x[i], alpha, beta, threshold);
        }
    }

    /// <summary>
    /// PReLU (PyTorch <c>prelu</c>): y[i] = x[i] for x[i] &gt; 0, else alpha[c]·x[i], with channel
    /// c = i % alpha.Length, i.e. the channel is the last (fastest-varying) dimension.
    /// </summary>
    /// <param name="x">Inputs, length a multiple of alpha.Length.</param>
    /// <param name="alpha">Per-channel slopes (length 1 for a single shared slope).</param>
    /// <param name="y">Outputs; at least as long as <paramref name="x"/>.</param>
    /// <exception cref="ArgumentException">alpha is empty, x.Length is not a multiple of alpha.Length, or y is too short.</exception>
    public static void PRelu(ReadOnlySpan<float> x, ReadOnlySpan<float> alpha, Span<float> y)
    {
        if (alpha.Length == 0)
        {
            throw new ArgumentException("At least one slope is required.", nameof(alpha));
        }

        if (x.Length % alpha.Length != 0)
        {
            throw new ArgumentException("x.Length must be a multiple of alpha.Length (channels are the last dimension).", nameof(x));
        }

        RequireDestination(y.Length, x.Length, nameof(y));
        for (int i = 0; i < x.Length; i++)
        {
            y[i] = (float)LeakyRelu(x[i], alpha[i % alpha.Length]);
        }
    }

    /// <summary>Gated linear unit y[i] = act(gate[i])·up[i], computed in double and rounded once.</summary>
    /// <param name="op">Which gate activation (SiLU, exact GELU, tanh GELU, ReLU).</param>
    /// <param name="gate">Gate inputs.</param>
    /// <param name="up">Up-projection inputs, same length as <paramref name="gate"/>.</param>
    /// <param name="y">Outputs; at least as long as <paramref name="gate"/>.</param>
    /// <exception cref="ArgumentException">The input lengths differ, or y is too short.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="op"/> is not defined.</exception>
    public static void Glu(GluId op, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        RequireGlu(op);
        if (gate.Length != up.Length)
        {
            throw new ArgumentException("gate and up must have the same length.", nameof(up));
        }

        RequireDestination(y.Length, gate.Length, nameof(y));
        for (int i = 0; i < gate.Length; i++)
        {
            y[i] = (float)GluValue(op, gate[i], up[i]);
        }
    }

    /// <summary>
    /// Gated linear unit on a packed tensor: each of the <paramref name="rows"/> rows of
    /// <paramref name="packed"/> is [gate(d) | up(d)], and y[r, j] = act(gate[r, j])·up[r, j].
    /// </summary>
    /// <param name="op">Which gate activation.</param>
    /// <param name="packed">Row-major [rows, 2d] input.</param>
    /// <param name="y">Row-major [rows, d] output (at least rows·d long).</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="d">Width of each half.</param>
    /// <exception cref="ArgumentException">packed.Length is not rows·2d, or y is too short.</exception>
    /// <exception cref="ArgumentOutOfRangeException">rows or d is negative, or <paramref name="op"/> is not defined.</exception>
    public static void GluPacked(GluId op, ReadOnlySpan<float> packed, Span<float> y, int rows, int d)
        => GluPacked(op, packed, y, rows, d, interleaved: false);

    /// <summary>
    /// Row-wise softmax over a row-major [rows, cols] matrix, in double with the row maximum subtracted first.
    /// </summary>
    /// <param name="x">Inputs, exactly rows·cols long.</param>
    /// <param name="y">Outputs, at least rows·cols long.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Row length.</param>
    /// <remarks>
    /// Special rows: a row containing NaN or +∞, or consisting only of -∞, is all NaN (the normalizer is
    /// undefined); otherwise -∞ entries get exactly 0.
    /// </remarks>
    /// <exception cref="ArgumentException">x.Length is not rows·cols, or y is too short.</exception>
    /// <exception cref="ArgumentOutOfRangeException">rows or cols is negative.</exception>
    public static void Softmax(ReadOnlySpan<float> x, Span<float> y, int rows, int cols) =>
        SoftmaxRows(x, y, rows, cols, log: false);

    /// <summary>
    /// Row-wise log-softmax x - max - ln Σ e^(x - max) over a row-major [rows, cols] matrix, in double.
    /// </summary>
    /// <param name="x">Inputs, exactly rows·cols long.</param>
    /// <param name="y">Outputs, at least rows·cols long.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Row length.</param>
    /// <remarks>
    /// Special rows as for <see cref="Softmax(ReadOnlySpan{float}, Span{float}, int, int)"/>: NaN or +∞ anywhere, or all -∞, gives an all-NaN row;
    /// otherwise -∞ entries give -∞.
    /// </remarks>
    /// <exception cref="ArgumentException">x.Length is not rows·cols, or y is too short.</exception>
    /// <exception cref="ArgumentOutOfRangeException">rows or cols is negative.</exception>
    public static void LogSoftmax(ReadOnlySpan<float> x, Span<float> y, int rows, int cols) =>
        SoftmaxRows(x, y, rows, cols, log: true);

    // ---------------------------------------------------------------- helpers

    private static void SoftmaxRows(ReadOnlySpan<float> x, Span<float> y, int rows, int cols, bool log) =>
        Softmax(x, y, rows, cols, 1f, [], safe: false, log);

    private static void RequireGlu(GluId op)
    {
        if (!Enum.IsDefined(op))
        {
            throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown GLU variant.");
        }
    }

    private static void RequireDestination(long destinationLength, long required, string paramName)
    {
        if (destinationLength < required)
        {
            throw new ArgumentException($"Destination is too short: {destinationLength} < {required}.", paramName);
        }
    }

    /// <summary>
    /// x·s for a factor s ≥ 0 that tends to 0 exponentially as x → ±∞ on the side where it vanishes: when x is
    /// infinite and s is exactly 0 the product is the limit, a zero with the sign of x, not ∞·0 = NaN.
    /// </summary>
    private static double MulLimit(double x, double s) =>
        s == 0.0 && double.IsInfinity(x) ? (x < 0 ? -0.0 : 0.0) : x * s;
}
