using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>Every activation of <see cref="OpTable"/> on every accelerator, against the double reference.</summary>
public sealed class ElementwiseTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    static IEnumerable<ActivationCase> Cases => OpTable.Activations;

    [TestCaseSource(nameof(Cases))]
    public void EveryLengthFrom0To300(ActivationCase op)
    {
        var all = TestData.Values(300, seed: 300);
        for (int n = 0; n <= 300; n++)
        {
            var x = all[..n];
            var y = Run(x, n, (xv, yv) => Acc.Apply(op.Activation, xv, yv));
            Ulp.AssertClose(x, y, op.Expected(x), op.MaxUlp, $"{op} n={n}");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void LargeLengths(ActivationCase op)
    {
        foreach (int n in new[] { (1 << 20) + 3, 3_000_017 })
        {
            var x = TestData.Values(n, seed: n);
            var y = Run(x, n, (xv, yv) => Acc.Apply(op.Activation, xv, yv));
            Ulp.AssertClose(x, y, op.Expected(x), op.MaxUlp, $"{op} n={n}");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void SpecialValues(ActivationCase op)
    {
        var x = TestData.Special;
        var y = Run(x, x.Length, (xv, yv) => Acc.Apply(op.Activation, xv, yv));
        Ulp.AssertClose(x, y, op.Expected(x), op.MaxUlp, op.ToString());
    }

    [TestCaseSource(nameof(Cases))]
    public void ViewsAtOddOffsetsTouchOnlyTheirRange(ActivationCase op)
    {
        const int size = 1000;
        var data = TestData.Values(size, seed: 7);
        using var x = Acc.Allocate<float>(data);
        using var y = Acc.Allocate<float>(size);
        foreach (var (offset, length) in new[] { (1, 17), (3, 250), (5, 3), (7, 993), (999, 1) })
        {
            var sentinel = Enumerable.Repeat(-12345f, size).ToArray();
            y.CopyFrom(sentinel);
            Acc.Apply(op.Activation, x.Slice(offset, length), y.Slice(offset + 0, length));
            var got = y.ToArray();
            var input = data.AsSpan(offset, length);
            Ulp.AssertClose(input, got.AsSpan(offset, length), op.Expected(input), op.MaxUlp, $"{op} offset={offset} length={length}");
            Assert.That(got[..offset], Is.All.EqualTo(-12345f), "elements before the view were written");
            Assert.That(got[(offset + length)..], Is.All.EqualTo(-12345f), "elements after the view were written");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void InPlace(ActivationCase op)
    {
        foreach (int n in new[] { 1, 3, 17, 33, 1000, 200_003 })
        {
            var x = TestData.Values(n, seed: n + 1);
            using var buffer = Acc.Allocate<float>(x);
            Acc.Apply(op.Activation, buffer, buffer);
            Ulp.AssertClose(x, buffer.ToArray(), op.Expected(x), op.MaxUlp, $"{op} in place n={n}");
        }
    }

    [Test]
    public void LimitsKeepTheirSign()
    {
        float[] x = [float.NegativeInfinity];
        Assert.Multiple(() =>
        {
            foreach (var activation in new[] { Activation.Silu, Activation.Gelu, Activation.GeluTanh, Activation.Mish, Activation.QuickGelu })
            {
                float y = Run(x, 1, (xv, yv) => Acc.Apply(activation, xv, yv))[0];
                Assert.That(BitConverter.SingleToInt32Bits(y), Is.EqualTo(BitConverter.SingleToInt32Bits(-0f)), $"{activation}(-inf) must be -0, got {y}");
            }
            Assert.That(Run(x, 1, (xv, yv) => Acc.Apply(Activation.Elu(0.5f), xv, yv))[0], Is.EqualTo(-0.5f), "elu(-inf) = -alpha");
            Assert.That(Run([float.PositiveInfinity], 1, (xv, yv) => Acc.Apply(Activation.Gelu, xv, yv))[0], Is.EqualTo(float.PositiveInfinity));
            Assert.That(float.IsNaN(Run([float.NaN], 1, (xv, yv) => Acc.Apply(Activation.Relu, xv, yv))[0]), "relu(NaN) is NaN");
        });
    }
}
