using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace GpuActivations.Cpu;

/// <summary>
/// One SIMD register of floats, whatever its width. The math in <see cref="VectorMath"/> and every
/// activation's vector form are written once against this interface; the JIT specialises each generic
/// method for <see cref="V128"/>, <see cref="V256"/> and <see cref="V512"/> (all structs), so the abstraction
/// costs nothing. (.NET 10 keeps its own <c>ISimdVector</c> internal, hence this small copy of the idea.)
/// </summary>
internal interface ISimd<TSelf> where TSelf : unmanaged, ISimd<TSelf>
{
    static abstract int Count { get; }
    static abstract bool IsSupported { get; }
    static abstract TSelf Create(float value);
    static abstract unsafe TSelf Load(float* source);
    static abstract unsafe void Store(TSelf value, float* destination);
    /// <summary>Count bf16 values widened to float (exact: a shift into the upper half).</summary>
    static abstract unsafe TSelf LoadBFloat16(ushort* source);
    /// <summary>Count floats rounded to bf16, nearest even, NaN kept quiet (<see cref="BFloat16.Round"/> lane by lane).</summary>
    static abstract unsafe void StoreBFloat16(TSelf value, ushort* destination);
    /// <summary>
    /// <see cref="Store"/> to a destination aligned to the vector's size, past the caches where the hardware can: an
    /// ordinary store first reads the line it writes (read-for-ownership), so a streamed output of several MB costs 1.5x
    /// its bytes. The drivers use it for outputs far larger than the caches. The default is an ordinary store.
    /// </summary>
    static virtual unsafe void StoreNonTemporal(TSelf value, float* destination) => TSelf.Store(value, destination);
    /// <summary><see cref="StoreBFloat16"/> as <see cref="StoreNonTemporal"/>: the destination aligned to Count * 2 bytes.</summary>
    static virtual unsafe void StoreBFloat16NonTemporal(TSelf value, ushort* destination) => TSelf.StoreBFloat16(value, destination);
    static abstract TSelf operator +(TSelf a, TSelf b);
    static abstract TSelf operator -(TSelf a, TSelf b);
    static abstract TSelf operator *(TSelf a, TSelf b);
    static abstract TSelf operator /(TSelf a, TSelf b);
    static abstract TSelf operator -(TSelf a);
    static abstract TSelf operator &(TSelf a, TSelf b);
    static abstract TSelf operator |(TSelf a, TSelf b);
    static abstract TSelf operator ^(TSelf a, TSelf b);
    /// <summary>a * b + c with one rounding.</summary>
    static abstract TSelf Fma(TSelf a, TSelf b, TSelf c);
    /// <summary>
    /// Adds the lanes of <paramref name="v"/>, widened to double (exact), into two accumulators that hold doubles as bit
    /// patterns in this register type (the lower lanes into <paramref name="lower"/>, the upper into <paramref name="upper"/>):
    /// long sums of floats without float rounding. A lane type too narrow for a double keeps a float sum and its exact
    /// two-sum remainder instead (Knuth's two-sum; Møller's compensated summation).
    /// </summary>
    static abstract void AddWidened(TSelf v, ref TSelf lower, ref TSelf upper);
    /// <summary>The total of accumulators built by <see cref="AddWidened"/> (start them at <c>Create(0f)</c>: all-zero bits are 0.0).</summary>
    static abstract double WidenedSum(TSelf lower, TSelf upper);
    /// <summary>The hardware min: which operand a NaN lane yields is unspecified (callers fix NaN lanes up).</summary>
    static abstract TSelf Min(TSelf a, TSelf b);
    /// <summary>The hardware max: which operand a NaN lane yields is unspecified (callers fix NaN lanes up).</summary>
    static abstract TSelf Max(TSelf a, TSelf b);
    /// <summary>Round to nearest, ties to even.</summary>
    static abstract TSelf Round(TSelf a);
    /// <summary>All-ones lanes where a &lt; b (false for NaN).</summary>
    static abstract TSelf LessThan(TSelf a, TSelf b);
    static abstract TSelf LessThanOrEqual(TSelf a, TSelf b);
    static abstract TSelf GreaterThan(TSelf a, TSelf b);
    static abstract TSelf GreaterThanOrEqual(TSelf a, TSelf b);
    static abstract TSelf Equal(TSelf a, TSelf b);
    /// <summary>mask ? a : b, lane by lane.</summary>
    static abstract TSelf Select(TSelf mask, TSelf a, TSelf b);
    /// <summary>
    /// Splits Count (even, odd) pairs held in two registers (<paramref name="first"/> the first Count/2 pairs) into the
    /// evens and the odds: an interleaved gated unit's gates and ups, taken apart in registers as they are loaded.
    /// </summary>
    static abstract void Deinterleave(TSelf first, TSelf second, out TSelf even, out TSelf odd);
    /// <summary>The inverse of <see cref="Deinterleave"/>: Count pairs (even[i], odd[i]) into two registers in memory order.</summary>
    static abstract void Interleave(TSelf even, TSelf odd, out TSelf first, out TSelf second);
    /// <summary>
    /// 2^n for integral n in [-126, 127], built in the exponent field. The SIMD widths convert with the hardware's own
    /// truncating conversion (one instruction; n is integral, so truncation is exact): .NET's saturating conversion adds
    /// four instructions per call for out-of-range and NaN lanes, which no caller feeds here (they fix those lanes up).
    /// </summary>
    static abstract TSelf Pow2(TSelf n);
    /// <summary>
    /// The float whose bits are <paramref name="t"/>'s shifted left by 23: for t = n + 1.5 * 2^23 + 127 (n integral in
    /// [-126, 127]) that is 2^n, one shift where <see cref="Pow2"/> converts, adds and shifts (VectorMath.ExpMagic).
    /// </summary>
    static abstract TSelf ShiftIntoExponent(TSelf t);
    /// <summary>The unbiased exponent of a positive normal float, as a float.</summary>
    static abstract TSelf Exponent(TSelf a);
    /// <summary>The significand of a positive normal float scaled into [1, 2).</summary>
    static abstract TSelf Significand(TSelf a);
    /// <summary>True when any lane of the mask is set.</summary>
    static abstract bool Any(TSelf mask);
    /// <summary>True when every lane of the mask is set.</summary>
    static abstract bool All(TSelf mask);
    /// <summary>
    /// True when every lane of <paramref name="x"/> is in [<paramref name="lo"/>, <paramref name="hi"/>] (false for a NaN
    /// lane): <c>All(x &gt;= lo &amp; x &lt;= hi)</c>, tested as clamp(x) == x. The two compares and the and as vectors cost
    /// the JIT 7 instructions more per test (each compare's mask widened to a vector, the and, and the mask taken back),
    /// 12 of a sigmoid's 41 on AVX-512; min, max and one compare into a mask cost 5.
    /// </summary>
    static abstract bool AllWithin(TSelf x, TSelf lo, TSelf hi);
    /// <summary>
    /// Whether an op may test a condition once per vector and branch to a cheaper form of the same bits
    /// (<see cref="VectorMath.AllFastWithin{TV}"/>): true for the SIMD widths, where the branch saves every lane's edge handling;
    /// false for the one-float lane of the ILGPU kernels, where both forms would be compiled into the kernel (registers,
    /// occupancy) and a GPU warp's lanes would diverge over them anyway.
    /// </summary>
    static abstract bool BranchesPerVector { get; }
    /// <summary>0, 1, 2, ... in the lanes.</summary>
    static abstract TSelf Indices { get; }
    static abstract float Sum(TSelf a);
    static abstract float MaxAcross(TSelf a);
    static abstract float First(TSelf a);

    /// <summary>
    /// A scalar function lane by lane (user-defined activations, which have no vector form): through a stack copy on the
    /// SIMD widths; a one-float lane calls it directly, so kernels see plain scalar code.
    /// </summary>
    static virtual unsafe TSelf Map<TF>(TSelf a, TF function) where TF : struct, GpuActivations.Activations.ILaneFunction
    {
        float* lanes = stackalloc float[TSelf.Count];
        TSelf.Store(a, lanes);
        for (int i = 0; i < TSelf.Count; i++) lanes[i] = function.Invoke(lanes[i]);
        return TSelf.Load(lanes);
    }
}

/// <summary>Helpers that follow from the primitives.</summary>
internal static class Simd
{
    /// <summary>All-ones lanes where a is NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV IsNaN<TV>(TV a) where TV : unmanaged, ISimd<TV> => TV.Equal(a, a) ^ TV.Equal(TV.Create(0f), TV.Create(0f));

    /// <summary>|a|.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Abs<TV>(TV a) where TV : unmanaged, ISimd<TV> => a ^ (a & TV.Create(-0f));

    /// <summary>The sign bit of a (+0 or -0 per lane).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV SignBit<TV>(TV a) where TV : unmanaged, ISimd<TV> => a & TV.Create(-0f);
}

/// <summary>128-bit lanes (SSE/NEON).</summary>
internal readonly struct V128 : ISimd<V128>
{
    public readonly Vector128<float> V;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public V128(Vector128<float> v) => V = v;
    public static int Count => Vector128<float>.Count;
    public static bool IsSupported => Vector128.IsHardwareAccelerated;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Create(float value) => new(Vector128.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe V128 Load(float* source) => new(Vector128.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe void Store(V128 value, float* destination) => value.V.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe V128 LoadBFloat16(ushort* source)
        => new(Vector128.ShiftLeft(Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)source).AsUInt16()), 16).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreBFloat16(V128 value, ushort* destination)
    {
        Vector128<uint> b = value.V.AsUInt32();
        Vector128<uint> rounded = Vector128.ConditionalSelect(
            Vector128.GreaterThan(b & Vector128.Create(0x7FFFFFFFu), Vector128.Create(0x7F800000u)),
            (b >> 16) | Vector128.Create(0x40u), (b + Vector128.Create(0x7FFFu) + ((b >> 16) & Vector128<uint>.One)) >> 16);
        *(ulong*)destination = Vector128.Narrow(rounded, rounded).AsUInt64().ToScalar();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator +(V128 a, V128 b) => new(a.V + b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator -(V128 a, V128 b) => new(a.V - b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator *(V128 a, V128 b) => new(a.V * b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator /(V128 a, V128 b) => new(a.V / b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator -(V128 a) => new(-a.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator &(V128 a, V128 b) => new(a.V & b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator |(V128 a, V128 b) => new(a.V | b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator ^(V128 a, V128 b) => new(a.V ^ b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Fma(V128 a, V128 b, V128 c) => new(Vector128.FusedMultiplyAdd(a.V, b.V, c.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Min(V128 a, V128 b) => new(Vector128.MinNative(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Max(V128 a, V128 b) => new(Vector128.MaxNative(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Round(V128 a) => new(Vector128.Round(a.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 LessThan(V128 a, V128 b) => new(Vector128.LessThan(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 LessThanOrEqual(V128 a, V128 b) => new(Vector128.LessThanOrEqual(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 GreaterThan(V128 a, V128 b) => new(Vector128.GreaterThan(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 GreaterThanOrEqual(V128 a, V128 b) => new(Vector128.GreaterThanOrEqual(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Equal(V128 a, V128 b) => new(Vector128.Equals(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Select(V128 mask, V128 a, V128 b) => new(Vector128.ConditionalSelect(mask.V, a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(V128 first, V128 second, out V128 even, out V128 odd)
    {
        if (Sse.IsSupported)
        {
            even = new(Sse.Shuffle(first.V, second.V, 0b10_00_10_00));
            odd = new(Sse.Shuffle(first.V, second.V, 0b11_01_11_01));
        }
        else
        {
            even = new(Vector128.Create(first.V[0], first.V[2], second.V[0], second.V[2]));
            odd = new(Vector128.Create(first.V[1], first.V[3], second.V[1], second.V[3]));
        }
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Interleave(V128 even, V128 odd, out V128 first, out V128 second)
    {
        if (Sse.IsSupported)
        {
            first = new(Sse.UnpackLow(even.V, odd.V));
            second = new(Sse.UnpackHigh(even.V, odd.V));
        }
        else
        {
            first = new(Vector128.Create(even.V[0], odd.V[0], even.V[1], odd.V[1]));
            second = new(Vector128.Create(even.V[2], odd.V[2], even.V[3], odd.V[3]));
        }
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Pow2(V128 n) => new((Vector128.ConvertToInt32Native(n.V) + Vector128.Create(127) << 23).AsSingle());
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 ShiftIntoExponent(V128 t) => new(Vector128.ShiftLeft(t.V.AsInt32(), 23).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Exponent(V128 a) => new(Vector128.ConvertToSingle((Vector128.ShiftRightLogical(a.V.AsInt32(), 23) & Vector128.Create(0xFF)) - Vector128.Create(127)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Significand(V128 a) => new(((a.V.AsInt32() & Vector128.Create(0x007FFFFF)) | Vector128.Create(0x3F800000)).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Any(V128 mask) => mask.V.ExtractMostSignificantBits() != 0;
    public static bool BranchesPerVector => true;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool All(V128 mask) => mask.V.ExtractMostSignificantBits() == 0xFu;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AllWithin(V128 x, V128 lo, V128 hi) => Vector128.EqualsAll(Vector128.MinNative(Vector128.MaxNative(x.V, lo.V), hi.V), x.V);
    public static V128 Indices => new(Vector128<float>.Indices);
    public static float Sum(V128 a) => Vector128.Sum(a.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AddWidened(V128 v, ref V128 lower, ref V128 upper)
    {
        lower = new((lower.V.AsDouble() + Vector128.WidenLower(v.V)).AsSingle());
        upper = new((upper.V.AsDouble() + Vector128.WidenUpper(v.V)).AsSingle());
    }
    public static double WidenedSum(V128 lower, V128 upper) => Vector128.Sum(lower.V.AsDouble() + upper.V.AsDouble());
    public static float MaxAcross(V128 a) { float m = a.V[0]; for (int i = 1; i < Count; i++) m = MathF.Max(m, a.V[i]); return m; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float First(V128 a) => a.V.ToScalar();
}

/// <summary>256-bit lanes (AVX2).</summary>
internal readonly struct V256 : ISimd<V256>
{
    public readonly Vector256<float> V;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public V256(Vector256<float> v) => V = v;
    public static int Count => Vector256<float>.Count;
    public static bool IsSupported => Vector256.IsHardwareAccelerated;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Create(float value) => new(Vector256.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe V256 Load(float* source) => new(Vector256.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe void Store(V256 value, float* destination) => value.V.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe void StoreNonTemporal(V256 value, float* destination) => value.V.StoreAlignedNonTemporal(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe V256 LoadBFloat16(ushort* source)
        => new(Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(source).ToVector256Unsafe()), 16).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreBFloat16(V256 value, ushort* destination) => ToBFloat16(value).Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreBFloat16NonTemporal(V256 value, ushort* destination) => ToBFloat16(value).StoreAlignedNonTemporal(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<ushort> ToBFloat16(V256 value)
    {
        Vector256<uint> b = value.V.AsUInt32();
        Vector256<uint> rounded = Vector256.ConditionalSelect(
            Vector256.GreaterThan(b & Vector256.Create(0x7FFFFFFFu), Vector256.Create(0x7F800000u)),
            (b >> 16) | Vector256.Create(0x40u), (b + Vector256.Create(0x7FFFu) + ((b >> 16) & Vector256<uint>.One)) >> 16);
        return Vector128.Narrow(rounded.GetLower(), rounded.GetUpper());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator +(V256 a, V256 b) => new(a.V + b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator -(V256 a, V256 b) => new(a.V - b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator *(V256 a, V256 b) => new(a.V * b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator /(V256 a, V256 b) => new(a.V / b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator -(V256 a) => new(-a.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator &(V256 a, V256 b) => new(a.V & b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator |(V256 a, V256 b) => new(a.V | b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator ^(V256 a, V256 b) => new(a.V ^ b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Fma(V256 a, V256 b, V256 c) => new(Vector256.FusedMultiplyAdd(a.V, b.V, c.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Min(V256 a, V256 b) => new(Vector256.MinNative(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Max(V256 a, V256 b) => new(Vector256.MaxNative(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Round(V256 a) => new(Vector256.Round(a.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 LessThan(V256 a, V256 b) => new(Vector256.LessThan(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 LessThanOrEqual(V256 a, V256 b) => new(Vector256.LessThanOrEqual(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 GreaterThan(V256 a, V256 b) => new(Vector256.GreaterThan(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 GreaterThanOrEqual(V256 a, V256 b) => new(Vector256.GreaterThanOrEqual(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Equal(V256 a, V256 b) => new(Vector256.Equals(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Select(V256 mask, V256 a, V256 b) => new(Vector256.ConditionalSelect(mask.V, a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(V256 first, V256 second, out V256 even, out V256 odd)
    {
        // Each register of 4 pairs becomes (4 evens | 4 odds); then the halves are paired up across the two.
        Vector256<float> a = Vector256.Shuffle(first.V, Vector256.Create(0, 2, 4, 6, 1, 3, 5, 7));
        Vector256<float> b = Vector256.Shuffle(second.V, Vector256.Create(0, 2, 4, 6, 1, 3, 5, 7));
        even = new(Vector256.Create(a.GetLower(), b.GetLower()));
        odd = new(Vector256.Create(a.GetUpper(), b.GetUpper()));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Interleave(V256 even, V256 odd, out V256 first, out V256 second)
    {
        first = new(Vector256.Shuffle(Vector256.Create(even.V.GetLower(), odd.V.GetLower()), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)));
        second = new(Vector256.Shuffle(Vector256.Create(even.V.GetUpper(), odd.V.GetUpper()), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Pow2(V256 n) => new((Vector256.ConvertToInt32Native(n.V) + Vector256.Create(127) << 23).AsSingle());
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 ShiftIntoExponent(V256 t) => new(Vector256.ShiftLeft(t.V.AsInt32(), 23).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Exponent(V256 a) => new(Vector256.ConvertToSingle((Vector256.ShiftRightLogical(a.V.AsInt32(), 23) & Vector256.Create(0xFF)) - Vector256.Create(127)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Significand(V256 a) => new(((a.V.AsInt32() & Vector256.Create(0x007FFFFF)) | Vector256.Create(0x3F800000)).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Any(V256 mask) => mask.V.ExtractMostSignificantBits() != 0;
    public static bool BranchesPerVector => true;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool All(V256 mask) => mask.V.ExtractMostSignificantBits() == 0xFFu;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AllWithin(V256 x, V256 lo, V256 hi) => Vector256.EqualsAll(Vector256.MinNative(Vector256.MaxNative(x.V, lo.V), hi.V), x.V);
    public static V256 Indices => new(Vector256<float>.Indices);
    public static float Sum(V256 a) => Vector256.Sum(a.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AddWidened(V256 v, ref V256 lower, ref V256 upper)
    {
        lower = new((lower.V.AsDouble() + Vector256.WidenLower(v.V)).AsSingle());
        upper = new((upper.V.AsDouble() + Vector256.WidenUpper(v.V)).AsSingle());
    }
    public static double WidenedSum(V256 lower, V256 upper) => Vector256.Sum(lower.V.AsDouble() + upper.V.AsDouble());
    public static float MaxAcross(V256 a) => V128.MaxAcross(new V128(Vector128.Max(a.V.GetLower(), a.V.GetUpper())));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float First(V256 a) => a.V.ToScalar();
}

/// <summary>512-bit lanes (AVX-512).</summary>
internal readonly struct V512 : ISimd<V512>
{
    public readonly Vector512<float> V;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public V512(Vector512<float> v) => V = v;
    public static int Count => Vector512<float>.Count;
    public static bool IsSupported => Vector512.IsHardwareAccelerated;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Create(float value) => new(Vector512.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe V512 Load(float* source) => new(Vector512.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe void Store(V512 value, float* destination) => value.V.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe void StoreNonTemporal(V512 value, float* destination) => value.V.StoreAlignedNonTemporal(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe V512 LoadBFloat16(ushort* source)
        => new(Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(source).ToVector512Unsafe()), 16).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreBFloat16(V512 value, ushort* destination) => ToBFloat16(value).Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreBFloat16NonTemporal(V512 value, ushort* destination) => ToBFloat16(value).StoreAlignedNonTemporal(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<ushort> ToBFloat16(V512 value)
    {
        Vector512<uint> b = value.V.AsUInt32();
        Vector512<uint> rounded = Vector512.ConditionalSelect(
            Vector512.GreaterThan(b & Vector512.Create(0x7FFFFFFFu), Vector512.Create(0x7F800000u)),
            (b >> 16) | Vector512.Create(0x40u), (b + Vector512.Create(0x7FFFu) + ((b >> 16) & Vector512<uint>.One)) >> 16);
        // One vpmovdw (each lane's result fits in its low 16 bits): the portable Narrow of the two halves compiles to two
        // narrowing moves, an extract and an insert.
        return Avx512BW.IsSupported ? Avx512BW.ConvertToVector256UInt16(rounded) : Vector256.Narrow(rounded.GetLower(), rounded.GetUpper());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator +(V512 a, V512 b) => new(a.V + b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator -(V512 a, V512 b) => new(a.V - b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator *(V512 a, V512 b) => new(a.V * b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator /(V512 a, V512 b) => new(a.V / b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator -(V512 a) => new(-a.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator &(V512 a, V512 b) => new(a.V & b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator |(V512 a, V512 b) => new(a.V | b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator ^(V512 a, V512 b) => new(a.V ^ b.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Fma(V512 a, V512 b, V512 c) => new(Vector512.FusedMultiplyAdd(a.V, b.V, c.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Min(V512 a, V512 b) => new(Vector512.MinNative(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Max(V512 a, V512 b) => new(Vector512.MaxNative(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Round(V512 a) => new(Vector512.Round(a.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 LessThan(V512 a, V512 b) => new(Vector512.LessThan(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 LessThanOrEqual(V512 a, V512 b) => new(Vector512.LessThanOrEqual(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 GreaterThan(V512 a, V512 b) => new(Vector512.GreaterThan(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 GreaterThanOrEqual(V512 a, V512 b) => new(Vector512.GreaterThanOrEqual(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Equal(V512 a, V512 b) => new(Vector512.Equals(a.V, b.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Select(V512 mask, V512 a, V512 b) => new(Vector512.ConditionalSelect(mask.V, a.V, b.V));
    /// <summary>Two-source permutes (vpermt2ps): one instruction per output register.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(V512 first, V512 second, out V512 even, out V512 odd)
    {
        even = new(Avx512F.PermuteVar16x32x2(first.V, Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), second.V));
        odd = new(Avx512F.PermuteVar16x32x2(first.V, Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), second.V));
    }
    /// <summary>The inverse, as two two-source permutes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Interleave(V512 even, V512 odd, out V512 first, out V512 second)
    {
        first = new(Avx512F.PermuteVar16x32x2(even.V, Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), odd.V));
        second = new(Avx512F.PermuteVar16x32x2(even.V, Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), odd.V));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Pow2(V512 n) => new((Vector512.ConvertToInt32Native(n.V) + Vector512.Create(127) << 23).AsSingle());
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 ShiftIntoExponent(V512 t) => new(Vector512.ShiftLeft(t.V.AsInt32(), 23).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Exponent(V512 a) => new(Vector512.ConvertToSingle((Vector512.ShiftRightLogical(a.V.AsInt32(), 23) & Vector512.Create(0xFF)) - Vector512.Create(127)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Significand(V512 a) => new(((a.V.AsInt32() & Vector512.Create(0x007FFFFF)) | Vector512.Create(0x3F800000)).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Any(V512 mask) => mask.V.ExtractMostSignificantBits() != 0;
    public static bool BranchesPerVector => true;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool All(V512 mask) => mask.V.ExtractMostSignificantBits() == 0xFFFFul;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AllWithin(V512 x, V512 lo, V512 hi) => Vector512.EqualsAll(Vector512.MinNative(Vector512.MaxNative(x.V, lo.V), hi.V), x.V);
    public static V512 Indices => new(Vector512<float>.Indices);
    public static float Sum(V512 a) => Vector512.Sum(a.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AddWidened(V512 v, ref V512 lower, ref V512 upper)
    {
        lower = new((lower.V.AsDouble() + Vector512.WidenLower(v.V)).AsSingle());
        upper = new((upper.V.AsDouble() + Vector512.WidenUpper(v.V)).AsSingle());
    }
    public static double WidenedSum(V512 lower, V512 upper) => Vector512.Sum(lower.V.AsDouble() + upper.V.AsDouble());
    public static float MaxAcross(V512 a) => V256.MaxAcross(new V256(Vector256.Max(a.V.GetLower(), a.V.GetUpper())));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float First(V512 a) => a.V.ToScalar();
}
