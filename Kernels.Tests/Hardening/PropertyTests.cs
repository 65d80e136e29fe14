using FsCheck;
using FsCheck.Fluent;
using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests.Hardening;

/// <summary>Where a generated op writes: a separate output, or exactly over one of its inputs.</summary>
public enum Target { Separate, IntoFirstInput, IntoSecondInput }

/// <summary>An elementwise activation on generated values, at generated offsets, in place or not.</summary>
public sealed record ElementwiseCase(ActivationCase Op, float[] X, int XOffset, int YOffset, bool InPlace)
{
    public override string ToString() => $"{Op} n={X.Length} xOffset={XOffset} yOffset={YOffset} inPlace={InPlace}";
}

/// <summary>PReLU of [rows, channels] with generated finite non-zero slopes.</summary>
public sealed record PReluCase(int Rows, float[] X, float[] Alpha, int XOffset, int AlphaOffset, int YOffset, bool InPlace)
{
    public override string ToString() => $"PRelu [{Rows} x {Alpha.Length}] offsets x={XOffset} alpha={AlphaOffset} y={YOffset} inPlace={InPlace}";
}

/// <summary>A gated unit on separate gate and up buffers.</summary>
public sealed record GluCase(GatedUnit Unit, GluId Reference, float[] Gate, float[] Up, int GateOffset, int UpOffset, int YOffset, Target Target)
{
    public override string ToString() => $"{Unit} n={Gate.Length} offsets gate={GateOffset} up={UpOffset} y={YOffset} {Target}";
}

/// <summary>A gated unit on a packed [rows, 2d] buffer.</summary>
public sealed record GluPackedCase(GatedUnit Unit, GluId Reference, int Rows, int D, float[] Packed, int PackedOffset, int YOffset)
{
    public override string ToString() => $"{Unit} packed [{Rows} x 2*{D}] offsets packed={PackedOffset} y={YOffset}";
}

/// <summary>Softmax or log-softmax of [rows, cols] logits with special values sprinkled in.</summary>
public sealed record SoftmaxCase(bool Log, int Rows, int Cols, float[] X, int XOffset, int YOffset, bool InPlace)
{
    public override string ToString() => $"{(Log ? "LogSoftmax" : "Softmax")} [{Rows} x {Cols}] xOffset={XOffset} yOffset={YOffset} inPlace={InPlace}";
}

/// <summary>
/// The generators: lengths mostly short (every tail shape) with some past the CPU's multi-core threshold (2 x 64 Ki
/// elements), offsets 0..17 (every alignment), values from every region: <see cref="TestData.Special"/> (zeros,
/// infinities, NaN, subnormals, extremes), [-10, 10], [-100, 100], [-1, 1] and any bit pattern.
/// </summary>
public static class Generators
{
    /// <summary>Any float an op must get right.</summary>
    public static Gen<float> Value { get; } = Gen.Frequency(
        (1, Gen.Elements(TestData.Special)),
        (4, Gen.Choose(-1_000_000, 1_000_000).Select(i => i / 100_000f)),
        (1, Gen.Choose(-1_000_000, 1_000_000).Select(i => i / 10_000f)),
        (1, Gen.Choose(-1_000_000, 1_000_000).Select(i => i / 1_000_000f)),
        (1, Gen.Choose(0, 0xFFFF).SelectMany(hi => Gen.Choose(0, 0xFFFF), (hi, lo) => BitConverter.Int32BitsToSingle((hi << 16) | lo))));

    /// <summary>A length: short (0..300), medium, or now and then long enough for the CPU to split it across cores.</summary>
    public static Gen<int> Length { get; } = Gen.Frequency((12, Gen.Choose(0, 300)), (4, Gen.Choose(301, 5000)), (1, Gen.Choose(131_072, 140_000)));

    static Gen<int> Offset { get; } = Gen.Choose(0, 17);

    static Gen<bool> Bool { get; } = Gen.Elements(false, true);

    static Gen<float[]> Values(int n) => Gen.ArrayOf(Value, n);

    /// <summary>A slope: finite and non-zero (see docs/reliability.md on a zero slope at -inf).</summary>
    static Gen<float> Slope { get; } = Value.Where(a => float.IsFinite(a) && a != 0);

    /// <summary>A logit: spread 1, 20 or 1000 around zero, now and then -inf (a mask), +inf, NaN or a float extreme.</summary>
    static Gen<float[]> Logits(int n) =>
        from scale in Gen.Elements(1f, 20f, 1000f)
        from values in Gen.ArrayOf(Gen.Frequency(
            (200, Gen.Choose(-1_000_000, 1_000_000).Select(i => i / 1_000_000f * scale)),
            (4, Gen.Constant(float.NegativeInfinity)),
            (1, Gen.Elements(float.PositiveInfinity, float.NaN, float.MaxValue, float.MinValue, 1e-40f))), n)
        select values;

    public static Arbitrary<ElementwiseCase> Elementwise() => Arb.From(
        from op in Gen.Elements(OpTable.Activations.ToArray())
        from n in Length
        from x in Values(n)
        from xOffset in Offset
        from yOffset in Offset
        from inPlace in Bool
        select new ElementwiseCase(op, x, xOffset, yOffset, inPlace));

    public static Arbitrary<PReluCase> PRelu() => Arb.From(
        from rows in Gen.Choose(0, 40)
        from channels in Gen.Frequency((3, Gen.Choose(1, 70)), (1, Gen.Constant(1)))
        from x in Values(rows * channels)
        from alpha in Gen.ArrayOf(Slope, channels)
        from offsets in Gen.ArrayOf(Offset, 3)
        from inPlace in Bool
        select new PReluCase(rows, x, alpha, offsets[0], offsets[1], offsets[2], inPlace));

    public static Arbitrary<GluCase> Glu() => Arb.From(
        from unit in Gen.Elements(OpTable.GatedUnits.ToArray())
        from n in Length
        from gate in Values(n)
        from up in Values(n)
        from offsets in Gen.ArrayOf(Offset, 3)
        from target in Gen.Elements(Target.Separate, Target.IntoFirstInput, Target.IntoSecondInput)
        select new GluCase(unit.Unit, unit.Reference, gate, up, offsets[0], offsets[1], offsets[2], target));

    public static Arbitrary<GluPackedCase> GluPacked() => Arb.From(
        from unit in Gen.Elements(OpTable.GatedUnits.ToArray())
        from rows in Gen.Choose(0, 12)
        from d in Gen.Frequency((4, Gen.Choose(1, 64)), (2, Gen.Choose(65, 700)), (1, Gen.Choose(11_000, 12_000)))
        from packed in Values(rows * 2 * d)
        from offsets in Gen.ArrayOf(Offset, 2)
        select new GluPackedCase(unit.Unit, unit.Reference, rows, d, packed, offsets[0], offsets[1]));

    public static Arbitrary<SoftmaxCase> Softmax() => Arb.From(
        from log in Bool
        from shape in Gen.Frequency(
            (6, from rows in Gen.Choose(0, 12) from cols in Gen.Choose(1, 600) select (rows, cols)),
            (2, from rows in Gen.Choose(1, 4) from cols in Gen.Choose(601, 9000) select (rows, cols)),
            (1, from rows in Gen.Choose(1, 2) from cols in Gen.Choose(65_536, 70_000) select (rows, cols)))
        from x in Logits(shape.rows * shape.cols)
        from xOffset in Offset
        from yOffset in Offset
        from inPlace in Bool
        select new SoftmaxCase(log, shape.rows, shape.cols, x, xOffset, yOffset, inPlace));
}

/// <summary>
/// Property tests (FsCheck.NUnit) on every accelerator: random shapes, offsets and values, special values included,
/// for every op, against the double reference: elementwise within each activation's ulp bound (4), PReLU exact to half
/// an ulp, gated units by <see cref="GatedUnitTests.AssertGlu"/>'s rule, softmax within 1e-5 relative (rows summing to 1)
/// and log-softmax within 1e-5 absolute. Every buffer has sentinel elements around its view, which must survive.
/// A failure prints the case and FsCheck's replay seed.
/// </summary>
[NonParallelizable]
public sealed class PropertyTests(AcceleratorKind kind) : AcceleratorTest(kind)
{
    const int Cases = 60;
    const float Sentinel = -7777f;

    /// <summary>A buffer holding <paramref name="data"/> at <paramref name="offset"/>, with sentinels before and after.</summary>
    (DeviceBuffer<float> Buffer, BufferView<float> View) Place(float[] data, int offset)
    {
        var host = new float[offset + data.Length + 5];
        Array.Fill(host, Sentinel);
        data.CopyTo(host, offset);
        var buffer = Acc.Allocate<float>(host);
        return (buffer, buffer.Slice(offset, data.Length));
    }

    /// <summary>A buffer of <paramref name="length"/> sentinels with a view at <paramref name="offset"/>.</summary>
    (DeviceBuffer<float> Buffer, BufferView<float> View) Output(int length, int offset) => Place(Enumerable.Repeat(Sentinel, length).ToArray(), offset);

    /// <summary>The elements outside the view are still sentinels; returns the view's contents.</summary>
    static float[] Inside(DeviceBuffer<float> buffer, BufferView<float> view, string what)
    {
        float[] all = buffer.ToArray();
        for (long i = 0; i < all.Length; i++)
        {
            if ((i < view.Offset || i >= view.Offset + view.Length) && all[i] != Sentinel)
                Assert.Fail($"{what}: element {i} outside the view [{view.Offset}, {view.Offset + view.Length}) was overwritten with {all[i]:R}");
        }
        return all.AsSpan((int)view.Offset, (int)view.Length).ToArray();
    }

    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void ElementwiseMatchesTheReference(ElementwiseCase c)
    {
        var (xb, x) = Place(c.X, c.XOffset);
        using var _ = xb;
        var (yb, y) = c.InPlace ? (xb, x) : Output(c.X.Length, c.YOffset);
        using var __ = yb;
        Acc.Apply(c.Op.Activation, x, y);
        Ulp.AssertClose(c.X, Inside(yb, y, c.ToString()), c.Op.Expected(c.X), c.Op.MaxUlp, c.ToString());
    }

    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void PReluMatchesTheReference(PReluCase c)
    {
        var expected = new float[c.X.Length];
        ScalarReference.PRelu(c.X, c.Alpha, expected);
        var (xb, x) = Place(c.X, c.XOffset);
        var (ab, alpha) = Place(c.Alpha, c.AlphaOffset);
        var (yb, y) = c.InPlace ? (xb, x) : Output(c.X.Length, c.YOffset);
        try
        {
            Acc.PRelu(x, alpha, y);
            Ulp.AssertClose(c.X, Inside(yb, y, c.ToString()), expected.Select(v => (double)v).ToArray(), 0.5, c.ToString());
            Assert.That(Inside(ab, alpha, c + " (alpha)"), Is.EqualTo(c.Alpha), "alpha is read only");
        }
        finally
        {
            xb.Dispose();
            ab.Dispose();
            yb.Dispose();
        }
    }

    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void GluMatchesTheReference(GluCase c)
    {
        var (gb, gate) = Place(c.Gate, c.GateOffset);
        var (ub, up) = Place(c.Up, c.UpOffset);
        var (yb, y) = c.Target switch
        {
            Target.IntoFirstInput => (gb, gate),
            Target.IntoSecondInput => (ub, up),
            _ => Output(c.Gate.Length, c.YOffset),
        };
        try
        {
            Acc.Glu(c.Unit, gate, up, y);
            GatedUnitTests.AssertGlu(c.Unit, c.Reference, c.Gate, c.Up, Inside(yb, y, c.ToString()), c.ToString());
        }
        finally
        {
            gb.Dispose();
            ub.Dispose();
            yb.Dispose();
        }
    }

    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void GluPackedMatchesTheReference(GluPackedCase c)
    {
        int n = c.Rows * c.D;
        var gate = new float[n];
        var up = new float[n];
        for (int r = 0; r < c.Rows; r++)
        {
            Array.Copy(c.Packed, r * 2 * c.D, gate, r * c.D, c.D);
            Array.Copy(c.Packed, r * 2 * c.D + c.D, up, r * c.D, c.D);
        }
        var (pb, packed) = Place(c.Packed, c.PackedOffset);
        var (yb, y) = Output(n, c.YOffset);
        try
        {
            Acc.GluPacked(c.Unit, packed, y, c.Rows, c.D);
            GatedUnitTests.AssertGlu(c.Unit, c.Reference, gate, up, Inside(yb, y, c.ToString()), c.ToString());
        }
        finally
        {
            pb.Dispose();
            yb.Dispose();
        }
    }

    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void SoftmaxMatchesTheReference(SoftmaxCase c)
    {
        var (xb, x) = Place(c.X, c.XOffset);
        var (yb, y) = c.InPlace ? (xb, x) : Output(c.X.Length, c.YOffset);
        try
        {
            if (c.Log) Acc.LogSoftmax(x, y, c.Rows, c.Cols); else Acc.Softmax(x, y, c.Rows, c.Cols);
            float[] result = Inside(yb, y, c.ToString());
            if (c.Log) SoftmaxTests.AssertLogSoftmax(c.X, result, c.Rows, c.Cols, c.ToString());
            else SoftmaxTests.AssertSoftmax(c.X, result, c.Rows, c.Cols, c.ToString());
        }
        finally
        {
            xb.Dispose();
            yb.Dispose();
        }
    }
}
