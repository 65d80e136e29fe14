using System.Globalization;
using System.Text;
using System.Text.Json;

namespace GpuActivations.Bench;

/// <summary>A table of text cells, rendered to the console by <see cref="ConsoleUi.Render"/> or as markdown.</summary>
public sealed class TextTable(params string[] headers)
{
    readonly List<string[]> rows = [];

    /// <summary>The column names (a leading '>' in the constructor's header marks a right-aligned column).</summary>
    public IReadOnlyList<string> Headers { get; } = [.. headers.Select(h => h.TrimStart('>'))];
    /// <summary>Whether each column is right-aligned (numbers).</summary>
    public IReadOnlyList<bool> RightAligned { get; } = [.. headers.Select(h => h.StartsWith('>'))];
    /// <summary>The rows, each as many cells as headers.</summary>
    public IReadOnlyList<string[]> Rows => rows;

    /// <summary>Adds a row; it must have one cell per header.</summary>
    public void Add(params string[] cells)
    {
        if (cells.Length != Headers.Count)
            throw new ArgumentException($"a row of {cells.Length} cells for {Headers.Count} columns ({string.Join(", ", Headers)}).", nameof(cells));
        rows.Add(cells);
    }

    /// <summary>The table at <paramref name="width"/> columns with only <paramref name="columns"/> (all when null).</summary>
    public string ToConsole(int width = ConsoleUi.DefaultWidth, IReadOnlyCollection<string>? columns = null) => ConsoleUi.Render(this, width, columns);

    /// <summary>A GitHub-flavoured markdown table.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine("| " + string.Join(" | ", Headers) + " |");
        sb.AppendLine("|" + string.Join("|", RightAligned.Select(r => r ? "---:" : "---")) + "|");
        foreach (var r in rows) sb.AppendLine("| " + string.Join(" | ", r.Select(c => c.Replace("|", "\\|"))) + " |");
        return sb.ToString();
    }
}

/// <summary>The report: the console table, the markdown file, the JSON and the throughput plots.</summary>
public static class Report
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Seconds as a short time: 812 ns, 35.2 us, 9.81 ms, 1.23 s; "-" when not measured (NaN).</summary>
    public static string Time(double seconds) =>
        !double.IsFinite(seconds) ? "-"
        : seconds < 1e-6 ? (seconds * 1e9).ToString("0", Inv) + " ns"
        : seconds < 1e-3 ? (seconds * 1e6).ToString(seconds < 1e-5 ? "0.00" : "0.0", Inv) + " us"
        : seconds < 1 ? (seconds * 1e3).ToString(seconds < 1e-2 ? "0.00" : "0.0", Inv) + " ms"
        : seconds.ToString("0.00", Inv) + " s";

    /// <summary>A number, "-" when it is NaN or infinite (never "NaN" in a table), "0" for zero whatever the format.</summary>
    public static string Num(double v, string format = "0.0") => !double.IsFinite(v) ? "-" : v == 0 ? "0" : v.ToString(format, Inv);
    static string Ratio(double? v) => v is { } r && double.IsFinite(r) ? r.ToString(r < 10 ? "0.00" : "0.0", Inv) + "x" : "-";
    static string Percent(double v) => double.IsFinite(v) ? (100 * v).ToString("0", Inv) + "%" : "-";
    static string Met(TargetCheck? t, bool markdown) => t is null ? "" : t.Met ? "met" : markdown ? "**MISSED**" : "MISSED";

    /// <summary>
    /// The verification result in words, naming the rule that decided it, so an error that looks large next to the
    /// others says why it passes: log-softmax's absolute error above 1e-5 is within its "+ 2 ulp of y" term (|y| >= 128),
    /// a backward op's relative error is measured in ulps of the summed terms (docs/numerics.md), a gated backward's
    /// dGate near act' = 0 is held to the absolute 2^-21 |dy up| rule.
    /// </summary>
    public static string VerificationResult(VerifyRow v)
    {
        string verdict = v.Pass ? "pass" : "FAIL";
        if (v.Worst.StartsWith("special-value mismatch", StringComparison.Ordinal)) return verdict + ": special value differs";
        if (v.Tolerance.StartsWith('=')) return verdict + ": bit-exact with f32 rounded to bf16";
        if (v.Op == "LogSoftmax" || v.Tolerance.Contains("abs + 2 ulp", StringComparison.Ordinal))
            return verdict + (v.MaxAbsolute > Verification.LogSoftmaxAbsolute ? ": abs err <= 1e-5 + 2 ulp(y), ulp term (|y| >= 128)" : ": abs err <= 1e-5");
        if (v.Tolerance.Contains("relative", StringComparison.Ordinal)) return verdict + ": rel err <= 1e-5";
        if (v.Tolerance.Contains("of bound", StringComparison.Ordinal)) return verdict + ": abs err <= 1e-5 of the error bound + 2 ulp";
        if (v.Tolerance.StartsWith("dGate", StringComparison.Ordinal)) return verdict + $": {Num(v.MaxUlp, "0")} ulp <= 8, or 2^-21|dy up| near act'=0";
        if (v.Tolerance.Contains("f' terms", StringComparison.Ordinal)) return verdict + $": {Num(v.MaxUlp, "0.#")} <= 8 ulp of f' terms' sum";
        return verdict + $": {Num(v.MaxUlp, "0")} ulp {v.Tolerance}";
    }

    /// <summary>
    /// Where the worst error was: "-" when there was none (every output exact), "x = NaN" rather than a bare "NaN" when
    /// that input was a NaN, cut at 60 characters.
    /// </summary>
    static string WorstAt(VerifyRow v)
    {
        bool exact = v.Pass && (v.MaxUlp == 0 || double.IsNaN(v.MaxUlp)) && !(v.MaxRelative > 0) && !(v.MaxAbsolute > 0);
        if (exact || v.Worst.Length == 0) return "-";
        if (v.Worst == "NaN") return "x = NaN";
        return v.Worst.Length > 60 ? v.Worst[..60] + "..." : v.Worst;
    }

    /// <summary>The verification table's columns on a 120-column console.</summary>
    public static readonly string[] VerificationNarrow = ["op", "accelerator", "max ulp", "max rel err", "max abs err", "result (rule applied)"];

    /// <summary>The verification table.</summary>
    public static TextTable VerificationTable(RunResults results)
    {
        var table = new TextTable("op", "accelerator", ">outputs", ">max ulp", ">max rel err", ">max abs err", "tolerance", "result (rule applied)", "worst at");
        foreach (var v in results.Verification)
        {
            // Absolute error says little of elementwise results (inputs reach 3e38), relative error little of
            // log-softmax (results near 0): each row shows the measures its tolerance is stated in, plus relative.
            bool log = v.Op == "LogSoftmax";
            bool absolute = log || v.Op is "Softmax" or "SoftmaxBackward" or "CrossEntropy";
            table.Add(v.Op, v.Accelerator, v.Checked.ToString("N0", Inv), Num(v.MaxUlp, "0.#"),
                log ? "-" : Num(v.MaxRelative, "0.0e0"), absolute ? Num(v.MaxAbsolute, "0.0e0") : "-", v.Tolerance, VerificationResult(v),
                WorstAt(v));
        }
        return table;
    }

    /// <summary>The main table: op x accelerator x size.</summary>
    public static TextTable BenchTable(RunResults results, bool markdown)
    {
        var torch = results.Torch;
        var headers = new List<string> { "op", "device", "size", ">median", ">GB/s", ">copy GB/s", ">of copy", ">ceiling", ">memory", "figure", "met", ">x naive", ">x TP", ">x TP/core", ">x ONNX", ">cores" };
        if (torch is not null) headers.AddRange([">PyTorch GB/s", ">x PyTorch"]);
        var table = new TextTable([.. headers]);
        foreach (var r in results.Rows)
        {
            var cells = new List<string>
            {
                r.Op, r.Accelerator, r.Shape.Label, Time(r.Ours.Median), Num(r.GBps), Num(r.CopyGBps), Percent(r.FractionOfCopy),
                r.ComputeCeiling is { } ceiling ? Percent(ceiling) : "-", r.MemoryCeiling is { } memory ? Percent(memory) : "-", r.Target?.Figure ?? "", Met(r.Target, markdown), Ratio(r.NaiveSpeedup), Ratio(r.TensorPrimitivesSpeedup), Ratio(r.TensorPrimitivesPerCore), Ratio(r.OnnxSpeedup), Num(r.Ours.HostCores, "0.0"),
            };
            if (torch is not null)
            {
                var t = torch.Matches(r.Kind) ? torch.Find(r.Op, r.Shape.Label) : null;
                cells.Add(t is null ? "-" : Num(t.GBps));
                cells.Add(t is null ? "-" : Ratio(t.MedianSeconds / r.Ours.Median));
            }
            table.Add([.. cells]);
        }
        return table;
    }

    /// <summary>ONNX Runtime's accuracy beside ours, against the same double reference.</summary>
    public static TextTable OnnxAccuracyTable(RunResults results)
    {
        var table = new TextTable("op", "ONNX node", "measure", ">ONNX Runtime", "at", ">ours (SIMD CPU)", "at");
        foreach (var r in results.OnnxAccuracy)
        {
            string format = r.Measure == "max ulp" ? "0" : "0.0e0";
            table.Add(r.Op, r.OnnxNode, r.Measure, Num(r.Onnx, format), r.OnnxWorstAt, Num(r.Ours, format), r.OursWorstAt);
        }
        return table;
    }

    /// <summary>The in-cache single-thread table.</summary>
    public static TextTable InCacheTable(RunResults results, bool markdown)
    {
        var table = new TextTable("op", ">elements", ">ours", ">TensorPrimitives", ">naive loop", ">x TP", "figure", "met", ">x naive", "figure ", "met ", ">cores (ours)");
        foreach (var r in results.InCache)
        {
            var tpCheck = new TargetCheck(">= 1.0x", r.TensorPrimitivesSpeedup >= 1.0);
            var naiveCheck = new TargetCheck(">= 5x", r.NaiveSpeedup >= 5.0);
            table.Add(r.Op, r.Elements.ToString("N0", Inv), Time(r.Ours.Median), Time(r.TensorPrimitives.Median), Time(r.Naive.Median),
                Ratio(r.TensorPrimitivesSpeedup), tpCheck.Figure, Met(tpCheck, markdown), Ratio(r.NaiveSpeedup), naiveCheck.Figure, Met(naiveCheck, markdown),
                Num(r.Ours.HostCores, "0.0"));
        }
        return table;
    }

    /// <summary>The CPU copy variants table.</summary>
    public static TextTable CopyVariantsTable(RunResults results)
    {
        var table = new TextTable("copy", ">bytes moved", ">median", ">GB/s");
        foreach (var c in results.CopyVariants)
            table.Add(c.Method, $"{c.Bytes / 1e6:0} MB", Time(c.Time.Median), Num(c.Time.GBps(c.Bytes)));
        return table;
    }

    /// <summary>
    /// Every performance target with its result, one line each. In a smoke run each result says it is not meaningful
    /// (tiny in-cache sizes, a few samples).
    /// </summary>
    public static TextTable FiguresTable(RunResults results, bool markdown)
    {
        var table = new TextTable("performance target", "op", "accelerator", "size", ">measured", "result");
        string Result(TargetCheck t) => Met(t, markdown) + (results.Smoke ? " (smoke: not meaningful)" : "");
        foreach (var r in results.Rows.Where(r => r.Target is not null))
        {
            string measured = Percent(r.FractionOfCopy) + " of copy" + (r.Target!.Figure.Contains("cores", StringComparison.Ordinal) ? $", {Num(r.Ours.HostCores)} cores" : "")
                + (r.ComputeCeiling is { } c ? $" (ceiling {Percent(c)}" + (r.MemoryCeiling is { } m ? $", memory {Percent(m)})" : ")") : "");
            // A miss with a ceiling below the goal is the op's arithmetic or its memory traffic on this machine.
            table.Add(r.Target.Figure, r.Op, r.Accelerator, r.Shape.Label, measured, Result(r.Target) + (r.MissBound is { } bound ? $": {bound}" : ""));
        }
        // An ONNX Runtime miss names what bounds the op's own time (the share row's verdict): at this library's accuracy
        // the op is already at its arithmetic's or its memory traffic's pace.
        foreach (var r in results.Rows)
            if (Targets.Onnx(r) is { } t)
                table.Add(t.Figure, r.Op, r.Accelerator, r.Shape.Label, Ratio(r.OnnxSpeedup), Result(t) + (!t.Met && r.MissBound is { } bound ? $": {bound}" : ""));
        foreach (var r in results.InCache)
        {
            table.Add(">= 1.0x TensorPrimitives (1 thread, in cache)", r.Op, "Cpu (span API)", BenchOptions.Label(r.Elements), Ratio(r.TensorPrimitivesSpeedup),
                Result(new("", r.TensorPrimitivesSpeedup >= 1.0)));
            table.Add(">= 5x naive loop (1 thread, in cache)", r.Op, "Cpu (span API)", BenchOptions.Label(r.Elements), Ratio(r.NaiveSpeedup),
                Result(new("", r.NaiveSpeedup >= 5.0)));
        }
        return table;
    }

    /// <summary>
    /// How much of the CPU this process had: the median host cores over the CPU rows that split across cores. Other
    /// processes on a shared machine take cores away; multi-threaded rows then show well under the core count.
    /// </summary>
    public static string? ContentionNote(RunResults results)
    {
        double[] cores = [.. results.Rows.Where(r => r.Kind == AcceleratorKind.Cpu && r.Shape.Elements >= 2 * 65536 * Environment.ProcessorCount / 2)
            .Select(r => r.Ours.HostCores).Where(double.IsFinite).Order()];
        if (cores.Length == 0) return null;
        double median = Sampler.Quantile(cores, 0.5);
        string verdict = median >= Environment.ProcessorCount - 0.5
            ? "the kernels had the cores to themselves most of the time"
            : "**other processes held part of the cores during this run: compute-bound rows are pessimistic against the copy**";
        return $"CPU share: median {median:0.0} of {Environment.ProcessorCount} cores busy with us during the multi-threaded CPU rows ({verdict})";
    }

    /// <summary>The benchmark table's columns on a 120-column console.</summary>
    public static readonly string[] BenchNarrow = ["op", "device", "size", "median", "GB/s", "of copy", "ceiling", "memory", "x naive", "x TP", "x TP/core", "x ONNX", "cores"];

    /// <summary>The in-cache table's columns on a 120-column console.</summary>
    public static readonly string[] InCacheNarrow = ["op", "elements", "ours", "TensorPrimitives", "naive loop", "x TP", "x naive", "cores (ours)"];

    /// <summary>The text printed at the end of a benchmark run, laid out to <paramref name="width"/> columns (narrow column sets below <see cref="ConsoleUi.WideWidth"/>).</summary>
    public static string Console(RunResults results, int width = ConsoleUi.DefaultWidth)
    {
        bool wide = width >= ConsoleUi.WideWidth;
        var sb = new StringBuilder();
        sb.AppendLine("Benchmark: median of interleaved samples. GB/s = bytes read + written per second; of copy = our GB/s over a copy of");
        sb.AppendLine("the same bytes on the same accelerator in the same run. x PEER = the peer's time over ours (above 1: we are faster).");
        sb.AppendLine("Naive loop (branch-free float) and TensorPrimitives (TP) run on one thread; x TP/core divides by the cores we kept");
        sb.AppendLine($"busy (cores). ONNX Runtime runs on {Environment.ProcessorCount} threads like ours, in blocks alternating with ours (its threads spin");
        sb.AppendLine("after a run, on the cores our op needs), the median of 3 rounds. ceiling = the share of copy the op would reach if");
        sb.AppendLine($"memory were free: a small instance of it in cache on one thread, times {Environment.ProcessorCount} cores. memory = the share a");
        sb.AppendLine($"copy with ordinary stores reaches (ops storing through the cache: the softmax family's rows).{(wide ? "" : " --wide: every column.")}");
        if (results.Smoke) sb.AppendLine("SMOKE RUN: tiny in-cache sizes and a few samples; the figures below are not meaningful.");
        sb.Append(BenchTable(results, markdown: false).ToConsole(width, wide ? null : BenchNarrow));
        if (results.InCache.Count > 0)
        {
            sb.AppendLine().AppendLine("CPU, one thread, data in cache (span API vs TensorPrimitives vs a naive loop):");
            sb.Append(InCacheTable(results, markdown: false).ToConsole(width, wide ? null : InCacheNarrow));
        }
        if (results.CopyVariants.Count > 0)
        {
            sb.AppendLine().AppendLine("CPU copy variants (diagnostic: what the copy baseline is made of):");
            sb.Append(CopyVariantsTable(results).ToConsole(width));
        }
        if (ContentionNote(results) is { } note) sb.AppendLine().AppendLine(Wrap(note.Replace("**", ""), Math.Min(width, ConsoleUi.DefaultWidth)));
        var figures = FiguresTable(results, markdown: false);
        if (figures.Rows.Count > 0)
        {
            sb.AppendLine().AppendLine(results.Smoke
                ? "Performance targets (informational, not the exit code; SMOKE RUN: not meaningful, sizes are in cache):"
                : "Performance targets (informational: they do not change the exit code):");
            sb.Append(figures.ToConsole(width));
        }
        return sb.ToString();
    }

    /// <summary>Breaks <paramref name="text"/> into lines of at most <paramref name="width"/> characters at spaces.</summary>
    public static string Wrap(string text, int width)
    {
        var lines = new List<string>();
        var line = new StringBuilder();
        foreach (string word in text.Split(' '))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width) { lines.Add(line.ToString()); line.Clear(); }
            if (line.Length > 0) line.Append(' ');
            line.Append(word);
        }
        if (line.Length > 0) lines.Add(line.ToString());
        return string.Join('\n', lines);
    }

    /// <summary>The markdown report.</summary>
    public static string Markdown(RunResults results)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Kernels.Bench report");
        sb.AppendLine();
        sb.AppendLine($"- Date: {results.Started:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine($"- Command: `{results.Command}`");
        sb.AppendLine($"- Machine: {results.Machine}");
        if (results.LoadAtStart.Length > 0)
            sb.AppendLine($"- Load average (1, 5, 15 min; other processes share the cores): {results.LoadAtStart} at the start, {results.LoadAtEnd} at the end");
        sb.AppendLine("- JIT: Kernels.Bench runs with TieredCompilation off (full optimisation from the first call), so warm-up is short and every method is measured in its final code");
        foreach (var a in results.Accelerators) sb.AppendLine($"- Accelerator {MainJob.Label(a)}: {a}{MainJob.DeviceNote(a)}");
        foreach (var a in results.Absent) sb.AppendLine($"- Absent: {a.Kind} ({a.Reason})");
        if (ContentionNote(results) is { } note) sb.AppendLine("- " + note);
        if (results.Smoke) sb.AppendLine("- **Smoke run**: tiny sizes, few repetitions; the figures are not meaningful.");
        sb.AppendLine();
        if (results.Verification.Count > 0)
        {
            sb.AppendLine("## Verification");
            sb.AppendLine();
            sb.AppendLine("Every op on every accelerator against the scalar double reference (`Kernels.Cpu`) rounded to float: special values, bit");
            sb.AppendLine("patterns over the whole float range and a dense sweep of [-30, 30] (elementwise, GLU), softmax rows short, long, offset");
            sb.AppendLine("by up to +-1000, masked and special. Relative error is over normal expected values.");
            sb.AppendLine();
            sb.AppendLine(VerificationTable(results).ToMarkdown());
            sb.AppendLine(results.VerificationPassed ? "All ops within tolerance." : "**Some ops are outside tolerance (FAIL above).**");
            sb.AppendLine();
        }
        if (results.Rows.Count > 0)
        {
            sb.AppendLine("## Benchmarks");
            sb.AppendLine();
            sb.AppendLine("Median time per call of interleaved samples (warm-up first; each sample a batch of calls then one synchronize);");
            sb.AppendLine("GB/s = bytes read + written by the op's contract per second (elementwise 8 B/element, GLU 12 B/output, softmax 8 B/element);");
            sb.AppendLine("*of copy* = our GB/s over a copy of the same bytes on the same accelerator, sampled alternately with the op;");
            sb.AppendLine($"copy: {string.Join("; ", results.Rows.Select(r => $"{r.Accelerator}: {r.CopyMethod}").Distinct())}");
            sb.AppendLine("(on the CPU the faster of memcpy and a copy with non-temporal stores, timed when each row's baseline is made).");
            sb.AppendLine("*ceiling* (SIMD CPU rows) = the share of copy the op would reach if memory cost nothing: a small instance of the op");
            sb.AppendLine($"(16k elements, or one row of at most 32k columns) timed in cache on one thread (its fastest quarter of samples), times the");
            sb.AppendLine($"machine's {Environment.ProcessorCount} cores, over the row's copy GB/s (the row comes near it only where computing and memory traffic overlap completely). A miss with the ceiling below");
            sb.AppendLine("the target too is compute-bound on this machine; one with the ceiling above it loses its time on the memory side.");
            sb.AppendLine("*memory* (SIMD CPU rows of ops that write their output through the cache: softmax-family rows) = the share of");
            sb.AppendLine("copy a vector copy of the same bytes with ordinary stores reaches, sampled in turn with the op and the copy: an ordinary store");
            sb.AppendLine("reads its line from memory first, so that copy moves a softmax row's traffic per byte:");
            sb.AppendLine("the share the op's memory traffic allows if arithmetic were free. A miss with it below the target is memory-bound.");
            sb.AppendLine("*x naive*, *x TP* (TensorPrimitives) and *x ONNX* (ONNX Runtime): the peer's time over ours (above 1: we are faster).");
            sb.AppendLine("The naive loop and TensorPrimitives run on **one thread** of the CPU (TensorPrimitives has no threading; the naive loop is");
            sb.AppendLine("a plain `for` in float with MathF, branch-free, written the same way for every op), while our CPU kernels use every core");
            sb.AppendLine("above 64k elements per core: *x TP/core* divides TensorPrimitives' time by ours times the cores we kept busy.");
            sb.AppendLine($"ONNX Runtime {typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version} (CPU execution provider, {Environment.ProcessorCount} intra-op threads like ours) runs a one-node");
            sb.AppendLine("model per op and shape, in blocks of samples alternating with our op's, its session closed after each block (its pool threads spin after a run, on the cores our op needs); *x ONNX* is the median of 3 rounds. TensorPrimitives peers: " + string.Join("; ", results.Rows.Where(r => r.TensorPrimitivesLabel is not null)
                .Select(r => $"{r.Op}: {r.TensorPrimitivesLabel}").Distinct()) + ".");
            sb.AppendLine("*cores*: process CPU time over wall time while the op ran (about 1 for one busy thread).");
            sb.AppendLine();
            sb.AppendLine(BenchTable(results, markdown: true).ToMarkdown());
        }
        if (results.InCache.Count > 0)
        {
            sb.AppendLine("## CPU, one thread, data in cache");
            sb.AppendLine();
            sb.AppendLine("16k floats (64 KB in, 64 KB out: L2-resident; softmax as one row of 16k), the span API `CpuKernels.Apply` / `CpuKernels.Softmax` (which stays on the calling thread below");
            sb.AppendLine("64k elements per core) against `TensorPrimitives` and a naive `for` loop with MathF, all on one thread.");
            sb.AppendLine();
            sb.AppendLine(InCacheTable(results, markdown: true).ToMarkdown());
        }
        if (results.OnnxAccuracy.Count > 0)
        {
            sb.AppendLine("## Accuracy of ONNX Runtime beside ours");
            sb.AppendLine();
            sb.AppendLine("The same inputs through ONNX Runtime and our SIMD CPU path, against the same double reference: elementwise ops over bit");
            sb.AppendLine("patterns spread over the whole float range plus a dense sweep of [-30, 30], in ulps; softmax and log-softmax over 64 rows");
            sb.AppendLine("of 4093 logits (one offset by 1000) in the measures of their tolerances. Informational.");
            sb.AppendLine();
            sb.AppendLine(OnnxAccuracyTable(results).ToMarkdown());
        }
        if (results.Rows.Any(r => r.Target is not null) || results.InCache.Count > 0)
        {
            sb.AppendLine("## Performance targets");
            sb.AppendLine();
            sb.AppendLine("Informational: they do not change the exit code." + (results.Smoke ? " **Smoke run: these figures are not meaningful.**" : ""));
            sb.AppendLine();
            sb.AppendLine(FiguresTable(results, markdown: true).ToMarkdown());
        }
        if (results.CopyVariants.Count > 0)
        {
            sb.AppendLine("## CPU copy variants (diagnostic)");
            sb.AppendLine();
            sb.AppendLine("The same 16M-float copy (64 MB read, 64 MB written) done three ways over the cores, sampled round-robin; the first is");
            sb.AppendLine("the baseline of the table above. A non-temporal store skips the read-for-ownership of the destination's cache lines.");
            sb.AppendLine();
            sb.AppendLine(CopyVariantsTable(results).ToMarkdown());
        }
        if (results.ShareOfCopyPlot is { } share)
        {
            sb.AppendLine("## Share of copy bandwidth per op");
            sb.AppendLine();
            sb.AppendLine("Each op's GB/s over the same run's copy of the same bytes on the same device, at its largest size.");
            sb.AppendLine();
            sb.AppendLine($"![share of copy bandwidth]({share})").AppendLine();
        }
        if (results.ThroughputPlots.Count > 0)
        {
            sb.AppendLine("## Throughput against size");
            sb.AppendLine();
            sb.AppendLine("Both axes logarithmic; the dashed line is the copy of the same bytes on the same device.");
            sb.AppendLine();
            foreach (var p in results.ThroughputPlots) sb.AppendLine($"![throughput]({p})").AppendLine();
        }
        if (results.Torch is { } torch)
        {
            sb.AppendLine("## PyTorch eager (torch_peer.py)");
            sb.AppendLine();
            sb.AppendLine($"torch {torch.TorchVersion} on {torch.Device} ({torch.DeviceName}), {torch.Date}.");
            sb.AppendLine();
            var t = new TextTable("op", "size", "expression", ">median", ">GB/s");
            foreach (var e in torch.Results) t.Add(e.Op, e.Size, "`" + e.Expression + "`", Time(e.MedianSeconds), Num(e.GBps));
            sb.AppendLine(t.ToMarkdown());
            if (torch.Copy.Count > 0)
                sb.AppendLine("Copy (torch `copy_`): " + string.Join(", ", torch.Copy.Select(c => $"{c.Bytes / 1e6:0} MB: {Num(c.GBps)} GB/s")) + ".").AppendLine();
        }
        if (results.ActivationPlots.Count > 0)
        {
            sb.AppendLine("## Activations (forward kernel output; dashed: the backward kernel's derivative, dy = 1)");
            sb.AppendLine();
            foreach (var p in results.ActivationPlots) sb.AppendLine($"![{Path.GetFileNameWithoutExtension(p)}]({p})");
            sb.AppendLine();
        }
        return sb.ToString();
    }

    /// <summary>Everything measured, as JSON.</summary>
    public static string Json(RunResults results) =>
        JsonSerializer.Serialize(results, new JsonSerializerOptions
        {
            WriteIndented = true,
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
            // Enums by name ("Cpu", "Elementwise"), so the file reads without the source at hand.
            Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
        });
}
