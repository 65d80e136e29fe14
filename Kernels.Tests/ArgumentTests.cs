using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>Bad calls fail with an exception that names the argument, and leave the output untouched.</summary>
public sealed class ArgumentTests(AcceleratorKind kind) : AcceleratorTest(kind)
{
    const float Sentinel = 4242f;

    DeviceBuffer<float> Filled(int n, float value = 1f) => Acc.Allocate<float>(Enumerable.Repeat(value, n).ToArray());

    void AssertUntouched(DeviceBuffer<float> y) => Assert.That(y.ToArray(), Is.All.EqualTo(Sentinel), "the output was written by a rejected call");

    [Test]
    public void LengthMismatchNamesTheOutput()
    {
        using var x = Filled(10);
        using var y = Filled(11, Sentinel);
        var e = Assert.Throws<ArgumentException>(() => Acc.Apply(Activation.Gelu, x, y))!;
        Assert.That(e.ParamName, Is.EqualTo("y"));
        Assert.That(e.Message, Does.Contain("11").And.Contain("10"));
        AssertUntouched(y);
    }

    [Test]
    public void RowsTimesColsMustMatch()
    {
        using var x = Filled(100);
        using var y = Filled(100, Sentinel);
        var e = Assert.Throws<ArgumentException>(() => Acc.Softmax(x, y, 4, 30))!;
        Assert.That(e.ParamName, Is.EqualTo("x"));
        Assert.That(e.Message, Does.Contain("120"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Acc.Softmax(x, y, -1, 100))!.ParamName, Is.EqualTo("rows"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Acc.LogSoftmax(x, y, 100, 0))!.ParamName, Is.EqualTo("cols"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Acc.Softmax(x, y, long.MaxValue, 4))!.Message, Does.Contain("overflows"));
        AssertUntouched(y);
    }

    [Test]
    public void GluShapesAreChecked()
    {
        using var packed = Filled(20);
        using var y = Filled(10, Sentinel);
        Assert.That(Assert.Throws<ArgumentException>(() => Acc.GluPacked(GatedUnit.SwiGlu, packed, y, 2, 4))!.ParamName, Is.EqualTo("packed"));
        using var gate = Filled(10);
        using var up = Filled(9);
        Assert.That(Assert.Throws<ArgumentException>(() => Acc.Glu(GatedUnit.GeGlu, gate, up, y))!.ParamName, Is.EqualTo("up"));
        using var alpha = Filled(3);
        Assert.That(Assert.Throws<ArgumentException>(() => Acc.PRelu(gate, alpha, y))!.Message, Does.Contain("multiple"));
        AssertUntouched(y);
    }

    [Test]
    public void DisposedBufferIsNamed()
    {
        var x = Filled(8);
        using var y = Filled(8, Sentinel);
        x.Dispose();
        var e = Assert.Throws<ObjectDisposedException>(() => Acc.Apply(Activation.Relu, x, y))!;
        Assert.That(e.Message, Does.Contain("x"));
        Assert.Throws<ObjectDisposedException>(() => x.ToArray());
        x.Dispose(); // idempotent
        AssertUntouched(y);
    }

    [Test]
    public void BufferOfAnotherAcceleratorIsRejected()
    {
        using var other = Accelerator.Create(AcceleratorKind.Cpu);
        using var foreign = other.Allocate<float>(new float[8]);
        using var y = Filled(8, Sentinel);
        var e = Assert.Throws<ArgumentException>(() => Acc.Apply(Activation.Tanh, foreign, y))!;
        Assert.That(e.ParamName, Is.EqualTo("x"));
        Assert.That(e.Message, Does.Contain("belongs to"));
        AssertUntouched(y);
    }

    [Test]
    public void PartialOverlapIsRejectedExactInPlaceIsNot()
    {
        using var buffer = Filled(100, Sentinel);
        var e = Assert.Throws<ArgumentException>(() => Acc.Apply(Activation.Sigmoid, buffer.Slice(0, 50), buffer.Slice(10, 50)))!;
        Assert.That(e.ParamName, Is.EqualTo("y"));
        AssertUntouched(buffer);
        Assert.DoesNotThrow(() => Acc.Apply(Activation.Relu, buffer.Slice(10, 50), buffer.Slice(10, 50)));
        Assert.DoesNotThrow(() => Acc.Apply(Activation.Relu, buffer.Slice(0, 50), buffer.Slice(50, 50)));
    }

    [Test]
    public void DefaultViewAndNullActivation()
    {
        using var y = Filled(4, Sentinel);
        Assert.That(Assert.Throws<ArgumentNullException>(() => Acc.Apply(Activation.Relu, default, y))!.ParamName, Is.EqualTo("x"));
        Assert.That(Assert.Throws<ArgumentNullException>(() => Acc.Apply(null!, y, y))!.ParamName, Is.EqualTo("activation"));
        AssertUntouched(y);
    }

    [Test]
    public void NonFiniteParametersAreRejected()
    {
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Activation.LeakyRelu(float.NaN))!.ParamName, Is.EqualTo("alpha"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Activation.Elu(float.PositiveInfinity))!.ParamName, Is.EqualTo("alpha"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Activation.Swish(float.NaN))!.ParamName, Is.EqualTo("beta"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Activation.Softplus(0f))!.ParamName, Is.EqualTo("beta"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Activation.Softplus(1f, float.NaN))!.ParamName, Is.EqualTo("threshold"));
    }

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
