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

    /// <summary>The gated span ops (every unit, every layout, forward and backward) equal the CPU accelerator's bit for bit, and check like it.</summary>
    [Test]
    public void GatedUnitsMatchTheCpuAcceleratorBitForBit()
    {
        using var acc = Accelerator.Create(AcceleratorKind.Cpu);
        const int rows = 3, d = 301;
        var packed = TestData.Values(2 * rows * d, seed: 4);
        var dy = TestData.Logits(rows * d, seed: 5);
        using var pb = acc.Allocate<float>(packed);
        using var dyb = acc.Allocate<float>(dy);
        using var yb = acc.Allocate<float>(rows * d);
        using var dpb = acc.Allocate<float>(2 * rows * d);
        foreach (var unit in GatedUnit.All)
            foreach (var packing in new[] { GluPacking.Halves, GluPacking.Interleaved })
            {
                var y = new float[rows * d];
                CpuKernels.GluPacked(unit, packed, y, rows, d, packing);
                acc.GluPacked(unit, pb, yb, rows, d, packing);
                Assert.That(y, Is.EqualTo(yb.ToArray()).AsCollection, $"{unit} {packing}");
                var dPacked = new float[2 * rows * d];
                CpuKernels.GluPackedBackward(unit, packed, dy, dPacked, rows, d, packing);
                acc.GluPackedBackward(unit, pb, dyb, dpb, rows, d, packing);
                Assert.That(dPacked, Is.EqualTo(dpb.ToArray()).AsCollection, $"{unit} {packing} backward");
                var dGate = new float[rows * d];
                var dUp = new float[rows * d];
                CpuKernels.GluBackward(unit, packed.AsSpan(0, rows * d), packed.AsSpan(rows * d), dy, dGate, dUp);
                using var gb = acc.Allocate<float>(packed.AsSpan(0, rows * d));
                using var ub = acc.Allocate<float>(packed.AsSpan(rows * d));
                acc.GluBackward(unit, gb, ub, dyb, gb, ub);
                Assert.That(dGate, Is.EqualTo(gb.ToArray()).AsCollection, $"{unit} backward dGate (in place on the accelerator)");
                Assert.That(dUp, Is.EqualTo(ub.ToArray()).AsCollection, $"{unit} backward dUp");
            }
        var g = new float[8];
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.GluBackward(GatedUnit.SwiGlu, g, g, g, g.AsSpan(0, 4), g.AsSpan(4)))!.ParamName, Is.EqualTo("dGate"));
        var both = new float[16];
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.GluBackward(GatedUnit.SwiGlu, new float[8], new float[8], new float[8], both.AsSpan(0, 8), both.AsSpan(4, 8)))!.ParamName,
            Is.EqualTo("dUp"));
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.GluPackedBackward(GatedUnit.SwiGlu, new float[12], new float[6], new float[12].AsSpan(0, 11), 2, 3))!.ParamName,
            Is.EqualTo("dPacked"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => CpuKernels.GluPacked(GatedUnit.SwiGlu, new float[12], new float[6], 2, 3, (GluPacking)7))!.ParamName,
            Is.EqualTo("packing"));
        Assert.Throws<ArgumentNullException>(() => CpuKernels.Glu(null!, g, g, g));
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
