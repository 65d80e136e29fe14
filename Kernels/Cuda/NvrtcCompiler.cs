using System.Runtime.InteropServices;

namespace GpuActivations.Cuda;

/// <summary>What NVRTC produced: a cubin (ELF) for one <c>sm_XY</c>, or PTX text the driver compiles when it loads it.</summary>
internal enum CudaImageKind { Cubin, Ptx }

/// <summary>A compiled module image, ready for <c>cuModuleLoadData</c>. PTX images end with a NUL byte.</summary>
internal sealed record CudaImage(byte[] Bytes, CudaImageKind Kind, string Architecture, string Log);

/// <summary>
/// Compiles CUDA C++ source with NVRTC for a compute capability: to cubin for the device's own <c>sm_XY</c> (a cubin
/// from any toolkit loads on any driver that knows the architecture, while PTX from a newer NVRTC is refused by an
/// older driver); to PTX for the newest <c>compute_XY</c> it knows at or below the device's only when this NVRTC is
/// too old to emit cubin for it. Needs no GPU and no <c>libcuda</c>. Thread-safe; images are kept per (options, source), so
/// a second accelerator on the same architecture does not compile again.
/// </summary>
internal sealed unsafe class NvrtcCompiler
{
    /// <summary>
    /// The options every compilation gets besides the architecture: C++17 (NVRTC's own default since 11.0, so the dialect
    /// every NVRTC from 11.2 to 13 is surest to keep), unqualified functions are device
    /// functions (the shared dialect writes plain <c>static inline</c> helpers), and IEEE-accurate arithmetic
    /// spelled out (no <c>--use_fast_math</c>: its approximate <c>expf</c>, division and flush-to-zero break the
    /// accuracy budget). Line info is off.
    /// </summary>
    public static IReadOnlyList<string> BaseOptions { get; } =
        ["--std=c++17", "-default-device", "--ftz=false", "--prec-div=true", "--prec-sqrt=true"];

    private readonly Lock _compileLock = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<CudaImage>> _images = new(StringComparer.Ordinal);

    /// <summary>Wraps a loaded NVRTC.</summary>
    public NvrtcCompiler(NvrtcNative nvrtc) => Nvrtc = nvrtc;

    /// <summary>The NVRTC binding.</summary>
    public NvrtcNative Nvrtc { get; }

    /// <summary>NVRTC's version.</summary>
    public Version Version => Nvrtc.Version;

    private static readonly SharedLoad<NvrtcCompiler> SharedCompiler = new(static () =>
    {
        NativeLoad<NvrtcNative> nvrtc = NvrtcNative.Shared;
        return nvrtc.Api is { } api ? new(new NvrtcCompiler(api), null) : new(null, nvrtc.FailureReason);
    });

    /// <summary>The process-wide compiler over <see cref="NvrtcNative.Shared"/>, or the reason there is none.</summary>
    public static NativeLoad<NvrtcCompiler> Shared => SharedCompiler.Value;

    /// <summary>Forgets the shared compiler and the shared NVRTC load.</summary>
    public static void ResetShared()
    {
        SharedCompiler.Reset();
        NvrtcNative.ResetShared();
    }

    /// <summary>
    /// Chooses the target for compute capability <paramref name="major"/>.<paramref name="minor"/>:
    /// <c>sm_XY</c> cubin when this NVRTC emits cubin for it, else PTX for the newest <c>compute_ZW</c> &lt;= XY it knows.
    /// </summary>
    public (CudaImageKind Kind, string Architecture) ChooseTarget(int major, int minor)
    {
        int arch = major * 10 + minor;
        IReadOnlyList<int>? supported = Nvrtc.SupportedArchitectures;
        if (Nvrtc.CanEmitCubin && (supported is null || supported.Contains(arch)))
            return (CudaImageKind.Cubin, $"sm_{arch}");

        if (supported is null)
            return (CudaImageKind.Ptx, $"compute_{arch}");

        int best = -1;
        foreach (int candidate in supported)
        {
            if (candidate <= arch)
                best = Math.Max(best, candidate);
        }

        if (best < 0)
            throw new NotSupportedException(
                $"NVRTC {Version} ({Nvrtc.LibraryName}) cannot compile for sm_{arch}: it supports sm_{string.Join(", sm_", supported)}");
        return (CudaImageKind.Ptx, $"compute_{best}");
    }

    /// <summary>
    /// Compiles <paramref name="source"/> for compute capability <paramref name="major"/>.<paramref name="minor"/>.
    /// Kernels must be <c>extern "C"</c> so their names are not mangled. A failed compilation throws an
    /// <see cref="NvrtcException"/> whose message holds the program log.
    /// </summary>
    public CudaImage Compile(string source, string programName, int major, int minor, IEnumerable<string>? extraOptions = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        (CudaImageKind kind, string architecture) = ChooseTarget(major, minor);

        var options = new List<string>(BaseOptions.Count + 1) { $"--gpu-architecture={architecture}" };
        options.AddRange(BaseOptions);
        if (extraOptions is not null)
            options.AddRange(extraOptions);

        // Every accelerator on the same architecture compiles the same texts: one compilation per (options, source) in
        // the process, however many devices or threads ask. A failure is not kept.
        string key = string.Join('\n', options) + "\n\n" + source;
        Lazy<CudaImage> lazy = _images.GetOrAdd(key, _ => new Lazy<CudaImage>(() =>
        {
            lock (_compileLock)
                return CompileCore(source, programName, kind, architecture, options);
        }, LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            _images.TryRemove(new KeyValuePair<string, Lazy<CudaImage>>(key, lazy));
            throw;
        }
    }

    /// <summary>How many distinct images this compiler has made (and keeps) so far.</summary>
    public int CachedImages => _images.Count(pair => pair.Value.IsValueCreated);

    private CudaImage CompileCore(string source, string programName, CudaImageKind kind, string architecture, List<string> options)
    {
        NvrtcNative api = Nvrtc;
        var allocations = new List<nint>(options.Count + 2);
        nint program = 0;
        try
        {
            nint Utf8(string text)
            {
                nint p = Marshal.StringToCoTaskMemUTF8(text);
                allocations.Add(p);
                return p;
            }

            api.Check(api.nvrtcCreateProgram(&program, (byte*)Utf8(source), (byte*)Utf8(programName), 0, null, null));

            var optionPointers = new nint[options.Count];
            for (int i = 0; i < options.Count; i++)
                optionPointers[i] = Utf8(options[i]);

            int result;
            fixed (nint* optionsPtr = optionPointers)
                result = api.nvrtcCompileProgram(program, optionPointers.Length, (byte**)optionsPtr);

            string log = ReadLog(program);
            if (result != NvrtcNative.Success)
            {
                string name = api.ErrorName(result);
                throw new NvrtcException(
                    $"nvrtcCompileProgram failed: {name} ({result}): NVRTC {Version} could not compile '{programName}' for {architecture} " +
                    $"(options: {string.Join(' ', options)})",
                    log, "nvrtcCompileProgram", name);
            }

            byte[] image;
            nuint size = 0;
            if (kind == CudaImageKind.Cubin)
            {
                api.Check(api.nvrtcGetCUBINSize(program, &size));
                image = new byte[(int)size];
                fixed (byte* p = image)
                    api.Check(api.nvrtcGetCUBIN(program, p));
            }
            else
            {
                api.Check(api.nvrtcGetPTXSize(program, &size)); // includes the terminating NUL
                image = new byte[(int)size];
                fixed (byte* p = image)
                    api.Check(api.nvrtcGetPTX(program, p));
            }

            return new CudaImage(image, kind, architecture, log);
        }
        finally
        {
            if (program != 0)
                api.nvrtcDestroyProgram(&program);
            foreach (nint p in allocations)
                Marshal.FreeCoTaskMem(p);
        }
    }

    private string ReadLog(nint program)
    {
        nuint size = 0;
        if (Nvrtc.nvrtcGetProgramLogSize(program, &size) != NvrtcNative.Success || size <= 1)
            return "";
        var log = new byte[(int)size];
        fixed (byte* p = log)
        {
            if (Nvrtc.nvrtcGetProgramLog(program, p) != NvrtcNative.Success)
                return "";
        }

        return System.Text.Encoding.UTF8.GetString(log, 0, log.Length - 1);
    }
}
