using System.Runtime.ExceptionServices;

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

    /// <summary>
    /// Runs <paramref name="first"/>(c) for every chunk c in [0, <paramref name="chunks"/>), then <paramref name="between"/>
    /// once, then <paramref name="second"/>(c) for every chunk (null: no second phase), on the calling thread and
    /// <paramref name="parts"/> - 1 thread-pool workers. Every chunk of a phase completes before anything of the next starts.
    /// <para>
    /// Why not two <c>Parallel.For</c> calls: one fork serves both phases (a split softmax row is tens of microseconds of
    /// work, where each fork and join costs microseconds), and chunks are claimed, not assigned: each participant takes
    /// the chunks of its own contiguous region first (so a chunk's second phase usually runs on the core whose cache
    /// holds it from the first) and then helps with the others'. On a loaded machine a worker that never gets a core
    /// leaves its chunks to the others instead of stalling the call; the caller alone completes everything if need be.
    /// </para>
    /// Which thread runs a chunk never changes what it computes, so results do not depend on timing. A worker that
    /// starts after the call returned finds nothing to claim and never calls the delegates. The first exception thrown
    /// by any chunk is rethrown on the calling thread once every chunk has run.
    /// </summary>
    public static void Phases(long chunks, int parts, Action<long> first, Action? between = null, Action<long>? second = null)
    {
        parts = (int)Math.Clamp(Math.Min(parts, chunks), 1, int.MaxValue);
        if (parts == 1)
        {
            for (long c = 0; c < chunks; c++) first(c);
            between?.Invoke();
            if (second != null) for (long c = 0; c < chunks; c++) second(c);
            return;
        }
        var work = new PhasedWork(chunks, parts, first, between, second);
        for (int p = 1; p < parts; p++) ThreadPool.UnsafeQueueUserWorkItem(static s => s.Item1.Participate(s.Item2), (work, p), preferLocal: false);
        work.Participate(0);
        work.WaitForAll();
    }

    /// <summary>The shared state of one <see cref="Phases"/> call: per-region claim counters and completion counts.</summary>
    sealed class PhasedWork(long chunks, int parts, Action<long> first, Action? between, Action<long>? second)
    {
        readonly long[] next1 = Starts(chunks, parts), next2 = Starts(chunks, parts);
        long done1, done2;
        int betweenState; // 0: not started, 1: running, 2: done
        ExceptionDispatchInfo? failure;

        static long[] Starts(long chunks, int parts)
        {
            // Region r is [r * chunks / parts, (r + 1) * chunks / parts); its counter starts at the region's start.
            var starts = new long[parts];
            for (int r = 0; r < parts; r++) starts[r] = RegionStart(chunks, parts, r);
            return starts;
        }

        static long RegionStart(long chunks, int parts, int r) => (long)((Int128)chunks * r / parts);

        public void Participate(int p)
        {
            RunPhase(next1, p, first, ref done1);
            SpinUntil(ref done1);
            if (Interlocked.CompareExchange(ref betweenState, 1, 0) == 0)
            {
                try { between?.Invoke(); }
                catch (Exception e) { Fail(e); }
                Volatile.Write(ref betweenState, 2);
            }
            else
            {
                var spin = new SpinWait();
                while (Volatile.Read(ref betweenState) != 2) spin.SpinOnce(sleep1Threshold: -1);
            }
            if (second != null) RunPhase(next2, p, second, ref done2);
        }

        /// <summary>Waits until every chunk of the last phase has run, then rethrows the first failure.</summary>
        public void WaitForAll()
        {
            if (second != null) SpinUntil(ref done2);
            failure?.Throw();
        }

        void RunPhase(long[] next, int p, Action<long> body, ref long done)
        {
            for (int k = 0; k < parts; k++)
            {
                int r = (p + k) % parts;
                long end = RegionStart(chunks, parts, r + 1);
                while (true)
                {
                    // Read first, so that a late participant does not push exhausted counters further.
                    if (Volatile.Read(ref next[r]) >= end) break;
                    long c = Interlocked.Increment(ref next[r]) - 1;
                    if (c >= end) break;
                    try { body(c); }
                    catch (Exception e) { Fail(e); }
                    finally { Interlocked.Increment(ref done); }
                }
            }
        }

        void SpinUntil(ref long done)
        {
            // Only chunks already claimed by running participants remain: this ends. No Sleep(1) (a millisecond is far
            // longer than any chunk); past the spinning phase SpinWait yields, so a descheduled participant gets the core.
            var spin = new SpinWait();
            while (Volatile.Read(ref done) < chunks) spin.SpinOnce(sleep1Threshold: -1);
        }

        void Fail(Exception e) => Interlocked.CompareExchange(ref failure, ExceptionDispatchInfo.Capture(e), null);
    }
}
