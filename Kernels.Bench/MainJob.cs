using System.Diagnostics;
using System.Runtime.InteropServices;
using GpuActivations.Cpu;

namespace GpuActivations.Bench;

/// <summary>
/// The main job: find every accelerator, verify every op on each against the scalar reference, benchmark them
/// against the same run's copy bandwidth and the CPU peers, then print the table and write the report and plots.
/// </summary>
public static class MainJob
{
    /// <summary>Runs the job; returns the process exit code (0 all within tolerance, 1 not, 2 bad arguments).</summary>
    public static int Run(BenchOptions options, string command)
    {
        List<BenchOp> ops;
        try { ops = Catalog.Select(options.Ops); }
        catch (ArgumentException e) { Console.Error.WriteLine(e.Message); return 2; }

        var results = new RunResults { Command = command, Smoke = options.Smoke, Machine = MachineDescription(), LoadAtStart = LoadAverage() };
        if (options.TorchResults is not null) results.Torch = TorchResults.Load(options.TorchResults);

        // Discovery: every kind, present or not, so the report says why one is missing.
        foreach (var kind in Enum.GetValues<AcceleratorKind>())
        {
            var availability = Accelerator.Probe(kind);
            if (!availability.IsAvailable) results.Absent.Add(new(kind, availability.Reason ?? "no device"));
        }
        var selected = SelectAccelerators(options.Accelerators, out string? error);
        if (error is not null) { Console.Error.WriteLine(error); return 2; }
        results.Accelerators.AddRange(selected);

        Console.WriteLine($"Kernels.Bench {(options.Smoke ? "(smoke) " : "")}on {results.Machine}");
        foreach (var info in selected) Console.WriteLine($"  accelerator {Label(info)}: {info}");
        foreach (var absent in results.Absent) Console.WriteLine($"  absent {absent.Kind}: {absent.Reason}");
        Console.WriteLine();

        var progress = new ProgressLine();
        var accelerators = new List<(AcceleratorInfo Info, Accelerator Accelerator)>();
        try
        {
            foreach (var info in selected) accelerators.Add((info, Accelerator.Create(info)));

            if (options.Verify)
            {
                foreach (var (info, acc) in accelerators)
                    results.Verification.AddRange(Verification.Run(acc, Label(info), ops, options.Smoke, progress.Report));
                progress.Clear();
                Console.WriteLine("Verification against the scalar double reference (Kernels.Cpu):");
                Console.WriteLine(Report.VerificationTable(results).ToConsole());
                if (!results.VerificationPassed) Console.WriteLine("VERIFICATION FAILED: see the rows marked FAIL.");
                Console.WriteLine();
            }

            if (options.Benchmark)
            {
                var plan = new BenchPlan(options, ops, accelerators, results);
                plan.Execute(progress);
                progress.Clear();
                Console.WriteLine(Report.Console(results));
            }

            // The activation plots come from the first accelerator's kernels (the CPU unless --accelerators says otherwise).
            if (accelerators.Count > 0)
            {
                string plots = Path.Combine(options.OutDir, "plots");
                results.ActivationPlots.AddRange(ActivationPlots.Write(accelerators[0].Accelerator, plots).Select(f => "plots/" + f));
            }
        }
        finally
        {
            foreach (var (_, acc) in accelerators) acc.Dispose();
        }

        results.LoadAtEnd = LoadAverage();
        Directory.CreateDirectory(options.OutDir);
        if (options.Benchmark) results.ThroughputPlots.AddRange(Report.WriteThroughputPlots(results, Path.Combine(options.OutDir, "plots")));
        string reportPath = Path.Combine(options.OutDir, "report.md");
        File.WriteAllText(reportPath, Report.Markdown(results));
        File.WriteAllText(Path.Combine(options.OutDir, "results.json"), Report.Json(results));
        Console.WriteLine($"Report: {reportPath} (and results.json, plots/ beside it)");
        return results.VerificationPassed ? 0 : 1;
    }

    /// <summary>"Cpu#0", "OpenCL#1": the short label of an accelerator in tables.</summary>
    public static string Label(AcceleratorInfo info) => $"{info.Kind}#{info.DeviceIndex}";

    /// <summary>
    /// Whether the default sizes of a GPU apply: CUDA devices and OpenCL devices that say GPU (the rule of
    /// <see cref="Accelerator.Best"/>). Only the problem sizes depend on it; every op runs the same way everywhere.
    /// </summary>
    public static bool IsGpuClass(AcceleratorInfo info) => info.Kind == AcceleratorKind.Cuda || info.Details.Contains("GPU", StringComparison.Ordinal);

    static List<AcceleratorInfo> SelectAccelerators(IReadOnlyList<string> selectors, out string? error)
    {
        error = null;
        var all = Accelerator.Enumerate();
        if (selectors.Count == 0) return [.. all];
        var chosen = new List<AcceleratorInfo>();
        foreach (string s in selectors)
        {
            string[] parts = s.Split('#');
            if (!Enum.TryParse<AcceleratorKind>(parts[0], ignoreCase: true, out var kind))
            {
                error = $"--accelerators: unknown kind '{parts[0]}' (cpu, opencl, cuda).";
                return [];
            }
            var matches = all.Where(i => i.Kind == kind && (parts.Length < 2 || i.DeviceIndex.ToString() == parts[1])).ToList();
            if (matches.Count == 0)
            {
                var availability = Accelerator.Probe(kind);
                error = $"--accelerators: {s} is not present: {availability.Reason ?? $"{availability.Devices.Count} device(s) of that kind"}.";
                return [];
            }
            chosen.AddRange(matches.Where(m => !chosen.Contains(m)));
        }
        return chosen;
    }

    /// <summary>The 1, 5 and 15-minute load averages (Linux), or "" elsewhere.</summary>
    public static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    /// <summary>CPU model, cores, SIMD, memory, OS and runtime.</summary>
    public static string MachineDescription()
    {
        var cpu = Accelerator.Probe(AcceleratorKind.Cpu).Devices.FirstOrDefault();
        string memory = $"{GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024):0} GiB";
        return $"{cpu?.Name ?? "CPU"} ({Environment.ProcessorCount} cores, {cpu?.Details.Split(", ").LastOrDefault() ?? "?"}), {memory}, "
            + $"{RuntimeInformation.OSDescription}, .NET {Environment.Version}";
    }
}

/// <summary>Progress on one line of stderr (rewritten in place on a terminal, one line per step otherwise).</summary>
public sealed class ProgressLine
{
    readonly Stopwatch clock = Stopwatch.StartNew();
    readonly bool interactive = !Console.IsErrorRedirected;
    int width;

    /// <summary>Total steps, when known (shown as [k/N]).</summary>
    public int Total { get; set; }
    /// <summary>Steps done.</summary>
    public int Done { get; set; }

    /// <summary>Shows <paramref name="what"/> as the current step.</summary>
    public void Report(string what)
    {
        string counter = Total > 0 ? $"[{Done + 1,3}/{Total}] " : "";
        string line = $"{counter}{clock.Elapsed:mm\\:ss} {what}";
        if (interactive)
        {
            Console.Error.Write("\r" + line.PadRight(width));
            width = Math.Max(width, line.Length);
        }
        else Console.Error.WriteLine(line);
    }

    /// <summary>Erases the line (terminal only).</summary>
    public void Clear()
    {
        if (interactive && width > 0) Console.Error.Write("\r" + new string(' ', width) + "\r");
        width = 0;
    }
}

/// <summary>What the benchmark measures, in order, and the measuring.</summary>
public sealed class BenchPlan
{
    readonly BenchOptions options;
    readonly List<BenchOp> ops;
    readonly List<(AcceleratorInfo Info, Accelerator Accelerator)> accelerators;
    readonly RunResults results;
    readonly Dictionary<(string Op, Shape Shape), (Timing? Naive, Timing? Tp, string? TpLabel)> peerCache = [];
    readonly Sampler sampler, peerSampler, sweepSampler, inCacheSampler;
    readonly List<(string Label, Action Run)> steps = [];

    /// <summary>Plans the measurements for <paramref name="ops"/> on <paramref name="accelerators"/>.</summary>
    public BenchPlan(BenchOptions options, List<BenchOp> ops, List<(AcceleratorInfo, Accelerator)> accelerators, RunResults results)
    {
        this.options = options;
        this.ops = ops;
        this.accelerators = accelerators;
        this.results = results;
        bool smoke = options.Smoke;
        sampler = smoke
            ? new Sampler { MinSeconds = 0.002, MaxSeconds = 0.05, MinSamples = 3, FloorSamples = 3, WarmupSeconds = 0, SampleSeconds = 0.0002 }
            : new Sampler { MinSeconds = options.MinSeconds, MaxSeconds = 10 * options.MinSeconds, MinSamples = 15 };
        peerSampler = smoke
            ? new Sampler { MinSeconds = 0.001, MaxSeconds = 0.02, MinSamples = 2, FloorSamples = 2, WarmupSeconds = 0, SampleSeconds = 0.0002 }
            : new Sampler { MinSeconds = options.MinSeconds / 2, MaxSeconds = 5 * options.MinSeconds, MinSamples = 5, FloorSamples = 3, WarmupSeconds = 0 };
        sweepSampler = smoke ? sampler : new Sampler { MinSeconds = options.MinSeconds / 2, MaxSeconds = 4 * options.MinSeconds, MinSamples = 9 };
        inCacheSampler = smoke ? sampler : new Sampler { MinSeconds = options.MinSeconds, MaxSeconds = 10 * options.MinSeconds, MinSamples = 31 };
        Plan();
    }

    void Plan()
    {
        foreach (var (info, acc) in accelerators)
        {
            string label = MainJob.Label(info);
            bool gpu = MainJob.IsGpuClass(info);
            foreach (var op in ops)
                foreach (var shape in Shapes(op, gpu))
                    steps.Add(($"{label} {op.Name} {shape.Label}", () => MeasureRow(info, acc, op, shape)));
            if (options.Sweep)
            {
                var sweepOps = ops.Where(o => o.Name is "Relu" or "Sigmoid" or "Gelu" or "SwiGlu").ToList();
                foreach (long n in SweepSizes(gpu))
                    foreach (var op in sweepOps)
                        steps.Add(($"{label} sweep {op.Name} {BenchOptions.Label(n)}", () => MeasureSweep(label, acc, op, n)));
            }
        }
        if (accelerators.Any(a => a.Info.Kind == AcceleratorKind.Cpu))
        {
            // CPU-only sections: the span API on one thread in cache, and how the copy itself is done.
            foreach (var op in ops.Where(o => o.Name is "Sigmoid" or "Tanh" or "Softmax"))
                steps.Add(($"Cpu one thread, in cache: {op.Name} 16k", () => MeasureInCache(op)));
            steps.Add(("Cpu copy variants", MeasureCopyVariants));
        }
    }

    /// <summary>Runs every planned measurement, reporting progress.</summary>
    public void Execute(ProgressLine progress)
    {
        progress.Total = steps.Count;
        foreach (var (label, run) in steps)
        {
            progress.Report(label);
            run();
            progress.Done++;
        }
    }

    IEnumerable<Shape> Shapes(BenchOp op, bool gpu)
    {
        if (op.IsRowwise)
        {
            if (options.Shapes.Count > 0) return options.Shapes.Select(s => new Shape(s.Rows, s.Cols));
            if (options.Smoke) return [new(64, 3200), new(4, 12_825), new(1, 262_144)];
            return gpu
                ? [new(1024, 32_000), new(4096, 32_000), new(32, 128_256), new(1, 262_144)]
                : [new(1024, 32_000), new(32, 128_256), new(1, 262_144)];
        }
        IEnumerable<long> counts = options.Counts.Count > 0 ? options.Counts : options.Smoke ? [1L << 18] : gpu ? [1L << 26] : [1L << 24];
        if (!op.IsPacked) return counts.Select(Shape.Flat);
        // Packed GLU: rows of d = 4096 outputs (an LLM's intermediate width), or one row when n is not a multiple.
        return counts.Select(n => n % 4096 == 0 ? new Shape(n / 4096, 4096) : new Shape(1, n));
    }

    IEnumerable<long> SweepSizes(bool gpu)
    {
        if (options.Smoke) return [1L << 12, 1L << 16, 1L << 18];
        var sizes = new List<long>();
        for (int e = 12; e <= (gpu ? 26 : 24); e += 2) sizes.Add(1L << e);
        return sizes;
    }

    void MeasureRow(AcceleratorInfo info, Accelerator acc, BenchOp op, Shape shape)
    {
        Timing ours, copy;
        long copyBytes;
        string copyMethod;
        using (var work = Workload.Create(acc, op, shape))
        using (var baseline = new CopyBaseline(acc, op.BytesMoved(shape)))
        {
            var (o, c) = sampler.Measure(work.Run, work.Synchronize, baseline.Run, baseline.Synchronize);
            (ours, copy, copyBytes, copyMethod) = (o, c!, baseline.Bytes, baseline.Method);
        }
        var (naive, tp, tpLabel) = MeasurePeers(op, shape);
        var row = new BenchRow(op.Name, MainJob.Label(info), info.Kind, shape, op.BytesMoved(shape), ours, copy, copyBytes, copyMethod, naive, tp, tpLabel, null);
        results.Rows.Add(row with { Target = Targets.For(row) });
    }

    (Timing? Naive, Timing? Tp, string? TpLabel) MeasurePeers(BenchOp op, Shape shape)
    {
        if (!options.Peers) return (null, null, null);
        if (peerCache.TryGetValue((op.Name, shape), out var cached)) return cached;
        Timing? naive = null, tp = null;
        string? tpLabel = null;
        var naivePeer = Peers.Naive(op, shape);
        if (naivePeer is not null) naive = peerSampler.Measure(naivePeer.Run, static () => { });
        naivePeer = null;
        var tpPeer = Peers.TensorPrimitivesPeer(op, shape);
        if (tpPeer is not null)
        {
            tp = peerSampler.Measure(tpPeer.Run, static () => { });
            tpLabel = tpPeer.Label;
        }
        GC.Collect();
        return peerCache[(op.Name, shape)] = (naive, tp, tpLabel);
    }

    void MeasureSweep(string label, Accelerator acc, BenchOp op, long n)
    {
        var shape = op.IsPacked ? new Shape(1, n) : Shape.Flat(n);
        using var work = Workload.Create(acc, op, shape);
        using var baseline = new CopyBaseline(acc, 8 * n);
        var (ours, copy) = sweepSampler.Measure(work.Run, work.Synchronize, baseline.Run, baseline.Synchronize);
        results.Sweep.Add(new(label, op.Name, n, ours.GBps(op.BytesMoved(shape))));
        results.Sweep.Add(new(label, "copy", n, copy!.GBps(baseline.Bytes)));
    }

    void MeasureInCache(BenchOp op)
    {
        const int n = 16_384;
        // Softmax: one row of 16k (TensorPrimitives.SoftMax takes one span as one row).
        bool softmax = op.Family == OpFamily.Softmax;
        var shape = softmax ? new Shape(1, n) : Shape.Flat(n);
        var random = new Random(3);
        float[] x = new float[n], y = new float[n];
        Workload.Fill(x, random, 8f);
        var activation = op.Activation;
        Action run = softmax ? () => CpuKernels.Softmax(x, y, 1, n) : () => CpuKernels.Apply(activation!, x, y);
        var tpPeer = Peers.TensorPrimitivesPeer(op, shape)!;
        var naivePeer = Peers.Naive(op, shape)!;
        // CpuKernels runs this on the calling thread: 16k is below its per-core split threshold.
        var (ours, tp) = inCacheSampler.Measure(run, static () => { }, tpPeer.Run, static () => { });
        var naive = inCacheSampler.Measure(naivePeer.Run, static () => { });
        results.InCache.Add(new(op.Name, n, ours, tp!, naive, tpPeer.Label));
    }

    unsafe void MeasureCopyVariants()
    {
        long n = options.Smoke ? 1L << 18 : 1L << 24;
        float* source = (float*)NativeMemory.AlignedAlloc((nuint)(n * 4), 64);
        float* destination = (float*)NativeMemory.AlignedAlloc((nuint)(n * 4), 64);
        try
        {
            new Span<float>(source, (int)n).Fill(1f);
            new Span<float>(destination, (int)n).Clear();
            var variants = new[]
            {
                (Kind: CopyBaseline.CopyKind.Memcpy, Label: "memcpy (Buffer.MemoryCopy), cores split as the kernels split: the baseline"),
                (Kind: CopyBaseline.CopyKind.VectorStore, Label: "vector load + ordinary store, same split (how the kernels store)"),
                (Kind: CopyBaseline.CopyKind.VectorNonTemporal, Label: "vector load + non-temporal store, same split"),
            };
            // Round-robin, one call per variant per round, so drift on the shared machine hits all three alike.
            var samples = variants.Select(_ => new List<double>()).ToArray();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int round = 0; ; round++)
            {
                for (int v = 0; v < variants.Length; v++)
                {
                    var kind = variants[v].Kind;
                    long start = System.Diagnostics.Stopwatch.GetTimestamp();
                    CopyBaseline.ParallelCopy(source, destination, n, kind);
                    double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
                    if (round >= 2) samples[v].Add(seconds);   // the first two rounds warm up
                }
                if (round >= (options.Smoke ? 4 : 40) && clock.Elapsed.TotalSeconds >= (options.Smoke ? 0.01 : 3 * options.MinSeconds)) break;
            }
            for (int v = 0; v < variants.Length; v++)
            {
                double[] sorted = [.. samples[v].Order()];
                var t = new Timing(Sampler.Quantile(sorted, 0.5), Sampler.Quantile(sorted, 0.25), Sampler.Quantile(sorted, 0.75), sorted.Length, 1, double.NaN);
                results.CopyVariants.Add(new(variants[v].Label, 8 * n, t));
            }
        }
        finally
        {
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(destination);
        }
    }
}

/// <summary>The performance targets, per row.</summary>
public static class Targets
{
    /// <summary>The figure <paramref name="row"/> is held to, and whether it reaches it; null when none is set.</summary>
    public static TargetCheck? For(BenchRow row)
    {
        double f = row.FractionOfCopy;
        if (Catalog.ReluLike.Contains(row.Op)) return new(">= 90% of copy", f >= 0.90);
        if (Catalog.Transcendental.Contains(row.Op)) return new(">= 75% of copy", f >= 0.75);
        if (row.Op is "SwiGlu" or "SwiGluPacked") return new(">= 80% of copy", f >= 0.80);
        if (row.Op == "Softmax" && row.Shape == new Shape(1024, 32_000)) return new(">= 70% of copy", f >= 0.70);
        // "One row of 262144 uses both cores": a CPU figure, read from process CPU time over wall time.
        if (row.Op == "Softmax" && row.Shape == new Shape(1, 262_144) && row.Kind == AcceleratorKind.Cpu)
            return new($"uses all {Environment.ProcessorCount} cores", row.Ours.HostCores >= Environment.ProcessorCount - 0.5);
        return null;
    }
}
