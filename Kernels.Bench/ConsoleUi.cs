using System.Diagnostics;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace GpuActivations.Bench;

/// <summary>
/// The main job's console, drawn with Spectre.Console: tables laid out to a fixed width (120 columns, or wide with
/// <c>--wide</c>) whether or not stdout is a terminal, so CI logs and terminals read the same, and no colour codes,
/// so a redirected log holds plain text.
/// </summary>
public static class ConsoleUi
{
    /// <summary>The width tables are laid out to by default: a common terminal's, so no line wraps.</summary>
    public const int DefaultWidth = 120;

    /// <summary>The width with <c>--wide</c>: every column at its natural width.</summary>
    public const int WideWidth = 400;

    /// <summary>
    /// <paramref name="table"/> as text no wider than <paramref name="width"/> columns, with only the columns named in
    /// <paramref name="columns"/> (all when null). Spectre wraps a cell that does not fit rather than letting a line run on.
    /// </summary>
    public static string Render(TextTable table, int width, IReadOnlyCollection<string>? columns = null)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (width < 40) throw new ArgumentOutOfRangeException(nameof(width), width, "tables need at least 40 columns.");
        var keep = Enumerable.Range(0, table.Headers.Count).Where(i => columns is null || columns.Contains(table.Headers[i])).ToArray();
        var spectre = new Table().Border(TableBorder.Simple).Collapse();
        foreach (int i in keep)
        {
            // Names and numbers never wrap (a name broken mid-word misreads); the prose columns take what width is left.
            var column = new TableColumn(new Text(table.Headers[i])) { NoWrap = !Prose.Contains(table.Headers[i]), Padding = new Padding(0, 0, 1, 0) };
            spectre.AddColumn(table.RightAligned[i] ? column.RightAligned() : column);
        }
        foreach (var row in table.Rows) spectre.AddRow(keep.Select(i => (IRenderable)new Text(row[i])).ToArray());
        return ToText(spectre, width);
    }

    /// <summary>The columns whose cells are prose and may wrap to fit the width.</summary>
    static readonly HashSet<string> Prose = ["result (rule applied)", "worst at", "tolerance", "ONNX node", "performance target", "copy", "result", "figure", "measured"];

    /// <summary>Any renderable as plain text laid out to <paramref name="width"/> columns (trailing blanks trimmed).</summary>
    public static string ToText(IRenderable renderable, int width)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = width;
        console.Write(renderable);
        // ASCII rules: a CI log or a file read in another encoding shows them as drawn.
        return string.Join('\n', writer.ToString().Replace('\u2500', '-').Split('\n').Select(l => l.TrimEnd())).TrimEnd('\n') + "\n";
    }
}

/// <summary>
/// Progress over a phase's steps on stderr: on a terminal a Spectre.Console bar with [n/N], elapsed time and time
/// left; when stderr is redirected (CI pipes it) one plain line per step with the same counts, so logs hold no
/// cursor movement.
/// </summary>
public sealed class Progress
{
    readonly bool interactive;

    /// <summary>A progress reporter; <paramref name="interactive"/> null decides from whether stderr is a terminal.</summary>
    public Progress(bool? interactive = null) => this.interactive = interactive ?? !Console.IsErrorRedirected;

    /// <summary>
    /// Runs <paramref name="body"/>, which calls the given action once at the start of each of its
    /// <paramref name="total"/> steps with what the step does.
    /// </summary>
    public void Run(string phase, int total, Action<Action<string>> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (total <= 0) { body(static _ => { }); return; }
        if (!interactive) { RunPlain(phase, total, body); return; }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(phase, maxValue: total);
                int step = 0;
                body(what =>
                {
                    if (step > 0) task.Increment(1);
                    step++;
                    task.Description = Markup.Escape($"{phase} [{Math.Min(step, total)}/{total}] {Shorten(what, 48)}");
                });
                task.Value = total;
            });
    }

    void RunPlain(string phase, int total, Action<Action<string>> body)
    {
        var clock = Stopwatch.StartNew();
        int step = 0;
        body(what =>
        {
            // Time left: the mean time per finished step times the steps to go (none before the first finishes).
            string left = step == 0 ? "" : $", ~{Clock(clock.Elapsed.TotalSeconds / step * (total - step))} left";
            step++;
            Console.Error.WriteLine($"{phase} [{Math.Min(step, total)}/{total}] {Clock(clock.Elapsed.TotalSeconds)} elapsed{left}: {what}");
        });
    }

    /// <summary>m:ss.</summary>
    public static string Clock(double seconds) =>
        double.IsFinite(seconds) ? $"{(int)(seconds / 60)}:{(int)(seconds % 60):00}" : "-";

    static string Shorten(string s, int n) => s.Length <= n ? s : s[..(n - 3)] + "...";
}
