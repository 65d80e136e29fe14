using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using GpuActivations.Cuda;
using GpuActivations.Device;
using NUnit.Framework;

namespace GpuActivations.Tests.Cuda;

/// <summary>
/// NVRTC compiles kernels to cubin with no GPU and no libcuda: CI runs these with GPUACTIVATIONS_REQUIRE_NVRTC=1, so that
/// a CUDA-only line of the shared kernel sources that does not compile fails CI instead of surfacing on a GPU.
/// </summary>
[TestFixture]
[NonParallelizable] // one test swaps the process-wide NVRTC
public class NvrtcTests
{
    /// <summary>The architectures every shared kernel is compiled for: A100 and H100/H200.</summary>
    static readonly int[] Architectures = [80, 90];

    static bool IsElfCubin(byte[] image) =>
        image.Length > 64 && image[0] == 0x7F && image[1] == (byte)'E' && image[2] == (byte)'L' && image[3] == (byte)'F'
        && BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(18)) == 190; // e_machine EM_CUDA

    /// <summary>
    /// Every activation the library compiles into the unary, GLU and backward families: <see cref="Activation.All"/> and the
    /// gated units' gate activations (today a subset, listed anyway so that a new gate cannot be missed).
    /// </summary>
    static IEnumerable<DeviceActivation> DeviceActivations() =>
        Activation.All.Concat(GatedUnit.All.Select(u => u.GateActivation))
            .Select(DeviceAccelerator.DeviceForm).DistinctBy(a => a.Name);

    /// <summary>The fp16/bf16 storage variants (float32 is every program's default): same type in and out, and 16-bit in, float32 out.</summary>
    static readonly ProgramStorage[] StorageVariants =
    [
        new(StorageType.Float16, StorageType.Float16), new(StorageType.BFloat16, StorageType.BFloat16),
        new(StorageType.Float16, StorageType.Float32), new(StorageType.BFloat16, StorageType.Float32),
    ];

    /// <summary>
    /// Every (family, activation) program the CUDA backend can build, for every architecture, in float32; and every family in
    /// each fp16/bf16 storage variant (with SiLU where it takes an activation: storage changes only loads and stores).
    /// </summary>
    public static IEnumerable<TestCaseData> SharedPrograms()
    {
        foreach (int arch in Architectures)
            foreach (KernelFamily family in KernelFamily.All)
            {
                foreach (DeviceActivation? activation in family.TakesActivation ? DeviceActivations().Where(family.Supports).Cast<DeviceActivation?>() : new DeviceActivation?[] { null })
                    yield return new TestCaseData(family.Name, activation?.Name, arch, 0, 0).SetArgDisplayNames(family.Label(activation), $"sm_{arch}");
                DeviceActivation? silu = family.TakesActivation ? DeviceAccelerator.DeviceForm(Activation.Silu) : null;
                foreach (ProgramStorage storage in StorageVariants)
                    yield return new TestCaseData(family.Name, silu?.Name, arch, (int)storage.In, (int)storage.Out)
                        .SetArgDisplayNames(family.Label(silu, storage), $"sm_{arch}");
            }
    }

    [Test]
    public void SharedPrograms_CoverEveryFamilyAndActivation()
    {
        int activations = DeviceActivations().Count();
        Assert.That(activations, Is.EqualTo(Activation.All.Count));
        int gates = GatedUnit.All.Select(u => u.GateActivation.Kind).Distinct().Count();
        Assert.That(gates, Is.EqualTo(5), "silu, gelu, gelu_tanh, relu, swish");
        // Every supported activation of the families that take one (glu_backward: the gates), the others once; then every
        // family in each storage variant.
        int programs = KernelFamily.All.Sum(f => f.TakesActivation ? DeviceActivations().Count(f.Supports) : 1) + KernelFamily.All.Count * StorageVariants.Length;
        Assert.That(SharedPrograms().Count(), Is.EqualTo(Architectures.Length * programs));
    }

    /// <summary>
    /// Compiles one shared program exactly as <see cref="CudaDevice"/> does (<see cref="KernelFamily.Compose"/> with its
    /// group size, the library's NVRTC options), with ptxas reporting registers and spills: the image is a cubin for
    /// sm_XY holding every kernel of the family, and no softmax kernel spills (the register-resident rows must stay in
    /// registers within the 64 registers <c>__launch_bounds__(1024)</c> allows).
    /// </summary>
    [TestCaseSource(nameof(SharedPrograms))]
    public void SharedProgram_CompilesToCubin(string familyName, string? activationName, int arch, int storageIn, int storageOut)
    {
        var storage = new ProgramStorage((StorageType)storageIn, (StorageType)storageOut);
        NvrtcCompiler compiler = CudaTestEnvironment.RequireNvrtc();
        KernelFamily family = KernelFamily.All.Single(f => f.Name == familyName);
        DeviceActivation? activation = activationName is null ? null : DeviceActivations().Single(a => a.Name == activationName);
        string source = family.Compose(CudaDevice.GroupSize, activation, storage: storage);

        CudaImage image = compiler.Compile(source, family.Label(activation, storage).Replace('/', '_').Replace('@', '_').Replace('>', '_') + ".cu",
            arch / 10, arch % 10, ["--ptxas-options=-v"]);

        Assert.That(image.Kind, Is.EqualTo(CudaImageKind.Cubin));
        Assert.That(image.Architecture, Is.EqualTo($"sm_{arch}"));
        Assert.That(IsElfCubin(image.Bytes), Is.True, "an ELF for EM_CUDA");
        foreach (string kernel in family.Kernels)
            Assert.That(image.Bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(kernel + "\0")), Is.GreaterThanOrEqualTo(0), $"{kernel} is in the cubin");

        Dictionary<string, (int Registers, int SpillBytes)> usage = PtxasUsage(image.Log);
        Assert.That(usage.Keys, Is.EquivalentTo(family.Kernels), "ptxas reported every kernel");
        foreach ((string kernel, (int registers, int spills)) in usage.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            TestContext.Out.WriteLine($"{kernel}: {registers} registers, {spills} bytes spilled");
            if (family == KernelFamily.Softmax)
                Assert.That(spills, Is.Zero, $"{kernel} spills registers");
        }
    }

    /// <summary>kernel -> (registers, spill-store bytes) from ptxas's -v output in the NVRTC log.</summary>
    static Dictionary<string, (int, int)> PtxasUsage(string log)
    {
        var usage = new Dictionary<string, (int, int)>(StringComparer.Ordinal);
        string? current = null;
        int spills = 0;
        foreach (string line in log.Split('\n'))
        {
            if (Regex.Match(line, @"Compiling entry function '(\w+)'") is { Success: true } entry)
                (current, spills) = (entry.Groups[1].Value, 0);
            else if (Regex.Match(line, @"(\d+) bytes spill stores") is { Success: true } spill)
                spills = int.Parse(spill.Groups[1].Value);
            else if (current is not null && Regex.Match(line, @"Used (\d+) registers") is { Success: true } used)
                usage[current] = (int.Parse(used.Groups[1].Value), spills);
        }

        return usage;
    }

    [Test]
    public void CompilesATestKernelToCubin([ValueSource(nameof(Architectures))] int arch)
    {
        NvrtcCompiler compiler = CudaTestEnvironment.RequireNvrtc();
        CudaImage image = compiler.Compile(TestKernelSources.AddOne, "add_one.cu", arch / 10, arch % 10);
        TestContext.Out.WriteLine($"NVRTC {compiler.Version} ({compiler.Nvrtc.LibraryName}): {image.Bytes.Length} bytes of {image.Kind} for {image.Architecture}");
        Assert.That(image.Kind, Is.EqualTo(CudaImageKind.Cubin));
        Assert.That(image.Architecture, Is.EqualTo($"sm_{arch}"));
        Assert.That(IsElfCubin(image.Bytes), Is.True, "an ELF for EM_CUDA");
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
        Assert.That(error.Call, Is.EqualTo("nvrtcCompileProgram"));
        Assert.That(error.ErrorName, Is.EqualTo("NVRTC_ERROR_COMPILATION"));
        Assert.That(error.Message, Does.StartWith("nvrtcCompileProgram failed: NVRTC_ERROR_COMPILATION (6)")
            .And.Contain("broken.cu").And.Contain("sm_80").And.Contain("NVRTC log").And.Contain("ga_undefined_name_42"));
        Assert.That(error, Is.InstanceOf<AcceleratorException>());
    }

    [Test]
    public void FailingCall_IsNamedWithNvrtcsErrorName()
    {
        NvrtcCompiler compiler = CudaTestEnvironment.RequireNvrtc();
        NvrtcException error = Assert.Throws<NvrtcException>(() => compiler.Nvrtc.Check(3, "api.nvrtcCreateProgram(&program, source)"))!;
        Assert.That(error.Call, Is.EqualTo("nvrtcCreateProgram(&program, source)"));
        Assert.That(error.ErrorName, Is.EqualTo("NVRTC_ERROR_INVALID_INPUT"));
        Assert.That(error.Message, Is.EqualTo("nvrtcCreateProgram(&program, source) failed: NVRTC_ERROR_INVALID_INPUT (3)"));
    }

    [Test]
    public void CompilesWithoutFastMath()
    {
        Assert.That(NvrtcCompiler.BaseOptions, Does.Not.Contain("--use_fast_math").And.Not.Contain("-use_fast_math"));
        Assert.That(NvrtcCompiler.BaseOptions, Does.Contain("--std=c++17").And.Contain("-default-device").And.Contain("--ftz=false"));
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

    [Test]
    public void MissingNvrtc_IsAFailureWhereRequired()
    {
        const string missing = "/nonexistent/gpuactivations/libnvrtc-missing.so";
        string? library = Environment.GetEnvironmentVariable(NvrtcNative.LibraryVariable);
        string? required = Environment.GetEnvironmentVariable(CudaTestEnvironment.RequireNvrtcVariable);
        try
        {
            Environment.SetEnvironmentVariable(NvrtcNative.LibraryVariable, missing);
            NvrtcCompiler.ResetShared();
            Environment.SetEnvironmentVariable(CudaTestEnvironment.RequireNvrtcVariable, "1");
            (NvrtcCompiler? compiler, string? reason, bool mustFail) = CudaTestEnvironment.FindNvrtc();
            Assert.That(compiler, Is.Null);
            Assert.That(reason, Does.Contain(missing));
            Assert.That(mustFail, Is.True, "GPUACTIVATIONS_REQUIRE_NVRTC=1 turns a missing NVRTC into a failure");
            Environment.SetEnvironmentVariable(CudaTestEnvironment.RequireNvrtcVariable, null);
            Assert.That(CudaTestEnvironment.FindNvrtc().MustFail, Is.False, "without it, a skip");
        }
        finally
        {
            Environment.SetEnvironmentVariable(NvrtcNative.LibraryVariable, library);
            Environment.SetEnvironmentVariable(CudaTestEnvironment.RequireNvrtcVariable, required);
            NvrtcCompiler.ResetShared();
        }
    }
}
