using System.Globalization;
using GpuActivations.Reference;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace GpuActivations.Samples;

/// <summary>
/// A transformer's MLP block as an inference engine runs it on an ILGPU accelerator, with GpuActivations inside:
/// <code>
///   act    = silu(x Wg) * (x Wu)        SwiGLU (Shazeer, "GLU Variants Improve Transformer", 2020), computed two ways:
///                                       the library's SwiGLU op on the engine's ILGPU views, and the engine's own
///                                       matmul with the library's SiLU device function fused into its epilogue
///   h      = x + act Wd                 down projection with the residual added in the epilogue
///   probs  = softmax(h Wlm)             the library's row-wise softmax over the logits
/// </code>
/// Every stage is checked against the same block computed in double with the library's scalar reference
/// (GpuActivations.Reference); a mismatch exits with 1. The matmul is deliberately naive (one thread per output
/// element): the point is the fusion and the views, not a fast GEMM.
/// </summary>
public static class TransformerMlp
{
    /// <summary>Tokens (rows) in the batch.</summary>
    public const int Tokens = 8;

    /// <summary>The model width d.</summary>
    public const int Model = 64;

    /// <summary>The MLP's hidden width (the SwiGLU width).</summary>
    public const int Hidden = 128;

    /// <summary>The vocabulary: columns of the logits and of the softmax.</summary>
    public const int Vocab = 96;

    /// <summary>
    /// The largest error allowed at every stage, as max |got - reference| / max |reference| over the stage's tensor.
    /// The device works in float32 and sums each dot product of 64 or 128 terms with a correctly rounded fma, so
    /// rounding gives a few times 1e-7 here (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., §3.1:
    /// |error| &lt;= k u sum |a_p b_p| for a dot product of k terms, in the worst case); a wrong activation, a wrong
    /// index or a lost epilogue gives errors of order 1.
    /// </summary>
    public const double Tolerance = 1e-5;

    /// <summary>Runs the sample with the process's arguments and console.</summary>
    /// <param name="args">See <see cref="Run"/>.</param>
    /// <returns>0 when every stage matches the reference, 1 on a mismatch, 2 for bad arguments.</returns>
    public static int Main(string[] args) => Run(args, Console.Out);

    /// <summary>
    /// Runs the block once and checks it. Options: <c>--cpu</c> uses ILGPU's CPU accelerator even when a GPU is present
    /// (CI does); <c>--kernels</c> makes the library run its ILGPU kernels on the CPU accelerator (emulated thread by
    /// thread) instead of its SIMD path; <c>--corrupt</c> changes one probability after the run, to show that the check
    /// catches a wrong result (the run must then exit with 1).
    /// </summary>
    /// <param name="args">The options above.</param>
    /// <param name="output">Where the report goes.</param>
    /// <returns>0 when every stage matches the reference, 1 on a mismatch, 2 for bad arguments.</returns>
    public static int Run(string[] args, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        bool cpu = false, kernels = false, corrupt = false;
        foreach (string arg in args)
        {
            switch (arg)
            {
                case "--cpu": cpu = true; break;
                case "--kernels": kernels = true; break;
                case "--corrupt": corrupt = true; break;
                default:
                    output.WriteLine($"unknown option '{arg}'. Options: --cpu (ILGPU's CPU accelerator), --kernels (the library's ILGPU kernels on it), --corrupt (check the check).");
                    return 2;
            }
        }

        var weights = Weights.Create(seed: 2026);

        // The engine's context and accelerator. The library's device functions use their own exp (no ILGPU intrinsics),
        // and its kernels need ILGPU.Algorithms' reductions: hence EnableAlgorithms.
        using var context = Context.Create(b => b.Default().EnableAlgorithms());
        ILGPU.Runtime.Device device = cpu ? context.GetCPUDevice(0) : context.GetPreferredDevice(preferCPU: false);
        using var engine = device.CreateAccelerator(context);
        output.WriteLine($"accelerator: {engine.Name} ({engine.AcceleratorType}{(engine.AcceleratorType == AcceleratorType.CPU ? kernels ? ", library's ILGPU kernels emulated" : ", library's SIMD path on host memory" : "")})");
        output.WriteLine($"block: {Tokens} tokens, d = {Model}, hidden = {Hidden}, vocab = {Vocab}");

        // The fused epilogue must call the device function compiled with the backend's correctly rounded fma, as the
        // library's own kernels do: inline PTX on CUDA, an exact emulation on OpenCL, the hardware fma on the CPU.
        Result result = engine.AcceleratorType switch
        {
            AcceleratorType.Cuda => Block<PtxFma>.Forward(engine, weights, kernels),
            AcceleratorType.OpenCL => Block<EmulatedFma>.Forward(engine, weights, kernels),
            _ => Block<HostFma>.Forward(engine, weights, kernels),
        };
        if (corrupt)
        {
            result.Probabilities[0] += 0.01f;
            output.WriteLine("--corrupt: probability [0, 0] raised by 0.01 after the run");
        }

        var expected = Reference.Forward(weights);
        bool ok = true;
        ok &= Check(output, "swiglu, library op on ILGPU views", result.SwiGluOp, expected.Activation);
        ok &= Check(output, "swiglu, silu fused in matmul epilogue", result.SwiGluFused, expected.Activation);
        ok &= Check(output, "block output x + act Wd", result.Output, expected.Output);
        ok &= Check(output, "logits h Wlm", result.Logits, expected.Logits);
        ok &= Check(output, "softmax over logits (library op)", result.Probabilities, expected.Probabilities);

        float fusedVsOp = 0f;
        for (int i = 0; i < result.SwiGluOp.Length; i++)
            fusedVsOp = MathF.Max(fusedVsOp, MathF.Abs(result.SwiGluOp[i] - result.SwiGluFused[i]));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fused epilogue against library op: max |difference| {fusedVsOp:G3}"));

        for (int t = 0; t < Tokens; t++)
        {
            var row = result.Probabilities.AsSpan(t * Vocab, Vocab);
            int best = 0;
            for (int v = 1; v < Vocab; v++) if (row[v] > row[best]) best = v;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"token {t}: next = {best,2}, p = {row[best]:F4}"));
        }

        output.WriteLine(ok ? "TransformerMlp: every stage matches the double reference" : "TransformerMlp: MISMATCH against the double reference");
        return ok ? 0 : 1;
    }

    /// <summary>Prints one stage's error and whether it is within <see cref="Tolerance"/>.</summary>
    static bool Check(TextWriter output, string stage, float[] got, double[] expected)
    {
        double worst = 0, scale = 0;
        for (int i = 0; i < got.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(got[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }

        // NaN anywhere makes the error NaN, which is not <= the tolerance.
        double error = got.Any(float.IsNaN) ? double.NaN : worst / scale;
        bool ok = error <= Tolerance;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{stage,-40} rel err {error,9:0.00E+00}  {(ok ? "ok" : "MISMATCH")}"));
        return ok;
    }

    /// <summary>The block's inputs: activations and weights, row-major, drawn from a fixed seed.</summary>
    sealed record Weights(float[] X, float[] Gate, float[] Up, float[] Down, float[] Head)
    {
        public static Weights Create(int seed)
        {
            var random = new Random(seed);
            // Scaled by 1/sqrt(fan-in) (Glorot and Bengio, 2010) so every stage stays of order 1.
            float[] Draw(int count, int fanIn)
            {
                float scale = 1f / MathF.Sqrt(fanIn);
                var values = new float[count];
                for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * 1.7f * scale;
                return values;
            }

            return new Weights(Draw(Tokens * Model, 1), Draw(Model * Hidden, Model), Draw(Model * Hidden, Model),
                Draw(Hidden * Model, Hidden), Draw(Model * Vocab, Model));
        }
    }

    /// <summary>The block's results, copied back from the accelerator.</summary>
    sealed record Result(float[] SwiGluOp, float[] SwiGluFused, float[] Output, float[] Logits, float[] Probabilities);

    /// <summary>The block in double with the library's scalar reference: the oracle.</summary>
    sealed record Reference(double[] Activation, double[] Output, double[] Logits, double[] Probabilities)
    {
        public static Reference Forward(Weights w)
        {
            var x = Array.ConvertAll(w.X, v => (double)v);
            var gate = MatMul(x, w.Gate, Tokens, Model, Hidden);
            var up = MatMul(x, w.Up, Tokens, Model, Hidden);
            var act = new double[gate.Length];
            for (int i = 0; i < act.Length; i++) act[i] = ScalarReference.Silu(gate[i]) * up[i];
            var down = MatMul(act, w.Down, Tokens, Hidden, Model);
            var output = new double[down.Length];
            for (int i = 0; i < output.Length; i++) output[i] = w.X[i] + down[i];
            var logits = MatMul(output, w.Head, Tokens, Model, Vocab);
            var probabilities = new double[logits.Length];
            for (int t = 0; t < Tokens; t++)
                ScalarReference.SoftmaxRow(logits.AsSpan(t * Vocab, Vocab), probabilities.AsSpan(t * Vocab, Vocab), safe: false, log: false);
            return new Reference(act, output, logits, probabilities);
        }

        static double[] MatMul(double[] a, float[] b, int m, int k, int n)
        {
            var c = new double[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double sum = 0;
                    for (int p = 0; p < k; p++) sum += a[i * k + p] * b[p * n + j];
                    c[i * n + j] = sum;
                }
            return c;
        }
    }

    /// <summary>The block on the engine's accelerator, its kernels compiled for the backend's fma form.</summary>
    static class Block<TFma> where TFma : struct, IFusedMultiplyAdd
    {
        public static Result Forward(ILGPU.Runtime.Accelerator engine, Weights w, bool runKernelsOnCpu)
        {
            var plain = engine.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, NoEpilogue>(
                EngineKernels.MatMul<TFma, NoEpilogue>);
            var swiGlu = engine.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, SwiGluEpilogue<TFma>>(
                EngineKernels.MatMul<TFma, SwiGluEpilogue<TFma>>);
            var residual = engine.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, ResidualEpilogue>(
                EngineKernels.MatMul<TFma, ResidualEpilogue>);

            // The engine's own buffers; the library never copies them, it works on their views.
            using var x = engine.Allocate1D(w.X);
            using var wGate = engine.Allocate1D(w.Gate);
            using var wUp = engine.Allocate1D(w.Up);
            using var wDown = engine.Allocate1D(w.Down);
            using var wHead = engine.Allocate1D(w.Head);
            using var gate = engine.Allocate1D<float>(Tokens * Hidden);
            using var up = engine.Allocate1D<float>(Tokens * Hidden);
            using var act = engine.Allocate1D<float>(Tokens * Hidden);
            using var fused = engine.Allocate1D<float>(Tokens * Hidden);
            using var h = engine.Allocate1D<float>(Tokens * Model);
            using var logits = engine.Allocate1D<float>(Tokens * Vocab);
            using var probabilities = engine.Allocate1D<float>(Tokens * Vocab);

            // The library on the engine's accelerator and default stream: ops queue behind the engine's kernels.
            using var ops = GpuActivations.Accelerator.FromIlgpu(engine, runKernelsOnCpu: runKernelsOnCpu);

            var hidden = new Index2D(Tokens, Hidden);
            plain(hidden, x.View, wGate.View, gate.View, gate.View, Model, Hidden, default);
            plain(hidden, x.View, wUp.View, up.View, up.View, Model, Hidden, default);

            // SwiGLU two ways: the library's op on the gate and up projections ...
            ops.SwiGlu(gate.View, up.View, act.View);
            // ... and the engine's gate matmul whose epilogue applies the library's SiLU to the sum and multiplies by up,
            // so the gate projection never goes to memory.
            swiGlu(hidden, x.View, wGate.View, up.View, fused.View, Model, Hidden, default);

            residual(new Index2D(Tokens, Model), act.View, wDown.View, x.View, h.View, Hidden, Model, default);
            plain(new Index2D(Tokens, Vocab), h.View, wHead.View, logits.View, logits.View, Model, Vocab, default);
            ops.Softmax(logits.View, probabilities.View, Tokens, Vocab);
            engine.Synchronize();

            return new Result(act.GetAsArray1D(), fused.GetAsArray1D(), h.GetAsArray1D(), logits.GetAsArray1D(), probabilities.GetAsArray1D());
        }
    }
}
