using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>sigmoid(x) = 1 / (1 + e^-x). e^-x is exact in its argument, so the result is within ~2 ulp.</summary>
internal readonly struct SigmoidOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => VectorMath.Sigmoid(x);
    public static string Name => "sigmoid";
    public static string DeviceBody => "return 1.0f / (1.0f + exp(-x));";
}
