using System.Diagnostics;
using NUnit.Framework;

namespace GpuActivations.Tests.Hardening;

/// <summary>
/// Rows longer than int.MaxValue elements on the CPU accelerator, over <see cref="AliasedMemory"/> (a 16 GiB range of
/// addresses backed by 32 MiB), so they cost no memory: every op taking rows and columns either gives its result or
/// throws a clear ArgumentException before writing anything; no OverflowException, no partial output.
/// </summary>
[NonParallelizable]
public sealed class HugeRowTests
{
    /// <summary>2^32 + 16 columns: past int.MaxValue per row, and past int.MaxValue per core on two cores.</summary>
    const long Cols = (1L << 32) + 16;

    const string LargeSwitch = "GPUACTIVATIONS_LARGE_TESTS";

    Accelerator? acc;

    [OneTimeSetUp]
    public void Create()
    {
        if (!AliasedMemory.IsSupported) Assert.Ignore("aliased memory needs Linux");
        acc = Accelerator.Create(AcceleratorKind.Cpu);
    }

    [OneTimeTearDown]
    public void Dispose() => acc?.Dispose();

    /// <summary>The tensors of one call, each over its own aliased range, with a snapshot to tell whether anything was written.</summary>
    public sealed class Tensors(Accelerator acc) : IDisposable
    {
        readonly List<(AliasedMemory Memory, byte[] Before)> maps = [];
        readonly List<IDisposable> buffers = [];

        public DeviceBuffer<T> Make<T>(long length, byte fill = 0) where T : unmanaged
        {
            var m = AliasedMemory.Create(length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>());
            m.First<byte>().Fill(fill);
            maps.Add((m, []));
            var b = acc.Wrap<T>(m.Pointer, length);
            buffers.Add(b);
            return b;
        }

        public DeviceBuffer<T> Small<T>(params T[] values) where T : unmanaged
        {
            var b = acc.Allocate<T>(values);
            buffers.Add(b);
            return b;
        }

        public void Snapshot()
        {
            for (int i = 0; i < maps.Count; i++) maps[i] = (maps[i].Memory, maps[i].Memory.First<byte>().ToArray());
        }

        /// <summary>The index of the first tensor whose memory changed since <see cref="Snapshot"/>, or -1.</summary>
        public int FirstChanged()
        {
            for (int i = 0; i < maps.Count; i++)
                if (!maps[i].Memory.First<byte>().SequenceEqual(maps[i].Before)) return i;
            return -1;
        }

        public AliasedMemory Memory(int i) => maps[i].Memory;

        public void Dispose()
        {
            foreach (var b in buffers) b.Dispose();
            foreach (var (m, _) in maps) m.Dispose();
        }
    }

    /// <summary>
    /// Cross-entropy of one ignored row of 2^32 + 16 columns with the gradient written over the logits: on two cores each
    /// slice of the row is 2^31 + 8 columns, and the row writers filled them through a checked int cast: OverflowException,
    /// after the row's loss had already been overwritten. Nothing of the logits is read (the row is ignored).
    /// </summary>
    /// <remarks>
    /// Runs by default: the 16 GiB gradient lies on 32 MiB of aliased memory, and writing it costs page faults and stores,
    /// not memory (tens of seconds on two cores, the class being non-parallelizable).
    /// </remarks>
    [Test]
    public void IgnoredRowPastIntMaxValueComputesItsZeroLossAndGradient()
    {
        using var t = new Tensors(acc!);
        var z = t.Make<float>(Cols, fill: 0x41); // 12.07...: any value, it is not read
        var targets = t.Small(-100);
        var losses = t.Small(42f);
        var clock = Stopwatch.StartNew();
        acc!.CrossEntropy(z, targets, losses, z, 1, Cols);
        TestContext.Out.WriteLine($"ignored row of {Cols} columns with its gradient: {clock.Elapsed.TotalSeconds:F2} s");
        Assert.That(losses.ToArray()[0], Is.EqualTo(0f));
        Assert.That(t.Memory(0).First<float>().IndexOfAnyExcept(0f), Is.EqualTo(-1), "the ignored row's gradient is all zeros");
    }

    /// <summary>One call of the surface test: its name, whether it runs through all of a 16 GiB row (then opt-in), and the call.</summary>
    public sealed record HugeCall(string Name, bool Heavy, Func<Accelerator, Tensors, Action> Prepare)
    {
        public override string ToString() => Name;
    }

    static HugeCall C(string name, Func<Accelerator, Tensors, Action> prepare, bool heavy = false) => new(name, heavy, prepare);

    /// <summary>Every op with rows and columns (or channels, or d), in every storage type, with one row past int.MaxValue elements.</summary>
    public static IEnumerable<HugeCall> Calls()
    {
        const long d = Cols / 2;
        // Cross-entropy with an ignored row: float32 reads nothing of it; 16-bit logits go through the float32 staging.
        yield return C("CrossEntropy float32, ignored row, gradient", (a, t) => { var z = t.Make<float>(Cols); var g = t.Make<float>(Cols, 0x41); var tg = t.Small(-100); var l = t.Small(1f); return () => a.CrossEntropy(z, tg, l, g, 1, Cols); }, heavy: true);
        yield return C("CrossEntropy float32, ignored row, no gradient", (a, t) => { var z = t.Make<float>(Cols); var tg = t.Small(-100); var l = t.Small(1f); return () => a.CrossEntropy(z, tg, l, default, 1, Cols); });
        yield return C("CrossEntropy fp16, ignored row, gradient", (a, t) => { var z = t.Make<Half>(Cols); var g = t.Make<Half>(Cols, 0x41); var tg = t.Small(-100); var l = t.Small(1f); return () => a.CrossEntropy(z, tg, l, g, 1, Cols); });
        yield return C("CrossEntropy bf16, ignored row, no gradient", (a, t) => { var z = t.Make<BFloat16>(Cols); var tg = t.Small(-100); var l = t.Small(1f); return () => a.CrossEntropy(z, tg, l, default, 1, Cols); });
        foreach (bool log in new[] { false, true })
        {
            string op = log ? "LogSoftmax" : "Softmax";
            yield return C($"{op} fp16", (a, t) => { var x = t.Make<Half>(Cols); var y = t.Make<Half>(Cols, 0x41); return () => { if (log) a.LogSoftmax(x, y, 1, Cols); else a.Softmax(x, y, 1, Cols); }; });
            yield return C($"{op} bf16", (a, t) => { var x = t.Make<BFloat16>(Cols); var y = t.Make<BFloat16>(Cols, 0x41); return () => { if (log) a.LogSoftmax(x, y, 1, Cols); else a.Softmax(x, y, 1, Cols); }; });
            yield return C($"{op} fp16 into float32", (a, t) => { var x = t.Make<Half>(Cols); var y = t.Make<float>(Cols, 0x41); return () => { if (log) a.LogSoftmax(x, y, 1, Cols); else a.Softmax(x, y, 1, Cols); }; });
            yield return C($"{op}Backward fp16", (a, t) => { var y = t.Make<Half>(Cols); var dy = t.Make<Half>(Cols); var dx = t.Make<Half>(Cols, 0x41); return () => { if (log) a.LogSoftmaxBackward(y, dy, dx, 1, Cols); else a.SoftmaxBackward(y, dy, dx, 1, Cols); }; });
            yield return C($"{op}Backward bf16", (a, t) => { var y = t.Make<BFloat16>(Cols); var dy = t.Make<BFloat16>(Cols); var dx = t.Make<BFloat16>(Cols, 0x41); return () => { if (log) a.LogSoftmaxBackward(y, dy, dx, 1, Cols); else a.SoftmaxBackward(y, dy, dx, 1, Cols); }; });
            // float32 rows run through all 16 GiB: an all-NaN row (the NaN row writer) and a masked (all -inf) safe row.
            yield return C($"{op} float32, NaN row", (a, t) => { var x = t.Make<float>(Cols, 0xFF); var y = t.Make<float>(Cols, 0x41); return () => { if (log) a.LogSoftmax(x, y, 1, Cols); else a.Softmax(x, y, 1, Cols); }; }, heavy: true);
            yield return C($"{op}Backward float32", (a, t) => { var y = t.Make<float>(Cols); var dy = t.Make<float>(Cols); var dx = t.Make<float>(Cols, 0x41); return () => { if (log) a.LogSoftmaxBackward(y, dy, dx, 1, Cols); else a.SoftmaxBackward(y, dy, dx, 1, Cols); }; }, heavy: true);
        }
        yield return C("GluPacked fp16 halves", (a, t) => { var p = t.Make<Half>(2 * d); var y = t.Make<Half>(d, 0x41); return () => a.GluPacked(GatedUnit.SwiGlu, p, y, 1, d); });
        yield return C("GluPacked bf16 interleaved", (a, t) => { var p = t.Make<BFloat16>(2 * d); var y = t.Make<BFloat16>(d, 0x41); return () => a.GluPacked(GatedUnit.SwiGlu, p, y, 1, d, GluPacking.Interleaved); });
        yield return C("GluPackedBackward fp16", (a, t) => { var p = t.Make<Half>(2 * d); var dy = t.Make<Half>(d); var dp = t.Make<Half>(2 * d, 0x41); return () => a.GluPackedBackward(GatedUnit.SwiGlu, p, dy, dp, 1, d); });
        yield return C("GluPackedBackward bf16 interleaved", (a, t) => { var p = t.Make<BFloat16>(2 * d); var dy = t.Make<BFloat16>(d); var dp = t.Make<BFloat16>(2 * d, 0x41); return () => a.GluPackedBackward(GatedUnit.SwiGlu, p, dy, dp, 1, d, GluPacking.Interleaved); });
        yield return C("PRelu fp16, 2^32 + 16 channels", (a, t) => { var x = t.Make<Half>(Cols); var al = t.Make<float>(Cols); var y = t.Make<Half>(Cols, 0x41); return () => a.PRelu(x, al, y); });
        yield return C("PReluBackward bf16, 2^32 + 16 channels", (a, t) => { var x = t.Make<BFloat16>(Cols); var al = t.Make<float>(Cols); var dy = t.Make<BFloat16>(Cols); var dx = t.Make<BFloat16>(Cols, 0x41); var da = t.Make<float>(Cols, 0x41); return () => a.PReluBackward(x, al, dy, dx, da); });
        yield return C("CrossEntropy float32, a row computed", (a, t) => { var z = t.Make<float>(Cols); var g = t.Make<float>(Cols, 0x41); var tg = t.Small(3); var l = t.Small(1f); return () => a.CrossEntropy(z, tg, l, g, 1, Cols); }, heavy: true);
        yield return C("GluPacked float32 halves", (a, t) => { var p = t.Make<float>(2 * d); var y = t.Make<float>(d, 0x41); return () => a.GluPacked(GatedUnit.SwiGlu, p, y, 1, d); }, heavy: true);
    }

    /// <summary>
    /// The surface: each call above gives a result or an ArgumentException (naming the argument, saying what to do) with
    /// every tensor's memory unchanged. Calls that run through a whole 16 GiB row take minutes in a Debug build and are
    /// opt-in (GPUACTIVATIONS_LARGE_TESTS=1, as <see cref="LargeBufferTests"/>).
    /// </summary>
    [TestCaseSource(nameof(Calls))]
    public void RowPastIntMaxValueGivesAResultOrARefusalBeforeWriting(HugeCall call)
    {
        if (call.Heavy && Environment.GetEnvironmentVariable(LargeSwitch) != "1")
            Assert.Ignore($"reads and writes all 2^32 + 16 elements (minutes in Debug): set {LargeSwitch}=1 to run");
        using var t = new Tensors(acc!);
        Action run = call.Prepare(acc!, t);
        t.Snapshot();
        var clock = Stopwatch.StartNew();
        Exception? thrown = null;
        try { run(); }
        catch (Exception e) { thrown = e; }
        TestContext.Out.WriteLine($"{call.Name}: {(thrown is null ? "computed" : thrown.GetType().Name + ": " + thrown.Message)} ({clock.Elapsed.TotalSeconds:F2} s)");
        if (thrown is null) return;
        Assert.That(thrown, Is.InstanceOf<ArgumentException>(), $"{call.Name} threw {thrown}");
        Assert.That(((ArgumentException)thrown).ParamName, Is.Not.Null.And.Not.Empty, "the refusal names the argument");
        Assert.That(t.FirstChanged(), Is.EqualTo(-1), $"{call.Name} refused the call but had written tensor {t.FirstChanged()}");
    }
}
