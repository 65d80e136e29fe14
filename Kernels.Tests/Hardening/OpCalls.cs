namespace GpuActivations.Tests.Hardening;

/// <summary>One view argument of an op: its parameter name, its valid length, and whether the op writes it.</summary>
public sealed record ViewSpec(string Name, long Length, bool IsOutput);

/// <summary>The arguments of one call: views by parameter name, the shape, the gated unit and the activation.</summary>
public sealed class OpArgs
{
    public Dictionary<string, BufferView<float>> Views { get; } = [];
    public long Rows { get; set; }
    public long Cols { get; set; }
    public GatedUnit Unit { get; set; } = GatedUnit.SwiGlu;
    public GluPacking Packing { get; set; } = GluPacking.Halves;
    public Activation Activation { get; set; } = Activation.Gelu;
    public BufferView<float> this[string name] => Views[name];
}

/// <summary>
/// One public op with a valid set of arguments, as a table row: every bad-input and concurrency test runs over
/// <see cref="OpCalls.All"/> instead of spelling each op out.
/// </summary>
/// <param name="Name">The op, e.g. "GluPacked".</param>
/// <param name="Views">Its view arguments with valid lengths, in parameter order.</param>
/// <param name="Rows">The valid rows (shaped ops), else 0.</param>
/// <param name="Cols">The valid cols / d (shaped ops), else 0.</param>
/// <param name="RowsName">The name of the rows parameter, null for unshaped ops.</param>
/// <param name="ColsName">The name of the cols parameter ("cols", "d"), null for unshaped ops.</param>
/// <param name="Invoke">Calls the op on an accelerator with the arguments.</param>
public sealed record OpCall(string Name, ViewSpec[] Views, long Rows, long Cols, string? RowsName, string? ColsName, Action<Accelerator, OpArgs> Invoke)
{
    public bool IsShaped => RowsName is not null;
    public bool HasUnit => Name.StartsWith("Glu", StringComparison.Ordinal);
    /// <summary>Whether the op takes an <see cref="Activation"/> (and must reject null).</summary>
    public bool HasActivation => Name is "Apply" or "ActivationBackward" or "ActivationBackwardFromOutput";
    /// <summary>Whether the op takes a <see cref="GluPacking"/>.</summary>
    public bool HasPacking => Name.StartsWith("GluPacked", StringComparison.Ordinal);
    /// <summary>
    /// The outputs the overlap and in-place cases pair with the inputs (GluBackward has two, dGate and dUp). PReluBackward's
    /// dAlpha is left out: a reduction over every row, it must be disjoint from everything and has its own cases.
    /// </summary>
    public IEnumerable<ViewSpec> Outputs => Views.Where(v => v.IsOutput && v.Name != "dAlpha");
    public IEnumerable<ViewSpec> Inputs => Views.Where(v => !v.IsOutput);
    public override string ToString() => Name;
}

/// <summary>The table of every public op of <see cref="Accelerator"/>, with small valid arguments.</summary>
public static class OpCalls
{
    static ViewSpec In(string name, long length) => new(name, length, false);
    static ViewSpec Out(string name, long length) => new(name, length, true);

    /// <summary>Apply, PRelu, Glu, SwiGlu, GluPacked, GluBackward, GluPackedBackward, Softmax, LogSoftmax and the backward ops (CrossEntropy, with its int targets and two outputs, has its own cases in BadInputTests).</summary>
    public static IReadOnlyList<OpCall> All { get; } =
    [
        new("Apply", [In("x", 12), Out("y", 12)], 0, 0, null, null, (a, v) => a.Apply(v.Activation, v["x"], v["y"])),
        new("PRelu", [In("x", 12), In("alpha", 3), Out("y", 12)], 0, 0, null, null, (a, v) => a.PRelu(v["x"], v["alpha"], v["y"])),
        new("Glu", [In("gate", 12), In("up", 12), Out("y", 12)], 0, 0, null, null, (a, v) => a.Glu(v.Unit, v["gate"], v["up"], v["y"])),
        new("SwiGlu", [In("gate", 12), In("up", 12), Out("y", 12)], 0, 0, null, null, (a, v) => a.SwiGlu(v["gate"], v["up"], v["y"])),
        new("GluPacked", [In("packed", 24), Out("y", 12)], 3, 4, "rows", "d", (a, v) => a.GluPacked(v.Unit, v["packed"], v["y"], v.Rows, v.Cols, v.Packing)),
        new("GluBackward", [In("gate", 12), In("up", 12), In("dy", 12), Out("dGate", 12), Out("dUp", 12)], 0, 0, null, null,
            (a, v) => a.GluBackward(v.Unit, v["gate"], v["up"], v["dy"], v["dGate"], v["dUp"])),
        new("GluPackedBackward", [In("packed", 24), In("dy", 12), Out("dPacked", 24)], 3, 4, "rows", "d",
            (a, v) => a.GluPackedBackward(v.Unit, v["packed"], v["dy"], v["dPacked"], v.Rows, v.Cols, v.Packing)),
        new("Softmax", [In("x", 12), Out("y", 12)], 3, 4, "rows", "cols", (a, v) => a.Softmax(v["x"], v["y"], v.Rows, v.Cols)),
        new("LogSoftmax", [In("x", 12), Out("y", 12)], 3, 4, "rows", "cols", (a, v) => a.LogSoftmax(v["x"], v["y"], v.Rows, v.Cols)),
        new("ActivationBackward", [In("x", 12), In("dy", 12), Out("dx", 12)], 0, 0, null, null,
            (a, v) => a.ActivationBackward(v.Activation, v["x"], v["dy"], v["dx"])),
        // The output form takes sigmoid (the default GELU has none); a null activation stays null for that fault.
        new("ActivationBackwardFromOutput", [In("y", 12), In("dy", 12), Out("dx", 12)], 0, 0, null, null,
            (a, v) => a.ActivationBackwardFromOutput(v.Activation is null ? null! : Activation.Sigmoid, v["y"], v["dy"], v["dx"])),
        new("PReluBackward", [In("x", 12), In("alpha", 3), In("dy", 12), Out("dx", 12), Out("dAlpha", 3)], 0, 0, null, null,
            (a, v) => a.PReluBackward(v["x"], v["alpha"], v["dy"], v["dx"], v["dAlpha"])),
        new("SoftmaxBackward", [In("y", 12), In("dy", 12), Out("dx", 12)], 3, 4, "rows", "cols", (a, v) => a.SoftmaxBackward(v["y"], v["dy"], v["dx"], v.Rows, v.Cols)),
        new("LogSoftmaxBackward", [In("y", 12), In("dy", 12), Out("dx", 12)], 3, 4, "rows", "cols", (a, v) => a.LogSoftmaxBackward(v["y"], v["dy"], v["dx"], v.Rows, v.Cols)),
    ];

    /// <summary>The op named <paramref name="name"/>.</summary>
    public static OpCall Get(string name) => All.Single(o => o.Name == name);
}
