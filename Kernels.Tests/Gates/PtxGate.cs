using System.Diagnostics;
using System.Text.RegularExpressions;

namespace GpuActivations.Tests.Gates;

/// <summary>What ptxas -v says about one function of a module.</summary>
/// <param name="Name">The function's name.</param>
/// <param name="IsEntry">True for the kernel entry (a <c>.entry</c>), false for a called <c>.func</c>.</param>
/// <param name="Registers">Registers per thread (entries only; -1 where ptxas gives none).</param>
/// <param name="StackFrame">Bytes of stack frame (local memory) per thread.</param>
/// <param name="SpillStores">Bytes of register spill stores.</param>
/// <param name="SpillLoads">Bytes of register spill loads.</param>
public sealed record PtxasFunction(string Name, bool IsEntry, int Registers, int StackFrame, int SpillStores, int SpillLoads);

/// <summary>One ptxas run: the architecture, its exit code and log, and the functions it reported.</summary>
/// <param name="Architecture">e.g. <c>sm_90</c>.</param>
/// <param name="ExitCode">ptxas's exit code (0: assembled).</param>
/// <param name="Log">ptxas's output.</param>
/// <param name="Functions">The functions of its -v report.</param>
public sealed record PtxasReport(string Architecture, int ExitCode, string Log, IReadOnlyList<PtxasFunction> Functions)
{
    /// <summary>The kernel entry's report, or null when ptxas gave none (it failed).</summary>
    public PtxasFunction? Entry => Functions.FirstOrDefault(f => f.IsEntry);

    /// <summary>The largest stack frame of the entry and every function it calls.</summary>
    public int StackFrame => Functions.Count == 0 ? 0 : Functions.Max(f => f.StackFrame);

    /// <summary>Spill stores plus loads over every function.</summary>
    public int SpillBytes => Functions.Sum(f => f.SpillStores + f.SpillLoads);

    /// <summary>Lines of ptxas's output that are errors or warnings.</summary>
    public IEnumerable<string> Problems => Log.Split('\n').Where(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)
        || l.Contains("warning", StringComparison.OrdinalIgnoreCase)).Select(l => l.Trim());

    static readonly Regex EntryLine = new(@"Compiling entry function '([^']+)'", RegexOptions.Compiled);
    static readonly Regex PropertiesLine = new(@"Function properties for (\S+)", RegexOptions.Compiled);
    static readonly Regex FrameLine = new(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", RegexOptions.Compiled);
    static readonly Regex RegistersLine = new(@"Used (\d+) registers", RegexOptions.Compiled);

    /// <summary>Reads ptxas -v's report (CUDA 11.8's wording) from <paramref name="log"/>.</summary>
    public static PtxasReport Parse(string architecture, int exitCode, string log)
    {
        var entries = new HashSet<string>();
        var frames = new Dictionary<string, (int Frame, int Stores, int Loads)>();
        var registers = new Dictionary<string, int>();
        string? current = null, lastEntry = null;
        foreach (string line in log.Split('\n'))
        {
            Match m;
            if ((m = EntryLine.Match(line)).Success) { current = lastEntry = m.Groups[1].Value; entries.Add(current); }
            else if ((m = PropertiesLine.Match(line)).Success) current = m.Groups[1].Value;
            else if ((m = FrameLine.Match(line)).Success && current is not null)
                frames[current] = (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), int.Parse(m.Groups[3].Value));
            else if ((m = RegistersLine.Match(line)).Success && lastEntry is not null)
                registers[lastEntry] = int.Parse(m.Groups[1].Value);
        }
        var functions = entries.Concat(frames.Keys).Distinct().Select(name =>
        {
            (int frame, int stores, int loads) = frames.GetValueOrDefault(name);
            return new PtxasFunction(name, entries.Contains(name), registers.GetValueOrDefault(name, -1), frame, stores, loads);
        }).OrderByDescending(f => f.IsEntry).ToArray();
        return new PtxasReport(architecture, exitCode, log, functions);
    }
}

/// <summary>One kernel through the PTX gate: its PTX (or ILGPU's error) and ptxas's report per architecture.</summary>
/// <param name="Kernel">The specialisation.</param>
/// <param name="Ptx">The PTX, or null when ILGPU failed.</param>
/// <param name="CompileError">ILGPU's error, or null.</param>
/// <param name="Assembled">ptxas's report per architecture (empty when ILGPU failed).</param>
public sealed record PtxKernelResult(KernelSpecialisation Kernel, string? Ptx, string? CompileError, IReadOnlyDictionary<string, PtxasReport> Assembled)
{
    /// <summary>The PTX's structure (loads, approximate and double instructions); null when ILGPU failed.</summary>
    public PtxStructure? Structure { get; } = Ptx is null ? null : PtxStructure.Read(Ptx);
}

/// <summary>
/// The PTX gate over <see cref="KernelCatalog"/>: ILGPU compiles every specialisation to PTX offline (one thread, in
/// catalog order) while ptxas assembles the finished ones for each of <see cref="Architectures"/> (one process per core).
/// Run once per test process and shared by the gate's tests.
/// </summary>
public sealed class PtxGateRun
{
    /// <summary>The architectures every kernel is assembled for: A100 and H100/H200.</summary>
    public static readonly string[] Architectures = ["sm_80", "sm_90"];

    static readonly Lazy<PtxGateRun> shared = new(() => Execute(GateTools.Require(GateTools.Ptxas)), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The run of this process (ignores the caller's test, or fails it, when ptxas is missing).</summary>
    public static PtxGateRun Shared
    {
        get
        {
            OpenCLGateRun.Prefetch();
            return GateTools.Ptxas.IsPresent ? shared.Value : new PtxGateRun([], TimeSpan.Zero, TimeSpan.Zero, GateTools.Require(GateTools.Ptxas));
        }
    }

    PtxGateRun(IReadOnlyList<PtxKernelResult> results, TimeSpan elapsed, TimeSpan ilgpuTime, string ptxas)
    {
        Results = results;
        Elapsed = elapsed;
        IlgpuTime = ilgpuTime;
        Ptxas = ptxas;
    }

    /// <summary>Every kernel's result, in catalog order.</summary>
    public IReadOnlyList<PtxKernelResult> Results { get; }

    /// <summary>The wall time of the whole run.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The time ILGPU spent generating PTX, summed over its compiler threads.</summary>
    public TimeSpan IlgpuTime { get; }

    /// <summary>The ptxas used.</summary>
    public string Ptxas { get; }

    /// <summary>Kernels ILGPU compiled to PTX.</summary>
    public int Compiled => Results.Count(r => r.Ptx is not null);

    /// <summary>Kernels ptxas assembled for every architecture.</summary>
    public int Assembled => Results.Count(r => r.Assembled.Count == Architectures.Length && r.Assembled.Values.All(a => a.ExitCode == 0));

    static PtxGateRun Execute(string ptxas)
    {
        var clock = Stopwatch.StartNew();
        string dir = Directory.CreateTempSubdirectory("ga-ptx-gate-").FullName;
        string? dump = Environment.GetEnvironmentVariable("GPUACTIVATIONS_GATE_DUMP");
        IReadOnlyList<KernelSpecialisation> kernels = KernelCatalog.Selected(GateBackend.Ptx);
        var pending = new Task<PtxKernelResult>[kernels.Count];
        try
        {
            TimeSpan ilgpu = OfflineCompiler.CompileAll(kernels.Select(k => (0, k)).ToArray(), _ => OfflineCompiler.Ptx(), (i, ptx, error) =>
            {
                KernelSpecialisation kernel = kernels[i];
                if (ptx is null) { pending[i] = Task.FromResult(new PtxKernelResult(kernel, null, error, new Dictionary<string, PtxasReport>())); return; }
                string file = Path.Combine(dir, $"k{i}.ptx");
                File.WriteAllText(file, ptx);
                if (dump is { Length: > 0 }) { Directory.CreateDirectory(dump); File.WriteAllText(Path.Combine(dump, FileName(kernel) + ".ptx"), ptx); }
                pending[i] = Assemble(ptxas, kernel, ptx, file);
            });
            PtxKernelResult[] results = Task.WhenAll(pending).GetAwaiter().GetResult();
            return new PtxGateRun(results, clock.Elapsed, ilgpu, ptxas);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The run of this process without starting the OpenCL gate beside it (for a run that needs only the PTX results).</summary>
    public static PtxGateRun SharedAlone => GateTools.Ptxas.IsPresent ? shared.Value : new PtxGateRun([], TimeSpan.Zero, TimeSpan.Zero, GateTools.Require(GateTools.Ptxas));

    /// <summary>Starts this process's run in the background if ptxas is present (the OpenCL gate calls it, so the two overlap).</summary>
    public static void Prefetch()
    {
        if (GateTools.Ptxas.IsPresent) _ = Task.Run(() => shared.Value);
    }

    static async Task<PtxKernelResult> Assemble(string ptxas, KernelSpecialisation kernel, string ptx, string file)
    {
        var reports = new Dictionary<string, PtxasReport>();
        Task<ToolResult>[] runs = Architectures.Select(arch =>
            GateTools.Run(ptxas, ["-arch=" + arch, "-v", "-o", $"{file}.{arch}.cubin", file], TimeSpan.FromMinutes(2))).ToArray();
        for (int i = 0; i < runs.Length; i++)
        {
            ToolResult result = await runs[i].ConfigureAwait(false);
            reports[Architectures[i]] = PtxasReport.Parse(Architectures[i], result.ExitCode, result.Output);
        }
        return new PtxKernelResult(kernel, ptx, null, reports);
    }

    /// <summary>A file name for a kernel's dumped source.</summary>
    public static string FileName(KernelSpecialisation kernel)
        => Regex.Replace(kernel.Name, @"[^A-Za-z0-9_]+", "_").Trim('_');
}
