using System.Runtime.CompilerServices;
using GpuActivations.Cpu;

namespace GpuActivations.Activations;

/// <summary>tanh(x); see <see cref="VectorMath.Tanh{TV}"/> for the two regimes.</summary>
internal readonly struct TanhOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => VectorMath.Tanh(x);
    public static string Name => "tanh";
    public static string DeviceBody => "return tanh(x);";
}
