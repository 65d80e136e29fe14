using System.Runtime.CompilerServices;
using GpuActivations.Activations;
using GpuActivations.Cpu;

namespace GpuActivations;

/// <summary>
/// The activations' device functions, for an engine's own ILGPU kernels: <c>ActivationFunctions&lt;PtxFma&gt;.Silu(v)</c> in a
/// matmul epilogue is the code the library's kernels run, so the activation fuses into the engine's kernel with the
/// library's accuracy (its own exp, expm1, log1p and erfc tail, never ILGPU's approximate intrinsics). The type argument is
/// the correctly rounded fma of the backend the kernel is compiled for: <see cref="PtxFma"/> on CUDA,
/// <see cref="EmulatedFma"/> on OpenCL, <see cref="HostFma"/> on ILGPU's CPU accelerator (an engine makes its kernel
/// generic over it and picks per accelerator, as the library does). The same functions run on the host too.
/// </summary>
/// <typeparam name="TFma">The fma form of the target backend.</typeparam>
public static class ActivationFunctions<TFma> where TFma : struct, IFusedMultiplyAdd
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Forward<TOp>(TOp op, float x) where TOp : struct, IActivationOp => op.Invoke(new ScalarLane<TFma>(x)).Value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Derivative<TOp>(TOp op, float x) where TOp : struct, IActivationOp => op.Derivative(new ScalarLane<TFma>(x)).Value;

    /// <summary>sigmoid(x) = 1 / (1 + e^-x).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sigmoid(float x) => Forward(new SigmoidOp(), x);

    /// <summary>The derivative of <see cref="Sigmoid"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SigmoidDerivative(float x) => Derivative(new SigmoidOp(), x);

    /// <summary>tanh(x).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Tanh(float x) => Forward(new TanhOp(), x);

    /// <summary>The derivative of <see cref="Tanh"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float TanhDerivative(float x) => Derivative(new TanhOp(), x);

    /// <summary>relu(x) = x &lt; 0 ? 0 : x (NaN stays NaN).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Relu(float x) => Forward(new ReluOp(), x);

    /// <summary>The derivative of <see cref="Relu"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ReluDerivative(float x) => Derivative(new ReluOp(), x);

    /// <summary>x &lt; 0 ? alpha x : x.</summary>
    /// <param name="x">The input.</param>
    /// <param name="alpha">The activation's parameter, as in <see cref="Activation.LeakyRelu"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LeakyRelu(float x, float alpha) => Forward(new LeakyReluOp(alpha), x);

    /// <summary>The derivative of <see cref="LeakyRelu"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    /// <param name="alpha">The activation's parameter, as in <see cref="Activation.LeakyRelu"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LeakyReluDerivative(float x, float alpha) => Derivative(new LeakyReluOp(alpha), x);

    /// <summary>x &gt; 0 ? x : alpha (e^x - 1).</summary>
    /// <param name="x">The input.</param>
    /// <param name="alpha">The activation's parameter, as in <see cref="Activation.Elu"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Elu(float x, float alpha) => Forward(new EluOp(alpha), x);

    /// <summary>The derivative of <see cref="Elu"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    /// <param name="alpha">The activation's parameter, as in <see cref="Activation.Elu"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float EluDerivative(float x, float alpha) => Derivative(new EluOp(alpha), x);

    /// <summary>the self-normalising scaled ELU.</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Selu(float x) => Forward(new SeluOp(), x);

    /// <summary>The derivative of <see cref="Selu"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SeluDerivative(float x) => Derivative(new SeluOp(), x);

    /// <summary>the exact GELU, x Phi(x) (erfc form in the negative tail).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Gelu(float x) => Forward(new GeluOp(), x);

    /// <summary>The derivative of <see cref="Gelu"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluDerivative(float x) => Derivative(new GeluOp(), x);

    /// <summary>the tanh approximation of GELU.</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluTanh(float x) => Forward(new GeluTanhOp(), x);

    /// <summary>The derivative of <see cref="GeluTanh"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluTanhDerivative(float x) => Derivative(new GeluTanhOp(), x);

    /// <summary>silu(x) = x sigmoid(x).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Silu(float x) => Forward(new SiluOp(), x);

    /// <summary>The derivative of <see cref="Silu"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SiluDerivative(float x) => Derivative(new SiluOp(), x);

    /// <summary>x sigmoid(beta x).</summary>
    /// <param name="x">The input.</param>
    /// <param name="beta">The activation's parameter, as in <see cref="Activation.Swish"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Swish(float x, float beta) => Forward(new SwishOp(beta), x);

    /// <summary>The derivative of <see cref="Swish"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    /// <param name="beta">The activation's parameter, as in <see cref="Activation.Swish"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SwishDerivative(float x, float beta) => Derivative(new SwishOp(beta), x);

    /// <summary>x sigmoid(1.702 x).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float QuickGelu(float x) => Forward(new QuickGeluOp(), x);

    /// <summary>The derivative of <see cref="QuickGelu"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float QuickGeluDerivative(float x) => Derivative(new QuickGeluOp(), x);

    /// <summary>ln(1 + e^(beta x)) / beta, x above the threshold.</summary>
    /// <param name="x">The input.</param>
    /// <param name="beta">The activation's parameter, as in <see cref="Activation.Softplus"/>.</param>
    /// <param name="threshold">The activation's parameter, as in <see cref="Activation.Softplus"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Softplus(float x, float beta, float threshold) => Forward(new SoftplusOp(beta, threshold), x);

    /// <summary>The derivative of <see cref="Softplus"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    /// <param name="beta">The activation's parameter, as in <see cref="Activation.Softplus"/>.</param>
    /// <param name="threshold">The activation's parameter, as in <see cref="Activation.Softplus"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SoftplusDerivative(float x, float beta, float threshold) => Derivative(new SoftplusOp(beta, threshold), x);

    /// <summary>x tanh(softplus(x)).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Mish(float x) => Forward(new MishOp(), x);

    /// <summary>The derivative of <see cref="Mish"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MishDerivative(float x) => Derivative(new MishOp(), x);

    /// <summary>relu6(x + 3) / 6.</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HardSigmoid(float x) => Forward(new HardSigmoidOp(), x);

    /// <summary>The derivative of <see cref="HardSigmoid"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HardSigmoidDerivative(float x) => Derivative(new HardSigmoidOp(), x);

    /// <summary>x relu6(x + 3) / 6.</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HardSwish(float x) => Forward(new HardSwishOp(), x);

    /// <summary>The derivative of <see cref="HardSwish"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HardSwishDerivative(float x) => Derivative(new HardSwishOp(), x);

    /// <summary>min(max(x, 0), 6).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Relu6(float x) => Forward(new Relu6Op(), x);

    /// <summary>The derivative of <see cref="Relu6"/> at <paramref name="x"/> (PyTorch's one-sided value at a kink).</summary>
    /// <param name="x">The input.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Relu6Derivative(float x) => Derivative(new Relu6Op(), x);
}
