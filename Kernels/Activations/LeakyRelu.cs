using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>leaky_relu(x) = x &lt; 0 ? alpha x : x (NaN stays NaN).</summary>
internal readonly struct LeakyReluOp(float alpha) : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => TV.Select(TV.LessThan(x, TV.Create(0f)), x * TV.Create(alpha), x);
    public static string Name => "leaky_relu";
    public static string DeviceBody => "return x < 0.0f ? alpha * x : x;";
}
