namespace GpuActivations.Cpu;

/// <summary>
/// A row-wise op in two passes, as <see cref="RowDriver"/> runs it: <see cref="Reduce"/> reads a slice of a row into a
/// state (and may write that slice's output), <see cref="Merge"/> combines the states of a row's slices in order, and
/// <see cref="Write"/> writes a slice from its own state and the row's.
/// </summary>
internal interface IRowOp<TState> where TState : struct
{
    /// <summary>The state of columns [start, start + count) of <paramref name="row"/>.</summary>
    TState Reduce(long row, long start, long count);

    /// <summary>The state of two adjacent slices, <paramref name="a"/> first.</summary>
    TState Merge(in TState a, in TState b);

    /// <summary>Writes columns [start, start + count) of <paramref name="row"/> given the slice's and the whole row's state.</summary>
    void Write(long row, long start, long count, in TState slice, in TState whole);
}

/// <summary>
/// Runs an <see cref="IRowOp{TState}"/> over [rows, cols]: rows spread over cores in claimed chunks when there are enough;
/// a row too long for one core cut into slices that every core reduces, whose states merge (in column order) before
/// every slice is written (so a 262144-column row uses every core); small work on the calling thread. Every slice is
/// reduced before any slice of its row is written.
/// </summary>
internal static class RowDriver
{
    /// <summary>
    /// Sets <paramref name="count"/> floats from <paramref name="p"/> to <paramref name="value"/>: a row writer's fill of a
    /// special row (NaN, empty, ignored), in spans of at most int.MaxValue elements, since one slice of a long row can
    /// hold more (a row of 2^32 columns split over two cores).
    /// </summary>
    public static unsafe void Fill(float* p, long count, float value)
    {
        for (long done = 0; done < count;)
        {
            int n = (int)Math.Min(count - done, int.MaxValue);
            new Span<float>(p + done, n).Fill(value);
            done += n;
        }
    }

    /// <summary>Elements per chunk of rows (or slice of a long row) before a chunk is worth a claim of its own: 64 KiB of floats.</summary>
    const long ChunkElements = 1 << 14;

    /// <summary>Chunks per core: enough that a core slowed by another process hands the rest of its share to the others.</summary>
    const int ChunksPerPart = 8;

    /// <summary>Runs <paramref name="op"/> on every row of [rows, cols].</summary>
    public static void Run<TOp, TState>(TOp op, long rows, long cols) where TOp : struct, IRowOp<TState> where TState : struct
    {
        if (rows == 0) return;
        int parts = CpuParallel.Parts(rows * cols);
        if (parts > 1 && rows >= parts)
        {
            // Rows in chunks claimed by the cores (CpuParallel.Phases), each row reduced and written by one core.
            long chunkRows = Math.Max(Math.Max(1, ChunkElements / cols), rows / ((long)parts * ChunksPerPart));
            long chunks = (rows + chunkRows - 1) / chunkRows;
            CpuParallel.Phases(chunks, parts, c =>
            {
                long end = Math.Min(rows, (c + 1) * chunkRows);
                for (long r = c * chunkRows; r < end; r++) Row<TOp, TState>(op, r, cols);
            });
        }
        else
        {
            for (long r = 0; r < rows; r++)
            {
                if (parts > 1) SplitRow<TOp, TState>(op, r, cols);
                else Row<TOp, TState>(op, r, cols);
            }
        }
    }

    static void Row<TOp, TState>(TOp op, long row, long cols) where TOp : struct, IRowOp<TState> where TState : struct
    {
        TState state = op.Reduce(row, 0, cols);
        op.Write(row, 0, cols, state, state);
    }

    /// <summary>
    /// One long row over every core: slices of at least <see cref="ChunkElements"/> (a multiple of 16 floats, so slices
    /// start on whole cache lines of the row), reduced in any order, merged in column order (so the result does not depend
    /// on which core took which slice), then written.
    /// </summary>
    static void SplitRow<TOp, TState>(TOp op, long row, long cols) where TOp : struct, IRowOp<TState> where TState : struct
    {
        int parts = CpuParallel.Parts(cols);
        if (parts == 1)
        {
            Row<TOp, TState>(op, row, cols);
            return;
        }
        long slices = Math.Clamp(cols / ChunkElements, parts, (long)parts * ChunksPerPart / 2);
        long slice = ((cols + slices - 1) / slices + 15) / 16 * 16;
        slices = (cols + slice - 1) / slice;
        var states = new TState[slices];
        TState whole = default;
        CpuParallel.Phases(slices, parts,
            c => states[c] = op.Reduce(row, c * slice, Math.Min(slice, cols - c * slice)),
            () =>
            {
                whole = states[0];
                for (long c = 1; c < slices; c++) whole = op.Merge(whole, states[c]);
            },
            c => op.Write(row, c * slice, Math.Min(slice, cols - c * slice), states[c], whole));
    }
}
