using System.Globalization;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace GpuActivations.Bench;

/// <summary>
/// The report's and docs' pictures, drawn with ScottPlot 5: each written as SVG (for docs and the markdown report)
/// and PNG (for viewers that do not show SVG).
/// </summary>
public static class Plots
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The palette: Tableau 10, readable in print and by most colour-blind readers.</summary>
    static readonly Color[] Palette = new ScottPlot.Palettes.Category10().Colors;

    /// <summary>Saves <paramref name="plot"/> as NAME.svg and NAME.png in <paramref name="directory"/>; returns NAME.svg.</summary>
    static string Save(Plot plot, string directory, string name, int width, int height)
    {
        Directory.CreateDirectory(directory);
        plot.SaveSvg(Path.Combine(directory, name + ".svg"), width, height);
        plot.SavePng(Path.Combine(directory, name + ".png"), width, height);
        return name + ".svg";
    }

    /// <summary>
    /// activation-NAME.svg/.png for every activation: the forward kernel's output and the backward kernel's f'(x)
    /// (<see cref="Accelerator.ActivationBackward"/> with dy = 1, so dx is the derivative itself), both on
    /// <paramref name="accelerator"/>, over 1001 points of [-5, 5]. Returns the SVG file names.
    /// </summary>
    public static List<string> Activations(Accelerator accelerator, string directory)
    {
        const int Points = 1001;
        float[] x = [.. Enumerable.Range(0, Points).Select(i => -5f + 10f * i / (Points - 1))];
        double[] xs = [.. x.Select(v => (double)v)];
        var files = new List<string>();
        using var xb = accelerator.Allocate<float>(x);
        using var ones = accelerator.Allocate<float>(Enumerable.Repeat(1f, Points).ToArray());
        using var yb = accelerator.Allocate<float>(Points);
        foreach (var (activation, _) in Catalog.Activations)
        {
            accelerator.Apply(activation, xb, yb);
            double[] f = [.. yb.ToArray().Select(v => (double)v)];
            accelerator.ActivationBackward(activation, xb, ones, yb);
            double[] d = [.. yb.ToArray().Select(v => (double)v)];

            var plot = new Plot();
            plot.Add.HorizontalLine(0, 1, Colors.Gray.WithAlpha(0.6));
            plot.Add.VerticalLine(0, 1, Colors.Gray.WithAlpha(0.6));
            var forward = plot.Add.ScatterLine(xs, f, Palette[0]);
            forward.LineWidth = 2.5f;
            forward.LegendText = $"{activation.Kind}(x)";
            var backward = plot.Add.ScatterLine(xs, d, Palette[1]);
            backward.LineWidth = 2;
            backward.LinePattern = LinePattern.Dashed;
            backward.LegendText = "derivative (backward kernel, dy = 1)";
            plot.Title($"{activation}: {accelerator.Kind} kernels");
            plot.XLabel("x");
            plot.ShowLegend(Alignment.UpperLeft);
            plot.Axes.SetLimitsX(-5, 5);
            files.Add(Save(plot, directory, $"activation-{activation.Kind.ToString().ToLowerInvariant()}", 560, 360));
        }
        return files;
    }

    /// <summary>
    /// throughput-LABEL.svg/.png per accelerator swept: GB/s against size for each op and the copy of the same bytes,
    /// both axes logarithmic so a slow accelerator's curves read as well as a fast one's. Returns "plots/NAME.svg" paths.
    /// </summary>
    public static List<string> Throughput(RunResults results, string directory)
    {
        var files = new List<string>();
        foreach (var group in results.Sweep.GroupBy(p => p.Accelerator))
        {
            var info = results.Accelerators.FirstOrDefault(a => MainJob.Label(a) == group.Key);
            var plot = new Plot();
            int color = 0;
            var all = new List<double>();
            foreach (var series in group.Where(p => p.Series != "copy").GroupBy(p => p.Series))
            {
                var points = series.OrderBy(p => p.Elements).Where(p => p.GBps > 0).ToList();
                var line = plot.Add.Scatter(points.Select(p => Math.Log2(p.Elements)).ToArray(), points.Select(p => Math.Log10(p.GBps)).ToArray(), Palette[color++ % Palette.Length]);
                line.LegendText = series.Key;
                line.LineWidth = 2;
                line.MarkerSize = 6;
                all.AddRange(points.Select(p => p.GBps));
            }
            // The copy line: at each size, the median of the copies sampled beside the ops.
            var copy = group.Where(p => p.Series == "copy" && p.GBps > 0).GroupBy(p => p.Elements).OrderBy(g => g.Key)
                .Select(g => (N: g.Key, GBps: Sampler.Quantile([.. g.Select(p => p.GBps).Order()], 0.5))).ToList();
            var copyLine = plot.Add.ScatterLine(copy.Select(c => Math.Log2(c.N)).ToArray(), copy.Select(c => Math.Log10(c.GBps)).ToArray(), Colors.Black);
            copyLine.LineWidth = 2;
            copyLine.LinePattern = LinePattern.Dashed;
            copyLine.LegendText = "copy (same bytes, same device)";
            all.AddRange(copy.Select(c => c.GBps));

            var sizes = group.Select(p => p.Elements).Distinct().Order().ToList();
            plot.Axes.Bottom.TickGenerator = new NumericManual(sizes.Select(n => Math.Log2(n)).ToArray(), sizes.Select(BenchOptions.Label).ToArray());
            plot.Axes.Left.TickGenerator = LogTicks(all);
            plot.Title($"Throughput against size: {group.Key}{(info is null ? "" : " " + info.Name)}");
            plot.XLabel("elements (float32; GLU: outputs), log scale");
            plot.YLabel("GB/s read + written (log scale)");
            // Outside the data area: a slow device's curves sit low, a fast one's high, and neither hides under it.
            plot.ShowLegend(Edge.Right);
            string name = $"throughput-{group.Key.Replace("#", "").ToLowerInvariant()}";
            files.Add("plots/" + Save(plot, directory, name, 900, 480));
        }
        return files;
    }

    /// <summary>Major ticks at 1, 2, 5 x 10^k over the range of <paramref name="values"/>, for an axis plotting log10 of them.</summary>
    static NumericManual LogTicks(IReadOnlyCollection<double> values)
    {
        var ticks = new NumericManual();
        if (values.Count == 0) return ticks;
        int lo = (int)Math.Floor(Math.Log10(values.Min())), hi = (int)Math.Ceiling(Math.Log10(values.Max()));
        for (int k = lo; k <= hi; k++)
            foreach (double m in new[] { 1.0, 2.0, 5.0 })
            {
                double v = m * Math.Pow(10, k);
                ticks.AddMajor(Math.Log10(v), v.ToString(v < 1 ? "0.##" : "0", Inv));
            }
        return ticks;
    }

    /// <summary>
    /// share-of-copy.svg/.png: each benchmarked op's GB/s as a share of the same run's copy of the same bytes on the same
    /// device, one bar per accelerator side by side, at each op's largest size: the GPU-against-CPU picture in one
    /// chart, comparable across devices of any speed. Returns "plots/share-of-copy.svg", or null with no rows.
    /// </summary>
    public static string? ShareOfCopy(RunResults results, string directory)
    {
        // Per op and device, the row at the largest size (softmax: the most elements).
        var rows = results.Rows.GroupBy(r => (r.Op, r.Accelerator)).Select(g => g.OrderByDescending(r => r.Shape.Elements).First()).ToList();
        if (rows.Count == 0) return null;
        var ops = rows.Select(r => r.Op).Distinct().ToList();
        var devices = rows.Select(r => r.Accelerator).Distinct().ToList();
        var plot = new Plot();
        var bars = new List<Bar>();
        double groupWidth = devices.Count + 1;
        for (int o = 0; o < ops.Count; o++)
            for (int d = 0; d < devices.Count; d++)
            {
                var row = rows.FirstOrDefault(r => r.Op == ops[o] && r.Accelerator == devices[d]);
                if (row is null || !double.IsFinite(row.FractionOfCopy)) continue;
                // Ops top to bottom in report order: the first op has the highest position.
                double position = (ops.Count - 1 - o) * groupWidth + (devices.Count - 1 - d);
                bars.Add(new Bar { Position = position, Value = 100 * row.FractionOfCopy, FillColor = Palette[d % Palette.Length], Size = 0.85 });
            }
        var barPlot = plot.Add.Bars(bars);
        barPlot.Horizontal = true;
        var copyLine = plot.Add.VerticalLine(100, 2, Colors.Black, LinePattern.Dashed);
        copyLine.LegendText = "copy of the same bytes = 100%";
        for (int d = 0; d < devices.Count; d++)
        {
            var info = results.Accelerators.FirstOrDefault(a => MainJob.Label(a) == devices[d]);
            string note = info is null ? "" : info.Kind == AcceleratorKind.Cpu ? " (SIMD CPU path)" : MainJob.DeviceNote(info).Length > 0 ? $" ({info.Kind}, CPU-hosted)" : $" ({info.Name})";
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = devices[d] + note, FillColor = Palette[d % Palette.Length] });
        }
        plot.Axes.Left.TickGenerator = new NumericManual(
            ops.Select((_, o) => (ops.Count - 1 - o) * groupWidth + (devices.Count - 1) / 2.0).ToArray(), [.. ops]);
        plot.Axes.Left.MajorTickStyle.Length = 0;
        plot.Axes.SetLimitsY(-1, ops.Count * groupWidth - 1);
        plot.Axes.SetLimitsX(0, Math.Max(110, bars.Count == 0 ? 0 : bars.Max(b => b.Value) * 1.05));
        plot.Title(results.Smoke ? "Share of copy bandwidth per op (smoke run: not meaningful)" : "Share of copy bandwidth per op");
        plot.XLabel("% of the same run's copy of the same bytes on the same device");
        plot.ShowLegend(Alignment.LowerRight);
        plot.Grid.YAxisStyle.MajorLineStyle.Width = 0;
        return "plots/" + Save(plot, directory, "share-of-copy", 900, Math.Max(360, 90 + ops.Count * (12 * devices.Count + 10)));
    }
}
