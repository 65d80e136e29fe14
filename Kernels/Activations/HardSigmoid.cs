using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>hard_sigmoid(x) = relu6(x + 3) / 6 (PyTorch). (x + 3) / 6 rather than x/6 + 1/2: exact near -3.</summary>
internal readonly struct HardSigmoidOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV mid = (x + TV.Create(3f)) / TV.Create(6f);
        return TV.Select(TV.LessThanOrEqual(x, TV.Create(-3f)), TV.Create(0f), TV.Select(TV.GreaterThanOrEqual(x, TV.Create(3f)), TV.Create(1f), mid));
    }
    public static string Name => "hard_sigmoid";
    public static string DeviceBody => "return x <= -3.0f ? 0.0f : (x >= 3.0f ? 1.0f : (x + 3.0f) / 6.0f);";
}
