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
/// Where a two-operand loop finds its operands and puts a backward pass's two gradients: two buffers at the same index
/// (<see cref="SeparateBuffers"/>), or pairs interleaved in the first (<see cref="InterleavedPairs"/>). One loop per
/// operator shape serves both, specialised by the JIT per layout.
/// </summary>
internal unsafe interface IPairLayout
{
    /// <summary>The operands of the vector at element <paramref name="i"/>.</summary>
    static abstract void Load<TV>(float* first, float* second, long i, out TV a, out TV b) where TV : unmanaged, ISimd<TV>;

    /// <summary>Writes two results for the vector at element <paramref name="i"/> in the layout.</summary>
    static abstract void Store<TV, TStore>(TV a, TV b, float* first, float* second, long i) where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind;

    /// <summary>
    /// <see cref="ElementwiseDriver.StreamingStart{TV}"/> for two results of n elements each: an element index from which
    /// both are written aligned to the vector, or -1.
    /// </summary>
    static abstract long StreamingStart<TV>(float* first, float* second, long n, long outputTotal) where TV : unmanaged, ISimd<TV>;
}

/// <summary>Two buffers indexed alike (a gated unit's gate and up, its dGate and dUp; an activation's x and dy).</summary>
internal readonly unsafe struct SeparateBuffers : IPairLayout
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load<TV>(float* first, float* second, long i, out TV a, out TV b) where TV : unmanaged, ISimd<TV>
    {
        a = TV.Load(first + i);
        b = TV.Load(second + i);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<TV, TStore>(TV a, TV b, float* first, float* second, long i) where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind
    {
        TStore.Store(a, first + i);
        TStore.Store(b, second + i);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long StreamingStart<TV>(float* first, float* second, long n, long outputTotal) where TV : unmanaged, ISimd<TV>
    {
        // Both stream from the same index, so only when they are aligned alike (separately allocated large buffers usually are).
        long start = ElementwiseDriver.StreamingStart<TV>(first, n, sizeof(float), outputTotal);
        return start >= 0 && ElementwiseDriver.StreamingStart<TV>(second, n, sizeof(float), outputTotal) == start ? start : -1;
    }
}

/// <summary>
/// Pairs interleaved in the first buffer, [a0, b0, a1, b1, ...] (the second is unused): taken apart in registers as they
/// are loaded (<see cref="ISimd{TSelf}.Deinterleave"/>) and put back together as they are stored.
/// </summary>
internal readonly unsafe struct InterleavedPairs : IPairLayout
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load<TV>(float* first, float* second, long i, out TV a, out TV b) where TV : unmanaged, ISimd<TV>
        => TV.Deinterleave(TV.Load(first + 2 * i), TV.Load(first + 2 * i + TV.Count), out a, out b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<TV, TStore>(TV a, TV b, float* first, float* second, long i) where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind
    {
        TV.Interleave(a, b, out TV low, out TV high);
        TStore.Store(low, first + 2 * i);
        TStore.Store(high, first + 2 * i + TV.Count);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long StreamingStart<TV>(float* first, float* second, long n, long outputTotal) where TV : unmanaged, ISimd<TV>
    {
        // first + 2i aligned to the vector needs an even float offset: a whole pair.
        long floatStart = ElementwiseDriver.StreamingStart<TV>(first, 2 * n, sizeof(float), 2 * outputTotal);
        return floatStart >= 0 && (floatStart & 1) == 0 ? floatStart / 2 : -1;
    }
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
        if (V512.IsSupported && n >= V512.Count) Binary<TOp, V512, SeparateBuffers>(op, a, b, y, n, outputTotal);
        else if (V256.IsSupported && n >= V256.Count) Binary<TOp, V256, SeparateBuffers>(op, a, b, y, n, outputTotal);
        else if (n >= V128.Count) Binary<TOp, V128, SeparateBuffers>(op, a, b, y, n, outputTotal);
        else if (n > 0)
        {
            float* pa = stackalloc float[V128.Count];
            float* pb = stackalloc float[V128.Count];
            new Span<float>(a, (int)n).CopyTo(new Span<float>(pa, V128.Count));
            new Span<float>(b, (int)n).CopyTo(new Span<float>(pb, V128.Count));
            Binary<TOp, V128, SeparateBuffers>(op, pa, pb, pa, V128.Count, 0);
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
        if (V512.IsSupported && n >= V512.Count) Binary<TOp, V512, InterleavedPairs>(op, pairs, null, y, n, 0);
        else if (V256.IsSupported && n >= V256.Count) Binary<TOp, V256, InterleavedPairs>(op, pairs, null, y, n, 0);
        else if (n >= V128.Count) Binary<TOp, V128, InterleavedPairs>(op, pairs, null, y, n, 0);
        else if (n > 0)
        {
            float* padded = stackalloc float[2 * V128.Count];
            float* result = stackalloc float[V128.Count];
            new Span<float>(pairs, 2 * (int)n).CopyTo(new Span<float>(padded, 2 * V128.Count));
            Binary<TOp, V128, InterleavedPairs>(op, padded, null, result, V128.Count, 0);
            new Span<float>(result, (int)n).CopyTo(new Span<float>(y, (int)n));
        }
    }

    /// <summary>
    /// (dPairs[2i], dPairs[2i + 1]) = op(pairs[2i], pairs[2i + 1], dy[i]) for i in [0, n): an interleaved gated unit's
    /// backward pass, its gradients written in the pairs' layout. dPairs may equal pairs.
    /// </summary>
    public static void PairsGradient<TOp>(TOp op, float* pairs, float* dy, float* dPairs, long n) where TOp : struct, IGradientOp
    {
        if (V512.IsSupported && n >= V512.Count) Gradient<TOp, V512, InterleavedPairs>(op, pairs, null, dy, dPairs, null, n, 0);
        else if (V256.IsSupported && n >= V256.Count) Gradient<TOp, V256, InterleavedPairs>(op, pairs, null, dy, dPairs, null, n, 0);
        else if (n >= V128.Count) Gradient<TOp, V128, InterleavedPairs>(op, pairs, null, dy, dPairs, null, n, 0);
        else if (n > 0)
        {
            float* padded = stackalloc float[2 * V128.Count];
            float* pd = stackalloc float[V128.Count];
            new Span<float>(pairs, 2 * (int)n).CopyTo(new Span<float>(padded, 2 * V128.Count));
            new Span<float>(dy, (int)n).CopyTo(new Span<float>(pd, V128.Count));
            Gradient<TOp, V128, InterleavedPairs>(op, padded, null, pd, padded, null, V128.Count, 0);
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
        TV tail = BinaryAt<TOp, TV, SeparateBuffers>(op, a, b, last);
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
        if (V512.IsSupported && n >= V512.Count) Gradient<TOp, V512, SeparateBuffers>(op, g, u, dy, dg, du, n, outputTotal);
        else if (V256.IsSupported && n >= V256.Count) Gradient<TOp, V256, SeparateBuffers>(op, g, u, dy, dg, du, n, outputTotal);
        else if (n >= V128.Count) Gradient<TOp, V128, SeparateBuffers>(op, g, u, dy, dg, du, n, outputTotal);
        else if (n > 0)
        {
            float* pg = stackalloc float[V128.Count];
            float* pu = stackalloc float[V128.Count];
            float* pd = stackalloc float[V128.Count];
            new Span<float>(g, (int)n).CopyTo(new Span<float>(pg, V128.Count));
            new Span<float>(u, (int)n).CopyTo(new Span<float>(pu, V128.Count));
            new Span<float>(dy, (int)n).CopyTo(new Span<float>(pd, V128.Count));
            Gradient<TOp, V128, SeparateBuffers>(op, pg, pu, pd, pg, pu, V128.Count, 0);
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
    static void Binary<TOp, TV, TLayout>(TOp op, float* a, float* b, float* y, long n, long outputTotal)
        where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV> where TLayout : struct, IPairLayout
    {
        long last = n - TV.Count;
        TV tail = BinaryAt<TOp, TV, TLayout>(op, a, b, last);
        long start = StreamingStart<TV>(y, n, sizeof(float), outputTotal);
        if (start < 0) BinaryLoop<TOp, TV, CachedStore, TLayout>(op, a, b, y, 0, last);
        else
        {
            TV head = BinaryAt<TOp, TV, TLayout>(op, a, b, 0); // stored last, as in Unary
            BinaryLoop<TOp, TV, StreamingStore, TLayout>(op, a, b, y, start, last);
            StreamingDone();
            TV.Store(head, y);
        }
        TV.Store(tail, y + last);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void BinaryLoop<TOp, TV, TStore, TLayout>(TOp op, float* a, float* b, float* y, long start, long last)
        where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind where TLayout : struct, IPairLayout
    {
        for (long i = start; i < last; i += TV.Count)
        {
            TLayout.Load(a, b, i, out TV x0, out TV x1);
            TStore.Store(op.Invoke(x0, x1), y + i);
        }
    }

    /// <summary>The op on the vector at element <paramref name="i"/>, out of line (see <see cref="UnaryAt{TOp, TV}"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static TV BinaryAt<TOp, TV, TLayout>(TOp op, float* a, float* b, long i)
        where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV> where TLayout : struct, IPairLayout
    {
        TLayout.Load(a, b, i, out TV x0, out TV x1);
        return op.Invoke(x0, x1);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Gradient<TOp, TV, TLayout>(TOp op, float* g, float* u, float* dy, float* dg, float* du, long n, long outputTotal)
        where TOp : struct, IGradientOp where TV : unmanaged, ISimd<TV> where TLayout : struct, IPairLayout
    {
        long last = n - TV.Count;
        GradientAt<TOp, TV, TLayout>(op, g, u, dy, last, out TV tailG, out TV tailU);
        long start = TLayout.StreamingStart<TV>(dg, du, n, outputTotal);
        if (start < 0) GradientLoop<TOp, TV, CachedStore, TLayout>(op, g, u, dy, dg, du, 0, last);
        else
        {
            GradientAt<TOp, TV, TLayout>(op, g, u, dy, 0, out TV headG, out TV headU); // stored last, as in Unary
            GradientLoop<TOp, TV, StreamingStore, TLayout>(op, g, u, dy, dg, du, start, last);
            StreamingDone();
            TLayout.Store<TV, CachedStore>(headG, headU, dg, du, 0);
        }
        TLayout.Store<TV, CachedStore>(tailG, tailU, dg, du, last);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void GradientLoop<TOp, TV, TStore, TLayout>(TOp op, float* g, float* u, float* dy, float* dg, float* du, long start, long last)
        where TOp : struct, IGradientOp where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind where TLayout : struct, IPairLayout
    {
        for (long i = start; i < last; i += TV.Count)
        {
            TLayout.Load(g, u, i, out TV x0, out TV x1);
            op.Invoke(x0, x1, TV.Load(dy + i), out TV a, out TV b);
            TLayout.Store<TV, TStore>(a, b, dg, du, i);
        }
    }

    /// <summary>The gradient of the vector at element <paramref name="i"/>, out of line (see <see cref="UnaryAt{TOp, TV}"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void GradientAt<TOp, TV, TLayout>(TOp op, float* g, float* u, float* dy, long i, out TV dg, out TV du)
        where TOp : struct, IGradientOp where TV : unmanaged, ISimd<TV> where TLayout : struct, IPairLayout
    {
        TLayout.Load(g, u, i, out TV x0, out TV x1);
        op.Invoke(x0, x1, TV.Load(dy + i), out dg, out du);
    }
}
