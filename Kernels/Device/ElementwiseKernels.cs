namespace GpuActivations.Device;

/// <summary>
/// Elementwise kernels in the common dialect of <see cref="DevicePrelude"/>: y = act(x) and PReLU.
/// Tensors are <c>ga_in_t</c> / <c>ga_out_t</c> (the program's storage); the float4 kernels are picked only for float32.
/// 64-bit lengths, element offsets passed as arguments (a view needs no sub-buffer); y may be x (in place):
/// each element is read and written by the same work-item.
/// Two launch shapes: grid-stride loops over a capped grid (GPUs), and "flat" kernels, one element (or one float4)
/// per work-item over a grid covering everything. The flat ones are for CPU OpenCL devices: PoCL vectorises
/// across work-items only when a work-item's body has no loop of its own (measured 2.5-4x faster there).
/// </summary>
internal static class ElementwiseKernels
{
    /// <summary>Kernel names.</summary>
    public const string Unary = "ga_unary", UnaryVec4 = "ga_unary_vec4", UnaryFlat = "ga_unary_flat", UnaryFlat4 = "ga_unary_flat4",
        PRelu = "ga_prelu";

    /// <summary>Every kernel of <see cref="UnarySource"/>.</summary>
    public static IReadOnlyList<string> UnaryKernels { get; } = [Unary, UnaryVec4, UnaryFlat, UnaryFlat4];

    /// <summary>
    /// <c>ga_unary(x, xOffset, y, yOffset, n, alpha, beta, threshold)</c>: the scalar form.
    /// <c>ga_unary_vec4(...)</c>, same arguments: four elements per step through float4 loads and stores; the host
    /// picks it only when both offsets are multiples of 4 (allocations are at least 16-byte aligned), and
    /// the first <c>n % 4</c> work-items finish the tail. <c>ga_unary_flat</c> and <c>ga_unary_flat4</c>: the same without
    /// the loop (the grid covers n, resp. max(n / 4, n % 4) work-items). Needs an activation
    /// (<see cref="DevicePrelude.ActivationFunction"/>).
    /// </summary>
    public const string UnarySource = """
        KERNEL void ga_unary(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL ga_out_t* y, ga_index yOffset, ga_index n,
                             float alpha, float beta, float threshold)
        {
            const ga_index stride = GA_GLOBAL_SIZE(0);
            for (ga_index i = GA_GLOBAL_ID(0); i < n; i += stride)
                GA_STORE_OUT(y, yOffset + i, ga_activation(GA_LOAD_IN(x, xOffset + i), alpha, beta, threshold));
        }

        KERNEL void ga_unary_vec4(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL ga_out_t* y, ga_index yOffset, ga_index n,
                                  float alpha, float beta, float threshold)
        {
            GLOBAL const float4* x4 = (GLOBAL const float4*)(x + xOffset);
            GLOBAL float4* y4 = (GLOBAL float4*)(y + yOffset);
            const ga_index n4 = n >> 2;
            const ga_index stride = GA_GLOBAL_SIZE(0);
            const ga_index id = GA_GLOBAL_ID(0);
            for (ga_index i = id; i < n4; i += stride)
            {
                y4[i] = ga_activation4(x4[i], alpha, beta, threshold);
            }
            const ga_index tail = (n4 << 2) + id;
            if (tail < n)
                GA_STORE_OUT(y, yOffset + tail, ga_activation(GA_LOAD_IN(x, xOffset + tail), alpha, beta, threshold));
        }

        KERNEL void ga_unary_flat(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL ga_out_t* y, ga_index yOffset, ga_index n,
                                  float alpha, float beta, float threshold)
        {
            const ga_index i = GA_GLOBAL_ID(0);
            if (i < n) GA_STORE_OUT(y, yOffset + i, ga_activation(GA_LOAD_IN(x, xOffset + i), alpha, beta, threshold));
        }

        KERNEL void ga_unary_flat4(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL ga_out_t* y, ga_index yOffset, ga_index n,
                                   float alpha, float beta, float threshold)
        {
            const ga_index i = GA_GLOBAL_ID(0);
            const ga_index n4 = n >> 2;
            if (i < n4)
            {
                GLOBAL const float4* x4 = (GLOBAL const float4*)(x + xOffset);
                GLOBAL float4* y4 = (GLOBAL float4*)(y + yOffset);
                y4[i] = ga_activation4(x4[i], alpha, beta, threshold);
            }
            const ga_index tail = (n4 << 2) + i;
            if (tail < n)
                GA_STORE_OUT(y, yOffset + tail, ga_activation(GA_LOAD_IN(x, xOffset + tail), alpha, beta, threshold));
        }

        """;

    /// <summary>
    /// <c>ga_prelu(x, xOffset, alpha, alphaOffset, channels, y, yOffset, n)</c>:
    /// y[i] = x[i] &lt; 0 ? alpha[i % channels] * x[i] : x[i] (NaN is not &lt; 0, so it passes through).
    /// The channel is computed with one division per work-item and then stepped along with the loop.
    /// </summary>
    public static string PReluSource { get; } = $$"""
        KERNEL void ga_prelu(GLOBAL const ga_in_t* x, ga_index xOffset, GLOBAL const float* alpha, ga_index alphaOffset,
                             int channels, GLOBAL ga_out_t* y, ga_index yOffset, ga_index n)
        {
        {{ChannelLoop("""
                const float v = GA_LOAD_IN(x, xOffset + i);
                const float a = alpha[alphaOffset + channel];
                GA_STORE_OUT(y, yOffset + i, v < 0.0f ? a * v : v);
        """)}}
        }

        """;

    /// <summary>
    /// A grid-stride loop over elements i of n (with <c>int channels</c>) that steps each one's channel along: one
    /// division per work-item, not one per element. <paramref name="body"/> uses <c>i</c> and <c>channel</c>.
    /// </summary>
    public static string ChannelLoop(string body) => $$"""
            const ga_index stride = GA_GLOBAL_SIZE(0);
            ga_index i = GA_GLOBAL_ID(0);
            const ga_index c = channels;
            const ga_index step = stride % c;
            ga_index channel = i % c;
            for (; i < n; i += stride)
            {
        {{body}}
                channel += step;
                if (channel >= c) channel -= c;
            }
        """;
}
