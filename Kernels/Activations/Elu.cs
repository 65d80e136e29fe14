using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>elu(x) = x &gt; 0 ? x : alpha (e^x - 1), with expm1 so small negative x keeps its digits; elu(-inf) = -alpha.</summary>
internal readonly struct EluOp(float alpha) : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.GreaterThan(x, TV.Create(0f)), x, TV.Create(alpha) * VectorMath.Expm1(x));
    public static string Name => "elu";
    public static string DeviceBody => "return x > 0.0f ? x : alpha * expm1(x);";
}
