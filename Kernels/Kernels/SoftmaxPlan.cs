namespace GpuActivations.Kernels;

/// <summary>The kernel shape a softmax launch takes (<see cref="SoftmaxPlan"/>).</summary>
internal enum SoftmaxPlanKind
{
    /// <summary>A warp per row, several rows per group (<see cref="SoftmaxKernels.WarpRows{TFma, TIn, TInStorage, TOut, TOutStorage}"/>).</summary>
    Warp,
    /// <summary>A group per row (<see cref="SoftmaxKernels.Rows{TFma, TIn, TInStorage, TOut, TOutStorage}"/>).</summary>
    Group,
    /// <summary>Each row split across groups, three launches (<see cref="SoftmaxKernels.SplitMax{TFma, TIn, TInStorage}"/> and the next two).</summary>
    Split,
}

/// <summary>What the row plans need to know of a device (<see cref="KernelSet.RowDevice"/>).</summary>
/// <param name="WarpSize">Threads per warp.</param>
/// <param name="GroupSize">Threads per group of the group-per-row and split launches.</param>
/// <param name="WarpGroupSize">Threads per group of the warp-per-row launch (whole warps).</param>
/// <param name="MaxGroups">The most groups a row launch uses (grid-stride beyond).</param>
/// <param name="WaveGroups">Groups of <paramref name="GroupSize"/> the device holds resident at once: what a split fills.</param>
/// <param name="WarpShuffles">Whether the device runs the warp kernel's shuffles (CUDA and the CPU accelerator, not OpenCL).</param>
internal readonly record struct RowDevice(int WarpSize, int GroupSize, int WarpGroupSize, int MaxGroups, int WaveGroups, bool WarpShuffles)
{
    /// <summary>The floats of split scratch the plans of this device need at most: every split plan has at most <see cref="WaveGroups"/> parts.</summary>
    public long ScratchFloats => (long)WaveGroups * SoftmaxSplitArgs.FloatsPerPart;
}

/// <summary>
/// How a softmax of rows x cols runs on a device: the kernel shape, its launch, and for the split its segments. One
/// function chooses (<see cref="For"/>), so tests can assert which plan a shape takes.
/// <list type="bullet">
/// <item>cols &lt;= <see cref="WarpMaxCols"/> on a device with warp shuffles: a warp per row. Up to 1024 columns a lane
/// holds at most 32 elements per pass (a 4 KB float32 row stays in L1 between the three passes), and a warp needs no
/// barriers; a group of 256 on such a row would spend its time in the shared-memory reductions (four per row, ten
/// barriers each) with at most 4 elements per thread, and leave most threads idle below 256 columns. 1024 is also
/// where PyTorch's warp softmax stops.</item>
/// <item>Few, long rows: split. When the rows cannot fill the device (rows &lt;= half of <see cref="RowDevice.WaveGroups"/>)
/// and a row holds more than <see cref="MinSegment"/> columns, each row is cut into
/// min(ceil(cols / MinSegment), WaveGroups / rows) segments, so rows x segments &lt;= WaveGroups: the launch fills one
/// wave, and the scratch for the partials is bounded per device (<see cref="RowDevice.ScratchFloats"/>).</item>
/// <item>Otherwise a group per row (OpenCL's plan for every width but the split, whose kernels are as portable).</item>
/// </list>
/// </summary>
/// <param name="Kind">The kernel shape.</param>
/// <param name="Groups">Groups in the launch (each launch of a split).</param>
/// <param name="GroupSize">Threads per group.</param>
/// <param name="Segments">Segments per row (split; else 1).</param>
/// <param name="SegmentLength">Columns per segment (split; else cols).</param>
internal readonly record struct SoftmaxPlan(SoftmaxPlanKind Kind, int Groups, int GroupSize, long Segments, long SegmentLength)
{
    /// <summary>The widest row a warp takes.</summary>
    public const long WarpMaxCols = 1024;

    /// <summary>
    /// The fewest columns a split segment is aimed at: 8 elements per thread of a 256-thread group per pass, enough
    /// to amortise the group's reductions and the partials' combine.
    /// </summary>
    public const long MinSegment = 2048;

    /// <summary>The plan for rows x cols on <paramref name="device"/>.</summary>
    public static SoftmaxPlan For(long rows, long cols, RowDevice device)
    {
        if (device.WarpShuffles && cols <= WarpMaxCols)
        {
            int warpsPerGroup = device.WarpGroupSize / device.WarpSize;
            long groups = Math.Clamp((rows + warpsPerGroup - 1) / warpsPerGroup, 1, device.MaxGroups);
            return new(SoftmaxPlanKind.Warp, (int)groups, device.WarpGroupSize, 1, cols);
        }
        long segments = Math.Min((cols + MinSegment - 1) / MinSegment, device.WaveGroups / Math.Max(rows, 1));
        if (segments >= 2)
        {
            long length = (cols + segments - 1) / segments;
            segments = (cols + length - 1) / length; // no empty segment
            return new(SoftmaxPlanKind.Split, (int)(rows * segments), device.GroupSize, segments, length);
        }
        return new(SoftmaxPlanKind.Group, (int)Math.Clamp(rows, 1, device.MaxGroups), device.GroupSize, 1, cols);
    }
}
