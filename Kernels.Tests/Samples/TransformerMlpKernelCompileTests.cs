using System.Reflection;
using GpuActivations.Samples;
using GpuActivations.Tests.Gates;
using ILGPU.Runtime.OpenCL;
using NUnit.Framework;

namespace GpuActivations.Tests.Samples;

/// <summary>
/// The sample's own kernels as a GPU would get them, compiled offline (no device needed): the matmul with the library's
/// SiLU in its epilogue compiles to PTX with the CUDA fma form and to OpenCL C with the emulated one, and the fused SiLU
/// brings none of ILGPU's approximate intrinsics with it (the library's own exp runs instead).
/// </summary>
public sealed class TransformerMlpKernelCompileTests
{
    static MethodInfo MatMul(Type fma, Type epilogue)
        => typeof(EngineKernels).GetMethod(nameof(EngineKernels.MatMul), BindingFlags.Public | BindingFlags.Static)!.MakeGenericMethod(fma, epilogue);

    [Test]
    public void TheFusedMatMulCompilesToPtxWithTheLibrarysSilu()
    {
        using var compiler = OfflineCompiler.Ptx();
        string fused = compiler.Compile(MatMul(typeof(PtxFma), typeof(SwiGluEpilogue<PtxFma>)));
        var structure = PtxStructure.Read(fused);
        Assert.That(structure.ApproximateInstructions, Is.Empty, "the fused SiLU uses the library's exp, not ex2.approx");
        Assert.That(structure.DoubleInstructions, Is.Empty, "no double precision in a CUDA kernel");
        Assert.That(fused, Does.Contain("fma.rn.f32"), "the sum and the SiLU use CUDA's correctly rounded fma");

        // The SiLU is what makes the fused kernel longer than the plain one: its instructions are really there.
        string plain = compiler.Compile(MatMul(typeof(PtxFma), typeof(NoEpilogue)));
        TestContext.Out.WriteLine($"PTX instructions: fused {Instructions(fused)}, plain {Instructions(plain)}");
        Assert.That(Instructions(fused), Is.GreaterThan(Instructions(plain) + 20));
        Assert.That(compiler.Compile(MatMul(typeof(PtxFma), typeof(ResidualEpilogue))), Does.Contain(".entry"));
    }

    [Test]
    public void TheFusedMatMulCompilesToOpenCLC()
    {
        using var compiler = OfflineCompiler.OpenCL(CLDeviceVendor.AMD);
        string fused = compiler.Compile(MatMul(typeof(EmulatedFma), typeof(SwiGluEpilogue<EmulatedFma>)));
        Assert.That(fused, Does.Contain("kernel"));
        Assert.That(fused, Does.Not.Contain("exp("), "the fused SiLU uses the library's exp, not OpenCL's");
    }

    static int Instructions(string ptx) => ptx.Split('\n').Count(l => l.TrimEnd().EndsWith(';') && !l.TrimStart().StartsWith('.'));
}
