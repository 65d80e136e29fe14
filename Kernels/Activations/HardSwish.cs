using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>hard_swish(x) = x relu6(x + 3) / 6 (Howard et al., MobileNetV3; PyTorch's hardswish).</summary>
internal readonly struct HardSwishOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV mid = x * (x + TV.Create(3f)) / TV.Create(6f);
        return TV.Select(TV.LessThanOrEqual(x, TV.Create(-3f)), TV.Create(0f), TV.Select(TV.GreaterThanOrEqual(x, TV.Create(3f)), x, mid));
    }
    public static string Name => "hard_swish";
    public static string DeviceBody => "return x <= -3.0f ? 0.0f : (x >= 3.0f ? x : x * (x + 3.0f) / 6.0f);";
}
