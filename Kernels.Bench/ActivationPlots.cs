using System.Globalization;

namespace GpuActivations.Bench;

/// <summary>
/// The plots of docs/activations.md: each activation and its derivative over [-5, 5], both drawn from the
/// kernels' own output on an accelerator. There are no backward kernels yet, so the derivative is the central
/// difference (f(x + h) - f(x - h)) / 2h of the forward kernel's output with h = 2^-7 (truncation error
/// ~h^2 f'''/6, below 1e-4 here; at the kinks of ReLU-like functions it shows the average slope).
/// </summary>
public static class ActivationPlots
{
    const int Points = 1001;
    const float Step = 1f / 128f;

    /// <summary>Writes activation-NAME.svg for every activation into <paramref name="directory"/>; returns the file names.</summary>
    public static List<string> Write(Accelerator accelerator, string directory)
    {
        Directory.CreateDirectory(directory);
        var files = new List<string>();
        float[] x = [.. Enumerable.Range(0, Points).Select(i => -5f + 10f * i / (Points - 1))];
        float[] xPlus = [.. x.Select(v => v + Step)];
        float[] xMinus = [.. x.Select(v => v - Step)];
        foreach (var (activation, _) in Catalog.Activations)
        {
            float[] f = Evaluate(accelerator, activation, x);
            float[] fPlus = Evaluate(accelerator, activation, xPlus);
            float[] fMinus = Evaluate(accelerator, activation, xMinus);
            var chart = new LineChart
            {
                Title = $"{activation} and its derivative ({accelerator.Kind} kernel output)",
                XLabel = "x",
                YLabel = "y",
                Width = 560,
                Height = 340,
                ZeroAxes = true,
                XFormat = v => v.ToString("0", CultureInfo.InvariantCulture),
            };
            chart.Series.Add(new ChartSeries(activation.Kind.ToString(), [.. x.Select((v, i) => ((double)v, (double)f[i]))], LineChart.Palette[0]));
            chart.Series.Add(new ChartSeries("derivative (central difference)",
                [.. x.Select((v, i) => ((double)v, ((double)fPlus[i] - fMinus[i]) / ((double)xPlus[i] - xMinus[i])))], LineChart.Palette[1], "6 4"));
            string name = $"activation-{activation.Kind.ToString().ToLowerInvariant()}.svg";
            File.WriteAllText(Path.Combine(directory, name), chart.Render());
            files.Add(name);
        }
        return files;
    }

    static float[] Evaluate(Accelerator accelerator, Activation activation, float[] x)
    {
        using var xb = accelerator.Allocate<float>(x);
        using var yb = accelerator.Allocate<float>(x.Length);
        accelerator.Apply(activation, xb, yb);
        return yb.ToArray();
    }
}
