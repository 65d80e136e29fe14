using GpuActivations.Reference;

namespace GpuActivations.Bench;

/// <summary>One op verified on one accelerator.</summary>
/// <param name="Op">The op.</param>
/// <param name="Accelerator">The accelerator's label.</param>
/// <param name="Checked">Outputs compared.</param>
/// <param name="MaxUlp">Largest ulp distance (elementwise and GLU; NaN for row-wise ops).</param>
/// <param name="MaxRelative">Largest relative error over finite, non-zero, normal expected values.</param>
/// <param name="MaxAbsolute">Largest absolute error over finite expected values.</param>
/// <param name="Tolerance">The bound, in words.</param>
/// <param name="Pass">Whether every output is within the bound (NaN and infinities must match exactly).</param>
/// <param name="Worst">The input (or row) of the worst error.</param>
public sealed record VerifyRow(string Op, string Accelerator, long Checked, double MaxUlp, double MaxRelative, double MaxAbsolute, string Tolerance, bool Pass, string Worst);

/// <summary>
/// Checks every op on an accelerator against the scalar double reference (Kernels.Cpu) rounded to float:
/// elementwise within 4 ulp, gated units within 5 ulp, softmax within 1e-5 relative per element, log-softmax
/// within 1e-5 absolute plus two ulps of the result (docs/numerics.md); NaN must give NaN and infinities must match. Inputs: special values (+-0, +-inf, NaN,
/// +-FLT_MAX, subnormals, the functions' breakpoints), bit patterns spread over the whole float range and a dense
/// sweep of [-30, 30]; odd lengths so every vector tail is exercised; softmax rows short, long (the split path),
/// with large offsets, -inf masks and special rows.
/// </summary>
public static class Verification
{
    /// <summary>Elementwise tolerance in ulp.</summary>
    public const double ElementwiseUlp = 4;
    /// <summary>Gated-unit tolerance in ulp.</summary>
    public const double GluUlp = 5;
    /// <summary>
    /// Gated backward tolerance: dGate within this many ulp or <see cref="GluBackwardAbsolute"/> |dy factor| (act' is a sum of
    /// two terms that cancel near its root, see docs/numerics.md); dUp within <see cref="GluUlp"/>.
    /// </summary>
    public const double GluBackwardUlp = 8;
    /// <summary>Gated backward absolute tolerance, relative to |dy| times up (clamped: clamp(up) + 1).</summary>
    public const double GluBackwardAbsolute = 1.0 / (1 << 21);
    /// <summary>Softmax tolerance, relative per element.</summary>
    public const double SoftmaxRelative = 1e-5;
    /// <summary>Log-softmax tolerance, absolute per element (plus two ulps of the result, which matter only where |y| >= 128).</summary>
    public const double LogSoftmaxAbsolute = 1e-5;

    const float SmallestNormal = 1.17549435e-38f;

    static readonly Dictionary<ActivationKind, ActivationId> ReferenceIds =
        Enum.GetValues<ActivationKind>().Where(k => k != ActivationKind.Custom).ToDictionary(k => k, k => Enum.Parse<ActivationId>(k.ToString()));

    static readonly float[] Specials =
    [
        0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, float.MaxValue, -float.MaxValue,
        SmallestNormal, -SmallestNormal, float.Epsilon, -float.Epsilon, 1e-40f, -1e-40f, 1e-30f, -1e-30f,
        1f, -1f, 3f, -3f, 6f, -6f, 20f, -20f, 88.7f, -88.7f, 89f, -89f, -103.9f, -104f, 1e10f, -1e10f,
    ];

    /// <summary>The elementwise inputs: specials, then <paramref name="n"/> / 2 spread bit patterns and as many dense values.</summary>
    public static float[] ElementwiseInputs(int n) => [.. Specials, .. Accuracy.Inputs(n / 2 + 1, n / 2)];

    /// <summary>
    /// A bf16 op: the same computation in float32 on the widened inputs (verified against the reference by its own row),
    /// rounded once to bf16, must equal the bf16 result bit for bit (NaN matching NaN). MaxUlp is in bf16 steps.
    /// </summary>
    static VerifyRow Bf16(Accelerator accelerator, string label, BenchOp op, float[] x)
    {
        const int Rows = 7, Cols = 1031;
        var random = new Random(17);
        int n = op.Family == OpFamily.Softmax ? Rows * Cols : x.Length;
        float[] Widened(float[] values) => values.Select(v => (float)(BFloat16)v).ToArray();
        float[] first = op.Family == OpFamily.Softmax ? Widened(TestValues(n, random, 10f)) : Widened(x);
        float[] second = Widened(TestValues(n, random, op.Family == OpFamily.Backward ? 2f : 8f));
        using var f1 = accelerator.Allocate<float>(first);
        using var f2 = accelerator.Allocate<float>(second);
        using var fy = accelerator.Allocate<float>(n);
        using var b1 = accelerator.Allocate<BFloat16>(first.Select(v => (BFloat16)v).ToArray());
        using var b2 = accelerator.Allocate<BFloat16>(second.Select(v => (BFloat16)v).ToArray());
        using var by = accelerator.Allocate<BFloat16>(n);
        switch (op.Family)
        {
            case OpFamily.Elementwise: accelerator.Apply(op.Activation!, f1, fy); accelerator.Apply(op.Activation!, b1, by); break;
            case OpFamily.Glu: accelerator.Glu(op.Unit!, f1, f2, fy); accelerator.Glu(op.Unit!, b1, b2, by); break;
            case OpFamily.Backward: accelerator.ActivationBackward(op.Activation!, f1, f2, fy); accelerator.ActivationBackward(op.Activation!, b1, b2, by); break;
            default: accelerator.Softmax(f1, fy, Rows, Cols); accelerator.Softmax(b1, by, Rows, Cols); break;
        }
        float[] expected = fy.ToArray();
        BFloat16[] actual = by.ToArray();
        double worst = 0;
        int at = -1;
        for (int i = 0; i < n; i++)
        {
            var e = (BFloat16)expected[i];
            double d = e.IsNaN || actual[i].IsNaN ? (e.IsNaN && actual[i].IsNaN ? 0 : double.PositiveInfinity)
                : Math.Abs(StorageReference.Ordinal(actual[i].Bits) - StorageReference.Ordinal(e.Bits));
            if (d > worst) { worst = d; at = i; }
        }
        return new VerifyRow(op.Name, label, n, worst, double.NaN, double.NaN, "= the float32 result rounded once to bf16", worst == 0,
            at < 0 ? "" : $"element {at}: {(float)actual[at]:R} vs {expected[at]:R}");
    }

    static float[] TestValues(int n, Random random, float range)
    {
        var values = new float[n];
        Workload.Fill(values, random, range);
        return values;
    }

    /// <summary>
    /// Verifies <paramref name="ops"/> on <paramref name="accelerator"/>; <paramref name="smoke"/> uses fewer inputs.
    /// <paramref name="inputs"/> sets the elementwise and GLU input count (0: 2^13 for smoke, else 2^20; the default run
    /// takes 2^18, still every special value and a bit pattern every 2^15 of the float range).
    /// </summary>
    public static List<VerifyRow> Run(Accelerator accelerator, string label, IEnumerable<BenchOp> ops, bool smoke, Action<string>? progress = null, int inputs = 0)
    {
        var rows = new List<VerifyRow>();
        float[] x = ElementwiseInputs(inputs > 0 ? inputs : smoke ? 1 << 13 : 1 << 20);
        foreach (var op in ops)
        {
            progress?.Invoke($"verify {op.Name} on {label}");
            rows.Add(op.Bf16 ? Bf16(accelerator, label, op, x) : op.Family switch
            {
                OpFamily.Elementwise => Elementwise(accelerator, label, op, x),
                OpFamily.PRelu => PRelu(accelerator, label, op, x),
                OpFamily.Glu => Glu(accelerator, label, op, x),
                OpFamily.GluPacked => GluPacked(accelerator, label, op, x),
                OpFamily.Backward => Backward(accelerator, label, op, x),
                OpFamily.SoftmaxBackward or OpFamily.CrossEntropy => Gradient(accelerator, label, op, smoke),
                OpFamily.GluBackward or OpFamily.GluPackedBackward => GluBackward(accelerator, label, op, x),
                _ => Rowwise(accelerator, label, op, smoke),
            });
        }
        return rows;
    }

    static VerifyRow Elementwise(Accelerator accelerator, string label, BenchOp op, float[] x)
    {
        var a = op.Activation!;
        float[] y = Compute(accelerator, x, (acc, xb, yb) => acc.Apply(a, xb, yb));
        var stats = new ErrorStats();
        for (int i = 0; i < x.Length; i++)
            stats.AddUlp(y[i], ScalarReference.Evaluate(op.Reference, x[i], a.Alpha, a.Beta, a.Threshold), x[i].ToString("R"));
        return stats.Row(op.Name, label, ElementwiseUlp, $"<= {ElementwiseUlp} ulp");
    }

    /// <summary>The backward bound (docs/numerics.md, Backward): ulps of |dy| times the derivative's term scale.</summary>
    const double BackwardUlp = 8;

    static VerifyRow Backward(Accelerator accelerator, string label, BenchOp op, float[] x)
    {
        var a = op.Activation!;
        float[] dy = UpValues(x.Length);
        using var dyb = accelerator.Allocate<float>(dy);
        float[] dx = Compute(accelerator, x, (acc, xb, dxb) => acc.ActivationBackward(a, xb, dyb, dxb));
        var stats = new ErrorStats();
        for (int i = 0; i < x.Length; i++)
        {
            double derivative = ScalarReference.Derivative(op.Reference, x[i], a.Alpha, a.Beta, a.Threshold);
            // A derivative below the smallest normal float may flush to 0 (DESIGN.md), and a large dy would magnify
            // that flush into a normal dx: those inputs are counted, not measured.
            if (Math.Abs(derivative) < SmallestNormal) { stats.Exempt(); continue; }
            double scale = Math.Abs(dy[i]) * ScalarReference.DerivativeScale(op.Reference, x[i], a.Alpha, a.Beta, a.Threshold);
            stats.AddScaled(dx[i], dy[i] * derivative, scale, x[i].ToString("R"));
        }
        return stats.Row(op.Name, label, BackwardUlp, $"<= {BackwardUlp} ulp of |dy| f' terms");
    }

    static VerifyRow PRelu(Accelerator accelerator, string label, BenchOp op, float[] x)
    {
        const int channels = 7;
        int n = x.Length / channels * channels;
        float[] input = x[..n];
        float[] alpha = [0.25f, -0.5f, 0f, 1f, 0.01f, 3f, -2f];
        using var ab = accelerator.Allocate<float>(alpha);
        float[] y = Compute(accelerator, input, (acc, xb, yb) => acc.PRelu(xb, ab, yb));
        float[] expected = new float[n];
        ScalarReference.PRelu(input, alpha, expected);
        var stats = new ErrorStats();
        for (int i = 0; i < n; i++) stats.AddUlp(y[i], expected[i], input[i].ToString("R"));
        return stats.Row(op.Name, label, ElementwiseUlp, $"<= {ElementwiseUlp} ulp");
    }

    static VerifyRow Glu(Accelerator accelerator, string label, BenchOp op, float[] gate)
    {
        float[] up = UpValues(gate.Length);
        using var gb = accelerator.Allocate<float>(gate);
        using var ub = accelerator.Allocate<float>(up);
        using var yb = accelerator.Allocate<float>(gate.Length);
        accelerator.Glu(op.Unit!, gb, ub, yb);
        float[] y = yb.ToArray();
        var stats = new ErrorStats();
        for (int i = 0; i < gate.Length; i++) AddGlu(stats, op, gate[i], up[i], y[i]);
        return stats.Row(op.Name, label, GluUlp, $"<= {GluUlp} ulp");
    }

    /// <summary>Packed rows of d = 67: the gates keep the special and spread inputs, the ups are modest values.</summary>
    static (float[] Packed, int Rows, int D) PackedInputs(BenchOp op, float[] values)
    {
        const int d = 67;
        int rows = values.Length / (2 * d);
        float[] packed = new float[rows * 2 * d];
        float[] up = UpValues(rows * d);
        for (int i = 0; i < rows * d; i++)
        {
            var (g, u) = PackedAt(op, i, d);
            (packed[g], packed[u]) = (values[i], up[i]);
        }
        return (packed, rows, d);
    }

    /// <summary>Where output i's gate and up sit in the packed tensor.</summary>
    static (int Gate, int Up) PackedAt(BenchOp op, int i, int d)
    {
        int r = i / d, j = i % d;
        return op.Packing == GluPacking.Interleaved ? (r * 2 * d + 2 * j, r * 2 * d + 2 * j + 1) : (r * 2 * d + j, r * 2 * d + d + j);
    }

    static VerifyRow GluPacked(Accelerator accelerator, string label, BenchOp op, float[] values)
    {
        var (packed, rows, d) = PackedInputs(op, values);
        using var pb = accelerator.Allocate<float>(packed);
        using var yb = accelerator.Allocate<float>(rows * d);
        accelerator.GluPacked(op.Unit!, pb, yb, rows, d, op.Packing);
        float[] y = yb.ToArray();
        var stats = new ErrorStats();
        for (int i = 0; i < y.Length; i++)
        {
            var (g, u) = PackedAt(op, i, d);
            AddGlu(stats, op, packed[g], packed[u], y[i]);
        }
        return stats.Row(op.Name, label, GluUlp, $"<= {GluUlp} ulp");
    }

    /// <summary>
    /// The backward pass (separate or packed): dy uniform in [-1, 1) with a few specials; each dGate and dUp is one
    /// sample of the ulp statistics, dGate exempt where within <see cref="GluBackwardAbsolute"/> |dy factor|.
    /// </summary>
    static VerifyRow GluBackward(Accelerator accelerator, string label, BenchOp op, float[] values)
    {
        var (packed, rows, d) = PackedInputs(op, values);
        int n = rows * d;
        var random = new Random(12);
        float[] dy = new float[n];
        Workload.Fill(dy, random, 1f);
        float[] gate = new float[n], up = new float[n], dGate, dUp;
        for (int i = 0; i < n; i++)
        {
            var (g, u) = PackedAt(op, i, d);
            (gate[i], up[i]) = (packed[g], packed[u]);
        }
        using var dyb = accelerator.Allocate<float>(dy);
        if (op.Family == OpFamily.GluBackward)
        {
            using var gb = accelerator.Allocate<float>(gate);
            using var ub = accelerator.Allocate<float>(up);
            using var dgb = accelerator.Allocate<float>(n);
            using var dub = accelerator.Allocate<float>(n);
            accelerator.GluBackward(op.Unit!, gb, ub, dyb, dgb, dub);
            (dGate, dUp) = (dgb.ToArray(), dub.ToArray());
        }
        else
        {
            using var pb = accelerator.Allocate<float>(packed);
            using var dpb = accelerator.Allocate<float>(packed.Length);
            accelerator.GluPackedBackward(op.Unit!, pb, dyb, dpb, rows, d, op.Packing);
            float[] all = dpb.ToArray();
            (dGate, dUp) = (new float[n], new float[n]);
            for (int i = 0; i < n; i++)
            {
                var (g, u) = PackedAt(op, i, d);
                (dGate[i], dUp[i]) = (all[g], all[u]);
            }
        }
        var gateStats = new ErrorStats();
        var stats = new ErrorStats();
        var unit = op.Unit!;
        for (int i = 0; i < n; i++)
        {
            var (eg, eu) = ScalarReference.GluGradient(op.GluReference, gate[i], up[i], dy[i], unit.Alpha, unit.Limit);
            var (act, factor) = GluParts(op, gate[i], up[i]);
            string at = $"gate={gate[i]:R}, up={up[i]:R}, dy={dy[i]:R}";
            if (Accuracy.UlpDistance(dGate[i], (float)eg) > GluBackwardUlp && double.IsFinite(eg)
                && Math.Abs(dGate[i] - eg) <= Math.Abs(dy[i] * factor) * GluBackwardAbsolute + SmallestNormal)
                gateStats.Exempt();
            else gateStats.AddUlp(dGate[i], (float)eg, "dGate " + at);
            if (Math.Abs(act) < SmallestNormal && Math.Abs(dUp[i] - eu) <= Math.Abs(dy[i]) * SmallestNormal) stats.Exempt();
            else stats.AddUlp(dUp[i], (float)eu, "dUp " + at);
        }
        var gateRow = gateStats.Row(op.Name, label, GluBackwardUlp, "");
        var upRow = stats.Row(op.Name, label, GluUlp, "");
        var worst = gateRow.MaxUlp >= upRow.MaxUlp ? gateRow : upRow;
        return worst with
        {
            Checked = gateRow.Checked + upRow.Checked,
            Pass = gateRow.Pass && upRow.Pass,
            MaxUlp = Math.Max(gateRow.MaxUlp, upRow.MaxUlp),
            Tolerance = $"dGate <= {GluBackwardUlp} ulp or 2^-21 |dy up|; dUp <= {GluUlp} ulp",
        };
    }

    /// <summary>act(gate) and the factor it multiplies (up, or the clamped unit's clamp(up) + 1).</summary>
    static (double Act, double Factor) GluParts(BenchOp op, float gate, float up)
    {
        var unit = op.Unit!;
        double act = ScalarReference.GluGradient(op.GluReference, gate, 0, 1, unit.Alpha, unit.Limit).DUp;
        return (act, unit.Limit > 0 ? Math.Clamp((double)up, -unit.Limit, unit.Limit) + 1 : up);
    }

    /// <summary>
    /// One gated output. Where act(gate) itself is below the smallest normal float the activation may flush it
    /// (DESIGN.md), so there the error allowed is |factor| * 2^-126 instead of ulps (as Kernels.Tests does).
    /// </summary>
    static void AddGlu(ErrorStats stats, BenchOp op, float gate, float up, float actual)
    {
        var unit = op.Unit!;
        double exact = ScalarReference.GluValue(op.GluReference, gate, up, unit.Alpha, unit.Limit);
        float expected = (float)exact;
        var (act, factor) = GluParts(op, gate, up);
        if (Math.Abs(act) < SmallestNormal && Accuracy.UlpDistance(actual, expected) > GluUlp
            && Math.Abs((double)actual - exact) <= Math.Abs(factor) * SmallestNormal)
        {
            stats.Exempt();
            return;
        }
        stats.AddUlp(actual, expected, $"gate={gate:R}, up={up:R}");
    }

    /// <summary>Up values: uniform in [-4, 4) with a few specials, deterministic.</summary>
    static float[] UpValues(int n)
    {
        var random = new Random(11);
        var up = new float[n];
        Workload.Fill(up, random, 4f);
        float[] specials = [0f, -0f, 1f, -1f, 1e-20f, 1e20f];
        for (int i = 0; i < n; i += 97) up[i] = specials[i / 97 % specials.Length];
        return up;
    }

    static VerifyRow Rowwise(Accelerator accelerator, string label, BenchOp op, bool smoke)
    {
        bool log = op.Family == OpFamily.LogSoftmax;
        (int Rows, int Cols)[] shapes = smoke
            ? [(9, 100), (1, 200_003), (40, 3)]
            : [(64, 1000), (1, 262_144), (3, 300_001), (257, 33), (1000, 5)];
        var stats = new ErrorStats();
        var random = new Random(5);
        foreach (var (rows, cols) in shapes)
        {
            float[] x = new float[rows * cols];
            for (int r = 0; r < rows; r++)
            {
                // Offsets up to +-1000 test the max subtraction; spread 0..30 varies how peaked a row is.
                float offset = (float)(random.NextDouble() * 2000 - 1000) * (r % 3 == 0 ? 1 : 0);
                // Every seventh row spreads its logits over +-600: log-softmax results near -1200, where a float ulp
                // exceeds 1e-5 and the bound's ulp term applies.
                float spread = r % 7 == 6 ? 600f : 0.5f + 30f * (float)random.NextDouble();
                for (int j = 0; j < cols; j++) x[r * cols + j] = offset + (random.NextSingle() * 2f - 1f) * spread;
            }
            if (rows >= 9)
            {
                x[cols + 1] = float.NegativeInfinity;                    // a masked entry in row 1
                x[2 * cols + cols / 2] = float.NaN;                      // row 2 is all NaN
                x.AsSpan(3 * cols, cols).Fill(float.NegativeInfinity);   // row 3 is all -inf: NaN
                x[4 * cols] = float.PositiveInfinity;                    // row 4 is all NaN
            }
            float[] y = Compute(accelerator, x, (acc, xb, yb) =>
            {
                if (log) acc.LogSoftmax(xb, yb, rows, cols);
                else acc.Softmax(xb, yb, rows, cols);
            });
            float[] expected = new float[x.Length];
            if (log) ScalarReference.LogSoftmax(x, expected, rows, cols);
            else ScalarReference.Softmax(x, expected, rows, cols);
            for (int i = 0; i < x.Length; i++)
                stats.AddRowwise(y[i], expected[i], $"[{rows}x{cols}] row {i / cols}, col {i % cols}");
        }
        return log
            ? stats.Row(op.Name, label, double.NaN, $"<= {LogSoftmaxAbsolute:0e0} abs + 2 ulp", maxAbsolute: LogSoftmaxAbsolute, ulp: false)
            : stats.Row(op.Name, label, double.NaN, $"<= {SoftmaxRelative:0e0} relative", maxRelative: SoftmaxRelative, ulp: false);
    }

    /// <summary>
    /// Softmax backward (both forms) and cross-entropy (label smoothing 0 and 0.1, gradient scale 1 and 1/rows) against the
    /// reference. Each output's error is measured against its bound (docs/numerics.md): 1e-5 of the reduction's bound
    /// (backward: y_j (|dy_j| + sum |dy y|), log form |dy_j| + e^y_j sum |dy|; CE gradient: |scale| p_j; CE loss: 1 + |loss|)
    /// plus two ulps (2.4e-7) of the result, the one-hot term's and eps/C's; max relative is error / |expected| over
    /// |expected| >= 1e-3, max absolute is over all.
    /// </summary>
    static VerifyRow Gradient(Accelerator accelerator, string label, BenchOp op, bool smoke)
    {
        (int Rows, int Cols)[] shapes = smoke ? [(9, 100), (1, 200_003), (40, 3)] : [(64, 1000), (1, 262_144), (3, 300_001), (257, 33), (8, 32_000)];
        var random = new Random(9);
        double maxRel = 0, maxAbs = 0, worstRatio = 0;
        long count = 0;
        string worst = "";
        bool mismatch = false;
        void Add(float actual, float expected, double bound, string where)
        {
            count++;
            if (!float.IsFinite(expected) || !float.IsFinite(actual))
            {
                if (!(float.IsNaN(expected) ? float.IsNaN(actual) : actual == expected) && !mismatch) { mismatch = true; worst = $"special-value mismatch at {where}: got {actual:R}, expected {expected:R}"; }
                return;
            }
            double error = Math.Abs((double)actual - expected);
            maxAbs = Math.Max(maxAbs, error);
            if (Math.Abs(expected) >= 1e-3) maxRel = Math.Max(maxRel, error / Math.Abs(expected));
            double ratio = error / (1e-5 * bound + 2.4e-7 * Math.Abs(expected) + 1e-38);
            if (ratio > worstRatio && !mismatch) { worstRatio = ratio; worst = $"{where} ({ratio:0.00} of the bound)"; }
        }
        foreach (var (rows, cols) in shapes)
        {
            float[] x = new float[rows * cols];
            for (int i = 0; i < x.Length; i++) x[i] = (random.NextSingle() * 2f - 1f) * (i / cols % 3 == 0 ? 25f : 6f);
            for (int i = 5; i < x.Length; i += 11) x[i] = float.NegativeInfinity;
            for (int r = 0; r < rows; r++) x[r * cols] = 0f;
            float[] dy = new float[x.Length];
            for (int i = 0; i < dy.Length; i++) dy[i] = random.NextSingle() * 2f - 1f;
            using var xb = accelerator.Allocate<float>(x);
            using var db = accelerator.Allocate<float>(dy);
            using var ob = accelerator.Allocate<float>(x.Length);
            if (op.Family == OpFamily.SoftmaxBackward)
            {
                foreach (bool log in new[] { false, true })
                {
                    float[] y = new float[x.Length], expected = new float[x.Length];
                    ScalarReference.Softmax(x, y, rows, cols, 1f, [], false, log);
                    xb.CopyFrom(y);
                    if (log) accelerator.LogSoftmaxBackward(xb, db, ob, rows, cols); else accelerator.SoftmaxBackward(xb, db, ob, rows, cols);
                    float[] dx = ob.ToArray();
                    ScalarReference.SoftmaxBackward(y, dy, expected, rows, cols, log);
                    double[] bound = ScalarReference.SoftmaxBackwardBound(y, dy, rows, cols, log);
                    for (int i = 0; i < dx.Length; i++)
                        Add(dx[i], expected[i], bound[i], $"[{rows}x{cols}] {(log ? "log " : "")}row {i / cols}, col {i % cols}");
                }
            }
            else
            {
                int[] targets = Enumerable.Range(0, rows).Select(r => r % 5 == 4 ? -100 : random.Next(cols)).ToArray();
                using var tb = accelerator.Allocate<int>(targets);
                using var lb = accelerator.Allocate<float>(rows);
                float[] p = new float[x.Length];
                ScalarReference.Softmax(x, p, rows, cols);
                foreach (var (eps, scale) in new[] { (0f, 1f), (0.1f, 1f / rows) })
                {
                    accelerator.CrossEntropy(xb, tb, lb, ob, rows, cols, new CrossEntropyOptions { LabelSmoothing = eps, GradientScale = scale });
                    float[] losses = lb.ToArray(), grad = ob.ToArray(), expectedLoss = new float[rows], expectedGrad = new float[x.Length];
                    ScalarReference.CrossEntropy(x, targets, expectedLoss, expectedGrad, rows, cols, -100, eps, scale);
                    for (int r = 0; r < rows; r++)
                    {
                        Add(losses[r], expectedLoss[r], 1 + Math.Abs(expectedLoss[r]), $"[{rows}x{cols}] eps {eps} loss of row {r}");
                        for (int j = 0; j < cols; j++)
                        {
                            int i = r * cols + j;
                            Add(grad[i], expectedGrad[i], Math.Abs(scale) * p[i], $"[{rows}x{cols}] eps {eps} gradient row {r}, col {j}");
                        }
                    }
                }
            }
        }
        bool pass = !mismatch && worstRatio <= 1;
        return new VerifyRow(op.Name, label, count, double.NaN, maxRel, maxAbs, "<= 1e-5 of bound + 2 ulp", pass, worst);
    }

    static float[] Compute(Accelerator accelerator, float[] x, Action<Accelerator, DeviceBuffer<float>, DeviceBuffer<float>> op)
    {
        using var xb = accelerator.Allocate<float>(x);
        using var yb = accelerator.Allocate<float>(x.Length);
        op(accelerator, xb, yb);
        return yb.ToArray();
    }

    /// <summary>The running maxima of one op's errors.</summary>
    sealed class ErrorStats
    {
        double maxUlp, maxRelative, maxAbsolute;
        double worstKey = -1;
        string worst = "";
        long count;
        bool mismatch;   // NaN or infinity where the reference has something else
        bool logBoundExceeded;
        string mismatchAt = "";

        /// <summary>Counts an output checked under a documented exception rather than the ulp bound.</summary>
        public void Exempt() => count++;

        public void AddUlp(float actual, double expected, string where) => Add(Accuracy.UlpDistance(actual, expected), actual, expected, where);

        /// <summary>An error in ulps of <paramref name="scale"/> (<see cref="ErrorMetrics.ScaledUlpDistance"/>).</summary>
        public void AddScaled(float actual, double expected, double scale, string where)
            => Add(ErrorMetrics.ScaledUlpDistance(actual, expected, scale), actual, expected, where);

        void Add(double ulp, float actual, double expected, string where)
        {
            count++;
            if (double.IsPositiveInfinity(ulp))
            {
                if (!mismatch) mismatchAt = $"{where}: got {actual:R}, expected {(float)expected:R}";
                mismatch = true;
                return;
            }
            if (ulp > worstKey) { worstKey = ulp; worst = where; }
            maxUlp = Math.Max(maxUlp, ulp);
            AddErrors(actual, (float)expected);
        }

        public void AddRowwise(float actual, float expected, string where)
        {
            count++;
            if (float.IsNaN(expected) || float.IsInfinity(expected) || float.IsNaN(actual) || float.IsInfinity(actual))
            {
                bool same = float.IsNaN(expected) ? float.IsNaN(actual) : actual == expected;
                if (!same && !mismatch) { mismatch = true; mismatchAt = $"{where}: got {actual:R}, expected {expected:R}"; }
                return;
            }
            double before = Math.Max(maxRelative, maxAbsolute);
            AddErrors(actual, expected);
            // Log-softmax's bound (docs/numerics.md): 1e-5 absolute plus two ulps of the result, the ulp term mattering
            // only where |y| >= 128 and one float ulp is already larger than 1e-5.
            double ulp = MathF.BitIncrement(MathF.Abs(expected)) - MathF.Abs(expected);
            if (Math.Abs((double)actual - expected) > LogSoftmaxAbsolute + 2 * ulp) logBoundExceeded = true;
            if (Math.Max(maxRelative, maxAbsolute) > before) worst = where;
        }

        void AddErrors(float actual, float expected)
        {
            if (!float.IsFinite(expected) || !float.IsFinite(actual)) return;
            double abs = Math.Abs((double)actual - expected);
            maxAbsolute = Math.Max(maxAbsolute, abs);
            // Results below the smallest normal may flush to zero: no relative error is asked of them.
            if (Math.Abs(expected) >= SmallestNormal) maxRelative = Math.Max(maxRelative, abs / Math.Abs(expected));
        }

        public VerifyRow Row(string op, string label, double ulpBound, string tolerance, double maxRelative = double.NaN, double maxAbsolute = double.NaN, bool ulp = true)
        {
            bool pass = !mismatch
                && (!ulp || maxUlp <= ulpBound)
                && (double.IsNaN(maxRelative) || this.maxRelative <= maxRelative)
                && (double.IsNaN(maxAbsolute) || !logBoundExceeded);
            string where = mismatch ? "special-value mismatch at " + mismatchAt : worst;
            return new VerifyRow(op, label, count, ulp ? maxUlp : double.NaN, this.maxRelative, this.maxAbsolute, tolerance, pass, where);
        }
    }
}
