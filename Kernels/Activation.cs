using GpuActivations.Activations;

namespace GpuActivations;

/// <summary>The elementwise activations the library computes.</summary>
public enum ActivationKind
{
    /// <summary>1 / (1 + e^-x).</summary>
    Sigmoid,
    /// <summary>Hyperbolic tangent.</summary>
    Tanh,
    /// <summary>max(x, 0), NaN propagating.</summary>
    Relu,
    /// <summary>x &lt; 0 ? alpha x : x.</summary>
    LeakyRelu,
    /// <summary>x &gt; 0 ? x : alpha (e^x - 1).</summary>
    Elu,
    /// <summary>Scaled ELU with the self-normalising constants.</summary>
    Selu,
    /// <summary>x Phi(x), the exact (erf) GELU.</summary>
    Gelu,
    /// <summary>The tanh approximation of GELU.</summary>
    GeluTanh,
    /// <summary>x sigmoid(x), also called swish-1.</summary>
    Silu,
    /// <summary>x sigmoid(beta x).</summary>
    Swish,
    /// <summary>x sigmoid(1.702 x).</summary>
    QuickGelu,
    /// <summary>ln(1 + e^(beta x)) / beta, linear above the threshold.</summary>
    Softplus,
    /// <summary>x tanh(softplus(x)).</summary>
    Mish,
    /// <summary>relu6(x + 3) / 6.</summary>
    HardSigmoid,
    /// <summary>x relu6(x + 3) / 6.</summary>
    HardSwish,
    /// <summary>min(max(x, 0), 6).</summary>
    Relu6,
    /// <summary>A user-defined function (<see cref="Activation.Custom{TFunction}(TFunction)"/>).</summary>
    Custom,
}

/// <summary>
/// An elementwise activation and its parameters, passed to <see cref="Accelerator.Apply(Activation, BufferView{float}, BufferView{float})"/> or
/// <see cref="CpuKernels.Apply(Activation, ReadOnlySpan{float}, Span{float})"/>. Parameterless ones are static properties (<see cref="Gelu"/>), the others
/// factory methods with PyTorch's defaults (<see cref="LeakyRelu"/>). Instances are immutable.
/// </summary>
public sealed class Activation : IEquatable<Activation>
{
    Activation(ActivationKind kind, float alpha = 0f, float beta = 0f, float threshold = 0f)
    {
        Kind = kind;
        Alpha = alpha;
        Beta = beta;
        Threshold = threshold;
    }

    /// <summary>The user function of a <see cref="ActivationKind.Custom"/> activation; null for the built-ins.</summary>
    internal CustomFunction? Function { get; private init; }

    /// <summary>
    /// A user-defined activation: <paramref name="function"/>'s forward and derivative (plain C# on one float) run through
    /// every elementwise and backward op on the CPU and on ILGPU accelerators, specialised for the struct. See
    /// <see cref="IActivationFunction"/> for what the code may do.
    /// </summary>
    /// <typeparam name="TFunction">The user's struct.</typeparam>
    /// <param name="function">Its value (fields are parameters).</param>
    public static Activation Custom<TFunction>(TFunction function = default) where TFunction : struct, IActivationFunction
        => new(ActivationKind.Custom) { Function = new CustomFunction<TFunction>(function) };

    /// <summary>Which activation.</summary>
    public ActivationKind Kind { get; }
    /// <summary>The negative-side slope or scale (Leaky ReLU, ELU); 0 where unused.</summary>
    public float Alpha { get; }
    /// <summary>The input scale (Swish, Softplus); 0 where unused.</summary>
    public float Beta { get; }
    /// <summary>Softplus: above beta x &gt; threshold the result is x; 0 where unused.</summary>
    public float Threshold { get; }

    /// <summary>sigmoid(x) = 1 / (1 + e^-x).</summary>
    public static Activation Sigmoid { get; } = new(ActivationKind.Sigmoid);
    /// <summary>tanh(x).</summary>
    public static Activation Tanh { get; } = new(ActivationKind.Tanh);
    /// <summary>relu(x) = x &lt; 0 ? 0 : x (NaN stays NaN).</summary>
    public static Activation Relu { get; } = new(ActivationKind.Relu);
    /// <summary>selu(x) = 1.0507 (x &gt; 0 ? x : 1.6733 (e^x - 1)).</summary>
    public static Activation Selu { get; } = new(ActivationKind.Selu);
    /// <summary>The exact GELU, x Phi(x) = x (1 + erf(x / sqrt 2)) / 2.</summary>
    public static Activation Gelu { get; } = new(ActivationKind.Gelu);
    /// <summary>GELU's tanh approximation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
    public static Activation GeluTanh { get; } = new(ActivationKind.GeluTanh);
    /// <summary>silu(x) = x sigmoid(x).</summary>
    public static Activation Silu { get; } = new(ActivationKind.Silu);
    /// <summary>quick_gelu(x) = x sigmoid(1.702 x).</summary>
    public static Activation QuickGelu { get; } = new(ActivationKind.QuickGelu);
    /// <summary>mish(x) = x tanh(softplus(x)).</summary>
    public static Activation Mish { get; } = new(ActivationKind.Mish);
    /// <summary>hard_sigmoid(x) = relu6(x + 3) / 6.</summary>
    public static Activation HardSigmoid { get; } = new(ActivationKind.HardSigmoid);
    /// <summary>hard_swish(x) = x relu6(x + 3) / 6.</summary>
    public static Activation HardSwish { get; } = new(ActivationKind.HardSwish);
    /// <summary>relu6(x) = min(max(x, 0), 6).</summary>
    public static Activation Relu6 { get; } = new(ActivationKind.Relu6);

    /// <summary>leaky_relu(x) = x &lt; 0 ? alpha x : x.</summary>
    /// <param name="alpha">The negative-side slope; finite. PyTorch's default is 0.01.</param>
    public static Activation LeakyRelu(float alpha = 0.01f) => new(ActivationKind.LeakyRelu, alpha: Finite(alpha));

    /// <summary>elu(x) = x &gt; 0 ? x : alpha (e^x - 1).</summary>
    /// <param name="alpha">The negative saturation value; finite. Default 1.</param>
    public static Activation Elu(float alpha = 1f) => new(ActivationKind.Elu, alpha: Finite(alpha));

    /// <summary>swish(x) = x sigmoid(beta x); beta = 1 is SiLU.</summary>
    /// <param name="beta">The input scale; finite. Default 1.</param>
    public static Activation Swish(float beta = 1f) => new(ActivationKind.Swish, beta: Finite(beta));

    /// <summary>softplus(x) = ln(1 + e^(beta x)) / beta, or x where beta x &gt; threshold (PyTorch).</summary>
    /// <param name="beta">The input scale; finite and non-zero. Default 1.</param>
    /// <param name="threshold">Above beta x &gt; threshold the result is x; not NaN. Default 20.</param>
    public static Activation Softplus(float beta = 1f, float threshold = 20f)
    {
        if (Finite(beta) == 0f) throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be non-zero: softplus divides by it.");
        if (float.IsNaN(threshold)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "threshold must not be NaN; PyTorch's default is 20.");
        return new(ActivationKind.Softplus, beta: beta, threshold: threshold);
    }

    /// <summary>
    /// Whether the derivative can be computed from the output y = f(x) alone, exactly and more cheaply than from x
    /// (<see cref="Accelerator.ActivationBackwardFromOutput(Activation, BufferView{float}, BufferView{float}, BufferView{float})"/>): sigmoid (y (1 - y)), tanh (1 - y^2), ReLU, ReLU6, SELU,
    /// and Leaky ReLU and ELU with alpha &gt; 0 (the output then has the input's sign).
    /// </summary>
    public bool HasOutputDerivative => Kind switch
    {
        ActivationKind.Sigmoid or ActivationKind.Tanh or ActivationKind.Relu or ActivationKind.Relu6 or ActivationKind.Selu => true,
        ActivationKind.LeakyRelu or ActivationKind.Elu => Alpha > 0f,
        _ => false,
    };

    /// <summary>Every activation with its default parameters, in <see cref="ActivationKind"/> order.</summary>
    public static IReadOnlyList<Activation> All { get; } =
    [
        Sigmoid, Tanh, Relu, LeakyRelu(), Elu(), Selu, Gelu, GeluTanh, Silu, Swish(), QuickGelu, Softplus(), Mish,
        HardSigmoid, HardSwish, Relu6,
    ];

    static float Finite(float value, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(value))] string? name = null)
        => float.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite number.");

    /// <summary>Hands the activation's operator struct to <paramref name="visitor"/>: the one switch over kinds.</summary>
    internal TResult Accept<TVisitor, TResult>(ref TVisitor visitor) where TVisitor : struct, IActivationVisitor<TResult> => Kind switch
    {
        ActivationKind.Sigmoid => visitor.Visit(new SigmoidOp()),
        ActivationKind.Tanh => visitor.Visit(new TanhOp()),
        ActivationKind.Relu => visitor.Visit(new ReluOp()),
        ActivationKind.LeakyRelu => visitor.Visit(new LeakyReluOp(Alpha)),
        ActivationKind.Elu => visitor.Visit(new EluOp(Alpha)),
        ActivationKind.Selu => visitor.Visit(new SeluOp()),
        ActivationKind.Gelu => visitor.Visit(new GeluOp()),
        ActivationKind.GeluTanh => visitor.Visit(new GeluTanhOp()),
        ActivationKind.Silu => visitor.Visit(new SiluOp()),
        ActivationKind.Swish => visitor.Visit(new SwishOp(Beta)),
        ActivationKind.QuickGelu => visitor.Visit(new QuickGeluOp()),
        ActivationKind.Softplus => visitor.Visit(new SoftplusOp(Beta, Threshold)),
        ActivationKind.Mish => visitor.Visit(new MishOp()),
        ActivationKind.HardSigmoid => visitor.Visit(new HardSigmoidOp()),
        ActivationKind.HardSwish => visitor.Visit(new HardSwishOp()),
        ActivationKind.Relu6 => visitor.Visit(new Relu6Op()),
        ActivationKind.Custom => Function!.Accept<TVisitor, TResult>(ref visitor),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown activation."),
    };

    /// <inheritdoc/>
    public bool Equals(Activation? other) => other is not null && Kind == other.Kind
        && Alpha.Equals(other.Alpha) && Beta.Equals(other.Beta) && Threshold.Equals(other.Threshold) && Equals(Function, other.Function);
    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as Activation);
    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Kind, Alpha, Beta, Threshold, Function);

    /// <summary>The kind and any parameters, e.g. <c>LeakyRelu(alpha=0.2)</c>.</summary>
    public override string ToString() => Kind switch
    {
        ActivationKind.LeakyRelu or ActivationKind.Elu => $"{Kind}(alpha={Alpha})",
        ActivationKind.Swish => $"{Kind}(beta={Beta})",
        ActivationKind.Softplus => $"{Kind}(beta={Beta}, threshold={Threshold})",
        ActivationKind.Custom => $"{Kind}({Function!.Name})",
        _ => Kind.ToString(),
    };
}

/// <summary>Receives an activation's operator struct, specialised per struct by the JIT.</summary>
internal interface IActivationVisitor<TResult>
{
    /// <summary>Called with the operator of the activation being visited.</summary>
    TResult Visit<TOp>(TOp op) where TOp : struct, IActivationOp;
}
