using GpuActivations.Reference;

namespace GpuActivations.Bench;

/// <summary>
/// The accuracy sweep behind docs/numerics.md: every activation on one accelerator over inputs spread over the
/// whole float range (every 2^32 / N-th bit pattern, both signs) plus a dense uniform sweep of [-30, 30] where
/// the functions bend, against the double reference rounded to float.
/// </summary>
public static class Accuracy
{
    /// <summary>The per-activation result: the largest ulp distance and the input that produced it.</summary>
    public sealed record Row(string Op, double MaxUlp, float WorstInput, long Inputs);

    /// <summary>The sweep's inputs: <paramref name="spread"/> strided bit patterns and <paramref name="dense"/> values in [-30, 30].</summary>
    public static float[] Inputs(int spread, int dense)
    {
        var x = new float[spread + dense];
        ulong stride = (1UL << 32) / (ulong)spread;
        for (int i = 0; i < spread; i++) x[i] = BitConverter.Int32BitsToSingle((int)(uint)((ulong)i * stride + 12345));
        for (int i = 0; i < dense; i++) x[spread + i] = (float)(-30.0 + 60.0 * i / dense);
        return x;
    }

    /// <summary>Runs the sweep on <paramref name="accelerator"/> for every activation.</summary>
    public static List<Row> Run(Accelerator accelerator, float[] x, Action<string>? progress = null)
    {
        var rows = new List<Row>();
        using var xb = accelerator.Allocate<float>(x);
        using var yb = accelerator.Allocate<float>(x.Length);
        var y = new float[x.Length];
        foreach (var (activation, id) in Catalog.Activations)
        {
            progress?.Invoke(activation.ToString());
            accelerator.Apply(activation, xb, yb);
            yb.CopyTo(y);
            var (worst, worstX) = Worst(x, i => UlpDistance(y[i], ScalarReference.Evaluate(id, x[i], activation.Alpha, activation.Beta, activation.Threshold)));
            rows.Add(new Row(activation.ToString(), worst, worstX, x.Length));
        }
        return rows;
    }

    /// <summary>
    /// The backward sweep: f'(x) from <see cref="Accelerator.ActivationBackward"/> with dy = 1 (so dx is f'(x) itself)
    /// against <see cref="ScalarReference.Derivative"/>, in ulps of <see cref="ScalarReference.DerivativeScale"/> (the
    /// magnitude of the terms summed: plain ulps of f' except near its zero, where the terms cancel).
    /// </summary>
    public static List<Row> RunBackward(Accelerator accelerator, float[] x, Action<string>? progress = null)
    {
        var rows = new List<Row>();
        using var xb = accelerator.Allocate<float>(x);
        using var dyb = accelerator.Allocate<float>(Enumerable.Repeat(1f, x.Length).ToArray());
        using var dxb = accelerator.Allocate<float>(x.Length);
        var dx = new float[x.Length];
        foreach (var (activation, id) in Catalog.Activations)
        {
            progress?.Invoke(activation.ToString());
            accelerator.ActivationBackward(activation, xb, dyb, dxb);
            dxb.CopyTo(dx);
            var (worst, worstX) = Worst(x, i =>
            {
                double a = activation.Alpha, b = activation.Beta, t = activation.Threshold;
                return ErrorMetrics.ScaledUlpDistance(dx[i], ScalarReference.Derivative(id, x[i], a, b, t), ScalarReference.DerivativeScale(id, x[i], a, b, t));
            });
            rows.Add(new Row(activation.ToString(), worst, worstX, x.Length));
        }
        return rows;
    }

    /// <summary>The largest <paramref name="distance"/>(i) over the inputs, and its input, computed on every core.</summary>
    static (double Worst, float At) Worst(float[] x, Func<int, double> distance)
    {
        double worst = 0;
        float worstX = 0;
        var lockObj = new object();
        Parallel.For(0, Environment.ProcessorCount, p =>
        {
            double localWorst = 0;
            float localX = 0;
            for (int i = p; i < x.Length; i += Environment.ProcessorCount)
            {
                double d = distance(i);
                if (d > localWorst) { localWorst = d; localX = x[i]; }
            }
            lock (lockObj) if (localWorst > worst) { worst = localWorst; worstX = localX; }
        });
        return (worst, worstX);
    }

    /// <summary>Ulp distance with NaN matching NaN and results below the smallest normal float accepted as flushed.</summary>
    public static double UlpDistance(float actual, double expected)
    {
        float e = (float)expected;
        if (float.IsNaN(e) || float.IsNaN(actual)) return float.IsNaN(e) && float.IsNaN(actual) ? 0 : double.PositiveInfinity;
        if (float.IsInfinity(e) || float.IsInfinity(actual)) return e == actual ? 0 : double.PositiveInfinity;
        if (Math.Abs(expected) < SmallestNormal && MathF.Abs(actual) <= SmallestNormal) return 0;
        return Math.Abs(Ordinal(actual) - Ordinal(e));
    }

    static long Ordinal(float f)
    {
        int bits = BitConverter.SingleToInt32Bits(f);
        return bits < 0 ? -(long)(bits & 0x7FFFFFFF) : bits;
    }

    const float SmallestNormal = 1.17549435e-38f;
}
