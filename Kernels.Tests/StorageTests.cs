using GpuActivations.Cpu;
using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>One 16-bit storage type as the tests see it: bits to float, the correctly rounded value of a double, ordered distance.</summary>
public sealed class Format16
{
    Format16(string name, Func<ushort, float> toFloat, Func<double, ushort> round)
    {
        Name = name;
        ToFloat = toFloat;
        Round = round;
    }

    /// <summary>fp16: .NET's own conversions (IEEE round to nearest even from double).</summary>
    public static Format16 Half { get; } = new("fp16", StorageReference.HalfToSingle, StorageReference.RoundHalf);

    /// <summary>bf16: rounded from the double directly (not through float), nearest with ties to even, by the reference.</summary>
    public static Format16 BFloat16 { get; } = new("bf16", StorageReference.BFloat16ToSingle, StorageReference.RoundBFloat16);

    /// <summary>Both formats, for test sources.</summary>
    public static IEnumerable<Format16> All => [Half, BFloat16];

    /// <summary>"fp16" or "bf16".</summary>
    public string Name { get; }
    /// <summary>The exact float of a bit pattern.</summary>
    public Func<ushort, float> ToFloat { get; }
    /// <summary>The bit pattern nearest a double (ties to even; NaN to a NaN).</summary>
    public Func<double, ushort> Round { get; }

    /// <summary>Every bit pattern, as floats.</summary>
    public float[] AllValues() => Enumerable.Range(0, 65536).Select(b => ToFloat((ushort)b)).ToArray();

    /// <summary>Steps between the stored result and the expected value rounded to this format; NaN matches only NaN.</summary>
    /// Below float32's smallest normal any result of that size passes: the float32 computation may flush there (as <see cref="Ulp"/>).
    public double Ulps(ushort actual, double expected)
    {
        float a = ToFloat(actual);
        if (double.IsNaN(expected) || float.IsNaN(a)) return double.IsNaN(expected) && float.IsNaN(a) ? 0 : double.PositiveInfinity;
        if (Math.Abs(expected) < 1.17549435e-38 && Math.Abs(a) <= 1.17549435e-38) return 0;
        return Math.Abs(StorageReference.Ordinal(actual) - StorageReference.Ordinal(Round(expected)));
    }

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>
/// fp16 and bf16 storage on every accelerator: each op loads its inputs, computes in float32 and rounds once, so every
/// stored result is within 1 ulp of the storage type of the exact value (the float32 result is within a few float32 ulp,
/// far below half a bf16/fp16 ulp, so only near a rounding boundary can it land on the neighbour). Elementwise ops are
/// checked on every one of the 65536 bit patterns.
/// </summary>
public sealed class StorageTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    static IEnumerable<TestCaseData> ActivationsByFormat =>
        from f in Format16.All from c in OpTable.Activations
        select new TestCaseData(f, c).SetArgDisplayNames(f.Name, c.ToString());

    /// <summary>A buffer of the format's element type holding <paramref name="bits"/>.</summary>
    object Allocate(Format16 f, ushort[] bits) => f == Format16.Half
        ? Acc.Allocate<Half>(bits.Select(BitConverter.UInt16BitsToHalf).ToArray())
        : Acc.Allocate<BFloat16>(bits.Select(BFloat16.FromBits).ToArray());

    object Allocate(Format16 f, long length) => f == Format16.Half ? Acc.Allocate<Half>(length) : Acc.Allocate<BFloat16>(length);

    static ushort[] Bits(object buffer) => buffer switch
    {
        DeviceBuffer<Half> h => h.ToArray().Select(BitConverter.HalfToUInt16Bits).ToArray(),
        DeviceBuffer<BFloat16> b => b.ToArray().Select(v => v.Bits).ToArray(),
        _ => throw new ArgumentException("not a 16-bit buffer", nameof(buffer)),
    };

    static ushort[] RoundAll(Format16 f, float[] values) => values.Select(v => f.Round(v)).ToArray();

    static void AssertWithinOneUlp(Format16 f, float[] inputs, ushort[] actual, Func<int, double> expected, string what)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            double e = expected(i);
            double d = f.Ulps(actual[i], e);
            if (!(d <= 1))
                Assert.Fail($"{what} ({f}): input {inputs[Math.Min(i, inputs.Length - 1)]:R} gives {f.ToFloat(actual[i]):R}, expected {e:R} ({d} ulp of {f})");
        }
    }

    [TestCaseSource(nameof(ActivationsByFormat))]
    public void EveryBitPatternWithinOneUlp(Format16 f, ActivationCase c)
    {
        ushort[] bits = Enumerable.Range(0, 65536).Select(b => (ushort)b).ToArray();
        float[] x = f.AllValues();
        var xb = Allocate(f, bits);
        var yb = Allocate(f, bits.Length);
        try
        {
            if (xb is DeviceBuffer<Half> hx) Acc.Apply(c.Activation, hx, (DeviceBuffer<Half>)yb);
            else Acc.Apply(c.Activation, (DeviceBuffer<BFloat16>)xb, (DeviceBuffer<BFloat16>)yb);
            AssertWithinOneUlp(f, x, Bits(yb), i => c.Expected(x[i]), c.ToString());
        }
        finally { ((IDisposable)xb).Dispose(); ((IDisposable)yb).Dispose(); }
    }

    [TestCaseSource(nameof(ActivationsByFormat))]
    public void InPlaceOnViewsMatchesOutOfPlace(Format16 f, ActivationCase c)
    {
        ushort[] bits = RoundAll(f, TestData.Values(1037, 5));
        float[] x = bits.Select(f.ToFloat).ToArray();
        var buffer = Allocate(f, bits);
        try
        {
            if (buffer is DeviceBuffer<Half> h) Acc.Apply(c.Activation, h.Slice(3, 1001), h.Slice(3, 1001));
            else { var b = (DeviceBuffer<BFloat16>)buffer; Acc.Apply(c.Activation, b.Slice(3, 1001), b.Slice(3, 1001)); }
            ushort[] result = Bits(buffer);
            Assert.That(result[..3], Is.EqualTo(bits[..3]), "before the view");
            Assert.That(result[1004..], Is.EqualTo(bits[1004..]), "after the view");
            AssertWithinOneUlp(f, x[3..1004], result[3..1004], i => c.Expected(x[3 + i]), c + " in place");
        }
        finally { ((IDisposable)buffer).Dispose(); }
    }

    [TestCaseSource(typeof(Format16), nameof(Format16.All))]
    public void PReluWithinOneUlp(Format16 f)
    {
        const int channels = 7;
        ushort[] bits = RoundAll(f, TestData.Values(channels * 151, 9));
        float[] x = bits.Select(f.ToFloat).ToArray();
        float[] alpha = [0.25f, -0.5f, 0.75f, 1.5f, 0.01f, 2f, -3f];
        var expected = new float[x.Length];
        ScalarReference.PRelu(x, alpha, expected);
        var xb = Allocate(f, bits);
        var yb = Allocate(f, bits.Length);
        using var ab = Acc.Allocate<float>(alpha);
        try
        {
            if (xb is DeviceBuffer<Half> hx) Acc.PRelu(hx, ab, (DeviceBuffer<Half>)yb);
            else Acc.PRelu((DeviceBuffer<BFloat16>)xb, ab, (DeviceBuffer<BFloat16>)yb);
            AssertWithinOneUlp(f, x, Bits(yb), i => expected[i], "prelu");
        }
        finally { ((IDisposable)xb).Dispose(); ((IDisposable)yb).Dispose(); }
    }

    static IEnumerable<TestCaseData> SoftmaxCases =>
        from f in Format16.All
        from shape in new (int Rows, int Cols)[] { (3, 1), (7, 33), (4, 1000), (5, 1500), (2, 5000), (1, 1 << 17) }
        from log in new[] { false, true }
        select new TestCaseData(f, shape.Rows, shape.Cols, log).SetArgDisplayNames(f.Name, $"{shape.Rows}x{shape.Cols}", log ? "log" : "softmax");

    [TestCaseSource(nameof(SoftmaxCases))]
    public void SoftmaxStoredAndMixed(Format16 f, int rows, int cols, bool log)
    {
        ushort[] bits = RoundAll(f, TestData.Logits((long)rows * cols, 21, 8f));
        bits[0] = f.Round(float.NegativeInfinity);
        float[] x = bits.Select(f.ToFloat).ToArray();
        var expected = new float[x.Length];
        if (log) ScalarReference.LogSoftmax(x, expected, rows, cols); else ScalarReference.Softmax(x, expected, rows, cols);
        var xb = Allocate(f, bits);
        var yb = Allocate(f, bits.Length);
        using var mixed = Acc.Allocate<float>(bits.Length);
        try
        {
            switch (xb)
            {
                case DeviceBuffer<Half> h when log: Acc.LogSoftmax(h, (DeviceBuffer<Half>)yb, rows, cols); Acc.LogSoftmax(h, mixed, rows, cols); break;
                case DeviceBuffer<Half> h: Acc.Softmax(h, (DeviceBuffer<Half>)yb, rows, cols); Acc.Softmax(h, mixed, rows, cols); break;
                case DeviceBuffer<BFloat16> b when log: Acc.LogSoftmax(b, (DeviceBuffer<BFloat16>)yb, rows, cols); Acc.LogSoftmax(b, mixed, rows, cols); break;
                case DeviceBuffer<BFloat16> b: Acc.Softmax(b, (DeviceBuffer<BFloat16>)yb, rows, cols); Acc.Softmax(b, mixed, rows, cols); break;
            }
            AssertWithinOneUlp(f, x, Bits(yb), i => expected[i], log ? "log-softmax" : "softmax");
            // Mixed: float32 out of the same float32 computation, so the float32 tolerances apply.
            float[] m = mixed.ToArray();
            if (!log) SoftmaxTests.AssertSoftmax(x, m, rows, cols, $"{f} logits, float32 probabilities");
            else
                for (int i = 0; i < m.Length; i++)
                    if (!(Math.Abs(m[i] - expected[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected[i])) || m[i].Equals(expected[i])))
                        Assert.Fail($"log-softmax of {f} logits: element {i} is {m[i]:R}, expected {expected[i]:R}");
        }
        finally { ((IDisposable)xb).Dispose(); ((IDisposable)yb).Dispose(); }
    }

    [Test]
    public void OtherElementTypesAreRejectedWithTheSupportedList()
    {
        using var x = Acc.Allocate<double>(4);
        var e = Assert.Throws<NotSupportedException>(() => CallWithDouble(x));
        Assert.That(e!.Message, Does.Contain("float, Half or BFloat16"));
    }

    void CallWithDouble(DeviceBuffer<double> x)
    {
        var method = typeof(Accelerator).GetMethod("ApplyCore", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .MakeGenericMethod(typeof(double));
        try { method.Invoke(Acc, [Activation.Relu, x.View, x.View]); }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null) { throw e.InnerException; }
    }
}

/// <summary>The conversions themselves: bf16 rounding against an independent definition, and the vector paths against the scalar ones.</summary>
public sealed unsafe class ConversionTests
{
    static float[] Floats()
    {
        var random = new Random(3);
        var values = new List<float>(TestData.Special) { 1.00390625f, 1.01171875f, 3.3895314e38f, 3.4e38f, -3.3961776e38f, 9.2e-41f };
        for (int i = 0; i < 200_000; i++) values.Add(BitConverter.Int32BitsToSingle(random.Next() | (random.Next(2) << 31)));
        for (uint b = 0x3F800000; b < 0x3F810000; b++) values.Add(BitConverter.UInt32BitsToSingle(b)); // every tie and near-tie above 1
        return [.. values];
    }

    [Test]
    public void BFloat16RoundsToNearestEven()
    {
        foreach (float v in Floats())
        {
            ushort expected = Format16.BFloat16.Round(v);
            ushort actual = ((BFloat16)v).Bits;
            if (float.IsNaN(v)) Assert.That(((BFloat16)v).IsNaN, Is.True, $"{v}");
            else if (actual != expected) Assert.Fail($"bf16({v:R}) = 0x{actual:X4}, expected 0x{expected:X4}");
        }
        Assert.That((float)(BFloat16)1.00390625f, Is.EqualTo(1f), "a tie rounds to the even neighbour");
        Assert.That((float)(BFloat16)1.01171875f, Is.EqualTo(1.015625f), "a tie rounds to the even neighbour");
        Assert.That(float.IsPositiveInfinity((float)(BFloat16)3.4e38f), Is.True, "beyond the largest bf16 rounds to infinity");
        Assert.That(((BFloat16)BitConverter.UInt32BitsToSingle(0x7F800001)).IsNaN, Is.True, "a NaN with a low payload stays NaN");
    }

    [TestCase(1, TestName = "VectorConversionsMatchScalar(fp16)")]
    [TestCase(2, TestName = "VectorConversionsMatchScalar(bf16)")]
    public void VectorConversionsMatchScalar(int storage)
    {
        var type = (StorageType)storage;
        float[] values = Floats();
        var stored = new ushort[values.Length];
        var back = new float[values.Length];
        fixed (float* v = values) fixed (ushort* s = stored) fixed (float* b = back)
        {
            Conversions.FromSingle(type, v, (nint)s, values.Length);
            Conversions.ToSingle(type, (nint)s, b, values.Length);
        }
        for (int i = 0; i < values.Length; i++)
        {
            ushort expected = type == StorageType.Float16 ? BitConverter.HalfToUInt16Bits((Half)values[i]) : ((BFloat16)values[i]).Bits;
            float expectedBack = type == StorageType.Float16 ? (float)BitConverter.UInt16BitsToHalf(expected) : (float)BFloat16.FromBits(expected);
            bool nan = float.IsNaN(values[i]);
            if (nan ? !float.IsNaN(back[i]) : stored[i] != expected || BitConverter.SingleToInt32Bits(back[i]) != BitConverter.SingleToInt32Bits(expectedBack))
                Assert.Fail($"{type} of {values[i]:R}: stored 0x{stored[i]:X4} (expected 0x{expected:X4}), read back {back[i]:R}");
        }
    }
}

/// <summary>The span API's fp16/bf16 overloads give exactly the CPU accelerator's results (same staging, same kernels).</summary>
public sealed class CpuSpanStorageTests
{
    [Test]
    public void SpanOverloadsMatchTheCpuAccelerator()
    {
        using var acc = Accelerator.Create(AcceleratorKind.Cpu);
        float[] values = TestData.Values(4099, 31);
        BFloat16[] x = values.Select(v => (BFloat16)v).ToArray();
        Half[] h = values.Select(v => (Half)v).ToArray();
        Half[] up = TestData.Logits(values.Length, 32, 50f).Select(v => (Half)v).ToArray();

        var spanY = new BFloat16[x.Length];
        CpuKernels.Apply(Activation.Gelu, x, spanY);
        using var xb = acc.Allocate<BFloat16>(x);
        using var yb = acc.Allocate<BFloat16>(x.Length);
        acc.Apply(Activation.Gelu, xb, yb);
        Assert.That(spanY, Is.EqualTo(yb.ToArray()), "Apply bf16");

        var spanGlu = new Half[h.Length];
        CpuKernels.Glu(GatedUnit.SwiGlu, h, up, spanGlu);
        using var hb = acc.Allocate<Half>(h);
        using var ub = acc.Allocate<Half>(up);
        using var gb = acc.Allocate<Half>(h.Length);
        acc.Glu(GatedUnit.SwiGlu, hb, ub, gb);
        Assert.That(spanGlu.Select(BitConverter.HalfToUInt16Bits), Is.EqualTo(gb.ToArray().Select(BitConverter.HalfToUInt16Bits)), "Glu fp16");

        const int rows = 3, cols = 1000;
        var spanP = new float[rows * cols];
        CpuKernels.Softmax(x.AsSpan(0, rows * cols), spanP, rows, cols);
        using var sx = acc.Allocate<BFloat16>(x.AsSpan(0, rows * cols));
        using var sp = acc.Allocate<float>(rows * cols);
        acc.Softmax(sx, sp, rows, cols);
        Assert.That(spanP, Is.EqualTo(sp.ToArray()), "Softmax bf16 -> float32");

        CpuKernels.Apply(Activation.Silu, x, x);
        Assert.That(x, Is.EqualTo(values.Select(v => (BFloat16)v).ToArray().Select(v => v).ToArray()).Using<BFloat16>((a, b) => a.Equals(CpuSilu(b))), "in place");
    }

    static BFloat16 CpuSilu(BFloat16 v)
    {
        var y = new BFloat16[1];
        CpuKernels.Apply(Activation.Silu, [v], y);
        return y[0];
    }
}

/// <summary>
/// Storage for the backward ops: "load, compute in float32, round once" means the fp16/bf16 result is bit for bit the
/// float32 op's result on the widened inputs, rounded to the format (NaN payloads aside). The float32 results are
/// checked against the reference by BackwardTests; this checks the storage path adds exactly one rounding.
/// </summary>
public sealed class StorageBackwardTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    static IEnumerable<TestCaseData> ActivationsByFormat =>
        from f in Format16.All from c in OpTable.Activations
        select new TestCaseData(f, c).SetArgDisplayNames(f.Name, c.ToString());

    static ushort[] RoundAll(Format16 f, float[] values) => values.Select(v => f.Round(v)).ToArray();

    /// <summary>
    /// Runs an op on float32 copies of <paramref name="inputs"/> and on 16-bit buffers of them; asserts that each of the last
    /// <paramref name="outputs"/> buffers of the 16-bit run is the float32 run's result rounded once (NaN payloads aside).
    /// </summary>
    void AssertOneRounding(Format16 f, ushort[][] inputs, Action<BufferView<float>[]> floatOp, Action<object[]> storedOp, string what, int outputs = 1)
    {
        var floats = inputs.Select(b => Acc.Allocate<float>(b.Select(f.ToFloat).ToArray())).ToArray();
        object[] stored = inputs.Select(b => f == Format16.Half
            ? (object)Acc.Allocate<Half>(b.Select(BitConverter.UInt16BitsToHalf).ToArray())
            : Acc.Allocate<BFloat16>(b.Select(BFloat16.FromBits).ToArray())).ToArray();
        try
        {
            floatOp([.. floats.Select(b => b.View)]);
            storedOp(stored);
            for (int k = inputs.Length - outputs; k < inputs.Length; k++)
            {
                float[] expected = floats[k].ToArray();
                ushort[] actual = stored[k] switch
                {
                    DeviceBuffer<Half> h => h.ToArray().Select(BitConverter.HalfToUInt16Bits).ToArray(),
                    DeviceBuffer<BFloat16> b => b.ToArray().Select(v => v.Bits).ToArray(),
                    _ => throw new InvalidOperationException(),
                };
                for (int i = 0; i < actual.Length; i++)
                {
                    ushort e = f.Round(expected[i]);
                    bool same = float.IsNaN(expected[i]) ? float.IsNaN(f.ToFloat(actual[i])) : actual[i] == e;
                    if (!same) Assert.Fail($"{what} ({f}) output {k} element {i}: stored {f.ToFloat(actual[i]):R}, float32 result {expected[i]:R} rounds to {f.ToFloat(e):R}");
                }
            }
        }
        finally
        {
            foreach (var b in floats) b.Dispose();
            foreach (var b in stored) ((IDisposable)b).Dispose();
        }
    }

    [TestCaseSource(nameof(ActivationsByFormat))]
    public void BackwardIsTheFloatResultRoundedOnce(Format16 f, ActivationCase c)
    {
        ushort[] x = RoundAll(f, TestData.Values(1031, 41)), dy = RoundAll(f, TestData.Logits(1031, 42, 4f));
        AssertOneRounding(f, [x, dy, new ushort[x.Length]],
            v => Acc.ActivationBackward(c.Activation, v[0], v[1], v[2]),
            s =>
            {
                if (s[0] is DeviceBuffer<Half> h) Acc.ActivationBackward(c.Activation, h, (DeviceBuffer<Half>)s[1], (DeviceBuffer<Half>)s[2]);
                else Acc.ActivationBackward(c.Activation, (DeviceBuffer<BFloat16>)s[0], (DeviceBuffer<BFloat16>)s[1], (DeviceBuffer<BFloat16>)s[2]);
            }, c + " backward");
        if (!c.Activation.HasOutputDerivative) return;
        AssertOneRounding(f, [x, dy, new ushort[x.Length]],
            v => Acc.ActivationBackwardFromOutput(c.Activation, v[0], v[1], v[2]),
            s =>
            {
                if (s[0] is DeviceBuffer<Half> h) Acc.ActivationBackwardFromOutput(c.Activation, h, (DeviceBuffer<Half>)s[1], (DeviceBuffer<Half>)s[2]);
                else Acc.ActivationBackwardFromOutput(c.Activation, (DeviceBuffer<BFloat16>)s[0], (DeviceBuffer<BFloat16>)s[1], (DeviceBuffer<BFloat16>)s[2]);
            }, c + " backward from output");
    }

    /// <summary>Calls the fp16 or the bf16 overload with the buffers cast to their type.</summary>
    static void Call(object[] s, Action<DeviceBuffer<Half>[]> half, Action<DeviceBuffer<BFloat16>[]> bf16)
    {
        if (s[0] is DeviceBuffer<Half>) half([.. s.Cast<DeviceBuffer<Half>>()]);
        else bf16([.. s.Cast<DeviceBuffer<BFloat16>>()]);
    }

    static IEnumerable<TestCaseData> UnitsByFormat =>
        from f in Format16.All from u in OpTable.GatedUnits from packing in new[] { GluPacking.Halves, GluPacking.Interleaved }
        select new TestCaseData(f, u.Unit, packing).SetArgDisplayNames(f.Name, u.Unit.ToString(), packing.ToString());

    [TestCaseSource(nameof(UnitsByFormat))]
    public void GatedUnitsAreTheFloatResultRoundedOnce(Format16 f, GatedUnit unit, GluPacking packing)
    {
        const int rows = 5, d = 203;
        ushort[] gate = RoundAll(f, TestData.Values(rows * d, 11)), up = RoundAll(f, TestData.Logits(rows * d, 12, 9f));
        ushort[] dy = RoundAll(f, TestData.Logits(rows * d, 13, 3f)), packed = RoundAll(f, TestData.Values(2 * rows * d, 14));
        var dense = new ushort[rows * d];
        AssertOneRounding(f, [gate, up, dense], v => Acc.Glu(unit, v[0], v[1], v[2]),
            s => Call(s, h => Acc.Glu(unit, h[0], h[1], h[2]), b => Acc.Glu(unit, b[0], b[1], b[2])), $"{unit} separate");
        AssertOneRounding(f, [packed, dense], v => Acc.GluPacked(unit, v[0], v[1], rows, d, packing),
            s => Call(s, h => Acc.GluPacked(unit, h[0], h[1], rows, d, packing), b => Acc.GluPacked(unit, b[0], b[1], rows, d, packing)), $"{unit} {packing}");
        AssertOneRounding(f, [gate, up, dy, dense, dense], v => Acc.GluBackward(unit, v[0], v[1], v[2], v[3], v[4]),
            s => Call(s, h => Acc.GluBackward(unit, h[0], h[1], h[2], h[3], h[4]), b => Acc.GluBackward(unit, b[0], b[1], b[2], b[3], b[4])),
            $"{unit} backward", outputs: 2);
        AssertOneRounding(f, [packed, dy, new ushort[packed.Length]], v => Acc.GluPackedBackward(unit, v[0], v[1], v[2], rows, d, packing),
            s => Call(s, h => Acc.GluPackedBackward(unit, h[0], h[1], h[2], rows, d, packing), b => Acc.GluPackedBackward(unit, b[0], b[1], b[2], rows, d, packing)),
            $"{unit} {packing} backward");
    }

    static IEnumerable<TestCaseData> RowShapes =>
        from f in Format16.All from shape in new (int Rows, int Cols)[] { (3, 1), (7, 33), (4, 1000), (5, 1500), (2, 5000), (1, 1 << 17) }
        select new TestCaseData(f, shape.Rows, shape.Cols).SetArgDisplayNames(f.Name, $"{shape.Rows}x{shape.Cols}");

    [TestCaseSource(nameof(RowShapes))]
    public void SoftmaxBackwardIsTheFloatResultRoundedOnce(Format16 f, int rows, int cols)
    {
        float[] logits = TestData.Logits((long)rows * cols, 51, 6f);
        var probabilities = new float[logits.Length];
        var logProbabilities = new float[logits.Length];
        Reference.ScalarReference.Softmax(logits, probabilities, rows, cols);
        Reference.ScalarReference.LogSoftmax(logits, logProbabilities, rows, cols);
        ushort[] y = RoundAll(f, probabilities), logY = RoundAll(f, logProbabilities), dy = RoundAll(f, TestData.Logits(logits.Length, 52, 2f));
        var dx = new ushort[logits.Length];
        AssertOneRounding(f, [y, dy, dx], v => Acc.SoftmaxBackward(v[0], v[1], v[2], rows, cols),
            s => Call(s, h => Acc.SoftmaxBackward(h[0], h[1], h[2], rows, cols), b => Acc.SoftmaxBackward(b[0], b[1], b[2], rows, cols)), "softmax backward");
        AssertOneRounding(f, [logY, dy, dx], v => Acc.LogSoftmaxBackward(v[0], v[1], v[2], rows, cols),
            s => Call(s, h => Acc.LogSoftmaxBackward(h[0], h[1], h[2], rows, cols), b => Acc.LogSoftmaxBackward(b[0], b[1], b[2], rows, cols)), "log-softmax backward");
    }

    [TestCaseSource(nameof(RowShapes))]
    public void CrossEntropyGradientIsTheFloatResultRoundedOnceAndLossesMatch(Format16 f, int rows, int cols)
    {
        ushort[] logits = RoundAll(f, TestData.Logits((long)rows * cols, 53, 8f));
        int[] targets = Enumerable.Range(0, rows).Select(r => r == 1 ? -100 : (r * 7919) % cols).ToArray();
        var options = new CrossEntropyOptions { LabelSmoothing = 0.1f, GradientScale = 0.5f };
        using var t = Acc.Allocate<int>(targets);
        using var floatLosses = Acc.Allocate<float>(rows);
        using var storedLosses = Acc.Allocate<float>(rows);
        AssertOneRounding(f, [logits, new ushort[logits.Length]], v => Acc.CrossEntropy(v[0], t, floatLosses, v[1], rows, cols, options),
            s => Call(s, h => Acc.CrossEntropy(h[0], t, storedLosses, h[1], rows, cols, options), b => Acc.CrossEntropy(b[0], t, storedLosses, b[1], rows, cols, options)),
            "cross-entropy gradient");
        Assert.That(storedLosses.ToArray(), Is.EqualTo(floatLosses.ToArray()), "float32 losses from the same widened logits");
    }

    [TestCaseSource(typeof(Format16), nameof(Format16.All))]
    public void PReluBackwardIsTheFloatResultRoundedOnce(Format16 f)
    {
        PReluBackwardCase(f, 97);
        PReluBackwardCase(f, 9001); // many staging tiles: dAlpha's sums run on across them
    }

    void PReluBackwardCase(Format16 f, int rows)
    {
        const int channels = 5;
        ushort[] x = RoundAll(f, TestData.Values(channels * rows, 43)), dy = RoundAll(f, TestData.Logits(channels * rows, 44, 4f));
        float[] alpha = [0.25f, -0.5f, 0.75f, 1.5f, 0.01f];
        using var a = Acc.Allocate<float>(alpha);
        using var floatDAlpha = Acc.Allocate<float>(channels);
        using var storedDAlpha = Acc.Allocate<float>(channels);
        AssertOneRounding(f, [x, dy, new ushort[x.Length]],
            v => Acc.PReluBackward(v[0], a, v[1], v[2], floatDAlpha),
            s =>
            {
                if (s[0] is DeviceBuffer<Half> h) Acc.PReluBackward(h, a, (DeviceBuffer<Half>)s[1], (DeviceBuffer<Half>)s[2], storedDAlpha);
                else Acc.PReluBackward((DeviceBuffer<BFloat16>)s[0], a, (DeviceBuffer<BFloat16>)s[1], (DeviceBuffer<BFloat16>)s[2], storedDAlpha);
            }, "prelu backward");
        Assert.That(storedDAlpha.ToArray(), Is.EqualTo(floatDAlpha.ToArray()), "dAlpha (float32) is the same sum of the same widened values");
    }
}
