using System.Collections.Concurrent;
using System.Diagnostics;
using NUnit.Framework;

namespace GpuActivations.Tests.Hardening;

/// <summary>
/// Many threads calling ops on one accelerator at once: every result bit-identical to the single-threaded run, at any
/// offset and in place; then a stress run bounded in time. The threads are fresh ones (for CUDA: threads that never
/// made the context current), and the concurrent runs use a fresh accelerator, so its first program builds race too.
/// </summary>
[NonParallelizable]
[HostSide]
public sealed class ConcurrencyTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    const int Threads = 8;

    /// <summary>One op on fixed inputs: the reference output is computed once, single-threaded.</summary>
    /// <param name="Name">What runs.</param>
    /// <param name="Inputs">The host inputs.</param>
    /// <param name="OutputLength">The output's length.</param>
    /// <param name="InPlace">The input the output may replace (exact in place), or -1.</param>
    /// <param name="Run">Runs the op on views of the inputs into the output view.</param>
    public sealed record Work(string Name, float[][] Inputs, long OutputLength, int InPlace, Action<Accelerator, BufferView<float>[], BufferView<float>> Run)
    {
        public override string ToString() => Name;
    }

    /// <summary>Every op: each activation, PReLU, each gated unit, packed GLU, softmax and log-softmax, the training ops (<see cref="AddTrainingOps"/>); small and multi-core sizes.</summary>
    static List<Work> Workload()
    {
        var work = new List<Work>();
        foreach (var op in OpTable.Activations)
            work.Add(new($"{op} n=3001", [TestData.Values(3001, seed: work.Count)], 3001, 0, (a, i, y) => a.Apply(op.Activation, i[0], y)));
        work.Add(new("Gelu n=300000 (split across cores)", [TestData.Values(300_000, seed: 1)], 300_000, 0, (a, i, y) => a.Apply(Activation.Gelu, i[0], y)));
        work.Add(new("PRelu 64x37", [TestData.Values(64 * 37, seed: 2), TestData.Logits(37, seed: 3, scale: 0.5f)], 64 * 37, 0, (a, i, y) => a.PRelu(i[0], i[1], y)));
        foreach (var (unit, _) in OpTable.GatedUnits)
            work.Add(new($"{unit} n=4099", [TestData.Values(4099, seed: 4), TestData.Values(4099, seed: 5)], 4099, 1, (a, i, y) => a.Glu(unit, i[0], i[1], y)));
        work.Add(new("SwiGlu n=200000", [TestData.Values(200_000, seed: 6), TestData.Values(200_000, seed: 7)], 200_000, 0, (a, i, y) => a.SwiGlu(i[0], i[1], y)));
        work.Add(new("GluPacked GeGlu 17x300", [TestData.Values(17 * 600, seed: 8)], 17 * 300, -1, (a, i, y) => a.GluPacked(GatedUnit.GeGlu, i[0], y, 17, 300)));
        work.Add(new("Softmax 33x500", [TestData.Logits(33 * 500, seed: 9, scale: 20f)], 33 * 500, 0, (a, i, y) => a.Softmax(i[0], y, 33, 500)));
        work.Add(new("LogSoftmax 33x500", [TestData.Logits(33 * 500, seed: 10, scale: 20f)], 33 * 500, 0, (a, i, y) => a.LogSoftmax(i[0], y, 33, 500)));
        work.Add(new("Softmax 2x70000 (rows split)", [TestData.Logits(140_000, seed: 11, scale: 20f)], 140_000, 0, (a, i, y) => a.Softmax(i[0], y, 2, 70_000)));
        AddTrainingOps(work);
        return work;
    }

    /// <summary>
    /// The training ops and 16-bit storage: activation backward (from x and from y), PReLU backward, gated backward (separate
    /// and packed), softmax and log-softmax with scale, mask and safe rows, their backward passes, cross-entropy with
    /// smoothing, and bf16 SiLU. Ops with two outputs write them to consecutive slices of the one output view.
    /// </summary>
    static void AddTrainingOps(List<Work> work)
    {
        const int n = 3001, rows = 33, cols = 500;
        float[] x = TestData.Values(n, seed: 20), dy = TestData.Logits(n, seed: 21, scale: 2f);
        work.Add(new("Gelu backward n=3001", [x, dy], n, 1, (a, i, y) => a.ActivationBackward(Activation.Gelu, i[0], i[1], y)));
        work.Add(new("Elu backward n=300000 (split across cores)", [TestData.Values(300_000, seed: 22), TestData.Logits(300_000, seed: 23, scale: 2f)], 300_000, 0,
            (a, i, y) => a.ActivationBackward(Activation.Elu(), i[0], i[1], y)));
        work.Add(new("Sigmoid backward from y n=3001", [TestData.Logits(n, seed: 24, scale: 0.5f), dy], n, 0,
            (a, i, y) => a.ActivationBackwardFromOutput(Activation.Sigmoid, i[0], i[1], y)));
        work.Add(new("PRelu backward 64x37 (dx, then dAlpha)", [TestData.Values(64 * 37, seed: 25), TestData.Logits(37, seed: 26, scale: 0.5f), TestData.Logits(64 * 37, seed: 27)],
            64 * 37 + 37, -1, (a, i, y) => a.PReluBackward(i[0], i[1], i[2], y.Slice(0, 64 * 37), y.Slice(64 * 37, 37))));
        foreach (var unit in new[] { GatedUnit.SwiGlu, GatedUnit.ClampedSwiGlu() })
            work.Add(new($"{unit} backward n=4099 (dGate, then dUp)", [TestData.Values(4099, seed: 28), TestData.Values(4099, seed: 29), TestData.Logits(4099, seed: 30)],
                2 * 4099, -1, (a, i, y) => a.GluBackward(unit, i[0], i[1], i[2], y.Slice(0, 4099), y.Slice(4099, 4099))));
        work.Add(new("GluPackedBackward GeGlu interleaved 17x300", [TestData.Values(17 * 600, seed: 31), TestData.Logits(17 * 300, seed: 32)], 17 * 600, 0,
            (a, i, y) => a.GluPackedBackward(GatedUnit.GeGlu, i[0], i[1], y, 17, 300, GluPacking.Interleaved)));
        var mask = TestData.Logits(cols, seed: 33);
        for (int j = 0; j < cols; j += 3) mask[j] = float.NegativeInfinity;
        var masked = TestData.Logits(rows * cols, seed: 34, scale: 20f);
        Array.Fill(masked, float.NegativeInfinity, cols, cols); // an all -inf row: zeros when safe
        foreach (bool log in new[] { false, true })
            work.Add(new($"{(log ? "LogSoftmax" : "Softmax")} 33x500 scale 0.125, row mask, safe", [masked, mask], rows * cols, 0, (a, i, y) =>
            {
                var options = new SoftmaxOptions { Scale = 0.125f, Mask = i[1], Safe = true };
                if (log) a.LogSoftmax(i[0], y, rows, cols, options); else a.Softmax(i[0], y, rows, cols, options);
            }));
        var logits = TestData.Logits(rows * cols, seed: 35, scale: 8f);
        var probabilities = new float[logits.Length];
        var logProbabilities = new float[logits.Length];
        GpuActivations.Reference.ScalarReference.Softmax(logits, probabilities, rows, cols);
        GpuActivations.Reference.ScalarReference.LogSoftmax(logits, logProbabilities, rows, cols);
        var grad = TestData.Logits(rows * cols, seed: 36, scale: 3f);
        work.Add(new("SoftmaxBackward 33x500", [probabilities, grad], rows * cols, 1, (a, i, y) => a.SoftmaxBackward(i[0], i[1], y, rows, cols)));
        work.Add(new("LogSoftmaxBackward 33x500", [logProbabilities, grad], rows * cols, 0, (a, i, y) => a.LogSoftmaxBackward(i[0], i[1], y, rows, cols)));
        var targets = Enumerable.Range(0, rows).Select(r => r == 5 ? -100 : r * 37 % cols).ToArray();
        work.Add(new("CrossEntropy 33x500 smoothing 0.1 (losses, then gradient)", [logits], rows + rows * cols, -1, (a, i, y) =>
        {
            using var t = a.Allocate<int>(targets);
            a.CrossEntropy(i[0], t, y.Slice(0, rows), y.Slice(rows, rows * cols), rows, cols, new CrossEntropyOptions { LabelSmoothing = 0.1f });
            a.Synchronize(); // the targets buffer is freed on leaving
        }));
        work.Add(new("Silu bf16 n=3001 (widened)", [x], n, -1, (a, i, y) =>
        {
            using var b = a.Allocate<BFloat16>(i[0].Offset + n);
            var view = b.Slice(i[0].Offset, n);
            view.CopyFrom([.. i[0].ToArray().Select(v => (BFloat16)v)]);
            a.Apply(Activation.Silu, view, view);
            y.CopyFrom([.. view.ToArray().Select(v => (float)v)]);
        }));
    }

    /// <summary>Runs <paramref name="w"/> on <paramref name="acc"/> with every view at <paramref name="offset"/>, optionally in place; returns the output.</summary>
    static float[] Execute(Accelerator acc, Work w, int offset, bool inPlace)
    {
        var buffers = new List<DeviceBuffer<float>>();
        try
        {
            var views = new BufferView<float>[w.Inputs.Length];
            for (int k = 0; k < views.Length; k++)
            {
                var b = acc.Allocate<float>(w.Inputs[k].Length + offset);
                buffers.Add(b);
                views[k] = b.Slice(offset, w.Inputs[k].Length);
                views[k].CopyFrom(w.Inputs[k]);
            }
            BufferView<float> y;
            if (inPlace && w.InPlace >= 0)
            {
                y = views[w.InPlace];
            }
            else
            {
                var yb = acc.Allocate<float>(w.OutputLength + offset);
                buffers.Add(yb);
                y = yb.Slice(offset, w.OutputLength);
            }
            w.Run(acc, views, y);
            return y.ToArray();
        }
        finally
        {
            foreach (var b in buffers) b.Dispose();
        }
    }

    static bool SameBits(float[] a, float[] b, out int at)
    {
        for (at = 0; at < a.Length; at++)
        {
            if (BitConverter.SingleToInt32Bits(a[at]) != BitConverter.SingleToInt32Bits(b[at])) return false;
        }
        return true;
    }

    /// <summary>Starts <see cref="Threads"/> fresh threads together on <paramref name="body"/>(thread index) and joins them.</summary>
    static void OnThreads(Action<int> body)
    {
        using var start = new Barrier(Threads);
        var errors = new ConcurrentQueue<Exception>();
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                body(t);
            }
            catch (Exception e)
            {
                errors.Enqueue(e);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        if (!errors.IsEmpty) throw new AggregateException(errors);
    }

    List<Work>? workload;
    float[][]? expected;

    /// <summary>The workload and its single-threaded results on the fixture's accelerator (out of place, offset 0).</summary>
    (List<Work> Work, float[][] Expected) Reference()
    {
        if (workload is null)
        {
            workload = Workload();
            expected = workload.Select(w => Execute(Acc, w, 0, inPlace: false)).ToArray();
        }
        return (workload, expected!);
    }

    [Test]
    public void EightThreadsOnOneAcceleratorMatchTheSingleThreadedRunBitForBit()
    {
        var (work, expected) = Reference();
        var failures = new ConcurrentQueue<string>();
        long runs = 0;
        var clock = Stopwatch.StartNew();
        using (var shared = CreateFresh()) // fresh: its programs (OpenCL, CUDA) are built by the racing threads
        {
            OnThreads(t =>
            {
                var random = new Random(t);
                for (int round = 0; round < 2; round++)
                {
                    foreach (int i in Enumerable.Range(0, work.Count).OrderBy(_ => random.Next()))
                    {
                        int offset = random.Next(6);
                        bool inPlace = random.Next(2) == 0;
                        float[] got = Execute(shared, work[i], offset, inPlace);
                        Interlocked.Increment(ref runs);
                        if (!SameBits(got, expected[i], out int at))
                            failures.Enqueue($"thread {t}: {work[i]} (offset {offset}, in place {inPlace}) differs at {at}: {got[at]:R} vs {expected[i][at]:R}");
                    }
                }
            });
        }
        TestContext.Out.WriteLine($"{Kind}: {Threads} threads ran {runs} ops ({work.Count} kinds, each twice per thread, fresh accelerator) in {clock.Elapsed.TotalSeconds:F2} s");
        Assert.That(failures, Is.Empty);
    }

    /// <summary>Seconds the stress test runs: GPUACTIVATIONS_STRESS_SECONDS, default 2.</summary>
    static double StressSeconds => double.TryParse(Environment.GetEnvironmentVariable("GPUACTIVATIONS_STRESS_SECONDS"), out double s) && s > 0 ? s : 2;

    /// <summary>Ops each stress thread runs even when the time limit passes first.</summary>
    const int MinimumOpsPerThread = 2;

    /// <summary>
    /// For a bounded time (and at least two ops each), eight threads run random ops (random offsets, in place or not) and compare each result with
    /// the single-threaded one, while a ninth allocates, frees, synchronizes and rejects bad calls on the same accelerator.
    /// </summary>
    [Test]
    public void StressRunBoundedInTime()
    {
        var (work, expected) = Reference();
        var failures = new ConcurrentQueue<string>();
        long ops = 0, churn = 0;
        var limit = TimeSpan.FromSeconds(StressSeconds);
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(limit);
        var churner = new Thread(() =>
        {
            var random = new Random(99);
            while (!stop.IsCancellationRequested)
            {
                using var a = Acc.Allocate<float>(random.Next(1, 5000));
                using var b = Acc.Allocate<float>(a.Length + 1);
                try { Acc.Apply(Activation.Relu, a, b); failures.Enqueue("a length mismatch was accepted"); }
                catch (ArgumentException) { }
                Acc.Synchronize();
                Interlocked.Increment(ref churn);
            }
        });
        churner.Start();
        OnThreads(t =>
        {
            var random = new Random(1000 + t);
            // At least MinimumOpsPerThread each, however slow the accelerator (the emulating one takes seconds per op
            // on a loaded 2-core machine), so every thread races the others and the churner whatever the clock says.
            for (int mine = 0; mine < MinimumOpsPerThread || !stop.IsCancellationRequested; mine++)
            {
                int i = random.Next(work.Count);
                int offset = random.Next(6);
                bool inPlace = random.Next(2) == 0;
                float[] got = Execute(Acc, work[i], offset, inPlace);
                Interlocked.Increment(ref ops);
                if (!SameBits(got, expected[i], out int at))
                    failures.Enqueue($"thread {t}: {work[i]} (offset {offset}, in place {inPlace}) differs at {at}");
            }
        });
        stop.Cancel(); // the threads' minimum may outlast the limit; the churner stops with them
        churner.Join();
        double seconds = clock.Elapsed.TotalSeconds;
        TestContext.Out.WriteLine($"{Kind}: stress {seconds:F1} s (limit {limit.TotalSeconds} s): {Threads} threads ran {ops} checked ops ({ops / seconds:F0}/s), " +
                                  $"a ninth {churn} allocate/reject/synchronize/free rounds; {failures.Count} failures");
        Assert.That(failures, Is.Empty);
    }
}
