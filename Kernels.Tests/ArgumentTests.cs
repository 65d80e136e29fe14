using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// Slice and copy bounds, and disposing an accelerator. The bad-input matrix of the ops (every op x every fault: null and
/// default views, lengths, shapes, foreign and disposed buffers, overlap, unknown units, non-finite parameters) is
/// table-driven in <see cref="Hardening.BadInputTests"/>.
/// </summary>
public sealed class ArgumentTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    DeviceBuffer<float> Filled(int n, float value = 1f) => Acc.Allocate<float>(Enumerable.Repeat(value, n).ToArray());

    [Test]
    public void SliceBoundsAreChecked()
    {
        using var x = Filled(10);
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => x.Slice(11, 0))!.ParamName, Is.EqualTo("offset"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => x.Slice(5, 6))!.ParamName, Is.EqualTo("length"));
        Assert.That(Assert.Throws<ArgumentException>(() => x.CopyFrom(new float[9]))!.ParamName, Is.EqualTo("source"));
        Assert.That(Assert.Throws<ArgumentException>(() => x.CopyTo(new float[11]))!.ParamName, Is.EqualTo("destination"));
    }

    [Test]
    public void AllocateAndWrapArgumentsAreChecked()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Acc.Allocate<float>(-1))!;
        Assert.That((e.ParamName, e.ActualValue), Is.EqualTo(("length", (object)-1L)));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Acc.Allocate<float>(long.MaxValue))!.Message, Does.Contain("overflows"));
        Assert.That(Assert.Throws<ArgumentNullException>(() => Acc.Wrap<float>(0, 4))!.ParamName, Is.EqualTo("nativeHandle"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Acc.Wrap<float>(1, -1))!.ParamName, Is.EqualTo("length"));
        // Was an OverflowException from a checked multiplication; now named like Allocate's.
        e = Assert.Throws<ArgumentOutOfRangeException>(() => Acc.Wrap<float>(1, long.MaxValue / 2))!;
        Assert.That((e.ParamName, e.Message.Contains("overflows")), Is.EqualTo(("length", true)));
        using var x = Filled(10);
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => x.Slice(-1, 2))!.ParamName, Is.EqualTo("offset"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => x.Slice(2, -1))!.ParamName, Is.EqualTo("length"));
    }

    [Test]
    public void DisposingTheAcceleratorFreesItsBuffers()
    {
        var acc = Accelerator.Create(Kind);
        var buffer = acc.Allocate<float>(new float[16]);
        acc.Dispose();
        Assert.That(buffer.IsDisposed, Is.True);
        Assert.Throws<ObjectDisposedException>(() => buffer.ToArray());
        Assert.Throws<ObjectDisposedException>(() => acc.Allocate<float>(4));
        acc.Dispose(); // idempotent
    }
}
