using System.Globalization;
using System.Security;
using System.Text;

namespace GpuActivations.Bench;

/// <summary>
/// A very small SVG writer: lines, polylines, rectangles and text in user units, enough for line charts.
/// (No plotting package is in the registry; SVG is text, so a few primitives are all a chart needs.)
/// </summary>
public sealed class SvgWriter(double width, double height)
{
    readonly StringBuilder body = new();

    /// <summary>A straight line.</summary>
    public void Line(double x1, double y1, double x2, double y2, string stroke, double strokeWidth = 1, string? dash = null)
        => body.Append(Inv($"<line x1=\"{x1:0.##}\" y1=\"{y1:0.##}\" x2=\"{x2:0.##}\" y2=\"{y2:0.##}\" stroke=\"{stroke}\" stroke-width=\"{strokeWidth:0.##}\"{Dash(dash)}/>\n"));

    /// <summary>A polyline through <paramref name="points"/>.</summary>
    public void Polyline(IEnumerable<(double X, double Y)> points, string stroke, double strokeWidth = 2, string? dash = null)
    {
        body.Append("<polyline fill=\"none\" stroke=\"").Append(stroke).Append(Inv($"\" stroke-width=\"{strokeWidth:0.##}\" stroke-linejoin=\"round\"")).Append(Dash(dash)).Append(" points=\"");
        foreach (var (x, y) in points) body.Append(Inv($"{x:0.##},{y:0.##} "));
        body.Append("\"/>\n");
    }

    /// <summary>A small filled circle.</summary>
    public void Dot(double x, double y, string fill, double radius = 3)
        => body.Append(Inv($"<circle cx=\"{x:0.##}\" cy=\"{y:0.##}\" r=\"{radius:0.##}\" fill=\"{fill}\"/>\n"));

    /// <summary>A rectangle.</summary>
    public void Rect(double x, double y, double w, double h, string fill, string? stroke = null)
        => body.Append(Inv($"<rect x=\"{x:0.##}\" y=\"{y:0.##}\" width=\"{w:0.##}\" height=\"{h:0.##}\" fill=\"{fill}\"{(stroke is null ? "" : $" stroke=\"{stroke}\"")}/>\n"));

    /// <summary>Text; <paramref name="anchor"/> is start, middle or end.</summary>
    public void Text(double x, double y, string text, double size = 12, string anchor = "start", string fill = "#222", bool bold = false, double rotate = 0)
    {
        string transform = rotate == 0 ? "" : Inv($" transform=\"rotate({rotate:0.##} {x:0.##} {y:0.##})\"");
        body.Append(Inv($"<text x=\"{x:0.##}\" y=\"{y:0.##}\" font-size=\"{size:0.##}\" text-anchor=\"{anchor}\" fill=\"{fill}\"{(bold ? " font-weight=\"bold\"" : "")}{transform}>"))
            .Append(SecurityElement.Escape(text)).Append("</text>\n");
    }

    /// <summary>The document.</summary>
    public override string ToString() =>
        Inv($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:0}\" height=\"{height:0}\" viewBox=\"0 0 {width:0} {height:0}\" font-family=\"Helvetica, Arial, sans-serif\">\n")
        + Inv($"<rect width=\"{width:0}\" height=\"{height:0}\" fill=\"white\"/>\n") + body + "</svg>\n";

    static string Dash(string? dash) => dash is null ? "" : $" stroke-dasharray=\"{dash}\"";

    static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}

/// <summary>One line of a chart.</summary>
/// <param name="Name">The legend entry.</param>
/// <param name="Points">(x, y) in data units; non-finite points are skipped.</param>
/// <param name="Color">An SVG colour.</param>
/// <param name="Dash">An SVG dash pattern, or null for solid.</param>
/// <param name="Markers">Whether to mark each point.</param>
public sealed record ChartSeries(string Name, IReadOnlyList<(double X, double Y)> Points, string Color, string? Dash = null, bool Markers = false);

/// <summary>A line chart with axes, ticks, grid and legend; x may be logarithmic (base 2).</summary>
public sealed class LineChart
{
    /// <summary>Ten distinguishable colours (Tableau 10).</summary>
    public static readonly string[] Palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

    /// <summary>The title.</summary>
    public string Title { get; init; } = "";
    /// <summary>The x-axis label.</summary>
    public string XLabel { get; init; } = "";
    /// <summary>The y-axis label.</summary>
    public string YLabel { get; init; } = "";
    /// <summary>Whether x is drawn on a log2 scale.</summary>
    public bool LogX { get; init; }
    /// <summary>Formats an x tick.</summary>
    public Func<double, string> XFormat { get; init; } = v => v.ToString("0.##", CultureInfo.InvariantCulture);
    /// <summary>Whether the y range includes 0.</summary>
    public bool YFromZero { get; init; } = true;
    /// <summary>Width in pixels.</summary>
    public double Width { get; init; } = 760;
    /// <summary>Height in pixels.</summary>
    public double Height { get; init; } = 440;
    /// <summary>The lines.</summary>
    public List<ChartSeries> Series { get; } = [];
    /// <summary>Whether the legend sits right of the plot (else inside, top left).</summary>
    public bool LegendOutside { get; init; }
    /// <summary>Whether to draw the x = 0 and y = 0 axes through the plot (function plots).</summary>
    public bool ZeroAxes { get; init; }

    /// <summary>The chart as an SVG document.</summary>
    public string Render()
    {
        // The legend goes to the right of the plot when asked, so it never hides a line.
        double legendWidth = Series.Count == 0 ? 0 : 44 + Series.Max(s => s.Name.Length) * 6.4;
        double left = 64, right = LegendOutside ? legendWidth + 20 : 16, top = 40, bottom = 52;
        double plotW = Width - left - right, plotH = Height - top - bottom;
        var svg = new SvgWriter(Width, Height);
        var points = Series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!LogX || p.X > 0)).ToList();
        if (points.Count == 0) points.Add((1, 1));
        double TX(double x) => LogX ? Math.Log2(x) : x;
        double xMin = points.Min(p => TX(p.X)), xMax = points.Max(p => TX(p.X));
        if (xMax - xMin < 1e-12) { xMin -= 1; xMax += 1; }
        double yMin = points.Min(p => p.Y), yMax = points.Max(p => p.Y);
        if (YFromZero) { yMin = Math.Min(0, yMin); yMax = Math.Max(0, yMax); }
        if (yMax - yMin < 1e-12) { yMin -= 1; yMax += 1; }
        double yStep = NiceStep((yMax - yMin) / 6);
        yMin = Math.Floor(yMin / yStep + 1e-9) * yStep;
        yMax = Math.Ceiling(yMax / yStep - 1e-9) * yStep;

        double PX(double x) => left + (TX(x) - xMin) / (xMax - xMin) * plotW;
        double PY(double y) => top + (yMax - y) / (yMax - yMin) * plotH;

        svg.Text(Width / 2, 24, Title, 15, "middle", bold: true);
        // Grid and y ticks.
        for (double y = yMin; y <= yMax + yStep * 1e-6; y += yStep)
        {
            svg.Line(left, PY(y), left + plotW, PY(y), "#e4e4e4");
            svg.Text(left - 6, PY(y) + 4, Format(y, yStep), 11, "end", "#555");
        }
        // x ticks: integer powers of two (every other one when crowded) on a log axis, a nice step otherwise.
        if (LogX)
        {
            int first = (int)Math.Ceiling(xMin - 1e-9), last = (int)Math.Floor(xMax + 1e-9);
            int every = Math.Max(1, (last - first) / 10 + 1);
            for (int e = first; e <= last; e++)
            {
                if ((e - first) % every != 0) continue;
                double x = Math.Pow(2, e);
                svg.Line(PX(x), top, PX(x), top + plotH, "#f0f0f0");
                svg.Text(PX(x), top + plotH + 16, XFormat(x), 11, "middle", "#555");
            }
        }
        else
        {
            double xStep = NiceStep((xMax - xMin) / 8);
            for (double x = Math.Ceiling(xMin / xStep) * xStep; x <= xMax + xStep * 1e-6; x += xStep)
            {
                svg.Line(PX(x), top, PX(x), top + plotH, "#f0f0f0");
                svg.Text(PX(x), top + plotH + 16, XFormat(Math.Round(x / xStep) * xStep), 11, "middle", "#555");
            }
        }
        svg.Rect(left, top, plotW, plotH, "none", "#888");
        if (ZeroAxes)
        {
            if (yMin < 0 && yMax > 0) svg.Line(left, PY(0), left + plotW, PY(0), "#888");
            if (!LogX && xMin < 0 && xMax > 0) svg.Line(PX(0), top, PX(0), top + plotH, "#888");
        }
        svg.Text(left + plotW / 2, Height - 12, XLabel, 12, "middle");
        svg.Text(16, top + plotH / 2, YLabel, 12, "middle", rotate: -90);

        foreach (var s in Series)
        {
            var visible = s.Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!LogX || p.X > 0)).Select(p => (PX(p.X), PY(p.Y))).ToList();
            if (visible.Count > 1) svg.Polyline(visible, s.Color, 2, s.Dash);
            if (s.Markers || visible.Count == 1) foreach (var (x, y) in visible) svg.Dot(x, y, s.Color);
        }
        // Legend: right of the plot, or top left inside it on a translucent card.
        double lx = LegendOutside ? left + plotW + 16 : left + 10, ly = top + 10, rowH = 17;
        if (Series.Count > 0) svg.Rect(lx - 4, ly - 4, legendWidth, Series.Count * rowH + 6, "rgba(255,255,255,0.85)", "#ccc");
        foreach (var s in Series)
        {
            svg.Line(lx, ly + 7, lx + 24, ly + 7, s.Color, 2.5, s.Dash);
            svg.Text(lx + 30, ly + 11, s.Name, 11);
            ly += rowH;
        }
        return svg.ToString();
    }

    static double NiceStep(double rough)
    {
        if (!(rough > 0) || !double.IsFinite(rough)) return 1;
        double power = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        double f = rough / power;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * power;
    }

    static string Format(double v, double step)
    {
        if (Math.Abs(v) < step * 1e-6) v = 0;
        int decimals = Math.Max(0, -(int)Math.Floor(Math.Log10(step) + 1e-9));
        return v.ToString("F" + Math.Min(decimals + (step / Math.Pow(10, Math.Floor(Math.Log10(step))) == 2.5 ? 1 : 0), 6), CultureInfo.InvariantCulture);
    }
}
