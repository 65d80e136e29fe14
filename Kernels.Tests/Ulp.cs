using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>Distances in units in the last place, and assertions built on them.</summary>
public static class Ulp
{
    const float SmallestNormal = 1.17549435e-38f;

    /// <summary>Orders floats as integers so adjacent floats differ by 1 and +0 equals -0.</summary>
    static long Ordinal(float f)
    {
        int bits = BitConverter.SingleToInt32Bits(f);
        return bits < 0 ? -(long)(bits & 0x7FFFFFFF) : bits;
    }

    /// <summary>
    /// How many ulp <paramref name="actual"/> is from <paramref name="expected"/> rounded to float. NaN matches only NaN;
    /// where the expected value is below the smallest normal float, any result of that size is accepted (flush to zero).
    /// </summary>
    public static double Distance(float actual, double expected)
    {
        float e = (float)expected;
        if (float.IsNaN(e) || float.IsNaN(actual)) return float.IsNaN(e) && float.IsNaN(actual) ? 0 : double.PositiveInfinity;
        if (float.IsInfinity(e) || float.IsInfinity(actual)) return e == actual ? 0 : double.PositiveInfinity;
        if (Math.Abs(expected) < SmallestNormal && MathF.Abs(actual) <= SmallestNormal) return 0;
        return Math.Abs(Ordinal(actual) - Ordinal(e));
    }

    /// <summary>Asserts every element is within <paramref name="maxUlp"/>, naming the worst input.</summary>
    public static void AssertClose(ReadOnlySpan<float> x, ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double maxUlp, string what)
    {
        double worst = 0;
        int at = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Distance(actual[i], expected[i]);
            if (d > worst) { worst = d; at = i; }
        }
        if (worst > maxUlp)
            Assert.Fail($"{what}: {worst} ulp > {maxUlp} at index {at}: x = {x[at]:R}, got {actual[at]:R}, expected {(float)expected[at]:R} ({expected[at]:R})");
    }
}
