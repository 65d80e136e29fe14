using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>A user's activation that is none of the built-ins: x^3 / (1 + x^2), with a parameter-free derivative.</summary>
public readonly struct RationalCube : IActivationFunction
{
    /// <inheritdoc/>
    public float Forward(float x) => x * x * x / (1f + x * x);

    /// <inheritdoc/>
    public float Derivative(float x)
    {
        float s = x * x, d = 1f + s;
        return s * (3f + s) / (d * d);
    }
}

/// <summary>A user's activation with a parameter (a field, passed as a kernel argument): a * x clamped to [-1, 1].</summary>
public readonly struct ScaledClamp(float a) : IActivationFunction
{
    /// <inheritdoc/>
    public float Forward(float x) { float v = a * x; return v < -1f ? -1f : v > 1f ? 1f : v; }

    /// <inheritdoc/>
    public float Derivative(float x) { float v = a * x; return v < -1f || v > 1f ? 0f : a; }
}

/// <summary>
/// A user-defined activation gets every kernel family (elementwise forward and backward, gated forward and backward in
/// every layout) on every accelerator: the CPU's SIMD path, and the ILGPU kernels on CUDA, OpenCL and ILGPU's CPU
/// accelerator.
/// </summary>
public sealed class CustomActivationTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    static double F(double x) => x * x * x / (1 + x * x);
    static double DF(double x) => x * x * (3 + x * x) / ((1 + x * x) * (1 + x * x));

    static readonly Activation Cube = Activation.Custom<RationalCube>();

    /// <summary>Finite inputs in [-range, range] (the user function is a rational function: no special values to test).</summary>
    static float[] Uniform(int n, int seed, float range)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1) * range)];
    }

    static double UlpOf(float v) => MathF.BitIncrement(MathF.Abs(v)) - MathF.Abs(v);

    [Test]
    public void ForwardAndBackward()
    {
        var x = Uniform(1000, 11, 1e3f);
        var dy = Uniform(1000, 12, 10f);
        var y = Run(x, x.Length, (xv, yv) => Acc.Apply(Cube, xv, yv));
        Ulp.AssertClose(x, y, x.Select(v => F(v)).ToArray(), 4, "forward");

        using var xb = Acc.Allocate<float>(x);
        using var dyb = Acc.Allocate<float>(dy);
        using var dx = Acc.Allocate<float>(x.Length);
        Acc.ActivationBackward(Cube, xb, dyb, dx);
        var got = dx.ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            double expected = dy[i] * DF(x[i]);
            Assert.That(got[i], Is.EqualTo(expected).Within(8 * Math.Max(UlpOf((float)expected), 1e-38)), $"dx at x={x[i]}");
        }
    }

    [Test]
    public void AParameterTravelsWithTheStruct()
    {
        float[] x = [-3f, -0.5f, 0f, 0.25f, 2f, float.NaN];
        var y = Run(x, x.Length, (xv, yv) => Acc.Apply(Activation.Custom(new ScaledClamp(0.75f)), xv, yv));
        Assert.That(y[..5], Is.EqualTo(new[] { -1f, -0.375f, 0f, 0.1875f, 1f }));
        Assert.That(Activation.Custom(new ScaledClamp(0.75f)), Is.EqualTo(Activation.Custom(new ScaledClamp(0.75f))));
        Assert.That(Activation.Custom(new ScaledClamp(0.75f)), Is.Not.EqualTo(Activation.Custom(new ScaledClamp(0.5f))));
    }

    [TestCase("separate")]
    [TestCase("halves")]
    [TestCase("interleaved")]
    public void GatedForwardAndBackward(string layoutName)
    {
        var layout = layoutName switch { "separate" => GluLayout.Separate, "halves" => GluLayout.Packed, _ => GluLayout.Interleaved };
        const int rows = 3, d = 37;
        var unit = GatedUnit.Custom<RationalCube>();
        var gate = Uniform(rows * d, 21, 50f);
        var up = Uniform(rows * d, 22, 50f);
        var dy = Uniform(rows * d, 23, 5f);
        var packed = new float[rows * 2 * d];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++)
            {
                int i = r * d + j;
                (int g, int u) = layout == GluLayout.Interleaved ? (2 * i, 2 * i + 1) : (r * 2 * d + j, r * 2 * d + d + j);
                packed[g] = gate[i];
                packed[u] = up[i];
            }

        using var yb = Acc.Allocate<float>(rows * d);
        using var dyb = Acc.Allocate<float>(dy);
        float[] y, dGate = new float[rows * d], dUp = new float[rows * d];
        if (layout == GluLayout.Separate)
        {
            using var gb = Acc.Allocate<float>(gate);
            using var ub = Acc.Allocate<float>(up);
            using var dg = Acc.Allocate<float>(rows * d);
            using var du = Acc.Allocate<float>(rows * d);
            Acc.Glu(unit, gb, ub, yb);
            Acc.GluBackward(unit, gb, ub, dyb, dg, du);
            y = yb.ToArray();
            dGate = dg.ToArray();
            dUp = du.ToArray();
        }
        else
        {
            var packing = layout == GluLayout.Interleaved ? GluPacking.Interleaved : GluPacking.Halves;
            using var pb = Acc.Allocate<float>(packed);
            using var dp = Acc.Allocate<float>(packed.Length);
            Acc.GluPacked(unit, pb, yb, rows, d, packing);
            Acc.GluPackedBackward(unit, pb, dyb, dp, rows, d, packing);
            y = yb.ToArray();
            var grads = dp.ToArray();
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < d; j++)
                {
                    int i = r * d + j;
                    (int g, int u) = layout == GluLayout.Interleaved ? (2 * i, 2 * i + 1) : (r * 2 * d + j, r * 2 * d + d + j);
                    dGate[i] = grads[g];
                    dUp[i] = grads[u];
                }
        }
        for (int i = 0; i < rows * d; i++)
        {
            double f = F(gate[i]);
            double expectedY = f * up[i], expectedDGate = dy[i] * up[i] * DF(gate[i]), expectedDUp = dy[i] * f;
            Assert.That(y[i], Is.EqualTo(expectedY).Within(8 * UlpOf((float)Math.Abs(f)) * Math.Abs(up[i]) + 1e-30), $"y[{i}]");
            Assert.That(dUp[i], Is.EqualTo(expectedDUp).Within(8 * UlpOf((float)Math.Abs(f)) * Math.Abs(dy[i]) + 1e-30), $"dUp[{i}]");
            Assert.That(dGate[i], Is.EqualTo(expectedDGate).Within(16 * UlpOf((float)Math.Abs(DF(gate[i]))) * Math.Abs(dy[i] * up[i]) + 1e-30), $"dGate[{i}]");
        }
    }
}
