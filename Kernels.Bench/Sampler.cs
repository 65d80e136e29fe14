using System.Diagnostics;

namespace GpuActivations.Bench;

/// <summary>One measurement: the median time of one call and what it rests on.</summary>
/// <param name="Median">Median seconds per call.</param>
/// <param name="Lower">25th percentile, seconds per call.</param>
/// <param name="Upper">75th percentile, seconds per call.</param>
/// <param name="Samples">Samples taken after warm-up.</param>
/// <param name="Batch">Calls per sample (then one synchronize).</param>
/// <param name="HostCores">Process CPU time over wall time while sampling: about 1 for one busy thread, 2 for two.</param>
public sealed record Timing(double Median, double Lower, double Upper, int Samples, int Batch, double HostCores)
{
    /// <summary>Bytes per second for <paramref name="bytes"/> moved per call, in GB/s (10^9).</summary>
    public double GBps(long bytes) => bytes / Median / 1e9;
}

/// <summary>
/// Times calls the way a memory-bound kernel needs: warm up (JIT, thread pool, page faults, caches), then take
/// samples of <c>batch</c> calls plus one synchronize, batch chosen so a sample lasts a couple of milliseconds
/// (so timer and launch overhead vanish for small sizes), until enough samples and time have passed; report the
/// median. With a baseline the op's and the baseline's samples alternate, so drift on a shared machine moves
/// both alike and their ratio holds.
/// </summary>
public sealed class Sampler
{
    /// <summary>Minimum seconds of samples (each of op and baseline).</summary>
    public double MinSeconds { get; init; } = 0.4;
    /// <summary>Stop after this many seconds once <see cref="FloorSamples"/> are taken.</summary>
    public double MaxSeconds { get; init; } = 4;
    /// <summary>Minimum samples.</summary>
    public int MinSamples { get; init; } = 15;
    /// <summary>Samples below which <see cref="MaxSeconds"/> does not stop the loop.</summary>
    public int FloorSamples { get; init; } = 5;
    /// <summary>Maximum samples.</summary>
    public int MaxSamples { get; init; } = 2000;
    /// <summary>Seconds one sample should last at least.</summary>
    public double SampleSeconds { get; init; } = 0.002;
    /// <summary>Seconds of warm-up (at least two calls).</summary>
    public double WarmupSeconds { get; init; } = 0.15;

    /// <summary>Times <paramref name="op"/> alone.</summary>
    public Timing Measure(Action op, Action synchronize) => Measure(op, synchronize, null, null).Op;

    /// <summary>Times <paramref name="op"/> and, interleaved with it, <paramref name="baseline"/>.</summary>
    public (Timing Op, Timing? Baseline) Measure(Action op, Action synchronize, Action? baseline, Action? baselineSynchronize)
    {
        if (baseline is null) return (MeasureInterleaved([(op, synchronize)])[0], null);
        var timings = MeasureInterleaved([(op, synchronize), (baseline, baselineSynchronize ?? synchronize)]);
        return (timings[0], timings[1]);
    }

    /// <summary>
    /// Times every call of <paramref name="calls"/>, their samples interleaved (one sample of each in turn), so drift on
    /// a shared machine moves them alike; the timings in the same order. The first call is the op: the loop stops once
    /// each has <see cref="MinSeconds"/> of samples, or on the op's sample count.
    /// </summary>
    public Timing[] MeasureInterleaved(IReadOnlyList<(Action Call, Action Synchronize)> calls)
    {
        var series = calls.Select(c => new Series(c.Call, c.Synchronize, this)).ToArray();
        foreach (var s in series) s.WarmUp();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            foreach (var s in series) s.Sample();
            int n = series[0].Count;
            if (n >= MaxSamples) break;
            if (n >= MinSamples && series.All(s => s.Elapsed >= MinSeconds)) break;
            if (n >= FloorSamples && clock.Elapsed.TotalSeconds >= MaxSeconds) break;
        }
        return [.. series.Select(s => s.Result())];
    }

    sealed class Series(Action call, Action synchronize, Sampler sampler)
    {
        readonly List<double> perCall = [];
        int batch = 1;
        double wall, cpu;

        public int Count => perCall.Count;
        public double Elapsed => wall;

        public void WarmUp()
        {
            var clock = Stopwatch.StartNew();
            double fastest = double.MaxValue;
            int calls = 0;
            while (calls < 2 || clock.Elapsed.TotalSeconds < sampler.WarmupSeconds)
            {
                long start = Stopwatch.GetTimestamp();
                call();
                synchronize();
                fastest = Math.Min(fastest, Stopwatch.GetElapsedTime(start).TotalSeconds);
                calls++;
                if (calls >= 100_000) break;
            }
            batch = (int)Math.Clamp(Math.Ceiling(sampler.SampleSeconds / Math.Max(fastest, 1e-9)), 1, 1_000_000);
        }

        public void Sample()
        {
            var cpuStart = Environment.CpuUsage.TotalTime;
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < batch; i++) call();
            synchronize();
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            cpu += (Environment.CpuUsage.TotalTime - cpuStart).TotalSeconds;
            wall += seconds;
            perCall.Add(seconds / batch);
        }

        public Timing Result()
        {
            var sorted = perCall.Order().ToArray();
            return new Timing(Quantile(sorted, 0.5), Quantile(sorted, 0.25), Quantile(sorted, 0.75), sorted.Length, batch, wall > 0 ? cpu / wall : 0);
        }
    }

    /// <summary>The <paramref name="q"/> quantile of sorted values, interpolated.</summary>
    public static double Quantile(double[] sorted, double q)
    {
        if (sorted.Length == 0) return double.NaN;
        double position = q * (sorted.Length - 1);
        int low = (int)Math.Floor(position);
        int high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }
}
