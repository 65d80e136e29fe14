using System.Buffers.Binary;
using System.Text;
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
            Assert.That(() => CudaDevice.Create(0, TestKernelSources.Provider),
                Throws.TypeOf<NotSupportedException>().With.Message.Contains(Missing));
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
            Assert.Pass($"CUDA is absent on this machine: {found.AbsentReason}");
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

/// <summary>NVRTC compiles kernels to cubin with no GPU and no libcuda: CI runs these with GPUACTIVATIONS_REQUIRE_NVRTC=1.</summary>
[TestFixture]
public class NvrtcTests
{
    private static bool IsElfCubin(byte[] image) =>
        image.Length > 64 && image[0] == 0x7F && image[1] == (byte)'E' && image[2] == (byte)'L' && image[3] == (byte)'F'
        && BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(18)) == 190; // e_machine EM_CUDA

    [Test]
    public void CompilesATestKernelToCubin([Values(80, 90)] int arch)
    {
        NvrtcCompiler compiler = CudaTestEnvironment.RequireNvrtc();
        CudaImage image = compiler.Compile(TestKernelSources.AddOne, "add_one.cu", arch / 10, arch % 10);
        TestContext.Out.WriteLine($"NVRTC {compiler.Version} ({compiler.Nvrtc.LibraryName}): {image.Bytes.Length} bytes of {image.Kind} for {image.Architecture}");
        Assert.That(image.Kind, Is.EqualTo(CudaImageKind.Cubin));
        Assert.That(image.Architecture, Is.EqualTo($"sm_{arch}"));
        Assert.That(image.Bytes, Is.Not.Empty);
        Assert.That(image.Bytes.Take(4), Is.EqualTo(new byte[] { 0x7F, (byte)'E', (byte)'L', (byte)'F' }));
        Assert.That(IsElfCubin(image.Bytes), Is.True, "an ELF for EM_CUDA");
    }

    [Test]
    public void CompilesTheTestKernelFamiliesToCubin([Values("unary", "prelu", "glu", "softmax")] string family, [Values(80, 90)] int arch)
    {
        NvrtcCompiler compiler = CudaTestEnvironment.RequireNvrtc();
        DeviceActivation? activation = family switch
        {
            "unary" => TestKernelSources.Affine,
            "glu" => TestKernelSources.Identity,
            _ => null,
        };
        CudaImage image = compiler.Compile(TestKernelSources.Source(family, activation), $"{family}.cu", arch / 10, arch % 10);
        Assert.That(IsElfCubin(image.Bytes), Is.True);
    }

    [Test]
    public void BrokenKernel_ThrowsWithTheNvrtcLog()
    {
        NvrtcCompiler compiler = CudaTestEnvironment.RequireNvrtc();
        const string broken = """
            extern "C" __global__ void broken(float* y) { y[0] = ga_undefined_name_42; }
            """;
        NvrtcException error = Assert.Throws<NvrtcException>(() => compiler.Compile(broken, "broken.cu", 8, 0))!;
        TestContext.Out.WriteLine(error.Message);
        Assert.That(error.Log, Does.Contain("ga_undefined_name_42"));
        Assert.That(error.Message, Does.Contain("broken.cu").And.Contain("sm_80").And.Contain("NVRTC log").And.Contain("ga_undefined_name_42"));
    }

    [Test]
    public void CompilesWithoutFastMath()
    {
        Assert.That(NvrtcCompiler.BaseOptions, Does.Not.Contain("--use_fast_math").And.Not.Contain("-use_fast_math"));
        Assert.That(NvrtcCompiler.BaseOptions, Does.Contain("--std=c++14").And.Contain("-default-device").And.Contain("--ftz=false"));
        Assert.That(NvrtcCompiler.BaseOptions, Does.Not.Contain("-lineinfo"));
    }

    [Test]
    public void ArchitectureNewerThanNvrtc_FallsBackToPtx()
    {
        NvrtcCompiler compiler = CudaTestEnvironment.RequireNvrtc();
        IReadOnlyList<int>? supported = compiler.Nvrtc.SupportedArchitectures;
        if (supported is null)
            Assert.Ignore($"NVRTC {compiler.Version} does not list its architectures");
        TestContext.Out.WriteLine($"NVRTC {compiler.Version} supports sm_{string.Join(", sm_", supported!)}");
        int newest = supported!.Max();

        // A compute capability no NVRTC knows yet: PTX for the newest architecture this one knows.
        CudaImage image = compiler.Compile(TestKernelSources.AddOne, "add_one.cu", 99, 0);
        Assert.That(image.Kind, Is.EqualTo(CudaImageKind.Ptx));
        Assert.That(image.Architecture, Is.EqualTo($"compute_{newest}"));
        Assert.That(image.Bytes[^1], Is.EqualTo(0), "PTX handed to cuModuleLoadData ends with NUL");
        string ptx = Encoding.UTF8.GetString(image.Bytes, 0, image.Bytes.Length - 1);
        Assert.That(ptx, Does.Contain($".target sm_{newest}").And.Contain("test_add_one"));

        // Every architecture it lists gets a cubin; one below all of them is refused.
        Assert.That(compiler.ChooseTarget(newest / 10, newest % 10), Is.EqualTo((CudaImageKind.Cubin, $"sm_{newest}")));
        Assert.That(() => compiler.ChooseTarget(1, 0), Throws.TypeOf<NotSupportedException>());
    }
}

/// <summary>
/// The device itself, on two drivers: "real" (a CUDA GPU; ignored with the reason when there is none) and "fake"
/// (the CPU stand-in built from FakeCuda/fake_libcuda.c, which checks context-per-thread, bounds and argument lists
/// and emulates the kernels; ignored when no C compiler is there). Both need NVRTC.
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

        _device = CudaDevice.Create(0, TestKernelSources.Provider, driver: _driver, compiler: _compiler);
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
            Assert.That(actual[i], Is.EqualTo(want).Within(relative * Math.Max(1, Math.Abs(want))), $"element {i}");
        }
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

    [Test]
    public void Unary_AppliesTheActivationWithParametersAtOffsets()
    {
        const int n = 1000;
        float[] data = Random(n + 3, 4);
        using CudaBuffer x = _device.Allocate<float>(n + 3);
        using CudaBuffer y = _device.Allocate<float>(n + 5);
        _device.Write(x, data);
        _device.Unary(TestKernelSources.Affine, x.Region(3), y.Region(5), n, new ActivationParameters(2.5f, -0.75f, 0));
        var back = new float[n];
        _device.Read(y, back, elementOffset: 5);
        AssertClose(back, i => (double)data[i + 3] * 2.5 - 0.75);
    }

    [Test]
    public void Unary_InPlace()
    {
        float[] data = Random(777, 5);
        using CudaBuffer x = _device.Allocate<float>(data.Length);
        _device.Write(x, data);
        _device.Unary(TestKernelSources.Affine, x.Region(), x.Region(), data.Length, new ActivationParameters(-1, 0, 0));
        var back = new float[data.Length];
        _device.Read(x, back);
        Assert.That(back, Is.EqualTo(data.Select(v => -v).ToArray()));
    }

    [Test]
    public void PRelu_UsesTheChannelSlopes()
    {
        const int n = 999, channels = 7;
        float[] data = Random(n, 6);
        data[10] = float.NaN;
        float[] slopes = Random(channels, 7, 1);
        using CudaBuffer x = _device.Allocate<float>(n);
        using CudaBuffer alpha = _device.Allocate<float>(channels + 2);
        using CudaBuffer y = _device.Allocate<float>(n);
        _device.Write(x, data);
        _device.Write(alpha, slopes, elementOffset: 2);
        ((IDeviceKernels)_device).PRelu(x.Region(), alpha.Region(2), channels, y.Region(), n);
        var back = new float[n];
        _device.Read(y, back);
        Assert.That(back[10], Is.NaN);
        back[10] = data[10] = 0;
        Assert.That(back, Is.EqualTo(data.Select((v, i) => v >= 0 ? v : slopes[i % channels] * v).ToArray()));
    }

    [Test]
    public void Glu_SeparateAndPacked()
    {
        const int rows = 13, d = 37;
        float[] gate = Random(rows * d, 8), up = Random(rows * d, 9);
        var packed = new float[rows * 2 * d];
        for (int r = 0; r < rows; r++)
        {
            gate.AsSpan(r * d, d).CopyTo(packed.AsSpan(r * 2 * d));
            up.AsSpan(r * d, d).CopyTo(packed.AsSpan(r * 2 * d + d));
        }

        using CudaBuffer g = _device.Allocate<float>(gate.Length);
        using CudaBuffer u = _device.Allocate<float>(up.Length);
        using CudaBuffer p = _device.Allocate<float>(packed.Length + 1);
        using CudaBuffer y = _device.Allocate<float>(rows * d);
        using CudaBuffer yp = _device.Allocate<float>(rows * d);
        _device.Write(g, gate);
        _device.Write(u, up);
        _device.Write(p, packed, elementOffset: 1);
        _device.Glu(TestKernelSources.Identity, GluLayout.Separate, g.Region(), u.Region(), y.Region(), rows, d);
        _device.Glu(TestKernelSources.Identity, GluLayout.Packed, p.Region(1), default, yp.Region(), rows, d);
        var back = new float[rows * d];
        var backPacked = new float[rows * d];
        _device.Read(y, back);
        _device.Read(yp, backPacked);
        float[] expected = gate.Select((v, i) => v * up[i]).ToArray();
        Assert.That(back, Is.EqualTo(expected));
        Assert.That(backPacked, Is.EqualTo(expected));
    }

    [TestCase(10, 100, false)]
    [TestCase(10, 100, true)]
    [TestCase(1, 1, false)]
    [TestCase(3, 3000, false)]
    [TestCase(3, 3000, true)]
    [TestCase(300, 33, false)]
    public void Softmax_RowWise(int rows, int cols, bool log)
    {
        float[] data = Random(rows * cols, 10 + rows + cols, 8);
        using CudaBuffer x = _device.Allocate<float>(data.Length + 2);
        using CudaBuffer y = _device.Allocate<float>(data.Length);
        _device.Write(x, data, elementOffset: 2);
        _device.Softmax(x.Region(2), y.Region(), rows, cols, log);
        var back = new float[data.Length];
        _device.Read(y, back);

        var expected = new double[data.Length];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = data.AsSpan(r * cols, cols);
            double max = double.NegativeInfinity, sum = 0;
            foreach (float v in row)
                max = Math.Max(max, v);
            foreach (float v in row)
                sum += Math.Exp(v - max);
            for (int c = 0; c < cols; c++)
                expected[r * cols + c] = log ? row[c] - max - Math.Log(sum) : Math.Exp(row[c] - max) / sum;
        }

        for (int i = 0; i < back.Length; i++)
        {
            double tolerance = log ? 1e-5 * Math.Max(1, Math.Abs(expected[i])) : 1e-5 * Math.Abs(expected[i]) + 1e-12;
            Assert.That(back[i], Is.EqualTo(expected[i]).Within(tolerance), $"element {i}");
        }

        if (_fake is not null)
        {
            bool warp = cols <= _device.Plan.SoftmaxWarpMaxColumns;
            LaunchShape shape = warp ? _device.RowsPerBlock(rows, _device.Plan.SoftmaxWarpsPerBlock) : _device.BlockPerRow(rows, _device.Plan.SoftmaxBlockSize);
            Assert.That((_fake.LastGrid, _fake.LastBlock), Is.EqualTo((shape.GridX, shape.BlockX)));
            Assert.That(shape.BlockX, Is.EqualTo(warp ? 256u : 512u));
        }
    }

    [Test]
    public void LaunchShapes_AreGridStrideAndCapped()
    {
        int sms = _device.Info.MultiprocessorCount;
        Assert.That(_device.GridStride(1), Is.EqualTo(new LaunchShape(1, 256)));
        Assert.That(_device.GridStride(0), Is.EqualTo(new LaunchShape(1, 256)));
        Assert.That(_device.GridStride(257), Is.EqualTo(new LaunchShape(2, 256)));
        Assert.That(_device.GridStride(long.MaxValue / 2), Is.EqualTo(new LaunchShape((uint)(sms * 8), 256)));
        Assert.That(_device.GridStride(1 << 20, 128, 2), Is.EqualTo(new LaunchShape((uint)(sms * 2), 128)));
        Assert.That(_device.RowsPerBlock(17, 8), Is.EqualTo(new LaunchShape(3, 256)));
        Assert.That(_device.BlockPerRow(5, 512), Is.EqualTo(new LaunchShape(5, 512)));
        Assert.That(_device.BlockPerRow(1_000_000, 512).GridX, Is.LessThan(1_000_000u));

        CudaKernel addOne = _device.GetModule("test/add_one", () => TestKernelSources.AddOne).Function("test_add_one");
        Assert.That(() => _device.Launch(addOne, new LaunchShape(1, 64, BlockY: 32), KernelArgument.Int64(0)),
            Throws.TypeOf<ArgumentOutOfRangeException>(), "2048 threads per block");
        Assert.That(() => _device.Launch(addOne, new LaunchShape(0, 64), KernelArgument.Int64(0)), Throws.TypeOf<ArgumentOutOfRangeException>());
        if (_fake is not null)
        {
            using CudaBuffer x = _device.Allocate<float>(1 << 20);
            _device.Unary(TestKernelSources.Affine, x.Region(), x.Region(), 1 << 20, new ActivationParameters(1, 0, 0));
            Assert.That((_fake.LastGrid, _fake.LastBlock), Is.EqualTo((4u * 8, 256u)));
        }
    }

    [Test]
    public void Modules_AreCompiledOncePerFamilyAndActivation()
    {
        using CudaBuffer x = _device.Allocate<float>(64);
        _device.Unary(TestKernelSources.Affine, x.Region(), x.Region(), 64, new ActivationParameters(1, 0, 0));
        CudaModule first = _device.GetModule("unary/test_affine", () => throw new AssertionException("compiled twice"));
        _device.Unary(TestKernelSources.Affine, x.Region(), x.Region(), 64, new ActivationParameters(1, 0, 0));
        Assert.That(_device.GetModule("unary/test_affine", () => throw new AssertionException("compiled twice")), Is.SameAs(first));
        Assert.That(_device.GetKernel("unary", TestKernelSources.Affine, "ga_unary"),
            Is.EqualTo(_device.GetKernel("unary", TestKernelSources.Affine, "ga_unary")));

        var compiled = 0;
        Parallel.For(0, 8, _ => _device.GetModule("test/concurrent", () =>
        {
            Interlocked.Increment(ref compiled);
            return TestKernelSources.AddOne;
        }));
        Assert.That(compiled, Is.EqualTo(1));
    }

    [Test]
    public void FailedCompilation_IsReportedAndNotCached()
    {
        Assert.That(() => _device.GetModule("test/broken", () => "this is not CUDA"),
            Throws.TypeOf<NvrtcException>().With.Property(nameof(NvrtcException.Log)).Not.Empty);
        Assert.That(_device.GetModule("test/broken", () => TestKernelSources.AddOne).Function("test_add_one").Function, Is.Not.Zero);
    }

    [Test]
    public void UnknownEntry_ThrowsCudaExceptionNamingTheCall()
    {
        CudaModule module = _device.GetModule("test/add_one", () => TestKernelSources.AddOne);
        CudaException error = Assert.Throws<CudaException>(() => module.Function("no_such_kernel"))!;
        Assert.That(error.ErrorName, Is.EqualTo("CUDA_ERROR_NOT_FOUND"));
        Assert.That(error.Message, Does.Contain("cuModuleGetFunction").And.Contain("no_such_kernel").And.Contain("CUDA_ERROR_NOT_FOUND"));
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
        Parallel.For(0, 32, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            _fake?.ClearCurrent(); // a worker thread that has never seen the context (fake: per thread, as CUDA)
            float[] data = Random(n, 100 + i);
            using CudaBuffer x = _device.Allocate<float>(n);
            using CudaBuffer y = _device.Allocate<float>(n);
            _device.Write(x, data);
            _device.Unary(TestKernelSources.Affine, x.Region(), y.Region(), n, new ActivationParameters(1, i, 0));
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

        using (CudaDevice engine = CudaDevice.Wrap(_device.Context, _device.Stream, TestKernelSources.Provider, driver: _driver, compiler: _compiler))
        {
            Assert.That(engine.OwnsContext, Is.False);
            Assert.That(engine.Context, Is.EqualTo(_device.Context));
            Assert.That(engine.Stream, Is.EqualTo(_device.Stream));
            Assert.That(engine.Info.Name, Is.EqualTo(_device.Info.Name));

            using CudaBuffer ex = engine.WrapMemory(x.Pointer, x.Bytes);
            using CudaBuffer ey = engine.WrapMemory(y.Pointer, y.Bytes);
            Assert.That(ex.OwnsMemory, Is.False);
            engine.Unary(TestKernelSources.Affine, ex.Region(), ey.Region(), 500, new ActivationParameters(3, 1, 0));
            engine.Synchronize();
        }

        // The engine's context, stream and memory are still alive and usable.
        var back = new float[500];
        _device.Read(y, back);
        AssertClose(back, i => data[i] * 3.0 + 1);
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

        CudaDevice second = CudaDevice.Create(0, TestKernelSources.Provider, driver: _driver, compiler: _compiler);
        CudaBuffer survivor = second.Allocate<float>(16);
        second.Unary(TestKernelSources.Affine, survivor.Region(), survivor.Region(), 16, new ActivationParameters(1, 0, 0));
        if (_fake is not null)
            Assert.That(_fake.PrimaryRetains, Is.EqualTo(retains + 1));

        second.Dispose();
        second.Dispose(); // idempotent
        Assert.That(() => second.Allocate(4), Throws.TypeOf<ObjectDisposedException>());
        if (_fake is not null)
        {
            Assert.That(_fake.LiveStreams, Is.EqualTo(streams));
            Assert.That(_fake.LiveModules, Is.EqualTo(modules));
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
