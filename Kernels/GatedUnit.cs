using GpuActivations.Cpu;

namespace GpuActivations;

/// <summary>The gated linear units: y = act(gate) * up, computed in one pass.</summary>
public enum GatedUnitKind
{
    /// <summary>silu(gate) * up (Shazeer, 2020).</summary>
    SwiGlu,
    /// <summary>gelu(gate) * up with the exact GELU.</summary>
    GeGlu,
    /// <summary>gelu_tanh(gate) * up.</summary>
    GeGluTanh,
    /// <summary>relu(gate) * up.</summary>
    ReGlu,
    /// <summary>gpt-oss's SwiGLU: g sigmoid(alpha g) (u + 1) with g = min(gate, limit), u = clamp(up, -limit, limit).</summary>
    ClampedSwiGlu,
    /// <summary>A user-defined gate activation (<see cref="GatedUnit.Custom{TFunction}(TFunction)"/>): f(gate) * up.</summary>
    Custom,
}

/// <summary>
/// How a packed [rows, 2d] gate/up tensor (the output of a fused gate/up projection) lays out each row.
/// </summary>
public enum GluPacking
{
    /// <summary>The row's d gates, then its d ups (Llama-style <c>chunk(2, dim=-1)</c>).</summary>
    Halves,
    /// <summary>Gate and up alternate: gate at even, up at odd positions (gpt-oss's <c>x[..., ::2]</c>, <c>x[..., 1::2]</c>).</summary>
    Interleaved,
}

/// <summary>
/// The gated-unit layouts the backends run: two separate buffers, or one packed [rows, 2*d] buffer with each row's gate
/// half then up half (<see cref="Packed"/>) or gate and up alternating (<see cref="Interleaved"/>).
/// </summary>
internal enum GluLayout { Separate, Packed, Interleaved }

/// <summary>
/// A gated linear unit and its parameters, passed to <see cref="Accelerator.Glu(GatedUnit, BufferView{float}, BufferView{float}, BufferView{float})"/> and the other gated ops.
/// Parameterless units are static properties (<see cref="SwiGlu"/>), the clamped SwiGLU a factory method
/// (<see cref="ClampedSwiGlu"/>). Instances are immutable.
/// </summary>
public sealed class GatedUnit : IEquatable<GatedUnit>
{
    GatedUnit(GatedUnitKind kind, float alpha = 0f, float limit = 0f)
    {
        Kind = kind;
        Alpha = alpha;
        Limit = limit;
    }

    /// <summary>Which unit.</summary>
    public GatedUnitKind Kind { get; }
    /// <summary>The clamped SwiGLU's sigmoid scale (g sigmoid(alpha g)); 0 where unused.</summary>
    public float Alpha { get; }
    /// <summary>The clamped SwiGLU's limit: gate clamped to at most it, up to [-limit, limit]; 0 where unused (no clamp).</summary>
    public float Limit { get; }

    /// <summary>SwiGLU: silu(gate) * up.</summary>
    public static GatedUnit SwiGlu { get; } = new(GatedUnitKind.SwiGlu);
    /// <summary>GEGLU: gelu(gate) * up with the exact (erf) GELU.</summary>
    public static GatedUnit GeGlu { get; } = new(GatedUnitKind.GeGlu);
    /// <summary>GEGLU with GELU's tanh approximation: gelu_tanh(gate) * up.</summary>
    public static GatedUnit GeGluTanh { get; } = new(GatedUnitKind.GeGluTanh);
    /// <summary>ReGLU: relu(gate) * up.</summary>
    public static GatedUnit ReGlu { get; } = new(GatedUnitKind.ReGlu);

    /// <summary>
    /// The clamped SwiGLU of gpt-oss: g = min(gate, limit), u = clamp(up, -limit, limit),
    /// y = g sigmoid(alpha g) (u + 1). NaN is not clamped (it stays NaN, as torch.clamp). Its gradient is 0 where a
    /// clamp is active (gate &gt; limit; |up| &gt; limit) and passes at the limit itself, as torch.clamp's.
    /// </summary>
    /// <param name="alpha">The sigmoid's input scale; finite. gpt-oss uses 1.702.</param>
    /// <param name="limit">The clamp; finite and &gt; 0. gpt-oss uses 7.</param>
    public static GatedUnit ClampedSwiGlu(float alpha = 1.702f, float limit = 7f)
    {
        if (!float.IsFinite(alpha)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be a finite number; gpt-oss uses 1.702.");
        if (!float.IsFinite(limit) || !(limit > 0f))
            throw new ArgumentOutOfRangeException(nameof(limit), limit, "limit must be finite and > 0; gpt-oss uses 7.");
        return new(GatedUnitKind.ClampedSwiGlu, alpha, limit);
    }

    /// <summary>Every unit with its default parameters, in <see cref="GatedUnitKind"/> order.</summary>
    public static IReadOnlyList<GatedUnit> All { get; } = [SwiGlu, GeGlu, GeGluTanh, ReGlu, ClampedSwiGlu()];

    /// <summary>Whether the unit clamps its inputs (and adds 1 to up): <see cref="GatedUnitKind.ClampedSwiGlu"/>.</summary>
    /// <summary>The user function of a <see cref="GatedUnitKind.Custom"/> unit; null for the built-ins.</summary>
    internal Activations.CustomFunction? Function => gateActivation?.Function;

    readonly Activation? gateActivation;

    /// <summary>
    /// A gated unit with a user-defined gate activation: y = f(gate) * up, with its backward, in every layout and storage
    /// type, on the CPU and on ILGPU accelerators (see <see cref="IActivationFunction"/>).
    /// </summary>
    /// <typeparam name="TFunction">The user's struct.</typeparam>
    /// <param name="function">Its value (fields are parameters).</param>
    public static GatedUnit Custom<TFunction>(TFunction function = default) where TFunction : struct, IActivationFunction
        => new(GatedUnitKind.Custom, Activation.Custom(function));

    GatedUnit(GatedUnitKind kind, Activation gate) : this(kind) => gateActivation = gate;

    internal bool IsClamped => Kind == GatedUnitKind.ClampedSwiGlu;

    /// <summary>The activation applied to the (clamped) gate.</summary>
    internal Activation GateActivation => Kind switch
    {
        GatedUnitKind.SwiGlu => Activation.Silu,
        GatedUnitKind.GeGlu => Activation.Gelu,
        GatedUnitKind.GeGluTanh => Activation.GeluTanh,
        GatedUnitKind.ReGlu => Activation.Relu,
        GatedUnitKind.ClampedSwiGlu => Activation.Swish(Alpha),
        GatedUnitKind.Custom => gateActivation!,
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown gated unit."),
    };

    /// <summary>Hands the unit's gate (value and derivative, <see cref="IGate"/>) to <paramref name="visitor"/>: the one switch over kinds on the CPU.</summary>
    internal TResult Accept<TVisitor, TResult>(ref TVisitor visitor) where TVisitor : struct, IGateVisitor<TResult> => Kind switch
    {
        GatedUnitKind.SwiGlu => visitor.Visit(new SiluGate(), 0f),
        GatedUnitKind.GeGlu => visitor.Visit(new GeluGate(), 0f),
        GatedUnitKind.GeGluTanh => visitor.Visit(new GeluTanhGate(), 0f),
        GatedUnitKind.ReGlu => visitor.Visit(new ReluGate(), 0f),
        GatedUnitKind.ClampedSwiGlu => visitor.Visit(new SwishGate(Alpha), Limit),
        GatedUnitKind.Custom => Function!.AcceptGate<TVisitor, TResult>(ref visitor),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown gated unit."),
    };

    /// <inheritdoc/>
    public bool Equals(GatedUnit? other) => other is not null && Kind == other.Kind && Alpha.Equals(other.Alpha) && Limit.Equals(other.Limit)
        && Equals(gateActivation, other.gateActivation);
    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as GatedUnit);
    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Kind, Alpha, Limit, gateActivation);

    /// <summary>The kind and any parameters, e.g. <c>ClampedSwiGlu(alpha=1.702, limit=7)</c>.</summary>
    public override string ToString() => IsClamped ? $"{Kind}(alpha={Alpha}, limit={Limit})" : gateActivation?.ToString() ?? Kind.ToString();
}
