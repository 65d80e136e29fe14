namespace GpuActivations.Reference;

/// <summary>How far a float result is from the double reference, for errors that plain ulps misstate.</summary>
public static class ErrorMetrics
{
    private const float SmallestNormal = 1.17549435e-38f;

    /// <summary>
    /// |actual - expected| in ulps of the float <paramref name="scale"/>, a magnitude the error is naturally measured
    /// against (for a derivative, <see cref="ScalarReference.DerivativeScale"/>). NaN matches only NaN, an infinity only
    /// itself; a result and a scale both below the smallest normal float count as flushed (distance 0).
    /// </summary>
    /// <param name="actual">The float result.</param>
    /// <param name="expected">The reference value.</param>
    /// <param name="scale">The magnitude whose ulp is the unit (at least the smallest normal float's).</param>
    /// <returns>The distance in ulps (0 for matching NaN or infinities, +inf for a mismatch of kind).</returns>
    public static double ScaledUlpDistance(float actual, double expected, double scale)
    {
        if (double.IsNaN(expected) || float.IsNaN(actual))
        {
            return double.IsNaN(expected) && float.IsNaN(actual) ? 0 : double.PositiveInfinity;
        }

        if (double.IsInfinity(expected) || float.IsInfinity(actual))
        {
            return expected == actual ? 0 : double.PositiveInfinity;
        }

        if (Math.Abs(scale) < SmallestNormal && MathF.Abs(actual) <= SmallestNormal)
        {
            return 0;
        }

        float s = MathF.Max(MathF.Abs((float)scale), SmallestNormal);
        return Math.Abs(actual - expected) / (MathF.BitIncrement(s) - s);
    }
}
