using GpuActivations.Reference;

namespace GpuActivations.Tests;

/// <summary>One row of the op table: the activation, its reference in double, and the tolerance in ulp.</summary>
public sealed record ActivationCase(Activation Activation, ActivationId Reference, double MaxUlp)
{
    /// <summary>The reference value in double for one input.</summary>
    public double Expected(float x) => ScalarReference.Evaluate(Reference, x, Activation.Alpha, Activation.Beta, Activation.Threshold);

    /// <summary>The reference over a whole input.</summary>
    public double[] Expected(ReadOnlySpan<float> x)
    {
        var result = new double[x.Length];
        for (int i = 0; i < x.Length; i++) result[i] = Expected(x[i]);
        return result;
    }

    /// <summary>Names the test case.</summary>
    public override string ToString() => Activation.ToString();
}

/// <summary>The table every elementwise test runs over: adding an activation is adding a row here.</summary>
public static class OpTable
{
    /// <summary>DESIGN.md's bound: within 4 ulp of the double reference rounded to float.</summary>
    public const double ElementwiseUlp = 4;

    /// <summary>Every activation, with non-default parameters where they exist so the parameters are exercised.</summary>
    public static IReadOnlyList<ActivationCase> Activations { get; } =
    [
        new(Activation.Sigmoid, ActivationId.Sigmoid, ElementwiseUlp),
        new(Activation.Tanh, ActivationId.Tanh, ElementwiseUlp),
        new(Activation.Relu, ActivationId.Relu, 0),
        new(Activation.LeakyRelu(), ActivationId.LeakyRelu, 0.5),
        new(Activation.LeakyRelu(0.2f), ActivationId.LeakyRelu, 0.5),
        new(Activation.Elu(), ActivationId.Elu, ElementwiseUlp),
        new(Activation.Elu(0.5f), ActivationId.Elu, ElementwiseUlp),
        new(Activation.Selu, ActivationId.Selu, ElementwiseUlp),
        new(Activation.Gelu, ActivationId.Gelu, ElementwiseUlp),
        new(Activation.GeluTanh, ActivationId.GeluTanh, ElementwiseUlp),
        new(Activation.Silu, ActivationId.Silu, ElementwiseUlp),
        new(Activation.Swish(), ActivationId.Swish, ElementwiseUlp),
        new(Activation.Swish(1.5f), ActivationId.Swish, ElementwiseUlp),
        new(Activation.QuickGelu, ActivationId.QuickGelu, ElementwiseUlp),
        new(Activation.Softplus(), ActivationId.Softplus, ElementwiseUlp),
        new(Activation.Softplus(2f, 10f), ActivationId.Softplus, ElementwiseUlp),
        new(Activation.Mish, ActivationId.Mish, ElementwiseUlp),
        new(Activation.HardSigmoid, ActivationId.HardSigmoid, ElementwiseUlp),
        new(Activation.HardSwish, ActivationId.HardSwish, ElementwiseUlp),
        new(Activation.Relu6, ActivationId.Relu6, 0),
    ];

    /// <summary>The gated units with the reference's id.</summary>
    public static IReadOnlyList<(GatedUnit Unit, GluId Reference)> GatedUnits { get; } =
    [
        (GatedUnit.SwiGlu, GluId.SwiGlu), (GatedUnit.GeGlu, GluId.GeGlu), (GatedUnit.GeGluTanh, GluId.GeGluTanh), (GatedUnit.ReGlu, GluId.ReGlu),
        (GatedUnit.ClampedSwiGlu(), GluId.ClampedSwiGlu), (GatedUnit.ClampedSwiGlu(1f, 2.5f), GluId.ClampedSwiGlu),
    ];
}

/// <summary>Test inputs: seeded, spread over the ranges where activations bend and over the whole float range.</summary>
public static class TestData
{
    /// <summary>The values every elementwise op must get right.</summary>
    public static float[] Special { get; } =
    [
        0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, -float.NaN,
        float.Epsilon, -float.Epsilon, 1e-40f, -1e-40f, 1.17549435e-38f, -1.17549435e-38f,
        float.MaxValue, float.MinValue, 1f, -1f, 0.5f, -0.5f, 3f, -3f, 6f, -6f, 20f, -20f, 88.7f, -88.7f, 100f, -100f,
        1e-7f, -1e-7f, 1e10f, -1e10f, 1e30f, -1e30f,
        // The float scale of SELU, 3.3e-8 above the exact one, overflows here where the exact product rounds to MaxValue.
        3.2386221e38f, -3.2386221e38f,
    ];

    /// <summary><paramref name="n"/> values: mostly in [-10, 10], some in [-100, 100], some anywhere in the float range.</summary>
    public static float[] Values(int n, int seed)
    {
        var random = new Random(seed);
        var values = new float[n];
        for (int i = 0; i < n; i++)
        {
            values[i] = (i % 8) switch
            {
                < 4 => (float)(random.NextDouble() * 20 - 10),
                4 => (float)(random.NextDouble() * 200 - 100),
                5 => (float)(random.NextDouble() * 2 - 1),
                6 => BitConverter.Int32BitsToSingle(random.Next() | (random.Next(2) << 31)),
                _ => Special[random.Next(Special.Length)],
            };
        }
        return values;
    }

    /// <summary>Logits for softmax: normal-ish values with a spread of <paramref name="scale"/>.</summary>
    public static float[] Logits(long n, int seed, float scale = 5f)
    {
        var random = new Random(seed);
        var values = new float[n];
        for (long i = 0; i < n; i++) values[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        return values;
    }
}
