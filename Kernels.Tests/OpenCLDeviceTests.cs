using GpuActivations.Reference;
using System.Diagnostics;
using System.Runtime.InteropServices;
using GpuActivations.Device;
using GpuActivations.OpenCL;
using NUnit.Framework;

namespace GpuActivations.Tests.OpenCL;

/// <summary>
/// The OpenCL backend on whatever OpenCL device is present (PoCL on the CPU in CI). With no device the tests
/// are ignored with the discovery reason, unless GPUACTIVATIONS_REQUIRE_OPENCL=1 or a PoCL ICD is installed,
/// in which case absence fails.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class OpenCLDeviceTests
{
    static readonly DeviceActivation Sigmoid = new("sigmoid", "return 1.0f / (1.0f + exp(-x));");
    static readonly DeviceActivation Relu = new("relu", "return x < 0.0f ? 0.0f : x;");
    static readonly DeviceActivation Silu = new("silu", "return x / (1.0f + exp(-x));");

    static double SigmoidRef(double x) => 1.0 / (1.0 + Math.Exp(-x));
    static double ReluRef(double x) => x < 0 ? 0 : x;
    static double SiluRef(double x) => x / (1.0 + Math.Exp(-x));

    OpenCLDevice _device = null!;

    static bool OpenCLRequired =>
        Environment.GetEnvironmentVariable("GPUACTIVATIONS_REQUIRE_OPENCL") == "1" || File.Exists("/etc/OpenCL/vendors/pocl.icd");

    [OneTimeSetUp]
    public void CreateDevice()
    {
        OpenCLDiscovery found = OpenCLDevice.Enumerate();
        if (!found.IsAvailable)
        {
            if (OpenCLRequired) Assert.Fail("OpenCL is required here but absent: " + found.Reason);
            Assert.Ignore("OpenCL absent: " + found.Reason);
        }
        _device = OpenCLDevice.Create(found.Devices[0]);
        TestContext.Progress.WriteLine($"OpenCL device: {_device.Info}, group size {_device.GroupSize}");
    }

    [OneTimeTearDown]
    public void DisposeDevice() => _device?.Dispose();

    // -----------------------------------------------------------------------------------------------------------
    // Discovery and loading

    [Test]
    public void Discovery_FindsPoclHere()
    {
        OpenCLDiscovery found = OpenCLDevice.Enumerate();
        Assert.That(found.Reason, Is.Null);
        Assert.That(found.Devices, Is.Not.Empty);
        foreach (OpenCLDeviceInfo d in found.Devices)
        {
            TestContext.Out.WriteLine(d.ToString());
            Assert.That(d.Name, Is.Not.Empty);
            Assert.That(d.ComputeUnits, Is.GreaterThan(0));
            Assert.That(d.GlobalMemoryBytes, Is.GreaterThan(0));
            Assert.That(d.OpenCLCVersion, Does.StartWith("OpenCL C"));
            Assert.That(d.MaxWorkGroupSize, Is.GreaterThan(0));
        }
        if (File.Exists("/etc/OpenCL/vendors/pocl.icd"))
            Assert.That(found.Devices.Select(d => d.PlatformName), Has.Some.Contains("Portable Computing Language"));
    }

    [Test]
    public void LibraryOverride_ToMissingFile_IsAbsentWithReason()
    {
        _ = OpenCLNative.Shared; // the shared binding is settled before the variable changes
        string? saved = Environment.GetEnvironmentVariable(OpenCLNative.LibraryVariable);
        const string missing = "/nonexistent/dir/libOpenCL-missing.so";
        try
        {
            Environment.SetEnvironmentVariable(OpenCLNative.LibraryVariable, missing);
            OpenCLDiscovery found = default!;
            Assert.DoesNotThrow(() =>
            {
                var (api, reason) = OpenCLNative.Load();
                Assert.That(api, Is.Null);
                found = OpenCLDevice.Enumerate(api, reason);
            });
            Assert.That(found.IsAvailable, Is.False);
            Assert.That(found.Devices, Is.Empty);
            Assert.That(found.Reason, Does.Contain(missing).And.Contain("not found"));
        }
        finally
        {
            Environment.SetEnvironmentVariable(OpenCLNative.LibraryVariable, saved);
        }
    }

    [Test]
    public void LibraryOverride_ToRealLibrary_Loads()
    {
        string? saved = Environment.GetEnvironmentVariable(OpenCLNative.LibraryVariable);
        try
        {
            Environment.SetEnvironmentVariable(OpenCLNative.LibraryVariable, "libOpenCL.so.1");
            var (api, reason) = OpenCLNative.Load();
            Assert.That(reason, Is.Null);
            Assert.That(OpenCLDevice.Enumerate(api, reason).IsAvailable, Is.True);
        }
        finally
        {
            Environment.SetEnvironmentVariable(OpenCLNative.LibraryVariable, saved);
        }
    }

    [Test]
    public void ErrorNames_AreTheClNames()
    {
        Assert.That(OpenCLNative.ErrorName(-5), Is.EqualTo("CL_OUT_OF_RESOURCES"));
        Assert.That(OpenCLNative.ErrorName(-11), Is.EqualTo("CL_BUILD_PROGRAM_FAILURE"));
        Assert.That(OpenCLNative.ErrorName(-1001), Is.EqualTo("CL_PLATFORM_NOT_FOUND_KHR"));
        var e = Assert.Throws<OpenCLException>(() => OpenCLNative.Check(FailingCall(-38)));
        Assert.That(e!.Message, Does.Contain("FailingCall(-38)").And.Contain("CL_INVALID_MEM_OBJECT").And.Contain("-38"));
        Assert.That(e.ErrorCode, Is.EqualTo(-38));
    }

    static int FailingCall(int code) => code;

    [Test]
    public void BrokenKernel_ThrowsWithCompilerLog()
    {
        var broken = new DeviceActivation("broken-for-test", "return x + undefined_symbol_xyz;");
        using OpenCLBuffer x = _device.Allocate(64), y = _device.Allocate(64);
        var e = Assert.Throws<OpenCLException>(() => _device.Unary(broken, x.Region(), y.Region(), 16, default));
        TestContext.Out.WriteLine(e!.Message);
        Assert.That(e.Message, Does.Contain("CL_BUILD_PROGRAM_FAILURE").And.Contain("undefined_symbol_xyz"));
        Assert.That(e.ErrorCode, Is.EqualTo(-11));

        var raw = Assert.Throws<OpenCLException>(() => _device.CompileForTest("__kernel void k(__global float* y) { y[0] = nope(; }", "k"));
        Assert.That(raw!.Message, Does.Contain("CL_BUILD_PROGRAM_FAILURE").And.Contain("Compiler log"));

        // The device still works afterwards.
        RunUnaryAndCheck(Relu, ReluRef, 100, 0, 0, ulps: 0);
    }

    // -----------------------------------------------------------------------------------------------------------
    // Memory

    [Test]
    public void WriteReadCopyFill_RoundTrip()
    {
        float[] data = Enumerable.Range(0, 1000).Select(i => i * 0.5f).ToArray();
        using OpenCLBuffer a = _device.Allocate(4000), b = _device.Allocate(4000);
        _device.Write(a.Handle, 0, MemoryMarshal.AsBytes(data.AsSpan()));
        _device.Fill(b.Handle, 0, 4000, BitConverter.SingleToUInt32Bits(-1f));
        _device.Copy(a.Handle, 40, b.Handle, 400, 400);
        float[] back = new float[1000];
        _device.Read(b.Handle, 0, MemoryMarshal.AsBytes(back.AsSpan()));
        for (int i = 0; i < 1000; i++)
            Assert.That(back[i], Is.EqualTo(i >= 100 && i < 200 ? data[i - 90] : -1f), $"element {i}");
        float[] part = new float[3];
        _device.Read(a.Handle, 4 * 7, MemoryMarshal.AsBytes(part.AsSpan()));
        Assert.That(part, Is.EqualTo(new[] { 3.5f, 4f, 4.5f }));
    }

    [Test]
    public void AllocateFree_10000Cycles_BoundedGrowth()
    {
        byte[] payload = new byte[64 * 1024];
        new Random(1).NextBytes(payload);
        void Cycles(int count, bool dispose)
        {
            for (int i = 0; i < count; i++)
            {
                OpenCLBuffer b = _device.Allocate(payload.Length);
                _device.Write(b.Handle, 0, payload);
                if (dispose) b.Dispose();
                if (!dispose && i % 500 == 499) { GC.Collect(); GC.WaitForPendingFinalizers(); }
            }
        }
        Cycles(200, true);
        (long ws0, long priv0) = Measure();
        Cycles(10_000, dispose: true);
        (long ws1, long priv1) = Measure();
        // Forgotten Dispose: the SafeHandle's finalizer must release the cl_mem.
        Cycles(10_000, dispose: false);
        (long ws2, long priv2) = Measure();
        TestContext.Out.WriteLine($"working set {ws0 >> 20} -> {ws1 >> 20} -> {ws2 >> 20} MiB; private {priv0 >> 20} -> {priv1 >> 20} -> {priv2 >> 20} MiB");
        const long limit = 50L << 20;
        Assert.That(ws1 - ws0, Is.LessThan(limit), "working set after disposed cycles");
        Assert.That(priv1 - priv0, Is.LessThan(limit), "private bytes after disposed cycles");
        Assert.That(ws2 - ws0, Is.LessThan(limit), "working set after finalized cycles");
        Assert.That(priv2 - priv0, Is.LessThan(limit), "private bytes after finalized cycles");

        static (long, long) Measure()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            using var p = Process.GetCurrentProcess();
            p.Refresh();
            return (p.WorkingSet64, p.PrivateMemorySize64);
        }
    }

    [Test]
    public unsafe void Wrap_BorrowsContextAndQueue_WithoutOwnership()
    {
        OpenCLNative api = OpenCLNative.Shared!;
        nint deviceId = _device.Info.Device;
        int status;
        nint context = OpenCLNative.Checked(api.clCreateContext(null, 1, &deviceId, 0, null, &status), status);
        nint queue = OpenCLNative.Checked(api.clCreateCommandQueue(context, deviceId, 0, &status), status);
        try
        {
            uint contextRefs0 = ContextRefs(), queueRefs0 = QueueRefs();
            for (int round = 0; round < 2; round++)
            {
                using (OpenCLDevice wrapped = OpenCLDevice.Wrap(context, queue))
                {
                    Assert.That(wrapped.OwnsContext, Is.False);
                    Assert.That(wrapped.Context, Is.EqualTo(context));
                    Assert.That(wrapped.Queue, Is.EqualTo(queue));
                    float[] input = Enumerable.Range(0, 999).Select(i => (i - 500) * 0.03f).ToArray();
                    using OpenCLBuffer x = wrapped.Allocate(input.Length * 4), y = wrapped.Allocate(input.Length * 4);
                    wrapped.Write(x.Handle, 0, MemoryMarshal.AsBytes(input.AsSpan()));
                    wrapped.Unary(Sigmoid, x.Region(), y.Region(), input.Length, default);
                    wrapped.Softmax(x.Region(), y.Region(), 9, 111, log: false);
                    wrapped.Synchronize();
                }
                Assert.That(ContextRefs(), Is.EqualTo(contextRefs0), "context reference count after the wrapper is disposed");
                Assert.That(QueueRefs(), Is.EqualTo(queueRefs0), "queue reference count after the wrapper is disposed");
                Assert.That(api.clFinish(queue), Is.EqualTo(0), "the engine's queue still works");
            }
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Assert.That(ContextRefs(), Is.EqualTo(contextRefs0));
        }
        finally
        {
            Assert.That(api.clReleaseCommandQueue(queue), Is.EqualTo(0));
            Assert.That(api.clReleaseContext(context), Is.EqualTo(0));
        }

        uint ContextRefs()
        {
            uint n;
            OpenCLNative.Check(api.clGetContextInfo(context, OpenCLNative.CL_CONTEXT_REFERENCE_COUNT, sizeof(uint), &n, null));
            return n;
        }
        uint QueueRefs()
        {
            uint n;
            OpenCLNative.Check(api.clGetCommandQueueInfo(queue, OpenCLNative.CL_QUEUE_REFERENCE_COUNT, sizeof(uint), &n, null));
            return n;
        }
    }

    [Test]
    public void ConcurrentLaunches_FromSeveralThreads()
    {
        var fresh = new DeviceActivation("sigmoid-concurrent", Sigmoid.Body); // first use races on the program build too
        const int threads = 4, iterations = 25;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            // Odd threads take rows long enough to be split across work-groups (the shared scratch buffer).
            (long rows, long cols) = t % 2 == 0 ? (13L, 257L) : (2L, 64L * _device.GroupSize);
            Assert.That(_device.PlanSoftmax(rows, cols).IsSplit, Is.EqualTo(t % 2 == 1));
            float[] input = Logits(rows, cols, seed: 100 + t);
            double[] softmax = SoftmaxReference(input, rows, cols, log: false);
            using OpenCLBuffer x = Upload(input), y = _device.Allocate(input.Length * 4L), z = _device.Allocate(input.Length * 4L);
            for (int i = 0; i < iterations; i++)
            {
                _device.Unary(fresh, x.Region(), y.Region(), input.Length, default);
                _device.Softmax(x.Region(), z.Region(), rows, cols, log: false);
                float[] a = Download(y, 0, input.Length), b = Download(z, 0, input.Length);
                for (int k = 0; k < input.Length; k++)
                {
                    if (!WithinUlps(a[k], SigmoidRef(input[k]), 4, out string why)) { failures.Enqueue($"thread {t} sigmoid {k}: {why}"); return; }
                    if (!SoftmaxElementOk(b[k], softmax[k], false)) { failures.Enqueue($"thread {t} softmax {k}: {b[k]} vs {softmax[k]}"); return; }
                }
            }
        });
        Assert.That(failures, Is.Empty);
    }

    // -----------------------------------------------------------------------------------------------------------
    // Elementwise

    static readonly string[] UnaryActivations = ["sigmoid", "relu"];

    static (DeviceActivation Device, Func<double, double> Reference) Activation(string name) => name switch
    {
        "sigmoid" => (Sigmoid, SigmoidRef),
        "relu" => (Relu, ReluRef),
        _ => throw new ArgumentException(name),
    };

    [Test]
    public void Unary_Lengths0To300_AtOffsets([ValueSource(nameof(UnaryActivations))] string name, [Values] bool flat)
    {
        using var _ = Launches(flat);
        var (activation, reference) = Activation(name);
        (int X, int Y)[] offsets = [(0, 0), (4, 8), (1, 1), (3, 5), (0, 7), (6, 0)];
        foreach ((int xo, int yo) in offsets)
            for (int n = 0; n <= 300; n++)
                RunUnaryAndCheck(activation, reference, n, xo, yo, ulps: 4);
    }

    [Test]
    public void Unary_Million_AtOffsets([ValueSource(nameof(UnaryActivations))] string name, [Values] bool flat)
    {
        using var _ = Launches(flat);
        var (activation, reference) = Activation(name);
        RunUnaryAndCheck(activation, reference, 1_000_000, 0, 0, ulps: 4);
        RunUnaryAndCheck(activation, reference, 1_000_000, 3, 1, ulps: 4);
        RunUnaryAndCheck(activation, reference, 1_000_003, 4, 12, ulps: 4);
    }

    [Test]
    public void Unary_InPlace()
    {
        float[] input = Inputs(1001, 11);
        using OpenCLBuffer x = Upload(input);
        _device.Unary(Sigmoid, x.Region(1), x.Region(1), 999, default);
        float[] back = Download(x, 0, input.Length);
        Assert.That(back[0], Is.EqualTo(input[0]));
        Assert.That(back[1000], Is.EqualTo(input[1000]));
        for (int i = 1; i < 1000; i++) if (!WithinUlps(back[i], SigmoidRef(input[i]), 4, out string why)) Assert.Fail($"x={input[i]:R} i={i}: {why}");
    }

    [Test]
    public void Unary_ParametersReachTheActivation()
    {
        var leaky = new DeviceActivation("leaky-test", "return x < 0.0f ? alpha * x : (x > threshold ? beta : x);");
        float[] input = [-2f, -0.5f, 0f, 0.5f, 3f, 10f, float.NaN];
        using OpenCLBuffer x = Upload(input), y = _device.Allocate(input.Length * 4);
        _device.Unary(leaky, x.Region(), y.Region(), input.Length, new ActivationParameters(0.25f, 7f, 5f));
        Assert.That(Download(y, 0, input.Length), Is.EqualTo(new[] { -0.5f, -0.125f, 0f, 0.5f, 3f, 7f, float.NaN }));
    }

    void RunUnaryAndCheck(DeviceActivation activation, Func<double, double> reference, int n, int xOffset, int yOffset, int ulps)
    {
        float[] input = Inputs(n, seed: n * 31 + xOffset);
        const float sentinel = -12345.5f;
        float[] xHost = new float[xOffset + n + 3];
        Array.Fill(xHost, 777f);
        input.CopyTo(xHost, xOffset);
        float[] yHost = new float[yOffset + n + 3];
        Array.Fill(yHost, sentinel);
        using OpenCLBuffer x = Upload(xHost), y = Upload(yHost);
        _device.Unary(activation, x.Region(xOffset), y.Region(yOffset), n, default);
        float[] back = Download(y, 0, yHost.Length);
        for (int i = 0; i < yHost.Length; i++)
        {
            if (i < yOffset || i >= yOffset + n)
            {
                if (back[i] != sentinel) Assert.Fail($"{activation.Name} n={n} offsets ({xOffset},{yOffset}): element {i} outside the output was written");
                continue;
            }
            float xi = input[i - yOffset];
            if (!WithinUlps(back[i], reference(xi), ulps, out string why)) Assert.Fail($"{activation.Name}({xi:R}) n={n} offsets ({xOffset},{yOffset}): {why}");
        }
    }

    [Test]
    public void PRelu_Channels_AtOffsets([Values(1, 3, 7, 64)] int channels, [Values(0, 1, 5)] int offset, [Values] bool flat)
    {
        using var _ = Launches(flat);
        foreach (int n in new[] { 0, 1, 5, 63, 64, 65, 1000, 100_003 })
        {
            float[] input = Inputs(n, seed: n + channels);
            float[] alpha = Enumerable.Range(0, channels).Select(c => 0.01f + 0.37f * c).ToArray();
            float[] xHost = new float[offset + n];
            input.CopyTo(xHost, offset);
            float[] aHost = new float[offset + channels];
            alpha.CopyTo(aHost, offset);
            using OpenCLBuffer x = Upload(xHost), a = Upload(aHost), y = _device.Allocate((offset + n) * 4L);
            _device.PRelu(x.Region(offset), a.Region(offset), channels, y.Region(offset), n);
            float[] back = Download(y, offset, n);
            for (int i = 0; i < n; i++)
            {
                float v = input[i];
                float expected = v < 0 ? alpha[i % channels] * v : v;
                if (BitConverter.SingleToInt32Bits(back[i]) != BitConverter.SingleToInt32Bits(expected) && !(float.IsNaN(back[i]) && float.IsNaN(expected)))
                    Assert.Fail($"prelu n={n} channels={channels} i={i}: x={v:R} got {back[i]:R} expected {expected:R}");
            }
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Gated units

    static readonly (long Rows, long D)[] GluShapes =
        [(1, 1), (3, 5), (7, 33), (64, 1), (5, 256), (2, 1000), (1, 100_000), (300, 7), (1, 7), (1, 4099), (9, 12)];

    // step 4 with offset 0 puts gate, up and y on 16-byte boundaries: the float4 kernel (grid-stride launches) when the rows allow.
    [Test]
    public void Glu_Separate_Silu([Values(0, 3)] int offset, [Values(1, 4)] int step, [Values] bool flat)
    {
        using var _ = Launches(flat);
        foreach ((long rows, long d) in GluShapes)
        {
            int n = (int)(rows * d);
            float[] gate = Inputs(n, 5 + n), up = Inputs(n, 9 + n, finiteOnly: true);
            using OpenCLBuffer g = Upload(Pad(gate, offset)), u = Upload(Pad(up, offset + step)), y = _device.Allocate((n + offset + 2 * step) * 4L);
            _device.Glu(Silu, GluLayout.Separate, g.Region(offset), u.Region(offset + step), y.Region(offset + 2 * step), rows, d);
            float[] back = Download(y, offset + 2 * step, n);
            for (int i = 0; i < n; i++)
                if (!WithinUlps(back[i], SiluRef(gate[i]) * up[i], 6, out string why)) Assert.Fail($"separate {rows}x{d} i={i} gate={gate[i]:R} up={up[i]:R}: {why}");
        }
    }

    /// <summary>
    /// The clamped SwiGLU forward and its backward in every layout through both launch shapes (grid-stride and flat), with
    /// the library's own gate (swish, alpha 1.702) and derivative: the layouts' walks (row stride, element step) and the limit.
    /// </summary>
    [Test]
    public void Glu_ClampedForwardAndBackward_EveryLayout([Values(0, 3)] int offset, [Values] bool flat, [Values(0, 1, 2)] int layoutIndex)
    {
        var layout = (GluLayout)layoutIndex;
        using var _ = Launches(flat);
        var unit = GatedUnit.ClampedSwiGlu();
        DeviceActivation swish = DeviceAccelerator.DeviceForm(unit.GateActivation);
        var parameters = new ActivationParameters(0, unit.Alpha, 0);
        foreach ((long rows, long d) in GluShapes)
        {
            int n = (int)(rows * d);
            float[] gate = Inputs(n, 3 + n, finiteOnly: true), up = Inputs(n, 4 + n, finiteOnly: true), dy = Inputs(n, 5 + n, finiteOnly: true);
            float[] packed = new float[2 * n];
            for (int i = 0; i < n; i++)
            {
                long r = i / d, j = i % d;
                (long gi, long ui) = layout == GluLayout.Interleaved ? (r * 2 * d + 2 * j, r * 2 * d + 2 * j + 1) : (r * 2 * d + j, r * 2 * d + d + j);
                (packed[gi], packed[ui]) = (gate[i], up[i]);
            }
            bool separate = layout == GluLayout.Separate;
            using OpenCLBuffer g = Upload(Pad(separate ? gate : packed, offset)), u = Upload(Pad(up, offset)), dyb = Upload(Pad(dy, offset)),
                y = _device.Allocate((n + offset) * 4L), dg = _device.Allocate((2 * n + offset) * 4L), du = _device.Allocate((n + offset) * 4L);
            _device.Glu(swish, layout, g.Region(offset), u.Region(offset), y.Region(offset), rows, d, parameters, unit.Limit);
            _device.GluBackward(swish, layout, g.Region(offset), u.Region(offset), dyb.Region(offset), dg.Region(offset), du.Region(offset), rows, d,
                parameters, unit.Limit);
            float[] back = Download(y, offset, n), dGate = Download(dg, offset, separate ? n : 2 * n), dUp = Download(du, offset, n);
            for (int i = 0; i < n; i++)
            {
                long r = i / d, j = i % d;
                (long gi, long ui) = separate ? (i, i) : layout == GluLayout.Interleaved ? (r * 2 * d + 2 * j, r * 2 * d + 2 * j + 1) : (r * 2 * d + j, r * 2 * d + d + j);
                var (eg, eu) = ScalarReference.GluGradient(GluId.ClampedSwiGlu, gate[i], up[i], dy[i], unit.Alpha, unit.Limit);
                float gotDg = dGate[gi], gotDu = separate ? dUp[i] : dGate[ui];
                string at = $"{layout} {rows}x{d} i={i} gate={gate[i]:R} up={up[i]:R} dy={dy[i]:R}";
                if (!WithinUlps(back[i], ScalarReference.GluValue(GluId.ClampedSwiGlu, gate[i], up[i], unit.Alpha, unit.Limit), 6, out string why)) Assert.Fail($"{at}: y {why}");
                if (!WithinUlps(gotDu, eu, 6, out why)) Assert.Fail($"{at}: dUp {why}");
                if (!WithinUlps(gotDg, eg, 8, out why) && Math.Abs(gotDg - eg) > Math.Abs(dy[i]) * 8.0 / (1 << 21)) Assert.Fail($"{at}: dGate {why}");
            }
        }
    }

    [Test]
    public void Glu_Packed_Silu([Values(0, 3)] int offset, [Values(1, 4)] int step, [Values] bool flat)
    {
        using var _ = Launches(flat);
        foreach ((long rows, long d) in GluShapes)
        {
            int n = (int)(rows * d);
            float[] packed = Inputs(2 * n, 7 + n, finiteOnly: true);
            using OpenCLBuffer p = Upload(Pad(packed, offset)), y = _device.Allocate((n + offset + step) * 4L);
            _device.Glu(Silu, GluLayout.Packed, p.Region(offset), default, y.Region(offset + step), rows, d);
            float[] back = Download(y, offset + step, n);
            for (long r = 0; r < rows; r++)
                for (long j = 0; j < d; j++)
                {
                    float gate = packed[r * 2 * d + j], up = packed[r * 2 * d + d + j];
                    if (!WithinUlps(back[r * d + j], SiluRef(gate) * up, 6, out string why)) Assert.Fail($"packed {rows}x{d} r={r} j={j} gate={gate:R} up={up:R}: {why}");
                }
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Softmax

    static IEnumerable<TestCaseData> SoftmaxShapes()
    {
        (long, long)[] shapes = [(1, 1), (3, 2), (7, 31), (5, 32), (5, 33), (4, 1000), (3, 4097), (1, 262144), (2, 1 << 18), (1, 1 << 20), (1000, 3), (300, 129)];
        foreach ((long rows, long cols) in shapes)
            foreach (bool log in new[] { false, true })
                foreach (bool cpuShaped in new[] { false, true })
                    yield return new TestCaseData(rows, cols, log, cpuShaped)
                        .SetArgDisplayNames($"{rows}x{cols}", log ? "log" : "softmax", cpuShaped ? "cpu-shaped" : "gpu-shaped");
    }

    [TestCaseSource(nameof(SoftmaxShapes))]
    public void Softmax_Shapes(long rows, long cols, bool log, bool cpuShaped)
    {
        using var _ = KernelShape(cpuShaped);
        float[] x = Logits(rows, cols, seed: (int)(rows * 7 + cols));
        SoftmaxPlan plan = _device.PlanSoftmax(rows, cols);
        TestContext.Out.WriteLine($"default plan: {plan}");
        CheckSoftmax(x, rows, cols, log, plan, offsets: (0, 0));
        CheckSoftmax(x, rows, cols, log, plan, offsets: (3, 1));
        // The other shapes on the same data.
        if (plan.IsSplit) CheckSoftmax(x, rows, cols, log, SoftmaxPlan.Rows(_device.GroupSize), offsets: (1, 0));
        else if (cols >= 2) CheckSoftmax(x, rows, cols, log, SoftmaxPlan.Split(cols, Math.Max(1, cols / 3)), offsets: (1, 2));
        foreach (SoftmaxPlan registers in RegisterPlans(cols))
            CheckSoftmax(x, rows, cols, log, registers, offsets: (1, 3));
    }

    /// <summary>
    /// The register-resident shapes that fit rows of <paramref name="cols"/> here: the narrowest lanes (up to 32, as CUDA's
    /// warp form) and the whole group (as CUDA's block form). OpenCL does not choose them, but they are the CUDA kernels'
    /// code with local-memory reductions in place of shuffles, so running them on PoCL checks everything else in them.
    /// </summary>
    IEnumerable<SoftmaxPlan> RegisterPlans(long cols)
    {
        int g = _device.GroupSize;
        foreach (int lanes in new[] { (int)Math.Min(32, System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)cols)), g }.Distinct())
        {
            long perLane = (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)((cols + lanes - 1) / lanes));
            if (perLane <= SoftmaxKernels.MaxRegistersPerLane) yield return SoftmaxPlan.Registers(lanes, (int)perLane, g);
        }
    }

    static IEnumerable<TestCaseData> SpecialRowCases()
    {
        foreach (long cols in new long[] { 1, 2, 5, 33, 1000, 4097 })
            foreach (bool log in new[] { false, true })
                foreach (bool cpuShaped in new[] { false, true })
                    yield return new TestCaseData(cols, log, cpuShaped)
                        .SetArgDisplayNames($"cols={cols}", log ? "log" : "softmax", cpuShaped ? "cpu-shaped" : "gpu-shaped");
    }

    [TestCaseSource(nameof(SpecialRowCases))]
    public void Softmax_SpecialRows_EveryShape(long cols, bool log, bool cpuShaped)
    {
        using var _ = KernelShape(cpuShaped);
        var random = new Random((int)cols);
        var rowsList = new List<float[]>();
        float[] Row(Func<int, float> f) => Enumerable.Range(0, (int)cols).Select(f).ToArray();
        int mid = (int)(cols / 2);
        rowsList.Add(Row(_ => (float)(random.NextDouble() * 20 - 10)));                               // plain
        rowsList.Add(Row(j => j == mid ? float.NaN : (float)random.NextDouble()));                        // NaN -> NaN row
        rowsList.Add(Row(j => j == cols - 1 ? float.PositiveInfinity : (float)random.NextDouble()));      // +inf -> NaN row
        rowsList.Add(Row(_ => float.NegativeInfinity));                                                    // all -inf -> NaN row
        rowsList.Add(Row(j => j % 3 == 1 ? float.NegativeInfinity : (float)(random.NextDouble() * 4)));    // some -inf -> 0 / -inf
        rowsList.Add(Row(j => j % 4 == 0 ? 1e30f : j % 4 == 1 ? -1e30f : j % 4 == 2 ? 1e29f : 0f));        // huge logits
        rowsList.Add(Row(j => j == mid ? 3f : float.NegativeInfinity));                                    // one finite among -inf
        rowsList.Add(Row(j => j % 2 == 0 ? float.MaxValue : -float.MaxValue));                             // extremes
        rowsList.Add(Row(j => j == 0 ? float.NaN : float.NegativeInfinity));                               // NaN among -inf
        long rows = rowsList.Count;
        float[] x = rowsList.SelectMany(r => r).ToArray();

        var plans = new List<SoftmaxPlan> { _device.PlanSoftmax(rows, cols) };
        for (int slice = 1; slice <= _device.GroupSize; slice *= 4) plans.Add(SoftmaxPlan.Rows(slice));
        plans.Add(SoftmaxPlan.Rows(_device.GroupSize));
        if (cols >= 2) plans.Add(SoftmaxPlan.Split(cols, Math.Max(1, (cols + 2) / 3)));
        if (cols <= 1000) plans.Add(SoftmaxPlan.Split(cols, 1));
        plans.AddRange(RegisterPlans(cols));
        foreach (SoftmaxPlan plan in plans.Distinct())
            CheckSoftmax(x, rows, cols, log, plan, offsets: (2, 1));
    }

    [Test]
    public void Softmax_InPlace()
    {
        const long rows = 6, cols = 777;
        float[] x = Logits(rows, cols, 3);
        using OpenCLBuffer b = Upload(x);
        _device.Softmax(b.Region(), b.Region(), rows, cols, log: false);
        float[] back = Download(b, 0, x.Length);
        double[] expected = SoftmaxReference(x, rows, cols, log: false);
        for (int i = 0; i < x.Length; i++) if (!SoftmaxElementOk(back[i], expected[i], false)) Assert.Fail($"softmax in place i={i}: got {back[i]:R}, expected {expected[i]:R}");
    }

    void CheckSoftmax(float[] x, long rows, long cols, bool log, SoftmaxPlan plan, (int X, int Y) offsets)
    {
        using OpenCLBuffer xb = Upload(Pad(x, offsets.X)), yb = _device.Allocate((x.Length + offsets.Y) * 4L);
        _device.Softmax(xb.Region(offsets.X), yb.Region(offsets.Y), rows, cols, log, plan);
        float[] y = Download(yb, offsets.Y, x.Length);
        double[] expected = SoftmaxReference(x, rows, cols, log);
        for (long r = 0; r < rows; r++)
        {
            double sum = 0;
            bool nanRow = double.IsNaN(expected[r * cols]);
            for (long j = 0; j < cols; j++)
            {
                long i = r * cols + j;
                if (!SoftmaxElementOk(y[i], expected[i], log)) Assert.Fail($"{(log ? "log-softmax" : "softmax")} {rows}x{cols} {plan} row {r} col {j} x={x[i]:R}: got {y[i]:R}, expected {expected[i]:R}");
                sum += log ? Math.Exp(y[i]) : y[i];
            }
            if (!nanRow && Math.Abs(sum - 1) > 1e-5)
                Assert.Fail($"{rows}x{cols} {plan} row {r}: sums to {sum:R}");
        }
    }

    static bool SoftmaxElementOk(float actual, double expected, bool log)
    {
        if (double.IsNaN(expected)) return float.IsNaN(actual);
        if (float.IsInfinity((float)expected)) return actual == (float)expected; // includes values beyond float's range
        if (log) return Math.Abs(actual - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected));
        return Math.Abs(actual - expected) <= 1e-5 * Math.Abs(expected) + 1e-35;
    }

    /// <summary>The double reference: max-subtracted; NaN or +inf in a row, or a row of only -inf, gives a NaN row.</summary>
    static double[] SoftmaxReference(float[] x, long rows, long cols, bool log) => ScalarReference.SoftmaxExact(x, rows, cols, log);

    /// <summary>Writes every composed program (sigmoid as the activation) to GA_DUMP_DIR, to compile them elsewhere (NVRTC, clang -x cuda).</summary>
    [Test, Explicit("writes files")]
    public void DumpDeviceSources()
    {
        string dir = Environment.GetEnvironmentVariable("GA_DUMP_DIR") ?? Path.Combine(Path.GetTempPath(), "ga-device-sources");
        Directory.CreateDirectory(dir);
        foreach (KernelFamily family in KernelFamily.All)
            File.WriteAllText(Path.Combine(dir, family.Name + ".cu"), family.Compose(256, family.TakesActivation ? Silu : null));
        TestContext.Out.WriteLine(dir);
    }

    // -----------------------------------------------------------------------------------------------------------
    // Throughput (explicit: run with --filter to see a figure)

    [Test, Explicit("benchmark")]
    public void Throughput_Sigmoid16M()
    {
        const int n = 16 << 20;
        float[] input = Inputs(n, 1, finiteOnly: true);
        using OpenCLBuffer x = Upload(input), y = _device.Allocate(n * 4L);
        using OpenCLBuffer copy = _device.Allocate(n * 4L);
        foreach ((string name, Action run) in new (string, Action)[]
        {
            ("copy", () => _device.Copy(x.Handle, 0, copy.Handle, 0, n * 4L)),
            ("sigmoid", () => _device.Unary(Sigmoid, x.Region(), y.Region(), n, default)),
            ("sigmoid scalar (offset 1)", () => _device.Unary(Sigmoid, x.Region(1), y.Region(1), n - 1, default)),
            ("sigmoid grid-stride", () => { using var _ = Launches(false); _device.Unary(Sigmoid, x.Region(), y.Region(), n, default); }),
            ("relu", () => _device.Unary(Relu, x.Region(), y.Region(), n, default)),
            ("silu-glu separate 16M", () => _device.Glu(Silu, GluLayout.Separate, x.Region(), x.Region(), y.Region(), 1, n)),
            ("softmax 4096x4096", () => _device.Softmax(x.Region(), y.Region(), 4096, 4096, false)),
            ("softmax 1x16M (split)", () => _device.Softmax(x.Region(), y.Region(), 1, n, false)),
            ("softmax 4096x4096 no-cpu-shape", () => { _device.CpuShapedKernels = false; _device.Softmax(x.Region(), y.Region(), 4096, 4096, false); _device.CpuShapedKernels = _device.Info.IsCpu; }),
            ("softmax 1x16M no-cpu-shape", () => { _device.CpuShapedKernels = false; _device.Softmax(x.Region(), y.Region(), 1, n, false); _device.CpuShapedKernels = _device.Info.IsCpu; }),
        })
        {
            run();
            _device.Synchronize();
            // The fastest of a few runs: these machines are shared, and the minimum is the least disturbed.
            var total = Stopwatch.StartNew();
            double seconds = double.MaxValue;
            for (int reps = 0; total.Elapsed.TotalSeconds < 2 || reps < 3; reps++)
            {
                long t0 = Stopwatch.GetTimestamp();
                run();
                _device.Synchronize();
                seconds = Math.Min(seconds, Stopwatch.GetElapsedTime(t0).TotalSeconds);
            }
            double gb = (name.Contains("glu") ? 3.0 : 2.0) * n * 4 / seconds / 1e9;
            TestContext.Out.WriteLine($"{name,-28} {seconds * 1e3,8:0.00} ms  {gb,6:0.00} GB/s (bytes read + written)");
            TestContext.Progress.WriteLine($"{name,-28} {seconds * 1e3,8:0.00} ms  {gb,6:0.00} GB/s (bytes read + written)");
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Helpers

    /// <summary>Runs the elementwise/GLU launches flat (one element per work-item) or grid-stride until disposed.</summary>
    FlatScope Launches(bool flat)
    {
        var scope = new FlatScope(_device, _device.FlatLaunches);
        _device.FlatLaunches = flat;
        return scope;
    }

    readonly record struct FlatScope(OpenCLDevice Device, bool Saved) : IDisposable
    {
        public void Dispose() => Device.FlatLaunches = Saved;
    }

    /// <summary>Compiles the softmax kernels with or without GA_CPU_DEVICE (loop barriers) until disposed.</summary>
    ShapeScope KernelShape(bool cpuShaped)
    {
        var scope = new ShapeScope(_device, _device.CpuShapedKernels);
        _device.CpuShapedKernels = cpuShaped;
        return scope;
    }

    readonly record struct ShapeScope(OpenCLDevice Device, bool Saved) : IDisposable
    {
        public void Dispose() => Device.CpuShapedKernels = Saved;
    }

    OpenCLBuffer Upload(float[] data)
    {
        OpenCLBuffer b = _device.Allocate(data.Length * 4L);
        _device.Write(b.Handle, 0, MemoryMarshal.AsBytes(data.AsSpan()));
        return b;
    }

    float[] Download(OpenCLBuffer b, long elementOffset, int count)
    {
        float[] result = new float[count];
        _device.Read(b.Handle, elementOffset * 4, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    static float[] Pad(float[] data, int offset)
    {
        float[] padded = new float[offset + data.Length];
        Array.Fill(padded, 999f, 0, offset);
        data.CopyTo(padded, offset);
        return padded;
    }

    static readonly float[] Specials =
    [
        0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, float.MaxValue, -float.MaxValue,
        float.Epsilon, -float.Epsilon, 1e-39f, -1e-39f, 1.17549435e-38f, 88.5f, -88.5f, 100f, -100f, 20f, -20f, 1f, -1f,
    ];

    /// <summary>Mostly values in [-12, 12], with the special values sprinkled in (unless finite-only).</summary>
    static float[] Inputs(int n, int seed, bool finiteOnly = false)
    {
        var random = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++)
        {
            v[i] = (float)(random.NextDouble() * 24 - 12);
            if (i % 17 == 3)
            {
                float s = Specials[random.Next(Specials.Length)];
                if (!finiteOnly || (float.IsFinite(s) && Math.Abs(s) < 1e30f)) v[i] = s;
            }
        }
        return v;
    }

    static float[] Logits(long rows, long cols, int seed)
    {
        var random = new Random(seed);
        float[] v = new float[rows * cols];
        for (long i = 0; i < v.Length; i++) v[i] = (float)(random.NextDouble() * 30 - 15);
        return v;
    }

    /// <summary>Within <paramref name="ulps"/> of the reference rounded to float; NaN matches NaN; a reference below the
    /// smallest normal float may come back flushed to zero.</summary>
    static bool WithinUlps(float actual, double reference, int ulps, out string why)
    {
        why = "";
        float expected = (float)reference;
        if (float.IsNaN(expected) && float.IsNaN(actual)) return true;
        if (Math.Abs(reference) < MinNormal * 2.0 && Math.Abs(actual) < MinNormal * 2.0) return true;
        long distance = UlpDistance(actual, expected);
        if (distance <= ulps) return true;
        why = $"got {actual:R}, expected {expected:R} ({distance} ulp > {ulps})";
        return false;
    }

    const float MinNormal = 1.17549435e-38f;

    static long UlpDistance(float a, float b)
    {
        if (float.IsNaN(a) || float.IsNaN(b)) return long.MaxValue;
        static long Ordered(float f)
        {
            int bits = BitConverter.SingleToInt32Bits(f);
            return bits < 0 ? int.MinValue - (long)bits : bits;
        }
        return Math.Abs(Ordered(a) - Ordered(b));
    }
}
