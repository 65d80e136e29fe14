using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>Gated units (every unit, every layout, forward and backward) and PReLU on every accelerator, against the double reference.</summary>
public sealed class GatedUnitTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    /// <summary>act(gate) * up rounds twice at most beside the activation's own error; the clamped unit's up + 1 once more.</summary>
    const double GluUlp = OpTable.ElementwiseUlp + 1;

    /// <summary>
    /// dGate = dy up act'(gate): act' is a sum of two terms (sigmoid(z) and z sigmoid(z) sigmoid(-z); Phi(x) and x phi(x)) that
    /// cancel near its root, so the bound is relative (<see cref="BackwardUlp"/>) or absolute against the product's other
    /// factors, <see cref="BackwardAbsolute"/> |dy up| (|act'| &lt;= 1.2, each term a few ulp of at most 1.2).
    /// </summary>
    const double BackwardUlp = 8, BackwardAbsolute = 1.0 / (1 << 21);

    const double SmallestNormal = 1.17549435e-38;

    static IEnumerable<TestCaseData> Units => OpTable.GatedUnits.Select(u => new TestCaseData(u.Unit, u.Reference).SetArgDisplayNames(u.Unit.ToString()));

    /// <summary>Every unit in every layout: null is separate buffers.</summary>
    static IEnumerable<TestCaseData> UnitsAndLayouts =>
        from u in OpTable.GatedUnits
        from layout in new GluPacking?[] { null, GluPacking.Halves, GluPacking.Interleaved }
        select new TestCaseData(u.Unit, u.Reference, layout).SetArgDisplayNames(u.Unit.ToString(), layout?.ToString() ?? "Separate");

    static readonly (int Rows, int D)[] Shapes = [(1, 1), (1, 3), (3, 17), (2, 1000), (1, 1031), (5, 64), (33, 7), (4, 4099)];

    /// <summary>act(gate) (the clamped unit: swish of the clamped gate) and the factor it multiplies (up, or clamp(up) + 1).</summary>
    static (double Act, double Factor) Parts(GatedUnit unit, GluId id, float gate, float up)
    {
        double act = ScalarReference.GluGradient(id, gate, 0, 1, unit.Alpha, unit.Limit).DUp;
        double factor = unit.Kind == GatedUnitKind.ClampedSwiGlu ? Math.Clamp((double)up, -unit.Limit, unit.Limit) + 1 : up;
        return (act, float.IsNaN(up) ? double.NaN : factor);
    }

    /// <summary>
    /// y within <see cref="GluUlp"/> (+1 clamped), except where act(gate) itself is below the smallest normal float: the
    /// activation may flush it (DESIGN.md), so there the error allowed is |factor| * 2^-126, and an infinite factor may
    /// give NaN (0 * inf) as it does in any float pipeline.
    /// </summary>
    internal static void AssertGlu(GatedUnit unit, GluId id, float[] gate, float[] up, float[] actual, string what)
    {
        double ulp = GluUlp + (unit.Kind == GatedUnitKind.ClampedSwiGlu ? 1 : 0);
        for (int i = 0; i < gate.Length; i++)
        {
            double expected = ScalarReference.GluValue(id, gate[i], up[i], unit.Alpha, unit.Limit);
            if (Ulp.Distance(actual[i], expected) <= ulp) continue;
            var (act, factor) = Parts(unit, id, gate[i], up[i]);
            if (Math.Abs(act) < SmallestNormal && (double.IsInfinity(factor) ? float.IsNaN(actual[i]) || float.IsInfinity(actual[i]) || actual[i] == 0
                                                   : Math.Abs(actual[i] - expected) <= Math.Abs(factor) * SmallestNormal)) continue;
            Assert.Fail($"{what}: index {i}: gate = {gate[i]:R}, up = {up[i]:R}, got {actual[i]:R}, expected {(float)expected:R} ({Ulp.Distance(actual[i], expected)} ulp)");
        }
    }

    /// <summary>
    /// dGate within <see cref="BackwardUlp"/> or <see cref="BackwardAbsolute"/> |dy factor| (where act'(gate) is below the
    /// smallest normal and dy factor infinite in float, NaN as with flushing); dUp as y (dy act(gate)).
    /// </summary>
    internal static void AssertGradients(GatedUnit unit, GluId id, float[] gate, float[] up, float[] dy, float[] dGate, float[] dUp, string what)
    {
        double ulp = GluUlp + (unit.Kind == GatedUnitKind.ClampedSwiGlu ? 1 : 0);
        for (int i = 0; i < gate.Length; i++)
        {
            var (eg, eu) = ScalarReference.GluGradient(id, gate[i], up[i], dy[i], unit.Alpha, unit.Limit);
            var (act, factor) = Parts(unit, id, gate[i], up[i]);
            double scale = Math.Abs(dy[i] * factor);
            bool gateOk = Ulp.Distance(dGate[i], eg) <= BackwardUlp
                || (double.IsFinite(eg) && float.IsFinite(dGate[i]) && Math.Abs(dGate[i] - eg) <= scale * BackwardAbsolute + SmallestNormal)
                // act'(gate) below the smallest normal may flush to 0, and 0 * a dy factor infinite in float (dy up may
                // overflow there though finite in double) is NaN.
                // dy factor beyond float range: the float product overflows before act'(gate) scales it back (any float32
                // pipeline that forms dy up first does); accepted as NaN or an infinity of the right sign.
                || (float.IsInfinity((float)scale) && (float.IsNaN(dGate[i]) || float.IsInfinity(dGate[i]) && (eg == 0 || Math.Sign(dGate[i]) == Math.Sign(eg))))
                || (float.IsInfinity((float)scale) && Math.Abs(ScalarReference.GateDerivative(id, Math.Min(gate[i], unit.Limit > 0 ? unit.Limit : double.PositiveInfinity), unit.Alpha)) < SmallestNormal);
            // dUp = dy act(gate), as y = act(gate) up in AssertGlu: an act below the smallest normal may flush, so the error
            // allowed is |dy| 2^-126, and an infinite dy may give NaN (inf * 0).
            bool upOk = Ulp.Distance(dUp[i], eu) <= ulp
                || (Math.Abs(act) < SmallestNormal && (float.IsInfinity(dy[i])
                    ? float.IsNaN(dUp[i]) || float.IsInfinity(dUp[i]) || dUp[i] == 0
                    : float.IsFinite(dUp[i]) && Math.Abs(dUp[i] - eu) <= Math.Abs(dy[i]) * SmallestNormal));
            if (!gateOk || !upOk)
                Assert.Fail($"{what}: index {i}: gate = {gate[i]:R}, up = {up[i]:R}, dy = {dy[i]:R}: dGate {dGate[i]:R} vs {(float)eg:R} " +
                            $"({Ulp.Distance(dGate[i], eg)} ulp), dUp {dUp[i]:R} vs {(float)eu:R} ({Ulp.Distance(dUp[i], eu)} ulp)");
        }
    }

    /// <summary>Index of (r, j)'s gate and up in a packed row-major [rows, 2d] tensor.</summary>
    static (int Gate, int Up) At(GluPacking packing, int r, int j, int d)
        => packing == GluPacking.Interleaved ? (r * 2 * d + 2 * j, r * 2 * d + 2 * j + 1) : (r * 2 * d + j, r * 2 * d + d + j);

    static float[] Pack(GluPacking packing, float[] gate, float[] up, int rows, int d)
    {
        var packed = new float[2 * rows * d];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++)
            {
                var (g, u) = At(packing, r, j, d);
                (packed[g], packed[u]) = (gate[r * d + j], up[r * d + j]);
            }
        return packed;
    }

    /// <summary>Uploads <paramref name="data"/> at element <paramref name="offset"/> of a larger buffer; returns the buffer and the view.</summary>
    (DeviceBuffer<float> Buffer, BufferView<float> View) At(float[] data, int offset)
    {
        var buffer = Acc.Allocate<float>(new float[offset].Concat(data).Concat(new float[3]).ToArray());
        return (buffer, buffer.Slice(offset, data.Length));
    }

    float[] Forward(GatedUnit unit, GluPacking? packing, float[] gate, float[] up, int rows, int d, int offset)
    {
        var (yb, y) = At(new float[rows * d], offset + 1);
        using var _ = yb;
        if (packing is not GluPacking p)
        {
            var (gb, g) = At(gate, offset);
            var (ub, u) = At(up, offset + 2);
            using (gb) using (ub) Acc.Glu(unit, g, u, y);
        }
        else
        {
            var (pb, pv) = At(Pack(p, gate, up, rows, d), offset);
            using (pb) Acc.GluPacked(unit, pv, y, rows, d, p);
        }
        return y.ToArray();
    }

    (float[] DGate, float[] DUp) Backward(GatedUnit unit, GluPacking? packing, float[] gate, float[] up, float[] dy, int rows, int d, int offset, bool inPlace)
    {
        var (dyb, dyv) = At(dy, offset + 3);
        using var _ = dyb;
        if (packing is not GluPacking p)
        {
            var (gb, g) = At(gate, offset);
            var (ub, u) = At(up, offset + 2);
            var (dgb, dg) = inPlace ? (gb, g) : At(new float[gate.Length], offset + 1);
            var (dub, du) = inPlace ? (ub, u) : At(new float[gate.Length], offset);
            using (gb) using (ub) using (dgb) using (dub)
            {
                Acc.GluBackward(unit, g, u, dyv, dg, du);
                return (dg.ToArray(), du.ToArray());
            }
        }
        var (pb, pv) = At(Pack(p, gate, up, rows, d), offset);
        var (dpb, dp) = inPlace ? (pb, pv) : At(new float[2 * rows * d], offset + 1);
        using (pb) using (dpb)
        {
            Acc.GluPackedBackward(unit, pv, dyv, dp, rows, d, p);
            float[] all = dp.ToArray(), dGate = new float[rows * d], dUp = new float[rows * d];
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < d; j++)
                {
                    var (gi, ui) = At(p, r, j, d);
                    (dGate[r * d + j], dUp[r * d + j]) = (all[gi], all[ui]);
                }
            return (dGate, dUp);
        }
    }

    [TestCaseSource(nameof(Units))]
    public void SeparateBuffersEveryLengthAndLarge(GatedUnit unit, GluId id)
    {
        foreach (int n in Enumerable.Range(0, 140).Concat([1000, 4099, 1 << 20]))
        {
            var gate = TestData.Values(n, seed: n);
            var up = TestData.Values(n, seed: n + 99);
            using var g = Acc.Allocate<float>(gate);
            using var u = Acc.Allocate<float>(up);
            using var y = Acc.Allocate<float>(n);
            Acc.Glu(unit, g, u, y);
            AssertGlu(unit, id, gate, up, y.ToArray(), $"{unit} n={n}");
        }
    }

    [TestCaseSource(nameof(Units))]
    public void InPlaceIntoGateOrUp(GatedUnit unit, GluId id)
    {
        var gate = TestData.Values(333, seed: 1);
        var up = TestData.Values(333, seed: 2);
        using (var g = Acc.Allocate<float>(gate))
        using (var u = Acc.Allocate<float>(up))
        {
            Acc.Glu(unit, g, u, g);
            AssertGlu(unit, id, gate, up, g.ToArray(), $"{unit} into gate");
        }
        using (var g = Acc.Allocate<float>(gate))
        using (var u = Acc.Allocate<float>(up))
        {
            Acc.Glu(unit, g, u, u);
            AssertGlu(unit, id, gate, up, u.ToArray(), $"{unit} into up");
        }
    }

    /// <summary>Every layout over rows x d (odd d, d = 1, long rows), views at odd offsets, against the reference.</summary>
    [TestCaseSource(nameof(UnitsAndLayouts))]
    public void ForwardEveryLayout(GatedUnit unit, GluId id, GluPacking? packing)
    {
        foreach (var (rows, d) in Shapes)
            foreach (int offset in new[] { 0, 3 })
            {
                var gate = TestData.Values(rows * d, seed: rows * d + offset);
                var up = TestData.Values(rows * d, seed: rows + d);
                AssertGlu(unit, id, gate, up, Forward(unit, packing, gate, up, rows, d, offset), $"{unit} {packing} [{rows} x {d}] +{offset}");
            }
    }

    /// <summary>The backward pass in every layout, out of place and in place (dGate = gate, dUp = up; dPacked = packed).</summary>
    [TestCaseSource(nameof(UnitsAndLayouts))]
    public void BackwardEveryLayout(GatedUnit unit, GluId id, GluPacking? packing)
    {
        foreach (var (rows, d) in Shapes)
            foreach (bool inPlace in new[] { false, true })
            {
                int n = rows * d;
                var gate = TestData.Values(n, seed: n + 7);
                var up = TestData.Logits(n, seed: n + 8, scale: 10);
                var dy = TestData.Logits(n, seed: n + 9, scale: 3);
                var (dGate, dUp) = Backward(unit, packing, gate, up, dy, rows, d, inPlace ? 0 : 1, inPlace);
                AssertGradients(unit, id, gate, up, dy, dGate, dUp, $"{unit} {packing?.ToString() ?? "Separate"} [{rows} x {d}]{(inPlace ? " in place" : "")}");
            }
    }

    /// <summary>
    /// Special values on the gate (+-0, +-inf, NaN, subnormals, huge) against up values at and beyond the clamp (+-limit,
    /// the floats next to it, +-inf, NaN): the limits of every derivative and the clamp masks.
    /// </summary>
    [TestCaseSource(nameof(Units))]
    public void SpecialValuesForwardAndBackward(GatedUnit unit, GluId id)
    {
        float limit = unit.Limit > 0 ? unit.Limit : 7f;
        float[] gates = [.. TestData.Special, limit, MathF.BitIncrement(limit), MathF.BitDecrement(limit), -limit, 1.5f * limit];
        float[] ups = [0f, -0f, 1f, -1f, -3f, limit, -limit, MathF.BitIncrement(limit), -MathF.BitIncrement(limit), 2 * limit, float.PositiveInfinity,
                       float.NegativeInfinity, float.NaN, 1e30f];
        var gate = (from g in gates from u in ups select g).ToArray();
        var up = (from g in gates from u in ups select u).ToArray();
        var dy = gate.Select((_, i) => i % 3 == 0 ? -0.5f : 1f).ToArray();
        foreach (var packing in new GluPacking?[] { null, GluPacking.Interleaved })
        {
            AssertGlu(unit, id, gate, up, Forward(unit, packing, gate, up, 1, gate.Length, 1), $"{unit} {packing} special");
            var (dGate, dUp) = Backward(unit, packing, gate, up, dy, 1, gate.Length, 1, inPlace: false);
            AssertGradients(unit, id, gate, up, dy, dGate, dUp, $"{unit} {packing} special");
        }
    }

    /// <summary>The clamp itself: beyond the limit the output is the limit's, and the gradient through the clamped input is 0.</summary>
    [Test]
    public void ClampedSwiGluClampsAndStopsTheGradient()
    {
        var unit = GatedUnit.ClampedSwiGlu(1.702f, 7f);
        float[] gate = [100f, 7f, float.PositiveInfinity, 1f, 1f, 1f];
        float[] up = [1f, 1f, 1f, 100f, -100f, float.NegativeInfinity];
        float[] dy = [1f, 1f, 1f, 1f, 1f, 1f];
        var y = Forward(unit, null, gate, up, 1, 6, 0);
        Assert.That(y[0], Is.EqualTo(y[1]), "gate 100 is gate 7");
        Assert.That(y[2], Is.EqualTo(y[1]), "gate +inf is gate 7");
        Assert.That(y[3], Is.EqualTo(Forward(unit, null, [1f], [7f], 1, 1, 0)[0]), "up 100 is up 7");
        Assert.That(y[4], Is.EqualTo(Forward(unit, null, [1f], [-7f], 1, 1, 0)[0]), "up -100 is up -7");
        var (dGate, dUp) = Backward(unit, null, gate, up, dy, 1, 6, 0, inPlace: false);
        Assert.That(dGate[0], Is.Zero, "no gradient through a clamped gate");
        Assert.That(dGate[1], Is.GreaterThan(0.5f), "the gradient passes at the limit itself");
        Assert.That(dGate[2], Is.Zero);
        Assert.That(dUp[3], Is.Zero, "no gradient through a clamped up");
        Assert.That(dUp[4], Is.Zero);
        Assert.That(dUp[5], Is.Zero);
    }

    [Test]
    public void PReluPerChannel()
    {
        foreach (var (rows, channels) in new[] { (1, 1), (5, 1), (4, 3), (100, 64), (7, 1000), (1, 17) })
        {
            var x = TestData.Values(rows * channels, seed: channels);
            var alpha = TestData.Logits(channels, seed: 5, scale: 0.5f);
            var expected = new float[x.Length];
            ScalarReference.PRelu(x, alpha, expected);
            using var xb = Acc.Allocate<float>(x);
            using var ab = Acc.Allocate<float>(alpha);
            using var y = Acc.Allocate<float>(x.Length);
            Acc.PRelu(xb, ab, y);
            Ulp.AssertClose(x, y.ToArray(), expected.Select(v => (double)v).ToArray(), 0.5, $"prelu [{rows} x {channels}]");
            Acc.PRelu(xb, ab, xb);
            Ulp.AssertClose(x, xb.ToArray(), expected.Select(v => (double)v).ToArray(), 0.5, $"prelu in place [{rows} x {channels}]");
        }
    }
}
