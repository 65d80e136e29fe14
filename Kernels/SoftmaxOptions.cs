namespace GpuActivations;

/// <summary>
/// What softmax and log-softmax compute over, besides the logits: each row's input is z = x * <see cref="Scale"/> +
/// mask, the scale and mask applied as the kernels read x (no extra pass). The default (scale 1, no mask, not safe) is
/// plain softmax.
/// </summary>
public sealed class SoftmaxOptions
{
    /// <summary>
    /// Multiplies every logit before the softmax (attention's 1/sqrt(d), or 1/temperature). Finite and &gt; 0; default 1.
    /// Backward passes receive the softmax of the scaled logits: multiply their dx by this scale yourself.
    /// </summary>
    public float Scale { get; init; } = 1f;

    /// <summary>
    /// An optional additive mask on this accelerator: <c>cols</c> values (one row, added to every row) or <c>rows * cols</c>
    /// (one per element). -inf removes an element (softmax 0, log-softmax -inf). A default view means no mask. It must not
    /// partially overlap the output (it may be the output exactly, per-element form).
    /// </summary>
    public BufferView<float> Mask { get; init; }

    /// <summary>
    /// A row whose every z is -inf (fully masked) gives zeros from softmax and -inf from log-softmax instead of NaN
    /// (attention over padding). Rows holding NaN or +inf stay NaN.
    /// </summary>
    public bool Safe { get; init; }

    /// <summary>Whether <see cref="Mask"/> is set.</summary>
    public bool HasMask => Mask.Buffer is not null;
}

/// <summary>
/// How <see cref="Accelerator.CrossEntropy(BufferView{float}, BufferView{int}, BufferView{float}, BufferView{float}, long, long, CrossEntropyOptions?)"/> treats targets and scales its gradient (PyTorch's <c>cross_entropy</c>
/// with <c>reduction='none'</c>; for <c>'mean'</c> pass <see cref="GradientScale"/> = 1 / (rows not ignored) and average
/// the losses).
/// </summary>
public sealed class CrossEntropyOptions
{
    /// <summary>Rows whose target is this value get loss 0 and gradient 0. Default -100 (PyTorch's).</summary>
    public int IgnoreIndex { get; init; } = -100;

    /// <summary>
    /// eps in [0, 1]: the target distribution is (1 - eps) one-hot + eps / cols uniform, as PyTorch's <c>label_smoothing</c>.
    /// Default 0.
    /// </summary>
    public float LabelSmoothing { get; init; }

    /// <summary>Multiplies the gradient (not the loss): finite. Default 1.</summary>
    public float GradientScale { get; init; } = 1f;
}

/// <summary>
/// <see cref="SoftmaxOptions"/> as the backends receive them, validated: z = x * Scale + Mask[row * MaskStride + j]
/// (MaskStride 0: one mask row for all rows; no mask when Mask has no buffer).
/// </summary>
internal readonly record struct SoftmaxInput(float Scale, TensorArg Mask, long MaskStride, bool Safe)
{
    /// <summary>Plain softmax: scale 1, no mask, not safe.</summary>
    public static SoftmaxInput Plain => new(1f, default, 0, false);

    /// <summary>Whether a mask is added.</summary>
    public bool HasMask => Mask.Storage is not null;
}
