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

    /// <summary>One gated unit's backward sweep: dGate = act'(gate) and dUp = act(gate) (up = dy = 1).</summary>
    /// <param name="Unit">The unit.</param>
    /// <param name="GateMaxUlp">dGate's largest ulp distance anywhere (large only next to act''s roots, where it cancels).</param>
    /// <param name="GateWorstInput">The gate of <paramref name="GateMaxUlp"/>.</param>
    /// <param name="GateMaxUlpAwayFromRoots">dGate's largest ulp distance where |act'| &gt;= 1/8.</param>
    /// <param name="GateMaxAbsolute">dGate's largest absolute error (|dy up| = 1, so also relative to it).</param>
    /// <param name="UpMaxUlp">dUp's largest ulp distance.</param>
    public sealed record GatedRow(string Unit, double GateMaxUlp, float GateWorstInput, double GateMaxUlpAwayFromRoots, double GateMaxAbsolute, double UpMaxUlp);

    /// <summary>The gated units' backward pass over the sweep's inputs as gates, with up = dy = 1, for every unit.</summary>
    public static List<GatedRow> RunGated(Accelerator accelerator, float[] x, Action<string>? progress = null)
    {
        var rows = new List<GatedRow>();
        var ones = new float[x.Length];
        Array.Fill(ones, 1f);
        using var gb = accelerator.Allocate<float>(x);
        using var ub = accelerator.Allocate<float>(ones);
        using var dgb = accelerator.Allocate<float>(x.Length);
        using var dub = accelerator.Allocate<float>(x.Length);
        float[] dGate = new float[x.Length], dUp = new float[x.Length];
        foreach (var unit in GatedUnit.All)
        {
            progress?.Invoke(unit.ToString());
            accelerator.GluBackward(unit, gb, ub, ub, dgb, dub);
            dgb.CopyTo(dGate);
            dub.CopyTo(dUp);
            var id = Enum.Parse<GluId>(unit.Kind.ToString());
            double gateUlp = 0, awayUlp = 0, absolute = 0, upUlp = 0;
            float worstX = 0;
            var lockObj = new object();
            Parallel.For(0, Environment.ProcessorCount, p =>
            {
                double g = 0, away = 0, abs = 0, u = 0;
                float gx = 0;
                for (int i = p; i < x.Length; i += Environment.ProcessorCount)
                {
                    var (eg, eu) = ScalarReference.GluGradient(id, x[i], 1, 1, unit.Alpha, unit.Limit);
                    double d = UlpDistance(dGate[i], eg);
                    if (d > g) { g = d; gx = x[i]; }
                    if (Math.Abs(eg) >= 0.125) away = Math.Max(away, d);
                    if (double.IsFinite(eg)) abs = Math.Max(abs, Math.Abs(dGate[i] - eg));
                    u = Math.Max(u, UlpDistance(dUp[i], eu));
                }
                lock (lockObj)
                {
                    if (g > gateUlp) { gateUlp = g; worstX = gx; }
                    awayUlp = Math.Max(awayUlp, away);
                    absolute = Math.Max(absolute, abs);
                    upUlp = Math.Max(upUlp, u);
                }
            });
            rows.Add(new GatedRow(unit.ToString(), gateUlp, worstX, awayUlp, absolute, upUlp));
        }
        return rows;
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
