using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// The double reference's analytic gradients against central finite differences in double: the backward passes are
/// vector-Jacobian products of (log-)softmax, the cross-entropy gradient is d loss / d z. With h = 1e-5 the central
/// difference errs by O(h^2 f''') ~ 1e-10 plus rounding 1e-16 / h ~ 1e-11, so 1e-7 absolute is a generous bound.
/// </summary>
public sealed class SoftmaxGradReferenceTests
{
    const double H = 1e-5, Tolerance = 1e-7;

    static double[] Row(int n, int seed, double scale)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (random.NextDouble() * 2 - 1) * scale).ToArray();
    }

    /// <summary>d/dz_i of f(z) by central differences.</summary>
    static double[] Numeric(double[] z, Func<double[], double> f)
    {
        var g = new double[z.Length];
        for (int i = 0; i < z.Length; i++)
        {
            double keep = z[i];
            z[i] = keep + H;
            double up = f(z);
            z[i] = keep - H;
            double down = f(z);
            z[i] = keep;
            g[i] = (up - down) / (2 * H);
        }
        return g;
    }

    [Test]
    public void BackwardIsTheVectorJacobianProduct([Values(1, 2, 7, 33)] int cols, [Values] bool log)
    {
        double[] z = Row(cols, cols, 4), dy = Row(cols, cols + 1, 2);
        var y = new double[cols];
        ScalarReference.SoftmaxRow(z, y, safe: false, log);
        var dx = new double[cols];
        ScalarReference.SoftmaxBackwardRow(y, dy, dx, log);
        double[] numeric = Numeric(z, v =>
        {
            var out_ = new double[cols];
            ScalarReference.SoftmaxRow(v, out_, safe: false, log);
            return out_.Select((o, j) => o * dy[j]).Sum();
        });
        Assert.That(dx, Is.EqualTo(numeric).Within(Tolerance));
    }

    [Test]
    public void CrossEntropyGradientIsTheLossDerivative([Values(1, 2, 7, 33)] int cols, [Values(0.0, 0.1, 1.0)] double eps)
    {
        double[] z = Row(cols, 3 * cols, 5);
        int target = cols / 2;
        var g = new double[cols];
        double loss = ScalarReference.CrossEntropyRow(z, target, -100, eps, 1.0, g);
        Assert.That(loss, Is.GreaterThanOrEqualTo(0).Or.LessThan(0), "a finite loss");
        double[] numeric = Numeric(z, v => ScalarReference.CrossEntropyRow(v, target, -100, eps, 1.0, new double[cols]));
        Assert.That(g, Is.EqualTo(numeric).Within(Tolerance));
        var scaled = new double[cols];
        ScalarReference.CrossEntropyRow(z, target, -100, eps, -0.5, scaled);
        Assert.That(scaled, Is.EqualTo(g.Select(v => -0.5 * v).ToArray()).Within(1e-15), "the gradient scale multiplies the gradient");
    }

    /// <summary>PyTorch's values: cross_entropy([[1, 2, 3]], [0]) = 2.4076059644; with label_smoothing 0.1: 2.3076059644.</summary>
    [Test]
    public void CrossEntropyMatchesPyTorchsDefinition()
    {
        var g = new double[3];
        Assert.That(ScalarReference.CrossEntropyRow([1, 2, 3], 0, -100, 0, 1, g), Is.EqualTo(2.4076059644443806).Within(1e-12));
        Assert.That(ScalarReference.CrossEntropyRow([1, 2, 3], 0, -100, 0.1, 1, g), Is.EqualTo(2.3076059644443806).Within(1e-12));
        Assert.That(ScalarReference.CrossEntropyRow([1, 2, 3], -100, -100, 0.1, 1, g), Is.Zero);
        Assert.That(g, Is.All.Zero, "an ignored row has no gradient");
        Assert.That(ScalarReference.CrossEntropyRow([1, 2, 3], 3, -100, 0, 1, g), Is.NaN, "a target out of range");
        Assert.That(g, Is.All.NaN);
    }

    /// <summary>A masked softmax is the softmax of the unmasked entries; a fully masked row is NaN, or 0 / -inf when safe.</summary>
    [Test]
    public void MaskedSoftmaxIsTheSoftmaxOfTheRest()
    {
        float[] x = [1f, 2f, 3f, 4f, 5f, 6f];
        float[] mask = [0f, float.NegativeInfinity, 0f];
        var y = new float[6];
        ScalarReference.Softmax(x, y, 2, 3, 2f, mask, safe: false, log: false);
        var sub = new float[2];
        ScalarReference.Softmax([2f, 6f], sub, 1, 2);
        Assert.That(y[..3], Is.EqualTo(new[] { sub[0], 0f, sub[1] }).Within(1e-7));
        ScalarReference.Softmax(x, y, 2, 3, 1f, [float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity, 0f, 0f, 0f], safe: true, log: true);
        Assert.That(y[..3], Is.All.EqualTo(float.NegativeInfinity));
        ScalarReference.Softmax(x, y, 2, 3, 1f, [float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity], safe: false, log: false);
        Assert.That(y, Is.All.NaN);
    }
}
