using System.Numerics;

namespace GpuActivations.Device;

/// <summary>Which of <see cref="SoftmaxKernels"/>' shapes a softmax launch takes.</summary>
internal enum SoftmaxShape
{
    /// <summary><c>ga_softmax_rows</c>: a slice of work-items per row, two streaming passes over the row.</summary>
    Rows,

    /// <summary><c>ga_softmax_partial</c> + <c>ga_softmax_finish</c>: each row cut into chunks, one work-group each.</summary>
    Split,

    /// <summary><c>ga_softmax_registers_P</c>: each row held in registers, read once and written once.</summary>
    Registers,
}

/// <summary>
/// How one softmax of [rows, cols] is launched; made by <see cref="SoftmaxPlanner.Plan"/> (tests build others to force a
/// shape). Use the factories: <see cref="Rows"/>, <see cref="Split"/>, <see cref="Registers"/>.
/// </summary>
/// <param name="Shape">The kernel shape.</param>
/// <param name="Lanes">Work-items per row: the slice (rows) or the lanes (registers); 0 when split.</param>
/// <param name="PerLane">Values each work-item holds (registers; 1, 2, 4, ..., 32), else 0.</param>
/// <param name="GroupSize">Work-items per group of a register launch (CUDA: the block size), else 0: the program's group size.</param>
/// <param name="Chunks">Pieces per row (split), else 0.</param>
/// <param name="ChunkLength">Columns per piece (split), else 0.</param>
internal readonly record struct SoftmaxPlan(SoftmaxShape Shape, int Lanes, int PerLane, int GroupSize, long Chunks, long ChunkLength)
{
    /// <summary><c>ga_softmax_rows</c> with <paramref name="slice"/> work-items per row (a power of two up to the group size).</summary>
    public static SoftmaxPlan Rows(int slice) => new(SoftmaxShape.Rows, slice, 0, 0, 0, 0);

    /// <summary>Rows of <paramref name="cols"/> cut into pieces of <paramref name="chunkLength"/> columns.</summary>
    public static SoftmaxPlan Split(long cols, long chunkLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkLength, 1);
        return new(SoftmaxShape.Split, 0, 0, 0, (cols + chunkLength - 1) / chunkLength, chunkLength);
    }

    /// <summary>Register-resident rows: <paramref name="lanes"/> work-items per row holding <paramref name="perLane"/> values each, in groups of <paramref name="groupSize"/>.</summary>
    public static SoftmaxPlan Registers(int lanes, int perLane, int groupSize) => new(SoftmaxShape.Registers, lanes, perLane, groupSize, 0, 0);

    /// <summary>Whether each row is split across work-groups (two launches and a scratch buffer).</summary>
    public bool IsSplit => Shape == SoftmaxShape.Split;

    /// <summary>The kernel (for a split: the second one, <c>ga_softmax_finish</c>; the first is <c>ga_softmax_partial</c>).</summary>
    public string Kernel => Shape switch
    {
        SoftmaxShape.Rows => SoftmaxKernels.Rows,
        SoftmaxShape.Split => SoftmaxKernels.Finish,
        _ => SoftmaxKernels.Registers(PerLane),
    };

    /// <summary>
    /// Throws <see cref="ArgumentException"/> unless this plan computes every column of rows of <paramref name="cols"/>
    /// in a program compiled for groups of <paramref name="programGroupSize"/>. <paramref name="cudaBlocks"/>: the CUDA
    /// forms of the register kernels, which take one row per block of any multiple of 32 threads up to 1024.
    /// </summary>
    public void Validate(long cols, int programGroupSize, bool cudaBlocks)
    {
        bool ok = Shape switch
        {
            SoftmaxShape.Rows => Lanes >= 1 && BitOperations.IsPow2(Lanes) && Lanes <= programGroupSize,
            SoftmaxShape.Split => ChunkLength >= 1 && Chunks * ChunkLength >= cols && (Chunks - 1) * ChunkLength < cols,
            SoftmaxShape.Registers => SoftmaxKernels.RegisterCounts.Contains(PerLane) && (long)Lanes * PerLane >= cols && Lanes >= 1
                && (Lanes <= SoftmaxPlanner.WarpSize
                    ? BitOperations.IsPow2(Lanes) && GroupSize % Lanes == 0 && (cudaBlocks ? GroupSize % SoftmaxPlanner.WarpSize == 0 && GroupSize <= 1024 : GroupSize == programGroupSize)
                    : GroupSize == Lanes && (cudaBlocks ? Lanes % SoftmaxPlanner.WarpSize == 0 && Lanes <= 1024 : Lanes == programGroupSize && BitOperations.IsPow2(Lanes))),
            _ => false,
        };
        if (!ok) throw new ArgumentException($"The softmax plan {this} does not fit rows of {cols} columns in groups of {programGroupSize}.", "plan");
    }

    /// <inheritdoc/>
    public override string ToString() => Shape switch
    {
        SoftmaxShape.Rows => $"rows(slice {Lanes})",
        SoftmaxShape.Split => $"split({Chunks} x {ChunkLength})",
        _ => $"registers({Lanes} lanes x {PerLane}, group {GroupSize})",
    };
}

/// <summary>
/// Chooses the softmax shape from the row width, for OpenCL and CUDA alike: the one place the thresholds live.
/// </summary>
/// <param name="GroupSize">The work-group size the programs are compiled for (GA_GROUP_SIZE).</param>
/// <param name="ComputeUnits">Compute units (OpenCL) or multiprocessors (CUDA).</param>
/// <param name="SplitGroupsPerUnit">Work-groups per compute unit below which few, long rows are split across groups.</param>
/// <param name="RegisterRows">
/// Whether the register-resident kernels are used: on CUDA, where their reductions are warp shuffles. Elsewhere they
/// run (the tests force them on PoCL) but are not chosen: on CPU devices the streaming kernels vectorise better, and
/// OpenCL GPUs have not been measured.
/// </param>
internal sealed record SoftmaxPlanner(int GroupSize, int ComputeUnits, int SplitGroupsPerUnit, bool RegisterRows)
{
    /// <summary>Threads per warp: rows up to <see cref="WarpSize"/> x 32 columns get one warp each.</summary>
    public const int WarpSize = 32;

    /// <summary>The largest block the register-resident kernels run in (their <c>__launch_bounds__</c>).</summary>
    public const int MaxRegisterBlock = 1024;

    /// <summary>The widest row a warp holds in registers (32 lanes x 32 values).</summary>
    public const long MaxWarpColumns = WarpSize * SoftmaxKernels.MaxRegistersPerLane;

    /// <summary>The widest row a block holds in registers (1024 threads x 32 values).</summary>
    public const long MaxBlockColumns = MaxRegisterBlock * SoftmaxKernels.MaxRegistersPerLane;

    /// <summary>
    /// The shape for [rows, cols]:
    /// <list type="number">
    /// <item>register rows (when <see cref="RegisterRows"/>) up to <see cref="MaxWarpColumns"/>: rows under 32 columns share a
    /// warp (lanes = the power of two at or above cols), wider ones get a warp each, 1..32 values per lane;</item>
    /// <item>split, when there are fewer rows than <see cref="SplitGroupsPerUnit"/> x compute units and they are long (at
    /// least 16 columns per work-item of a group): enough chunks to fill the device, each at least 4 columns per work-item;</item>
    /// <item>register rows (when <see cref="RegisterRows"/>) up to <see cref="MaxBlockColumns"/>: one row per block, at least 4
    /// values per thread, the block a multiple of 32 threads;</item>
    /// <item>otherwise streaming rows: a slice of work-items per row, the power of two nearest cols/4, capped by the group.</item>
    /// </list>
    /// </summary>
    public SoftmaxPlan Plan(long rows, long cols)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cols, 1);
        int g = GroupSize;
        if (RegisterRows && cols <= MaxWarpColumns)
        {
            int lanes = cols < WarpSize ? (int)BitOperations.RoundUpToPowerOf2((uint)cols) : WarpSize;
            int perLane = (int)BitOperations.RoundUpToPowerOf2((uint)CeilDiv(cols, lanes));
            return SoftmaxPlan.Registers(lanes, perLane, g);
        }

        long targetGroups = Math.Max(1, ComputeUnits) * (long)SplitGroupsPerUnit;
        if (rows < targetGroups && cols >= 16L * g)
        {
            long chunks = Math.Min(CeilDiv(targetGroups, rows), CeilDiv(cols, 4L * g));
            if (chunks >= 2)
            {
                long chunkLength = CeilDiv(CeilDiv(cols, chunks), g) * g;
                return SoftmaxPlan.Split(cols, chunkLength);
            }
        }

        if (RegisterRows && cols <= MaxBlockColumns)
        {
            int perLane = Math.Max(4, (int)BitOperations.RoundUpToPowerOf2((uint)CeilDiv(cols, MaxRegisterBlock)));
            int threads = (int)(CeilDiv(CeilDiv(cols, perLane), WarpSize) * WarpSize);
            return SoftmaxPlan.Registers(threads, perLane, threads);
        }

        int slice = (int)Math.Min((ulong)g, BitOperations.RoundUpToPowerOf2((ulong)CeilDiv(cols, 4)));
        return SoftmaxPlan.Rows(slice);
    }

    static long CeilDiv(long a, long b) => (a + b - 1) / b;
}
