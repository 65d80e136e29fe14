namespace GpuActivations.Reference;

/// <summary>Identifies an element-wise activation of the scalar reference (see <see cref="ScalarReference"/>).</summary>
/// <remarks>Operations that take parameters read them from the <c>alpha</c>, <c>beta</c> and <c>threshold</c>
/// arguments of <see cref="ScalarReference.Evaluate"/> and <see cref="ScalarReference.Apply"/>; the rest ignore them.</remarks>
public enum ActivationId
{
    /// <summary>Logistic sigmoid 1/(1+e^-x).</summary>
    Sigmoid,

    /// <summary>Hyperbolic tangent.</summary>
    Tanh,

    /// <summary>max(x, 0), propagating NaN and keeping -0.</summary>
    Relu,

    /// <summary>x for x &gt; 0, else alpha·x (parameter: alpha, the negative slope).</summary>
    LeakyRelu,

    /// <summary>x for x &gt; 0, else alpha·(e^x - 1) (parameter: alpha).</summary>
    Elu,

    /// <summary>Scaled ELU with PyTorch's fixed constants.</summary>
    Selu,

    /// <summary>Exact GELU x·Φ(x).</summary>
    Gelu,

    /// <summary>Tanh-approximated GELU ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
    GeluTanh,

    /// <summary>SiLU x·σ(x).</summary>
    Silu,

    /// <summary>Swish x·σ(beta·x) (parameter: beta).</summary>
    Swish,

    /// <summary>x·σ(1.702x).</summary>
    QuickGelu,

    /// <summary>ln(1 + e^(beta·x))/beta, or x where beta·x &gt; threshold (parameters: beta, threshold).</summary>
    Softplus,

    /// <summary>x·tanh(softplus(x)).</summary>
    Mish,

    /// <summary>Piecewise-linear sigmoid: 0 for x ≤ -3, 1 for x ≥ 3, x/6 + ½ between.</summary>
    HardSigmoid,

    /// <summary>x·HardSigmoid(x).</summary>
    HardSwish,

    /// <summary>min(max(x, 0), 6), propagating NaN.</summary>
    Relu6,
}

/// <summary>Identifies a gated linear unit act(gate)·up (see <see cref="ScalarReference.Glu"/>).</summary>
public enum GluId
{
    /// <summary>SiLU gate: silu(gate)·up.</summary>
    SwiGlu,

    /// <summary>Exact GELU gate: gelu(gate)·up.</summary>
    GeGlu,

    /// <summary>Tanh-approximated GELU gate: geluTanh(gate)·up.</summary>
    GeGluTanh,

    /// <summary>ReLU gate: relu(gate)·up.</summary>
    ReGlu,

    /// <summary>gpt-oss's clamped SwiGLU: g·σ(αg)·(u + 1) with g = min(gate, limit), u = clamp(up, ±limit).</summary>
    ClampedSwiGlu,
}
