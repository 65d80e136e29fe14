using System.Runtime.Intrinsics;

namespace GpuActivations.Bench;

/// <summary>
/// One op at one shape on one accelerator, with its buffers allocated and filled: <see cref="Run"/> queues the op
/// once (the caller synchronizes). Inputs are uniform in [-8, 8) (logits in [-10, 10)), where every activation's
/// branches are exercised and none takes a rare slow path.
/// </summary>
public sealed class Workload : IDisposable
{
    readonly Accelerator accelerator;
    readonly DeviceBuffer<float>? a;
    readonly DeviceBuffer<float>? b;
    readonly DeviceBuffer<float>? c;
    readonly DeviceBuffer<float>? y;
    readonly List<IDisposable> bf16Buffers = [];
    readonly DeviceBuffer<int>? targets;
    readonly DeviceBuffer<float>? y2;
    readonly Action run;

    /// <summary>The op.</summary>
    public BenchOp Op { get; }
    /// <summary>The shape.</summary>
    public Shape Shape { get; }

    Workload(Accelerator accelerator, BenchOp op, Shape shape, int seed)
    {
        this.accelerator = accelerator;
        Op = op;
        Shape = shape;
        var random = new Random(seed);
        long n = shape.Elements;
        if (op.Bf16)
        {
            run = Bf16(accelerator, op, shape, random, bf16Buffers);
            return;
        }
        switch (op.Family)
        {
            case OpFamily.Elementwise:
                a = Filled(accelerator, n, random, 8f);
                y = accelerator.Allocate<float>(n);
                run = () => accelerator.Apply(op.Activation!, a, y);
                break;
            case OpFamily.PRelu:
                a = Filled(accelerator, n, random, 8f);
                b = Filled(accelerator, BenchOp.PReluChannels(n), random, 0.5f);
                y = accelerator.Allocate<float>(n);
                run = () => accelerator.PRelu(a, b, y);
                break;
            case OpFamily.Glu:
                a = Filled(accelerator, n, random, 8f);
                b = Filled(accelerator, n, random, 8f);
                y = accelerator.Allocate<float>(n);
                run = () => accelerator.Glu(op.Unit!, a, b, y);
                break;
            case OpFamily.GluPacked:
                a = Filled(accelerator, 2 * n, random, 8f);
                y = accelerator.Allocate<float>(n);
                run = () => accelerator.GluPacked(op.Unit!, a, y, shape.Rows, shape.Cols, op.Packing);
                break;
            case OpFamily.GluBackward:
                a = Filled(accelerator, n, random, 8f);
                b = Filled(accelerator, n, random, 8f);
                c = Filled(accelerator, n, random, 1f);
                y = accelerator.Allocate<float>(n);
                y2 = accelerator.Allocate<float>(n);
                run = () => accelerator.GluBackward(op.Unit!, a, b, c, y, y2);
                break;
            case OpFamily.GluPackedBackward:
                a = Filled(accelerator, 2 * n, random, 8f);
                b = Filled(accelerator, n, random, 1f);
                y = accelerator.Allocate<float>(2 * n);
                run = () => accelerator.GluPackedBackward(op.Unit!, a, b, y, shape.Rows, shape.Cols, op.Packing);
                break;
            case OpFamily.Backward:
                a = Filled(accelerator, n, random, 8f);
                b = Filled(accelerator, n, random, 2f);
                y = accelerator.Allocate<float>(n);
                run = () => accelerator.ActivationBackward(op.Activation!, a, b, y);
                break;
            case OpFamily.Softmax:
                a = Filled(accelerator, n, random, 10f);
                y = accelerator.Allocate<float>(n);
                run = () => accelerator.Softmax(a, y, shape.Rows, shape.Cols);
                break;
            case OpFamily.SoftmaxBackward:
                // y: a softmax output; b: the incoming gradient.
                a = Filled(accelerator, n, random, 10f);
                accelerator.Softmax(a, a, shape.Rows, shape.Cols);
                b = Filled(accelerator, n, random, 1f);
                y = accelerator.Allocate<float>(n);
                run = () => accelerator.SoftmaxBackward(a, b, y, shape.Rows, shape.Cols);
                break;
            case OpFamily.CrossEntropy:
                a = Filled(accelerator, n, random, 10f);
                targets = accelerator.Allocate<int>(Enumerable.Range(0, checked((int)shape.Rows)).Select(_ => random.Next(checked((int)shape.Cols))).ToArray());
                b = accelerator.Allocate<float>(shape.Rows);
                y = accelerator.Allocate<float>(n);
                run = () => accelerator.CrossEntropy(a, targets, b, y, shape.Rows, shape.Cols);
                break;
            default:
                a = Filled(accelerator, n, random, 10f);
                y = accelerator.Allocate<float>(n);
                run = () => accelerator.LogSoftmax(a, y, shape.Rows, shape.Cols);
                break;
        }
    }

    /// <summary>Allocates and fills the buffers of <paramref name="op"/> at <paramref name="shape"/> on <paramref name="accelerator"/>.</summary>
    public static Workload Create(Accelerator accelerator, BenchOp op, Shape shape, int seed = 1) => new(accelerator, op, shape, seed);

    /// <summary>Queues the op once.</summary>
    public void Run() => run();

    /// <summary>Waits for the accelerator.</summary>
    public void Synchronize() => accelerator.Synchronize();

    /// <summary>Frees the buffers.</summary>
    public void Dispose()
    {
        a?.Dispose();
        b?.Dispose();
        foreach (var buffer in bf16Buffers) buffer.Dispose();
        targets?.Dispose();
        c?.Dispose();
        y?.Dispose();
        y2?.Dispose();
    }

    /// <summary>The bf16 ops: every tensor bf16 (filled like the float32 ones, then rounded).</summary>
    static Action Bf16(Accelerator accelerator, BenchOp op, Shape shape, Random random, List<IDisposable> owned)
    {
        long n = shape.Elements;
        DeviceBuffer<BFloat16> Input(float range) { var b = FilledBf16(accelerator, n, random, range); owned.Add(b); return b; }
        DeviceBuffer<BFloat16> Output() { var b = accelerator.Allocate<BFloat16>(n); owned.Add(b); return b; }
        switch (op.Family)
        {
            case OpFamily.Elementwise: { var (x, y) = (Input(8f), Output()); return () => accelerator.Apply(op.Activation!, x, y); }
            case OpFamily.Glu: { var (g, u, y) = (Input(8f), Input(8f), Output()); return () => accelerator.Glu(op.Unit!, g, u, y); }
            case OpFamily.Backward: { var (x, dy, dx) = (Input(8f), Input(2f), Output()); return () => accelerator.ActivationBackward(op.Activation!, x, dy, dx); }
            case OpFamily.Softmax: { var (x, y) = (Input(10f), Output()); return () => accelerator.Softmax(x, y, shape.Rows, shape.Cols); }
            default: throw new ArgumentException($"{op.Name}: no bf16 workload for {op.Family}", nameof(op));
        }
    }

    /// <summary>A bf16 buffer of <paramref name="n"/> values uniform in [-range, range), rounded to bf16, filled in slices.</summary>
    public static DeviceBuffer<BFloat16> FilledBf16(Accelerator accelerator, long n, Random random, float range)
    {
        var buffer = accelerator.Allocate<BFloat16>(n);
        var host = new float[Math.Min(n, 1 << 22)];
        var rounded = new BFloat16[host.Length];
        for (long offset = 0; offset < n; offset += host.Length)
        {
            int count = (int)Math.Min(host.Length, n - offset);
            Fill(host.AsSpan(0, count), random, range);
            for (int i = 0; i < count; i++) rounded[i] = (BFloat16)host[i];
            buffer.Slice(offset, count).CopyFrom(rounded.AsSpan(0, count));
        }
        return buffer;
    }

    /// <summary>A buffer of <paramref name="n"/> values uniform in [-range, range), filled in slices to bound host memory.</summary>
    public static DeviceBuffer<float> Filled(Accelerator accelerator, long n, Random random, float range)
    {
        var buffer = accelerator.Allocate<float>(n);
        var host = new float[Math.Min(n, 1 << 22)];
        for (long offset = 0; offset < n; offset += host.Length)
        {
            int count = (int)Math.Min(host.Length, n - offset);
            Fill(host.AsSpan(0, count), random, range);
            buffer.Slice(offset, count).CopyFrom(host.AsSpan(0, count));
        }
        return buffer;
    }

    /// <summary>Fills <paramref name="span"/> with values uniform in [-range, range).</summary>
    public static void Fill(Span<float> span, Random random, float range)
    {
        for (int i = 0; i < span.Length; i++) span[i] = (random.NextSingle() * 2f - 1f) * range;
    }
}

/// <summary>
/// The copy the figures are relative to: the same bytes moved (half read, half written) on the same accelerator in
/// the same run. On the CPU it is a parallel memcpy (<see cref="Buffer.MemoryCopy"/>, which is libc's memmove) split
/// over the cores exactly as the kernels split their work (Parallel.For over contiguous chunks, none below 64k
/// floats). The public API has no device-to-device copy yet, so on other accelerators it is the identity kernel
/// <c>LeakyRelu(1)</c> launched through the same path as every op: one read and one write per element.
/// </summary>
public sealed unsafe class CopyBaseline : IDisposable
{
    readonly Accelerator accelerator;
    readonly DeviceBuffer<float> source;
    readonly DeviceBuffer<float> destination;
    readonly bool hostMemory;
    readonly CopyKind hostCopy;

    /// <summary>Bytes read plus written by one copy.</summary>
    public long Bytes { get; }

    /// <summary>What the copy is, for the report.</summary>
    public string Method => !hostMemory ? "identity kernel LeakyRelu(1)"
        : hostCopy switch
        {
            CopyKind.VectorNonTemporal => "parallel copy, non-temporal stores",
            CopyKind.VectorStore => "parallel copy, ordinary stores",
            _ => "parallel memcpy",
        };

    /// <summary>
    /// A copy moving <paramref name="bytesMoved"/> bytes (read + written) on <paramref name="accelerator"/>: on the CPU the
    /// faster of memcpy and non-temporal stores, or the copy <paramref name="kind"/> names.
    /// </summary>
    public CopyBaseline(Accelerator accelerator, long bytesMoved, CopyKind? kind = null)
    {
        this.accelerator = accelerator;
        long floats = Math.Max(1, bytesMoved / 8);
        Bytes = floats * 8;
        source = Workload.Filled(accelerator, floats, new Random(7), 1f);
        destination = accelerator.Allocate<float>(floats);
        // The CPU's buffers are host memory: their handles are pointers a memcpy can use.
        hostMemory = accelerator.Kind == AcceleratorKind.Cpu;
        if (hostMemory) hostCopy = kind ?? FasterCopy((float*)source.NativeHandle, (float*)destination.NativeHandle, floats);
    }

    /// <summary>
    /// The faster of memcpy and a vector copy with non-temporal stores for <paramref name="n"/> floats, by the best of
    /// a few alternating calls of each. The baseline is the best copy of those bytes we know: memcpy keeps a small
    /// output in the caches, non-temporal stores skip the read-for-ownership of a large one (on the 2-core EPYC here,
    /// 16M floats: about 49 GB/s against memcpy's 34-40), and the SIMD path's outputs of 1M floats or more are
    /// streamed, so a memcpy baseline would flatter them.
    /// </summary>
    static CopyKind FasterCopy(float* source, float* destination, long n)
    {
        if (!Vector512.IsHardwareAccelerated || n < 1 << 16) return CopyKind.Memcpy;
        double memcpy = double.MaxValue, streaming = double.MaxValue;
        for (int round = 0; round < 4; round++)
        {
            memcpy = Math.Min(memcpy, Time(CopyKind.Memcpy));
            streaming = Math.Min(streaming, Time(CopyKind.VectorNonTemporal));
        }
        return streaming < memcpy ? CopyKind.VectorNonTemporal : CopyKind.Memcpy;

        double Time(CopyKind kind)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            ParallelCopy(source, destination, n, kind);
            return System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
    }

    /// <summary>Queues one copy.</summary>
    public void Run()
    {
        if (hostMemory) ParallelCopy((float*)source.NativeHandle, (float*)destination.NativeHandle, source.Length, hostCopy);
        else accelerator.Apply(Activation.LeakyRelu(1f), source, destination);
    }

    /// <summary>Waits for the accelerator.</summary>
    public void Synchronize() => accelerator.Synchronize();

    /// <summary>Frees the buffers.</summary>
    public void Dispose()
    {
        source.Dispose();
        destination.Dispose();
    }

    /// <summary>The ways of copying host memory the diagnostic section compares.</summary>
    public enum CopyKind
    {
        /// <summary>Buffer.MemoryCopy (libc memmove for large blocks).</summary>
        Memcpy,
        /// <summary>The widest vector load and an ordinary store, as the kernels store.</summary>
        VectorStore,
        /// <summary>The widest vector load and a non-temporal (streaming) store that bypasses the caches.</summary>
        VectorNonTemporal,
    }

    /// <summary>Copies <paramref name="n"/> floats over the cores, chunked as the kernels chunk.</summary>
    public static void ParallelCopy(float* source, float* destination, long n, CopyKind kind)
    {
        int parts = (int)Math.Clamp(n / (1 << 16), 1, Environment.ProcessorCount);
        if (parts == 1)
        {
            CopyRange(source, destination, n, kind);
            return;
        }
        long chunk = ((n + parts - 1) / parts + 15) / 16 * 16;
        nint s = (nint)source, d = (nint)destination;
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, p =>
        {
            long start = p * chunk;
            long count = Math.Min(chunk, n - start);
            if (count > 0) CopyRange((float*)s + start, (float*)d + start, count, kind);
        });
    }

    static void CopyRange(float* source, float* destination, long n, CopyKind kind)
    {
        if (kind == CopyKind.VectorStore && !Vector512.IsHardwareAccelerated)
        {
            // Without 512-bit vectors, 256-bit ones: still ordinary stores (memcpy streams large blocks).
            long j = 0;
            for (; j + 8 <= n; j += 8) Vector256.Load(source + j).Store(destination + j);
            for (; j < n; j++) destination[j] = source[j];
            return;
        }
        if (kind == CopyKind.Memcpy || !Vector512.IsHardwareAccelerated || n < 64)
        {
            Buffer.MemoryCopy(source, destination, n * 4, n * 4);
            return;
        }
        // Align the destination to 64 bytes (streaming stores need it), then whole vectors, then the rest.
        long head = Math.Min(n, ((64 - ((nint)destination & 63)) & 63) / 4);
        Buffer.MemoryCopy(source, destination, head * 4, head * 4);
        long i = head;
        if (kind == CopyKind.VectorNonTemporal)
        {
            for (; i + 16 <= n; i += 16) Vector512.Load(source + i).StoreAlignedNonTemporal(destination + i);
            if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.StoreFence();
        }
        else
        {
            for (; i + 16 <= n; i += 16) Vector512.Load(source + i).StoreAligned(destination + i);
        }
        Buffer.MemoryCopy(source + i, destination + i, (n - i) * 4, (n - i) * 4);
    }
}
