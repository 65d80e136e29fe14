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

        int width = options.Wide ? ConsoleUi.WideWidth : ConsoleUi.DefaultWidth;
        string mode = options.Smoke ? "smoke run: figures not meaningful" : options.Full ? "full sweep" : "default run: every op verified, a representative set benchmarked (--full for all)";
        Console.WriteLine($"Kernels.Bench ({mode})");
        Console.WriteLine(Report.Wrap($"  machine: {results.Machine}", ConsoleUi.DefaultWidth));
        string Indent(string line) => "  " + Report.Wrap(line.TrimStart(), ConsoleUi.DefaultWidth - 4).Replace("\n", "\n    ");
        foreach (var info in selected) Console.WriteLine(Indent($"  accelerator {Label(info)}: {info}{DeviceNote(info)}"));
        foreach (var absent in results.Absent) Console.WriteLine(Indent($"  absent {absent.Kind}: {absent.Reason}"));
        Console.WriteLine();

        var progress = new Progress();
        var accelerators = new List<(AcceleratorInfo Info, Accelerator Accelerator)>();
        try
        {
            foreach (var info in selected) accelerators.Add((info, Accelerator.Create(info)));

            if (options.Verify)
            {
                int inputs = options.Smoke ? 0 : options.Full ? 1 << 20 : 1 << 18;
                progress.Run("verification", ops.Count * accelerators.Count, report =>
                {
                    foreach (var (info, acc) in accelerators)
                        results.Verification.AddRange(Verification.Run(acc, Label(info), ops, options.Smoke, report, inputs));
                });
                Console.WriteLine("Verification against the scalar double reference (Kernels.Cpu), rounded to float:");
                Console.Write(Report.VerificationTable(results).ToConsole(width, options.Wide ? null : Report.VerificationNarrow));
                Console.WriteLine(results.VerificationPassed
                    ? $"All {results.Verification.Count} op x accelerator pairs within tolerance."
                    : "VERIFICATION FAILED: see the rows marked FAIL.");
                Console.WriteLine();
            }

            // ONNX Runtime's accuracy on the ops it has, against the same reference, beside our SIMD CPU path's.
            if (options.Peers && accelerators.FirstOrDefault(a => a.Info.Kind == AcceleratorKind.Cpu).Accelerator is { } cpu)
            {
                var onnxOps = ops.Where(o => OnnxPeer.Node(o) is not null).ToList();
                progress.Run("ONNX Runtime accuracy", 1, report =>
                {
                    report($"{onnxOps.Count} ops");
                    results.OnnxAccuracy.AddRange(OnnxAccuracy.Run(cpu, onnxOps, options.Smoke ? 20_000 : 400_000));
                });
                if (results.OnnxAccuracy.Count > 0)
                {
                    Console.WriteLine("Accuracy of ONNX Runtime beside ours: same inputs, same double reference (informational):");
                    Console.Write(Report.OnnxAccuracyTable(results).ToConsole(width));
                    Console.WriteLine();
                }
            }

            if (options.Benchmark)
            {
                var plan = new BenchPlan(options, ops, accelerators, results);
                progress.Run("benchmark", plan.Steps, plan.Execute);
                Console.WriteLine(Report.Console(results, width));
            }

            // The activation plots come from the first accelerator's kernels (the CPU unless --accelerators says otherwise).
            if (accelerators.Count > 0)
            {
                string plots = Path.Combine(options.OutDir, "plots");
                results.ActivationPlots.AddRange(Plots.Activations(accelerators[0].Accelerator, plots).Select(f => "plots/" + f));
            }
        }
        finally
        {
            foreach (var (_, acc) in accelerators) acc.Dispose();
        }

        results.LoadAtEnd = LoadAverage();
        Directory.CreateDirectory(options.OutDir);
        if (options.Benchmark)
        {
            results.ThroughputPlots.AddRange(Plots.Throughput(results, Path.Combine(options.OutDir, "plots")));
            results.ShareOfCopyPlot = Plots.ShareOfCopy(results, Path.Combine(options.OutDir, "plots"));
        }
        string reportPath = Path.Combine(options.OutDir, "report.md");
        File.WriteAllText(reportPath, Report.Markdown(results));
        File.WriteAllText(Path.Combine(options.OutDir, "results.json"), Report.Json(results));
        Console.WriteLine($"Report: {reportPath} (and results.json, plots/ beside it)");
        return results.VerificationPassed ? 0 : 1;
    }

    /// <summary>
    /// What a device really is when its kind suggests otherwise: an OpenCL device that is a CPU (PoCL and the like run
    /// OpenCL kernels on the host's cores), or ILGPU's CPU accelerator (on which the ops run the SIMD path on its
    /// buffers' host memory, as <c>Accelerator.Create</c> makes it); "" for the SIMD path and real GPUs.
    /// </summary>
    public static string DeviceNote(AcceleratorInfo info) => info.Kind switch
    {
        AcceleratorKind.Ilgpu when info.Details.Contains("CPU", StringComparison.OrdinalIgnoreCase) || info.Name.Contains("CPU", StringComparison.OrdinalIgnoreCase)
            => " [not a GPU: ILGPU's CPU accelerator, on which the ops run the SIMD path on its buffers' host memory, as an engine's CI on it does]",
        AcceleratorKind.OpenCL when !IsGpuClass(info)
            => " [a CPU, not a GPU: this OpenCL device runs the kernels on the host's cores]",
        _ => "",
    };

    /// <summary>"Cpu#0", "OpenCL#1": the short label of an accelerator in tables.</summary>
    public static string Label(AcceleratorInfo info) => $"{info.Kind}#{info.DeviceIndex}";

    /// <summary>
    /// Whether the default sizes of a GPU apply: CUDA devices and OpenCL devices that say GPU (the rule of
    /// <see cref="Accelerator.Best"/>). Only the problem sizes depend on it; every op runs the same way everywhere.
    /// </summary>
    public static bool IsGpuClass(AcceleratorInfo info) =>
        info.Kind == AcceleratorKind.Cuda
        // OpenCL reports its device type in the details ("GPU", "CPU"); ILGPU's CPU accelerator says "ILGPU CPU", whose
        // "ILGPU" must not read as a GPU.
        || (info.Kind == AcceleratorKind.OpenCL && info.Details.Contains("GPU", StringComparison.Ordinal));

    /// <summary>The accelerators <paramref name="selectors"/> name (every one present when empty); <paramref name="error"/> says why not.</summary>
    public static List<AcceleratorInfo> SelectAccelerators(IReadOnlyList<string> selectors, out string? error)
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
                error = $"--accelerators: unknown kind '{parts[0]}'; name one of {string.Join(", ", Enum.GetNames<AcceleratorKind>().Select(n => n.ToLowerInvariant()))}, optionally with #index (opencl#1).";
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

/// <summary>What the benchmark measures, in order, and the measuring.</summary>
public sealed class BenchPlan
{
    readonly BenchOptions options;
    readonly List<BenchOp> ops;
    readonly List<(AcceleratorInfo Info, Accelerator Accelerator)> accelerators;
    readonly RunResults results;
    readonly Dictionary<(string Op, Shape Shape), (Timing? Naive, Timing? Tp, string? TpLabel)> peerCache = [];
    readonly Sampler sampler, peerSampler, sweepSampler, inCacheSampler, ceilingSampler;
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
            : options.Full ? new Sampler { MinSeconds = options.MinSeconds, MaxSeconds = 10 * options.MinSeconds, MinSamples = 15 }
            // The default run: fewer samples and a tighter cap, so it ends within minutes on a contended machine too.
            : new Sampler { MinSeconds = options.MinSeconds, MaxSeconds = 5 * options.MinSeconds, MinSamples = 11 };
        peerSampler = smoke
            ? new Sampler { MinSeconds = 0.001, MaxSeconds = 0.02, MinSamples = 2, FloorSamples = 2, WarmupSeconds = 0, SampleSeconds = 0.0002 }
            : new Sampler { MinSeconds = options.MinSeconds / 2, MaxSeconds = 5 * options.MinSeconds, MinSamples = 5, FloorSamples = 3, WarmupSeconds = 0 };
        sweepSampler = smoke ? sampler : new Sampler { MinSeconds = options.MinSeconds / 2, MaxSeconds = 4 * options.MinSeconds, MinSamples = 9 };
        inCacheSampler = smoke ? sampler : new Sampler { MinSeconds = options.MinSeconds, MaxSeconds = 10 * options.MinSeconds, MinSamples = 31 };
        ceilingSampler = smoke ? sampler : new Sampler { MinSeconds = options.MinSeconds / 2, MaxSeconds = 2 * options.MinSeconds, MinSamples = 11 };
        Plan();
    }

    void Plan()
    {
        // The default run benchmarks the representative ops (unless --ops named some); --full and --smoke run them all.
        bool all = options.Full || options.Smoke || options.Ops.Count > 0;
        var benchOps = all ? ops : ops.Where(o => Catalog.Representative.Contains(o.Name)).ToList();
        foreach (var (info, acc) in accelerators)
        {
            string label = MainJob.Label(info);
            // The default run gives CPU-hosted stand-ins for a GPU (an OpenCL CPU device, ILGPU's CPU accelerator) a
            // few ops only: they verify every op, but their speed says little and each of their rows takes seconds.
            var deviceOps = all || !Slow(info) ? benchOps : benchOps.Where(o => o.Name is "Relu" or "Gelu" or "SwiGlu" or "Softmax").ToList();
            foreach (var op in deviceOps)
                foreach (var shape in Shapes(op, info))
                    steps.Add(($"{label} {op.Name} {shape.Label}", () => MeasureRow(info, acc, op, shape)));
            if (options.Sweep)
            {
                var sweepOps = ops.Where(o => all ? o.Name is "Relu" or "Sigmoid" or "Gelu" or "SwiGlu" : o.Name is "Relu" or "Gelu").ToList();
                foreach (long n in SweepSizes(info))
                    foreach (var op in sweepOps)
                        steps.Add(($"{label} sweep {op.Name} {BenchOptions.Label(n)}", () => MeasureSweep(label, acc, op, n)));
            }
        }
        if (accelerators.Any(a => a.Info.Kind == AcceleratorKind.Cpu))
        {
            // CPU-only sections: the span API on one thread in cache, and (full runs) how the copy itself is done.
            foreach (var op in ops.Where(o => o.Name is "Sigmoid" or "Tanh" or "Softmax"))
                steps.Add(($"Cpu one thread, in cache: {op.Name} 16k", () => MeasureInCache(op)));
            if (options.Full || options.Smoke) steps.Add(("Cpu copy variants", MeasureCopyVariants));
        }
    }

    /// <summary>How many measurements are planned.</summary>
    public int Steps => steps.Count;

    /// <summary>Runs every planned measurement, calling <paramref name="report"/> before each.</summary>
    public void Execute(Action<string> report)
    {
        foreach (var (label, run) in steps)
        {
            report(label);
            run();
        }
    }

    /// <summary>
    /// Whether <paramref name="info"/> is an emulated or CPU-hosted device other than the SIMD path (ILGPU's CPU
    /// accelerator, an OpenCL CPU device): the default run gives them smaller sizes, as they run far below memory speed.
    /// </summary>
    static bool Slow(AcceleratorInfo info) => info.Kind != AcceleratorKind.Cpu && !MainJob.IsGpuClass(info);

    IEnumerable<Shape> Shapes(BenchOp op, AcceleratorInfo info)
    {
        bool gpu = MainJob.IsGpuClass(info);
        bool reduced = !options.Full && !options.Smoke;
        if (op.IsRowwise)
        {
            if (options.Shapes.Count > 0) return options.Shapes.Select(s => new Shape(s.Rows, s.Cols));
            if (options.Smoke) return [new(64, 3200), new(4, 12_825), new(1, 262_144)];
            // The default run: the [1024 x 32000] logits everywhere, and the one long row for the softmax only.
            if (reduced) return Slow(info) ? [new(128, 32_000)] : op.Family == OpFamily.Softmax ? [new(1024, 32_000), new(1, 262_144)] : [new(1024, 32_000)];
            return gpu
                ? [new(1024, 32_000), new(4096, 32_000), new(32, 128_256), new(1, 262_144)]
                : [new(1024, 32_000), new(32, 128_256), new(1, 262_144)];
        }
        IEnumerable<long> counts = options.Counts.Count > 0 ? options.Counts
            : options.Smoke ? [1L << 18]
            : gpu ? [1L << 26]
            : reduced && Slow(info) ? [1L << 22]
            : [1L << 24];
        if (!op.IsPacked) return counts.Select(Shape.Flat);
        // Packed GLU: rows of d = 4096 outputs (an LLM's intermediate width), or one row when n is not a multiple.
        return counts.Select(n => n % 4096 == 0 ? new Shape(n / 4096, 4096) : new Shape(1, n));
    }

    IEnumerable<long> SweepSizes(AcceleratorInfo info)
    {
        if (options.Smoke) return [1L << 12, 1L << 16, 1L << 18];
        bool gpu = MainJob.IsGpuClass(info);
        int top = gpu ? 26 : !options.Full && Slow(info) ? 22 : 24;
        var sizes = new List<long>();
        for (int e = 12; e <= top; e += options.Full ? 2 : 4) sizes.Add(1L << e);
        if (sizes[^1] != 1L << top) sizes.Add(1L << top);
        return sizes;
    }

    /// <summary>Rounds of alternating blocks (ours, then ONNX Runtime's) behind each x ONNX figure.</summary>
    const int OnnxRounds = 3;

    void MeasureRow(AcceleratorInfo info, Accelerator acc, BenchOp op, Shape shape)
    {
        Timing ours, copy;
        Timing? storeCopied = null;
        long copyBytes;
        string copyMethod;
        Timing? onnx = null, oursBesideOnnx = null;
        string? onnxLabel = null;
        using (var work = Workload.Create(acc, op, shape))
        {
            using (var baseline = new CopyBaseline(acc, op.BytesMoved(shape)))
            {
                // Ops whose output goes through the cache on the SIMD path also get their memory ceiling: a copy of the
                // same bytes with ordinary stores, in turn with the op and the copy (BenchRow.MemoryCeiling).
                using var storeCopy = info.Kind == AcceleratorKind.Cpu && op.StoresThroughCache
                    ? new CopyBaseline(acc, op.BytesMoved(shape), CopyBaseline.CopyKind.VectorStore) : null;
                var calls = new List<(Action, Action)> { (work.Run, work.Synchronize), (baseline.Run, baseline.Synchronize) };
                if (storeCopy is not null) calls.Add((storeCopy.Run, storeCopy.Synchronize));
                var timings = sampler.MeasureInterleaved(calls);
                (ours, copy, copyBytes, copyMethod) = (timings[0], timings[1], baseline.Bytes, baseline.Method);
                storeCopied = storeCopy is null ? null : timings[2];
            }
            // ONNX Runtime as its users run it: its default threading, whose pool threads spin after a run waiting
            // for more work. Sampled alternately with our op, they spun on the cores our op needed next and doubled
            // its time (2-core EPYC, 16M sigmoid: 3.71 ms alone, 6.95 ms beside it), and with the spinning turned off
            // ONNX Runtime ran slower (its 16M sigmoid 2.84 -> 4.90 ms). So each has the cores alone, in alternating
            // blocks: our op's samples, then ONNX Runtime's, its session (its threads) closed after each block, three
            // rounds; the ratio is the median round's, so a burst on the shared host moves one round, not the figure.
            if (options.Peers && info.Kind == AcceleratorKind.Cpu)
            {
                using var peer = OnnxPeer.Create(op, shape);
                if (peer is not null)
                {
                    var rounds = new List<(Timing Ours, Timing Onnx)>();
                    for (int round = 0; round < OnnxRounds; round++)
                    {
                        var mine = sampler.Measure(work.Run, work.Synchronize);
                        var theirs = sampler.Measure(peer.Run, static () => { });
                        peer.Release();
                        rounds.Add((mine, theirs));
                    }
                    var middle = rounds.OrderBy(r => r.Onnx.Median / r.Ours.Median).ElementAt(rounds.Count / 2);
                    (onnx, oursBesideOnnx, onnxLabel) = (middle.Onnx, middle.Ours, peer.Label);
                }
            }
        }
        // The single-threaded CPU peers are measured once per op and shape; the default run measures them beside the
        // SIMD path's rows only (the other devices' rows then show "-"), --full beside every row.
        var (naive, tp, tpLabel) = options.Full || options.Smoke || info.Kind == AcceleratorKind.Cpu ? MeasurePeers(op, shape) : (null, null, null);
        var (inCache, inCacheBytes) = info.Kind == AcceleratorKind.Cpu ? MeasureComputeCeiling(acc, op, shape) : (null, 0L);
        var row = new BenchRow(op.Name, MainJob.Label(info), info.Kind, shape, op.BytesMoved(shape), ours, copy, copyBytes, copyMethod, naive, tp, tpLabel, null,
            onnx, onnxLabel, oursBesideOnnx, inCache, inCacheBytes, storeCopied);
        results.Rows.Add(row with { Target = Targets.For(row) });
    }

    /// <summary>
    /// A small instance of the row's op, timed with its data in cache (<see cref="BenchRow.ComputeCeiling"/>): 16k
    /// elements, or one row of at most 32k columns (the [1024 x 32000] logits' row itself; a 262144-column row's first
    /// 32768), or 16k outputs of packed halves. The CPU path runs each on the calling thread (below
    /// <c>CpuParallel.MinimumPerCore</c> per core), so the time is one core's. (Instances on every core at once, through
    /// <c>Parallel.For</c>, measured well below one core's rate times the cores on the 2-core host: 25% against 52%
    /// reached at 16M for sigmoid.)
    /// </summary>
    (Timing? Time, long Bytes) MeasureComputeCeiling(Accelerator acc, BenchOp op, Shape shape)
    {
        const int elements = 16_384, longestRow = 32_768;
        Shape small = op.IsRowwise ? new Shape(1, Math.Min(shape.Cols, longestRow))
            : op.IsPacked ? new Shape(Math.Max(1, elements / shape.Cols), Math.Min(shape.Cols, elements))
            : Shape.Flat(elements);
        using var work = Workload.Create(acc, op, small);
        return (ceilingSampler.Measure(work.Run, work.Synchronize), op.BytesMoved(small));
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

/// <summary>
/// The performance targets, per row: the project's goals for the CPU path at memory speed (docs/benchmarks.md),
/// informational in the report (they never change the exit code): share of the same run's copy bandwidth by family,
/// and ONNX Runtime's time over ours on the ops it has.
/// </summary>
public static class Targets
{
    /// <summary>The figure <paramref name="row"/> is held to, and whether it reaches it; null when none is set.</summary>
    public static TargetCheck? For(BenchRow row)
    {
        double f = row.FractionOfCopy;
        TargetCheck Share(double goal) => new($">= {100 * goal:0}% of copy", f >= goal, goal);
        var op = Catalog.Find(row.Op);
        // The targets are the SIMD CPU path's (its goal is memory speed on the CPU); other devices' rows have none.
        if (op is null || row.Kind != AcceleratorKind.Cpu) return null;
        if (op.Bf16) return Share(0.70);
        if (Catalog.ReluLike.Contains(row.Op)) return Share(0.90);
        switch (op.Family)
        {
            case OpFamily.Elementwise: return Share(0.75);
            case OpFamily.Glu or OpFamily.GluPacked: return Share(0.80);
            case OpFamily.Backward or OpFamily.GluBackward or OpFamily.GluPackedBackward or OpFamily.SoftmaxBackward: return Share(0.60);
            case OpFamily.Softmax or OpFamily.LogSoftmax when row.Shape == new Shape(1024, 32_000): return Share(0.75);
            case OpFamily.CrossEntropy when row.Shape == new Shape(1024, 32_000): return Share(0.60);
            // One long row: >= 60% of copy with every core busy (process CPU time over wall time), a CPU figure.
            case OpFamily.Softmax when row.Shape == new Shape(1, 262_144):
                return new($">= 60% of copy on {Environment.ProcessorCount} cores", f >= 0.60 && row.Ours.HostCores >= Environment.ProcessorCount - 0.5, 0.60);
            default: return null;
        }
    }

    /// <summary>The ONNX Runtime figure: at least as fast (same cores, same run) on every op it has.</summary>
    public static TargetCheck? Onnx(BenchRow row) => row.Kind == AcceleratorKind.Cpu && row.OnnxSpeedup is { } x ? new(">= 1.0x ONNX Runtime", x >= 1.0) : null;
}
