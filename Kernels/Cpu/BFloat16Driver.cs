using System.Runtime.CompilerServices;

namespace GpuActivations.Cpu;

/// <summary>
/// The elementwise loops of <see cref="ElementwiseDriver"/> on bf16 storage, converting in registers: each vector is
/// widened to float as it is loaded and rounded as it is stored, so the loop streams half the bytes of float32 and the
/// conversion overlaps the memory traffic (tile staging, which <see cref="Staging"/> does for every other op, converts
/// in separate passes and pays them on top; measured about 2x slower for unary ops). Same structure as the float32
/// loops: the widest vector, an overlapping last vector computed before any store (in place stays exact), a padded
/// vector for inputs shorter than 4. Kept apart from the float32 loops so their JIT specialisations stay untouched.
/// </summary>
internal static unsafe class BFloat16Driver
{
    /// <summary>y[i] = op(x[i]) for i in [0, n) on bf16; y may equal x.</summary>
    public static void Unary<TOp>(TOp op, ushort* x, ushort* y, long n) where TOp : struct, IUnaryOp
    {
        if (V512.IsSupported && n >= V512.Count) Unary<TOp, V512>(op, x, y, n);
        else if (V256.IsSupported && n >= V256.Count) Unary<TOp, V256>(op, x, y, n);
        else if (n >= V128.Count) Unary<TOp, V128>(op, x, y, n);
        else if (n > 0)
        {
            ushort* padded = stackalloc ushort[V128.Count];
            new Span<ushort>(x, (int)n).CopyTo(new Span<ushort>(padded, V128.Count));
            Unary<TOp, V128>(op, padded, padded, V128.Count);
            new Span<ushort>(padded, (int)n).CopyTo(new Span<ushort>(y, (int)n));
        }
    }

    /// <summary>
    /// y[i] = op(a[i], b[i]) for i in [0, n) on bf16; y may equal a or b. <paramref name="outputTotal"/> as in
    /// <see cref="ElementwiseDriver.Binary{TOp}"/>.
    /// </summary>
    public static void Binary<TOp>(TOp op, ushort* a, ushort* b, ushort* y, long n, long outputTotal = 0) where TOp : struct, IBinaryOp
    {
        if (V512.IsSupported && n >= V512.Count) Binary<TOp, V512>(op, a, b, y, n, outputTotal);
        else if (V256.IsSupported && n >= V256.Count) Binary<TOp, V256>(op, a, b, y, n, outputTotal);
        else if (n >= V128.Count) Binary<TOp, V128>(op, a, b, y, n, outputTotal);
        else if (n > 0)
        {
            ushort* pa = stackalloc ushort[V128.Count];
            ushort* pb = stackalloc ushort[V128.Count];
            new Span<ushort>(a, (int)n).CopyTo(new Span<ushort>(pa, V128.Count));
            new Span<ushort>(b, (int)n).CopyTo(new Span<ushort>(pb, V128.Count));
            Binary<TOp, V128>(op, pa, pb, pa, V128.Count, 0);
            new Span<ushort>(pa, (int)n).CopyTo(new Span<ushort>(y, (int)n));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Unary<TOp, TV>(TOp op, ushort* x, ushort* y, long n) where TOp : struct, IUnaryOp where TV : unmanaged, ISimd<TV>
    {
        long last = n - TV.Count;
        TV tail = UnaryAt<TOp, TV>(op, x + last);
        long start = ElementwiseDriver.StreamingStart<TV>(y, n, sizeof(ushort));
        if (start < 0) UnaryLoop<TOp, TV, CachedStore>(op, x, y, 0, last);
        else
        {
            TV head = UnaryAt<TOp, TV>(op, x); // stored last, as in ElementwiseDriver.Unary
            UnaryLoop<TOp, TV, StreamingStore>(op, x, y, start, last);
            ElementwiseDriver.StreamingDone();
            TV.StoreBFloat16(head, y);
        }
        TV.StoreBFloat16(tail, y + last);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void UnaryLoop<TOp, TV, TStore>(TOp op, ushort* x, ushort* y, long start, long last)
        where TOp : struct, IUnaryOp where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind
    {
        for (long i = start; i < last; i += TV.Count) TStore.StoreBFloat16(op.Invoke(TV.LoadBFloat16(x + i)), y + i);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static TV UnaryAt<TOp, TV>(TOp op, ushort* x) where TOp : struct, IUnaryOp where TV : unmanaged, ISimd<TV>
        => op.Invoke(TV.LoadBFloat16(x));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Binary<TOp, TV>(TOp op, ushort* a, ushort* b, ushort* y, long n, long outputTotal) where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV>
    {
        long last = n - TV.Count;
        TV tail = BinaryAt<TOp, TV>(op, a + last, b + last);
        long start = ElementwiseDriver.StreamingStart<TV>(y, n, sizeof(ushort), outputTotal);
        if (start < 0) BinaryLoop<TOp, TV, CachedStore>(op, a, b, y, 0, last);
        else
        {
            TV head = BinaryAt<TOp, TV>(op, a, b); // stored last, as in ElementwiseDriver.Unary
            BinaryLoop<TOp, TV, StreamingStore>(op, a, b, y, start, last);
            ElementwiseDriver.StreamingDone();
            TV.StoreBFloat16(head, y);
        }
        TV.StoreBFloat16(tail, y + last);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void BinaryLoop<TOp, TV, TStore>(TOp op, ushort* a, ushort* b, ushort* y, long start, long last)
        where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV> where TStore : struct, IStoreKind
    {
        for (long i = start; i < last; i += TV.Count) TStore.StoreBFloat16(op.Invoke(TV.LoadBFloat16(a + i), TV.LoadBFloat16(b + i)), y + i);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static TV BinaryAt<TOp, TV>(TOp op, ushort* a, ushort* b) where TOp : struct, IBinaryOp where TV : unmanaged, ISimd<TV>
        => op.Invoke(TV.LoadBFloat16(a), TV.LoadBFloat16(b));
}
