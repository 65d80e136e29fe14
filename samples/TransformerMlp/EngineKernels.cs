using ILGPU;

namespace GpuActivations.Samples;

/// <summary>What the engine's matmul does with each output's sum before storing it.</summary>
interface IEpilogue
{
    /// <summary>The value stored at <paramref name="index"/> for the dot product <paramref name="sum"/>.</summary>
    float Apply(float sum, ArrayView<float> other, int index);
}

/// <summary>Stores the sum as it is.</summary>
readonly struct NoEpilogue : IEpilogue
{
    public float Apply(float sum, ArrayView<float> other, int index) => sum;
}

/// <summary>
/// SwiGLU fused into the gate projection: silu(sum) * up, with <c>other</c> holding the up projection. The SiLU is
/// the library's own device function, the code its kernels run (its own exp, accurate to a few ulp), compiled for the
/// backend's fma form <typeparamref name="TFma"/>.
/// </summary>
readonly struct SwiGluEpilogue<TFma> : IEpilogue where TFma : struct, IFusedMultiplyAdd
{
    public float Apply(float sum, ArrayView<float> other, int index) => ActivationFunctions<TFma>.Silu(sum) * other[index];
}

/// <summary>The residual connection: sum + x, with <c>other</c> holding the block's input x.</summary>
readonly struct ResidualEpilogue : IEpilogue
{
    public float Apply(float sum, ArrayView<float> other, int index) => sum + other[index];
}

/// <summary>The engine's own ILGPU kernels.</summary>
static class EngineKernels
{
    /// <summary>
    /// c = epilogue(a b) for row-major a [m x k] and b [k x n], one thread per output element (index.X the row, index.Y
    /// the column). Naive on purpose: the sample is about what happens in the epilogue. Each product is accumulated
    /// with the backend's correctly rounded fma, so every backend rounds the sum the same way.
    /// </summary>
    public static void MatMul<TFma, TEpilogue>(Index2D index, ArrayView<float> a, ArrayView<float> b, ArrayView<float> other,
        ArrayView<float> c, int k, int n, TEpilogue epilogue)
        where TFma : struct, IFusedMultiplyAdd
        where TEpilogue : struct, IEpilogue
    {
        int row = index.X, column = index.Y;
        float sum = 0f;
        for (int p = 0; p < k; p++)
            sum = TFma.Fma(a[row * k + p], b[p * n + column], sum);
        int at = row * n + column;
        c[at] = epilogue.Apply(sum, other, at);
    }
}
