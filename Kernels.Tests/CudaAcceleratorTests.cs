using GpuActivations.Cuda;
using GpuActivations.Device;
using NUnit.Framework;

namespace GpuActivations.Tests.Cuda;

/// <summary>
/// The public API over the CUDA backend without a GPU: <see cref="CudaAccelerator"/> on the fake driver
/// (FakeCuda/fake_libcuda.c), with the shared kernels compiled by NVRTC for its sm_90 and emulated by the fake. On a
/// machine with a GPU the accelerator fixtures (<see cref="AcceleratorFixtures"/>) run the whole suite on the real one.
/// </summary>
[TestFixture]
[NonParallelizable] // one test points the process-wide driver at the fake
public class CudaAcceleratorTests
{
    string _path = null!;
    FakeCudaControls _fake = null!;
    CudaNative _driver = null!;
    NvrtcCompiler _compiler = null!;

    [OneTimeSetUp]
    public void LoadFakeDriver()
    {
        _path = CudaTestEnvironment.RequireFakeDriver();
        _compiler = CudaTestEnvironment.RequireNvrtc();
        _fake = new FakeCudaControls(_path);
        _driver = CudaNative.Load(_path).Require("the fake CUDA driver");
    }

    CudaAccelerator CreateAccelerator() => CudaAccelerator.Create(CudaDevice.Create(0, _driver, _compiler));

    static float[] Random(int n, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 16 - 8)).ToArray();
    }

    static double Silu(double x) => x / (1 + Math.Exp(-x));

    [Test]
    public void Ops_RunThroughTheAccelerator()
    {
        using CudaAccelerator acc = CreateAccelerator();
        Assert.That(acc.Kind, Is.EqualTo(AcceleratorKind.Cuda));
        Assert.That(acc.Info.Vendor, Is.EqualTo("NVIDIA"));
        Assert.That(acc.Info.ComputeUnits, Is.EqualTo(4));
        Assert.That(acc.Info.Details, Does.StartWith("compute capability 9.0 (sm_90), driver 12.4, NVRTC "));

        const int n = 1001;
        float[] data = Random(n, 1);
        using DeviceBuffer<float> x = acc.Allocate<float>(data);
        using DeviceBuffer<float> y = acc.Allocate<float>(n);

        _fake.Use(DeviceAccelerator.DeviceForm(Activation.Relu));
        acc.Apply(Activation.Relu, x, y);
        Assert.That(_fake.LastKernel, Is.EqualTo(ElementwiseKernels.UnaryVec4));
        Assert.That(y.ToArray(), Is.EqualTo(data.Select(v => v < 0 ? 0f : v).ToArray()));
        acc.Apply(Activation.Relu, x.Slice(1, n - 1), y.Slice(1, n - 1));
        Assert.That(_fake.LastKernel, Is.EqualTo(ElementwiseKernels.Unary), "a view off 16 bytes takes the scalar kernel");

        // SwiGLU over separate buffers and over a packed [rows, 2d] projection.
        const int rows = 8, d = 64;
        float[] gate = Random(rows * d, 2), up = Random(rows * d, 3);
        float[] packed = new float[rows * 2 * d];
        for (int r = 0; r < rows; r++)
        {
            gate.AsSpan(r * d, d).CopyTo(packed.AsSpan(r * 2 * d));
            up.AsSpan(r * d, d).CopyTo(packed.AsSpan(r * 2 * d + d));
        }

        using DeviceBuffer<float> g = acc.Allocate<float>(gate), u = acc.Allocate<float>(up), p = acc.Allocate<float>(packed);
        using DeviceBuffer<float> o = acc.Allocate<float>(rows * d), op = acc.Allocate<float>(rows * d);
        _fake.Use(DeviceAccelerator.DeviceForm(Activation.Silu));
        acc.SwiGlu(g, u, o);
        acc.GluPacked(GatedUnit.SwiGlu, p, op, rows, d);
        Assert.That(_fake.LastKernel, Is.EqualTo(GluKernels.GluVec4));
        float[] swiglu = o.ToArray(), swigluPacked = op.ToArray();
        for (int i = 0; i < rows * d; i++)
        {
            double want = Silu(gate[i]) * up[i];
            Assert.That(swiglu[i], Is.EqualTo(want).Within(1e-6 * Math.Max(1, Math.Abs(want))), $"separate {i}");
            Assert.That(swigluPacked[i], Is.EqualTo(want).Within(1e-6 * Math.Max(1, Math.Abs(want))), $"packed {i}");
        }

        // Softmax: a warp per row, a block per row, and a long single row split across blocks.
        foreach ((int r, int c, string kernel) in new[] { (50, 100, "ga_softmax_registers_4"), (40, 3000, "ga_softmax_registers_4"), (1, 100_000, SoftmaxKernels.Finish) })
        {
            float[] logits = Random(r * c, r + c);
            using DeviceBuffer<float> sx = acc.Allocate<float>(logits), sy = acc.Allocate<float>(r * c);
            acc.Softmax(sx, sy, r, c);
            Assert.That(_fake.LastKernel, Is.EqualTo(kernel), $"{r}x{c}");
            float[] probabilities = sy.ToArray();
            for (int row = 0; row < r; row++)
                Assert.That(probabilities.AsSpan(row * c, c).ToArray().Sum(v => (double)v), Is.EqualTo(1).Within(1e-5), $"{r}x{c} row {row}");
            acc.LogSoftmax(sx, sy, r, c);
            Assert.That(sy.ToArray().Take(c).Sum(v => Math.Exp(v)), Is.EqualTo(1).Within(1e-5));
        }

        acc.Synchronize();
    }

    [Test]
    public void CallsFromParallelForThreads_Work()
    {
        using CudaAccelerator acc = CreateAccelerator();
        _fake.Use(DeviceAccelerator.DeviceForm(Activation.Relu));
        long contextErrors = _fake.ContextErrors;
        Parallel.For(0, 16, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            _fake.ClearCurrent();
            float[] data = Random(777, 10 + i);
            using DeviceBuffer<float> x = acc.Allocate<float>(data);
            acc.Apply(Activation.Relu, x, x);
            float[] back = x.ToArray();
            for (int k = 0; k < data.Length; k++)
                if (back[k] != Math.Max(data[k], 0f)) throw new AssertionException($"thread {i}, element {k}");
        });
        Assert.That(_fake.ContextErrors, Is.EqualTo(contextErrors));
    }

    [Test]
    public void BorrowedPointers_AreUsedAndNeverFreed()
    {
        using CudaAccelerator acc = CreateAccelerator();
        using CudaBuffer engineMemory = acc.Device.Allocate<float>(100); // memory an engine owns
        long live = _fake.LiveAllocations;
        using (DeviceBuffer<float> view = acc.Wrap<float>((nint)engineMemory.Pointer, 100))
        {
            float[] data = Random(100, 4);
            view.CopyFrom(data);
            _fake.Use(DeviceAccelerator.DeviceForm(Activation.Relu));
            acc.Apply(Activation.Relu, view, view);
            Assert.That(view.ToArray(), Is.EqualTo(data.Select(v => Math.Max(v, 0f)).ToArray()));
        }

        Assert.That(_fake.LiveAllocations, Is.EqualTo(live), "disposing the wrapper frees nothing");
    }

    [Test]
    public void Dispose_FreesEveryBufferAndTheContext_ForgottenBuffersAreFreedByTheirHandles()
    {
        long live = _fake.LiveAllocations;
        int retains = _fake.PrimaryRetains;
        CudaAccelerator acc = CreateAccelerator();
        DeviceBuffer<float> kept = acc.Allocate<float>(10);
        AllocateAndForget(acc, 200);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.That(_fake.LiveAllocations - live, Is.LessThan(50), "forgotten buffers are freed by their SafeHandles");

        acc.Dispose();
        Assert.That(_fake.LiveAllocations, Is.EqualTo(live));
        Assert.That(_fake.PrimaryRetains, Is.EqualTo(retains));
        Assert.That(() => kept.ToArray(), Throws.TypeOf<ObjectDisposedException>());
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static void AllocateAndForget(Accelerator acc, int count)
    {
        for (int i = 0; i < count; i++) acc.Allocate<float>(1000);
    }

    /// <summary>
    /// The host side of one op from C# (argument checks, views to regions, module and kernel lookup, context check,
    /// cuLaunchKernel's argument packing) on 4 elements, where the fake's own work is a few comparisons and a mutex: an
    /// upper bound of the library's share of a launch, without the driver's. Explicit: a measurement, not a check.
    /// </summary>
    [Test, Explicit("measurement")]
    public void HostCostPerOp_OnTheFakeDriver()
    {
        using CudaAccelerator acc = CreateAccelerator();
        using DeviceBuffer<float> x = acc.Allocate<float>([1f, -2f, 3f, -4f]), y = acc.Allocate<float>(4);
        _fake.Use(DeviceAccelerator.DeviceForm(Activation.Silu));
        foreach ((string name, Action op) in new (string, Action)[]
        {
            ("Apply(Silu), 4 floats", () => acc.Apply(Activation.Silu, x, y)),
            ("SwiGlu, 4 floats", () => acc.SwiGlu(x, x, y)),
            ("Softmax 1x4", () => acc.Softmax(x, y, 1, 4)),
        })
        {
            for (int i = 0; i < 20_000; i++) op();
            double best = double.MaxValue;
            for (int round = 0; round < 5; round++)
            {
                var watch = System.Diagnostics.Stopwatch.StartNew();
                for (int i = 0; i < 100_000; i++) op();
                best = Math.Min(best, watch.Elapsed.TotalNanoseconds / 100_000);
            }

            TestContext.Out.WriteLine($"{name}: {best:F0} ns per call");
        }
    }

    /// <summary>The public entry points, with the process-wide driver pointed at the fake: probe, create, wrap.</summary>
    [Test]
    public void PublicApi_OnTheFakeDriver_ProbesCreatesAndWraps()
    {
        string? before = Environment.GetEnvironmentVariable(CudaNative.LibraryVariable);
        try
        {
            Environment.SetEnvironmentVariable(CudaNative.LibraryVariable, _path);
            CudaNative.ResetShared();

            AcceleratorAvailability cuda = Accelerator.Probe(AcceleratorKind.Cuda);
            Assert.That(cuda.Reason, Is.Null);
            AcceleratorInfo info = cuda.Devices.Single();
            Assert.That(info.Name, Is.EqualTo("GpuActivations fake CUDA device 0"));
            Assert.That(info.Details, Does.Contain("compute capability 9.0 (sm_90)").And.Contain("driver 12.4"));
            Assert.That(info.MemoryBytes, Is.EqualTo(80L << 30));

            using Accelerator acc = Accelerator.Create(AcceleratorKind.Cuda);
            Assert.That(acc, Is.InstanceOf<CudaAccelerator>());
            _fake.Use(DeviceAccelerator.DeviceForm(Activation.Relu));
            using DeviceBuffer<float> x = acc.Allocate<float>([-1f, 2f, -3f, 4f, float.NaN]);
            acc.Apply(Activation.Relu, x, x);
            float[] back = x.ToArray();
            Assert.That(back.Take(4), Is.EqualTo(new[] { 0f, 2f, 0f, 4f }));
            Assert.That(back[4], Is.NaN);

            // An engine's context and stream, borrowed: disposing the wrapper releases neither.
            CudaDevice engine = ((CudaAccelerator)acc).Device;
            int retains = _fake.PrimaryRetains;
            long streams = _fake.LiveStreams;
            using (Accelerator wrapped = Accelerator.WrapCuda(engine.Context, engine.Stream))
            {
                Assert.That(wrapped.Info.Details, Does.StartWith("wrapped context and stream"));
                using DeviceBuffer<float> shared = wrapped.Wrap<float>(x.Storage.Handle, 5);
                wrapped.Apply(Activation.Relu, shared, shared);
                wrapped.Synchronize();
            }

            Assert.That(_fake.PrimaryRetains, Is.EqualTo(retains));
            Assert.That(_fake.LiveStreams, Is.EqualTo(streams));
            Assert.That(x.ToArray().Take(4), Is.EqualTo(new[] { 0f, 2f, 0f, 4f }));
        }
        finally
        {
            Environment.SetEnvironmentVariable(CudaNative.LibraryVariable, before);
            CudaNative.ResetShared();
        }
    }
}
