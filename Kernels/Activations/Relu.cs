using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>relu(x) = x &lt; 0 ? 0 : x. Written as a select, not max(x, 0), so NaN stays NaN.</summary>
internal readonly struct ReluOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => TV.Select(TV.LessThan(x, TV.Create(0f)), TV.Create(0f), x);
    public static string Name => "relu";
    public static string DeviceBody => "return x < 0.0f ? 0.0f : x;";
}
