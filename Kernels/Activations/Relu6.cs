using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>relu6(x) = min(max(x, 0), 6), as selects so NaN stays NaN.</summary>
internal readonly struct Relu6Op : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Select(TV.LessThan(x, TV.Create(0f)), TV.Create(0f), TV.Select(TV.GreaterThan(x, TV.Create(6f)), TV.Create(6f), x));
    public static string Name => "relu6";
    public static string DeviceBody => "return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);";
}
