using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace GpuActivations.Tests.Gates;

/// <summary>
/// One ILGPU backend used without a device: PTX for sm_90 (ISA 7.8, the newest CUDA 11.8's ptxas reads) or OpenCL C 2.0 for
/// one vendor, on its own context with the algorithms library (exp and log need it). A failed compile clears the
/// context's caches, since a failure can leave it throwing on every later kernel.
/// </summary>
public sealed class OfflineCompiler : IDisposable
{
    readonly Context context;
    readonly Backend backend;

    OfflineCompiler(string target, Func<Context, Backend> create)
    {
        Target = target;
        context = Context.Create(b => b.EnableAlgorithms());
        backend = create(context);
    }

    /// <summary>What it generates, e.g. <c>PTX sm_90 ISA 7.8</c>.</summary>
    public string Target { get; }

    /// <summary>The PTX backend for sm_90 with ISA 7.8 (ILGPU writes <c>.target sm_80</c>, the lowest architecture its code needs).</summary>
    public static OfflineCompiler Ptx() => new("PTX sm_90 ISA 7.8", c => new PTXBackend(
        c, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_78, null));

    /// <summary>
    /// The OpenCL C 2.0 backend for <paramref name="vendor"/>'s devices with the capabilities ILGPU needs and the kernels use:
    /// the generic address space (ILGPU's minimum), fp16 (half storage) and fp64 (the emulated fma), and sub-groups.
    /// </summary>
    public static OfflineCompiler OpenCL(CLDeviceVendor vendor) => new($"OpenCL C 2.0 {vendor}", c => new CLBackend(
        c, new CLCapabilityContext(true, true, true, true, true), vendor, CLCVersion.CL20));

    /// <summary>The generated source of <paramref name="kernel"/> (PTX assembly or OpenCL C).</summary>
    public string Compile(MethodInfo kernel)
    {
        EntryPointDescription entry = IsImplicitlyGrouped(kernel)
            ? EntryPointDescription.FromImplicitlyGroupedKernel(kernel)
            : EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
        try
        {
            CompiledKernel compiled = backend.Compile(entry, default);
            return compiled switch
            {
                PTXCompiledKernel ptx => ptx.PTXAssembly,
                CLCompiledKernel cl => cl.Source,
                _ => throw new InvalidOperationException($"unexpected compiled kernel type {compiled.GetType().Name}"),
            };
        }
        catch
        {
            context.ClearCache(ClearCacheMode.Everything);
            throw;
        }
    }

    /// <summary>Whether the kernel takes an index as its first parameter (ILGPU then groups it itself).</summary>
    static bool IsImplicitlyGrouped(MethodInfo kernel)
    {
        ParameterInfo[] parameters = kernel.GetParameters();
        return parameters.Length > 0 && typeof(IIndex).IsAssignableFrom(parameters[0].ParameterType);
    }

    /// <summary>
    /// Compiles every work item on <see cref="Workers"/> threads, each with its own compilers (one per key, made by
    /// <paramref name="create"/>; separate contexts, so nothing is shared), and calls <paramref name="done"/> with the item's
    /// index and its source or ILGPU's error as each finishes (from any of the threads). Returns the summed compile time.
    /// </summary>
    public static TimeSpan CompileAll<TKey>(IReadOnlyList<(TKey Key, KernelSpecialisation Kernel)> work, Func<TKey, OfflineCompiler> create,
        Action<int, string?, string?> done) where TKey : notnull
    {
        int next = -1;
        long ticks = 0;
        var threads = Enumerable.Range(0, Math.Min(Workers, Math.Max(1, work.Count))).Select(_ => new Thread(() =>
        {
            var compilers = new Dictionary<TKey, OfflineCompiler>();
            var clock = new System.Diagnostics.Stopwatch();
            try
            {
                for (int i = Interlocked.Increment(ref next); i < work.Count; i = Interlocked.Increment(ref next))
                {
                    (TKey key, KernelSpecialisation kernel) = work[i];
                    string? source = null, error = null;
                    clock.Start();
                    try
                    {
                        if (!compilers.TryGetValue(key, out OfflineCompiler? compiler)) compilers[key] = compiler = create(key);
                        source = compiler.Compile(kernel.Method);
                    }
                    catch (Exception e) { error = $"{e.GetType().Name}: {e.Message}"; }
                    clock.Stop();
                    done(i, source, error);
                }
            }
            finally
            {
                foreach (OfflineCompiler compiler in compilers.Values) compiler.Dispose();
                Interlocked.Add(ref ticks, clock.Elapsed.Ticks);
            }
        }) { IsBackground = true, Name = "gate compiler" }).ToList();
        foreach (Thread thread in threads) thread.Start();
        foreach (Thread thread in threads) thread.Join();
        return TimeSpan.FromTicks(ticks);
    }

    /// <summary>Compiler threads per gate: one per core (ILGPU's compile is single-threaded and CPU-bound).</summary>
    public static int Workers => Math.Max(1, Environment.ProcessorCount);

    /// <summary>Disposes the backend and the context.</summary>
    public void Dispose()
    {
        backend.Dispose();
        context.Dispose();
    }
}
