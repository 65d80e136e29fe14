using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>The double reference of the gated units' backward pass against central finite differences of its forward pass, and the unit type.</summary>
public sealed class GluReferenceTests
{
    static IEnumerable<TestCaseData> Ids =>
        from id in Enum.GetValues<GluId>()
        from p in id == GluId.ClampedSwiGlu ? new[] { (1.702, 7.0), (1.0, 2.5), (0.0, 3.0) } : new[] { (1.702, 7.0) }
        select new TestCaseData(id, p.Item1, p.Item2).SetArgDisplayNames(id.ToString(), $"alpha={p.Item1}", $"limit={p.Item2}");

    /// <summary>
    /// (f(x + h) - f(x - h)) / 2h with h = 1e-6 max(1, |x|): truncation O(h^2 f''') below 1e-10 here, rounding about
    /// 1e-16 |f| / h, so 1e-6 max(1, |f|) separates a right derivative from any wrong formula (off by 1e-2 and more).
    /// Points within 1e-3 of a kink (relu at 0, the clamp's edges) are skipped: there the one-sided slopes differ.
    /// </summary>
    [TestCaseSource(nameof(Ids))]
    public void BackwardMatchesCentralDifferences(GluId id, double alpha, double limit)
    {
        double[] ups = [-9, -2.5, -0.3, 0, 0.8, 4, 9];
        int checkedPoints = 0;
        for (double g = -14; g <= 14; g += 0.173)
            foreach (double u in ups)
            {
                bool nearKink = (id == GluId.ReGlu && Math.Abs(g) < 1e-3)
                    || (id == GluId.ClampedSwiGlu && (Math.Abs(g - limit) < 1e-3 || Math.Abs(Math.Abs(u) - limit) < 1e-3));
                if (nearKink) continue;
                double f(double a, double b) => ScalarReference.GluValue(id, a, b, alpha, limit);
                var (dGate, dUp) = ScalarReference.GluGradient(id, g, u, 1.0, alpha, limit);
                double hg = 1e-6 * Math.Max(1, Math.Abs(g)), hu = 1e-6 * Math.Max(1, Math.Abs(u));
                double fdGate = (f(g + hg, u) - f(g - hg, u)) / (2 * hg);
                double fdUp = (f(g, u + hu) - f(g, u - hu)) / (2 * hu);
                double tolerance = 1e-6 * Math.Max(1, Math.Abs(f(g, u)));
                Assert.That(dGate, Is.EqualTo(fdGate).Within(tolerance), $"{id} dGate at gate = {g}, up = {u}");
                Assert.That(dUp, Is.EqualTo(fdUp).Within(tolerance), $"{id} dUp at gate = {g}, up = {u}");
                checkedPoints++;
            }
        Assert.That(checkedPoints, Is.GreaterThan(500));
    }

    [Test]
    public void DerivativesAtKnownPointsAndLimits()
    {
        Assert.That(ScalarReference.GateDerivative(GluId.SwiGlu, 0), Is.EqualTo(0.5));
        Assert.That(ScalarReference.GateDerivative(GluId.GeGlu, 0), Is.EqualTo(0.5));
        Assert.That(ScalarReference.GateDerivative(GluId.GeGluTanh, 0), Is.EqualTo(0.5));
        Assert.That(ScalarReference.GateDerivative(GluId.ReGlu, 0), Is.EqualTo(0.0), "relu'(0) = 0, as PyTorch");
        Assert.That(ScalarReference.GateDerivative(GluId.ReGlu, 2), Is.EqualTo(1.0));
        foreach (GluId id in Enum.GetValues<GluId>())
        {
            Assert.That(ScalarReference.GateDerivative(id, double.PositiveInfinity), Is.EqualTo(1.0), $"{id}'(+inf)");
            Assert.That(ScalarReference.GateDerivative(id, double.NegativeInfinity), Is.EqualTo(0.0), $"{id}'(-inf)");
            Assert.That(ScalarReference.GateDerivative(id, double.NaN), Is.NaN, $"{id}'(NaN)");
        }
        // Clamped: y = g sigmoid(1.702 g) (u + 1); at (1, 1) dUp = sigmoid(1.702), dGate = 2 (sigmoid(z) + z sigmoid(z) sigmoid(-z)).
        var (dg, du) = ScalarReference.GluGradient(GluId.ClampedSwiGlu, 1, 1, 1);
        double s = 1 / (1 + Math.Exp(-1.702));
        Assert.That(du, Is.EqualTo(s).Within(1e-15));
        Assert.That(dg, Is.EqualTo(2 * (s + 1.702 * s * (1 - s))).Within(1e-14));
        Assert.That(ScalarReference.GluGradient(GluId.ClampedSwiGlu, 8, 1, 1).DGate, Is.Zero);
        Assert.That(ScalarReference.GluGradient(GluId.ClampedSwiGlu, 1, -8, 1).DUp, Is.Zero);
    }

    [Test]
    public void GatedUnitIsAValueWithValidatedParameters()
    {
        Assert.That(GatedUnit.ClampedSwiGlu(), Is.EqualTo(GatedUnit.ClampedSwiGlu(1.702f, 7f)));
        Assert.That(GatedUnit.ClampedSwiGlu().GetHashCode(), Is.EqualTo(GatedUnit.ClampedSwiGlu(1.702f, 7f).GetHashCode()));
        Assert.That(GatedUnit.ClampedSwiGlu(), Is.Not.EqualTo(GatedUnit.ClampedSwiGlu(1.702f, 6f)));
        Assert.That(GatedUnit.SwiGlu, Is.Not.EqualTo(GatedUnit.ClampedSwiGlu()));
        Assert.That(GatedUnit.SwiGlu.ToString(), Is.EqualTo("SwiGlu"));
        Assert.That(GatedUnit.ClampedSwiGlu(2f, 3f).ToString(), Does.Contain("ClampedSwiGlu").And.Contain("alpha=2").And.Contain("limit=3"));
        Assert.That(GatedUnit.All.Select(u => u.Kind), Is.EqualTo(Enum.GetValues<GatedUnitKind>().Where(k => k != GatedUnitKind.Custom)));
        Assert.That(GatedUnit.SwiGlu.Limit, Is.Zero);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity })
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => GatedUnit.ClampedSwiGlu(alpha: bad))!.ParamName, Is.EqualTo("alpha"));
        foreach (float bad in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => GatedUnit.ClampedSwiGlu(limit: bad))!.ParamName, Is.EqualTo("limit"));
    }
}
