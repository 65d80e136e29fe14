using System.Collections.Concurrent;
using System.Diagnostics;
using GpuActivations.Cpu;
using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests.Hardening;

/// <summary>
/// Buffers longer than 2^31 elements (8 GiB of floats), where the device can hold them: lengths and offsets are 64-bit
/// from the API to the kernels. Opt-in: GPUACTIVATIONS_LARGE_TESTS=1 (they need 12 GiB of memory and, in a Debug build,
/// minutes; run them in Release: <c>dotnet test -c Release</c>). A device whose largest allocation is smaller (PoCL here:
/// 2 GiB) is ignored with the driver's answer. Contents repeat a 2^20-element pattern, so the reference for any element,
/// and softmax's row sums, are computed on the host without holding 8 GiB there.
/// </summary>
[NonParallelizable]
[HostSide]
public sealed class LargeBufferTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    const string Switch = "GPUACTIVATIONS_LARGE_TESTS";
    const int Period = 1 << 20;
    /// <summary>2^31 + 4102 elements: past 2^31, and divisible by 2 and 3 for the row shapes below.</summary>
    const long N = (1L << 31) + 4102;
    static readonly float[] Pattern = TestData.Logits(Period, seed: 31, scale: 10f);

    DeviceBuffer<float>? big;

    [OneTimeTearDown]
    public void FreeBig() => big?.Dispose();

    static float At(long i) => Pattern[(int)(i % Period)];

    /// <summary>The N-element buffer filled with the pattern (allocated once per fixture, refilled per test).</summary>
    DeviceBuffer<float> Big()
    {
        if (Environment.GetEnvironmentVariable(Switch) != "1")
            Assert.Ignore($"buffers of 2^31 + {N - (1L << 31)} floats (8 GiB, plus 4 GiB): set {Switch}=1 to run (in Release)");
        long needed = 12L << 30;
        if (Acc.Info.MemoryBytes < needed)
            Assert.Ignore($"{Acc.Info} has {Acc.Info.MemoryBytes >> 20} MiB; these tests need {needed >> 20} MiB");
        if (big is null)
        {
            try { big = Acc.Allocate<float>(N); }
            catch (AcceleratorException e) { Assert.Ignore($"{Acc.Info} cannot allocate {N} floats: {e.Message}"); }
        }
        var clock = Stopwatch.StartNew();
        for (long at = 0; at < N; at += Period) big!.Slice(at, Math.Min(Period, N - at)).CopyFrom(Pattern.AsSpan(0, (int)Math.Min(Period, N - at)));
        TestContext.Out.WriteLine($"{Kind}: filled {N} floats in {clock.Elapsed.TotalSeconds:F1} s");
        return big!;
    }

    /// <summary>Samples: the start, both sides of 2^31 and the end of [0, length).</summary>
    static IEnumerable<(long At, int Length)> Samples(long length) =>
        [(0, 5000), ((1L << 31) - 3000, 6000), (length - 5000, 5000)];

    static float[] Read(DeviceBuffer<float> b, long at, int length) => b.Slice(at, length).ToArray();

    [Test]
    public void ElementwiseInPlaceAndAtOffsetsPastTwoToThe31()
    {
        var x = Big();
        var clock = Stopwatch.StartNew();
        Acc.Apply(Activation.LeakyRelu(0.5f), x, x);
        Acc.Synchronize();
        TestContext.Out.WriteLine($"{Kind}: leaky_relu over {N} floats in place: {clock.Elapsed.TotalSeconds:F1} s");
        foreach (var (at, length) in Samples(N))
        {
            float[] got = Read(x, at, length);
            for (int k = 0; k < length; k++)
            {
                float v = At(at + k), expected = v < 0 ? 0.5f * v : v;
                if (got[k] != expected) Assert.Fail($"element {at + k}: got {got[k]:R}, expected {expected:R}");
            }
        }

        // A view that starts past 2^31 into a small output: the offset travels as 64 bits.
        const long offset = (1L << 31) + 7;
        const int viewLength = (int)(N - offset - 1);
        using var y = Acc.Allocate<float>(viewLength);
        Acc.Apply(Activation.Sigmoid, x.Slice(offset, viewLength), y);
        float[] source = Read(x, offset, viewLength);
        var sigmoid = OpTable.Activations.First(a => a.Activation == Activation.Sigmoid);
        Ulp.AssertClose(source, y.ToArray(), sigmoid.Expected(source), sigmoid.MaxUlp, $"sigmoid of the view at {offset}");
    }

    [Test]
    public void PReluPastTwoToThe31()
    {
        var x = Big();
        const int channels = 1024;
        long length = ((1L << 21) + 4) * channels; // 2^31 + 4096
        float[] slopes = TestData.Logits(channels, seed: 5, scale: 0.5f);
        using var alpha = Acc.Allocate<float>(slopes);
        Acc.PRelu(x.Slice(0, length), alpha, x.Slice(0, length));
        foreach (var (at, n) in Samples(length))
        {
            float[] got = Read(x, at, n);
            for (int k = 0; k < n; k++)
            {
                float v = At(at + k), a = slopes[(at + k) % channels], expected = v < 0 ? a * v : v;
                if (got[k] != expected) Assert.Fail($"element {at + k}: got {got[k]:R}, expected {expected:R}");
            }
        }
        Assert.That(Read(x, length, 6), Is.EqualTo(Enumerable.Range(0, 6).Select(k => At(length + k)).ToArray()), "past the view: untouched");
    }

    [Test]
    public void SoftmaxRowsPastTwoToThe31([Values] bool log)
    {
        var x = Big();
        const long rows = 2, cols = N / 2;
        var clock = Stopwatch.StartNew();
        if (log) Acc.LogSoftmax(x, x, rows, cols); else Acc.Softmax(x, x, rows, cols);
        Acc.Synchronize();
        TestContext.Out.WriteLine($"{Kind}: {(log ? "log-softmax" : "softmax")} of [{rows} x {cols}] in place: {clock.Elapsed.TotalSeconds:F1} s");

        // Row r covers [r cols, (r + 1) cols): its max and sum from the pattern's counts in that range.
        double max = Pattern.Max();
        double[] exp = Pattern.Select(v => Math.Exp(v - max)).ToArray();
        double RowSum(long start, long end)
        {
            double sum = 0;
            for (int k = 0; k < Period; k++)
            {
                // How many i in [start, end) have i % Period == k.
                long first = start + ((k - start % Period) % Period + Period) % Period;
                if (first < end) sum += exp[k] * ((end - 1 - first) / Period + 1);
            }
            return sum;
        }
        double[] sums = [RowSum(0, cols), RowSum(cols, 2 * cols)];
        foreach (var (at, n) in Samples(N))
        {
            float[] got = Read(x, at, n);
            for (int k = 0; k < n; k++)
            {
                long i = at + k;
                double sum = sums[i / cols];
                double expected = log ? At(i) - max - Math.Log(sum) : Math.Exp(At(i) - max) / sum;
                double tolerance = log ? 1e-5 + 2.4e-7 * Math.Abs(expected) : 1e-5 * expected + 1e-38;
                if (!(Math.Abs(got[k] - expected) <= tolerance)) Assert.Fail($"element {i} (row {i / cols}): got {got[k]:R}, expected {expected:R}");
            }
        }
    }

    [Test]
    public void PackedGluRowLongerThanTwoToThe30()
    {
        var packed = Big();
        const long rows = 1, d = N / 2; // up half from 2^30 + 2051: its last elements sit past 2^31
        using var y = Acc.Allocate<float>(rows * d);
        var clock = Stopwatch.StartNew();
        Acc.GluPacked(GatedUnit.ReGlu, packed, y, rows, d);
        Acc.Synchronize();
        TestContext.Out.WriteLine($"{Kind}: packed ReGLU of [{rows} x 2*{d}]: {clock.Elapsed.TotalSeconds:F1} s (one row: one core on the CPU)");
        foreach (var (at, n) in new (long, int)[] { (0, 5000), (d - 5000, 5000) })
        {
            float[] got = y.Slice(at, n).ToArray();
            for (int k = 0; k < n; k++)
            {
                float gate = At(at + k), up = At(d + at + k);
                float expected = (float)(ScalarReference.Relu(gate) * up);
                if (got[k] != expected) Assert.Fail($"y[{at + k}]: got {got[k]:R}, expected {expected:R}");
            }
        }
    }
}

/// <summary>
/// The CPU path's 64-bit partitioning, without the memory: <see cref="CpuParallel.For"/> is handed totals far past
/// 2^31 and must cover them exactly, in aligned, disjoint, contiguous ranges (no int truncation anywhere).
/// </summary>
public sealed class CpuPartitioningTests
{
    [Test]
    public void RangesCoverTotalsPastTwoToThe31Exactly(
        [Values((1L << 31) + 1, (1L << 33) + 12345, long.MaxValue / 4)] long total,
        [Values(1, 2, 3, 7, 64)] int parts,
        [Values(1, 16)] long alignment)
    {
        var ranges = new ConcurrentBag<(long Start, long Count)>();
        CpuParallel.For(total, parts, (start, count) => ranges.Add((start, count)), alignment);
        var sorted = ranges.OrderBy(r => r.Start).ToList();
        Assert.That(sorted.Count, Is.InRange(1, parts));
        long next = 0;
        foreach (var (start, count) in sorted)
        {
            Assert.That(start, Is.EqualTo(next), "contiguous and disjoint");
            Assert.That(start % alignment, Is.Zero, "aligned");
            Assert.That(count, Is.Positive);
            next = start + count;
        }
        Assert.That(next, Is.EqualTo(total), "covers the total exactly");
    }

    [Test]
    public void PartsOfHugeCountsAreTheCoreCount()
    {
        Assert.That(CpuParallel.Parts(1L << 40), Is.EqualTo(Environment.ProcessorCount));
        Assert.That(CpuParallel.Parts(long.MaxValue), Is.EqualTo(Environment.ProcessorCount));
        Assert.That(CpuParallel.Parts(0), Is.EqualTo(1));
        Assert.That(CpuParallel.Parts(CpuParallel.MinimumPerCore - 1), Is.EqualTo(1));
    }
}
