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
/// Runs an <see cref="IRowOp{TState}"/> over [rows, cols]: rows spread over cores when there are enough; a row too long
/// for one core cut into one slice per core, whose states merge before every slice is written (so a 262144-column row
/// uses every core); small work on the calling thread. Every slice is reduced before any slice of its row is written.
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

    /// <summary>Runs <paramref name="op"/> on every row of [rows, cols].</summary>
    public static void Run<TOp, TState>(TOp op, long rows, long cols) where TOp : struct, IRowOp<TState> where TState : struct
    {
        if (rows == 0) return;
        int parts = CpuParallel.Parts(rows * cols);
        if (parts > 1 && rows >= parts)
        {
            CpuParallel.For(rows, parts, (start, count) =>
            {
                for (long r = start; r < start + count; r++) Row<TOp, TState>(op, r, cols);
            }, alignment: 1);
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

    static void SplitRow<TOp, TState>(TOp op, long row, long cols) where TOp : struct, IRowOp<TState> where TState : struct
    {
        int parts = CpuParallel.Parts(cols);
        if (parts == 1)
        {
            Row<TOp, TState>(op, row, cols);
            return;
        }
        var states = new TState[parts];
        long chunk = (cols + parts - 1) / parts;
        Parallel.For(0, parts, p =>
        {
            long start = p * chunk;
            states[p] = op.Reduce(row, start, Math.Min(chunk, cols - start));
        });
        TState whole = states[0];
        for (int p = 1; p < parts; p++) whole = op.Merge(whole, states[p]);
        Parallel.For(0, parts, p =>
        {
            long start = p * chunk;
            op.Write(row, start, Math.Min(chunk, cols - start), states[p], whole);
        });
    }
}
