using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>The span API: the same kernels as the CPU accelerator, bit for bit, with the same checks.</summary>
public sealed class CpuSpanTests
{
    [Test]
    public void MatchesTheCpuAcceleratorBitForBit()
    {
        using var acc = Accelerator.Create(AcceleratorKind.Cpu);
        var x = TestData.Values(5003, seed: 11);
        foreach (var activation in Activation.All)
        {
            var y = new float[x.Length];
            CpuKernels.Apply(activation, x, y);
            using var xb = acc.Allocate<float>(x);
            acc.Apply(activation, xb, xb);
            Assert.That(y, Is.EqualTo(xb.ToArray()).AsCollection, activation.ToString());
        }
        var logits = TestData.Logits(12 * 300, seed: 1);
        var s = new float[logits.Length];
        CpuKernels.Softmax(logits, s, 12, 300);
        using var lb = acc.Allocate<float>(logits);
        acc.Softmax(lb, lb, 12, 300);
        Assert.That(s, Is.EqualTo(lb.ToArray()).AsCollection);
    }

    [Test]
    public void InPlaceAndChecks()
    {
        var x = TestData.Values(1000, seed: 2);
        var copy = x.ToArray();
        var expected = new float[x.Length];
        CpuKernels.Apply(Activation.Silu, x, expected);
        CpuKernels.Apply(Activation.Silu, copy, copy);
        Assert.That(copy, Is.EqualTo(expected).AsCollection);
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.Apply(Activation.Relu, x, new float[999]))!.ParamName, Is.EqualTo("y"));
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.Apply(Activation.Relu, x.AsSpan(0, 500), x.AsSpan(1, 500)))!.ParamName, Is.EqualTo("y"));
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.Softmax(x, new float[1000], 3, 300))!.ParamName, Is.EqualTo("x"));
        var gate = new float[10];
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.GluPacked(GatedUnit.SwiGlu, gate, new float[5], 2, 3))!.ParamName, Is.EqualTo("packed"));
    }

    [Test]
    public void CpuIsAlwaysPresent()
    {
        var cpu = Accelerator.Probe(AcceleratorKind.Cpu);
        Assert.That(cpu.IsAvailable, Is.True);
        Assert.That(Accelerator.Enumerate()[0].Kind, Is.EqualTo(AcceleratorKind.Cpu));
        using var best = Accelerator.Best();
        Assert.That(best.IsDisposed, Is.False);
    }
}
