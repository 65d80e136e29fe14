using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// The reference derivatives (<see cref="ScalarReference.Derivative"/>, the oracle of the backward tests) against central
/// finite differences of the reference activations in double, and against published values.
/// </summary>
public class ReferenceDerivativeTests
{
    /// <summary>Every activation id with parameters that exercise them (and the defaults).</summary>
    static IEnumerable<TestCaseData> Ops()
    {
        foreach (ActivationId id in Enum.GetValues<ActivationId>())
            yield return new TestCaseData(id, 0.01, 1.0, 20.0).SetArgDisplayNames(id.ToString(), "defaults");
        yield return new TestCaseData(ActivationId.LeakyRelu, 0.2, 0.0, 0.0).SetArgDisplayNames("LeakyRelu", "alpha=0.2");
        yield return new TestCaseData(ActivationId.Elu, 0.5, 0.0, 0.0).SetArgDisplayNames("Elu", "alpha=0.5");
        yield return new TestCaseData(ActivationId.Swish, 0.0, 1.5, 0.0).SetArgDisplayNames("Swish", "beta=1.5");
        yield return new TestCaseData(ActivationId.Softplus, 0.0, 2.0, 10.0).SetArgDisplayNames("Softplus", "beta=2,threshold=10");
    }

    /// <summary>Where the activation has a kink (or softplus its threshold), for the given parameters.</summary>
    static double[] Kinks(ActivationId id, double beta, double threshold) => id switch
    {
        ActivationId.Relu or ActivationId.LeakyRelu or ActivationId.Elu or ActivationId.Selu => [0],
        ActivationId.Relu6 => [0, 6],
        ActivationId.HardSigmoid or ActivationId.HardSwish => [-3, 3],
        ActivationId.Softplus => [threshold / beta],
        _ => [],
    };

    /// <summary>
    /// Central differences (f(x + h) - f(x - h)) / 2h with h = 1e-5 (1 + |x|) over x in [-12, 12], away from kinks (2h).
    /// Truncation error is h^2 |f'''| / 6 &lt;= 2.8e-9 (|f'''| &lt;= 1 for these functions on this range, x = 12 giving
    /// h = 1.3e-4), rounding error about 1e-16 |f| / h &lt;= 1e-10; the bound 1e-7 (1 + |f'|) is far below any formula
    /// error (a wrong factor or term is O(1e-2) or more somewhere on the grid) and far above the difference's own error.
    /// </summary>
    [TestCaseSource(nameof(Ops))]
    public void MatchesCentralDifferences(ActivationId id, double alpha, double beta, double threshold)
    {
        double[] kinks = Kinks(id, beta, threshold);
        for (double x = -12; x <= 12; x += 0.0137)
        {
            double h = 1e-5 * (1 + Math.Abs(x));
            if (kinks.Any(k => Math.Abs(x - k) < 2 * h)) continue;
            double difference = (ScalarReference.Evaluate(id, x + h, alpha, beta, threshold) - ScalarReference.Evaluate(id, x - h, alpha, beta, threshold)) / (2 * h);
            double derivative = ScalarReference.Derivative(id, x, alpha, beta, threshold);
            Assert.That(derivative, Is.EqualTo(difference).Within(1e-7 * (1 + Math.Abs(derivative))), $"{id} at x = {x:R}");
        }
    }

    /// <summary>The output form is the input form at y = f(x) (double: agreement to rounding, 1e-12 relative).</summary>
    [TestCase(ActivationId.Sigmoid, 0.0)]
    [TestCase(ActivationId.Tanh, 0.0)]
    [TestCase(ActivationId.Relu, 0.0)]
    [TestCase(ActivationId.Relu6, 0.0)]
    [TestCase(ActivationId.LeakyRelu, 0.2)]
    [TestCase(ActivationId.Elu, 0.5)]
    [TestCase(ActivationId.Selu, 0.0)]
    public void OutputFormEqualsInputForm(ActivationId id, double alpha)
    {
        for (double x = -8; x <= 8; x += 0.01)
        {
            double y = ScalarReference.Evaluate(id, x, alpha, 0, 0);
            double expected = ScalarReference.Derivative(id, x, alpha, 0, 0);
            Assert.That(ScalarReference.OutputDerivative(id, y, alpha), Is.EqualTo(expected).Within(1e-12 + 1e-8 * Math.Abs(expected)), $"{id} at x = {x:R}");
        }
    }

    [Test]
    public void PublishedValues()
    {
        Assert.Multiple(() =>
        {
            Assert.That(ScalarReference.SigmoidDerivative(0), Is.EqualTo(0.25), "sigmoid'(0) = 1/4");
            for (double x = -20; x <= 20; x += 0.001)
                Assert.That(ScalarReference.SigmoidDerivative(x), Is.LessThanOrEqualTo(0.25), "1/4 is sigmoid''s maximum");
            Assert.That(ScalarReference.TanhDerivative(0), Is.EqualTo(1.0), "tanh'(0) = 1");
            Assert.That(ScalarReference.Derivative(ActivationId.Relu, 0, 0, 0, 0), Is.EqualTo(0.0), "relu'(0) = 0 (PyTorch)");
            Assert.That(ScalarReference.GeluDerivative(0), Is.EqualTo(0.5), "GELU'(0) = Phi(0)");
            // GELU'(x) = Phi(x) + x phi(x): Phi(1) = 0.841344746068542948585, phi(1) = 0.241970724519143349798.
            Assert.That(ScalarReference.GeluDerivative(1), Is.EqualTo(0.841344746068542948585 + 0.241970724519143349798).Within(1e-15));
            // Phi(-2) = 0.022750131948179207200, phi(2) = 0.053990966513188051949.
            Assert.That(ScalarReference.GeluDerivative(-2), Is.EqualTo(0.022750131948179207200 - 2 * 0.053990966513188051949).Within(1e-15));
            // Large |x| keeps relative accuracy: tanh'(20) = sech^2(20) = 1.6993417021166355e-17 (4 e^-40 / (1 + e^-40)^2).
            Assert.That(ScalarReference.TanhDerivative(20), Is.EqualTo(4 * Math.Exp(-40)).Within(1e-15 * 4 * Math.Exp(-40)));
            Assert.That(ScalarReference.SigmoidDerivative(-50), Is.EqualTo(Math.Exp(-50)).Within(1e-15 * Math.Exp(-50)));
        });
    }

    [Test]
    public void PReluBackwardSumsEachChannelsNegativeSide()
    {
        float[] x = [1f, -2f, -3f, 4f, -5f, -6f];
        float[] alpha = [0.1f, 0.2f, 0.3f];
        float[] dy = [1f, 2f, 3f, 4f, 5f, 6f];
        var dx = new float[6];
        var dAlpha = new float[3];
        ScalarReference.PReluBackward(x, alpha, dy, dx, dAlpha);
        Assert.That(dx, Is.EqualTo(new[] { 1f, 0.2f * 2f, 0.3f * 3f, 4f, 0.2f * 5f, 0.3f * 6f }));
        Assert.That(dAlpha, Is.EqualTo(new[] { 0f, -4f - 25f, -9f - 36f }));
    }
}
