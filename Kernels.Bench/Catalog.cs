using System.Globalization;
using GpuActivations.Reference;

namespace GpuActivations.Bench;

/// <summary>How an op reads and writes memory, which decides its buffers, its bytes moved and its reference.</summary>
public enum OpFamily
{
    /// <summary>y = act(x): reads n, writes n.</summary>
    Elementwise,
    /// <summary>PReLU with one slope per channel: reads n (+ the slopes), writes n.</summary>
    PRelu,
    /// <summary>y = act(gate) * up from two buffers: reads 2n, writes n.</summary>
    Glu,
    /// <summary>y = act(gate) * up from one packed [rows, 2d] buffer: reads 2n, writes n.</summary>
    GluPacked,
    /// <summary>The gated backward pass over separate buffers: reads gate, up, dy (3n), writes dGate, dUp (2n).</summary>
    GluBackward,
    /// <summary>The gated backward pass over a packed [rows, 2d] buffer: reads packed and dy (3n), writes dPacked (2n).</summary>
    GluPackedBackward,
    /// <summary>Row-wise softmax: reads n, writes n (the minimum; a multi-pass kernel may touch more).</summary>
    Softmax,
    /// <summary>Row-wise log-softmax: reads n, writes n.</summary>
    LogSoftmax,
    /// <summary>An activation's backward pass dx = dy * f'(x): reads x and dy, writes dx (3 arrays).</summary>
    Backward,
    /// <summary>Softmax backward from y and dy: reads 2n, writes n.</summary>
    SoftmaxBackward,
    /// <summary>Fused cross-entropy from logits with the gradient: reads n (+ rows targets), writes n (+ rows losses).</summary>
    CrossEntropy,
}

/// <summary>A problem size: rows x cols (elementwise ops have one row; packed GLU's cols is d, the output width).</summary>
public readonly record struct Shape(long Rows, long Cols)
{
    /// <summary>The number of output elements.</summary>
    public long Elements => Rows * Cols;

    /// <summary>A flat shape of <paramref name="n"/> elements.</summary>
    public static Shape Flat(long n) => new(1, n);

    /// <summary>"16M" for flat shapes, "1024x32000" for matrices.</summary>
    public string Label => Rows == 1 ? BenchOptions.Label(Cols) : string.Create(CultureInfo.InvariantCulture, $"{Rows}x{Cols}");
}

/// <summary>One op the main job verifies and measures.</summary>
/// <param name="Name">The name used by --ops, the report and torch_peer.py (e.g. "Sigmoid", "SwiGlu").</param>
/// <param name="Family">How it moves memory.</param>
/// <param name="Activation">The activation (elementwise ops) or the gate's activation (GLU ops).</param>
/// <param name="Unit">The gated unit (GLU ops).</param>
/// <param name="Reference">The reference id of the activation (elementwise ops).</param>
/// <param name="Packing">The packed GLU ops' layout.</param>
/// <param name="Bf16">Whether every tensor is stored as bf16 (computed in float32); bytes are then counted at 2 per element.</param>
public sealed record BenchOp(string Name, OpFamily Family, Activation? Activation, GatedUnit? Unit, ActivationId Reference,
    GluPacking Packing = GluPacking.Halves, bool Bf16 = false)
{
    /// <summary>Bytes read plus written for <paramref name="shape"/> (the op's contract, not a kernel's passes), in the storage type.</summary>
    public long BytesMoved(Shape shape) => Bf16 ? Float32Bytes(shape) / 2 : Float32Bytes(shape);

    long Float32Bytes(Shape shape) => Family switch
    {
        OpFamily.Glu or OpFamily.GluPacked or OpFamily.Backward or OpFamily.SoftmaxBackward => 12 * shape.Elements,
        OpFamily.GluBackward or OpFamily.GluPackedBackward => 20 * shape.Elements,
        OpFamily.CrossEntropy => 8 * shape.Elements + 8 * shape.Rows,
        OpFamily.PRelu => 8 * shape.Elements + 4 * PReluChannels(shape.Elements),
        _ => 8 * shape.Elements,
    };

    /// <summary>Whether this op is a gated unit.</summary>
    public bool IsGlu => Family is OpFamily.Glu or OpFamily.GluPacked or OpFamily.GluBackward or OpFamily.GluPackedBackward;

    /// <summary>Whether this op's input is one packed [rows, 2d] buffer (shaped rows of d).</summary>
    public bool IsPacked => Family is OpFamily.GluPacked or OpFamily.GluPackedBackward;

    /// <summary>Whether this op is row-wise (softmax, log-softmax, softmax backward, cross-entropy).</summary>
    public bool IsRowwise => Family is OpFamily.Softmax or OpFamily.LogSoftmax or OpFamily.SoftmaxBackward or OpFamily.CrossEntropy;

    /// <summary>
    /// Whether the SIMD CPU path writes this op's output through the caches at every size (each output line read from
    /// memory for ownership before it is written): the row ops, which write a row and then rescale it in cache. Other
    /// outputs of 1M elements or more stream (packed halves' row by row, as parts of the whole output).
    /// </summary>
    public bool StoresThroughCache => IsRowwise;

    /// <summary>The PReLU channel count used for n elements: the largest power of two up to 4096 dividing n.</summary>
    public static long PReluChannels(long n)
    {
        long c = 4096;
        while (c > 1 && n % c != 0) c /= 2;
        return c;
    }

    /// <summary>The reference's id of the gated unit.</summary>
    public GluId GluReference => Enum.Parse<GluId>(Unit!.Kind.ToString());

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>The ops the main job verifies and measures, each with its reference, and the groups --ops accepts.</summary>
public static class Catalog
{
    /// <summary>Every activation with its default parameters and its reference id.</summary>
    public static IReadOnlyList<(Activation Activation, ActivationId Reference)> Activations { get; } =
        [.. Activation.All.Select(a => (a, Enum.Parse<ActivationId>(a.Kind.ToString())))];

    /// <summary>Every op, in report order.</summary>
    public static IReadOnlyList<BenchOp> Ops { get; } =
    [
        .. Activations.Select(a => new BenchOp(a.Activation.Kind.ToString(), OpFamily.Elementwise, a.Activation, null, a.Reference)),
        new("PRelu", OpFamily.PRelu, null, null, ActivationId.LeakyRelu),
        new("SwiGlu", OpFamily.Glu, Activation.Silu, GatedUnit.SwiGlu, default),
        new("GeGlu", OpFamily.Glu, Activation.Gelu, GatedUnit.GeGlu, default),
        new("GeGluTanh", OpFamily.Glu, Activation.GeluTanh, GatedUnit.GeGluTanh, default),
        new("ReGlu", OpFamily.Glu, Activation.Relu, GatedUnit.ReGlu, default),
        new("SwiGluPacked", OpFamily.GluPacked, Activation.Silu, GatedUnit.SwiGlu, default),
        new("ClampedSwiGlu", OpFamily.Glu, Activation.Swish(1.702f), GatedUnit.ClampedSwiGlu(), default),
        new("SwiGluInterleaved", OpFamily.GluPacked, Activation.Silu, GatedUnit.SwiGlu, default, GluPacking.Interleaved),
        new("ClampedSwiGluInterleaved", OpFamily.GluPacked, Activation.Swish(1.702f), GatedUnit.ClampedSwiGlu(), default, GluPacking.Interleaved),
        new("SwiGluBackward", OpFamily.GluBackward, Activation.Silu, GatedUnit.SwiGlu, default),
        new("GeGluBackward", OpFamily.GluBackward, Activation.Gelu, GatedUnit.GeGlu, default),
        new("SwiGluPackedBackward", OpFamily.GluPackedBackward, Activation.Silu, GatedUnit.SwiGlu, default),
        new("ClampedSwiGluInterleavedBackward", OpFamily.GluPackedBackward, Activation.Swish(1.702f), GatedUnit.ClampedSwiGlu(), default, GluPacking.Interleaved),
        new("Softmax", OpFamily.Softmax, null, null, default),
        new("LogSoftmax", OpFamily.LogSoftmax, null, null, default),
        .. Activations.Select(a => new BenchOp(a.Activation.Kind + "Backward", OpFamily.Backward, a.Activation, null, a.Reference)),
        new("SoftmaxBackward", OpFamily.SoftmaxBackward, null, null, default),
        new("CrossEntropy", OpFamily.CrossEntropy, null, null, default),
        // bf16 storage: load, compute in float32, round once; bytes counted at 2 per element.
        new("Silu-bf16", OpFamily.Elementwise, Activation.Silu, null, ActivationId.Silu, Bf16: true),
        new("Gelu-bf16", OpFamily.Elementwise, Activation.Gelu, null, ActivationId.Gelu, Bf16: true),
        new("SwiGlu-bf16", OpFamily.Glu, Activation.Silu, GatedUnit.SwiGlu, default, Bf16: true),
        new("SiluBackward-bf16", OpFamily.Backward, Activation.Silu, null, ActivationId.Silu, Bf16: true),
        new("Softmax-bf16", OpFamily.Softmax, null, null, default, Bf16: true),
    ];

    /// <summary>Piecewise-linear ops, held to the ReLU figure (>= 90% of copy bandwidth).</summary>
    public static IReadOnlySet<string> ReluLike { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        { "Relu", "LeakyRelu", "Relu6", "PRelu", "HardSigmoid", "HardSwish" };

    /// <summary>The transcendental ops held to (>= 75% of copy bandwidth).</summary>
    public static IReadOnlySet<string> Transcendental { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        { "Sigmoid", "Tanh", "Silu", "Gelu", "Elu", "Softplus" };

    /// <summary>
    /// The ops the default run benchmarks (every op is still verified): one or two of each family and cost class, the
    /// ops ONNX Runtime and TensorPrimitives have, and the ones engines run most (GELU, SiLU, SwiGLU, softmax).
    /// </summary>
    public static IReadOnlySet<string> Representative { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "Relu", "Sigmoid", "Tanh", "Gelu", "GeluTanh", "Silu", "Softplus", "SwiGlu", "SwiGluPacked",
        "Softmax", "LogSoftmax", "SiluBackward", "CrossEntropy", "Silu-bf16",
    };

    /// <summary>Looks up an op by name (case-insensitive).</summary>
    public static BenchOp? Find(string name) => Ops.FirstOrDefault(o => string.Equals(o.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The ops selected by --ops (names or groups); every op when <paramref name="selectors"/> is empty.</summary>
    public static List<BenchOp> Select(IReadOnlyList<string> selectors)
    {
        if (selectors.Count == 0) return [.. Ops];
        var chosen = new HashSet<BenchOp>();
        foreach (string s in selectors)
        {
            IEnumerable<BenchOp> group = s.ToLowerInvariant() switch
            {
                "all" => Ops,
                "elementwise" or "activations" => Ops.Where(o => o.Family == OpFamily.Elementwise),
                "backward" => Ops.Where(o => o.Family == OpFamily.Backward),
                "bf16" => Ops.Where(o => o.Bf16),
                "glu" => Ops.Where(o => o.IsGlu),
                "softmax-family" or "rowwise" => Ops.Where(o => o.IsRowwise),
                "relu-like" => Ops.Where(o => ReluLike.Contains(o.Name)),
                "transcendental" => Ops.Where(o => Transcendental.Contains(o.Name)),
                _ => Find(s) is { } op ? [op] : throw new ArgumentException($"--ops: unknown op or group '{s}'. Ops: {string.Join(", ", Ops.Select(o => o.Name))}."),
            };
            chosen.UnionWith(group);
        }
        return [.. Ops.Where(chosen.Contains)];
    }
}
