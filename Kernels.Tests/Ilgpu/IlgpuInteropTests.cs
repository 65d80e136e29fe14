using GpuActivations.Cpu;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// What an engine that already holds an ILGPU accelerator does: pass its own views and streams to the ops, call the
/// library's device functions from its own kernel, and bring its own activation. On ILGPU's CPU accelerator, both on the
/// SIMD path (the default) and running the ILGPU kernels.
/// </summary>
[TestFixture(false)]
[TestFixture(true)]
public sealed class IlgpuInteropTests(bool runKernels)
{
    Context context = null!;
    ILGPU.Runtime.Accelerator device = null!;
    Accelerator ops = null!;

    [OneTimeSetUp]
    public void Create()
    {
        context = Context.Create(b => b.CPU(CPUDevice.Default).EnableAlgorithms());
        device = context.GetCPUDevice(0).CreateCPUAccelerator(context);
        ops = Accelerator.FromIlgpu(device, runKernelsOnCpu: runKernels);
    }

    [OneTimeTearDown]
    public void Dispose()
    {
        ops.Dispose();
        device.Dispose();
        context.Dispose();
    }

    static float[] Expected(Activation activation, float[] x)
    {
        var y = new float[x.Length];
        CpuKernels.Apply(activation, x, y);
        return y;
    }

    [Test]
    public void OpsTakeTheEnginesViewsWithoutCopying()
    {
        var data = TestData.Values(1003, seed: 5);
        using var x = device.Allocate1D(data);
        using var y = device.Allocate1D<float>(data.Length);
        ops.Apply(Activation.Silu, x.View, y.View);
        Assert.That(y.GetAsArray1D(), Is.EqualTo(Expected(Activation.Silu, data)), "bit for bit the SIMD path");
        ops.Apply(Activation.Gelu, x.View.SubView(3, 500), y.View.SubView(3, 500));
        Assert.That(y.GetAsArray1D().AsSpan(3, 500).ToArray(), Is.EqualTo(Expected(Activation.Gelu, data[3..503])));
    }

    [Test]
    public void InPlaceOnOneViewAndPartialOverlapRejected()
    {
        var data = TestData.Values(257, seed: 6);
        using var x = device.Allocate1D(data);
        ops.Apply(Activation.Tanh, x.View, x.View);
        Assert.That(x.GetAsArray1D(), Is.EqualTo(Expected(Activation.Tanh, data)));
        var e = Assert.Throws<ArgumentException>(() => ops.Apply(Activation.Tanh, x.View.SubView(0, 200), x.View.SubView(1, 200)))!;
        Assert.That(e.ParamName, Is.EqualTo("y"));
    }

    [Test]
    public void AnExplicitStreamQueuesTheOps()
    {
        var data = TestData.Values(4096, seed: 7);
        using var stream = device.CreateStream();
        using var onStream = Accelerator.FromIlgpu(device, stream, runKernels);
        using var x = device.Allocate1D(data);
        using var y = device.Allocate1D<float>(data.Length);
        onStream.Apply(Activation.Sigmoid, x.View, y.View);
        stream.Synchronize();
        Assert.That(y.GetAsArray1D(), Is.EqualTo(Expected(Activation.Sigmoid, data)));
    }

    [Test]
    public void AStreamOfAnotherAcceleratorIsRejected()
    {
        using var other = context.GetCPUDevice(0).CreateCPUAccelerator(context);
        using var stream = other.CreateStream();
        var e = Assert.Throws<ArgumentException>(() => Accelerator.FromIlgpu(device, stream))!;
        Assert.That(e.ParamName, Is.EqualTo("stream"));
    }

    [Test]
    public void ViewsOfAnotherAcceleratorOrDisposedBuffersAreRejected()
    {
        using var other = context.GetCPUDevice(0).CreateCPUAccelerator(context);
        using var foreign = other.Allocate1D<float>(16);
        using var y = device.Allocate1D<float>(16);
        var e = Assert.Throws<ArgumentException>(() => ops.Apply(Activation.Relu, foreign.View, y.View))!;
        Assert.That(e.ParamName, Is.EqualTo("x"));

        // Converted while alive, then disposed by the engine: the library sees the ILGPU buffer's state.
        var x = device.Allocate1D<float>(16);
        BufferView<float> converted = x.View;
        x.Dispose();
        var d = Assert.Throws<ObjectDisposedException>(() => ops.Apply(Activation.Relu, converted, y.View))!;
        Assert.That(d.ObjectName, Is.EqualTo("x"));
        // ILGPU clears a disposed buffer's view, so it converts like a default view.
        Assert.That(Assert.Throws<ArgumentNullException>(() => ops.Apply(Activation.Relu, x.View, y.View))!.ParamName, Is.EqualTo("x"));
        Assert.That(Assert.Throws<ArgumentNullException>(() => ops.Apply(Activation.Relu, default(ArrayView<float>), y.View))!.ParamName, Is.EqualTo("x"));
    }

    [Test]
    public void StorageTypesAsTheEngineHoldsThem()
    {
        var data = TestData.Values(300, seed: 8);
        var bf = data.Select(v => (BFloat16)v).ToArray();
        using var x = device.Allocate1D(bf);
        using var y = device.Allocate1D<BFloat16>(bf.Length);
        ops.Apply(Activation.Silu, x.View, y.View);
        var expected = new BFloat16[bf.Length];
        CpuKernels.Apply(Activation.Silu, bf, expected);
        Assert.That(y.GetAsArray1D(), Is.EqualTo(expected));
    }

    /// <summary>An engine's kernel with the activation fused into its epilogue: y = silu(a * x + b).</summary>
    static void FusedEpilogue(Index1D i, ArrayView<float> x, ArrayView<float> y, float a, float b)
        => y[i] = ActivationFunctions<HostFma>.Silu(a * x[i] + b);

    [Test]
    public void AnEnginesKernelCallsTheDeviceFunctions()
    {
        var data = TestData.Values(1000, seed: 9);
        using var x = device.Allocate1D(data);
        using var y = device.Allocate1D<float>(data.Length);
        var kernel = device.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float, float>(FusedEpilogue);
        kernel((int)x.Length, x.View, y.View, 0.5f, 0.25f);
        device.Synchronize();
        var got = y.GetAsArray1D();
        var z = data.Select(v => 0.5f * v + 0.25f).ToArray();
        Assert.That(got, Is.EqualTo(Expected(Activation.Silu, z)), "the library's own SiLU, bit for bit");
        var reference = z.Select(v => GpuActivations.Reference.ScalarReference.Evaluate(GpuActivations.Reference.ActivationId.Silu, v, 0, 0, 0)).ToArray();
        Ulp.AssertClose(z, got, reference, 4, "fused silu");
    }
}
