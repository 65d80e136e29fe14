using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>Gated units (both layouts) and PReLU on every accelerator, against the double reference.</summary>
public sealed class GatedUnitTests(AcceleratorKind kind) : AcceleratorTest(kind)
{
    /// <summary>act(gate) * up rounds twice at most beside the activation's own error.</summary>
    const double GluUlp = OpTable.ElementwiseUlp + 1;

    static IEnumerable<TestCaseData> Units => OpTable.GatedUnits.Select(u => new TestCaseData(u.Unit, u.Reference).SetArgDisplayNames(u.Unit.ToString()));

    static double Act(GluId id, float gate) => id switch
    {
        GluId.SwiGlu => ScalarReference.Silu(gate),
        GluId.GeGlu => ScalarReference.Gelu(gate),
        GluId.GeGluTanh => ScalarReference.GeluTanh(gate),
        _ => ScalarReference.Relu(gate),
    };

    /// <summary>
    /// act(gate) * up within <see cref="GluUlp"/>, except where act(gate) itself is below the smallest normal
    /// float: the activation may flush it (DESIGN.md), so there the error allowed is |up| * 2^-126, and an
    /// infinite up may give NaN (0 * inf) as it does in any float pipeline.
    /// </summary>
    internal static void AssertGlu(GluId id, float[] gate, float[] up, float[] actual, string what)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            double act = Act(id, gate[i]);
            double expected = act * up[i];
            if (Ulp.Distance(actual[i], expected) <= GluUlp) continue;
            bool actTiny = Math.Abs(act) < 1.17549435e-38;
            if (actTiny && (float.IsInfinity(up[i]) ? float.IsNaN(actual[i]) || float.IsInfinity(actual[i]) || actual[i] == 0
                                                   : Math.Abs(actual[i] - expected) <= Math.Abs(up[i]) * 1.17549435e-38)) continue;
            Assert.Fail($"{what}: index {i}: gate = {gate[i]:R}, up = {up[i]:R}, got {actual[i]:R}, expected {(float)expected:R} ({Ulp.Distance(actual[i], expected)} ulp)");
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
            AssertGlu(id, gate, up, y.ToArray(), $"{unit} n={n}");
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
            AssertGlu(id, gate, up, g.ToArray(), $"{unit} into gate");
        }
        using (var g = Acc.Allocate<float>(gate))
        using (var u = Acc.Allocate<float>(up))
        {
            Acc.Glu(unit, g, u, u);
            AssertGlu(id, gate, up, u.ToArray(), $"{unit} into up");
        }
    }

    [TestCaseSource(nameof(Units))]
    public void PackedRowsMatchSeparateHalves(GatedUnit unit, GluId id)
    {
        foreach (var (rows, d) in new[] { (1, 1), (3, 5), (7, 64), (2, 4099), (33, 1000), (1, 11008) })
        {
            var packed = TestData.Values(rows * 2 * d, seed: rows * d);
            var gate = new float[rows * d];
            var up = new float[rows * d];
            for (int r = 0; r < rows; r++)
            {
                Array.Copy(packed, r * 2 * d, gate, r * d, d);
                Array.Copy(packed, r * 2 * d + d, up, r * d, d);
            }
            using var p = Acc.Allocate<float>(packed);
            using var y = Acc.Allocate<float>(rows * d);
            Acc.GluPacked(unit, p, y, rows, d);
            AssertGlu(id, gate, up, y.ToArray(), $"{unit} packed [{rows} x 2*{d}]");
        }
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
