using System.Runtime.CompilerServices;
using GpuActivations.Activations;
using GpuActivations.Cpu;

namespace GpuActivations.Tests.Gates;

/// <summary>
/// A user-defined activation, written as a user of the library would: tanhshrink scaled, f(x) = x - scale tanh(x),
/// f'(x) = 1 - scale (1 - tanh(x)^2), on the library's own tanh. The compile gates close every kernel family over it, so
/// a user's struct (its field a kernel parameter, its math the library's) is proved to compile for PTX and OpenCL C.
/// </summary>
/// <param name="scale">The factor on tanh; 1 is PyTorch's Tanhshrink.</param>
internal readonly struct TanhShrinkOp(float scale) : IActivationOp
{
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV>
        => TV.Fma(TV.Create(-scale), VectorMath.Tanh(x), x);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV>
    {
        TV t = VectorMath.Tanh(x);
        return TV.Fma(TV.Create(scale) * t, t, TV.Create(1f - scale));
    }

    /// <inheritdoc/>
    public static string Name => "tanhshrink";

    /// <inheritdoc/>
    public static string DeviceBody => "return x - alpha * tanh(x);";

    /// <inheritdoc/>
    public static string DeviceDerivativeBody => "float t = tanh(x); return 1.0f - alpha + alpha * t * t;";
}
