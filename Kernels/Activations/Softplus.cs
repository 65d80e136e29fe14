using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>
/// softplus(x) = ln(1 + e^(beta x)) / beta, and x where beta x &gt; threshold (PyTorch's definition and defaults
/// beta = 1, threshold = 20). beta x is carried exactly (hi + lo) into the exponential.
/// </summary>
internal readonly struct SoftplusOp(float beta, float threshold) : IActivationOp
{
    // A call of its own, fully optimised: inlined into the loop it would exhaust the JIT's inlining budget.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV hi = VectorMath.TwoProduct(TV.Create(beta), x, out TV lo);
        TV soft = VectorMath.Log1pNonNegative(VectorMath.Exp(hi, lo)) / TV.Create(beta);
        return TV.Select(TV.GreaterThan(hi, TV.Create(threshold)), x, soft);
    }
    public static string Name => "softplus";
    public static string DeviceBody =>
        "float lo; float hi = ga_two_product(beta, x, &lo);" +
        " if (hi > threshold) return x;" +
        " return log1p(ga_exp_hilo(hi, lo)) / beta;";
}
