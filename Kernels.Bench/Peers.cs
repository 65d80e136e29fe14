using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using GpuActivations.Reference;

namespace GpuActivations.Bench;

/// <summary>
/// The CPU peers every row is compared with, both on one thread and on managed arrays:
/// <list type="bullet">
/// <item>a naive loop, written the same way for every op: a plain C# <c>for</c> over the elements in float with
/// <see cref="MathF"/>, branch-free (Max/Min/Clamp for the piecewise ops; the JIT does not vectorise it). MathF has no
/// erf, so GELU's loop uses the float Abramowitz-Stegun 7.1.26 formula one would copy from a textbook.</item>
/// <item>ONNX Runtime (<see cref="OnnxPeer"/>), on every op ONNX has, on as many threads as ours.</item>
/// <item>System.Numerics.Tensors' TensorPrimitives where it has the op: Sigmoid, Tanh and SoftMax directly; ReLU as
/// Max(x, 0); SiLU and SwiGLU composed from Sigmoid and Multiply (two and three passes). TensorPrimitives has no
/// threading: it always runs on the calling thread.</item>
/// </list>
/// </summary>
public static class Peers
{
    /// <summary>A peer ready to run on its own arrays.</summary>
    public sealed class Instance(string label, Action run)
    {
        /// <summary>What it is, e.g. "TensorPrimitives.Sigmoid".</summary>
        public string Label { get; } = label;
        /// <summary>One call.</summary>
        public Action Run { get; } = run;
    }

    /// <summary>The naive loop for <paramref name="op"/> at <paramref name="shape"/>, or null if it has none.</summary>
    public static Instance? Naive(BenchOp op, Shape shape, int seed = 1)
    {
        var random = new Random(seed);
        int n = checked((int)shape.Elements);
        float[] y = new float[n];
        switch (op.Family)
        {
            case OpFamily.Elementwise:
            {
                float[] x = Array(n, random, 8f);
                var a = op.Activation!;
                return new("naive loop", () => NaiveUnary(op.Reference, a.Alpha, a.Beta, a.Threshold, x, y));
            }
            case OpFamily.PRelu:
            {
                float[] x = Array(n, random, 8f);
                float[] alpha = Array((int)BenchOp.PReluChannels(n), random, 0.5f);
                return new("naive loop", () =>
                {
                    for (int i = 0; i < x.Length; i++) y[i] = MathF.Max(x[i], 0f) + alpha[i % alpha.Length] * MathF.Min(x[i], 0f);
                });
            }
            case OpFamily.Glu when op.Unit!.Kind != GatedUnitKind.ClampedSwiGlu:
            {
                float[] g = Array(n, random, 8f), u = Array(n, random, 8f);
                var a = op.Activation!;
                var id = Enum.Parse<ActivationId>(a.Kind.ToString());
                return new("naive loop", () => NaiveGlu(id, g, u, y));
            }
            case OpFamily.GluPacked when op.Name == "SwiGluPacked":
            {
                // The catalog's one packed op is SwiGLU: silu(gate) * up per row of [gate | up].
                float[] packed = Array(2 * n, random, 8f);
                long rows = shape.Rows, d = shape.Cols;
                return new("naive loop", () =>
                {
                    for (long r = 0; r < rows; r++)
                        for (long j = 0; j < d; j++)
                        {
                            float g = packed[r * 2 * d + j];
                            y[r * d + j] = g / (1f + MathF.Exp(-g)) * packed[r * 2 * d + d + j];
                        }
                });
            }
            case OpFamily.Softmax or OpFamily.LogSoftmax:
            {
                float[] x = Array(n, random, 10f);
                bool log = op.Family == OpFamily.LogSoftmax;
                int rows = (int)shape.Rows, cols = (int)shape.Cols;
                return new("naive loop", () => NaiveSoftmax(x, y, rows, cols, log));
            }
            default:
                return null; // the backward ops, softmax backward, cross-entropy and the clamped and interleaved gated ops have no naive peer
        }
    }

    /// <summary>The TensorPrimitives version of <paramref name="op"/>, or null where it has none.</summary>
    public static Instance? TensorPrimitivesPeer(BenchOp op, Shape shape, int seed = 1)
    {
        var random = new Random(seed);
        int n = checked((int)shape.Elements);
        switch (op.Name)
        {
            case "Sigmoid":
            {
                float[] x = Array(n, random, 8f), y = new float[n];
                return new("TensorPrimitives.Sigmoid", () => TensorPrimitives.Sigmoid(x, y));
            }
            case "Tanh":
            {
                float[] x = Array(n, random, 8f), y = new float[n];
                return new("TensorPrimitives.Tanh", () => TensorPrimitives.Tanh(x, y));
            }
            case "Relu":
            {
                float[] x = Array(n, random, 8f), y = new float[n];
                return new("TensorPrimitives.Max(x, 0)", () => TensorPrimitives.Max(x, 0f, y));
            }
            case "Silu":
            {
                float[] x = Array(n, random, 8f), y = new float[n];
                return new("Sigmoid, Multiply (2 passes)", () =>
                {
                    TensorPrimitives.Sigmoid(x, y);
                    TensorPrimitives.Multiply(x, y, y);
                });
            }
            case "SwiGlu":
            {
                float[] g = Array(n, random, 8f), u = Array(n, random, 8f), y = new float[n];
                return new("Sigmoid, Multiply x2 (3 passes)", () =>
                {
                    TensorPrimitives.Sigmoid(g, y);
                    TensorPrimitives.Multiply(g, y, y);
                    TensorPrimitives.Multiply(y, u, y);
                });
            }
            case "Softmax":
            {
                float[] x = Array(n, random, 10f), y = new float[n];
                int rows = (int)shape.Rows, cols = (int)shape.Cols;
                return new("TensorPrimitives.SoftMax per row (no max subtraction)", () =>
                {
                    for (int r = 0; r < rows; r++) TensorPrimitives.SoftMax(x.AsSpan(r * cols, cols), y.AsSpan(r * cols, cols));
                });
            }
            default:
                return null;
        }
    }

    static float[] Array(int n, Random random, float range)
    {
        var a = new float[n];
        Workload.Fill(a, random, range);
        return a;
    }

    // ----------------------------------------------------------------- the naive loops

    /// <summary>One naive scalar function; a struct, so the loop over it is specialised and the call inlined.</summary>
    interface IScalar
    {
        float F(float x);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Map<T>(T f, float[] x, float[] y) where T : struct, IScalar
    {
        for (int i = 0; i < x.Length; i++) y[i] = f.F(x[i]);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Gate<T>(T f, float[] g, float[] u, float[] y) where T : struct, IScalar
    {
        for (int i = 0; i < g.Length; i++) y[i] = f.F(g[i]) * u[i];
    }

    const float SeluAlpha = 1.6732632423543772f, SeluScale = 1.0507009873554805f;
    const float SqrtTwoOverPi = 0.7978845608028654f, InvSqrt2 = 0.70710678118654752f;

    // Every naive loop is written the same way: float arithmetic with MathF, no branch on the value (Max/Min/Clamp
    // for the piecewise ops), so the ratios compare the kernels with one consistent baseline rather than with
    // whichever of a branchy or a branch-free form a given op happened to get.
    readonly struct SigmoidF : IScalar { public float F(float x) => 1f / (1f + MathF.Exp(-x)); }
    readonly struct TanhF : IScalar { public float F(float x) => MathF.Tanh(x); }
    readonly struct ReluF : IScalar { public float F(float x) => MathF.Max(x, 0f); }
    readonly struct LeakyReluF(float alpha) : IScalar { public float F(float x) => MathF.Max(x, 0f) + alpha * MathF.Min(x, 0f); }
    readonly struct EluF(float alpha) : IScalar { public float F(float x) => MathF.Max(x, 0f) + alpha * (MathF.Exp(MathF.Min(x, 0f)) - 1f); }
    readonly struct SeluF : IScalar { public float F(float x) => SeluScale * (MathF.Max(x, 0f) + SeluAlpha * (MathF.Exp(MathF.Min(x, 0f)) - 1f)); }
    readonly struct GeluF : IScalar { public float F(float x) => 0.5f * x * (1f + Erf(x * InvSqrt2)); }
    readonly struct GeluTanhF : IScalar { public float F(float x) => 0.5f * x * (1f + MathF.Tanh(SqrtTwoOverPi * (x + 0.044715f * x * x * x))); }
    readonly struct SwishF(float beta) : IScalar { public float F(float x) => x / (1f + MathF.Exp(-beta * x)); }
    readonly struct SoftplusF(float beta) : IScalar
    {
        // log(1 + e^(bx)) / b = (max(bx, 0) + log(1 + e^-|bx|)) / b: no overflow, no branch.
        public float F(float x) => (MathF.Max(beta * x, 0f) + MathF.Log(1f + MathF.Exp(-MathF.Abs(beta * x)))) / beta;
    }
    readonly struct MishF : IScalar { public float F(float x) => x * MathF.Tanh(MathF.Max(x, 0f) + MathF.Log(1f + MathF.Exp(-MathF.Abs(x)))); }
    readonly struct HardSigmoidF : IScalar { public float F(float x) => Math.Clamp(x / 6f + 0.5f, 0f, 1f); }
    readonly struct HardSwishF : IScalar { public float F(float x) => x * Math.Clamp(x / 6f + 0.5f, 0f, 1f); }
    readonly struct Relu6F : IScalar { public float F(float x) => Math.Clamp(x, 0f, 6f); }

    /// <summary>
    /// erf in float, as one writes it without a library: Abramowitz and Stegun 7.1.26 (|error| &lt;= 1.5e-7) on |x|,
    /// sign restored with CopySign.
    /// </summary>
    static float Erf(float x)
    {
        float a = MathF.Abs(x);
        float t = 1f / (1f + 0.3275911f * a);
        float p = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
        return MathF.CopySign(1f - p * MathF.Exp(-a * a), x);
    }

    static void NaiveUnary(ActivationId id, float alpha, float beta, float threshold, float[] x, float[] y)
    {
        switch (id)
        {
            case ActivationId.Sigmoid: Map(new SigmoidF(), x, y); break;
            case ActivationId.Tanh: Map(new TanhF(), x, y); break;
            case ActivationId.Relu: Map(new ReluF(), x, y); break;
            case ActivationId.LeakyRelu: Map(new LeakyReluF(alpha), x, y); break;
            case ActivationId.Elu: Map(new EluF(alpha), x, y); break;
            case ActivationId.Selu: Map(new SeluF(), x, y); break;
            case ActivationId.Gelu: Map(new GeluF(), x, y); break;
            case ActivationId.GeluTanh: Map(new GeluTanhF(), x, y); break;
            case ActivationId.Silu: Map(new SwishF(1f), x, y); break;
            case ActivationId.Swish: Map(new SwishF(beta), x, y); break;
            case ActivationId.QuickGelu: Map(new SwishF(1.702f), x, y); break;
            case ActivationId.Softplus: Map(new SoftplusF(beta), x, y); break;
            case ActivationId.Mish: Map(new MishF(), x, y); break;
            case ActivationId.HardSigmoid: Map(new HardSigmoidF(), x, y); break;
            case ActivationId.HardSwish: Map(new HardSwishF(), x, y); break;
            case ActivationId.Relu6: Map(new Relu6F(), x, y); break;
            default: throw new ArgumentOutOfRangeException(nameof(id), id, "no naive loop");
        }
    }

    static void NaiveGlu(ActivationId gate, float[] g, float[] u, float[] y)
    {
        switch (gate)
        {
            case ActivationId.Silu: Gate(new SwishF(1f), g, u, y); break;
            case ActivationId.Gelu: Gate(new GeluF(), g, u, y); break;
            case ActivationId.GeluTanh: Gate(new GeluTanhF(), g, u, y); break;
            default: Gate(new ReluF(), g, u, y); break;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void NaiveSoftmax(float[] x, float[] y, int rows, int cols, bool log)
    {
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            float max = float.NegativeInfinity;
            for (int j = 0; j < cols; j++) max = MathF.Max(max, x[o + j]);
            float sum = 0f;
            if (log)
            {
                for (int j = 0; j < cols; j++) sum += MathF.Exp(x[o + j] - max);
                float logSum = MathF.Log(sum);
                for (int j = 0; j < cols; j++) y[o + j] = x[o + j] - max - logSum;
            }
            else
            {
                for (int j = 0; j < cols; j++)
                {
                    float e = MathF.Exp(x[o + j] - max);
                    y[o + j] = e;
                    sum += e;
                }
                float inverse = 1f / sum;
                for (int j = 0; j < cols; j++) y[o + j] *= inverse;
            }
        }
    }
}
