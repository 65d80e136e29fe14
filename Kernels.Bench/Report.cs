using System.Globalization;
using System.Text;
using System.Text.Json;

namespace GpuActivations.Bench;

/// <summary>A table rendered either as aligned console text or as a markdown table.</summary>
public sealed class TextTable(params string[] headers)
{
    readonly List<string[]> rows = [];
    readonly bool[] right = [.. headers.Select(h => h.StartsWith('>'))];
    readonly string[] names = [.. headers.Select(h => h.TrimStart('>'))];

    /// <summary>Adds a row (as many cells as headers).</summary>
    public void Add(params string[] cells) => rows.Add(cells);

    /// <summary>Aligned columns for a terminal.</summary>
    public string ToConsole()
    {
        int[] widths = [.. names.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length)))];
        var sb = new StringBuilder();
        void Line(string[] cells) => sb.AppendLine(string.Join("  ", cells.Select((c, i) => right[i] ? c.PadLeft(widths[i]) : c.PadRight(widths[i]))).TrimEnd());
        Line(names);
        sb.AppendLine(string.Join("  ", widths.Select(w => new string('-', w))));
        foreach (var r in rows) Line(r);
        return sb.ToString();
    }

    /// <summary>A GitHub-flavoured markdown table.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine("| " + string.Join(" | ", names) + " |");
        sb.AppendLine("|" + string.Join("|", right.Select(r => r ? "---:" : "---")) + "|");
        foreach (var r in rows) sb.AppendLine("| " + string.Join(" | ", r.Select(c => c.Replace("|", "\\|"))) + " |");
        return sb.ToString();
    }
}

/// <summary>The report: the console table, the markdown file, the JSON and the throughput plots.</summary>
public static class Report
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Seconds as a short time: 812 ns, 35.2 us, 9.81 ms, 1.23 s.</summary>
    public static string Time(double seconds) =>
        seconds < 1e-6 ? (seconds * 1e9).ToString("0", Inv) + " ns"
        : seconds < 1e-3 ? (seconds * 1e6).ToString(seconds < 1e-5 ? "0.00" : "0.0", Inv) + " us"
        : seconds < 1 ? (seconds * 1e3).ToString(seconds < 1e-2 ? "0.00" : "0.0", Inv) + " ms"
        : seconds.ToString("0.00", Inv) + " s";

    static string Num(double v, string format = "0.0") => double.IsFinite(v) ? v.ToString(format, Inv) : "-";
    static string Ratio(double? v) => v is { } r && double.IsFinite(r) ? r.ToString(r < 10 ? "0.00" : "0.0", Inv) + "x" : "-";
    static string Percent(double v) => double.IsFinite(v) ? (100 * v).ToString("0", Inv) + "%" : "-";
    static string Met(TargetCheck? t, bool markdown) => t is null ? "" : t.Met ? "met" : markdown ? "**MISSED**" : "MISSED";

    /// <summary>The verification table.</summary>
    public static TextTable VerificationTable(RunResults results)
    {
        var table = new TextTable("op", "accelerator", ">outputs", ">max ulp", ">max rel err", ">max abs err", "tolerance", "result", "worst at");
        foreach (var v in results.Verification)
        {
            // Absolute error says little of elementwise results (inputs reach 3e38), relative error little of
            // log-softmax (results near 0): each row shows the measures its tolerance is stated in, plus relative.
            bool log = v.Op == "LogSoftmax";
            table.Add(v.Op, v.Accelerator, v.Checked.ToString("N0", Inv), double.IsNaN(v.MaxUlp) ? "-" : v.MaxUlp.ToString("0", Inv),
                log ? "-" : v.MaxRelative.ToString("0.0e0", Inv), log || v.Op is "Softmax" or "SoftmaxBackward" or "CrossEntropy" ? v.MaxAbsolute.ToString("0.0e0", Inv) : "-", v.Tolerance, v.Pass ? "pass" : "FAIL",
                v.Worst.Length > 60 ? v.Worst[..60] + "..." : v.Worst);
        }
        return table;
    }

    /// <summary>The main table: op x accelerator x size.</summary>
    public static TextTable BenchTable(RunResults results, bool markdown)
    {
        var torch = results.Torch;
        var headers = new List<string> { "op", "accelerator", "size", ">median", ">GB/s", ">copy GB/s", ">of copy", "figure", "met", ">x naive", ">x TensorPrimitives", ">host cores" };
        if (torch is not null) headers.AddRange([">PyTorch GB/s", ">x PyTorch"]);
        var table = new TextTable([.. headers]);
        foreach (var r in results.Rows)
        {
            var cells = new List<string>
            {
                r.Op, r.Accelerator, r.Shape.Label, Time(r.Ours.Median), Num(r.GBps), Num(r.CopyGBps), Percent(r.FractionOfCopy),
                r.Target?.Figure ?? "", Met(r.Target, markdown), Ratio(r.NaiveSpeedup), Ratio(r.TensorPrimitivesSpeedup), Num(r.Ours.HostCores, "0.0"),
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

    /// <summary>The in-cache single-thread table.</summary>
    public static TextTable InCacheTable(RunResults results, bool markdown)
    {
        var table = new TextTable("op", ">elements", ">ours", ">TensorPrimitives", ">naive loop", ">x TensorPrimitives", "figure", "met", ">x naive", "figure", "met", ">host cores (ours)");
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

    /// <summary>Every performance target with its result, one line each.</summary>
    public static TextTable FiguresTable(RunResults results, bool markdown)
    {
        var table = new TextTable("performance target", "op", "accelerator", "size", ">measured", "result");
        foreach (var r in results.Rows.Where(r => r.Target is not null))
        {
            string measured = r.Target!.Figure.StartsWith("uses", StringComparison.Ordinal) ? $"{r.Ours.HostCores:0.0} cores busy" : Percent(r.FractionOfCopy) + " of copy";
            table.Add(r.Target.Figure, r.Op, r.Accelerator, r.Shape.Label, measured, Met(r.Target, markdown));
        }
        foreach (var r in results.InCache)
        {
            table.Add(">= 1.0x TensorPrimitives (1 thread, in cache)", r.Op, "Cpu (span API)", BenchOptions.Label(r.Elements), Ratio(r.TensorPrimitivesSpeedup),
                Met(new("", r.TensorPrimitivesSpeedup >= 1.0), markdown));
            table.Add(">= 5x naive loop (1 thread, in cache)", r.Op, "Cpu (span API)", BenchOptions.Label(r.Elements), Ratio(r.NaiveSpeedup),
                Met(new("", r.NaiveSpeedup >= 5.0), markdown));
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

    /// <summary>The text printed at the end of a benchmark run.</summary>
    public static string Console(RunResults results)
    {
        var sb = new StringBuilder();
        sb.AppendLine("Benchmark (median of interleaved samples; GB/s = bytes read + written per second; copy = the same bytes copied on the same accelerator in the same run;");
        sb.AppendLine("x naive / x TensorPrimitives = their time over ours, both peers single-threaded on the CPU):");
        sb.AppendLine(BenchTable(results, markdown: false).ToConsole());
        if (results.InCache.Count > 0)
        {
            sb.AppendLine("CPU, one thread, data in cache (span API vs TensorPrimitives vs a naive loop):");
            sb.AppendLine(InCacheTable(results, markdown: false).ToConsole());
        }
        if (results.CopyVariants.Count > 0)
        {
            sb.AppendLine("CPU copy variants (diagnostic: what the copy baseline is made of):");
            sb.AppendLine(CopyVariantsTable(results).ToConsole());
        }
        if (ContentionNote(results) is { } note) sb.AppendLine(note.Replace("**", "")).AppendLine();
        var figures = FiguresTable(results, markdown: false);
        sb.AppendLine(results.Smoke ? "Performance targets (informational; smoke sizes are in cache: not meaningful):" : "Performance targets (informational: they do not change the exit code):");
        sb.AppendLine(figures.ToConsole());
        return sb.ToString();
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
        foreach (var a in results.Accelerators) sb.AppendLine($"- Accelerator {MainJob.Label(a)}: {a}");
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
            sb.AppendLine($"copy: {string.Join("; ", results.Rows.Select(r => $"{r.Accelerator}: {r.CopyMethod}").Distinct())}.");
            sb.AppendLine("*x naive* and *x TensorPrimitives*: the peer's time over ours. Both peers run on **one thread** of the CPU");
            sb.AppendLine("(TensorPrimitives has no threading; the naive loop is a plain `for` with MathF), while our CPU kernels use every core above");
            sb.AppendLine("64k elements per core. TensorPrimitives peers: " + string.Join("; ", results.Rows.Where(r => r.TensorPrimitivesLabel is not null)
                .Select(r => $"{r.Op}: {r.TensorPrimitivesLabel}").Distinct()) + ".");
            sb.AppendLine("*host cores*: process CPU time over wall time while the op ran (about 1 for one busy thread).");
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
        if (results.Rows.Any(r => r.Target is not null) || results.InCache.Count > 0)
        {
            sb.AppendLine("## Performance targets");
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
        if (results.ThroughputPlots.Count > 0)
        {
            sb.AppendLine("## Throughput against size");
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
            sb.AppendLine("## Activations (kernel output, derivative by central differences)");
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
        });

    /// <summary>Writes throughput-LABEL.svg per accelerator swept into <paramref name="directory"/>; returns the relative paths.</summary>
    public static List<string> WriteThroughputPlots(RunResults results, string directory)
    {
        var files = new List<string>();
        foreach (var group in results.Sweep.GroupBy(p => p.Accelerator))
        {
            Directory.CreateDirectory(directory);
            var info = results.Accelerators.FirstOrDefault(a => MainJob.Label(a) == group.Key);
            var chart = new LineChart
            {
                Title = $"Throughput against size: {group.Key} {info?.Name}",
                XLabel = "elements (float32; GLU: outputs)",
                YLabel = "GB/s (bytes read + written)",
                LogX = true,
                LegendOutside = true,
                Width = 900,
                XFormat = v => BenchOptions.Label((long)v),
            };
            int color = 0;
            foreach (var series in group.Where(p => p.Series != "copy").GroupBy(p => p.Series))
                chart.Series.Add(new ChartSeries(series.Key, [.. series.OrderBy(p => p.Elements).Select(p => ((double)p.Elements, p.GBps))], LineChart.Palette[color++ % 10], Markers: true));
            // The copy line: at each size, the median of the copies sampled beside the ops.
            var copy = group.Where(p => p.Series == "copy").GroupBy(p => p.Elements).OrderBy(g => g.Key)
                .Select(g => ((double)g.Key, Sampler.Quantile([.. g.Select(p => p.GBps).Order()], 0.5))).ToList();
            chart.Series.Add(new ChartSeries("copy (same bytes, same accelerator)", copy, "#333", "6 4"));
            string name = $"throughput-{group.Key.Replace("#", "").ToLowerInvariant()}.svg";
            File.WriteAllText(Path.Combine(directory, name), chart.Render());
            files.Add("plots/" + name);
        }
        return files;
    }
}
