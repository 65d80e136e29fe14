using System.Runtime.InteropServices;

namespace GpuActivations.Cpu;

/// <summary>
/// One tensor of a staged op: its host address, element type, elements per row (0 for a tensor every row shares,
/// like PReLU's slopes) and whether the op reads and/or writes it.
/// </summary>
internal readonly record struct StagedTensor(nint Pointer, StorageType Type, long RowLength, bool Reads, bool Writes)
{
    /// <summary>An input tensor.</summary>
    public static StagedTensor In(TensorArg t, long rowLength) => new(t.HostPointer, t.Type, rowLength, true, false);
    /// <summary>An output tensor.</summary>
    public static StagedTensor Out(TensorArg t, long rowLength) => new(t.HostPointer, t.Type, rowLength, false, true);
}

/// <summary>The float32 kernel of a staged op on <paramref name="rows"/> rows; <paramref name="pointers"/> follow the tensors' order.</summary>
internal delegate void TileKernel(ReadOnlySpan<nint> pointers, long rows);

/// <summary>
/// fp16/bf16 storage for every CPU op without a second set of kernels: rows are converted a tile at a time into
/// float32 scratch that stays in cache, the float32 kernel runs on the tile, and its outputs are rounded once into
/// their storage. Memory traffic stays that of the storage type (the scratch never leaves L1/L2). float32 tensors
/// are passed through untouched, so mixed ops (bf16 logits in, float32 probabilities out) convert only what needs it.
/// Exact in-place calls stay correct: a tile's inputs are all read before its outputs are written.
/// </summary>
internal static unsafe class Staging
{
    /// <summary>Elements per tensor a tile aims for: 64 KiB of floats, so a few tensors' tiles sit in L2 and the per-tile overhead (about half a microsecond) stays small.</summary>
    const long TileElements = 16384;

    /// <summary>The longest row a 16-bit tensor is staged in: one span of float32 scratch (int.MaxValue elements).</summary>
    public const long MaxStagedRow = int.MaxValue;

    /// <summary>
    /// Runs <paramref name="kernel"/> over <paramref name="rows"/> rows in float32 tiles, split across cores when large; with
    /// <paramref name="serial"/>, on the calling thread with the tiles in row order (for kernels that reduce over rows,
    /// like PReLU's dAlpha). Refuses, before anything is written, a 16-bit tensor with rows longer than
    /// <see cref="MaxStagedRow"/>, naming <paramref name="widthName"/> (the parameter that sets the row length).
    /// </summary>
    public static void Run(long rows, StagedTensor[] tensors, TileKernel kernel, bool serial = false, string widthName = "cols")
    {
        if (rows == 0 || Array.TrueForAll(tensors, t => t.Type == StorageType.Float32))
        {
            // Nothing to convert: the float32 kernel takes the whole op and splits it across cores itself (with no rows it
            // reads no tensor data, but may still write per-op results such as PReLU's zero dAlpha).
            Span<nint> direct = stackalloc nint[tensors.Length];
            for (int i = 0; i < tensors.Length; i++) direct[i] = tensors[i].Pointer;
            kernel(direct, rows);
            return;
        }
        long widest = 1;
        foreach (var t in tensors) widest = Math.Max(widest, t.RowLength);
        // A tile holds at least one whole row in float32 scratch (the kernel needs the row at once), converted as one span.
        long widestStaged = 0;
        foreach (var t in tensors) if (t.Type != StorageType.Float32) widestStaged = Math.Max(widestStaged, t.RowLength);
        CheckRowLength(widestStaged, widthName);
        long tileRows = Math.Max(1, TileElements / widest);
        int parts = serial ? 1 : (int)Math.Min(CpuParallel.Parts(rows * widest), rows);
        CpuParallel.For(rows, parts, (start, count) => Part(tensors, kernel, start, count, tileRows), alignment: 1);
    }

    /// <summary>
    /// Refuses (ArgumentOutOfRangeException naming <paramref name="widthName"/>) a 16-bit row longer than
    /// <see cref="MaxStagedRow"/>: it is converted whole into one span of float32 scratch.
    /// </summary>
    public static void CheckRowLength(long rowLength, string widthName)
    {
        if (rowLength > MaxStagedRow)
            throw new ArgumentOutOfRangeException(widthName, rowLength,
                $"{widthName} gives rows of {rowLength} elements: fp16/bf16 rows on the CPU are converted a whole row at a time into float32 "
                + $"scratch, at most {MaxStagedRow} elements per row. Store this tensor as float32, or use a device accelerator.");
    }

    static void Part(StagedTensor[] tensors, TileKernel kernel, long start, long count, long tileRows)
    {
        int n = tensors.Length;
        Span<nint> scratch = stackalloc nint[n];
        Span<nint> pointers = stackalloc nint[n];
        try
        {
            for (int i = 0; i < n; i++)
                if (tensors[i].Type != StorageType.Float32)
                    scratch[i] = (nint)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, tileRows * tensors[i].RowLength) * sizeof(float)), 64);
            for (long row = start; row < start + count; row += tileRows)
            {
                long tile = Math.Min(tileRows, start + count - row);
                for (int i = 0; i < n; i++)
                {
                    var t = tensors[i];
                    nint at = t.Pointer + (nint)(row * t.RowLength * t.Type.Size());
                    if (t.Type == StorageType.Float32) { pointers[i] = at; continue; }
                    pointers[i] = scratch[i];
                    if (t.Reads) Conversions.ToSingle(t.Type, at, (float*)scratch[i], checked((int)(tile * t.RowLength)));
                }
                kernel(pointers, tile);
                for (int i = 0; i < n; i++)
                {
                    var t = tensors[i];
                    if (t.Writes && t.Type != StorageType.Float32)
                        Conversions.FromSingle(t.Type, (float*)scratch[i], t.Pointer + (nint)(row * t.RowLength * t.Type.Size()), checked((int)(tile * t.RowLength)));
                }
            }
        }
        finally
        {
            foreach (nint p in scratch) if (p != 0) NativeMemory.AlignedFree((void*)p);
        }
    }
}
