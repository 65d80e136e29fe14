using GpuActivations.Reference;
using Microsoft.ML.OnnxRuntime;

namespace GpuActivations.Bench;

/// <summary>
/// ONNX Runtime (Microsoft.ML.OnnxRuntime, CPU execution provider) as a CPU peer: one session per op and shape over a
/// one-node model from <see cref="OnnxModel"/>, with as many intra-op threads as our CPU kernels use (every core), so
/// the two compare on the same cores. Input and output are pinned managed arrays bound as OrtValues once, so a call
/// is the op alone (no allocation, no copy).
/// </summary>
public sealed class OnnxPeer : IDisposable
{
    readonly byte[] model;
    InferenceSession? session;
    readonly OrtValue input, output;
    readonly RunOptions runOptions = new();
    static readonly string[] InputNames = ["x"], OutputNames = ["y"];

    /// <summary>The ONNX node, e.g. "Gelu (approximate=tanh)".</summary>
    public string Label { get; }

    OnnxPeer(byte[] model, float[] x, float[] y, long[] shape, string label)
    {
        this.model = model; // the session opens on the first Run: no thread pool exists before it is measured
        input = OrtValue.CreateTensorValueFromMemory(x, shape);
        output = OrtValue.CreateTensorValueFromMemory(y, shape);
        Label = label;
    }

    /// <summary>
    /// Session options: intra-op threads = our core count, sequential graph, every graph optimisation; ONNX Runtime's
    /// default threading otherwise (its pool threads spin after a run, which is why the main job measures it in blocks
    /// of its own and releases the session before our op's next block).
    /// </summary>
    static SessionOptions Options() => new()
    {
        IntraOpNumThreads = Environment.ProcessorCount,
        InterOpNumThreads = 1,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
    };

    /// <summary>
    /// The ONNX node computing <paramref name="op"/> with the catalog's parameters, or null where ONNX has no such
    /// operator (or its semantics differ: ONNX's Softplus has no beta or threshold, so only the default one is mapped).
    /// </summary>
    public static (string OpType, OnnxModel.Attribute[] Attributes, string Label)? Node(BenchOp op)
    {
        if (op.Bf16) return null;
        if (op.Family is OpFamily.Softmax) return ("Softmax", [OnnxModel.Attribute.Of("axis", -1L)], "Softmax (axis=-1)");
        if (op.Family is OpFamily.LogSoftmax) return ("LogSoftmax", [OnnxModel.Attribute.Of("axis", -1L)], "LogSoftmax (axis=-1)");
        if (op.Family != OpFamily.Elementwise) return null;
        var a = op.Activation!;
        return a.Kind switch
        {
            ActivationKind.Sigmoid => ("Sigmoid", [], "Sigmoid"),
            ActivationKind.Tanh => ("Tanh", [], "Tanh"),
            ActivationKind.Relu => ("Relu", [], "Relu"),
            ActivationKind.LeakyRelu => ("LeakyRelu", [OnnxModel.Attribute.Of("alpha", a.Alpha)], $"LeakyRelu (alpha={a.Alpha})"),
            ActivationKind.Elu => ("Elu", [OnnxModel.Attribute.Of("alpha", a.Alpha)], $"Elu (alpha={a.Alpha})"),
            // ONNX's Selu defaults are the float roundings of Klambauer et al.'s constants, as ours are.
            ActivationKind.Selu => ("Selu", [], "Selu"),
            ActivationKind.Gelu => ("Gelu", [OnnxModel.Attribute.Of("approximate", "none")], "Gelu (opset 20, exact)"),
            ActivationKind.GeluTanh => ("Gelu", [OnnxModel.Attribute.Of("approximate", "tanh")], "Gelu (opset 20, approximate=tanh)"),
            ActivationKind.Softplus when a.Beta == 1f && a.Threshold == 20f => ("Softplus", [], "Softplus"),
            ActivationKind.Mish => ("Mish", [], "Mish"),
            // HardSigmoid(x) = clamp(alpha x + beta, 0, 1); ours is the PyTorch/MobileNetV3 form, x/6 + 1/2.
            ActivationKind.HardSigmoid => ("HardSigmoid", [OnnxModel.Attribute.Of("alpha", 1f / 6f), OnnxModel.Attribute.Of("beta", 0.5f)], "HardSigmoid (alpha=1/6)"),
            ActivationKind.HardSwish => ("HardSwish", [], "HardSwish"),
            _ => null,
        };
    }

    /// <summary>A peer for <paramref name="op"/> at <paramref name="shape"/> on inputs drawn like the workload's, or null where ONNX has no such op.</summary>
    public static OnnxPeer? Create(BenchOp op, Shape shape, int seed = 1)
    {
        if (Node(op) is not { } node) return null;
        int n = checked((int)shape.Elements);
        var x = new float[n];
        Workload.Fill(x, new Random(seed), op.IsRowwise ? 10f : 8f);
        long[] dims = op.IsRowwise ? [shape.Rows, shape.Cols] : [shape.Elements];
        return new OnnxPeer(OnnxModel.UnaryFloat(node.OpType, dims, node.Attributes), x, new float[n], dims, node.Label);
    }

    /// <summary>One call of the op (opening the session again after <see cref="Release"/>).</summary>
    public void Run() => (session ?? Open()).Run(runOptions, InputNames, [input], OutputNames, [output]);

    /// <summary>
    /// Closes the session, and with it ONNX Runtime's thread pool, whose threads would otherwise spin on the cores the
    /// next measurement needs; the next <see cref="Run"/> opens it again.
    /// </summary>
    public void Release()
    {
        session?.Dispose();
        session = null;
    }

    InferenceSession Open()
    {
        using var options = Options();
        return session = new InferenceSession(model, options);
    }

    /// <summary>
    /// Runs <paramref name="op"/> once through ONNX Runtime on <paramref name="x"/> shaped [rows, cols] (rows = 1 for
    /// elementwise ops) and returns the result; null where ONNX has no such op.
    /// </summary>
    public static float[]? Evaluate(BenchOp op, float[] x, long rows, long cols)
    {
        if (Node(op) is not { } node) return null;
        if (rows * cols != x.Length) throw new ArgumentException($"x has {x.Length} elements, not rows * cols = {rows * cols}.", nameof(x));
        long[] dims = op.IsRowwise ? [rows, cols] : [x.LongLength];
        var y = new float[x.Length];
        using var peer = new OnnxPeer(OnnxModel.UnaryFloat(node.OpType, dims, node.Attributes), x, y, dims, node.Label);
        peer.Run();
        return y;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        input.Dispose();
        output.Dispose();
        runOptions.Dispose();
        Release();
    }
}

/// <summary>ONNX Runtime's accuracy beside ours on the same inputs, against the same double reference.</summary>
/// <param name="Op">The op.</param>
/// <param name="OnnxNode">The ONNX node run.</param>
/// <param name="Measure">"max ulp" (elementwise), "max rel err" (softmax) or "max abs err" (log-softmax).</param>
/// <param name="Onnx">ONNX Runtime's worst error in that measure.</param>
/// <param name="OnnxWorstAt">The input (elementwise) or row where it occurred.</param>
/// <param name="Ours">Our worst error on the same inputs (the SIMD CPU path).</param>
/// <param name="OursWorstAt">Where ours occurred.</param>
/// <param name="Inputs">Inputs compared.</param>
public sealed record OnnxAccuracyRow(string Op, string OnnxNode, string Measure, double Onnx, string OnnxWorstAt, double Ours, string OursWorstAt, long Inputs);

/// <summary>Measures <see cref="OnnxAccuracyRow"/>s.</summary>
public static class OnnxAccuracy
{
    /// <summary>
    /// Every op of <paramref name="ops"/> that ONNX has: elementwise ops over <see cref="Accuracy.Inputs"/>
    /// (<paramref name="spread"/> bit patterns over the float range and as many values in [-30, 30]) in ulps of the
    /// reference rounded to float; softmax and log-softmax over 64 rows of 4093 logits in [-10, 10) (and one row offset
    /// by 1000) in the measures of their tolerances. Ours runs on <paramref name="cpu"/>.
    /// </summary>
    public static List<OnnxAccuracyRow> Run(Accelerator cpu, IEnumerable<BenchOp> ops, int spread)
    {
        var rows = new List<OnnxAccuracyRow>();
        float[] x = Accuracy.Inputs(spread, spread);
        foreach (var op in ops)
        {
            if (OnnxPeer.Node(op) is not { } node) continue;
            if (op.Family == OpFamily.Elementwise)
            {
                float[] onnx = OnnxPeer.Evaluate(op, x, 1, x.Length)!;
                float[] ours = new float[x.Length];
                using (var xb = cpu.Allocate<float>(x))
                using (var yb = cpu.Allocate<float>(x.Length))
                {
                    cpu.Apply(op.Activation!, xb, yb);
                    yb.CopyTo(ours);
                }
                var a = op.Activation!;
                double[] expected = new double[x.Length];
                Parallel.For(0, x.Length, i => expected[i] = ScalarReference.Evaluate(op.Reference, x[i], a.Alpha, a.Beta, a.Threshold));
                var (oe, oi) = WorstUlp(onnx, expected);
                var (ue, ui) = WorstUlp(ours, expected);
                rows.Add(new(op.Name, node.Label, "max ulp", oe, At(x, oi), ue, At(x, ui), x.Length));
            }
            else
            {
                const int Rows = 64, Cols = 4093;
                bool log = op.Family == OpFamily.LogSoftmax;
                var logits = new float[Rows * Cols];
                Workload.Fill(logits, new Random(5), 10f);
                for (int j = 0; j < Cols; j++) logits[Cols + j] += 1000f; // one row far from 0: the max subtraction matters
                float[] onnx = OnnxPeer.Evaluate(op, logits, Rows, Cols)!;
                float[] ours = new float[logits.Length];
                using (var xb = cpu.Allocate<float>(logits))
                using (var yb = cpu.Allocate<float>(logits.Length))
                {
                    if (log) cpu.LogSoftmax(xb, yb, Rows, Cols); else cpu.Softmax(xb, yb, Rows, Cols);
                    yb.CopyTo(ours);
                }
                double[] expected = ScalarReference.SoftmaxExact(logits, Rows, Cols, log);
                var (oe, oi) = WorstRowwise(onnx, expected, log);
                var (ue, ui) = WorstRowwise(ours, expected, log);
                rows.Add(new(op.Name, node.Label, log ? "max abs err" : "max rel err", oe, $"row {oi / Cols}", ue, $"row {ui / Cols}", logits.Length));
            }
        }
        return rows;
    }

    static string At(float[] x, int i) => i < 0 ? "-" : x[i].ToString("R", System.Globalization.CultureInfo.InvariantCulture);

    static (double Worst, int At) WorstUlp(float[] actual, double[] expected)
    {
        double worst = 0;
        int at = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Accuracy.UlpDistance(actual[i], expected[i]);
            if (d > worst || (double.IsNaN(d) && !double.IsNaN(worst))) { worst = d; at = i; }
        }
        return (worst, at);
    }

    static (double Worst, int At) WorstRowwise(float[] actual, double[] expected, bool log)
    {
        double worst = 0;
        int at = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double e = expected[i];
            double d = log ? Math.Abs(actual[i] - e) : e >= 1.17549435e-38 ? Math.Abs(actual[i] - e) / e : 0;
            if (!(d <= worst)) { worst = d; at = i; }
        }
        return (worst, at);
    }
}
