using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>The storage types a limit row runs in.</summary>
public enum Storage
{
    /// <summary>float.</summary>
    Float,
    /// <summary>IEEE binary16.</summary>
    Half,
    /// <summary>bfloat16.</summary>
    BFloat16,
}

/// <summary>
/// One row of the limit table: an activation (named as <see cref="Activation.ToString"/> names it in <see cref="OpTable"/>),
/// forward or derivative (dy = 1), in one storage type, and the exact result on each of <see cref="LimitTests.Inputs"/>.
/// </summary>
public sealed record LimitCase(Storage Storage, string Op, bool Derivative, float[] Expected)
{
    /// <summary>Names the test case.</summary>
    public override string ToString() => $"{Storage} {Op}{(Derivative ? "'" : "")}";
}

/// <summary>
/// Exact limits and signs of zero: every activation, forward and derivative, on +-0, +-the smallest subnormal, +-the
/// largest finite value, +-inf and NaN of each storage type, against exact expected bits (any NaN for NaN), not an ulp
/// bound. The values are the mathematical results correctly rounded to float (16-bit storage: the float result at the
/// widened input, rounded once to the format, as docs/numerics.md defines it): tanh(+-inf) = +-1, sigmoid(-inf) = +0,
/// silu(-inf) = gelu(-inf) = -0, elu(-inf) = -alpha, and an odd or sign-keeping function keeps -0 (tanh, elu, selu,
/// gelu, hard swish below -3). Derivatives that approach 0 from below (x g(x) with g a sigmoid or the normal CDF, mish)
/// give -0 at -inf and at the most negative finite input.
/// </summary>
public sealed class LimitTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    const float Inf = float.PositiveInfinity;
    const float NaN = float.NaN;

    /// <summary>The inputs of every row, per storage type: +0, -0, +-smallest subnormal, +-largest finite, +-inf, NaN.</summary>
    public static float[] Inputs(Storage storage)
    {
        float tiny = storage switch { Storage.Float => float.Epsilon, Storage.Half => 5.9604645E-08f, _ => BitConverter.UInt32BitsToSingle(1u << 16) };
        float max = storage switch { Storage.Float => float.MaxValue, Storage.Half => 65504f, _ => BitConverter.UInt32BitsToSingle(0x7F7Fu << 16) };
        return [0f, -0f, tiny, -tiny, max, -max, float.PositiveInfinity, float.NegativeInfinity, float.NaN];
    }

    /// <summary>The table.</summary>
    public static IReadOnlyList<LimitCase> Table { get; } =
    [
        new(Storage.Float, "Sigmoid", false, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Float, "Tanh", false, [0f, -0f, 1E-45f, -1E-45f, 1f, -1f, 1f, -1f, NaN]),
        new(Storage.Float, "Relu", false, [0f, -0f, 1E-45f, 0f, 3.4028235E+38f, 0f, Inf, 0f, NaN]),
        new(Storage.Float, "LeakyRelu(alpha=0.01)", false, [0f, -0f, 1E-45f, -0f, 3.4028235E+38f, -3.4028233E+36f, Inf, -Inf, NaN]),
        new(Storage.Float, "LeakyRelu(alpha=0.2)", false, [0f, -0f, 1E-45f, -0f, 3.4028235E+38f, -6.805647E+37f, Inf, -Inf, NaN]),
        new(Storage.Float, "Elu(alpha=1)", false, [0f, -0f, 1E-45f, -1E-45f, 3.4028235E+38f, -1f, Inf, -1f, NaN]),
        new(Storage.Float, "Elu(alpha=0.5)", false, [0f, -0f, 1E-45f, -0f, 3.4028235E+38f, -0.5f, Inf, -0.5f, NaN]),
        new(Storage.Float, "Selu", false, [0f, -0f, 1E-45f, -3E-45f, Inf, -1.7580993f, Inf, -1.7580993f, NaN]),
        new(Storage.Float, "Gelu", false, [0f, -0f, 0f, -0f, 3.4028235E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.Float, "GeluTanh", false, [0f, -0f, 0f, -0f, 3.4028235E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.Float, "Silu", false, [0f, -0f, 0f, -0f, 3.4028235E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.Float, "Swish(beta=1)", false, [0f, -0f, 0f, -0f, 3.4028235E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.Float, "Swish(beta=1.5)", false, [0f, -0f, 0f, -0f, 3.4028235E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.Float, "QuickGelu", false, [0f, -0f, 0f, -0f, 3.4028235E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.Float, "Softplus(beta=1, threshold=20)", false, [0.6931472f, 0.6931472f, 0.6931472f, 0.6931472f, 3.4028235E+38f, 0f, Inf, 0f, NaN]),
        new(Storage.Float, "Softplus(beta=2, threshold=10)", false, [0.3465736f, 0.3465736f, 0.3465736f, 0.3465736f, 3.4028235E+38f, 0f, Inf, 0f, NaN]),
        new(Storage.Float, "Mish", false, [0f, -0f, 1E-45f, -1E-45f, 3.4028235E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.Float, "HardSigmoid", false, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Float, "HardSwish", false, [0f, -0f, 0f, -0f, 3.4028235E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.Float, "Relu6", false, [0f, -0f, 1E-45f, 0f, 6f, 0f, 6f, 0f, NaN]),
        new(Storage.Float, "Sigmoid", true, [0.25f, 0.25f, 0.25f, 0.25f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.Float, "Tanh", true, [1f, 1f, 1f, 1f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.Float, "Relu", true, [0f, 0f, 1f, 0f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Float, "LeakyRelu(alpha=0.01)", true, [0.01f, 0.01f, 1f, 0.01f, 1f, 0.01f, 1f, 0.01f, NaN]),
        new(Storage.Float, "LeakyRelu(alpha=0.2)", true, [0.2f, 0.2f, 1f, 0.2f, 1f, 0.2f, 1f, 0.2f, NaN]),
        new(Storage.Float, "Elu(alpha=1)", true, [1f, 1f, 1f, 1f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Float, "Elu(alpha=0.5)", true, [0.5f, 0.5f, 1f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Float, "Selu", true, [1.7580993f, 1.7580993f, 1.050701f, 1.7580993f, 1.050701f, 0f, 1.050701f, 0f, NaN]),
        new(Storage.Float, "Gelu", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Float, "GeluTanh", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Float, "Silu", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Float, "Swish(beta=1)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Float, "Swish(beta=1.5)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Float, "QuickGelu", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Float, "Softplus(beta=1, threshold=20)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Float, "Softplus(beta=2, threshold=10)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Float, "Mish", true, [0.6f, 0.6f, 0.6f, 0.6f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Float, "HardSigmoid", true, [0.16666667f, 0.16666667f, 0.16666667f, 0.16666667f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.Float, "HardSwish", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Float, "Relu6", true, [0f, 0f, 1f, 0f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.Half, "Sigmoid", false, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Half, "Tanh", false, [0f, -0f, 5.9604645E-08f, -5.9604645E-08f, 1f, -1f, 1f, -1f, NaN]),
        new(Storage.Half, "Relu", false, [0f, -0f, 5.9604645E-08f, 0f, 65504f, 0f, Inf, 0f, NaN]),
        new(Storage.Half, "LeakyRelu(alpha=0.01)", false, [0f, -0f, 5.9604645E-08f, -0f, 65504f, -655f, Inf, -Inf, NaN]),
        new(Storage.Half, "LeakyRelu(alpha=0.2)", false, [0f, -0f, 5.9604645E-08f, -0f, 65504f, -13104f, Inf, -Inf, NaN]),
        new(Storage.Half, "Elu(alpha=1)", false, [0f, -0f, 5.9604645E-08f, -5.9604645E-08f, 65504f, -1f, Inf, -1f, NaN]),
        new(Storage.Half, "Elu(alpha=0.5)", false, [0f, -0f, 5.9604645E-08f, -0f, 65504f, -0.5f, Inf, -0.5f, NaN]),
        new(Storage.Half, "Selu", false, [0f, -0f, 5.9604645E-08f, -1.1920929E-07f, Inf, -1.7578125f, Inf, -1.7578125f, NaN]),
        new(Storage.Half, "Gelu", false, [0f, -0f, 0f, -0f, 65504f, -0f, Inf, -0f, NaN]),
        new(Storage.Half, "GeluTanh", false, [0f, -0f, 0f, -0f, 65504f, -0f, Inf, -0f, NaN]),
        new(Storage.Half, "Silu", false, [0f, -0f, 0f, -0f, 65504f, -0f, Inf, -0f, NaN]),
        new(Storage.Half, "Swish(beta=1)", false, [0f, -0f, 0f, -0f, 65504f, -0f, Inf, -0f, NaN]),
        new(Storage.Half, "Swish(beta=1.5)", false, [0f, -0f, 0f, -0f, 65504f, -0f, Inf, -0f, NaN]),
        new(Storage.Half, "QuickGelu", false, [0f, -0f, 0f, -0f, 65504f, -0f, Inf, -0f, NaN]),
        new(Storage.Half, "Softplus(beta=1, threshold=20)", false, [0.6933594f, 0.6933594f, 0.6933594f, 0.6933594f, 65504f, 0f, Inf, 0f, NaN]),
        new(Storage.Half, "Softplus(beta=2, threshold=10)", false, [0.3466797f, 0.3466797f, 0.3466797f, 0.3466797f, 65504f, 0f, Inf, 0f, NaN]),
        new(Storage.Half, "Mish", false, [0f, -0f, 5.9604645E-08f, -5.9604645E-08f, 65504f, -0f, Inf, -0f, NaN]),
        new(Storage.Half, "HardSigmoid", false, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Half, "HardSwish", false, [0f, -0f, 0f, -0f, 65504f, -0f, Inf, -0f, NaN]),
        new(Storage.Half, "Relu6", false, [0f, -0f, 5.9604645E-08f, 0f, 6f, 0f, 6f, 0f, NaN]),
        new(Storage.Half, "Sigmoid", true, [0.25f, 0.25f, 0.25f, 0.25f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.Half, "Tanh", true, [1f, 1f, 1f, 1f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.Half, "Relu", true, [0f, 0f, 1f, 0f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Half, "LeakyRelu(alpha=0.01)", true, [0.010002136f, 0.010002136f, 1f, 0.010002136f, 1f, 0.010002136f, 1f, 0.010002136f, NaN]),
        new(Storage.Half, "LeakyRelu(alpha=0.2)", true, [0.19995117f, 0.19995117f, 1f, 0.19995117f, 1f, 0.19995117f, 1f, 0.19995117f, NaN]),
        new(Storage.Half, "Elu(alpha=1)", true, [1f, 1f, 1f, 1f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Half, "Elu(alpha=0.5)", true, [0.5f, 0.5f, 1f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Half, "Selu", true, [1.7578125f, 1.7578125f, 1.0507812f, 1.7578125f, 1.0507812f, 0f, 1.0507812f, 0f, NaN]),
        new(Storage.Half, "Gelu", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Half, "GeluTanh", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Half, "Silu", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Half, "Swish(beta=1)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Half, "Swish(beta=1.5)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Half, "QuickGelu", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Half, "Softplus(beta=1, threshold=20)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Half, "Softplus(beta=2, threshold=10)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Half, "Mish", true, [0.60009766f, 0.60009766f, 0.60009766f, 0.60009766f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.Half, "HardSigmoid", true, [0.16662598f, 0.16662598f, 0.16662598f, 0.16662598f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.Half, "HardSwish", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.Half, "Relu6", true, [0f, 0f, 1f, 0f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.BFloat16, "Sigmoid", false, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.BFloat16, "Tanh", false, [0f, -0f, 9.1835E-41f, -9.1835E-41f, 1f, -1f, 1f, -1f, NaN]),
        new(Storage.BFloat16, "Relu", false, [0f, -0f, 9.1835E-41f, 0f, 3.3895314E+38f, 0f, Inf, 0f, NaN]),
        new(Storage.BFloat16, "LeakyRelu(alpha=0.01)", false, [0f, -0f, 9.1835E-41f, -0f, 3.3895314E+38f, -3.3853776E+36f, Inf, -Inf, NaN]),
        new(Storage.BFloat16, "LeakyRelu(alpha=0.2)", false, [0f, -0f, 9.1835E-41f, -0f, 3.3895314E+38f, -6.779063E+37f, Inf, -Inf, NaN]),
        new(Storage.BFloat16, "Elu(alpha=1)", false, [0f, -0f, 9.1835E-41f, -9.1835E-41f, 3.3895314E+38f, -1f, Inf, -1f, NaN]),
        new(Storage.BFloat16, "Elu(alpha=0.5)", false, [0f, -0f, 9.1835E-41f, -0f, 3.3895314E+38f, -0.5f, Inf, -0.5f, NaN]),
        new(Storage.BFloat16, "Selu", false, [0f, -0f, 9.1835E-41f, -1.83671E-40f, Inf, -1.7578125f, Inf, -1.7578125f, NaN]),
        new(Storage.BFloat16, "Gelu", false, [0f, -0f, 0f, -0f, 3.3895314E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.BFloat16, "GeluTanh", false, [0f, -0f, 0f, -0f, 3.3895314E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.BFloat16, "Silu", false, [0f, -0f, 0f, -0f, 3.3895314E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.BFloat16, "Swish(beta=1)", false, [0f, -0f, 0f, -0f, 3.3895314E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.BFloat16, "Swish(beta=1.5)", false, [0f, -0f, 0f, -0f, 3.3895314E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.BFloat16, "QuickGelu", false, [0f, -0f, 0f, -0f, 3.3895314E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.BFloat16, "Softplus(beta=1, threshold=20)", false, [0.69140625f, 0.69140625f, 0.69140625f, 0.69140625f, 3.3895314E+38f, 0f, Inf, 0f, NaN]),
        new(Storage.BFloat16, "Softplus(beta=2, threshold=10)", false, [0.34570312f, 0.34570312f, 0.34570312f, 0.34570312f, 3.3895314E+38f, 0f, Inf, 0f, NaN]),
        new(Storage.BFloat16, "Mish", false, [0f, -0f, 9.1835E-41f, -9.1835E-41f, 3.3895314E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.BFloat16, "HardSigmoid", false, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.BFloat16, "HardSwish", false, [0f, -0f, 0f, -0f, 3.3895314E+38f, -0f, Inf, -0f, NaN]),
        new(Storage.BFloat16, "Relu6", false, [0f, -0f, 9.1835E-41f, 0f, 6f, 0f, 6f, 0f, NaN]),
        new(Storage.BFloat16, "Sigmoid", true, [0.25f, 0.25f, 0.25f, 0.25f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.BFloat16, "Tanh", true, [1f, 1f, 1f, 1f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.BFloat16, "Relu", true, [0f, 0f, 1f, 0f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.BFloat16, "LeakyRelu(alpha=0.01)", true, [0.010009766f, 0.010009766f, 1f, 0.010009766f, 1f, 0.010009766f, 1f, 0.010009766f, NaN]),
        new(Storage.BFloat16, "LeakyRelu(alpha=0.2)", true, [0.20019531f, 0.20019531f, 1f, 0.20019531f, 1f, 0.20019531f, 1f, 0.20019531f, NaN]),
        new(Storage.BFloat16, "Elu(alpha=1)", true, [1f, 1f, 1f, 1f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.BFloat16, "Elu(alpha=0.5)", true, [0.5f, 0.5f, 1f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.BFloat16, "Selu", true, [1.7578125f, 1.7578125f, 1.046875f, 1.7578125f, 1.046875f, 0f, 1.046875f, 0f, NaN]),
        new(Storage.BFloat16, "Gelu", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.BFloat16, "GeluTanh", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.BFloat16, "Silu", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.BFloat16, "Swish(beta=1)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.BFloat16, "Swish(beta=1.5)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.BFloat16, "QuickGelu", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.BFloat16, "Softplus(beta=1, threshold=20)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.BFloat16, "Softplus(beta=2, threshold=10)", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.BFloat16, "Mish", true, [0.6015625f, 0.6015625f, 0.6015625f, 0.6015625f, 1f, -0f, 1f, -0f, NaN]),
        new(Storage.BFloat16, "HardSigmoid", true, [0.16699219f, 0.16699219f, 0.16699219f, 0.16699219f, 0f, 0f, 0f, 0f, NaN]),
        new(Storage.BFloat16, "HardSwish", true, [0.5f, 0.5f, 0.5f, 0.5f, 1f, 0f, 1f, 0f, NaN]),
        new(Storage.BFloat16, "Relu6", true, [0f, 0f, 1f, 0f, 0f, 0f, 0f, 0f, NaN]),
    ];

    static IEnumerable<LimitCase> Cases => Table;

    /// <summary>Bits of a result in its storage type (float: all 32; 16-bit types: the 16 bits of the format).</summary>
    static int Bits(Storage storage, float value) => storage switch
    {
        Storage.Float => BitConverter.SingleToInt32Bits(value),
        Storage.Half => BitConverter.HalfToUInt16Bits((Half)value),
        _ => (int)(BitConverter.SingleToUInt32Bits(value) >> 16),
    };

    float[] Evaluate(LimitCase row, float[] x)
    {
        var activation = OpTable.Activations.Single(c => c.Activation.ToString() == row.Op).Activation;
        float[] ones = Enumerable.Repeat(1f, x.Length).ToArray();
        switch (row.Storage)
        {
            case Storage.Float:
            {
                using var xb = Acc.Allocate<float>(x);
                using var dyb = Acc.Allocate<float>(ones);
                using var yb = Acc.Allocate<float>(x.Length);
                if (row.Derivative) Acc.ActivationBackward(activation, xb, dyb, yb); else Acc.Apply(activation, xb, yb);
                return yb.ToArray();
            }
            case Storage.Half:
            {
                using var xb = Acc.Allocate<Half>(x.Select(v => (Half)v).ToArray());
                using var dyb = Acc.Allocate<Half>(ones.Select(v => (Half)v).ToArray());
                using var yb = Acc.Allocate<Half>(x.Length);
                if (row.Derivative) Acc.ActivationBackward(activation, xb, dyb, yb); else Acc.Apply(activation, xb, yb);
                return yb.ToArray().Select(v => (float)v).ToArray();
            }
            default:
            {
                using var xb = Acc.Allocate<BFloat16>(x.Select(v => BFloat16.FromBits((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16))).ToArray());
                using var dyb = Acc.Allocate<BFloat16>(ones.Select(v => BFloat16.FromBits((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16))).ToArray());
                using var yb = Acc.Allocate<BFloat16>(x.Length);
                if (row.Derivative) Acc.ActivationBackward(activation, xb, dyb, yb); else Acc.Apply(activation, xb, yb);
                return yb.ToArray().Select(v => BitConverter.UInt32BitsToSingle((uint)v.Bits << 16)).ToArray();
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void ExactBits(LimitCase row)
    {
        float[] x = Inputs(row.Storage);
        float[] y = Evaluate(row, x);
        var wrong = new List<string>();
        for (int i = 0; i < x.Length; i++)
        {
            float e = row.Expected[i];
            bool ok = float.IsNaN(e) ? float.IsNaN(y[i]) : Bits(row.Storage, y[i]) == Bits(row.Storage, e);
            if (!ok) wrong.Add($"x = {x[i]:R}: got {y[i]:R} (0x{Bits(row.Storage, y[i]):X}), expected {e:R} (0x{Bits(row.Storage, e):X})");
        }
        if (wrong.Count > 0) Assert.Fail($"{row} on {Kind}:\n  " + string.Join("\n  ", wrong));
    }

    [Test]
    public void TableCoversEveryOpBothWaysInEveryStorage()
    {
        foreach (Storage s in Enum.GetValues<Storage>())
        foreach (bool d in new[] { false, true })
        foreach (var op in OpTable.Activations)
            Assert.That(Table.Count(r => r.Storage == s && r.Derivative == d && r.Op == op.Activation.ToString()), Is.EqualTo(1), $"{s} {op} {d}");
    }

    [Test]
    public void TableAgreesWithTheReferenceUpToTheSignOfZero()
    {
        // The table is written out; this guards it against typos: each float entry is the double reference rounded to
        // float, except the signs of zero the reference does not decide (derivatives approaching 0 from below).
        foreach (var row in Table.Where(r => r.Storage == Storage.Float))
        {
            var op = OpTable.Activations.Single(c => c.Activation.ToString() == row.Op);
            var a = op.Activation;
            float[] x = Inputs(Storage.Float);
            for (int i = 0; i < x.Length; i++)
            {
                double r = row.Derivative ? ScalarReference.Derivative(op.Reference, x[i], a.Alpha, a.Beta, a.Threshold) : op.Expected(x[i]);
                float e = row.Expected[i];
                bool same = float.IsNaN(e) ? double.IsNaN(r) : (float)r == e;
                if (!same) Assert.Fail($"{row} at {x[i]:R}: table {e:R}, reference {(float)r:R}");
            }
        }
    }
}
