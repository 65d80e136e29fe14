using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>The README's usage example, compiled and run here, and checked to be the README's text.</summary>
public sealed class ReadmeExampleTests
{
    // README-EXAMPLE-BEGIN
    static float[] Example(float[] hostX, float[] hostGate, float[] hostUp, int rows, int cols)
    {
        using var acc = Accelerator.Best();                       // ILGPU's CUDA, else an OpenCL GPU, else the CPU
        using var x = acc.Allocate<float>(hostX);
        using var y = acc.Allocate<float>(x.Length);
        acc.Apply(Activation.Gelu, x, y);                         // y = gelu(x)
        acc.Apply(Activation.LeakyRelu(0.2f), y, y);              // in place
        using var gate = acc.Allocate<float>(hostGate);
        using var up = acc.Allocate<float>(hostUp);
        acc.SwiGlu(gate, up, up);                                 // up = silu(gate) * up, one pass
        acc.Softmax(x, x, rows, cols);                            // row-wise, max-subtracted
        acc.Synchronize();                                        // copies synchronize by themselves too
        return [.. x.ToArray(), .. y.ToArray(), .. up.ToArray()];
    }
    // README-EXAMPLE-END

    // README-ILGPU-BEGIN
    static float[] EngineExample(float[] hostX, float[] hostGate, float[] hostUp)
    {
        using var context = ILGPU.Context.Create(b => b.Default());
        using var device = context.GetPreferredDevice(preferCPU: false).CreateAccelerator(context);
        using var ops = GpuActivations.Accelerator.FromIlgpu(device); // the engine's accelerator (default stream)
        using var x = device.Allocate1D(hostX);                   // the engine's own ILGPU buffers
        using var gate = device.Allocate1D(hostGate);
        using var up = device.Allocate1D(hostUp);
        ops.Apply(Activation.Gelu, x.View, x.View);               // ILGPU views go straight in: no copy
        ops.SwiGlu(gate.View, up.View, up.View);
        device.Synchronize();
        return [.. x.GetAsArray1D(), .. up.GetAsArray1D()];
    }
    // README-ILGPU-END

    [Test]
    public void TheEngineExampleRunsAndMatchesTheCpuSpanApi()
    {
        var x = TestData.Logits(40, seed: 4);
        var gate = TestData.Logits(16, seed: 5);
        var up = TestData.Logits(16, seed: 6);
        var result = EngineExample(x, gate, up);
        var gelu = new float[x.Length];
        CpuKernels.Apply(Activation.Gelu, x, gelu);
        Assert.That(result[..40], Is.EqualTo(gelu).AsCollection);
        var swiglu = new float[16];
        CpuKernels.Glu(GatedUnit.SwiGlu, gate, up, swiglu);
        Assert.That(result[40..], Is.EqualTo(swiglu).AsCollection);
    }

    [Test]
    public void RunsAndMatchesTheCpuSpanApi()
    {
        var x = TestData.Logits(4 * 10, seed: 1);
        var gate = TestData.Logits(16, seed: 2);
        var up = TestData.Logits(16, seed: 3);
        var result = Example(x, gate, up, rows: 4, cols: 10);

        var softmax = new float[x.Length];
        CpuKernels.Softmax(x, softmax, 4, 10);
        Assert.That(result[..40], Is.EqualTo(softmax).Within(1e-6f).AsCollection);
        var gelu = new float[x.Length];
        CpuKernels.Apply(Activation.Gelu, x, gelu);
        CpuKernels.Apply(Activation.LeakyRelu(0.2f), gelu, gelu);
        Assert.That(result[40..80], Is.EqualTo(gelu).Within(1e-5f).AsCollection);
        var swiglu = new float[16];
        CpuKernels.Glu(GatedUnit.SwiGlu, gate, up, swiglu);
        Assert.That(result[80..], Is.EqualTo(swiglu).Within(1e-5f).AsCollection);
    }

    [Test]
    public void TheReadmeShowsThisExample()
    {
        string root = TestContext.CurrentContext.TestDirectory;
        while (!File.Exists(Path.Combine(root, "README.md")))
        {
            root = Path.GetDirectoryName(root)!;
            if (root is null) Assert.Ignore("README.md is not above the test directory (the assembly was copied elsewhere)");
        }
        string source = File.ReadAllText(Path.Combine(root, "Kernels.Tests", "ReadmeExampleTests.cs"));
        string example = Between(source, "// README-EXAMPLE-BEGIN", "// README-EXAMPLE-END");
        string readme = File.ReadAllText(Path.Combine(root, "README.md"));
        Assert.That(Normalize(readme), Does.Contain(Normalize(example)), "README.md's usage example differs from ReadmeExampleTests.Example");
        string engine = Between(source, "// README-ILGPU-BEGIN", "// README-ILGPU-END");
        Assert.That(Normalize(readme), Does.Contain(Normalize(engine)), "README.md's ILGPU example differs from ReadmeExampleTests.EngineExample");
    }

    static string Between(string text, string begin, string end)
    {
        int start = text.IndexOf(begin, StringComparison.Ordinal) + begin.Length;
        return text[start..text.IndexOf(end, start, StringComparison.Ordinal)];
    }

    static string Normalize(string text) => string.Join('\n', text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));
}
