using System.Diagnostics;
using System.Text.RegularExpressions;
using ILGPU.Runtime.OpenCL;

namespace GpuActivations.Tests.Gates;

/// <summary>One kernel through the OpenCL C gate for one vendor: the source (or ILGPU's error) and clang's verdict.</summary>
/// <param name="Kernel">The specialisation.</param>
/// <param name="Vendor">The device vendor ILGPU generated for.</param>
/// <param name="Source">The OpenCL C, or null when ILGPU failed.</param>
/// <param name="CompileError">ILGPU's error, or null.</param>
/// <param name="Check">clang's result (null when ILGPU failed).</param>
public sealed record OpenCLKernelResult(KernelSpecialisation Kernel, CLDeviceVendor Vendor, string? Source, string? CompileError, ToolResult? Check)
{
    /// <summary>clang's error lines.</summary>
    public IEnumerable<string> Errors => (Check?.Output ?? "").Split('\n').Where(l => l.Contains("error:", StringComparison.Ordinal)).Select(l => l.Trim());

    /// <summary>The count of clang's warnings.</summary>
    public int Warnings => (Check?.Output ?? "").Split('\n').Count(l => l.Contains("warning:", StringComparison.Ordinal));

    /// <summary>True when ILGPU generated the source and clang accepted it.</summary>
    public bool Passed => Source is not null && Check is { ExitCode: 0 } && !Errors.Any();
}

/// <summary>
/// The OpenCL C gate over <see cref="KernelCatalog"/>: ILGPU generates OpenCL C 2.0 for AMD and Intel devices (the
/// vendors whose GPUs give ILGPU the generic address space it needs) and clang checks every source
/// (<c>-x cl -cl-std=CL2.0 -Xclang -finclude-default-header -fsyntax-only</c>), one process per core, while ILGPU goes on.
/// </summary>
public sealed class OpenCLGateRun
{
    /// <summary>The vendors the sources are generated for (ILGPU's code differs per vendor in its sub-group and shuffle support).</summary>
    public static readonly CLDeviceVendor[] Vendors = [CLDeviceVendor.AMD, CLDeviceVendor.Intel];

    /// <summary>clang's arguments before the file: OpenCL C 2.0 with the standard header, syntax and semantics only.</summary>
    public static readonly string[] ClangArguments = ["-x", "cl", "-cl-std=CL2.0", "-Xclang", "-finclude-default-header", "-fsyntax-only"];

    static readonly Lazy<OpenCLGateRun> shared = new(() => Execute(GateTools.Require(GateTools.Clang)), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The run of this process (ignores the caller's test, or fails it, when clang is missing).</summary>
    public static OpenCLGateRun Shared
    {
        get
        {
            PtxGateRun.Prefetch();
            return GateTools.Clang.IsPresent ? shared.Value : new OpenCLGateRun([], TimeSpan.Zero, TimeSpan.Zero, GateTools.Require(GateTools.Clang));
        }
    }

    OpenCLGateRun(IReadOnlyList<OpenCLKernelResult> results, TimeSpan elapsed, TimeSpan ilgpuTime, string clang)
    {
        Results = results;
        Elapsed = elapsed;
        IlgpuTime = ilgpuTime;
        Clang = clang;
    }

    /// <summary>Every (kernel, vendor) result, vendor by vendor in catalog order.</summary>
    public IReadOnlyList<OpenCLKernelResult> Results { get; }

    /// <summary>The wall time of the whole run.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The time ILGPU spent generating OpenCL C, summed over its compiler threads.</summary>
    public TimeSpan IlgpuTime { get; }

    /// <summary>The clang used.</summary>
    public string Clang { get; }

    /// <summary>Sources ILGPU generated.</summary>
    public int Generated => Results.Count(r => r.Source is not null);

    /// <summary>Sources clang accepted.</summary>
    public int Checked => Results.Count(r => r.Passed);

    static OpenCLGateRun Execute(string clang)
    {
        var clock = Stopwatch.StartNew();
        string dir = Directory.CreateTempSubdirectory("ga-opencl-gate-").FullName;
        string? dump = Environment.GetEnvironmentVariable("GPUACTIVATIONS_GATE_DUMP");
        var work = Vendors.SelectMany(v => KernelCatalog.Selected(GateBackend.OpenCL).Select(k => (Key: v, Kernel: k))).ToArray();
        var pending = new Task<OpenCLKernelResult>[work.Length];
        try
        {
            TimeSpan ilgpu = OfflineCompiler.CompileAll(work, OfflineCompiler.OpenCL, (i, source, error) =>
            {
                (CLDeviceVendor vendor, KernelSpecialisation kernel) = work[i];
                if (source is null) { pending[i] = Task.FromResult(new OpenCLKernelResult(kernel, vendor, null, error, null)); return; }
                string file = Path.Combine(dir, $"k{i}.cl");
                File.WriteAllText(file, source);
                if (dump is { Length: > 0 })
                {
                    Directory.CreateDirectory(dump);
                    File.WriteAllText(Path.Combine(dump, $"{PtxGateRun.FileName(kernel)}_{vendor}.cl"), source);
                }
                pending[i] = Check(clang, kernel, vendor, source, file);
            });
            OpenCLKernelResult[] results = Task.WhenAll(pending).GetAwaiter().GetResult();
            return new OpenCLGateRun(results, clock.Elapsed, ilgpu, clang);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Starts this process's run in the background if clang is present (the PTX gate calls it, so the two overlap).</summary>
    public static void Prefetch()
    {
        if (GateTools.Clang.IsPresent) _ = Task.Run(() => shared.Value);
    }

    static async Task<OpenCLKernelResult> Check(string clang, KernelSpecialisation kernel, CLDeviceVendor vendor, string source, string file)
    {
        ToolResult result = await GateTools.Run(clang, [.. ClangArguments, file], TimeSpan.FromMinutes(2)).ConfigureAwait(false);
        return new OpenCLKernelResult(kernel, vendor, source, null, result with { Output = Regex.Replace(result.Output, Regex.Escape(file), "kernel.cl") });
    }
}
