using System.Runtime.CompilerServices;
using GpuActivations.Cpu;
using ILGPU.Runtime.Cuda;

namespace GpuActivations;

/// <summary>
/// How a lane computes a * b + c with one rounding. The library's math (two-product, Cody–Waite range reduction)
/// needs a correctly rounded fma, and ILGPU 1.5.3 has no intrinsic for one on every backend: ptxas contracts a
/// plain <c>a*b+c</c> in some places and not others, and <see cref="MathF.FusedMultiplyAdd"/> compiles only for the
/// CPU accelerator. So each backend gets its own form, chosen by the host when it picks the kernel specialisation.
/// </summary>
public interface IFusedMultiplyAdd
{
    /// <summary>a * b + c, rounded once to nearest even.</summary>
    static abstract float Fma(float a, float b, float c);
}

/// <summary>The CPU (and ILGPU's CPU accelerator, which runs .NET IL): the hardware fma through <see cref="MathF.FusedMultiplyAdd"/>.</summary>
public readonly struct HostFma : IFusedMultiplyAdd
{
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
}

/// <summary>CUDA: <c>fma.rn.f32</c> as inline PTX (every SM has it; no double-precision work in CUDA kernels).</summary>
public readonly struct PtxFma : IFusedMultiplyAdd
{
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fma(float a, float b, float c)
    {
        CudaAsm.Emit("fma.rn.f32 %0, %1, %2, %3;", out float result, a, b, c);
        return result;
    }
}

/// <summary>
/// Any backend with double precision (ILGPU's OpenCL): the exact fma by emulation. The product of two floats is exact
/// in double (24 + 24 bits &lt;= 53); the sum with c is rounded to odd (Boldo and Melquiond, "Emulation of FMA and
/// correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 2008) using the two-sum error (Knuth), and
/// rounding that to float is then correctly rounded, because double carries at least two more bits than float.
/// </summary>
public readonly struct EmulatedFma : IFusedMultiplyAdd
{
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fma(float a, float b, float c)
    {
        double p = (double)a * b;
        double s = p + c;
        double bv = s - p;
        double error = (p - (s - bv)) + (c - bv);
        long bits = BitConverter.DoubleToInt64Bits(s);
        // Round to odd: an inexact sum whose last bit is even moves one ulp towards the exact value.
        // Infinite or NaN sums (error NaN) are left alone.
        if (error != 0.0 && (bits & 1) == 0 && (bits & 0x7FF0000000000000L) != 0x7FF0000000000000L)
            bits += (error > 0.0) == (s > 0.0) ? 1 : -1;
        return (float)BitConverter.Int64BitsToDouble(bits);
    }
}

/// <summary>
/// One float as an <see cref="ISimd{TSelf}"/> "vector" of one lane, so the activations' generic SIMD code compiles
/// unchanged into ILGPU kernels (PTX, OpenCL C, the CPU accelerator). Masks are float bit patterns (all ones or zero),
/// as in SIMD registers; min and max are written as x86 does them (<c>a &lt; b ? a : b</c>, second operand on NaN and
/// on equal zeros), so a lane with an exact fma computes what the SIMD path computes, bit for bit.
/// </summary>
/// <typeparam name="TFma">How this backend computes a correctly rounded fma.</typeparam>
internal readonly struct ScalarLane<TFma> : ISimd<ScalarLane<TFma>> where TFma : struct, IFusedMultiplyAdd
{
    /// <summary>The lane's float.</summary>
    public readonly float Value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ScalarLane(float value) => Value = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Bits(ScalarLane<TFma> a) => BitConverter.SingleToInt32Bits(a.Value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ScalarLane<TFma> FromBits(int bits) => new(BitConverter.Int32BitsToSingle(bits));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ScalarLane<TFma> Mask(bool condition) => FromBits(condition ? -1 : 0);

    public static int Count => 1;
    public static bool IsSupported => true;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> Create(float value) => new(value);
    public static unsafe ScalarLane<TFma> Load(float* source) => new(*source);
    public static unsafe void Store(ScalarLane<TFma> value, float* destination) => *destination = value.Value;
    public static unsafe ScalarLane<TFma> LoadBFloat16(ushort* source) => FromBits(*source << 16);
    public static unsafe void StoreBFloat16(ScalarLane<TFma> value, ushort* destination) => *destination = BFloat16.Round((uint)Bits(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> operator +(ScalarLane<TFma> a, ScalarLane<TFma> b) => new(a.Value + b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> operator -(ScalarLane<TFma> a, ScalarLane<TFma> b) => new(a.Value - b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> operator *(ScalarLane<TFma> a, ScalarLane<TFma> b) => new(a.Value * b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> operator /(ScalarLane<TFma> a, ScalarLane<TFma> b) => new(a.Value / b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> operator -(ScalarLane<TFma> a) => new(-a.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> operator &(ScalarLane<TFma> a, ScalarLane<TFma> b) => FromBits(Bits(a) & Bits(b));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> operator |(ScalarLane<TFma> a, ScalarLane<TFma> b) => FromBits(Bits(a) | Bits(b));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> operator ^(ScalarLane<TFma> a, ScalarLane<TFma> b) => FromBits(Bits(a) ^ Bits(b));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> Fma(ScalarLane<TFma> a, ScalarLane<TFma> b, ScalarLane<TFma> c) => new(TFma.Fma(a.Value, b.Value, c.Value));
    // x86's minps/maxps: the second operand unless the comparison holds (so NaN and equal zeros give b).
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> Min(ScalarLane<TFma> a, ScalarLane<TFma> b) => a.Value < b.Value ? a : b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> Max(ScalarLane<TFma> a, ScalarLane<TFma> b) => a.Value > b.Value ? a : b;

    /// <summary>
    /// Round to nearest even by adding and subtracting 2^23 (exact below 2^23: the sum's ulp is 1); larger values,
    /// infinities and NaN are already integral. The sign is put back so -0.3 gives -0, as the SIMD round does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ScalarLane<TFma> Round(ScalarLane<TFma> a)
    {
        int bits = Bits(a);
        float magnitude = BitConverter.Int32BitsToSingle(bits & 0x7FFFFFFF);
        float rounded = magnitude < 8388608f ? (magnitude + 8388608f) - 8388608f : magnitude;
        return FromBits(BitConverter.SingleToInt32Bits(rounded) | (bits & int.MinValue));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> LessThan(ScalarLane<TFma> a, ScalarLane<TFma> b) => Mask(a.Value < b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> LessThanOrEqual(ScalarLane<TFma> a, ScalarLane<TFma> b) => Mask(a.Value <= b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> GreaterThan(ScalarLane<TFma> a, ScalarLane<TFma> b) => Mask(a.Value > b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> GreaterThanOrEqual(ScalarLane<TFma> a, ScalarLane<TFma> b) => Mask(a.Value >= b.Value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> Equal(ScalarLane<TFma> a, ScalarLane<TFma> b) => Mask(a.Value == b.Value);

    /// <summary>Bitwise select, as SIMD blends: every mask the math builds is all ones or zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ScalarLane<TFma> Select(ScalarLane<TFma> mask, ScalarLane<TFma> a, ScalarLane<TFma> b)
        => FromBits((Bits(mask) & Bits(a)) | (~Bits(mask) & Bits(b)));

    // One pair per lane: the first register holds the even element, the second the odd one.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(ScalarLane<TFma> first, ScalarLane<TFma> second, out ScalarLane<TFma> even, out ScalarLane<TFma> odd)
        => (even, odd) = (first, second);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Interleave(ScalarLane<TFma> even, ScalarLane<TFma> odd, out ScalarLane<TFma> first, out ScalarLane<TFma> second)
        => (first, second) = (even, odd);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> Pow2(ScalarLane<TFma> n) => FromBits(((int)n.Value + 127) << 23);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> ShiftIntoExponent(ScalarLane<TFma> t) => FromBits(Bits(t) << 23);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> Exponent(ScalarLane<TFma> a) => new(((Bits(a) >> 23) & 0xFF) - 127);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static ScalarLane<TFma> Significand(ScalarLane<TFma> a) => FromBits((Bits(a) & 0x007FFFFF) | 0x3F800000);
    // A mask lane counts as set by its sign bit, as movmskps reads it.
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Any(ScalarLane<TFma> mask) => Bits(mask) < 0;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool All(ScalarLane<TFma> mask) => Bits(mask) < 0;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AllWithin(ScalarLane<TFma> x, ScalarLane<TFma> lo, ScalarLane<TFma> hi) => x.Value >= lo.Value && x.Value <= hi.Value;
    // Kernels take the careful forms only: one code path per op, as few registers as it needs.
    public static bool BranchesPerVector => false;
    public static ScalarLane<TFma> Indices => new(0f);
    public static float Sum(ScalarLane<TFma> a) => a.Value;

    /// <summary>One float cannot hold a double: lower keeps the float sum, upper the sum of each addition's exact error
    /// (Knuth's two-sum), so lower + upper is the compensated total (Møller, Kahan).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AddWidened(ScalarLane<TFma> v, ref ScalarLane<TFma> lower, ref ScalarLane<TFma> upper)
    {
        float a = lower.Value, b = v.Value;
        float s = a + b;
        float bb = s - a;
        float error = (a - (s - bb)) + (b - bb);
        lower = new(s);
        upper = new(upper.Value + error);
    }
    public static double WidenedSum(ScalarLane<TFma> lower, ScalarLane<TFma> upper) => (double)lower.Value + upper.Value;
    public static float MaxAcross(ScalarLane<TFma> a) => a.Value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float First(ScalarLane<TFma> a) => a.Value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ScalarLane<TFma> Map<TF>(ScalarLane<TFma> a, TF function) where TF : struct, GpuActivations.Activations.ILaneFunction
        => new(function.Invoke(a.Value));
}
