using System.Globalization;

namespace GpuActivations;

/// <summary>
/// bfloat16: the upper 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits), a storage type for
/// <see cref="DeviceBuffer{T}"/> and <see cref="BufferView{T}"/>. The ops load it, compute in float32 and round the
/// result once. .NET has no bfloat16, so this is the library's own: conversion from float rounds to nearest, ties to
/// even, like the hardware conversions (NaN stays NaN, quieted; values beyond the largest finite bfloat16 round to
/// infinity); conversion to float is exact.
/// </summary>
public readonly struct BFloat16 : IEquatable<BFloat16>, IComparable<BFloat16>, IFormattable
{
    BFloat16(ushort bits) => Bits = bits;

    /// <summary>The 16 stored bits (the float32 bits' upper half).</summary>
    public ushort Bits { get; }

    /// <summary>The value with these stored bits.</summary>
    public static BFloat16 FromBits(ushort bits) => new(bits);

    /// <summary>True when the value is NaN.</summary>
    public bool IsNaN => (Bits & 0x7FFF) > 0x7F80;

    /// <summary>The largest finite value, (2 - 2^-7) 2^127.</summary>
    public static BFloat16 MaxValue => new(0x7F7F);

    /// <summary>The distance from 1 to the next larger value, 2^-7.</summary>
    public static BFloat16 Epsilon => new(0x3C00);

    /// <summary>
    /// The nearest bfloat16, ties to even: the float's bits plus 0x7FFF plus the kept part's lowest bit, shifted down
    /// 16 (a carry into the exponent is the correct rounding up, to infinity at the top). NaN keeps its sign and
    /// becomes quiet, so no payload truncation turns it into infinity.
    /// </summary>
    public static explicit operator BFloat16(float value) => new(Round(BitConverter.SingleToUInt32Bits(value)));

    /// <summary>The exact float32 value.</summary>
    public static explicit operator float(BFloat16 value) => BitConverter.UInt32BitsToSingle((uint)value.Bits << 16);

    /// <summary>The exact double value.</summary>
    public static explicit operator double(BFloat16 value) => (float)value;

    /// <summary>Round-to-nearest-even of float32 bits to bfloat16 bits (the one definition; vector code follows it).</summary>
    internal static ushort Round(uint bits) => (bits & 0x7FFFFFFF) > 0x7F800000
        ? (ushort)((bits >> 16) | 0x0040)
        : (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);

    /// <summary>Bitwise equality (so NaN equals an identical NaN, and +0 differs from -0), as for a stored value.</summary>
    public bool Equals(BFloat16 other) => Bits == other.Bits;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => Bits;

    /// <summary>Orders by value as float32 does (<see cref="float.CompareTo(float)"/>: NaN first).</summary>
    public int CompareTo(BFloat16 other) => ((float)this).CompareTo((float)other);

    /// <summary>The value as float32 text.</summary>
    public override string ToString() => ((float)this).ToString(CultureInfo.InvariantCulture);

    /// <summary>The value as float32 text in <paramref name="format"/>.</summary>
    public string ToString(string? format, IFormatProvider? formatProvider) => ((float)this).ToString(format, formatProvider);

    /// <summary>Bitwise equality.</summary>
    public static bool operator ==(BFloat16 left, BFloat16 right) => left.Equals(right);

    /// <summary>Bitwise inequality.</summary>
    public static bool operator !=(BFloat16 left, BFloat16 right) => !left.Equals(right);
}
