using System.Runtime.CompilerServices;

namespace GpuActivations.Cpu;

/// <summary>
/// Float transcendental functions for any SIMD width, accurate to about 1 ulp, written from the math:
/// Cody–Waite range reduction with Taylor polynomials (exp, expm1) or minimax ones where an op's sweep allows (tanh,
/// softmax's pass 1), the atanh series (log). GELU's erf and erfc live with GELU, in <c>Activations/Gelu.cs</c>. Results below the smallest normal
/// float are computed, not flushed: exponentials scale by two exact powers of two, so gradual underflow rounds once.
/// Where an argument is itself a rounded product (beta*x, x*x), callers pass it as an unevaluated sum
/// hi + lo so the rounding is not magnified by exp's condition number |x|.
/// </summary>
internal static class VectorMath
{
    internal const float Log2E = 1.44269504088896341f;
    // ln 2 split so that n * Ln2Hi is exact in an FMA and the remainder carries the rest.
    internal const float Ln2Hi = 0.693147182464599609375f;
    internal const float Ln2Lo = -1.904654299957768e-9f;

    /// <summary>expm1(r) for |r| &lt;= ln2/2: Taylor to r^8 (truncation below 0.1 ulp).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV Expm1Reduced<TV>(TV r) where TV : unmanaged, ISimd<TV>
    {
        TV p = TV.Fma(r, TV.Create(1f / 40320f), TV.Create(1f / 5040f));
        p = TV.Fma(p, r, TV.Create(1f / 720f));
        p = TV.Fma(p, r, TV.Create(1f / 120f));
        p = TV.Fma(p, r, TV.Create(1f / 24f));
        p = TV.Fma(p, r, TV.Create(1f / 6f));
        p = TV.Fma(p, r, TV.Create(0.5f));
        p *= r;
        return TV.Fma(p, r, r);
    }

    /// <summary>1.5 * 2^23 + 127: x / ln2 + ExpMagic rounds to an integer n + ExpMagic (the ulp there is 1), which holds n + 127 in its low mantissa bits, so <see cref="ISimd{TSelf}.ShiftIntoExponent"/> of it is 2^n.</summary>
    internal const float ExpMagic = 12583039f;

    /// <summary>
    /// c2 + c3 r + ... + c6 r^4, where 1 + r + c2 r^2 + ... + c6 r^6 is e^r for |r| &lt;= ln2/2 + 0.001 with the c_k minimax
    /// for the relative error (Remez exchange in 50-digit arithmetic, scripts/minimax-exp.py; 3.9e-9 = 0.033 ulp with the
    /// coefficients rounded to float): two multiply-adds fewer than the Taylor series to r^8 of <see cref="Expm1Reduced{TV}"/>.
    /// Softmax's pass 1 finishes it by Horner down to the constant 1; tanh as expm1(r) = r + r^2 q, then + 1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TV ExpMinimaxTail<TV>(TV r) where TV : unmanaged, ISimd<TV>
    {
        TV q = TV.Fma(r, TV.Create(0.0013814191333949566f), TV.Create(0.008368914015591145f));
        q = TV.Fma(q, r, TV.Create(0.04166840761899948f));
        q = TV.Fma(q, r, TV.Create(0.1666651964187622f));
        return TV.Fma(q, r, TV.Create(0.4999999403953552f));
    }

    /// <summary>
    /// True when every lane of <paramref name="x"/> is in [<paramref name="lo"/>, <paramref name="hi"/>] (no NaN) and the
    /// lane type branches per vector (<see cref="ISimd{TSelf}.BranchesPerVector"/>): the test for an op's cheaper form of
    /// the same bits, one range test per vector (<see cref="ISimd{TSelf}.AllWithin"/>). The kernels' one-float lane always
    /// answers false, so only the careful form is compiled into them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AllFastWithin<TV>(TV x, float lo, float hi) where TV : unmanaged, ISimd<TV>
        => TV.BranchesPerVector && TV.AllWithin(x, TV.Create(lo), TV.Create(hi));

    /// <summary>
    /// <see cref="AllFastWithin{TV}"/> for an exponential's argument: every lane of <paramref name="x"/> in [-87.33, 88.37],
    /// where e^x is a normal float and <see cref="ExpInRange{TV}(TV, TV)"/> and its siblings are exact substitutes for the
    /// full functions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AllInRange<TV>(TV x) where TV : unmanaged, ISimd<TV> => AllFastWithin(x, -87.33f, 88.37f);

    /// <summary>
    /// e^(hi + lo) without edge handling: the same bits as <see cref="Exp{TV}(TV, TV)"/> in every lane where
    /// <see cref="AllInRange{TV}"/> holds for hi + lo, garbage elsewhere. An op that tests the range once per vector and takes
    /// its careful form out of line otherwise keeps calls (and the stack spills the JIT puts around them, all vector
    /// registers being caller-saved) out of its loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ExpInRange<TV>(TV hi, TV lo) where TV : unmanaged, ISimd<TV>
    {
        TV n = TV.Round((hi + lo) * TV.Create(Log2E));
        TV r = TV.Fma(n, TV.Create(-Ln2Hi), hi);
        r = TV.Fma(n, TV.Create(-Ln2Lo), r) + lo;
        return (Expm1Reduced(r) + TV.Create(1f)) * TV.Pow2(n);
    }

    /// <summary><see cref="ScaledExp{TV}"/> without edge handling, exact where <see cref="AllInRange{TV}"/> holds for hi + lo (see <see cref="ExpInRange{TV}(TV, TV)"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ScaledExpInRange<TV>(TV hi, TV lo, TV factor) where TV : unmanaged, ISimd<TV>
    {
        TV n = TV.Round((hi + lo) * TV.Create(Log2E));
        TV r = TV.Fma(n, TV.Create(-Ln2Hi), hi);
        r = TV.Fma(n, TV.Create(-Ln2Lo), r) + lo;
        return (Expm1Reduced(r) + TV.Create(1f)) * factor * TV.Pow2(n);
    }

    /// <summary><see cref="Exp{TV}(TV)"/> without edge handling, exact where <see cref="AllInRange{TV}"/> holds for x (see <see cref="ExpInRange{TV}(TV, TV)"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ExpInRange<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV n = TV.Round(x * TV.Create(Log2E));
        TV r = TV.Fma(n, TV.Create(-Ln2Hi), x);
        r = TV.Fma(n, TV.Create(-Ln2Lo), r);
        return (Expm1Reduced(r) + TV.Create(1f)) * TV.Pow2(n);
    }

    /// <summary>e^(hi + lo), where |lo| is small beside |hi| or both are moderate (the sum need not be exact in float).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Exp<TV>(TV hi, TV lo) where TV : unmanaged, ISimd<TV>
    {
        // ScaledExp with factor 1, without the multiplication by it (exact, so the results are the same bits).
        // Lanes in the normal range have a finite hi and lo (an infinite or NaN one makes hi + lo infinite or NaN),
        // so only the edge path masks lo.
        if (AllInRange(hi + lo)) return ExpInRange(hi, lo);
        return ScaledExpEdges(hi, lo, TV.Create(1f));
    }

    /// <summary>
    /// factor * e^(hi + lo) for |factor| near 1, rounded into the subnormal range at most once, in the last
    /// multiplication (so factor * Exp(...) would lose digits that this keeps when the result is tiny).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ScaledExp<TV>(TV hi, TV lo, TV factor) where TV : unmanaged, ISimd<TV>
    {
        // Where every lane's result is a normal float, 2^n is one exponent-field build (see Exp above).
        if (AllInRange(hi + lo)) return ScaledExpInRange(hi, lo, factor);
        return ScaledExpEdges(hi, lo, factor);
    }

    /// <summary><see cref="ScaledExp{TV}"/> where some lane is near or past overflow or underflow, or NaN: every lane again, out of line.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV ScaledExpEdges<TV>(TV hi, TV lo, TV factor) where TV : unmanaged, ISimd<TV>
    {
        // An infinite hi decides alone (its remainder may be NaN or infinite).
        lo &= TV.LessThan(Simd.Abs(hi), TV.Create(float.PositiveInfinity));
        TV x = hi + lo;
        TV n = TV.Round(x * TV.Create(Log2E));
        TV r = TV.Fma(n, TV.Create(-Ln2Hi), hi);
        r = TV.Fma(n, TV.Create(-Ln2Lo), r) + lo;
        TV mantissa = (Expm1Reduced(r) + TV.Create(1f)) * factor;
        if (TV.All(TV.GreaterThanOrEqual(x, TV.Create(-87.33f)) & TV.LessThanOrEqual(x, TV.Create(88.37f))))
            return mantissa * TV.Pow2(n);
        return ScaledExpEdges(x, n, mantissa, factor);
    }

    /// <summary>The lanes of <see cref="ScaledExp{TV}"/> near or past overflow and underflow, and NaN.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV ScaledExpEdges<TV>(TV x, TV n, TV mantissa, TV factor) where TV : unmanaged, ISimd<TV>
    {
        // 2^n as 2^n1 * 2^n2 with both halves in [-83, 64]: exact for every n in [-166, 128], so results near the
        // overflow threshold stay finite and results below the smallest normal come out as subnormals, rounded once.
        // The floor is below e^x's own underflow (x = -103.97) because a factor up to 2^14 (x e^x, e^x (1 + x slope))
        // keeps the product representable further down; below x = -115 even 2^14 e^x is under half the smallest subnormal.
        n = TV.Min(TV.Max(n, TV.Create(-166f)), TV.Create(128f));
        TV n1 = TV.Round(n * TV.Create(0.5f));
        TV result = mantissa * TV.Pow2(n1) * TV.Pow2(n - n1);
        result = TV.Select(TV.LessThan(x, TV.Create(-115f)), factor * TV.Create(0f), result);
        result = TV.Select(TV.GreaterThan(x, TV.Create(88.72284f)), factor * TV.Create(float.PositiveInfinity), result);
        return TV.Select(Simd.IsNaN(x), x, result);
    }

    /// <summary>e^x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Exp<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        if (AllInRange(x)) return ExpInRange(x);
        TV n = TV.Round(x * TV.Create(Log2E));
        TV r = TV.Fma(n, TV.Create(-Ln2Hi), x);
        r = TV.Fma(n, TV.Create(-Ln2Lo), r);
        return ScaledExpEdges(x, n, Expm1Reduced(r) + TV.Create(1f), TV.Create(1f));
    }

    /// <summary>e^x - 1, accurate near zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Expm1<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV xc = TV.Min(TV.Max(x, TV.Create(-88f)), TV.Create(88f));
        TV n = TV.Round(xc * TV.Create(Log2E));
        TV r = TV.Fma(n, TV.Create(-Ln2Hi), xc);
        r = TV.Fma(n, TV.Create(-Ln2Lo), r);
        // 2^n * (1 + p) - 1 = 2^n * p + (2^n - 1); 2^n - 1 is exact for |n| <= 24.
        TV scale = TV.Pow2(n);
        TV result = TV.Fma(scale, Expm1Reduced(r), scale - TV.Create(1f));
        // expm1 keeps x's sign, -0 included (the sum above gives +0 for x = -0).
        result |= Simd.SignBit(x);
        result = TV.Select(TV.GreaterThan(x, TV.Create(88.72284f)), TV.Create(float.PositiveInfinity), result);
        return TV.Select(Simd.IsNaN(x), x, result);
    }

    /// <summary>ln(u) for u &gt;= 1 (finite or +inf): u = 2^k m with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(f/(2+f)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV LogAtLeastOne<TV>(TV u) where TV : unmanaged, ISimd<TV>
    {
        TV k = TV.Exponent(u);
        TV m = TV.Significand(u);
        TV big = TV.GreaterThan(m, TV.Create(1.41421356f));
        m = TV.Select(big, m * TV.Create(0.5f), m);
        k = TV.Select(big, k + TV.Create(1f), k);
        TV f = m - TV.Create(1f);
        TV s = f / (f + TV.Create(2f));
        TV s2 = s * s;
        TV p = TV.Fma(s2, TV.Create(1f / 9f), TV.Create(1f / 7f));
        p = TV.Fma(p, s2, TV.Create(1f / 5f));
        p = TV.Fma(p, s2, TV.Create(1f / 3f));
        TV logM = TV.Fma(s * s2, p * TV.Create(2f), s * TV.Create(2f));
        TV result = TV.Fma(k, TV.Create(Ln2Hi), TV.Fma(k, TV.Create(Ln2Lo), logM));
        return TV.Select(TV.Equal(u, TV.Create(float.PositiveInfinity)), u, result);
    }

    /// <summary>
    /// ln(1 + e) for e &gt;= 0: below 1/16 the Mercator series e - e^2/2 + ... to e^8 (truncation below 0.1 ulp),
    /// above it Goldberg's ln(u) * e / (u - 1) with u = 1 + e, which cancels u's rounding.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Log1pNonNegative<TV>(TV e) where TV : unmanaged, ISimd<TV>
    {
        TV series = TV.Fma(e, TV.Create(-1f / 8f), TV.Create(1f / 7f));
        series = TV.Fma(series, e, TV.Create(-1f / 6f));
        series = TV.Fma(series, e, TV.Create(1f / 5f));
        series = TV.Fma(series, e, TV.Create(-1f / 4f));
        series = TV.Fma(series, e, TV.Create(1f / 3f));
        series = TV.Fma(series, e, TV.Create(-0.5f));
        series = TV.Fma(series * e, e, e);
        TV u = e + TV.Create(1f);
        TV corrected = LogAtLeastOne(u) * (e / (u - TV.Create(1f)));
        TV result = TV.Select(TV.LessThan(e, TV.Create(1f / 16f)), series, corrected);
        result = TV.Select(TV.Equal(e, TV.Create(float.PositiveInfinity)), e, result);
        return TV.Select(Simd.IsNaN(e), e, result);
    }

    /// <summary>
    /// ln(1 + e) for e in [0, 1] (NaN passes through), with no division and no logarithm: ln(1 + e) = e + e r(e), where
    /// r(e) = (ln(1 + e) - e) / e is a degree-9 polynomial in t = 2e - 1 (Chebyshev interpolation of r on [0, 1], fitted
    /// for this library; fit error ~1e-9 relative, and r, in [-0.31, 0], moves the result by at most a third of its own
    /// error). The last step is one fma, so e + e r keeps the result within ~1 ulp down to subnormal e. Softplus's
    /// ln(1 + e^-|z|) needs only this interval; <see cref="Log1pNonNegative{TV}"/> covers e &gt;= 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Log1pUnit<TV>(TV e) where TV : unmanaged, ISimd<TV>
    {
        TV t = TV.Fma(e, TV.Create(2f), TV.Create(-1f));
        TV r = TV.Fma(t, TV.Create(-6.203236353030661e-06f), TV.Create(2.050886905635707e-05f));
        r = TV.Fma(r, t, TV.Create(-5.3031380957691e-05f));
        r = TV.Fma(r, t, TV.Create(0.00018090133380610496f));
        r = TV.Fma(r, t, TV.Create(-0.0006425994797609746f));
        r = TV.Fma(r, t, TV.Create(0.00228970218449831f));
        r = TV.Fma(r, t, TV.Create(-0.008461023680865765f));
        r = TV.Fma(r, t, TV.Create(0.033152252435684204f));
        r = TV.Fma(r, t, TV.Create(-0.14426355063915253f));
        r = TV.Fma(r, t, TV.Create(-0.18906977772712708f));
        return TV.Fma(e, r, e);
    }

    /// <summary>
    /// tanh x: for |x| &lt; 0.55 x + x^3 P(x^2), P of degree 4 minimax for the relative error of tanh (below), else
    /// 1 - 2/(e^(2|x|) + 1) with the sign restored (no cancellation there: the subtracted term is at most 1/2, and e^(2|x|)'s
    /// error reaches the result scaled by at most 0.75, at |x| = 0.55).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Tanh<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV a = Simd.Abs(x);
        // Each regime only where some lane needs it (the same per-lane results: the select below picks per lane).
        TV isSmall = TV.LessThan(a, TV.Create(0.55f));
        if (TV.All(isSmall)) return TanhSmall(x);
        // Below |x| = 44.18 (no infinity, no NaN) e^(2|x|) is a normal float: no edge path, so no call in the loop.
        if (!AllInRange(a + a)) return TanhCareful(x, a, isSmall);
        TV large = (TV.Create(1f) - TV.Create(2f) / (TanhExp(a + a) + TV.Create(1f))) | Simd.SignBit(x);
        return TV.Any(isSmall) ? TV.Select(isSmall, TanhSmall(x), large) : large;
    }

    /// <summary><see cref="Tanh{TV}"/> for a vector with a lane past |x| = 44.18, infinite or NaN, out of line.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV TanhCareful<TV>(TV x, TV a, TV isSmall) where TV : unmanaged, ISimd<TV>
        => TV.Select(isSmall, TanhSmall(x), TanhLarge(x, a));

    /// <summary>
    /// tanh x for |x| &lt; 0.55: x + x^3 P(x^2), P(t) = c0 + ... + c4 t^4 minimax for the relative error of the whole on
    /// t in [0, 0.3025] (Remez exchange in 50-digit arithmetic, weight t^(3/2) / tanh(sqrt t); 4.4e-9 = 0.037 ulp with
    /// the coefficients rounded to float, against the 0.1 ulp of the Maclaurin series to x^17 it replaces, three
    /// multiply-adds longer).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV TanhSmall<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV x2 = x * x;
        TV p = TV.Fma(x2, TV.Create(-0.006274236831814051f), TV.Create(0.021071676164865494f));
        p = TV.Fma(p, x2, TV.Create(-0.05385230854153633f));
        p = TV.Fma(p, x2, TV.Create(0.13332585990428925f));
        p = TV.Fma(p, x2, TV.Create(-0.33333316445350647f));
        // The sign bit put back: for x = -0 the fma gives (+0) + (-0) = +0, and tanh is odd.
        return TV.Fma(p * x2, x, x) | Simd.SignBit(x);
    }

    /// <summary>
    /// tanh x for |x| &gt;= 0.55, infinities and NaN: the same bits as <see cref="Tanh{TV}"/>'s common vector in every lane
    /// it covers (an element's result never depends on its neighbours), 2|x| capped at 88, where e^88 already makes the
    /// result 1 (the cap keeps e^(2|x|) a normal float, as <see cref="TanhExp{TV}"/> needs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV TanhLarge<TV>(TV x, TV a) where TV : unmanaged, ISimd<TV>
    {
        TV e = TanhExp(TV.Select(TV.GreaterThan(a, TV.Create(44f)), TV.Create(88f), a + a));
        TV result = (TV.Create(1f) - TV.Create(2f) / (e + TV.Create(1f))) | Simd.SignBit(x);
        return TV.Select(Simd.IsNaN(x), x, result);
    }

    /// <summary>
    /// e^y for tanh's y = 2|x| in [1.1, 88.37] (n = round(y / ln2) in [2, 127]), no edge handling, shorter than
    /// <see cref="ExpInRange{TV}(TV)"/> where tanh allows it: n rounded and 2^n built with <see cref="ExpMagic"/>; no ln2
    /// remainder step (n ln2's error, n 1.9e-9, moves e^y by 0.03 ulp at y = 1.1 and reaches the result scaled by
    /// 4 e^-y at most); expm1(r) + 1 with <see cref="ExpMinimaxTail{TV}"/>'s polynomial. Swept on every float in
    /// [0.55, 9.1) (beyond, the result rounds to 1): tanh stays within 1 ulp, as with the longer exponential.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV TanhExp<TV>(TV y) where TV : unmanaged, ISimd<TV>
    {
        TV t = TV.Fma(y, TV.Create(Log2E), TV.Create(ExpMagic));
        TV r = TV.Fma(t - TV.Create(ExpMagic), TV.Create(-Ln2Hi), y);
        return (TV.Fma(ExpMinimaxTail(r) * r, r, r) + TV.Create(1f)) * TV.ShiftIntoExponent(t);
    }

    /// <summary>
    /// Whether every lane of x is in [-80, 87.33], where <see cref="PlainSigmoid{TV}"/> is sigmoid(x) exactly: the test of
    /// <see cref="Sigmoid{TV}(TV, TV)"/> for s = x + 0 in one range (e^-x a normal float: -x in [-87.33, 88.37]; and
    /// x &gt;= -80; negation is exact).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool AllPlainSigmoid<TV>(TV x) where TV : unmanaged, ISimd<TV> => AllFastWithin(x, -80f, 87.33f);

    /// <summary>1 / (1 + e^-x) without edge handling, exact where <see cref="AllPlainSigmoid{TV}"/> holds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV PlainSigmoid<TV>(TV x) where TV : unmanaged, ISimd<TV> => TV.Create(1f) / (TV.Create(1f) + ExpInRange(-x, -TV.Create(0f)));

    /// <summary>1 / (1 + e^-x); below x = -80, e^x (see <see cref="Sigmoid{TV}(TV, TV)"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Sigmoid<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => AllPlainSigmoid(x) ? PlainSigmoid(x) : SigmoidCareful(x, TV.Create(0f));

    /// <summary>x * sigmoid(x) (SiLU), the far-left lanes as in <see cref="TimesSigmoid{TV}(TV, TV, TV)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV TimesSigmoid<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        // Per lane, so an element's result never depends on its neighbours in the vector (the SIMD path and the
        // one-float lane of the ILGPU kernels then agree bit for bit): only the far-left lanes take the careful form.
        // The common vector: Sigmoid's plain form inline, so the loop has no call.
        if (AllPlainSigmoid(x)) return x * PlainSigmoid(x);
        return TimesSigmoidCareful(x);
    }

    /// <summary><see cref="TimesSigmoid{TV}(TV)"/> for a vector with a lane far left, past overflow or NaN, out of line.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV TimesSigmoidCareful<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV result = x * Sigmoid(x);
        TV farLeft = TV.LessThan(x, TV.Create(-80f));
        return TV.Any(farLeft) ? TV.Select(farLeft, TimesSigmoidFarLeft(x), result) : result;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV TimesSigmoidFarLeft<TV>(TV x) where TV : unmanaged, ISimd<TV> => TimesSigmoid(x, x, TV.Create(0f));

    /// <summary>
    /// 1 / (1 + e^-s), s = hi + lo. Below s = -80 it is e^s / (1 + e^s) = e^s (1 - e^s + ...), e^s to float precision
    /// (e^s &lt; 2^-115): computed as e^s itself, which rounds into the subnormal range once. 1 / (1 + e^-s) would flush
    /// there, as e^-s overflows from s = -88.7 while the result stays nonzero down to s = -103.3.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Sigmoid<TV>(TV hi, TV lo) where TV : unmanaged, ISimd<TV>
    {
        // The common vector, every lane with hi in [-80, 87.3]: no call in the caller's loop (see ExpInRange). One range
        // test on hi: there -hi - lo is within e^x's normal range (|lo| <= ulp(87.3)/2).
        if (AllFastWithin(hi, -80f, 87.3f)) return TV.Create(1f) / (TV.Create(1f) + ExpInRange(-hi, -lo));
        return SigmoidCareful(hi, lo);
    }

    /// <summary><see cref="Sigmoid{TV}(TV, TV)"/> for a vector with a lane far left, past overflow or NaN, out of line.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV SigmoidCareful<TV>(TV hi, TV lo) where TV : unmanaged, ISimd<TV>
    {
        TV result = TV.Create(1f) / (TV.Create(1f) + Exp(-hi, -lo));
        TV farLeft = TV.LessThan(hi, TV.Create(-80f));
        return TV.Any(farLeft) ? TV.Select(farLeft, Exp(hi, lo), result) : result;
    }

    /// <summary>|s| below 2^-20: x * sigmoid(s) takes its Taylor form there (<see cref="TimesSigmoid{TV}(TV, TV, TV)"/>).</summary>
    const float NearZeroSigmoidArgument = 9.5367431640625e-7f;

    /// <summary>
    /// x * sigmoid(s) where s = hi + lo. Below s = -80 sigmoid(s) ~ e^s heads into subnormals while x e^s can
    /// still be normal (silu(-88.7) = -2.6e-37), so there it is (x e^(s/2)) e^(s/2). Infinite x with a vanishing
    /// sigmoid gives a zero of x's sign, the limit (silu(-inf) = -0), not inf * 0 = NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV TimesSigmoid<TV>(TV x, TV hi, TV lo) where TV : unmanaged, ISimd<TV>
    {
        // The common vector, every lane with 2^-20 <= |s| <= 80 (no lane near s = 0, far left, past overflow or NaN): the
        // plain form with no call in the caller's loop (see ExpInRange); the same bits as the careful form below. One
        // range test on |hi|: there -hi - lo is within e^x's normal range (|lo| <= ulp(80)/2) and hi >= -80; the few
        // vectors with a lane in (80, 87.33], where the plain form would also do, take the careful form for it.
        if (AllFastWithin(Simd.Abs(hi), NearZeroSigmoidArgument, 80f))
            return (x * (TV.Create(1f) / (TV.Create(1f) + ExpInRange(-hi, -lo)))) | Simd.SignBit(x);
        return TimesSigmoidCareful(x, hi, lo);
    }

    /// <summary><see cref="TimesSigmoid{TV}(TV, TV, TV)"/> for a vector with a lane near s = 0, far left, past overflow or NaN, out of line.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV TimesSigmoidCareful<TV>(TV x, TV hi, TV lo) where TV : unmanaged, ISimd<TV>
    {
        TV result = x * (TV.Create(1f) / (TV.Create(1f) + Exp(-hi, -lo)));
        // Near s = 0, sigmoid(s) = 1/2 + s/4 - s^3/48 + ... (Taylor): x/2 + x s/4 with one rounding (fma), so the s/4
        // term is not lost in 1/2 + s/4 and the result is correctly rounded where it decides a rounding (x s tiny).
        TV nearZero = TV.LessThan(Simd.Abs(hi), TV.Create(NearZeroSigmoidArgument));
        if (TV.Any(nearZero)) result = TV.Select(nearZero, TV.Fma(x, hi * TV.Create(0.25f), x * TV.Create(0.5f)), result);
        TV farLeft = TV.LessThan(hi, TV.Create(-80f));
        if (TV.Any(farLeft))
        {
            TV root = Exp(hi * TV.Create(0.5f), lo * TV.Create(0.5f));
            TV tiny = TV.Select(TV.Equal(Simd.Abs(x), TV.Create(float.PositiveInfinity)), Simd.SignBit(x), x * root * root);
            result = TV.Select(farLeft, tiny, result);
        }
        // sigmoid(s) > 0, so the result has x's sign; x = -0 gives -0 (the fma above gives +0 there).
        return result | Simd.SignBit(x);
    }

    /// <summary>
    /// sigmoid'(s) = sigmoid(s) sigmoid(-s) for s = hi + lo, as e / (1 + e)^2 with e = e^-|s|: no cancellation at
    /// either end (s (1 - s) loses 1 - s for large s), 0 at the infinities, NaN for NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV SigmoidSlope<TV>(TV hi, TV lo) where TV : unmanaged, ISimd<TV>
    {
        TV e = Exp(-Simd.Abs(hi), TV.Select(TV.LessThan(hi, TV.Create(0f)), lo, -lo));
        TV r = TV.Create(1f) / (TV.Create(1f) + e);
        return e * r * r;
    }

    /// <summary>
    /// d/dx [x sigmoid(s)] where s = hi + lo and ds/dx = <paramref name="slope"/>: sigmoid(s) + x slope sigmoid'(s),
    /// both from one e = e^-|s|. Where sigmoid'(s) is 0 (infinite x) the product is 0, not inf * 0. Below s = -80 both
    /// terms are e^s to float precision and e^s heads into subnormals while the sum can still be normal, so there it
    /// is e^s (1 + x slope) rounded once (<see cref="ScaledExp{TV}"/>), as in <see cref="TimesSigmoid{TV}(TV, TV, TV)"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV TimesSigmoidDerivative<TV>(TV x, TV hi, TV lo, TV slope) where TV : unmanaged, ISimd<TV>
    {
        // The common vector, every lane with hi in [-80, 87.3] (no NaN): no far-left form and no edge path, so no call in
        // the loop (see ExpInRange); the same bits as the careful form below. One range test on hi: there -|hi| +- lo is
        // within e^x's normal range (|lo| <= ulp(87.3)/2).
        if (!AllFastWithin(hi, -80f, 87.3f)) return TimesSigmoidDerivativeCareful(x, hi, lo, slope);
        TV negative = TV.LessThan(hi, TV.Create(0f));
        TV e = ExpInRange(-Simd.Abs(hi), TV.Select(negative, lo, -lo));
        TV r = TV.Create(1f) / (TV.Create(1f) + e);
        TV d = e * r * r;
        TV s = TV.Select(negative, e * r, r);
        return TV.Select(TV.Equal(d, TV.Create(0f)), s, TV.Fma(x * slope, d, s));
    }

    /// <summary><see cref="TimesSigmoidDerivative{TV}"/> for a vector with a lane far left, past overflow or NaN, out of line.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TV TimesSigmoidDerivativeCareful<TV>(TV x, TV hi, TV lo, TV slope) where TV : unmanaged, ISimd<TV>
    {
        TV negative = TV.LessThan(hi, TV.Create(0f));
        TV e = Exp(-Simd.Abs(hi), TV.Select(negative, lo, -lo));
        TV r = TV.Create(1f) / (TV.Create(1f) + e);
        TV d = e * r * r;
        TV s = TV.Select(negative, e * r, r);
        TV result = TV.Select(TV.Equal(d, TV.Create(0f)), s, TV.Fma(x * slope, d, s));
        TV farLeft = TV.LessThan(hi, TV.Create(-80f)) & TV.GreaterThan(hi, TV.Create(float.NegativeInfinity));
        if (TV.Any(farLeft)) result = TV.Select(farLeft, ScaledExp(hi, lo, TV.Fma(x, slope, TV.Create(1f))), result);
        // At s = -inf the limit of e^s (1 + x slope) is a zero of x slope's sign (-0 for SiLU at -inf: it rises to 0 from below).
        return TV.Select(TV.Equal(hi, TV.Create(float.NegativeInfinity)), Simd.SignBit(x * slope), result);
    }

    /// <summary>NaN lanes of <paramref name="x"/> pass through; the others take <paramref name="value"/> (derivatives of piecewise ops).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV KeepNaN<TV>(TV x, TV value) where TV : unmanaged, ISimd<TV> => TV.Select(Simd.IsNaN(x), x, value);

    /// <summary>
    /// The exact sum a + b as hi + lo (Knuth's two-sum, TAOCP vol. 2, 4.2.2; Møller 1965): no ordering of |a|, |b| needed.
    /// Where the sum is infinite or NaN the remainder is 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV TwoSum<TV>(TV a, TV b, out TV lo) where TV : unmanaged, ISimd<TV>
    {
        TV s = a + b;
        TV bb = s - a;
        lo = ((a - (s - bb)) + (b - bb)) & TV.LessThan(Simd.Abs(s), TV.Create(float.PositiveInfinity));
        return s;
    }

    /// <summary>
    /// The exact product a*b as hi + lo (FMA two-product) without <see cref="TwoProduct{TV}"/>'s overflow mask: for callers
    /// whose product cannot overflow, or whose every use of lo is masked or decided elsewhere where hi is infinite (the
    /// exponentials' normal-range test fails for an infinite or NaN hi + lo, and their edge path masks lo itself).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV TwoProductUnmasked<TV>(TV a, TV b, out TV lo) where TV : unmanaged, ISimd<TV>
    {
        TV hi = a * b;
        lo = TV.Fma(a, b, -hi);
        return hi;
    }

    /// <summary>The exact product a*b as hi + lo (FMA two-product).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV TwoProduct<TV>(TV a, TV b, out TV lo) where TV : unmanaged, ISimd<TV>
    {
        TV hi = a * b;
        lo = TV.Fma(a, b, -hi);
        // An overflowing product leaves an infinite or NaN remainder; the useful remainder there is 0.
        lo &= TV.LessThan(Simd.Abs(hi), TV.Create(float.PositiveInfinity));
        return hi;
    }
}
