using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace GpuActivations.Kernels;

using Accelerator = ILGPU.Runtime.Accelerator;

/// <summary>
/// The kernels loaded on one ILGPU accelerator, held strongly (ILGPU's own cache holds weak references, so hot calls
/// would otherwise recompile after a collection), loaded once per specialisation under a lock-free cache that is safe
/// from many threads, plus the launch shapes for that accelerator. A kernel that fails to compile clears ILGPU's
/// caches (a failed compile can leave the context throwing NullReferenceException on later loads) and throws an
/// <see cref="AcceleratorException"/> naming the kernel.
/// </summary>
internal sealed class KernelSet
{
    static readonly ConditionalWeakTable<Accelerator, KernelSet> Sets = new();

    readonly ConcurrentDictionary<MethodInfo, Lazy<object>> loaded = new();

    KernelSet(Accelerator accelerator)
    {
        Accelerator = accelerator;
        placeholder = new(() => accelerator.Allocate1D<float>(1));
        IsCpu = accelerator.AcceleratorType == AcceleratorType.CPU;
        long threadsPerGroup = System.Math.Min(256, accelerator.MaxNumThreadsPerGroup);
        // Rounded to whole warps, so a group never ends in a partial warp.
        GroupSize = (int)System.Math.Max(accelerator.WarpSize, threadsPerGroup / accelerator.WarpSize * accelerator.WarpSize);
        // Enough resident groups to fill every multiprocessor twice over; grid-stride loops cover the rest.
        int perMultiprocessor = System.Math.Max(1, accelerator.MaxNumThreadsPerMultiprocessor / GroupSize);
        MaxGroups = IsCpu ? accelerator.NumMultiprocessors : accelerator.NumMultiprocessors * perMultiprocessor * 2;
        // ILGPU's CPU accelerator runs every simulated thread as an OS thread and meets them at each barrier: one warp per
        // group keeps a launch cheap while a kernel that assumes a warp size still sees the shape's own (4, 32 or 64).
        if (IsCpu) GroupSize = accelerator.WarpSize;
        int rowGroup = System.Math.Min(GroupSize, SoftmaxKernels.MaxGroupSize);
        RowDevice = new RowDevice(
            WarpSize: accelerator.WarpSize,
            GroupSize: rowGroup,
            // Two warps per group on the CPU accelerator, so its fixtures run the warp kernel's several-rows-per-group indexing.
            WarpGroupSize: IsCpu ? System.Math.Min(2 * accelerator.WarpSize, accelerator.MaxNumThreadsPerGroup) : rowGroup,
            MaxGroups: IsCpu ? MaxGroups : MaxGroups * 4,
            // The CPU accelerator (one multiprocessor) plans as a small GPU would, so its fixtures run every kernel shape.
            WaveGroups: IsCpu ? CpuWaveGroups : accelerator.NumMultiprocessors * System.Math.Max(1, accelerator.MaxNumThreadsPerMultiprocessor / rowGroup),
            WarpShuffles: accelerator.AcceleratorType is AcceleratorType.Cuda or AcceleratorType.CPU);
    }

    /// <summary>The resident groups the CPU accelerator's row plans assume (a small GPU's; its one multiprocessor runs them in turn).</summary>
    internal const int CpuWaveGroups = 16;

    /// <summary>The facts the row plans take (<see cref="SoftmaxPlan.For"/>).</summary>
    public RowDevice RowDevice { get; }

    /// <summary>The set of <paramref name="accelerator"/>, created on first use.</summary>
    public static KernelSet For(Accelerator accelerator) => Sets.GetValue(accelerator, a => new KernelSet(a));

    /// <summary>The accelerator the kernels run on.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>True for ILGPU's CPU accelerator (a thread per simulated GPU thread: chunked launches, one group per multiprocessor).</summary>
    public bool IsCpu { get; }

    /// <summary>Threads per group of the elementwise launches.</summary>
    public int GroupSize { get; }

    /// <summary>The most groups an elementwise launch uses.</summary>
    public int MaxGroups { get; }

    /// <summary>The launch for <paramref name="count"/> independent items and each thread's share of them.</summary>
    public (KernelConfig Config, ElementRange Range) Elementwise(long count)
    {
        long groups = System.Math.Clamp((count + GroupSize - 1) / GroupSize, 1, MaxGroups);
        if (!IsCpu) return (new KernelConfig((int)groups, GroupSize), new ElementRange(count, 0));
        long threads = (long)MaxGroups * GroupSize;
        return (new KernelConfig(MaxGroups, GroupSize), new ElementRange(count, System.Math.Max(1, (count + threads - 1) / threads)));
    }

    /// <summary>A grid-stride launch for <paramref name="count"/> items (each thread loops; the kernel computes its own stride).</summary>
    public KernelConfig GridStride(long count)
    {
        long groups = System.Math.Clamp((count + GroupSize - 1) / GroupSize, 1, MaxGroups);
        return new KernelConfig((int)groups, GroupSize);
    }

    /// <summary>A launch of one group per row (grid-stride over rows beyond the resident groups), for the row kernels.</summary>
    public KernelConfig Rows(long rows)
        => new((int)System.Math.Clamp(rows, 1, IsCpu ? MaxGroups : (long)MaxGroups * 4), System.Math.Min(GroupSize, SoftmaxKernels.MaxGroupSize));

    /// <summary>A one-float buffer passed where a kernel's optional view (a softmax mask) is absent.</summary>
    public ArrayView<float> Placeholder => placeholder.Value.View;

    readonly Lazy<MemoryBuffer1D<float, Stride1D.Dense>> placeholder;

    /// <summary>The loaded launcher of <paramref name="kernel"/>, compiling it the first time.</summary>
    public TLauncher Get<TLauncher>(Delegate kernel, Func<Accelerator, TLauncher> load) where TLauncher : Delegate
        => (TLauncher)loaded.GetOrAdd(kernel.Method, m => new Lazy<object>(() => Load(m, load))).Value;

    object Load<TLauncher>(MethodInfo method, Func<Accelerator, TLauncher> load) where TLauncher : Delegate
    {
        try
        {
            return load(Accelerator);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A failed compile must not poison the context for every later kernel.
            Accelerator.Context.ClearCache(ClearCacheMode.Everything);
            loaded.TryRemove(method, out _);
            throw new AcceleratorException(
                $"ILGPU could not compile the kernel {Describe(method)} for {Accelerator.Name} ({Accelerator.AcceleratorType}): {e.Message}", e);
        }
    }

    /// <summary>A kernel's name with its type arguments, e.g. Map&lt;SiluOp, PtxFma, Single, Float32Storage&gt;.</summary>
    public static string Describe(MethodInfo method)
        => method.IsGenericMethod ? $"{method.Name}<{string.Join(", ", method.GetGenericArguments().Select(t => t.Name))}>" : method.Name;

    // The typed loaders: one per parameter count the kernel families use.
    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4> Get<T1, T2, T3, T4>(Action<T1, T2, T3, T4> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct
        => Get(kernel, a => a.LoadKernel(kernel));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3> Get<T1, T2, T3>(Action<T1, T2, T3> kernel)
        where T1 : struct where T2 : struct where T3 : struct
        => Get(kernel, a => a.LoadKernel(kernel));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5> Get<T1, T2, T3, T4, T5>(Action<T1, T2, T3, T4, T5> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct
        => Get(kernel, a => a.LoadKernel(kernel));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6> Get<T1, T2, T3, T4, T5, T6>(Action<T1, T2, T3, T4, T5, T6> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct
        => Get(kernel, a => a.LoadKernel(kernel));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7> Get<T1, T2, T3, T4, T5, T6, T7>(Action<T1, T2, T3, T4, T5, T6, T7> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
        => Get(kernel, a => a.LoadKernel(kernel));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8> Get<T1, T2, T3, T4, T5, T6, T7, T8>(Action<T1, T2, T3, T4, T5, T6, T7, T8> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct
        => Get(kernel, a => a.LoadKernel(kernel));

    public Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9> Get<T1, T2, T3, T4, T5, T6, T7, T8, T9>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct
        => Get(kernel, a => a.LoadKernel(kernel));
}
