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

/// <summary>fp16 storage as ILGPU's <see cref="Half"/> (PTX <c>cvt.f32.f16</c> / <c>cvt.rn.f16.f32</c>; OpenCL <c>vload_half</c>).</summary>
internal readonly struct Float16Storage : IStorage<Half>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(Half value) => (float)value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Half Store(float value) => (Half)value;
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
