using GpuActivations.Samples;
using NUnit.Framework;

namespace GpuActivations.Tests.Samples;

/// <summary>
/// samples/TransformerMlp, run in-process on ILGPU's CPU accelerator (as CI runs it): its own check against the double
/// reference passes, with the library's SIMD path and with its ILGPU kernels, and the check does catch a wrong result.
/// </summary>
public sealed class TransformerMlpSampleTests
{
    static (int ExitCode, string Output) Run(params string[] args)
    {
        using var output = new StringWriter();
        int exitCode = TransformerMlp.Run(args, output);
        return (exitCode, output.ToString());
    }

    static void AssertEveryStageMatches(int exitCode, string output)
    {
        Assert.That(exitCode, Is.Zero, output);
        Assert.That(output, Does.Contain("TransformerMlp: every stage matches the double reference"));
        // Five checked stages, each reported "ok": the two SwiGLU forms, the block output, the logits and the softmax.
        var stages = output.Split('\n').Where(l => l.Contains(" rel err ", StringComparison.Ordinal)).ToArray();
        Assert.That(stages, Has.Length.EqualTo(5), output);
        Assert.That(stages, Has.All.EndsWith("ok"), output);
        Assert.That(output, Does.Contain($"token {TransformerMlp.Tokens - 1}: next = "));
    }

    [Test]
    public void TheBlockMatchesTheReferenceWithTheSimdPath()
    {
        var (exitCode, output) = Run("--cpu");
        AssertEveryStageMatches(exitCode, output);
        Assert.That(output, Does.Contain("library's SIMD path on host memory"));
    }

    [Test]
    public void TheBlockMatchesTheReferenceWithTheLibrarysIlgpuKernels()
    {
        var (exitCode, output) = Run("--cpu", "--kernels");
        AssertEveryStageMatches(exitCode, output);
        Assert.That(output, Does.Contain("library's ILGPU kernels emulated"));
    }

    [Test]
    public void AWrongResultFailsTheRun()
    {
        var (exitCode, output) = Run("--cpu", "--corrupt");
        Assert.That(exitCode, Is.EqualTo(1), output);
        Assert.That(output, Does.Contain("softmax over logits (library op)").And.Contain("MISMATCH"));
        Assert.That(output, Does.Contain("TransformerMlp: MISMATCH against the double reference"));
    }

    [Test]
    public void AnUnknownOptionIsRefusedWithTheOptionsListed()
    {
        var (exitCode, output) = Run("--gpu");
        Assert.That(exitCode, Is.EqualTo(2));
        Assert.That(output, Does.Contain("unknown option '--gpu'").And.Contain("--cpu"));
    }
}
