namespace GpuActivations.Cpu;

/// <summary>
/// Splits large work across cores and runs small work on the calling thread: below
/// <see cref="MinimumPerCore"/> elements per core the cost of waking a thread (microseconds) exceeds the work.
/// </summary>
internal static class CpuParallel
{
    /// <summary>Elements a core must get before a split pays (256 KiB of floats, far more than a wake-up costs).</summary>
    public const long MinimumPerCore = 1 << 16;

    /// <summary>How many parts <paramref name="count"/> items are worth splitting into.</summary>
    public static int Parts(long count, long minimumPerPart = MinimumPerCore)
        => (int)Math.Clamp(count / Math.Max(1, minimumPerPart), 1, Environment.ProcessorCount);

    /// <summary>Calls <paramref name="body"/>(start, count) over [0, total) in <paramref name="parts"/> contiguous ranges, aligned to <paramref name="alignment"/> items.</summary>
    public static void For(long total, int parts, Action<long, long> body, long alignment = 16)
    {
        if (parts <= 1 || total == 0)
        {
            body(0, total);
            return;
        }
        long chunk = (total + parts - 1) / parts;
        chunk = (chunk + alignment - 1) / alignment * alignment;
        int used = (int)((total + chunk - 1) / chunk);
        Parallel.For(0, used, new ParallelOptions { MaxDegreeOfParallelism = parts }, p =>
        {
            long start = p * chunk;
            body(start, Math.Min(chunk, total - start));
        });
    }
}
