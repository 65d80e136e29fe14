using GpuActivations.Reference;
using GpuActivations.Cuda;
using GpuActivations.Device;
using NUnit.Framework;

namespace GpuActivations.Tests.Cuda;

/// <summary>Finding the CUDA driver and NVRTC, and reporting their absence without throwing.</summary>
[TestFixture]
[NonParallelizable] // one test sets process environment variables
public class CudaDiscoveryTests
{
    private const string Missing = "/nonexistent/gpuactivations/libcuda-missing.so.1";

    [Test]
    public void DriverOverrideToMissingFile_IsReportedAbsentWithReason()
    {
        NativeLoad<CudaNative> load = default;
        Assert.DoesNotThrow(() => load = CudaNative.Load(Missing));
        Assert.That(load.IsLoaded, Is.False);
        Assert.That(load.FailureReason, Does.Contain(Missing).And.Contain("not found"));

        CudaEnumeration found = null!;
        Assert.DoesNotThrow(() => found = CudaDevice.Enumerate(Missing, null));
        Assert.That(found.IsAvailable, Is.False);
        Assert.That(found.Devices, Is.Empty);
        Assert.That(found.AbsentReason, Does.Contain(Missing));
    }

    [Test]
    public void EnvironmentOverride_IsHonouredByTheSharedLoader()
    {
        string? before = Environment.GetEnvironmentVariable(CudaNative.LibraryVariable);
        try
        {
            Environment.SetEnvironmentVariable(CudaNative.LibraryVariable, Missing);
            CudaNative.ResetShared();

            CudaEnumeration found = null!;
            Assert.DoesNotThrow(() => found = CudaDevice.Enumerate());
            Assert.That(found.IsAvailable, Is.False);
            Assert.That(found.AbsentReason, Is.EqualTo($"{Missing} not found"));
            Assert.That(CudaNative.Shared.FailureReason, Is.EqualTo($"{Missing} not found"));
            Assert.That(() => CudaDevice.Create(0),
                Throws.TypeOf<NotSupportedException>().With.Message.Contains(Missing));

            // The public API: CUDA is absent with the reason, creating it says why, wrapping an engine's context too.
            AcceleratorAvailability cuda = Accelerator.Probe(AcceleratorKind.Cuda);
            Assert.That(cuda.IsAvailable, Is.False);
            Assert.That(cuda.Devices, Is.Empty);
            Assert.That(cuda.Reason, Is.EqualTo($"{Missing} not found"));
            Assert.That(Accelerator.Enumerate().Select(d => d.Kind), Does.Not.Contain(AcceleratorKind.Cuda));
            Assert.That(() => Accelerator.Create(AcceleratorKind.Cuda),
                Throws.TypeOf<AcceleratorUnavailableException>().With.Message.Contains(Missing));
            Assert.That(() => Accelerator.WrapCuda(1, 1),
                Throws.TypeOf<AcceleratorUnavailableException>().With.Message.Contains(Missing));
            using (Accelerator best = Accelerator.Best())
                Assert.That(best.Kind, Is.Not.EqualTo(AcceleratorKind.Cuda));

            // The accelerator fixtures report it as skipped with that reason (unless GPUACTIVATIONS_REQUIRE names CUDA,
            // where its absence is a failure, and that is not a thing to trigger from inside another test).
            if (!AcceleratorFixtures.Required.Contains(AcceleratorKind.Cuda))
            {
                IgnoreException skipped = Assert.Throws<IgnoreException>(() => AcceleratorFixtures.CreateOrSkip(new AcceleratorTarget(AcceleratorKind.Cuda)))!;
                Assert.That(skipped.Message, Is.EqualTo($"Cuda is absent: {Missing} not found"));
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable(CudaNative.LibraryVariable, before);
            CudaNative.ResetShared();
        }
    }

    [Test]
    public void DefaultNames_AreTriedInOrder()
    {
        Assert.That(CudaLibraryLoader.Candidates(null, CudaNative.DefaultLibraryNames), Is.SameAs(CudaNative.DefaultLibraryNames));
        Assert.That(CudaLibraryLoader.Candidates("  ", CudaNative.DefaultLibraryNames), Is.SameAs(CudaNative.DefaultLibraryNames));
        Assert.That(CudaLibraryLoader.Candidates("/x/libcuda.so", CudaNative.DefaultLibraryNames), Is.EqualTo(new[] { "/x/libcuda.so" }));
        if (OperatingSystem.IsLinux())
        {
            Assert.That(CudaNative.DefaultLibraryNames, Is.EqualTo(new[] { "libcuda.so.1", "libcuda.so" }));
            Assert.That(NvrtcNative.DefaultLibraryNames,
                Is.EqualTo(new[] { "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so" }));
        }
    }

    [Test]
    public void NvrtcOverrideToMissingFile_IsReportedAbsentWithReason()
    {
        const string missingNvrtc = "/nonexistent/gpuactivations/libnvrtc-missing.so";
        NativeLoad<NvrtcNative> load = default;
        Assert.DoesNotThrow(() => load = NvrtcNative.Load(missingNvrtc));
        Assert.That(load.IsLoaded, Is.False);
        Assert.That(load.FailureReason, Does.StartWith("NVRTC not found").And.Contain(missingNvrtc));
    }

    [Test]
    public void ThisMachine_ReportsWhetherCudaIsPresent()
    {
        CudaEnumeration found = null!;
        Assert.DoesNotThrow(() => found = CudaDevice.Enumerate());
        if (!found.IsAvailable)
        {
            Assert.That(found.AbsentReason, Is.Not.Null.And.Not.Empty);
            TestContext.Out.WriteLine($"CUDA is absent on this machine: {found.AbsentReason}");
            return;
        }

        Assert.That(found.AbsentReason, Is.Null);
        foreach (CudaDeviceInfo device in found.Devices)
        {
            TestContext.Out.WriteLine(device);
            Assert.That(device.Name, Is.Not.Empty);
            Assert.That(device.ComputeMajor, Is.GreaterThanOrEqualTo(3));
            Assert.That(device.MultiprocessorCount, Is.Positive);
            Assert.That(device.TotalMemoryBytes, Is.Positive);
        }
    }

    [Test]
    public void FakeDriverWithoutDevices_IsReportedAsCuInitNoDevice()
    {
        string path = CudaTestEnvironment.RequireFakeDriver();
        var controls = new FakeCudaControls(path);
        controls.SetDeviceCount(0);
        try
        {
            CudaEnumeration found = CudaDevice.Enumerate(path, null);
            Assert.That(found.IsAvailable, Is.False);
            Assert.That(found.AbsentReason, Is.EqualTo("cuInit: CUDA_ERROR_NO_DEVICE"));
        }
        finally
        {
            controls.SetDeviceCount(1);
        }
    }

    [Test]
    public void FakeDriverWithoutNvrtc_IsReportedAsNvrtcNotFound()
    {
        string path = CudaTestEnvironment.RequireFakeDriver();
        CudaEnumeration found = CudaDevice.Enumerate(path, "/nonexistent/gpuactivations/libnvrtc.so");
        Assert.That(found.IsAvailable, Is.False);
        Assert.That(found.AbsentReason, Does.StartWith("NVRTC not found").And.Contain("1 CUDA device(s) present"));
    }

    [Test]
    public void FakeDriver_IsEnumerated()
    {
        string path = CudaTestEnvironment.RequireFakeDriver();
        CudaTestEnvironment.RequireNvrtc();
        CudaEnumeration found = CudaDevice.Enumerate(path, null);
        Assert.That(found.AbsentReason, Is.Null);
        CudaDeviceInfo device = found.Devices.Single();
        Assert.That(device.Name, Is.EqualTo("GpuActivations fake CUDA device 0"));
        Assert.That(device.Architecture, Is.EqualTo("sm_90"));
        Assert.That(device.MultiprocessorCount, Is.EqualTo(4));
        Assert.That(device.TotalMemoryBytes, Is.EqualTo(80L << 30));
        Assert.That(device.DriverVersion, Is.EqualTo(12040));
        Assert.That(device.TheoreticalBandwidthGBs, Is.EqualTo(2.0 * 2_619_000e3 * 640 / 1e9).Within(1e-6));
        Assert.That(device.ToString(), Does.Contain("sm_90").And.Contain("driver 12.4"));
    }
}

/// <summary>
/// The device itself, on two drivers: "real" (a CUDA GPU; ignored with the reason when there is none) and "fake"
/// (the CPU stand-in built from FakeCuda/fake_libcuda.c, which checks context-per-thread, bounds, alignment and the
/// launch rules of the shared kernels and emulates them; ignored when no C compiler is there). Both need NVRTC: the
/// shared kernels are really compiled for the device's architecture either way; only the real driver runs them.
/// </summary>
[TestFixture("real")]
[TestFixture("fake")]
[NonParallelizable]
public class CudaDeviceTests(string driverKind)
{
    private CudaNative _driver = null!;
    private NvrtcCompiler _compiler = null!;
    private CudaDevice _device = null!;
    private FakeCudaControls? _fake;

    private bool IsFake => driverKind == "fake";

    [OneTimeSetUp]
    public void OpenDevice()
    {
        if (IsFake)
        {
            string path = CudaTestEnvironment.RequireFakeDriver();
            _compiler = CudaTestEnvironment.RequireNvrtc();
            _fake = new FakeCudaControls(path);
            _driver = CudaNative.Load(path).Require("the fake CUDA driver");
        }
        else
        {
            CudaEnumeration found = CudaDevice.Enumerate();
            if (!found.IsAvailable)
                Assert.Ignore($"no CUDA device: {found.AbsentReason}");
            _driver = CudaNative.Shared.Require("CUDA");
            _compiler = NvrtcCompiler.Shared.Require("NVRTC");
        }

        _device = CudaDevice.Create(0, _driver, _compiler);
        TestContext.Out.WriteLine(_device);
    }

    [OneTimeTearDown]
    public void CloseDevice() => _device?.Dispose();

    private long _contextErrorsBefore;

    [SetUp]
    public void CountContextErrors() => _contextErrorsBefore = _fake?.ContextErrors ?? 0;

    [TearDown]
    public void NoContextErrors()
    {
        if (_fake is not null)
            Assert.That(_fake.ContextErrors - _contextErrorsBefore, Is.Zero, "a driver call ran without its context current on the calling thread");
    }

    /// <summary>Tells the fake driver which activation the next unary and GLU launches compute (the real GPU runs the cubin).</summary>
    private void Use(DeviceActivation activation) => _fake?.Use(activation);

    /// <summary>On the fake driver, the kernel and shape of the last launch.</summary>
    private void AssertLastLaunch(string kernel, uint? block = null, uint? grid = null)
    {
        if (_fake is null)
            return;
        Assert.That(_fake.LastKernel, Is.EqualTo(kernel));
        if (block is { } b)
            Assert.That(_fake.LastBlock * _fake.LastBlockY, Is.EqualTo(b), "threads per block");
        if (grid is { } g)
            Assert.That(_fake.LastGrid, Is.EqualTo(g), "blocks");
    }

    private static float[] Random(int n, int seed, float scale = 4)
    {
        var random = new Random(seed);
        var values = new float[n];
        for (int i = 0; i < n; i++)
            values[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        return values;
    }

    private static void AssertClose(ReadOnlySpan<float> actual, Func<int, double> expected, double relative = 2e-6)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            double want = expected(i);
            if (!(Math.Abs(actual[i] - want) <= relative * Math.Max(1, Math.Abs(want))))
                Assert.Fail($"element {i}: got {actual[i]:R}, expected {want:R}");
        }
    }

    private CudaBuffer Upload(float[] data, int offset = 0)
    {
        CudaBuffer buffer = _device.Allocate<float>(data.Length + offset + 1);
        _device.Write(buffer, data, elementOffset: offset);
        return buffer;
    }

    private float[] Download(CudaBuffer buffer, int offset, int count)
    {
        var back = new float[count];
        _device.Read(buffer, back, elementOffset: offset);
        return back;
    }

    [Test]
    public void Info_DescribesTheDevice()
    {
        CudaDeviceInfo info = _device.Info;
        Assert.That(info.Name, Is.Not.Empty);
        Assert.That(info.Architecture, Does.Match("^sm_[0-9]+$"));
        Assert.That(info.MultiprocessorCount, Is.Positive);
        Assert.That(info.WarpSize, Is.EqualTo(32));
        Assert.That(_device.Context, Is.Not.Zero);
        Assert.That(_device.Stream, Is.Not.Zero);
        Assert.That(_device.OwnsContext, Is.True);
    }

    [Test]
    public void WriteThenRead_RoundTripsAtOffsets()
    {
        float[] data = Random(1000, 1);
        using CudaBuffer buffer = _device.Allocate<float>(1200);
        Assert.That(buffer.Bytes, Is.EqualTo(4800));
        _device.Write(buffer, data, elementOffset: 7);
        var back = new float[1000];
        _device.Read(buffer, back, elementOffset: 7);
        Assert.That(back, Is.EqualTo(data));

        var part = new float[10];
        _device.Read(buffer.Region(7 + 500), part.AsSpan());
        Assert.That(part, Is.EqualTo(data.AsSpan(500, 10).ToArray()));

        Assert.That(() => _device.Write(buffer, data, elementOffset: 201), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void CopyAndFill_AreQueuedInOrder()
    {
        float[] data = Random(256, 2);
        using CudaBuffer a = _device.Allocate<float>(256);
        using CudaBuffer b = _device.Allocate<float>(300);
        _device.Write(a, data);
        _device.Fill(b.Region(), 300, -1.5f);
        _device.Copy<float>(a, 0, b, 40, 256);
        var back = new float[300];
        _device.Read(b, back);
        Assert.That(back.AsSpan(0, 40).ToArray(), Is.All.EqualTo(-1.5f));
        Assert.That(back.AsSpan(40, 256).ToArray(), Is.EqualTo(data));
        Assert.That(back.AsSpan(296).ToArray(), Is.All.EqualTo(-1.5f));
    }

    [Test]
    public void EmptyAllocationAndEmptyCalls_DoNothing()
    {
        using CudaBuffer empty = _device.Allocate(0);
        Assert.That(empty.Bytes, Is.Zero);
        _device.Write(empty, ReadOnlySpan<float>.Empty);
        _device.Unary(TestKernelSources.Affine, empty.Region(), empty.Region(), 0, default);
        _device.Softmax(empty.Region(), empty.Region(), 0, 10, log: false);
        _device.Synchronize();
    }

    [Test]
    public void CustomKernel_LaunchesAndComputes()
    {
        CudaModule module = _device.GetModule("test/add_one", () => TestKernelSources.AddOne);
        Assert.That(module.Image.Kind, Is.EqualTo(CudaImageKind.Cubin));
        Assert.That(module.Image.Architecture, Is.EqualTo(_device.Info.Architecture));
        CudaKernel kernel = module.Function("test_add_one");

        float[] data = Random(5000, 3);
        using CudaBuffer x = _device.Allocate<float>(data.Length);
        using CudaBuffer y = _device.Allocate<float>(data.Length);
        _device.Write(x, data);
        _device.Launch(kernel, _device.GridStride(data.Length),
            KernelArgument.Pointer(x.Pointer), KernelArgument.Pointer(y.Pointer), KernelArgument.Int64(data.Length));
        var back = new float[data.Length];
        _device.Read(y, back);
        Assert.That(back, Is.EqualTo(data.Select(v => v + 1f).ToArray()));
    }

    // x and y offsets: both on 16 bytes (the float4 kernel), or not (the scalar one); lengths with every tail.
    [TestCase(0, 0, 1000, "ga_unary_vec4")]
    [TestCase(4, 8, 1003, "ga_unary_vec4")]
    [TestCase(3, 5, 1000, "ga_unary")]
    [TestCase(0, 1, 999, "ga_unary")]
    [TestCase(0, 0, 3, "ga_unary")]
    [TestCase(0, 0, 7, "ga_unary_vec4")]
    public void Unary_AppliesTheActivationWithParametersAtOffsets(int xOffset, int yOffset, int n, string kernel)
    {
        float[] data = Random(n, 4 + n);
        using CudaBuffer x = Upload(data, xOffset);
        using CudaBuffer y = _device.Allocate<float>(n + yOffset);
        Use(TestKernelSources.Affine);
        _device.Unary(TestKernelSources.Affine, x.Region(xOffset), y.Region(yOffset), n, new ActivationParameters(2.5f, -0.75f, 0));
        AssertLastLaunch(kernel, block: 256);
        AssertClose(Download(y, yOffset, n), i => (double)data[i] * 2.5 - 0.75);
    }

    [Test]
    public void Unary_InPlace()
    {
        float[] data = Random(777, 5);
        using CudaBuffer x = Upload(data);
        Use(TestKernelSources.Affine);
        _device.Unary(TestKernelSources.Affine, x.Region(), x.Region(), data.Length, new ActivationParameters(-1, 0, 0));
        Assert.That(Download(x, 0, data.Length), Is.EqualTo(data.Select(v => -v).ToArray()));
    }

    [Test]
    public void PRelu_UsesTheChannelSlopes()
    {
        const int n = 999, channels = 7;
        float[] data = Random(n, 6);
        data[10] = float.NaN;
        float[] slopes = Random(channels, 7, 1);
        using CudaBuffer x = Upload(data);
        using CudaBuffer alpha = Upload(slopes, 2);
        using CudaBuffer y = _device.Allocate<float>(n);
        ((IDeviceKernels)_device).PRelu(x.Region(), alpha.Region(2), channels, y.Region(), n);
        AssertLastLaunch(ElementwiseKernels.PRelu);
        float[] back = Download(y, 0, n);
        Assert.That(back[10], Is.NaN);
        back[10] = data[10] = 0;
        Assert.That(back, Is.EqualTo(data.Select((v, i) => v >= 0 ? v : slopes[i % channels] * v).ToArray()));
    }

    // (rows, d, offset step): step 4 keeps gate, up and y on 16 bytes (ga_glu_vec4 when every row is, too).
    [TestCase(13, 37, 4, "ga_glu_vec4", "ga_glu")]
    [TestCase(13, 40, 4, "ga_glu_vec4", "ga_glu_vec4")]
    [TestCase(5, 256, 1, "ga_glu", "ga_glu")]
    [TestCase(1, 3, 4, "ga_glu", "ga_glu")]
    [TestCase(300, 7, 4, "ga_glu_vec4", "ga_glu")]
    public void Glu_SeparateAndPacked(int rows, int d, int step, string separateKernel, string packedKernel)
    {
        float[] gate = Random(rows * d, 8), up = Random(rows * d, 9);
        var packed = new float[rows * 2 * d];
        for (int r = 0; r < rows; r++)
        {
            gate.AsSpan(r * d, d).CopyTo(packed.AsSpan(r * 2 * d));
            up.AsSpan(r * d, d).CopyTo(packed.AsSpan(r * 2 * d + d));
        }

        using CudaBuffer g = Upload(gate, 0);
        using CudaBuffer u = Upload(up, step);
        using CudaBuffer p = Upload(packed, step);
        using CudaBuffer y = _device.Allocate<float>(rows * d + 2 * step);
        using CudaBuffer yp = _device.Allocate<float>(rows * d + step);
        Use(TestKernelSources.Identity);
        _device.Glu(TestKernelSources.Identity, GluLayout.Separate, g.Region(), u.Region(step), y.Region(2 * step), rows, d);
        AssertLastLaunch(separateKernel, block: 256);
        _device.Glu(TestKernelSources.Identity, GluLayout.Packed, p.Region(step), default, yp.Region(step), rows, d);
        AssertLastLaunch(packedKernel, block: 256);
        float[] expected = gate.Select((v, i) => v * up[i]).ToArray();
        Assert.That(Download(y, 2 * step, rows * d), Is.EqualTo(expected));
        Assert.That(Download(yp, step, rows * d), Is.EqualTo(expected));
    }

    /// <summary>Interleaved pairs (up at +1, step 2) take the scalar kernel, and the limit reaches it (the clamped form).</summary>
    [Test]
    public void Glu_InterleavedAndClamped()
    {
        const int rows = 3, d = 8;
        float[] packed = Random(rows * 2 * d, 14).Select(v => v * 10).ToArray();
        using CudaBuffer p = Upload(packed), y = _device.Allocate<float>(rows * d);
        Use(TestKernelSources.Identity);
        _device.Glu(TestKernelSources.Identity, GluLayout.Interleaved, p.Region(), default, y.Region(), rows, d, default, 2.5f);
        AssertLastLaunch(GluKernels.Glu);
        float[] back = Download(y, 0, rows * d);
        for (int i = 0; i < rows * d; i++)
        {
            int r = i / d, j = i % d;
            float g = Math.Min(packed[r * 2 * d + 2 * j], 2.5f), u = Math.Clamp(packed[r * 2 * d + 2 * j + 1], -2.5f, 2.5f) + 1f;
            Assert.That(back[i], Is.EqualTo(g * u), $"r={r} j={j}");
        }
    }

    [Test]
    public void Glu_ParametersReachTheGate()
    {
        float[] gate = Random(64, 12), up = Random(64, 13);
        using CudaBuffer g = Upload(gate), u = Upload(up), y = _device.Allocate<float>(64);
        Use(TestKernelSources.Affine);
        _device.Glu(TestKernelSources.Affine, GluLayout.Separate, g.Region(), u.Region(), y.Region(), 4, 16, new ActivationParameters(2, 1, 0));
        AssertClose(Download(y, 0, 64), i => ((double)gate[i] * 2 + 1) * up[i]);
    }

    // ------------------------------------------------------------------------------------------------- softmax

    /// <summary>The double reference: max-subtracted; NaN or +inf in a row, or a row of only -inf, gives a NaN row.</summary>
    static double[] SoftmaxReference(float[] x, long rows, long cols, bool log) => ScalarReference.SoftmaxExact(x, rows, cols, log);

    private void CheckSoftmax(float[] x, long rows, long cols, bool log, SoftmaxPlan plan, (int X, int Y) offsets)
    {
        using CudaBuffer xb = Upload(x, offsets.X);
        using CudaBuffer yb = _device.Allocate<float>(x.Length + offsets.Y);
        _device.Softmax(xb.Region(offsets.X), yb.Region(offsets.Y), rows, cols, log, plan);
        AssertLastLaunch(plan.Kernel, block: (uint)(plan.Shape == SoftmaxShape.Registers ? plan.GroupSize : CudaDevice.GroupSize));
        float[] y = Download(yb, offsets.Y, x.Length);
        double[] expected = SoftmaxReference(x, rows, cols, log);
        for (long i = 0; i < y.Length; i++)
        {
            double want = expected[i];
            bool ok = double.IsNaN(want) ? float.IsNaN(y[i])
                : float.IsInfinity((float)want) ? y[i] == (float)want
                : log ? Math.Abs(y[i] - want) <= 1e-5 * Math.Max(1, Math.Abs(want))
                : Math.Abs(y[i] - want) <= 1e-5 * Math.Abs(want) + 1e-35;
            if (!ok)
                Assert.Fail($"{(log ? "log-softmax" : "softmax")} {rows}x{cols} {plan}: element {i} (x={x[i]:R}) is {y[i]:R}, expected {want:R}");
        }
    }

    /// <summary>Every shape that fits rows of <paramref name="cols"/> on CUDA: the planner's, and the others forced.</summary>
    private IEnumerable<SoftmaxPlan> Plans(long rows, long cols)
    {
        var plans = new List<SoftmaxPlan> { _device.SoftmaxPlanner.Plan(rows, cols), SoftmaxPlan.Rows(CudaDevice.GroupSize) };
        if (cols >= 2)
            plans.Add(SoftmaxPlan.Split(cols, Math.Max(1, (cols + 2) / 3)));
        if (cols <= SoftmaxPlanner.MaxWarpColumns)
        {
            // Rows sharing a warp (lanes < 32) and a warp per row, as wide as registers allow.
            foreach (int lanes in new[] { 1, 4, 32 })
            {
                int perLane = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)((cols + lanes - 1) / lanes));
                if (perLane <= SoftmaxKernels.MaxRegistersPerLane)
                    plans.Add(SoftmaxPlan.Registers(lanes, perLane, CudaDevice.GroupSize));
            }
        }

        if (cols <= SoftmaxPlanner.MaxBlockColumns && cols > 32)
        {
            // One row per block: the narrowest block of 32 values per thread, and a 1024-thread block.
            int threads = (int)Math.Min(1024, ((cols + 31) / 32 + 31) / 32 * 32);
            plans.Add(SoftmaxPlan.Registers(threads, 32, threads));
            int perLane = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)((cols + 1023) / 1024));
            plans.Add(SoftmaxPlan.Registers(1024, perLane, 1024));
        }

        return plans.Distinct();
    }

    [TestCase(1, 1)]
    [TestCase(3, 2)]
    [TestCase(7, 31)]
    [TestCase(5, 33)]
    [TestCase(10, 100)]
    [TestCase(4, 1000)]
    [TestCase(300, 1024)]
    [TestCase(3, 1025)]
    [TestCase(3, 3000)]
    [TestCase(2, 4097)]
    [TestCase(64, 32768)]
    [TestCase(1, 32769)]
    [TestCase(1, 262144)]
    [TestCase(1000, 3)]
    public void Softmax_EveryShape(int rows, int cols)
    {
        float[] x = Random(rows * cols, 10 + rows + cols, 8);
        foreach (SoftmaxPlan plan in Plans(rows, cols))
            foreach (bool log in new[] { false, true })
                CheckSoftmax(x, rows, cols, log, plan, offsets: log ? (3, 1) : (0, 0));
    }

    [TestCase(1)]
    [TestCase(5)]
    [TestCase(33)]
    [TestCase(1000)]
    [TestCase(4097)]
    public void Softmax_SpecialRows_EveryShape(int cols)
    {
        var random = new Random(cols);
        var rows = new List<float[]>();
        float[] Row(Func<int, float> f) => Enumerable.Range(0, cols).Select(f).ToArray();
        int mid = cols / 2;
        rows.Add(Row(_ => (float)(random.NextDouble() * 20 - 10)));                               // plain
        rows.Add(Row(j => j == mid ? float.NaN : (float)random.NextDouble()));                        // NaN -> NaN row
        rows.Add(Row(j => j == cols - 1 ? float.PositiveInfinity : (float)random.NextDouble()));      // +inf -> NaN row
        rows.Add(Row(_ => float.NegativeInfinity));                                                    // all -inf -> NaN row
        rows.Add(Row(j => j % 3 == 1 ? float.NegativeInfinity : (float)(random.NextDouble() * 4)));    // some -inf -> 0 / -inf
        rows.Add(Row(j => j % 4 == 0 ? 1e30f : j % 4 == 1 ? -1e30f : j % 4 == 2 ? 1e29f : 0f));        // huge logits
        rows.Add(Row(j => j == mid ? 3f : float.NegativeInfinity));                                    // one finite among -inf
        rows.Add(Row(j => j % 2 == 0 ? float.MaxValue : -float.MaxValue));                             // extremes
        float[] x = rows.SelectMany(r => r).ToArray();
        foreach (SoftmaxPlan plan in Plans(rows.Count, cols))
            foreach (bool log in new[] { false, true })
                CheckSoftmax(x, rows.Count, cols, log, plan, offsets: (2, 1));
    }

    [Test]
    public void Softmax_InPlace_EveryShape()
    {
        const int rows = 6, cols = 777;
        float[] x = Random(rows * cols, 3, 8);
        double[] expected = SoftmaxReference(x, rows, cols, log: false);
        foreach (SoftmaxPlan plan in Plans(rows, cols))
        {
            using CudaBuffer b = Upload(x);
            _device.Softmax(b.Region(), b.Region(), rows, cols, false, plan);
            AssertClose(Download(b, 0, x.Length), i => expected[i], 1e-5);
        }
    }

    // ------------------------------------------------------------------------------------------------- machinery

    [Test]
    public void LaunchShapes_AreGridStrideAndCapped()
    {
        int sms = _device.Info.MultiprocessorCount;
        Assert.That(_device.GridStride(1), Is.EqualTo(new LaunchShape(1, 256)));
        Assert.That(_device.GridStride(0), Is.EqualTo(new LaunchShape(1, 256)));
        Assert.That(_device.GridStride(257), Is.EqualTo(new LaunchShape(2, 256)));
        Assert.That(_device.GridStride(long.MaxValue / 2), Is.EqualTo(new LaunchShape((uint)(sms * 8), 256)));
        Assert.That(_device.RowBlocks(17, 8, 256), Is.EqualTo(new LaunchShape(3, 256)));
        Assert.That(_device.RowBlocks(5, 1, 1024), Is.EqualTo(new LaunchShape(5, 1024)));
        Assert.That(_device.RowBlocks(1_000_000, 1, 1024).GridX, Is.EqualTo((uint)(sms * 2)));
        Assert.That(_device.GluShape(1, 1 << 24), Is.EqualTo(new LaunchShape((uint)(sms * 8), 256)));
        Assert.That(_device.GluShape(1000, 7), Is.EqualTo(new LaunchShape(1, 8, 0, (uint)Math.Min(32, sms * 8), 32)));

        CudaKernel addOne = _device.GetModule("test/add_one", () => TestKernelSources.AddOne).Function("test_add_one");
        Assert.That(() => _device.Launch(addOne, new LaunchShape(1, 64, BlockY: 32), KernelArgument.Int64(0)),
            Throws.TypeOf<ArgumentOutOfRangeException>(), "2048 threads per block");
        Assert.That(() => _device.Launch(addOne, new LaunchShape(0, 64), KernelArgument.Int64(0)), Throws.TypeOf<ArgumentOutOfRangeException>());
        if (_fake is not null)
        {
            using CudaBuffer x = _device.Allocate<float>(1 << 20);
            Use(TestKernelSources.Affine);
            _device.Unary(TestKernelSources.Affine, x.Region(), x.Region(), 1 << 20, new ActivationParameters(1, 0, 0));
            AssertLastLaunch(ElementwiseKernels.UnaryVec4, block: 256, grid: 4u * 8);
        }
    }

    [Test]
    public void Modules_AreCompiledOncePerFamilyAndActivation()
    {
        using CudaBuffer x = _device.Allocate<float>(64);
        Use(TestKernelSources.Affine);
        _device.Unary(TestKernelSources.Affine, x.Region(), x.Region(), 64, new ActivationParameters(1, 0, 0));
        CudaModule first = _device.FamilyModule(KernelFamily.Unary, TestKernelSources.Affine);
        _device.Unary(TestKernelSources.Affine, x.Region(), x.Region(), 64, new ActivationParameters(1, 0, 0));
        Assert.That(_device.FamilyModule(KernelFamily.Unary, TestKernelSources.Affine), Is.SameAs(first));
        // Another object with the same name and body shares the module; the same name with another body does not.
        Assert.That(_device.FamilyModule(KernelFamily.Unary, new DeviceActivation("test_affine", TestKernelSources.Affine.Body)), Is.SameAs(first));
        Assert.That(_device.FamilyModule(KernelFamily.Unary, new DeviceActivation("test_affine", "return x * alpha;")), Is.Not.SameAs(first));
        Assert.That(() => _device.FamilyModule(KernelFamily.Unary, null), Throws.ArgumentException);
        Assert.That(() => _device.FamilyModule(KernelFamily.Softmax, TestKernelSources.Affine), Throws.ArgumentException);

        var compiled = 0;
        Parallel.For(0, 8, _ => _device.GetModule("test/concurrent", () =>
        {
            Interlocked.Increment(ref compiled);
            return TestKernelSources.AddOne;
        }));
        Assert.That(compiled, Is.EqualTo(1));
    }

    [Test]
    public void SecondDevice_ReusesTheCompiledImages()
    {
        CudaModule first = _device.FamilyModule(KernelFamily.PRelu, null);
        int images = _compiler.CachedImages;
        using CudaDevice second = CudaDevice.Create(0, _driver, _compiler);
        CudaModule again = second.FamilyModule(KernelFamily.PRelu, null);
        Assert.That(again, Is.Not.SameAs(first), "each device loads its own module");
        Assert.That(again.Image, Is.SameAs(first.Image), "from the one image compiled in this process");
        Assert.That(_compiler.CachedImages, Is.EqualTo(images));
    }

    [Test]
    public void FailedCompilation_IsReportedAndNotCached()
    {
        NvrtcException error = Assert.Throws<NvrtcException>(() => _device.GetModule("test/broken", () => "this is not CUDA"))!;
        Assert.That(error.Log, Is.Not.Empty);
        Assert.That(error.Call, Is.EqualTo("nvrtcCompileProgram"));
        Assert.That(error.ErrorName, Is.EqualTo("NVRTC_ERROR_COMPILATION"));
        Assert.That(_device.GetModule("test/broken", () => TestKernelSources.AddOne).Function("test_add_one").Function, Is.Not.Zero);
    }

    [Test]
    public void UnknownEntry_ThrowsCudaExceptionNamingTheCall()
    {
        CudaModule module = _device.GetModule("test/add_one", () => TestKernelSources.AddOne);
        CudaException error = Assert.Throws<CudaException>(() => module.Function("no_such_kernel"))!;
        Assert.That(error.ErrorName, Is.EqualTo("CUDA_ERROR_NOT_FOUND"));
        Assert.That(error.Message, Does.Contain("cuModuleGetFunction").And.Contain("no_such_kernel").And.Contain("CUDA_ERROR_NOT_FOUND"));
        Assert.That(error, Is.InstanceOf<AcceleratorException>());
    }

    [Test]
    public void DriverErrors_NameTheFailingCall()
    {
        // A petabyte: the driver refuses with CUDA_ERROR_OUT_OF_MEMORY, which leaves the context usable.
        CudaException error = Assert.Throws<CudaException>(() => _device.Allocate(1L << 50))!;
        TestContext.Out.WriteLine(error.Message);
        Assert.That(error.Call, Does.StartWith("cuMemAlloc("));
        Assert.That(error.ErrorName, Is.EqualTo("CUDA_ERROR_OUT_OF_MEMORY"));
        Assert.That(error.Message, Does.StartWith("cuMemAlloc(").And.Contain("CUDA_ERROR_OUT_OF_MEMORY (2)"));
        using CudaBuffer fine = _device.Allocate<float>(4);
    }

    [Test]
    public void CallsFromParallelForThreads_SetTheContextThemselves()
    {
        const int n = 4096;
        Use(TestKernelSources.Affine);
        Parallel.For(0, 32, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            _fake?.ClearCurrent(); // a worker thread that has never seen the context (fake: per thread, as CUDA)
            float[] data = Random(n, 100 + i);
            using CudaBuffer x = _device.Allocate<float>(n);
            using CudaBuffer y = _device.Allocate<float>(n);
            _device.Write(x, data);
            _device.Unary(TestKernelSources.Affine, x.Region(), y.Region(), n, new ActivationParameters(1, i, 0));
            if (i % 4 == 0)
                _device.Softmax(x.Region(), x.Region(), 2, n / 2, log: false); // the split's scratch, shared under its lock
            var back = new float[n];
            _device.Read(y, back);
            for (int k = 0; k < n; k++)
            {
                if (Math.Abs(back[k] - (data[k] + i)) > 1e-5f * Math.Max(1, Math.Abs(data[k] + i)))
                    throw new AssertionException($"iteration {i}, element {k}: {back[k]} != {data[k] + i}");
            }
        });
    }

    [Test]
    public void BufferFreedOnAnotherThread_SetsTheContext()
    {
        CudaBuffer buffer = _device.Allocate<float>(100);
        long before = _fake?.LiveAllocations ?? 0;
        Task.Run(() =>
        {
            _fake?.ClearCurrent();
            buffer.Dispose();
        }).Wait();
        Assert.That(buffer.IsClosed, Is.True);
        if (_fake is not null)
            Assert.That(_fake.LiveAllocations, Is.EqualTo(before - 1));
    }

    [Test]
    public void Wrap_UsesTheEnginesContextStreamAndPointersWithoutOwningThem()
    {
        float[] data = Random(500, 11);
        using CudaBuffer x = _device.Allocate<float>(500);
        using CudaBuffer y = _device.Allocate<float>(500);
        _device.Write(x, data);
        int retains = _fake?.PrimaryRetains ?? 0;
        long streams = _fake?.LiveStreams ?? 0;

        using (CudaDevice engine = CudaDevice.Wrap(_device.Context, _device.Stream, _driver, _compiler))
        {
            Assert.That(engine.OwnsContext, Is.False);
            Assert.That(engine.Context, Is.EqualTo(_device.Context));
            Assert.That(engine.Stream, Is.EqualTo(_device.Stream));
            Assert.That(engine.Info.Name, Is.EqualTo(_device.Info.Name));

            using CudaBuffer ex = engine.WrapMemory(x.Pointer, x.Bytes);
            using CudaBuffer ey = engine.WrapMemory(y.Pointer, y.Bytes);
            Assert.That(ex.OwnsMemory, Is.False);
            Use(TestKernelSources.Affine);
            engine.Unary(TestKernelSources.Affine, ex.Region(), ey.Region(), 500, new ActivationParameters(3, 1, 0));
            engine.Synchronize();
        }

        // The engine's context, stream and memory are still alive and usable.
        AssertClose(Download(y, 0, 500), i => data[i] * 3.0 + 1);
        if (_fake is not null)
        {
            Assert.That(_fake.PrimaryRetains, Is.EqualTo(retains));
            Assert.That(_fake.LiveStreams, Is.EqualTo(streams));
        }
    }

    [Test]
    public void TimeMilliseconds_MeasuresQueuedWork()
    {
        using CudaBuffer x = _device.Allocate<float>(1 << 16);
        Use(TestKernelSources.Affine);
        float ms = _device.TimeMilliseconds(() =>
            _device.Unary(TestKernelSources.Affine, x.Region(), x.Region(), 1 << 16, new ActivationParameters(1, 0, 0)));
        Assert.That(ms, Is.GreaterThanOrEqualTo(0f));
        if (_fake is not null)
            Assert.That(_fake.LiveEvents, Is.Zero);
    }

    [Test]
    public void Dispose_ReleasesTheContextAfterTheLastBuffer()
    {
        int retains = _fake?.PrimaryRetains ?? 0;
        long streams = _fake?.LiveStreams ?? 0, modules = _fake?.LiveModules ?? 0, allocations = _fake?.LiveAllocations ?? 0;

        CudaDevice second = CudaDevice.Create(0, _driver, _compiler);
        CudaBuffer survivor = second.Allocate<float>(16);
        Use(TestKernelSources.Affine);
        second.Unary(TestKernelSources.Affine, survivor.Region(), survivor.Region(), 16, new ActivationParameters(1, 0, 0));
        second.Softmax(survivor.Region(), survivor.Region(), 1, 16, log: false, SoftmaxPlan.Split(16, 4)); // allocates its scratch
        if (_fake is not null)
            Assert.That(_fake.PrimaryRetains, Is.EqualTo(retains + 1));

        second.Dispose();
        second.Dispose(); // idempotent
        Assert.That(() => second.Allocate(4), Throws.TypeOf<ObjectDisposedException>());
        if (_fake is not null)
        {
            Assert.That(_fake.LiveStreams, Is.EqualTo(streams));
            Assert.That(_fake.LiveModules, Is.EqualTo(modules));
            Assert.That(_fake.LiveAllocations, Is.EqualTo(allocations + 1), "the scratch is freed, the survivor is not");
            Assert.That(_fake.PrimaryRetains, Is.EqualTo(retains + 1), "the buffer still holds the context");
        }

        survivor.Dispose();
        if (_fake is not null)
        {
            Assert.That(_fake.PrimaryRetains, Is.EqualTo(retains));
            Assert.That(_fake.LiveAllocations, Is.EqualTo(allocations));
        }

        // The fixture's device is unaffected (real primary contexts are shared and reference-counted too).
        using CudaBuffer after = _device.Allocate<float>(4);
        _device.Write(after, new float[] { 1, 2, 3, 4 });
    }
}

/// <summary>The softmax planner's choices for a CUDA device, checked without one.</summary>
[TestFixture]
public class SoftmaxPlannerTests
{
    [Test]
    public void SoftmaxPlanner_ChoosesByRowWidth()
    {
        SoftmaxPlanner planner = new(256, 132, 8, RegisterRows: true); // an H100's 132 SMs
        Assert.That(planner.Plan(100_000, 4), Is.EqualTo(SoftmaxPlan.Registers(4, 1, 256)), "short rows share a warp");
        Assert.That(planner.Plan(100_000, 20), Is.EqualTo(SoftmaxPlan.Registers(32, 1, 256)));
        Assert.That(planner.Plan(4096, 1000), Is.EqualTo(SoftmaxPlan.Registers(32, 32, 256)), "a warp per row up to 1024 columns");
        Assert.That(planner.Plan(4096, 32000), Is.EqualTo(SoftmaxPlan.Registers(1024, 32, 1024)), "a block per row up to 32768");
        Assert.That(planner.Plan(4096, 2000), Is.EqualTo(SoftmaxPlan.Registers(512, 4, 512)));
        Assert.That(planner.Plan(4096, 100_000), Is.EqualTo(SoftmaxPlan.Rows(256)), "longer rows stream");
        SoftmaxPlan split = planner.Plan(32, 128_256);
        Assert.That(split.IsSplit, Is.True, "few long rows are split across blocks");
        Assert.That((split.Chunks, split.ChunkLength), Is.EqualTo((32L, 4096L)));
        Assert.That(planner.Plan(1, 262_144), Is.EqualTo(SoftmaxPlan.Split(262_144, 1024)));
        foreach ((long rows, long cols) in new[] { (1L, 1L), (7L, 33L), (3L, 1025L), (1L, 32769L), (5000L, 32768L), (2L, 5_000_000L) })
            Assert.DoesNotThrow(() => planner.Plan(rows, cols).Validate(cols, 256, cudaBlocks: true), $"{rows}x{cols}");
        Assert.That(() => SoftmaxPlan.Registers(32, 4, 256).Validate(129, 256, true), Throws.ArgumentException, "columns left out");
    }
}
