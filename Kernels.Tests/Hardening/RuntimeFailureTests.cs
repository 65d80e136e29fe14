using NUnit.Framework;

namespace GpuActivations.Tests.Hardening;

/// <summary>
/// Failures inside the runtime are clear and harmless: out of memory and a kernel that does not compile are each an
/// <see cref="AcceleratorException"/> naming the cause, after which the same accelerator still works.
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
        "CUDA_ERROR_OUT_OF_MEMORY", "CUDA_ERROR_INVALID_VALUE", "ErrorOutOfMemory", // CUDA (ILGPU names the driver's error)
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
    /// Device memory exhausted by allocations each of an eighth of the device's memory, until their sum passes it: the
    /// allocation that does not fit fails with the driver's error, and once the others are freed the accelerator works again.
    /// </summary>
    [Test]
    public void ExhaustingDeviceMemoryFailsCleanly()
    {
        if (Kind is not (AcceleratorKind.Cuda or AcceleratorKind.OpenCL))
            Assert.Ignore($"{Fixture}: exhausting host memory would exhaust the machine; the absurd-size test covers the host's out-of-memory path");
        long total = Acc.Info.MemoryBytes, each = total / 8;
        var held = new List<DeviceBuffer<float>>();
        Exception? failure = null;
        try
        {
            for (int i = 0; i < 12 && failure is null; i++)
            {
                try
                {
                    var b = Acc.Allocate<float>(each / 4);
                    held.Add(b);
                    b.Slice(b.Length - 1).CopyFrom([1f]); // some drivers commit memory on first use
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
        TestContext.Out.WriteLine($"{Kind}: {held.Count} allocations of {each >> 20} MiB (device memory {total >> 20} MiB): " +
                                  (failure is null ? "no failure" : $"{failure.GetType().Name}: {failure.Message}"));
        if (failure is null)
            Assert.Ignore($"12 x {each >> 20} MiB all fit ({Acc.Name} over-commits its {total >> 20} MiB); nothing to observe");
        AssertNamesOneOf(failure, OutOfMemoryNames, "exhausted device memory");
        AssertStillWorks();
    }

    /// <summary>A user activation that no ILGPU backend compiles: its forward throws (kernels cannot throw).</summary>
    readonly struct Uncompilable : IActivationFunction
    {
        public float Forward(float x) => x > 0f ? x : throw new InvalidOperationException("kernels cannot throw");
        public float Derivative(float x) => 1f;
    }

    /// <summary>
    /// A kernel ILGPU cannot compile is an <see cref="AcceleratorException"/> naming the kernel and ILGPU's reason, every
    /// time (a failed compile is not cached), and it does not poison the context: built-in kernels still load and run.
    /// </summary>
    [Test]
    public void AKernelThatDoesNotCompileIsAnAcceleratorExceptionAndTheAcceleratorCarriesOn()
    {
        if (Kind == AcceleratorKind.Cpu || Fixture.CpuShape is not null && !Fixture.RunKernels)
            Assert.Ignore($"{Fixture}: the SIMD path compiles no kernels at run time");
        var broken = Activation.Custom<Uncompilable>();
        using var x = Acc.Allocate<float>(new float[16]);
        using var y = Acc.Allocate<float>(16);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var e = Assert.Catch(() => { Acc.Apply(broken, x, y); Acc.Synchronize(); })!;
            TestContext.Out.WriteLine($"{Fixture}, attempt {attempt + 1}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            Assert.That(e, Is.InstanceOf<AcceleratorException>(), "the library's own exception type");
            Assert.That(e.Message, Does.Contain("could not compile").And.Contain(nameof(Uncompilable)), "names the kernel and its op");
        }
        AssertStillWorks();
    }
}
