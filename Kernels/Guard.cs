using System.Runtime.CompilerServices;

namespace GpuActivations;

/// <summary>
/// Argument checks shared by every accelerator and the span API. Each failure names the argument and says
/// what was expected; every check runs before any output is written, so a rejected call changes nothing.
/// </summary>
internal static class Guard
{
    /// <summary>The view is backed by a live buffer.</summary>
    public static void Live<T>(BufferView<T> view, string name) where T : unmanaged
    {
        if (view.Buffer is null)
            throw new ArgumentNullException(name,
                $"{name} has no buffer: a default BufferView, or an ILGPU view of a buffer already disposed; pass a live buffer's view.");
        if (view.Buffer.IsDisposed)
            throw new ObjectDisposedException(name, $"{name} refers to a disposed buffer (or one whose accelerator was disposed).");
    }

    /// <summary>The view is live and belongs to <paramref name="accelerator"/>.</summary>
    public static void On<T>(Accelerator accelerator, BufferView<T> view, string name) where T : unmanaged
    {
        Live(view, name);
        if (!accelerator.SharesMemoryWith(view.Buffer.Accelerator))
            throw new ArgumentException(
                $"{name} belongs to {view.Buffer.Accelerator.Info} but the op runs on {accelerator.Info}; copy it to this accelerator first.", name);
    }

    /// <summary>Two lengths are equal.</summary>
    public static void SameLength(long expected, long actual, string expectedName, string actualName)
    {
        if (expected != actual)
            throw new ArgumentException($"{actualName} has {actual} elements but {expectedName} has {expected}; they must be equal.", actualName);
    }

    /// <summary>An exact length.</summary>
    public static void Length(long actual, long expected, string name, string what)
    {
        if (actual != expected)
            throw new ArgumentException($"{name} has {actual} elements but {what} = {expected}.", name);
    }

    /// <summary>rows &gt;= 0, cols &gt;= 1, and rows * cols fits in 64 bits; returns the product.</summary>
    public static long Shape(long rows, long cols, [CallerArgumentExpression(nameof(rows))] string rowsName = "rows",
        [CallerArgumentExpression(nameof(cols))] string colsName = "cols")
    {
        if (rows < 0) throw new ArgumentOutOfRangeException(rowsName, rows, $"{rowsName} must be >= 0.");
        if (cols < 1) throw new ArgumentOutOfRangeException(colsName, cols, $"{colsName} must be >= 1.");
        try
        {
            return checked(rows * cols);
        }
        catch (OverflowException)
        {
            throw new ArgumentOutOfRangeException(rowsName, rows, $"{rowsName} * {colsName} = {rows} * {cols} overflows a 64-bit length.");
        }
    }

    /// <summary>Input and output views are either the same range (in place) or disjoint.</summary>
    public static void NoPartialOverlap<T>(BufferView<T> input, BufferView<T> output, string inputName, string outputName) where T : unmanaged
        => NoPartialOverlap(TensorArg.Of(input, inputName), TensorArg.Of(output, outputName), inputName, outputName);

    /// <summary>
    /// Tensor arguments are either the same range of the same type (in place) or disjoint, compared as bytes of memory:
    /// two wrappers of one host pointer, or views of different element types over the same bytes, are the same memory.
    /// </summary>
    public static void NoPartialOverlap(TensorArg input, TensorArg output, string inputName, string outputName)
    {
        if (!Bytes(input, output, out var a, out var b)) return;
        if (input.Type != output.Type && a.Length > 0 && b.Length > 0 && a.Start < b.Start + b.Length && b.Start < a.Start + a.Length)
            throw PartialOverlap(inputName, outputName);
        Overlap(a.Start, a.Length, b.Start, b.Length, inputName, outputName);
    }

    /// <summary>
    /// The byte ranges of two tensors in one address space: host and CUDA memory are compared by address (a wrapper of a
    /// pointer into another buffer shares its bytes); an OpenCL memory object only with itself. False when they cannot overlap.
    /// </summary>
    static bool Bytes(TensorArg x, TensorArg y, out (long Start, long Length) a, out (long Start, long Length) b)
    {
        a = (x.Offset * x.Type.Size(), x.Length * x.Type.Size());
        b = (y.Offset * y.Type.Size(), y.Length * y.Type.Size());
        if (ReferenceEquals(x.Storage, y.Storage)) return true;
        if (x.Storage is null || y.Storage is null || !Equals(x.Storage.AddressSpace, y.Storage.AddressSpace)) return false;
        a.Start += x.Storage.Address;
        b.Start += y.Storage.Address;
        return true;
    }

    /// <summary>Spans are either the same memory (in place) or disjoint (any element type, as bytes).</summary>
    public static void NoPartialOverlap(ReadOnlySpan<byte> input, ReadOnlySpan<byte> output, string inputName, string outputName)
    {
        if (input.IsEmpty || output.IsEmpty || !input.Overlaps(output, out int offset)) return;
        if (offset == 0 && input.Length == output.Length) return;
        throw PartialOverlap(inputName, outputName);
    }

    /// <summary>Spans are either the same memory (in place) or disjoint.</summary>
    public static void NoPartialOverlap(ReadOnlySpan<float> input, ReadOnlySpan<float> output, string inputName, string outputName)
        => NoPartialOverlap(System.Runtime.InteropServices.MemoryMarshal.AsBytes(input), System.Runtime.InteropServices.MemoryMarshal.AsBytes(output), inputName, outputName);

    /// <summary>
    /// Two views share no element, not even exactly (an output written while the other is read, or a reduction);
    /// <paramref name="why"/>, when given, ends the message.
    /// </summary>
    public static void Disjoint<T>(BufferView<T> a, BufferView<T> b, string aName, string bName, string? why = null) where T : unmanaged
        => Disjoint(TensorArg.Of(a, aName), TensorArg.Of(b, bName), aName, bName, why);

    /// <summary>Two tensor arguments share no byte of memory (compared as <see cref="NoPartialOverlap(TensorArg, TensorArg, string, string)"/> does).</summary>
    public static void Disjoint(TensorArg a, TensorArg b, string aName, string bName, string? why = null)
    {
        if (Bytes(a, b, out var x, out var y)) Disjoint(x.Start, x.Length, y.Start, y.Length, aName, bName, why);
    }

    /// <summary>Two spans share no element.</summary>
    public static void Disjoint(ReadOnlySpan<float> a, ReadOnlySpan<float> b, string aName, string bName, string? why = null)
    {
        if (a.Overlaps(b)) throw Overlapping(aName, bName, why);
    }

    /// <summary>Two spans share no byte (spans of different element types viewed as bytes).</summary>
    public static void Disjoint(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, string aName, string bName, string? why = null)
    {
        if (a.Overlaps(b)) throw Overlapping(aName, bName, why);
    }

    static void Disjoint(long aStart, long aLength, long bStart, long bLength, string aName, string bName, string? why)
    {
        if (aLength > 0 && bLength > 0 && aStart < bStart + bLength && bStart < aStart + aLength) throw Overlapping(aName, bName, why);
    }

    static ArgumentException Overlapping(string aName, string bName, string? why) => new(
        $"{bName} overlaps {aName}; " + (why ?? $"{bName} must be disjoint from it (not even in place). Use a separate buffer."), bName);

    static void Overlap(long aStart, long aLength, long bStart, long bLength, string inputName, string outputName)
    {
        if (aLength == 0 || bLength == 0) return;
        bool disjoint = aStart + aLength <= bStart || bStart + bLength <= aStart;
        if (disjoint || (aStart == bStart && aLength == bLength)) return;
        throw PartialOverlap(inputName, outputName);
    }

    static ArgumentException PartialOverlap(string inputName, string outputName) => new(
        $"{outputName} partially overlaps {inputName}: an output may be exactly its input (in place) or disjoint from it, nothing in between.",
        outputName);
}
