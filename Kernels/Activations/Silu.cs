using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>silu(x) = x sigmoid(x); silu(-inf) = -0, the limit.</summary>
internal readonly struct SiluOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => VectorMath.TimesSigmoid(x);
    public static string Name => "silu";
    public static string DeviceBody => "return ga_times_sigmoid(x, x, 0.0f);";
}
