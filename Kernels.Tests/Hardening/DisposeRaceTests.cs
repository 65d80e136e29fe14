using System.Diagnostics;
using NUnit.Framework;

namespace GpuActivations.Tests.Hardening;

/// <summary>
/// Disposing what an op is using, from another thread, while the op runs: a buffer (owned or a wrapper of foreign
/// memory) or the accelerator itself. Each op either completes or throws ObjectDisposedException; the process survives
/// (before, it died: SIGSEGV on the CPU, where the memory was freed under the op, SIGABRT in PoCL). Bounded in time:
/// 2 s per test by default, GPUACTIVATIONS_STRESS_SECONDS to change it.
/// </summary>
[NonParallelizable]
[HostSide]
public sealed class DisposeRaceTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    static TimeSpan Duration => TimeSpan.FromSeconds(double.TryParse(Environment.GetEnvironmentVariable("GPUACTIVATIONS_STRESS_SECONDS"), out var s) ? s : 2);

    const int N = 1 << 20;
    static readonly float[] Input = TestData.Logits(N, seed: 77, scale: 4f);

    /// <summary>Runs one op of a rotating set on (x, y); returns normally or throws.</summary>
    static void Op(Accelerator a, DeviceBuffer<float> x, DeviceBuffer<float> y, int k)
    {
        switch (k % 4)
        {
            case 0: a.Apply(Activation.Sigmoid, x, y); break;
            case 1: a.Softmax(x, y, 16, N / 16); break;
            case 2: a.Glu(GatedUnit.SwiGlu, x.Slice(0, N / 2), x.Slice(N / 2), y.Slice(0, N / 2)); break;
            default: x.CopyTo(new float[N]); break;
        }
        a.Synchronize();
    }

    static bool Expected(Exception e) => e is ObjectDisposedException;

    /// <summary>
    /// Ops run on buffers that another thread disposes at a random moment (owned buffers and wrappers of another
    /// buffer's memory): each op completes or throws ObjectDisposedException, and the accelerator stays usable.
    /// </summary>
    [Test]
    public void DisposingABufferDuringAnOpWaitsOrRefuses()
    {
        var random = new Random(5);
        var clock = Stopwatch.StartNew();
        int rounds = 0, completed = 0, refused = 0;
        while (clock.Elapsed < Duration)
        {
            using var owner = Acc.Allocate<float>(Input);
            bool wrap = rounds % 2 == 1 && Kind == AcceleratorKind.Cpu; // a wrapper of memory the test owns
            var x = wrap ? Acc.Wrap<float>(owner.NativeHandle, N) : Acc.Allocate<float>(Input);
            var y = Acc.Allocate<float>(N);
            int delay = random.Next(0, 3000), k = rounds;
            Exception? unexpected = null;
            var worker = new Thread(() =>
            {
                for (int i = 0; i < 3; i++)
                {
                    try { Op(Acc, x, y, k + i); Interlocked.Increment(ref completed); }
                    catch (Exception e) when (Expected(e)) { Interlocked.Increment(ref refused); }
                    catch (Exception e) { unexpected = e; return; }
                }
            });
            worker.Start();
            Thread.SpinWait(delay * 10);
            (rounds % 3 == 0 ? y : x).Dispose();
            worker.Join();
            x.Dispose();
            y.Dispose();
            Assert.That(unexpected, Is.Null, $"round {rounds}: {unexpected}");
            rounds++;
        }
        // Still usable.
        using var a = Acc.Allocate<float>(Input);
        using var b = Acc.Allocate<float>(N);
        Acc.Apply(Activation.Sigmoid, a, b);
        Assert.That(b.ToArray()[0], Is.EqualTo(1f / (1f + MathF.Exp(-Input[0]))).Within(1e-6f));
        TestContext.Out.WriteLine($"{Kind}: {rounds} rounds in {clock.Elapsed.TotalSeconds:F1} s, {completed} ops completed, {refused} refused (disposed)");
    }

    /// <summary>
    /// Four threads run ops on a fresh accelerator that the test disposes at a random moment: each op completes or throws
    /// ObjectDisposedException; Dispose waits for the ops in flight.
    /// </summary>
    [Test]
    public void DisposingTheAcceleratorDuringOpsWaitsOrRefuses()
    {
        var random = new Random(6);
        var clock = Stopwatch.StartNew();
        int rounds = 0, completed = 0, refused = 0;
        while (clock.Elapsed < Duration)
        {
            var acc = Accelerator.Create(Kind);
            var x = acc.Allocate<float>(Input);
            var y = acc.Allocate<float>(N);
            Op(acc, x, y, 0); // the first program is built before the race
            Exception? unexpected = null;
            var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
            {
                for (int i = 0; i < 1000; i++)
                {
                    try
                    {
                        if (i % 5 == 4) { using var z = acc.Allocate<float>(16); z.CopyFrom(new float[16]); }
                        else Op(acc, x, y, t + i);
                        Interlocked.Increment(ref completed);
                    }
                    catch (Exception e) when (Expected(e)) { Interlocked.Increment(ref refused); return; }
                    catch (Exception e) { unexpected = e; return; }
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            Thread.Sleep(random.Next(0, 40));
            acc.Dispose();
            threads.ForEach(t => t.Join());
            Assert.That(unexpected, Is.Null, $"round {rounds}: {unexpected}");
            Assert.That(x.IsDisposed && y.IsDisposed, Is.True);
            rounds++;
        }
        TestContext.Out.WriteLine($"{Kind}: {rounds} accelerators disposed under load in {clock.Elapsed.TotalSeconds:F1} s, {completed} ops completed, {refused} refused (disposed)");
    }
}
