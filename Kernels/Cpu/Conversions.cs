using System.Numerics;
using System.Numerics.Tensors;

namespace GpuActivations.Cpu;

/// <summary>
/// Storage conversions on the CPU: to float32 (exact for both 16-bit types) and back, rounded to nearest even
/// once. fp16 goes through <see cref="TensorPrimitives"/> (vectorised IEEE conversions); bf16 is written here with
/// <see cref="Vector{T}"/>, bit for bit <see cref="BFloat16.Round"/>.
/// </summary>
internal static unsafe class Conversions
{
    /// <summary>n elements of <paramref name="type"/> at <paramref name="source"/> into float32 at <paramref name="destination"/>.</summary>
    public static void ToSingle(StorageType type, nint source, float* destination, int n)
    {
        switch (type)
        {
            case StorageType.Float32: new ReadOnlySpan<float>((void*)source, n).CopyTo(new Span<float>(destination, n)); break;
            case StorageType.Float16: TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((void*)source, n), new Span<float>(destination, n)); break;
            default: BFloat16ToSingle((ushort*)source, destination, n); break;
        }
    }

    /// <summary>n float32 values at <paramref name="source"/> rounded into <paramref name="type"/> at <paramref name="destination"/>.</summary>
    public static void FromSingle(StorageType type, float* source, nint destination, int n)
    {
        switch (type)
        {
            case StorageType.Float32: new ReadOnlySpan<float>(source, n).CopyTo(new Span<float>((void*)destination, n)); break;
            case StorageType.Float16: TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(source, n), new Span<Half>((void*)destination, n)); break;
            default: SingleToBFloat16(source, (ushort*)destination, n); break;
        }
    }

    static void BFloat16ToSingle(ushort* source, float* destination, int n)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + Vector<ushort>.Count <= n; i += Vector<ushort>.Count)
            {
                Vector.Widen(Vector.Load(source + i), out Vector<uint> low, out Vector<uint> high);
                Vector.Store(Vector.ShiftLeft(low, 16).As<uint, float>(), destination + i);
                Vector.Store(Vector.ShiftLeft(high, 16).As<uint, float>(), destination + i + Vector<uint>.Count);
            }
        }
        for (; i < n; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)source[i] << 16);
    }

    static void SingleToBFloat16(float* source, ushort* destination, int n)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + Vector<ushort>.Count <= n; i += Vector<ushort>.Count)
            {
                Vector<uint> low = Round(Vector.Load((uint*)source + i));
                Vector<uint> high = Round(Vector.Load((uint*)source + i + Vector<uint>.Count));
                Vector.Store(Vector.Narrow(low, high), destination + i);
            }
        }
        for (; i < n; i++) destination[i] = BFloat16.Round(BitConverter.SingleToUInt32Bits(source[i]));
    }

    /// <summary><see cref="BFloat16.Round"/> lane by lane, the result in each lane's low 16 bits.</summary>
    static Vector<uint> Round(Vector<uint> bits)
    {
        Vector<uint> nearestEven = Vector.ShiftRightLogical(bits + new Vector<uint>(0x7FFF) + (Vector.ShiftRightLogical(bits, 16) & Vector<uint>.One), 16);
        Vector<uint> quietNaN = Vector.ShiftRightLogical(bits, 16) | new Vector<uint>(0x0040);
        Vector<uint> isNaN = Vector.GreaterThan(bits & new Vector<uint>(0x7FFFFFFF), new Vector<uint>(0x7F800000));
        return Vector.ConditionalSelect(isNaN, quietNaN, nearestEven);
    }
}
