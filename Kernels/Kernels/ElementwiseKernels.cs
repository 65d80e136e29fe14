using System.Runtime.CompilerServices;
using GpuActivations.Cpu;
using ILGPU;
using ILGPU.Runtime;

namespace GpuActivations.Kernels;

/// <summary>
/// Which elements a thread of an elementwise launch takes: on GPUs a grid-stride loop (neighbouring threads touch
/// neighbouring elements, so loads coalesce); on ILGPU's CPU accelerator, which runs each simulated thread as an OS
/// thread, one contiguous chunk per thread (the fast shape there). <see cref="Chunk"/> = 0 selects the grid stride.
/// </summary>
internal readonly struct ElementRange
{
    /// <summary>The number of elements (or 16-byte vectors) the launch covers.</summary>
    public readonly long Count;
    /// <summary>Elements per thread for the CPU accelerator's chunked shape; 0 for a grid-stride loop.</summary>
    public readonly long Chunk;

    /// <summary>A range of <paramref name="count"/> items, chunked when <paramref name="chunk"/> &gt; 0.</summary>
    public ElementRange(long count, long chunk) { Count = count; Chunk = chunk; }

    /// <summary>This thread's first item.</summary>
    public long Start
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Chunk == 0 ? Grid.GlobalLinearIndex : Grid.GlobalLinearIndex * Chunk;
    }

    /// <summary>One past this thread's last item.</summary>
    public long End
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Chunk == 0 ? Count : System.Math.Min(Count, Start + Chunk);
    }

    /// <summary>The distance between a thread's items.</summary>
    public long Step
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Chunk == 0 ? (long)Grid.DimX * Group.DimX : 1;
    }
}

/// <summary>
/// The elementwise kernel shapes, written once and specialised by ILGPU per op struct, fma form and storage type: the
/// op structs are the SIMD path's own (<see cref="IUnaryOp"/>, <see cref="IBinaryOp"/>, <see cref="IGradientOp"/>),
/// instantiated on a one-float <see cref="ScalarLane{TFma}"/>. Every output may be an input of the same range (in
/// place): each element is read before it is written, by the same thread.
/// </summary>
internal static class ElementwiseKernels
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Unary<TOp, TFma>(TOp op, float x) where TOp : struct, IUnaryOp where TFma : struct, IFusedMultiplyAdd
        => op.Invoke(new ScalarLane<TFma>(x)).Value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Binary<TOp, TFma>(TOp op, float a, float b) where TOp : struct, IBinaryOp where TFma : struct, IFusedMultiplyAdd
        => op.Invoke(new ScalarLane<TFma>(a), new ScalarLane<TFma>(b)).Value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Float4 Unary4<TOp, TFma>(TOp op, Float4 x) where TOp : struct, IUnaryOp where TFma : struct, IFusedMultiplyAdd
    {
        Float4 y;
        y.X = Unary<TOp, TFma>(op, x.X);
        y.Y = Unary<TOp, TFma>(op, x.Y);
        y.Z = Unary<TOp, TFma>(op, x.Z);
        y.W = Unary<TOp, TFma>(op, x.W);
        return y;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Float4 Binary4<TOp, TFma>(TOp op, Float4 a, Float4 b) where TOp : struct, IBinaryOp where TFma : struct, IFusedMultiplyAdd
    {
        Float4 y;
        y.X = Binary<TOp, TFma>(op, a.X, b.X);
        y.Y = Binary<TOp, TFma>(op, a.Y, b.Y);
        y.Z = Binary<TOp, TFma>(op, a.Z, b.Z);
        y.W = Binary<TOp, TFma>(op, a.W, b.W);
        return y;
    }

    /// <summary>y[i] = op(x[i]).</summary>
    public static void Map<TOp, TFma, T, TStorage>(ArrayView<T> x, ArrayView<T> y, TOp op, ElementRange range)
        where TOp : struct, IUnaryOp where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        for (long i = range.Start; i < range.End; i += range.Step)
            y[i] = TStorage.Store(Unary<TOp, TFma>(op, TStorage.Load(x[i])));
    }

    /// <summary>
    /// y[i] = op(x[i]) on float32 with 128-bit loads and stores: <paramref name="x4"/>/<paramref name="y4"/> are the
    /// 16-byte-aligned middle of x/y, the first <paramref name="head"/> and the last <paramref name="tail"/> elements
    /// (the ragged ends) are taken by the first threads one by one.
    /// </summary>
    public static void Map4<TOp, TFma>(ArrayView<float> x, ArrayView<float> y, ArrayView<Float4> x4, ArrayView<Float4> y4, long head, long tail, TOp op)
        where TOp : struct, IUnaryOp where TFma : struct, IFusedMultiplyAdd
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = Grid.GlobalLinearIndex; i < x4.Length; i += stride)
            y4[i] = Unary4<TOp, TFma>(op, x4[i]);
        long t = Grid.GlobalLinearIndex;
        if (t < head) y[t] = Unary<TOp, TFma>(op, x[t]);
        if (t < tail) { long j = x.Length - tail + t; y[j] = Unary<TOp, TFma>(op, x[j]); }
    }

    /// <summary>y[i] = op(a[i], b[i]).</summary>
    public static void Zip<TOp, TFma, T, TStorage>(ArrayView<T> a, ArrayView<T> b, ArrayView<T> y, TOp op, ElementRange range)
        where TOp : struct, IBinaryOp where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        for (long i = range.Start; i < range.End; i += range.Step)
            y[i] = TStorage.Store(Binary<TOp, TFma>(op, TStorage.Load(a[i]), TStorage.Load(b[i])));
    }

    /// <summary><see cref="Zip{TOp, TFma, T, TStorage}"/> on float32 with 128-bit loads and stores (see <see cref="Map4{TOp, TFma}"/>).</summary>
    public static void Zip4<TOp, TFma>(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y,
        ArrayView<Float4> a4, ArrayView<Float4> b4, ArrayView<Float4> y4, long head, long tail, TOp op)
        where TOp : struct, IBinaryOp where TFma : struct, IFusedMultiplyAdd
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = Grid.GlobalLinearIndex; i < a4.Length; i += stride)
            y4[i] = Binary4<TOp, TFma>(op, a4[i], b4[i]);
        long t = Grid.GlobalLinearIndex;
        if (t < head) y[t] = Binary<TOp, TFma>(op, a[t], b[t]);
        if (t < tail) { long j = a.Length - tail + t; y[j] = Binary<TOp, TFma>(op, a[j], b[j]); }
    }

    /// <summary>
    /// A gated unit on a packed [rows, 2d] tensor into y [rows, d]: halves (gate = row[j], up = row[d + j]) or
    /// interleaved pairs (gate = packed[2i], up = packed[2i + 1]).
    /// </summary>
    public static void ZipPacked<TOp, TFma, T, TStorage>(ArrayView<T> packed, ArrayView<T> y, long d, int interleaved, TOp op, ElementRange range)
        where TOp : struct, IBinaryOp where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        for (long i = range.Start; i < range.End; i += range.Step)
        {
            long g = interleaved != 0 ? 2 * i : i + i / d * d;
            long u = interleaved != 0 ? g + 1 : g + d;
            y[i] = TStorage.Store(Binary<TOp, TFma>(op, TStorage.Load(packed[g]), TStorage.Load(packed[u])));
        }
    }

    /// <summary>A gated unit's backward pass on separate tensors: (dGate, dUp) from (gate, up, dy).</summary>
    public static void Gradient<TOp, TFma, T, TStorage>(ArrayView<T> gate, ArrayView<T> up, ArrayView<T> dy, ArrayView<T> dGate, ArrayView<T> dUp,
        TOp op, ElementRange range)
        where TOp : struct, IGradientOp where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        for (long i = range.Start; i < range.End; i += range.Step)
        {
            op.Invoke(new ScalarLane<TFma>(TStorage.Load(gate[i])), new ScalarLane<TFma>(TStorage.Load(up[i])),
                new ScalarLane<TFma>(TStorage.Load(dy[i])), out ScalarLane<TFma> dg, out ScalarLane<TFma> du);
            dGate[i] = TStorage.Store(dg.Value);
            dUp[i] = TStorage.Store(du.Value);
        }
    }

    /// <summary>A gated unit's backward pass on a packed tensor (layouts as <see cref="ZipPacked{TOp, TFma, T, TStorage}"/>): dPacked from (packed, dy).</summary>
    public static void GradientPacked<TOp, TFma, T, TStorage>(ArrayView<T> packed, ArrayView<T> dy, ArrayView<T> dPacked, long d, int interleaved,
        TOp op, ElementRange range)
        where TOp : struct, IGradientOp where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        for (long i = range.Start; i < range.End; i += range.Step)
        {
            long g = interleaved != 0 ? 2 * i : i + i / d * d;
            long u = interleaved != 0 ? g + 1 : g + d;
            op.Invoke(new ScalarLane<TFma>(TStorage.Load(packed[g])), new ScalarLane<TFma>(TStorage.Load(packed[u])),
                new ScalarLane<TFma>(TStorage.Load(dy[i])), out ScalarLane<TFma> dg, out ScalarLane<TFma> du);
            dPacked[g] = TStorage.Store(dg.Value);
            dPacked[u] = TStorage.Store(du.Value);
        }
    }

    /// <summary>PReLU with one slope per channel (the last dimension): y[i] = x[i] &lt; 0 ? alpha[i % channels] x[i] : x[i].</summary>
    public static void PRelu<TFma, T, TStorage>(ArrayView<T> x, ArrayView<float> alpha, ArrayView<T> y, ElementRange range)
        where TFma : struct, IFusedMultiplyAdd where T : unmanaged where TStorage : struct, IStorage<T>
    {
        long channels = alpha.Length;
        for (long i = range.Start; i < range.End; i += range.Step)
            y[i] = TStorage.Store(Binary<PReluOp, TFma>(default, TStorage.Load(x[i]), alpha[i % channels]));
    }

    /// <summary>PReLU's input gradient: dx = x &lt; 0 ? alpha[c] dy : dy, NaN x giving NaN (as the CPU's loop).</summary>
    public static void PReluBackwardInput<T, TStorage>(ArrayView<T> x, ArrayView<float> alpha, ArrayView<T> dy, ArrayView<T> dx, ElementRange range)
        where T : unmanaged where TStorage : struct, IStorage<T>
    {
        long channels = alpha.Length;
        for (long i = range.Start; i < range.End; i += range.Step)
        {
            float v = TStorage.Load(x[i]), g = TStorage.Load(dy[i]);
            dx[i] = TStorage.Store(v < 0f ? alpha[i % channels] * g : float.IsNaN(v) ? v : g);
        }
    }

    /// <summary>
    /// PReLU's slope gradient, one thread per channel: dAlpha[c] = the sum over rows of x dy where x &lt; 0 (or NaN),
    /// accumulated in double in row order, exactly as the CPU does (each product is exact in double), so every
    /// accelerator gives the same bits, and ±FLT_MAX products or cancelling terms cannot overflow a float sum.
    /// </summary>
    public static void PReluBackwardSlope<T, TStorage>(ArrayView<T> x, ArrayView<T> dy, ArrayView<float> dAlpha)
        where T : unmanaged where TStorage : struct, IStorage<T>
    {
        long channels = dAlpha.Length;
        long stride = (long)Grid.DimX * Group.DimX;
        for (long c = Grid.GlobalLinearIndex; c < channels; c += stride)
        {
            double sum = 0;
            for (long i = c; i < x.Length; i += channels)
            {
                float v = TStorage.Load(x[i]);
                if (!(v >= 0f)) sum += (double)v * TStorage.Load(dy[i]);
            }
            dAlpha[c] = (float)sum;
        }
    }
}
