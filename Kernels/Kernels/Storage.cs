using System.Runtime.CompilerServices;
using Half = ILGPU.Half;

namespace GpuActivations.Kernels;

/// <summary>
/// How a kernel reads and writes one storage type: every op computes in float32 and rounds each result once into the
/// output's type. A type parameter of the kernels, so each storage is its own specialisation with no run-time branch.
/// </summary>
internal interface IStorage<T> where T : unmanaged
{
    /// <summary>The stored value widened to float (exact for every storage type).</summary>
    static abstract float Load(T value);
    /// <summary>The float rounded once, to nearest even, into the storage type.</summary>
    static abstract T Store(float value);
}

/// <summary>float32 storage: loads and stores as they are.</summary>
internal readonly struct Float32Storage : IStorage<float>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Store(float value) => value;
}

/// <summary>
/// fp16 storage as ILGPU's <see cref="Half"/>, converted with integer operations: exact widening, and narrowing rounded
/// to nearest even (subnormals and overflow to infinity included, NaN kept quiet). ILGPU 1.5.3's own float-to-Half cast
/// truncates on its CPU accelerator (measured: 9.37e-8 stored as 5.96e-8, not 1.19e-7), so the kernels do not use it.
/// </summary>
internal readonly struct Float16Storage : IStorage<Half>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(Half value)
    {
        int h = ILGPU.Interop.FloatAsInt(value);
        int sign = (h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
        if (exponent == 0) // zero or subnormal: mantissa * 2^-24, exact in float
            return BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(mantissa * 5.9604644775390625e-8f) | sign);
        if (exponent == 0x1F) return BitConverter.Int32BitsToSingle(sign | 0x7F800000 | (mantissa << 13));
        return BitConverter.Int32BitsToSingle(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Half Store(float value)
    {
        int x = BitConverter.SingleToInt32Bits(value);
        int sign = (x >> 16) & 0x8000, a = x & 0x7FFFFFFF;
        int bits;
        if (a > 0x7F800000) bits = 0x7E00 | ((a >> 13) & 0x3FF); // NaN, quiet
        else if (a >= 0x477FF000) bits = 0x7C00;                   // from 65520 (the tie above 65504) up: infinity
        else if (a >= 0x38800000)                                   // normal: rebias, round 13 bits to nearest even
        {
            int r = a - 0x38000000;
            bits = (r + 0x0FFF + ((r >> 13) & 1)) >> 13;
        }
        else if (a <= 0x33000000) bits = 0;                         // up to 2^-25 (the tie, to even): zero
        else                                                        // subnormal: m 2^(e-150) / 2^-24, to nearest even
        {
            int e = a >> 23, m = (a & 0x7FFFFF) | 0x800000, shift = 126 - e;
            int q = m >> shift, rest = m & ((1 << shift) - 1), half = 1 << (shift - 1);
            bits = q + (rest > half || (rest == half && (q & 1) != 0) ? 1 : 0);
        }
        return ILGPU.Interop.IntAsFloat((ushort)(sign | bits));
    }
}

/// <summary>
/// bf16 storage: the upper half of a float (exact widening), rounded to nearest even with NaN kept quiet (<see cref="BFloat16.Round"/>).
/// The bit casts are the signed ones: ILGPU 1.5.3 compiles <see cref="BitConverter.SingleToInt32Bits"/> but fails on
/// <see cref="BitConverter.SingleToUInt32Bits"/> with an internal compiler error (found by the PTX compile gate).
/// </summary>
internal readonly struct BFloat16Storage : IStorage<BFloat16>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(BFloat16 value) => BitConverter.Int32BitsToSingle(value.Bits << 16);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static BFloat16 Store(float value) => BFloat16.FromBits(BFloat16.Round((uint)BitConverter.SingleToInt32Bits(value)));
}

/// <summary>Four floats as one 16-byte element, so a view of them loads and stores 128 bits at a time (<c>ld.global.v4.f32</c>).</summary>
internal struct Float4
{
    /// <summary>The four lanes.</summary>
    public float X, Y, Z, W;
}
