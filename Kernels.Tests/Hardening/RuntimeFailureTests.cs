using System.Reflection;
using GpuActivations.Device;
using GpuActivations.OpenCL;
using NUnit.Framework;

namespace GpuActivations.Tests.Hardening;

/// <summary>
/// Failures inside the runtime are clear and harmless: out of memory, a kernel that does not build, a driver error -
/// each an <see cref="AcceleratorException"/> naming the native error, after which the same accelerator still works.
/// </summary>
[NonParallelizable]
[HostSide]
public sealed class RuntimeFailureTests(AcceleratorTarget fixtureTarget) : AcceleratorTest(fixtureTarget)
{
    /// <summary>The native error names an out-of-memory may carry, by accelerator.</summary>
    static readonly string[] OutOfMemoryNames =
    [
        "out of memory", // CPU
        "CL_INVALID_BUFFER_SIZE", "CL_MEM_OBJECT_ALLOCATION_FAILURE", "CL_OUT_OF_RESOURCES", "CL_OUT_OF_HOST_MEMORY", // OpenCL
        "CUDA_ERROR_OUT_OF_MEMORY", "CUDA_ERROR_INVALID_VALUE", // CUDA
    ];

    /// <summary>The accelerator computes correctly: the check after every failure.</summary>
    void AssertStillWorks()
    {
        float[] x = TestData.Values(1000, seed: 3);
        var sigmoid = OpTable.Activations.First(a => a.Activation == Activation.Sigmoid);
        using var xb = Acc.Allocate<float>(x);
        using var yb = Acc.Allocate<float>(x.Length);
        Acc.Apply(Activation.Sigmoid, xb, yb);
        Acc.Synchronize();
        Ulp.AssertClose(x, yb.ToArray(), sigmoid.Expected(x), sigmoid.MaxUlp, "after the failure");
    }

    static void AssertNamesOneOf(Exception e, string[] names, string what)
    {
        Assert.That(e, Is.InstanceOf<AcceleratorException>(), $"{what}: the library's own exception type");
        Assert.That(names.Any(n => e.Message.Contains(n, StringComparison.Ordinal)), $"{what}: '{e.Message}' names none of {string.Join(", ", names)}");
    }

    [TestCase(1L << 40, TestName = "{m}(4 TiB)")]
    [TestCase(long.MaxValue / 8, TestName = "{m}(2^62 bytes)")]
    public void AnAbsurdAllocationIsAnAcceleratorExceptionAndTheAcceleratorCarriesOn(long floats)
    {
        var e = Assert.Catch(() => Acc.Allocate<float>(floats).Dispose())!;
        TestContext.Out.WriteLine($"{Kind}: Allocate<float>({floats}) -> {e.GetType().Name}: {e.Message}");
        AssertNamesOneOf(e, OutOfMemoryNames, $"Allocate<float>({floats})");
        AssertStillWorks();
    }

    /// <summary>
    /// Device memory exhausted by allocations each within the device's limit (OpenCL: CL_DEVICE_MAX_MEM_ALLOC_SIZE)
    /// until their sum passes its global memory: the allocation (or the first write) that does not fit fails with the
    /// driver's error, and once the others are freed the accelerator works again.
    /// </summary>
    [Test]
    public void ExhaustingDeviceMemoryFailsCleanly()
    {
        if (Kind != AcceleratorKind.OpenCL)
            Assert.Ignore($"{Kind}: exhausting host memory would exhaust the machine; the absurd-size test covers the CPU's out-of-memory path");
        var info = Device.Info;
        long each = info.MaxAllocationBytes, total = info.GlobalMemoryBytes;
        int tries = (int)Math.Min(16, total / each + 2);
        var held = new List<DeviceBuffer<float>>();
        Exception? failure = null;
        try
        {
            for (int i = 0; i < tries && failure is null; i++)
            {
                try
                {
                    var b = Acc.Allocate<float>(each / 4);
                    held.Add(b);
                    b.Slice(b.Length - 1).CopyFrom([1f]); // PoCL commits memory on first use
                    Acc.Synchronize();
                }
                catch (AcceleratorException e)
                {
                    failure = e;
                }
            }
        }
        finally
        {
            held.ForEach(b => b.Dispose());
        }
        TestContext.Out.WriteLine($"{Kind}: {held.Count} allocations of {each >> 20} MiB (global memory {total >> 20} MiB): " +
                                  (failure is null ? "no failure" : $"{failure.GetType().Name}: {failure.Message}"));
        if (failure is null)
            Assert.Ignore($"{tries} x {each >> 20} MiB all fit ({info.Name} over-commits its {total >> 20} MiB); nothing to observe");
        AssertNamesOneOf(failure, OutOfMemoryNames, "exhausted device memory");
        AssertStillWorks();
    }

    /// <summary>The OpenCL device behind the fixture's accelerator (the internal API, reached by reflection).</summary>
    OpenCLDevice Device => Acc is OpenCLAccelerator
        ? (OpenCLDevice)(typeof(OpenCLAccelerator).GetField("device", BindingFlags.NonPublic | BindingFlags.Instance)?.GetValue(Acc)
                         ?? throw new InvalidOperationException("OpenCLAccelerator has no field 'device' any more; update this test"))
        : throw new InvalidOperationException("not OpenCL");

    [Test]
    public void AKernelThatDoesNotBuildIsAnAcceleratorExceptionWithTheLogAndTheAcceleratorCarriesOn()
    {
        if (Kind != AcceleratorKind.OpenCL)
            Assert.Ignore(Kind == AcceleratorKind.Cpu
                ? "the CPU accelerator compiles no kernels at run time"
                : $"{Kind}: covered at the device layer by CudaTests (BrokenKernel_ThrowsWithTheNvrtcLog, FailedCompilation_IsReportedAndNotCached)");
        var device = Device;
        var e = Assert.Catch(() => device.CompileForTest("__kernel void broken(__global float* y) { y[0] = undefined_function(; }", "broken"))!;
        TestContext.Out.WriteLine($"{Kind}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
        AssertNamesOneOf(e, ["CL_BUILD_PROGRAM_FAILURE"], "a broken program");
        Assert.That(e.Message, Does.Contain("Compiler log").And.Contain("undefined_function"), "the compiler's log travels with it");

        // A broken activation body reaches the same error through the op path, every time (a failed build is not cached).
        var broken = new DeviceActivation("broken_for_test", "return x +;");
        using var x = Acc.Allocate<float>(new float[16]);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var again = Assert.Catch(() => ((IDeviceKernels)device).Unary(broken, new(x.NativeHandle, 0), new(x.NativeHandle, 0), 16, default))!;
            AssertNamesOneOf(again, ["CL_BUILD_PROGRAM_FAILURE"], $"a broken activation, attempt {attempt + 1}");
        }
        AssertStillWorks();
    }

    [Test]
    public void ADriverErrorIsAnAcceleratorExceptionNamingItAndTheAcceleratorCarriesOn()
    {
        // Host memory (the CPU, ILGPU's CPU accelerator) has no driver to check the length: the copy would corrupt the heap.
        if (Kind == AcceleratorKind.Cpu || Fixture.CpuShape is not null) Assert.Ignore("host memory has no driver to fail");
        // An engine's memory object wrapped with a length longer than it is: the copy past its end is refused by the driver.
        using var real = Acc.Allocate<float>(64);
        using var tooLong = Acc.Wrap<float>(real.NativeHandle, 128);
        var e = Assert.Catch(() => tooLong.CopyFrom(new float[128]))!;
        TestContext.Out.WriteLine($"{Kind}: {e.GetType().Name}: {e.Message}");
        AssertNamesOneOf(e, ["CL_INVALID_VALUE", "CUDA_ERROR_INVALID_VALUE"], "a copy past the end of the memory object");
        Assert.That(Assert.Catch(() => tooLong.Slice(100, 10).ToArray()), Is.InstanceOf<AcceleratorException>());
        AssertStillWorks();
    }
}
