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
            throw new ArgumentNullException(name, $"{name} is a default BufferView with no buffer; allocate one with Accelerator.Allocate.");
        if (view.Buffer.IsDisposed)
            throw new ObjectDisposedException(name, $"{name} refers to a disposed buffer (or one whose accelerator was disposed).");
    }

    /// <summary>The view is live and belongs to <paramref name="accelerator"/>.</summary>
    public static void On<T>(Accelerator accelerator, BufferView<T> view, string name) where T : unmanaged
    {
        Live(view, name);
        if (!ReferenceEquals(view.Buffer.Accelerator, accelerator))
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
    {
        if (!ReferenceEquals(input.Buffer.Storage, output.Buffer.Storage)) return;
        Overlap(input.Offset, input.Length, output.Offset, output.Length, inputName, outputName);
    }

    /// <summary>Two views share no element (an output that cannot be computed in place); <paramref name="why"/> ends the message.</summary>
    public static void Disjoint<T>(BufferView<T> a, BufferView<T> b, string aName, string bName, string why) where T : unmanaged
    {
        if (!ReferenceEquals(a.Buffer.Storage, b.Buffer.Storage) || a.Length == 0 || b.Length == 0) return;
        if (a.Offset < b.Offset + b.Length && b.Offset < a.Offset + a.Length)
            throw new ArgumentException($"{bName} overlaps {aName}; {why}", bName);
    }

    /// <summary>Spans are either the same memory (in place) or disjoint.</summary>
    public static void NoPartialOverlap(ReadOnlySpan<float> input, ReadOnlySpan<float> output, string inputName, string outputName)
    {
        if (input.IsEmpty || output.IsEmpty || !input.Overlaps(output, out int offset)) return;
        if (offset == 0 && input.Length == output.Length) return;
        throw PartialOverlap(inputName, outputName);
    }

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
