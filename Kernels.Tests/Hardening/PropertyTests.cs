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

/// <summary>An activation's backward pass on generated x and dy, at generated offsets, dx separate or over x or dy.</summary>
public sealed record BackwardCase(ActivationCase Op, float[] X, float[] Dy, int XOffset, int DyOffset, int DxOffset, Target Target)
{
    public override string ToString() => $"{Op} backward n={X.Length} offsets x={XOffset} dy={DyOffset} dx={DxOffset} {Target}";
}

/// <summary>A gated unit's backward pass on separate buffers, dGate and dUp separate or over gate and up.</summary>
public sealed record GluBackwardCase(GatedUnit Unit, GluId Reference, float[] Gate, float[] Up, float[] Dy, int[] Offsets, bool InPlace)
{
    public override string ToString() => $"{Unit} backward n={Gate.Length} offsets gate/up/dy/dGate/dUp={string.Join('/', Offsets)} inPlace={InPlace}";
}

/// <summary>Softmax or log-softmax backward of [rows, cols]: y the reference forward output of generated logits, dy generated.</summary>
public sealed record SoftmaxBackwardCase(bool Log, int Rows, int Cols, float[] Y, float[] Dy, int YOffset, int DyOffset, int DxOffset, Target Target)
{
    public override string ToString() => $"{(Log ? "LogSoftmax" : "Softmax")}Backward [{Rows} x {Cols}] offsets y={YOffset} dy={DyOffset} dx={DxOffset} {Target}";
}

/// <summary>Cross-entropy of [rows, cols] logits: targets in range, ignored or out of range; with or without (in place) gradient.</summary>
public sealed record CrossEntropyCase(int Rows, int Cols, float[] Logits, int[] Targets, float LabelSmoothing, float GradientScale,
    bool Gradient, bool InPlace, int Offset)
{
    public override string ToString() => $"CrossEntropy [{Rows} x {Cols}] eps={LabelSmoothing} gradScale={GradientScale} gradient={Gradient} inPlace={InPlace} " +
                                         $"offset={Offset} targets=[{string.Join(',', Targets.Take(12))}{(Targets.Length > 12 ? ",..." : "")}]";
}

/// <summary>An op on bf16 storage (forward or backward of an activation), inputs generated as floats and rounded to bf16.</summary>
public sealed record Bf16Case(ActivationCase Op, bool Backward, BFloat16[] X, BFloat16[] Dy, int Offset, bool InPlace)
{
    public override string ToString() => $"{Op} bf16 {(Backward ? "backward" : "forward")} n={X.Length} offset={Offset} inPlace={InPlace}";
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

    /// <summary>
    /// A gradient dy: mostly [-2, 2], some [-1000, 1000], now and then 0, +-1, +-inf, NaN or a subnormal. Bounded, unlike
    /// <see cref="Value"/>, so dy times a derivative stays in float range (the reference is double: an overflow there is
    /// a finite expected value, not a bug).
    /// </summary>
    static Gen<float> Gradient { get; } = Gen.Frequency(
        (6, Gen.Choose(-1_000_000, 1_000_000).Select(i => i / 500_000f)),
        (1, Gen.Choose(-1_000_000, 1_000_000).Select(i => i / 1_000f)),
        (1, Gen.Elements(0f, -0f, 1f, -1f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 1e-40f)));

    /// <summary>A row shape: mostly short rows, some long ones, now and then a row long enough to be split across cores.</summary>
    static Gen<(int Rows, int Cols)> RowShape { get; } = Gen.Frequency(
        (6, from rows in Gen.Choose(0, 12) from cols in Gen.Choose(1, 600) select (rows, cols)),
        (2, from rows in Gen.Choose(1, 4) from cols in Gen.Choose(601, 9000) select (rows, cols)),
        (1, from rows in Gen.Choose(1, 2) from cols in Gen.Choose(65_536, 70_000) select (rows, cols)));

    public static Arbitrary<BackwardCase> Backward() => Arb.From(
        from op in Gen.Elements(OpTable.Activations.ToArray())
        from n in Length
        from x in Values(n)
        from dy in Gen.ArrayOf(Gradient, n)
        from offsets in Gen.ArrayOf(Offset, 3)
        from target in Gen.Elements(Target.Separate, Target.IntoFirstInput, Target.IntoSecondInput)
        select new BackwardCase(op, x, dy, offsets[0], offsets[1], offsets[2], target));

    public static Arbitrary<GluBackwardCase> GluBackward() => Arb.From(
        from unit in Gen.Elements(OpTable.GatedUnits.ToArray())
        from n in Length
        from gate in Values(n)
        from up in Values(n)
        from dy in Gen.ArrayOf(Gradient, n)
        from offsets in Gen.ArrayOf(Offset, 5)
        from inPlace in Bool
        select new GluBackwardCase(unit.Unit, unit.Reference, gate, up, dy, offsets, inPlace));

    public static Arbitrary<SoftmaxBackwardCase> SoftmaxBackward() => Arb.From(
        from log in Bool
        from shape in RowShape
        from x in Logits(shape.Rows * shape.Cols)
        from dy in Gen.ArrayOf(Gradient.Where(float.IsFinite), shape.Rows * shape.Cols)
        from nanAt in Gen.Choose(-3 * shape.Rows * shape.Cols, shape.Rows * shape.Cols - 1)
        from offsets in Gen.ArrayOf(Offset, 3)
        from target in Gen.Elements(Target.Separate, Target.IntoFirstInput, Target.IntoSecondInput)
        select new SoftmaxBackwardCase(log, shape.Rows, shape.Cols, ForwardOutput(x, shape.Rows, shape.Cols, log), WithNaN(dy, nanAt),
            offsets[0], offsets[1], offsets[2], target));

    /// <summary>The reference (log-)softmax of x: a y the forward op gives (probabilities, exact zeros, NaN rows).</summary>
    static float[] ForwardOutput(float[] x, int rows, int cols, bool log)
    {
        var y = new float[x.Length];
        Reference.ScalarReference.Softmax(x, y, rows, cols, 1f, [], false, log);
        return y;
    }

    /// <summary>dy with a NaN at <paramref name="at"/> when that is an index (a NaN dy makes its row NaN).</summary>
    static float[] WithNaN(float[] dy, int at)
    {
        if (at >= 0 && at < dy.Length) dy[at] = float.NaN;
        return dy;
    }

    public static Arbitrary<CrossEntropyCase> CrossEntropy() => Arb.From(
        from shape in RowShape
        from logits in Logits(shape.Rows * shape.Cols)
        from targets in Gen.ArrayOf(Gen.Frequency(
            (12, Gen.Choose(0, shape.Cols - 1)),
            (1, Gen.Elements(-100, -1, shape.Cols, int.MaxValue, int.MinValue))), shape.Rows)
        from eps in Gen.Elements(0f, 0f, 0.1f, 1f)
        from scale in Gen.Elements(1f, 1f, 0.25f, -2f)
        from gradient in Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false)))
        from inPlace in Bool
        from offset in Offset
        select new CrossEntropyCase(shape.Rows, shape.Cols, logits, targets, eps, scale, gradient, inPlace, offset));

    public static Arbitrary<Bf16Case> Bf16() => Arb.From(
        from op in Gen.Elements(OpTable.Activations.ToArray())
        from backward in Bool
        from n in Length
        from x in Values(n)
        from dy in Gen.ArrayOf(Gradient, n)
        from offset in Offset
        from inPlace in Bool
        select new Bf16Case(op, backward, [.. x.Select(v => (BFloat16)v)], [.. dy.Select(v => (BFloat16)v)], offset, inPlace));

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
        from shape in RowShape
        from x in Logits(shape.Rows * shape.Cols)
        from xOffset in Offset
        from yOffset in Offset
        from inPlace in Bool
        select new SoftmaxCase(log, shape.Rows, shape.Cols, x, xOffset, yOffset, inPlace));
}

/// <summary>
/// Property tests (FsCheck.NUnit) on every accelerator: random shapes, offsets and values, special values included,
/// for every op, against the double reference: elementwise within each activation's ulp bound (4), PReLU exact to half
/// an ulp, gated units by <see cref="GatedUnitTests.AssertGlu"/>'s rule, softmax within 1e-5 relative (rows summing to 1)
/// and log-softmax within 1e-5 absolute; the training ops by their own tests' rules (activation backward:
/// <see cref="BackwardTests.AssertGradient"/>, gated backward: <see cref="GatedUnitTests.AssertGradients"/>, softmax backward
/// and cross-entropy: <see cref="SoftmaxGradTests.AssertBackward"/>, <see cref="SoftmaxGradTests.AssertCrossEntropy"/>); bf16
/// storage bit for bit against the float32 op rounded once. Every buffer has sentinel elements around its view, which must survive.
/// A failure prints the case and FsCheck's replay seed.
/// </summary>
[NonParallelizable]
public sealed class PropertyTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    const int Cases = 60;
    const float Sentinel = -7777f;

    /// <summary>A buffer holding <paramref name="data"/> at <paramref name="offset"/>, with sentinels before and after.</summary>
    (DeviceBuffer<float> Buffer, BufferView<float> View) Place(float[] data, int offset) => Place(data, offset, Sentinel);

    /// <summary>A buffer of any element type holding <paramref name="data"/> at <paramref name="offset"/>, with <paramref name="sentinel"/> before and after.</summary>
    (DeviceBuffer<T> Buffer, BufferView<T> View) Place<T>(T[] data, int offset, T sentinel) where T : unmanaged
    {
        var host = new T[offset + data.Length + 5];
        Array.Fill(host, sentinel);
        data.CopyTo(host, offset);
        var buffer = Acc.Allocate<T>(host);
        return (buffer, buffer.Slice(offset, data.Length));
    }

    /// <summary>A buffer of <paramref name="length"/> sentinels with a view at <paramref name="offset"/>.</summary>
    (DeviceBuffer<float> Buffer, BufferView<float> View) Output(int length, int offset) => Place(Enumerable.Repeat(Sentinel, length).ToArray(), offset);

    /// <summary>The elements outside the view are still sentinels; returns the view's contents.</summary>
    static float[] Inside(DeviceBuffer<float> buffer, BufferView<float> view, string what) => Inside(buffer, view, Sentinel, what);

    /// <inheritdoc cref="Inside(DeviceBuffer{float}, BufferView{float}, string)"/>
    static T[] Inside<T>(DeviceBuffer<T> buffer, BufferView<T> view, T sentinel, string what) where T : unmanaged
    {
        T[] all = buffer.ToArray();
        for (long i = 0; i < all.Length; i++)
        {
            if ((i < view.Offset || i >= view.Offset + view.Length) && !EqualityComparer<T>.Default.Equals(all[i], sentinel))
                Assert.Fail($"{what}: element {i} outside the view [{view.Offset}, {view.Offset + view.Length}) was overwritten with {all[i]:R}");
        }
        return all.AsSpan((int)view.Offset, (int)view.Length).ToArray();
    }

    /// <summary>Disposes every buffer once (in-place cases pass one buffer twice).</summary>
    static void DisposeAll(params IDisposable[] buffers)
    {
        foreach (var b in buffers.Distinct()) b.Dispose();
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

    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void ActivationBackwardMatchesTheReference(BackwardCase c)
    {
        var (xb, x) = Place(c.X, c.XOffset);
        var (dyb, dy) = Place(c.Dy, c.DyOffset);
        var (dxb, dx) = c.Target switch
        {
            Target.IntoFirstInput => (xb, x),
            Target.IntoSecondInput => (dyb, dy),
            _ => Output(c.X.Length, c.DxOffset),
        };
        try
        {
            Acc.ActivationBackward(c.Op.Activation, x, dy, dx);
            BackwardTests.AssertGradient(c.Op, c.X, c.Dy, Inside(dxb, dx, c.ToString()), c.ToString());
        }
        finally
        {
            DisposeAll(xb, dyb, dxb);
        }
    }

    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void GluBackwardMatchesTheReference(GluBackwardCase c)
    {
        var (gb, gate) = Place(c.Gate, c.Offsets[0]);
        var (ub, up) = Place(c.Up, c.Offsets[1]);
        var (yb, dy) = Place(c.Dy, c.Offsets[2]);
        var (dgb, dGate) = c.InPlace ? (gb, gate) : Output(c.Gate.Length, c.Offsets[3]);
        var (dub, dUp) = c.InPlace ? (ub, up) : Output(c.Gate.Length, c.Offsets[4]);
        try
        {
            Acc.GluBackward(c.Unit, gate, up, dy, dGate, dUp);
            GatedUnitTests.AssertGradients(c.Unit, c.Reference, c.Gate, c.Up, c.Dy,
                Inside(dgb, dGate, c + " (dGate)"), Inside(dub, dUp, c + " (dUp)"), c.ToString());
        }
        finally
        {
            DisposeAll(gb, ub, yb, dgb, dub);
        }
    }

    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void SoftmaxBackwardMatchesTheReference(SoftmaxBackwardCase c)
    {
        var (yb, y) = Place(c.Y, c.YOffset);
        var (dyb, dy) = Place(c.Dy, c.DyOffset);
        var (dxb, dx) = c.Target switch
        {
            Target.IntoFirstInput => (yb, y),
            Target.IntoSecondInput => (dyb, dy),
            _ => Output(c.Y.Length, c.DxOffset),
        };
        try
        {
            if (c.Log) Acc.LogSoftmaxBackward(y, dy, dx, c.Rows, c.Cols); else Acc.SoftmaxBackward(y, dy, dx, c.Rows, c.Cols);
            SoftmaxGradTests.AssertBackward(c.Y, c.Dy, Inside(dxb, dx, c.ToString()), c.Rows, c.Cols, c.Log, c.ToString());
        }
        finally
        {
            DisposeAll(yb, dyb, dxb);
        }
    }

    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void CrossEntropyMatchesTheReference(CrossEntropyCase c)
    {
        var options = new CrossEntropyOptions { LabelSmoothing = c.LabelSmoothing, GradientScale = c.GradientScale };
        var (zb, logits) = Place(c.Logits, c.Offset);
        var (tb, targets) = Place(c.Targets, c.Offset + 1, -7777);
        var (lb, losses) = Output(c.Rows, c.Offset + 2);
        var (gb, grad) = !c.Gradient ? (null, default) : c.InPlace ? (zb, logits) : Output(c.Logits.Length, c.Offset + 3);
        try
        {
            Acc.CrossEntropy(logits, targets, losses, grad, c.Rows, c.Cols, options);
            SoftmaxGradTests.AssertCrossEntropy(c.Logits, c.Targets, Inside(lb, losses, c + " (losses)"), gb is null ? null : Inside(gb, grad, c + " (gradient)"),
                c.Rows, c.Cols, options, c.ToString());
            Assert.That(Inside(tb, targets, -7777, c + " (targets)"), Is.EqualTo(c.Targets), "targets are read only");
        }
        finally
        {
            DisposeAll([zb, tb, lb, .. gb is null ? Array.Empty<IDisposable>() : [gb]]);
        }
    }

    /// <summary>
    /// bf16 storage: the op on bf16 buffers (at an offset, in place or not) stores exactly the float32 op's result on the
    /// widened inputs, rounded once to bf16 (nearest even); any NaN for a NaN (payloads aside).
    /// </summary>
    [FsCheck.NUnit.Property(MaxTest = Cases, Arbitrary = [typeof(Generators)], QuietOnSuccess = true)]
    public void Bf16IsTheFloatResultRoundedOnce(Bf16Case c)
    {
        float[] wideX = [.. c.X.Select(v => (float)v)], wideDy = [.. c.Dy.Select(v => (float)v)];
        var sentinel = (BFloat16)Sentinel;
        var (fx, fdy, fout) = (Acc.Allocate<float>(wideX), Acc.Allocate<float>(wideDy), Acc.Allocate<float>(wideX.Length));
        var (xb, x) = Place(c.X, c.Offset, sentinel);
        var (dyb, dy) = Place(c.Dy, c.Offset + 1, sentinel);
        var (ob, o) = c.InPlace ? (xb, x) : Place(Enumerable.Repeat(sentinel, c.X.Length).ToArray(), c.Offset + 2, sentinel);
        try
        {
            if (c.Backward)
            {
                Acc.ActivationBackward(c.Op.Activation, fx, fdy, fout);
                Acc.ActivationBackward(c.Op.Activation, x, dy, o);
            }
            else
            {
                Acc.Apply(c.Op.Activation, fx, fout);
                Acc.Apply(c.Op.Activation, x, o);
            }
            float[] expected = fout.ToArray();
            BFloat16[] actual = Inside(ob, o, sentinel, c.ToString());
            for (int i = 0; i < actual.Length; i++)
            {
                ushort e = Reference.StorageReference.RoundBFloat16(expected[i]);
                if (float.IsNaN(expected[i]) ? !actual[i].IsNaN : actual[i].Bits != e)
                    Assert.Fail($"{c}: element {i} (x = {wideX[i]:R}, dy = {wideDy[i]:R}): stored {(float)actual[i]:R}, float32 result {expected[i]:R} rounds to {(float)BFloat16.FromBits(e):R}");
            }
        }
        finally
        {
            DisposeAll(fx, fdy, fout, xb, dyb, ob);
        }
    }
}
