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

    /// <summary>
    /// Interleaved pairs, taken apart in registers, give the separate-buffer results bit for bit (the same op on the same
    /// values): every unit, every pair count up to 70 (each vector width's ragged end and the short padded form), and an
    /// odd start address. <see cref="PairDriversStreamLargeOutputsBitForBit"/> covers the non-temporal stores.
    /// </summary>
    [Test]
    public void InterleavedPairsGiveTheSeparateBuffersResultsBitForBit()
    {
        foreach (var unit in GatedUnit.All)
            foreach (int n in Enumerable.Range(1, 70))
                foreach (int offset in new[] { 0, 1 })
                {
                    var values = TestData.Values(2 * n + offset, seed: n);
                    var pairs = values.AsSpan(offset, 2 * n);
                    var gate = new float[n];
                    var up = new float[n];
                    for (int i = 0; i < n; i++) (gate[i], up[i]) = (pairs[2 * i], pairs[2 * i + 1]);
                    var dy = TestData.Logits(n, seed: n + 1);
                    var expected = new float[n];
                    CpuKernels.Glu(unit, gate, up, expected);
                    var y = new float[n + offset];
                    CpuKernels.GluPacked(unit, pairs, y.AsSpan(offset), 1, n, GluPacking.Interleaved);
                    for (int i = 0; i < n; i++)
                        if (!SameBits(y[offset + i], expected[i]))
                            Assert.Fail($"{unit}, {n} pairs, offset {offset}: pair {i} gives {y[offset + i]:R}, separate buffers {expected[i]:R}");
                    var dGate = new float[n];
                    var dUp = new float[n];
                    CpuKernels.GluBackward(unit, gate, up, dy, dGate, dUp);
                    var dPairs = new float[2 * n + offset];
                    CpuKernels.GluPackedBackward(unit, pairs, dy, dPairs.AsSpan(offset), 1, n, GluPacking.Interleaved);
                    for (int i = 0; i < n; i++)
                        if (!SameBits(dPairs[offset + 2 * i], dGate[i]) || !SameBits(dPairs[offset + 2 * i + 1], dUp[i]))
                            Assert.Fail($"{unit} backward, {n} pairs, offset {offset}: pair {i} gives ({dPairs[offset + 2 * i]:R}, "
                                        + $"{dPairs[offset + 2 * i + 1]:R}), separate buffers ({dGate[i]:R}, {dUp[i]:R})");
                }
    }

    /// <summary>
    /// Packed halves whose whole output is large enough to stream, row by row (rows aligned alike and not: d = 4096,
    /// 4099), give the separate-buffer results bit for bit, forward and backward.
    /// </summary>
    [Test]
    public void PackedHalvesOfALargeTensorGiveTheSeparateBuffersResultsBitForBit()
    {
        foreach (var (rows, d) in new[] { (300, 4096), (300, 4099) })
        {
            var packed = TestData.Values(2 * rows * d, seed: d);
            var gate = new float[rows * d];
            var up = new float[rows * d];
            for (int r = 0; r < rows; r++)
            {
                packed.AsSpan(2 * r * d, d).CopyTo(gate.AsSpan(r * d));
                packed.AsSpan(2 * r * d + d, d).CopyTo(up.AsSpan(r * d));
            }
            var dy = TestData.Logits(rows * d, seed: 3);
            var expected = new float[rows * d];
            CpuKernels.Glu(GatedUnit.SwiGlu, gate, up, expected);
            var y = new float[rows * d];
            CpuKernels.GluPacked(GatedUnit.SwiGlu, packed, y, rows, d);
            for (int i = 0; i < y.Length; i++)
                if (!SameBits(y[i], expected[i])) Assert.Fail($"[{rows} x {d}]: element {i} gives {y[i]:R}, separate buffers {expected[i]:R}");
            var dGate = new float[rows * d];
            var dUp = new float[rows * d];
            CpuKernels.GluBackward(GatedUnit.SwiGlu, gate, up, dy, dGate, dUp);
            var dPacked = new float[2 * rows * d];
            CpuKernels.GluPackedBackward(GatedUnit.SwiGlu, packed, dy, dPacked, rows, d);
            for (int i = 0; i < y.Length; i++)
            {
                int r = i / d, j = i % d;
                if (!SameBits(dPacked[2 * r * d + j], dGate[i]) || !SameBits(dPacked[2 * r * d + d + j], dUp[i]))
                    Assert.Fail($"[{rows} x {d}] backward: element {i} gives ({dPacked[2 * r * d + j]:R}, {dPacked[2 * r * d + d + j]:R}), "
                                + $"separate buffers ({dGate[i]:R}, {dUp[i]:R})");
            }
        }
    }

    /// <summary>
    /// The sigmoid-family gates' derivatives are their activations' own, bit for bit: with up = 1 (clamped: up = 0, whose
    /// factor is up + 1) and dy = 1, dGate is act'(gate) itself, as the activation's backward gives it with dy = 1.
    /// </summary>
    [Test]
    public void GateDerivativesAreTheActivationsOwn()
    {
        const int n = 20011;
        var gate = TestData.Values(n, seed: 9).Select(v => Math.Min(v, 6.5f)).ToArray(); // below the clamp
        var ones = Enumerable.Repeat(1f, n).ToArray();
        foreach (var (unit, activation) in new[] { (GatedUnit.SwiGlu, Activation.Silu), (GatedUnit.GeGluTanh, Activation.GeluTanh),
                                                   (GatedUnit.ClampedSwiGlu(), Activation.Swish(1.702f)) })
        {
            var up = unit.Kind == GatedUnitKind.ClampedSwiGlu ? new float[n] : ones;
            var dGate = new float[n];
            var dUp = new float[n];
            CpuKernels.GluBackward(unit, gate, up, ones, dGate, dUp);
            var expected = new float[n];
            CpuKernels.ActivationBackward(activation, gate, ones, expected);
            for (int i = 0; i < n; i++)
                if (!SameBits(dGate[i], expected[i])) Assert.Fail($"{unit}: gate {gate[i]:R} gives dGate {dGate[i]:R}, {activation}' {expected[i]:R}");
        }
    }

    /// <summary>
    /// The interleaved drivers called once on more pairs than the streaming threshold, so their non-temporal loops run
    /// whatever the core count: forward and backward give the two-buffer drivers' bits, at start offsets 0 and 2 floats
    /// (streamed, different heads) and 1 (the gradients' odd alignment: ordinary stores), and the backward pass in place.
    /// </summary>
    [Test]
    public unsafe void PairDriversStreamLargeOutputsBitForBit()
    {
        const int n = (int)Cpu.ElementwiseDriver.StreamingMinimum + 5;
        var op = new Cpu.GatedOp<Cpu.SiluGate>(new Cpu.SiluGate());
        var gradient = new Cpu.GatedGradientOp<Cpu.SiluGate>(new Cpu.SiluGate());
        foreach (int offset in new[] { 0, 1, 2 })
        {
            var values = TestData.Values(2 * n + offset, seed: offset);
            var gate = new float[n];
            var up = new float[n];
            for (int i = 0; i < n; i++) (gate[i], up[i]) = (values[offset + 2 * i], values[offset + 2 * i + 1]);
            var dy = TestData.Logits(n, seed: 7);
            var expected = new float[n];
            var dGate = new float[n];
            var dUp = new float[n];
            var y = new float[n + offset];
            var dPairs = new float[2 * n + offset];
            var inPlace = values.ToArray();
            fixed (float* pv = values, pg = gate, pu = up, pdy = dy, pe = expected, pdg = dGate, pdu = dUp, py = y, pdp = dPairs, pip = inPlace)
            {
                Cpu.ElementwiseDriver.Binary(op, pg, pu, pe, n);
                Cpu.ElementwiseDriver.Gradient(gradient, pg, pu, pdy, pdg, pdu, n);
                Cpu.ElementwiseDriver.Pairs(op, pv + offset, py + offset, n);
                Cpu.ElementwiseDriver.PairsGradient(gradient, pv + offset, pdy, pdp + offset, n);
                Cpu.ElementwiseDriver.PairsGradient(gradient, pip + offset, pdy, pip + offset, n);
            }
            for (int i = 0; i < n; i++)
            {
                if (!SameBits(y[offset + i], expected[i])) Assert.Fail($"offset {offset}: pair {i} gives {y[offset + i]:R}, separate buffers {expected[i]:R}");
                if (!SameBits(dPairs[offset + 2 * i], dGate[i]) || !SameBits(dPairs[offset + 2 * i + 1], dUp[i])
                    || !SameBits(inPlace[offset + 2 * i], dGate[i]) || !SameBits(inPlace[offset + 2 * i + 1], dUp[i]))
                    Assert.Fail($"offset {offset} backward: pair {i} gives ({dPairs[offset + 2 * i]:R}, {dPairs[offset + 2 * i + 1]:R}), "
                                + $"in place ({inPlace[offset + 2 * i]:R}, {inPlace[offset + 2 * i + 1]:R}), separate buffers ({dGate[i]:R}, {dUp[i]:R})");
            }
        }
    }

    static bool SameBits(float a, float b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b);

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

    /// <summary>Softmax and log-softmax backward and cross-entropy on spans equal the CPU accelerator's bit for bit (in place too), and check like it.</summary>
    [Test]
    public void SoftmaxGradientsAndCrossEntropyMatchTheCpuAcceleratorBitForBit()
    {
        using var acc = Accelerator.Create(AcceleratorKind.Cpu);
        foreach (var (rows, cols) in new[] { (7, 301), (2, 70_000) }) // 70000: a row split across cores
        {
            int n = rows * cols;
            var logits = TestData.Logits(n, seed: 6, scale: 8f);
            for (int i = 0; i < n; i += 11) logits[i] = float.NegativeInfinity;
            var dy = TestData.Logits(n, seed: 7, scale: 3f);
            using var yb = acc.Allocate<float>(n);
            using var dyb = acc.Allocate<float>(dy);
            using var dxb = acc.Allocate<float>(n);
            foreach (bool log in new[] { false, true })
            {
                var y = new float[n];
                if (log) CpuKernels.LogSoftmax(logits, y, rows, cols); else CpuKernels.Softmax(logits, y, rows, cols);
                yb.CopyFrom(y);
                var dx = new float[n];
                var inPlace = dy.ToArray();
                if (log)
                {
                    CpuKernels.LogSoftmaxBackward(y, dy, dx, rows, cols);
                    CpuKernels.LogSoftmaxBackward(y, inPlace, inPlace, rows, cols);
                    acc.LogSoftmaxBackward(yb, dyb, dxb, rows, cols);
                }
                else
                {
                    CpuKernels.SoftmaxBackward(y, dy, dx, rows, cols);
                    CpuKernels.SoftmaxBackward(y, inPlace, inPlace, rows, cols);
                    acc.SoftmaxBackward(yb, dyb, dxb, rows, cols);
                }
                Assert.That(dx, Is.EqualTo(dxb.ToArray()).AsCollection, $"{(log ? "log-" : "")}softmax backward {rows}x{cols}");
                Assert.That(inPlace, Is.EqualTo(dx).AsCollection, $"{(log ? "log-" : "")}softmax backward {rows}x{cols} into dy");
            }
            var random = new Random(8);
            int[] targets = [.. Enumerable.Range(0, rows).Select(r => r == 1 ? -100 : r == 3 ? cols : random.Next(cols))];
            var options = new CrossEntropyOptions { LabelSmoothing = 0.1f, GradientScale = 0.5f };
            var losses = new float[rows];
            var grad = new float[n];
            CpuKernels.CrossEntropy(logits, targets, losses, grad, rows, cols, options);
            using var zb = acc.Allocate<float>(logits);
            using var tb = acc.Allocate<int>(targets);
            using var lb = acc.Allocate<float>(rows);
            acc.CrossEntropy(zb, tb, lb, dxb, rows, cols, options);
            Assert.That(losses, Is.EqualTo(lb.ToArray()).AsCollection, $"cross-entropy losses {rows}x{cols}");
            Assert.That(grad, Is.EqualTo(dxb.ToArray()).AsCollection, $"cross-entropy gradient {rows}x{cols}");
            var alone = new float[rows];
            var overwritten = logits.ToArray();
            CpuKernels.CrossEntropy(logits, targets, alone, default, rows, cols, options);
            CpuKernels.CrossEntropy(overwritten, targets, losses, overwritten, rows, cols, options);
            Assert.That(alone, Is.EqualTo(lb.ToArray()).AsCollection, "losses without the gradient");
            Assert.That(overwritten, Is.EqualTo(grad).AsCollection, "the gradient over the logits");
        }
        var s = new float[12];
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.SoftmaxBackward(s, s.AsSpan(0, 11), new float[12], 3, 4))!.ParamName, Is.EqualTo("dy"));
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.LogSoftmaxBackward(s, s, s.AsSpan(1, 11).ToArray().AsSpan(), 3, 4))!.ParamName, Is.EqualTo("dx"));
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.SoftmaxBackward(s.AsSpan(0, 10), s.AsSpan(0, 10), s.AsSpan(2, 10), 2, 5))!.ParamName, Is.EqualTo("dx"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => CpuKernels.SoftmaxBackward(s, s, s, 3, 0))!.ParamName, Is.EqualTo("cols"));
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.CrossEntropy(s, new int[3], s.AsSpan(0, 3), default, 3, 4))!.ParamName, Is.EqualTo("losses"));
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.CrossEntropy(s, new int[2], new float[3], default, 3, 4))!.ParamName, Is.EqualTo("targets"));
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.CrossEntropy(s, new int[3], new float[3], s.AsSpan(1, 11).ToArray(), 3, 4))!.ParamName, Is.EqualTo("dLogits"));
        Assert.That(Assert.Throws<ArgumentException>(() => CpuKernels.CrossEntropy(s, new int[3], new float[3], s.AsSpan(0, 11), 3, 4))!.ParamName, Is.EqualTo("dLogits"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => CpuKernels.CrossEntropy(s, new int[3], new float[3], default, 3, 4,
            new CrossEntropyOptions { LabelSmoothing = 1.5f }))!.ParamName, Is.EqualTo("options.LabelSmoothing"));
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
