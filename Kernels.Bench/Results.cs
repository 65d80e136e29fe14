namespace GpuActivations.Bench;

/// <summary>A performance target and whether a row reaches it.</summary>
/// <param name="Figure">The figure in words, e.g. ">= 75% of copy".</param>
/// <param name="Met">Whether the row reaches it.</param>
/// <param name="ShareGoal">The share of copy bandwidth the figure asks for (0.75 for ">= 75% of copy"); NaN for other figures.</param>
public sealed record TargetCheck(string Figure, bool Met, double ShareGoal = double.NaN);

/// <summary>One op at one shape on one accelerator, with its copy baseline and CPU peers.</summary>
public sealed record BenchRow(
    string Op, string Accelerator, AcceleratorKind Kind, Shape Shape, long Bytes,
    Timing Ours, Timing Copy, long CopyBytes, string CopyMethod,
    Timing? Naive, Timing? TensorPrimitives, string? TensorPrimitivesLabel, TargetCheck? Target,
    Timing? Onnx = null, string? OnnxLabel = null, Timing? OursBesideOnnx = null, Timing? InCache = null, long InCacheBytes = 0,
    Timing? StoreCopy = null)
{
    /// <summary>Our GB/s (bytes read + written per second).</summary>
    public double GBps => Ours.GBps(Bytes);
    /// <summary>The copy's GB/s in the same run.</summary>
    public double CopyGBps => Copy.GBps(CopyBytes);
    /// <summary>Our GB/s over the copy's.</summary>
    public double FractionOfCopy => GBps / CopyGBps;
    /// <summary>Naive loop time over ours.</summary>
    public double? NaiveSpeedup => Naive is null ? null : Naive.Median / Ours.Median;
    /// <summary>TensorPrimitives time over ours.</summary>
    public double? TensorPrimitivesSpeedup => TensorPrimitives is null ? null : TensorPrimitives.Median / Ours.Median;
    /// <summary>
    /// TensorPrimitives time over ours per core: TensorPrimitives runs on one thread while ours splits over
    /// <see cref="Timing.HostCores"/> cores, so this is its time over our time times the cores we kept busy.
    /// </summary>
    public double? TensorPrimitivesPerCore => TensorPrimitives is null || !(Ours.HostCores > 0) ? null : TensorPrimitives.Median / (Ours.Median * Math.Max(1, Ours.HostCores));
    /// <summary>
    /// ONNX Runtime's time over ours (same cores, each with the cores to itself; above 1 we are faster): the round of
    /// alternating blocks with the median ratio, ours in that round being <see cref="OursBesideOnnx"/>.
    /// </summary>
    public double? OnnxSpeedup => Onnx is null ? null : Onnx.Median / (OursBesideOnnx ?? Ours).Median;
    /// <summary>
    /// The share of this row's copy bandwidth the op would reach if memory cost nothing: its rate on one thread with a
    /// small instance of the op in cache (<see cref="InCache"/>, <see cref="InCacheBytes"/> moved; the CPU path runs such
    /// a size on the calling thread), from the fastest quarter of the samples (<see cref="Timing.Lower"/>: other work on
    /// the host only slows a sample), times every core of the machine, over the copy's GB/s. The rate the op's arithmetic
    /// allows on free cores; the row comes near it only where computing and memory traffic overlap completely. A row below
    /// its target whose ceiling is below the target too is compute-bound on this machine; one whose ceiling is above it
    /// loses time on the memory side.
    /// </summary>
    public double? ComputeCeiling => InCache is null ? null : Environment.ProcessorCount * (InCacheBytes / InCache.Lower / 1e9) / CopyGBps;

    /// <summary>
    /// For an op that writes its output through the caches (<see cref="BenchOp.StoresThroughCache"/>), the share of this
    /// row's copy bandwidth that a copy of the same bytes with ordinary stores reached (<see cref="StoreCopy"/>, sampled in
    /// turn with the op and the copy): the rate its memory traffic allows if arithmetic cost nothing. An ordinary store
    /// reads its line from memory before writing it back (read for ownership), so per byte of the contract such a copy
    /// moves the traffic of a softmax or cross-entropy row (x read once, y written once through the cache: 12 bytes per
    /// element against the contract's 8).
    /// </summary>
    public double? MemoryCeiling => StoreCopy is null ? null : Copy.Median / StoreCopy.Median;

    /// <summary>
    /// What sets a missed share target's pace, from the two ceilings: "compute-bound" when the arithmetic alone cannot
    /// reach the goal (<see cref="ComputeCeiling"/> below it), "memory-bound" when the op's memory traffic alone cannot
    /// (<see cref="MemoryCeiling"/> below it), both when both; null when the target is met or neither ceiling explains
    /// the miss.
    /// </summary>
    public string? MissBound
    {
        get
        {
            if (Target is not { Met: false } t || double.IsNaN(t.ShareGoal)) return null;
            bool compute = ComputeCeiling < t.ShareGoal, memory = MemoryCeiling < t.ShareGoal;
            return compute && memory ? "compute- and memory-bound" : compute ? "compute-bound" : memory ? "memory-bound" : null;
        }
    }
}

/// <summary>A CPU op on one thread with its data in cache, beside TensorPrimitives and a naive loop.</summary>
public sealed record InCacheRow(string Op, long Elements, Timing Ours, Timing TensorPrimitives, Timing Naive, string TensorPrimitivesLabel)
{
    /// <summary>TensorPrimitives time over ours (target: >= 1.0).</summary>
    public double TensorPrimitivesSpeedup => TensorPrimitives.Median / Ours.Median;
    /// <summary>Naive loop time over ours (target: >= 5).</summary>
    public double NaiveSpeedup => Naive.Median / Ours.Median;
}

/// <summary>One point of the throughput-against-size sweep.</summary>
public sealed record SweepPoint(string Accelerator, string Series, long Elements, double GBps);

/// <summary>A way of copying host memory, timed on the CPU (diagnostic).</summary>
public sealed record CopyVariant(string Method, long Bytes, Timing Time);

/// <summary>An accelerator kind that is absent, and why.</summary>
public sealed record AbsentAccelerator(AcceleratorKind Kind, string Reason);

/// <summary>Everything one run measured.</summary>
public sealed class RunResults
{
    /// <summary>When the run started (UTC).</summary>
    public DateTime Started { get; init; } = DateTime.UtcNow;
    /// <summary>The command line.</summary>
    public string Command { get; init; } = "";
    /// <summary>Smoke run (tiny sizes)?</summary>
    public bool Smoke { get; init; }
    /// <summary>The machine, in words.</summary>
    public string Machine { get; init; } = "";
    /// <summary>The 1/5/15-minute load averages when the run started and ended (other processes share the cores).</summary>
    public string LoadAtStart { get; init; } = "";
    /// <summary>See <see cref="LoadAtStart"/>.</summary>
    public string LoadAtEnd { get; set; } = "";
    /// <summary>The accelerators run.</summary>
    public List<AcceleratorInfo> Accelerators { get; } = [];
    /// <summary>Kinds absent from this machine.</summary>
    public List<AbsentAccelerator> Absent { get; } = [];
    /// <summary>The verification.</summary>
    public List<VerifyRow> Verification { get; } = [];
    /// <summary>The benchmark rows.</summary>
    public List<BenchRow> Rows { get; } = [];
    /// <summary>The in-cache single-thread rows.</summary>
    public List<InCacheRow> InCache { get; } = [];
    /// <summary>The sweep.</summary>
    public List<SweepPoint> Sweep { get; } = [];
    /// <summary>CPU copy variants.</summary>
    public List<CopyVariant> CopyVariants { get; } = [];
    /// <summary>PyTorch's figures, if given.</summary>
    public TorchResults? Torch { get; set; }
    /// <summary>Plot files written (relative to the report).</summary>
    public List<string> ThroughputPlots { get; } = [];
    /// <summary>The share-of-copy bar plot (relative to the report), if written.</summary>
    public string? ShareOfCopyPlot { get; set; }
    /// <summary>Activation plot files written (relative to the report).</summary>
    public List<string> ActivationPlots { get; } = [];
    /// <summary>ONNX Runtime's accuracy beside ours.</summary>
    public List<OnnxAccuracyRow> OnnxAccuracy { get; } = [];
    /// <summary>Whether every verified op is within tolerance.</summary>
    public bool VerificationPassed => Verification.All(v => v.Pass);
}
