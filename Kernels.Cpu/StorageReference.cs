namespace GpuActivations.Reference;

/// <summary>
/// The 16-bit storage formats as the tests and the accuracy sweep judge them: the correctly rounded 16-bit value of a
/// double (round to nearest, ties to even, directly from the double, never through float32), exact widening, and
/// distances in steps of the format. Written independently of the library's conversions, which are checked against it.
/// </summary>
public static class StorageReference
{
    /// <summary>The fp16 bits nearest <paramref name="value"/> (.NET's IEEE conversion from double).</summary>
    public static ushort RoundHalf(double value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>The exact float of fp16 bits.</summary>
    public static float HalfToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>The exact float of bf16 bits (the upper half of a float32).</summary>
    public static float BFloat16ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>
    /// The bf16 bits nearest <paramref name="value"/>, ties to even; beyond the largest finite bf16 by half a step or more,
    /// infinity (IEEE overflow); NaN to the quiet NaN 0x7FC0.
    /// </summary>
    public static ushort RoundBFloat16(double value)
    {
        if (double.IsNaN(value)) return 0x7FC0;
        if (double.IsInfinity(value)) return value > 0 ? (ushort)0x7F80 : (ushort)0xFF80;
        ushort sign = double.IsNegative(value) ? (ushort)0x8000 : (ushort)0;
        double a = Math.Abs(value);
        // The bf16 magnitudes are the float32 magnitudes with 16 low bits clear: bisect over the 15-bit magnitude codes.
        int low = 0, high = 0x7F80; // 0x7F80 stands for 2^128, the IEEE overflow point's upper neighbour
        while (high - low > 1)
        {
            int mid = (low + high) / 2;
            if (Magnitude(mid) <= a) low = mid; else high = mid;
        }
        double below = Magnitude(low), above = high == 0x7F80 ? Math.ScaleB(1.0, 128) : Magnitude(high);
        double dLow = a - below, dHigh = above - a;
        int code = dLow < dHigh || (dLow == dHigh && (low & 1) == 0) ? low : high;
        return (ushort)(sign | code);
    }

    static double Magnitude(int code) => BitConverter.UInt32BitsToSingle((uint)code << 16);

    /// <summary>Ordered position of 16-bit sign-magnitude bits (both formats): -0 and +0 are both 0.</summary>
    public static int Ordinal(ushort bits) => (bits & 0x8000) != 0 ? -(bits & 0x7FFF) : bits;
}
