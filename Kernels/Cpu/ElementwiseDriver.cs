using System.Runtime.CompilerServices;
using GpuActivations.Activations;

namespace GpuActivations.Cpu;

/// <summary>
/// An operator on one input lane by lane: an activation (<see cref="IActivationOp"/>), or one of the kernels' internal
/// passes (softmax's scaling, a cross-entropy gradient), which need no device form or derivative.
/// </summary>
internal interface IUnaryOp
{
    /// <summary>The result for every lane.</summary>
    TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>;
}

/// <summary>An operator on two inputs lane by lane (a gated unit: act(gate) * up; PReLU: x and its alpha).</summary>
internal interface IBinaryOp
{
    /// <summary>The result for every lane.</summary>
    TV Invoke<TV>(TV a, TV b) where TV : unmanaged, ISimd<TV>;
}

/// <summary>act(gate) * up.</summary>
internal readonly struct GatedOp<TGate>(TGate gate) : IBinaryOp where TGate : struct, IGate
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV g, TV up) where TV : unmanaged, ISimd<TV> => gate.Value(g) * up;
}

/// <summary>The clamped SwiGLU: act(min(g, limit)) * (clamp(up, -limit, limit) + 1); NaN is not clamped.</summary>
internal readonly struct ClampedGatedOp<TGate>(TGate gate, float limit) : IBinaryOp where TGate : struct, IGate
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV g, TV up) where TV : unmanaged, ISimd<TV>
        => gate.Value(ClampGate(g, limit)) * (ClampUp(up, limit) + TV.Create(1f));

    /// <summary>min(g, limit), NaN kept.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ClampGate<TV>(TV g, float limit) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(g, TV.Create(limit)), TV.Create(limit), g);

    /// <summary>clamp(u, -limit, limit), NaN kept.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ClampUp<TV>(TV u, float limit) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(u, TV.Create(limit)), TV.Create(limit), TV.Select(TV.LessThan(u, TV.Create(-limit)), TV.Create(-limit), u));
}

/// <summary>An operator from three inputs to two outputs, lane by lane (a gated unit's backward pass).</summary>
internal interface IGradientOp
{
    /// <summary>(dGate, dUp) from (gate, up, dy).</summary>
    void Invoke<TV>(TV g, TV u, TV dy, out TV dGate, out TV dUp) where TV : unmanaged, ISimd<TV>;
}

/// <summary>Backward of act(gate) * up: dGate = dy up act'(gate), dUp = dy act(gate).</summary>
internal readonly struct GatedGradientOp<TGate>(TGate gate) : IGradientOp where TGate : struct, IGate
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Invoke<TV>(TV g, TV u, TV dy, out TV dGate, out TV dUp) where TV : unmanaged, ISimd<TV>
    {
        TV value = gate.Value(g);
        dGate = dy * u * gate.Derivative(g, value);
        dUp = dy * value;
    }
}

/// <summary>
/// Backward of the clamped SwiGLU: with gc, uc the clamped inputs, dGate = dy (uc + 1) act'(gc) and dUp = dy act(gc),
/// each 0 where its clamp is active (gate &gt; limit; |up| &gt; limit), as torch.clamp's gradient.
/// </summary>
internal readonly struct ClampedGatedGradientOp<TGate>(TGate gate, float limit) : IGradientOp where TGate : struct, IGate
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Invoke<TV>(TV g, TV u, TV dy, out TV dGate, out TV dUp) where TV : unmanaged, ISimd<TV>
    {
        TV gc = ClampedGatedOp<TGate>.ClampGate(g, limit);
        TV uc = ClampedGatedOp<TGate>.ClampUp(u, limit);
        TV value = gate.Value(gc);
        dGate = TV.Select(TV.GreaterThan(g, TV.Create(limit)), TV.Create(0f), dy * (uc + TV.Create(1f)) * gate.Derivative(gc, value));
        dUp = TV.Select(TV.GreaterThan(Simd.Abs(u), TV.Create(limit)), TV.Create(0f), dy * value);
    }
}

/// <summary>The backward pass of an activation from its input: dx = dy * f'(x) (a = x, b = dy).</summary>
internal readonly struct BackwardOp<TAct>(TAct activation) : IBinaryOp where TAct : struct, IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x, TV dy) where TV : unmanaged, ISimd<TV> => dy * activation.Derivative(x);
}

/// <summary>The backward pass from the output: dx = dy * f'(x) computed from y = f(x) (a = y, b = dy).</summary>
internal readonly struct OutputBackwardOp<TAct>(float alpha) : IBinaryOp where TAct : struct, IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV y, TV dy) where TV : unmanaged, ISimd<TV> => dy * TAct.OutputDerivative(y, alpha);
}

/// <summary>PReLU: x &lt; 0 ? alpha x : x, NaN propagating.</summary>
internal readonly struct PReluOp : IBinaryOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x, TV alpha) where TV : unmanaged, ISimd<TV> => TV.Select(TV.LessThan(x, TV.Create(0f)), x * alpha, x);
}

/// <summary>PReLU with a single channel: x &lt; 0 ? slope x : x, the slope taken as data (0 * -inf is NaN, as with many channels).</summary>
internal readonly struct PReluOneSlopeOp(float slope) : IUnaryOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => new PReluOp().Invoke(x, TV.Create(slope));
}

/// <summary>x * factor (softmax's final normalisation).</summary>
internal readonly struct ScaleOp(float factor) : IUnaryOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => x * TV.Create(factor);
}

/// <summary>How a driver loop writes its vectors: one loop method is compiled per kind, each with one copy of the op.</summary>
internal unsafe interface IStoreKind
{
    /// <summary>Writes <paramref name="value"/> at <paramref name="destination"/> (aligned to the vector for the streaming kind).</summary>
    static abstract void Store<TV>(TV value, float* destination) where TV : unmanaged, ISimd<TV>;
    /// <summary>The same for bf16 storage (aligned to Count * 2 bytes for the streaming kind).</summary>
    static abstract void StoreBFloat16<TV>(TV value, ushort* destination) where TV : unmanaged, ISimd<TV>;
}

/// <summary>Ordinary stores: outputs that fit in the caches, where the next op finds them.</summary>
internal readonly unsafe struct CachedStore : IStoreKind
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<TV>(TV value, float* destination) where TV : unmanaged, ISimd<TV> => TV.Store(value, destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBFloat16<TV>(TV value, ushort* destination) where TV : unmanaged, ISimd<TV> => TV.StoreBFloat16(value, destination);
}

/// <summary>Non-temporal stores to aligned addresses (<see cref="ISimd{TSelf}.StoreNonTemporal"/>): outputs far larger than the caches.</summary>
internal readonly unsafe struct StreamingStore : IStoreKind
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<TV>(TV value, float* destination) where TV : unmanaged, ISimd<TV> => TV.StoreNonTemporal(value, destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBFloat16<TV>(TV value, ushort* destination) where TV : unmanaged, ISimd<TV> => TV.StoreBFloat16NonTemporal(value, destination);
}

/// <summary>
/// The generic elementwise loops, one per operator shape, specialised by the JIT per operator and width.
/// The widest hardware vector that fits is used; the ragged end is one more full vector overlapping the
/// previous one (no scalar loop), loaded and computed before any store so exact in-place calls stay correct.
/// Inputs shorter than a 128-bit vector go through a padded vector on the stack, so the scalar result is
/// always the vector code's result.
/// </summary>
internal static unsafe class ElementwiseDriver
{
    /// <summary>y[i] = op(x[i]) for i in [0, n); y may equal x.</summary>
    public static void Unary<TOp>(TOp op, float* x, float* y, long n) where TOp : struct, IUnaryOp
    {
        if (V512.IsSupported && n >= V512.Count) Unary<TOp, V512>(op, x, y, n);
        else if (V256.IsSupported && n >= V256.Count) Unary<TOp, V256>(op, x, y, n);
        else if (n >= V128.Count) Unary<TOp, V128>(op, x, y, n);
        else if (n > 0)
        {
            float* padded = stackalloc float[V128.Count];
            new Span<float>(x, (int)n).CopyTo(new Span<float>(padded, V128.Count));
            Unary<TOp, V128>(op, padded, padded, V128.Count);
            new Span<float>(padded, (int)n).CopyTo(new Span<float>(y, (int)n));
        }
    }

    /// <summary>
    /// y[i] = op(a[i], b[i]) for i in [0, n); y may equal a or b. <paramref name="outputTotal"/>: the whole output this call
    /// writes a part of (a row of packed halves), which decides the stores (<see cref="StreamingStart{TV}"/>); 0 is n.
    /// </summary>
    public static void Binary<TOp>(TOp op, float* a, float* b, float* y, long n, long outputTotal = 0) where TOp : struct, IBinaryOp
    {
        if (V512.IsSupported && n >= V512.Count) Binary<TOp, V512>(op, a, b, y, n, outputTotal);
        else if (V256.IsSupported && n >= V256.Count) Binary<TOp, V256>(op, a, b, y, n, outputTotal);
        else if (n >= V128.Count) Binary<TOp, V128>(op, a, b, y, n, outputTotal);
        else if (n > 0)
        {
            float* pa = stackalloc float[V128.Count];
            float* pb = stackalloc float[V128.Count];
            new Span<float>(a, (int)n).CopyTo(new Span<float>(pa, V128.Count));
            new Span<float>(b, (int)n).CopyTo(new Span<float>(pb, V128.Count));
            Binary<TOp, V128>(op, pa, pb, pa, V128.Count, 0);
            new Span<float>(pa, (int)n).CopyTo(new Span<float>(y, (int)n));
        }
    }

    /// <summary>
    /// y[i] = op(pairs[2i], pairs[2i + 1]) for i in [0, n): an interleaved gated unit, its pairs taken apart in registers
    /// as they are loaded (<see cref="ISimd{TSelf}.Deinterleave"/>), so one loop streams the whole tensor as
    /// <see cref="Binary{TOp}"/> does two separate inputs.
    /// </summary>
    public static void Pairs<TOp>(TOp op, float* pairs, float* y, long n) where TOp : struct, IBinaryOp
    {
        if (V512.IsSupported && n >= V512.Count) Pairs<TOp, V512>(op, pairs, y, n);
        else if (V256.IsSupported && n >= V256.Count) Pairs<TOp, V256>(op, pairs, y, n);
        else if (n >= V128.Count) Pairs<TOp, V128>(op, pairs, y, n);
        else if (n > 0)
        {
            float* padded = stackalloc float[2 * V128.Count];
            float* result = stackalloc float[V128.Count];
            new Span<float>(pairs, 2 * (int)n).CopyTo(new Span<float>(padded, 2 * V128.Count));
            Pairs<TOp, V128>(op, padded, result, V128.Count);
            new Span<float>(result, (int)n).CopyTo(new Span<float>(y, (int)n));
        }
    }

    /// <summary>
    /// (dPairs[2i], dPairs[2i + 1]) = op(pairs[2i], pairs[2i + 1], dy[i]) for i in [0, n): an interleaved gated unit's
    /// backward pass, its gradients written in the pairs' layout. dPairs may equal pairs.
    /// </summary>
    public static void PairsGradient<TOp>(TOp op, float* pairs, float* dy, float* dPairs, long n) where TOp : struct, IGradientOp
    {
        if (V512.IsSupported && n >= V512.Count) PairsGradient<TOp, V512>(op, pairs, dy, dPairs, n);
        else if (V256.IsSupported && n >= V256.Count) PairsGradient<TOp, V256>(op, pairs, dy, dPairs, n);
        else if (n >= V128.Count) PairsGradient<TOp, V128>(op, pairs, dy, dPairs, n);
        else if (n > 0)
        {
            float* padded = stackalloc float[2 * V128.Count];
            float* pd = stackalloc float[V128.Count];
            new Span<float>(pairs, 2 * (int)n).CopyTo(new Span<float>(padded, 2 * V128.Count));
            new Span<float>(dy, (int)n).CopyTo(new Span<float>(pd, V128.Count));
            PairsGradient<TOp, V128>(op, padded, pd, padded, V128.Count);
            new Span<float>(padded, 2 * (int)n).CopyTo(new Span<float>(dPairs, 2 * (int)n));
        }
    }

    /// <summary>
    /// The sum of op(a[i], b[i]) over [0, n): float lanes over blocks of 256 vectors, the blocks added in double (a
    /// 2^20-element row keeps ~1e-7 relative accuracy). The op must give 0 for (0, 0): short inputs are padded with zeros.
    /// </summary>
    public static double Sum<TOp>(TOp op, float* a, float* b, long n) where TOp : struct, IBinaryOp
    {
        if (V512.IsSupported && n >= V512.Count) return Sum<TOp, V512>(op, a, b, n);
        if (V256.IsSupported && n >= V256.Count) return Sum<TOp, V256>(op, a, b, n);
        if (n >= V128.Count) return Sum<TOp, V128>(op, a, b, n);
        if (n <= 0) return 0;
        float* pa = stackalloc float[V128.Count];
        float* pb = stackalloc float[V128.Count];
        new Span<float>(pa, V128.Count).Clear();
        new Span<float>(pb, V128.Count).Clear();
        new Span<float>(a, (int)n).CopyTo(new Span<float>(pa, V128.Count));
        new Span<float>(b, (int)n).CopyTo(new Span<float>(pb, V128.Count));
        return Sum<TOp, V128>(op, pa, pb, V128.Count);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static double Sum<TOp, TV>(TOp op, float* a, float* b, long n) where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV>
    {
        long last = n - TV.Count;
        TV tail = BinaryAt<TOp, TV>(op, a + last, b + last);
        double sum = 0;
        long i = 0;
        while (i < last)
        {
            TV block = TV.Create(0f);
            long blockEnd = Math.Min(last, i + 256L * TV.Count);
            for (; i < blockEnd; i += TV.Count) block += op.Invoke(TV.Load(a + i), TV.Load(b + i));
            sum += TV.Sum(block);
        }
        // The ragged end overlaps the last full vector: only its lanes from i on are new.
        return sum + TV.Sum(tail & TV.GreaterThanOrEqual(TV.Indices, TV.Create(i - last)));
    }

    /// <summary>
    /// (dg[i], du[i]) = op(g[i], u[i], dy[i]) for i in [0, n); dg may equal g, du may equal u. <paramref name="outputTotal"/>
    /// as in <see cref="Binary{TOp}"/>.
    /// </summary>
    public static void Gradient<TOp>(TOp op, float* g, float* u, float* dy, float* dg, float* du, long n, long outputTotal = 0) where TOp : struct, IGradientOp
    {
        if (V512.IsSupported && n >= V512.Count) Gradient<TOp, V512>(op, g, u, dy, dg, du, n, outputTotal);
        else if (V256.IsSupported && n >= V256.Count) Gradient<TOp, V256>(op, g, u, dy, dg, du, n, outputTotal);
        else if (n >= V128.Count) Gradient<TOp, V128>(op, g, u, dy, dg, du, n, outputTotal);
        else if (n > 0)
        {
            float* pg = stackalloc float[V128.Count];
            float* pu = stackalloc float[V128.Count];
            float* pd = stackalloc float[V128.Count];
            new Span<float>(g, (int)n).CopyTo(new Span<float>(pg, V128.Count));
            new Span<float>(u, (int)n).CopyTo(new Span<float>(pu, V128.Count));
            new Span<float>(dy, (int)n).CopyTo(new Span<float>(pd, V128.Count));
            Gradient<TOp, V128>(op, pg, pu, pd, pg, pu, V128.Count, 0);
            new Span<float>(pg, (int)n).CopyTo(new Span<float>(dg, (int)n));
            new Span<float>(pu, (int)n).CopyTo(new Span<float>(du, (int)n));
        }
    }

    /// <summary>
    /// Outputs of at least this many elements per call (4 MiB of floats; a 16M-element op on 2 cores gives 8M per call)
    /// are written with non-temporal stores: far beyond L2 they would be evicted before any reuse, and an ordinary
    /// store reads each line before writing it, 50% more memory traffic for a unary op.
    /// </summary>
    public const long StreamingMinimum = 1 << 20;

    /// <summary>
    /// The shortest call that streams because the output it is part of is large (<see cref="StreamingStart{TV}"/>'s
    /// outputTotal): a streaming call computes its first vector twice (the head) and fences once, which rows of a few
    /// vectors would pay for nearly every store they make.
    /// </summary>
    public const long StreamingMinimumPart = 1024;

    /// <summary>
    /// Where the non-temporal loop starts for an output of n elements at y: the first element whose address is
    /// aligned to the vector (the elements before it are the head vector's), or -1 for ordinary stores (a short
    /// output, or one not aligned to its element size). A call that writes part of a larger output (one row of many)
    /// passes the whole output's size as <paramref name="outputTotal"/>: the lines it writes are no more reused than a
    /// single large call's (from <see cref="StreamingMinimumPart"/> elements a call).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long StreamingStart<TV>(void* y, long n, int elementSize, long outputTotal = 0) where TV : unmanaged, ISimd<TV>
    {
        long bytes = TV.Count * elementSize;
        long size = n >= StreamingMinimumPart ? Math.Max(n, outputTotal) : n;
        if (size < StreamingMinimum || ((nint)y & (elementSize - 1)) != 0) return -1;
        return (-(long)(nint)y & (bytes - 1)) / elementSize;
    }

    /// <summary>Orders the non-temporal stores of a loop before what follows (they are weakly ordered).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StreamingDone()
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.StoreFence();
    }

    // Fully optimised from the first call: tier-0 code of these generic SIMD loops is ~50x slower.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Unary<TOp, TV>(TOp op, float* x, float* y, long n) where TOp : struct, IUnaryOp where TV : unmanaged, ISimd<TV>
    {
        long last = n - TV.Count;
        TV tail = UnaryAt<TOp, TV>(op, x + last);
        long start = StreamingStart<TV>(y, n, sizeof(float));
        if (start < 0) UnaryLoop<TOp, TV, CachedStore>(op, x, y, 0, last);
        else
        {
            // The head vector covers [0, start) and is stored last, so in place every vector is still read before
            // any store overlaps it (its lanes from start on are stored twice, with the same values).
            TV head = UnaryAt<TOp, TV>(op, x);
            UnaryLoop<TOp, TV, StreamingStore>(op, x, y, start, last);
            StreamingDone();
            TV.Store(head, y);
        }
        TV.Store(tail, y + last);
    }

    /// <summary>
    /// y[i] = op(x[i]) for vectors at i = start, start + Count, ... below last. One inlined copy of the op per loop
    /// method: a second (an unrolled body, or both store kinds in one method) would exhaust the JIT's inlining budget
    /// for the larger ops and leave wrapper calls in the loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void UnaryLoop<TOp, TV, TStore>(TOp op, float* x, float* y, long start, long last)
        where TOp : struct, IUnaryOp where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind
    {
        for (long i = start; i < last; i += TV.Count) TStore.Store(op.Invoke(TV.Load(x + i)), y + i);
    }

    /// <summary>The op on one vector, out of line: the ragged end's copy of the op stays out of the loop's method.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static TV UnaryAt<TOp, TV>(TOp op, float* x) where TOp : struct, IUnaryOp where TV : unmanaged, ISimd<TV>
        => op.Invoke(TV.Load(x));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Binary<TOp, TV>(TOp op, float* a, float* b, float* y, long n, long outputTotal) where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV>
    {
        long last = n - TV.Count;
        TV tail = BinaryAt<TOp, TV>(op, a + last, b + last);
        long start = StreamingStart<TV>(y, n, sizeof(float), outputTotal);
        if (start < 0) BinaryLoop<TOp, TV, CachedStore>(op, a, b, y, 0, last);
        else
        {
            TV head = BinaryAt<TOp, TV>(op, a, b); // stored last, as in Unary
            BinaryLoop<TOp, TV, StreamingStore>(op, a, b, y, start, last);
            StreamingDone();
            TV.Store(head, y);
        }
        TV.Store(tail, y + last);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void BinaryLoop<TOp, TV, TStore>(TOp op, float* a, float* b, float* y, long start, long last)
        where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind
    {
        for (long i = start; i < last; i += TV.Count) TStore.Store(op.Invoke(TV.Load(a + i), TV.Load(b + i)), y + i);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Pairs<TOp, TV>(TOp op, float* pairs, float* y, long n) where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV>
    {
        long last = n - TV.Count;
        TV tail = PairsAt<TOp, TV>(op, pairs + 2 * last);
        long start = StreamingStart<TV>(y, n, sizeof(float));
        if (start < 0) PairsLoop<TOp, TV, CachedStore>(op, pairs, y, 0, last);
        else
        {
            TV head = PairsAt<TOp, TV>(op, pairs); // stored last, as in Unary
            PairsLoop<TOp, TV, StreamingStore>(op, pairs, y, start, last);
            StreamingDone();
            TV.Store(head, y);
        }
        TV.Store(tail, y + last);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void PairsLoop<TOp, TV, TStore>(TOp op, float* pairs, float* y, long start, long last)
        where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind
    {
        for (long i = start; i < last; i += TV.Count)
        {
            TV.Deinterleave(TV.Load(pairs + 2 * i), TV.Load(pairs + 2 * i + TV.Count), out TV a, out TV b);
            TStore.Store(op.Invoke(a, b), y + i);
        }
    }

    /// <summary>The op on one vector of pairs, out of line (see <see cref="UnaryAt{TOp, TV}"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static TV PairsAt<TOp, TV>(TOp op, float* pairs) where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV>
    {
        TV.Deinterleave(TV.Load(pairs), TV.Load(pairs + TV.Count), out TV a, out TV b);
        return op.Invoke(a, b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PairsGradient<TOp, TV>(TOp op, float* pairs, float* dy, float* dPairs, long n) where TOp : struct, IGradientOp where TV : unmanaged, ISimd<TV>
    {
        long last = n - TV.Count;
        PairsGradientAt<TOp, TV>(op, pairs + 2 * last, dy + last, out TV tailFirst, out TV tailSecond);
        // The non-temporal loop needs dPairs + 2i aligned to the vector: an even float offset, so a start in pairs.
        long floatStart = StreamingStart<TV>(dPairs, 2 * n, sizeof(float));
        if (floatStart < 0 || (floatStart & 1) != 0) PairsGradientLoop<TOp, TV, CachedStore>(op, pairs, dy, dPairs, 0, last);
        else
        {
            PairsGradientAt<TOp, TV>(op, pairs, dy, out TV headFirst, out TV headSecond); // stored last, as in Unary
            PairsGradientLoop<TOp, TV, StreamingStore>(op, pairs, dy, dPairs, floatStart / 2, last);
            StreamingDone();
            TV.Store(headFirst, dPairs);
            TV.Store(headSecond, dPairs + TV.Count);
        }
        TV.Store(tailFirst, dPairs + 2 * last);
        TV.Store(tailSecond, dPairs + 2 * last + TV.Count);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void PairsGradientLoop<TOp, TV, TStore>(TOp op, float* pairs, float* dy, float* dPairs, long start, long last)
        where TOp : struct, IGradientOp where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind
    {
        for (long i = start; i < last; i += TV.Count)
        {
            TV.Deinterleave(TV.Load(pairs + 2 * i), TV.Load(pairs + 2 * i + TV.Count), out TV g, out TV u);
            op.Invoke(g, u, TV.Load(dy + i), out TV dg, out TV du);
            TV.Interleave(dg, du, out TV first, out TV second);
            TStore.Store(first, dPairs + 2 * i);
            TStore.Store(second, dPairs + 2 * i + TV.Count);
        }
    }

    /// <summary>The gradient of one vector of pairs, interleaved back, out of line (see <see cref="UnaryAt{TOp, TV}"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void PairsGradientAt<TOp, TV>(TOp op, float* pairs, float* dy, out TV first, out TV second) where TOp : struct, IGradientOp where TV : unmanaged, ISimd<TV>
    {
        TV.Deinterleave(TV.Load(pairs), TV.Load(pairs + TV.Count), out TV g, out TV u);
        op.Invoke(g, u, TV.Load(dy), out TV dg, out TV du);
        TV.Interleave(dg, du, out first, out second);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Gradient<TOp, TV>(TOp op, float* g, float* u, float* dy, float* dg, float* du, long n, long outputTotal) where TOp : struct, IGradientOp where TV : unmanaged, ISimd<TV>
    {
        long last = n - TV.Count;
        GradientAt<TOp, TV>(op, g + last, u + last, dy + last, out TV tailG, out TV tailU);
        long start = StreamingStart<TV>(dg, n, sizeof(float), outputTotal);
        // Both outputs stream from the same index, so only when they are aligned alike (separately allocated large
        // buffers usually are).
        if (start < 0 || StreamingStart<TV>(du, n, sizeof(float), outputTotal) != start) GradientLoop<TOp, TV, CachedStore>(op, g, u, dy, dg, du, 0, last);
        else
        {
            GradientAt<TOp, TV>(op, g, u, dy, out TV headG, out TV headU); // stored last, as in Unary
            GradientLoop<TOp, TV, StreamingStore>(op, g, u, dy, dg, du, start, last);
            StreamingDone();
            TV.Store(headG, dg);
            TV.Store(headU, du);
        }
        TV.Store(tailG, dg + last);
        TV.Store(tailU, du + last);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void GradientLoop<TOp, TV, TStore>(TOp op, float* g, float* u, float* dy, float* dg, float* du, long start, long last)
        where TOp : struct, IGradientOp where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind
    {
        for (long i = start; i < last; i += TV.Count)
        {
            op.Invoke(TV.Load(g + i), TV.Load(u + i), TV.Load(dy + i), out TV a, out TV b);
            TStore.Store(a, dg + i);
            TStore.Store(b, du + i);
        }
    }

    /// <summary>The op on one triple of vectors, out of line (see <see cref="UnaryAt{TOp, TV}"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void GradientAt<TOp, TV>(TOp op, float* g, float* u, float* dy, out TV dg, out TV du) where TOp : struct, IGradientOp where TV : unmanaged, ISimd<TV>
        => op.Invoke(TV.Load(g), TV.Load(u), TV.Load(dy), out dg, out du);

    /// <summary>The op on one pair of vectors, out of line (see <see cref="UnaryAt{TOp, TV}"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static TV BinaryAt<TOp, TV>(TOp op, float* a, float* b) where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV>
        => op.Invoke(TV.Load(a), TV.Load(b));
}
