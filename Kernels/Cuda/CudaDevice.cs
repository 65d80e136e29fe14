using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using GpuActivations.Device;

namespace GpuActivations.Cuda;

/// <summary>
/// One CUDA device as this library drives it: its primary context (retained here, released on dispose), one
/// non-blocking stream every call is queued on, device memory, and the shared kernels of <c>Kernels/Device</c>
/// (<see cref="KernelFamily"/>) compiled by NVRTC for the device's own <c>sm_XY</c>, once per (family, activation), with
/// <c>GA_GROUP_SIZE</c> = <see cref="GroupSize"/>. Every public member makes the context current on the calling thread
/// first, so the device may be used from any thread (<c>Parallel.For</c> workers included); calls on one device share
/// its one stream and run in the order they were queued. Disposing while other threads still use the device is not
/// supported.
/// </summary>
internal sealed unsafe class CudaDevice : IDeviceKernels, IDisposable
{
    /// <summary>
    /// The work-group size the shared programs are compiled for (<c>GA_GROUP_SIZE</c>) and the block size of every
    /// launch except the register-resident softmax's block form: 8 warps, so 8 blocks fill an SM's 2048 threads.
    /// </summary>
    public const int GroupSize = 256;

    private readonly CudaNative _cu;
    private readonly NvrtcCompiler _compiler;
    private readonly CudaContextHandle _context;
    private readonly nint _stream;
    private readonly bool _ownsStream;
    private readonly ConcurrentDictionary<string, Lazy<CudaModule>> _modules = new(StringComparer.Ordinal);
    // The family modules by activation object (the accelerator passes one cached DeviceActivation per kind), so a launch
    // finds its module without hashing the activation's source; _modules is the cache of record.
    private readonly CudaModule?[] _plainModules = new CudaModule?[ModuleSlots];
    private readonly ConditionalWeakTable<DeviceActivation, CudaModule?[]> _activationModules = new();
    private readonly Lock _splitLock = new();
    private CudaBuffer? _scratch;
    private volatile bool _disposed;

    private CudaDevice(CudaNative cu, NvrtcCompiler compiler, CudaContextHandle context, nint stream, bool ownsStream, CudaDeviceInfo info)
    {
        _cu = cu;
        _compiler = compiler;
        _context = context;
        _stream = stream;
        _ownsStream = ownsStream;
        Info = info;
    }

    /// <summary>What the driver says about this device.</summary>
    public CudaDeviceInfo Info { get; }

    /// <summary>Blocks per SM, at most, of grid-stride elementwise and GLU launches (8 x 256 threads: one full wave).</summary>
    public int BlocksPerMultiprocessor { get; set; } = 8;

    /// <summary>The softmax shapes' chooser for this device: register rows on, splits below 8 blocks per SM.</summary>
    public SoftmaxPlanner SoftmaxPlanner => new(GroupSize, Info.MultiprocessorCount, 8, RegisterRows: true);

    /// <summary>The <c>CUcontext</c> (for engines that share it).</summary>
    public nint Context => _context.Context;

    /// <summary>The <c>CUstream</c> every call is queued on (0 only when wrapping an engine's legacy default stream).</summary>
    public nint Stream => _stream;

    /// <summary>Whether this device owns its context retain and stream (false when it wraps an engine's).</summary>
    public bool OwnsContext => _ownsStream;

    /// <summary>The driver binding.</summary>
    public CudaNative Driver => _cu;

    /// <summary>The compiler used for this device's modules.</summary>
    public NvrtcCompiler Compiler => _compiler;

    // ---------------------------------------------------------------- discovery and creation

    /// <summary>
    /// The usable CUDA devices, found through the process-wide driver (<see cref="CudaNative.LibraryVariable"/> or
    /// <c>libcuda.so.1</c>) and NVRTC (<see cref="NvrtcNative.LibraryVariable"/> or <c>libnvrtc.so.*</c>); none and the
    /// reason when either is missing. Never throws.
    /// </summary>
    public static CudaEnumeration Enumerate() => Enumerate(CudaNative.Shared, NvrtcCompiler.Shared);

    /// <summary>
    /// Enumerates through freshly loaded libraries: <paramref name="cudaLibrary"/> and <paramref name="nvrtcLibrary"/>
    /// (null: the default names; environment variables are not read). Never throws.
    /// </summary>
    public static CudaEnumeration Enumerate(string? cudaLibrary, string? nvrtcLibrary)
    {
        NativeLoad<NvrtcNative> nvrtc = NvrtcNative.Load(nvrtcLibrary);
        return Enumerate(CudaNative.Load(cudaLibrary),
            nvrtc.Api is { } api ? new(new NvrtcCompiler(api), null) : new(null, nvrtc.FailureReason));
    }

    /// <summary>Enumerates through the given loads. Never throws.</summary>
    public static CudaEnumeration Enumerate(NativeLoad<CudaNative> driver, NativeLoad<NvrtcCompiler> compiler)
    {
        try
        {
            if (driver.Api is not { } cu)
                return CudaEnumeration.Absent(driver.FailureReason ?? "CUDA driver not loaded");

            int count = 0;
            int result = cu.cuDeviceGetCount(&count);
            if (result != CudaResult.Success)
                return CudaEnumeration.Absent($"cuDeviceGetCount: {cu.ErrorName(result)}");
            if (count == 0)
                return CudaEnumeration.Absent("cuDeviceGetCount: no CUDA devices");

            var devices = new List<CudaDeviceInfo>(count);
            for (int ordinal = 0; ordinal < count; ordinal++)
            {
                int device = 0;
                cu.Check(cu.cuDeviceGet(&device, ordinal));
                devices.Add(QueryInfo(cu, device, ordinal));
            }

            if (compiler.Api is null)
            {
                return CudaEnumeration.Absent(
                    $"{compiler.FailureReason} ({count} CUDA device(s) present: {string.Join(", ", devices.Select(d => d.Name))}; " +
                    "kernels cannot be compiled without NVRTC)");
            }

            return new CudaEnumeration(devices, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return CudaEnumeration.Absent(e.Message);
        }
    }

    /// <summary>
    /// Opens device <paramref name="ordinal"/>: retains its primary context and creates a non-blocking stream.
    /// <paramref name="driver"/> and <paramref name="compiler"/> default to the process-wide ones; throws
    /// <see cref="NotSupportedException"/> (with the reason) when either is absent.
    /// </summary>
    public static CudaDevice Create(int ordinal, CudaNative? driver = null, NvrtcCompiler? compiler = null)
    {
        CudaNative cu = driver ?? CudaNative.Shared.Require("CUDA");
        NvrtcCompiler nvrtc = compiler ?? NvrtcCompiler.Shared.Require("NVRTC");

        int count = 0;
        cu.Check(cu.cuDeviceGetCount(&count));
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        if (ordinal >= count)
            throw new ArgumentOutOfRangeException(nameof(ordinal), ordinal, $"there are {count} CUDA device(s)");

        int device = 0;
        cu.Check(cu.cuDeviceGet(&device, ordinal));
        CudaDeviceInfo info = QueryInfo(cu, device, ordinal);

        nint context = 0;
        cu.Check(cu.cuDevicePrimaryCtxRetain(&context, device));
        var contextHandle = new CudaContextHandle(cu, context, device, ownsPrimaryRetain: true);
        try
        {
            cu.Check(cu.cuCtxSetCurrent(context));
            nint stream = 0;
            cu.Check(cu.cuStreamCreate(&stream, CudaNative.StreamNonBlocking));
            return new CudaDevice(cu, nvrtc, contextHandle, stream, ownsStream: true, info);
        }
        catch
        {
            contextHandle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Wraps an engine's existing <paramref name="context"/> and <paramref name="stream"/> without taking ownership:
    /// dispose neither releases the context nor destroys the stream. Memory from <see cref="Allocate"/> is still owned
    /// by this library; an engine's own pointers come in through <see cref="WrapMemory"/> or plain <see cref="DeviceRegion"/>s.
    /// </summary>
    public static CudaDevice Wrap(nint context, nint stream, CudaNative? driver = null, NvrtcCompiler? compiler = null)
    {
        if (context == 0)
            throw new ArgumentException("a CUDA context is required", nameof(context));
        CudaNative cu = driver ?? CudaNative.Shared.Require("CUDA");
        NvrtcCompiler nvrtc = compiler ?? NvrtcCompiler.Shared.Require("NVRTC");

        cu.Check(cu.cuCtxSetCurrent(context));
        int device = 0;
        cu.Check(cu.cuCtxGetDevice(&device));
        int ordinal = OrdinalOf(cu, device);
        CudaDeviceInfo info = QueryInfo(cu, device, ordinal);
        var contextHandle = new CudaContextHandle(cu, context, device, ownsPrimaryRetain: false);
        return new CudaDevice(cu, nvrtc, contextHandle, stream, ownsStream: false, info);
    }

    private static int OrdinalOf(CudaNative cu, int device)
    {
        int count = 0;
        cu.Check(cu.cuDeviceGetCount(&count));
        for (int ordinal = 0; ordinal < count; ordinal++)
        {
            int candidate = 0;
            if (cu.cuDeviceGet(&candidate, ordinal) == CudaResult.Success && candidate == device)
                return ordinal;
        }

        return device;
    }

    private static CudaDeviceInfo QueryInfo(CudaNative cu, int device, int ordinal)
    {
        byte* name = stackalloc byte[256];
        cu.Check(cu.cuDeviceGetName(name, 256, device));
        nuint memory = 0;
        cu.Check(cu.cuDeviceTotalMem(&memory, device));

        int Required(CudaDeviceAttribute attribute)
        {
            int value = 0;
            cu.Check(cu.cuDeviceGetAttribute(&value, attribute, device), $"cuDeviceGetAttribute({attribute})");
            return value;
        }

        int Optional(CudaDeviceAttribute attribute)
        {
            int value = 0;
            return cu.cuDeviceGetAttribute(&value, attribute, device) == CudaResult.Success ? value : 0;
        }

        return new CudaDeviceInfo(
            ordinal,
            CudaLibraryLoader.Utf8(name) ?? $"CUDA device {ordinal}",
            Required(CudaDeviceAttribute.ComputeCapabilityMajor),
            Required(CudaDeviceAttribute.ComputeCapabilityMinor),
            Required(CudaDeviceAttribute.MultiprocessorCount),
            (long)memory,
            Optional(CudaDeviceAttribute.MemoryClockRate),
            Optional(CudaDeviceAttribute.GlobalMemoryBusWidth),
            Required(CudaDeviceAttribute.MaxThreadsPerBlock),
            Optional(CudaDeviceAttribute.MaxThreadsPerMultiprocessor),
            Required(CudaDeviceAttribute.WarpSize),
            cu.DriverVersion);
    }

    // ---------------------------------------------------------------- context

    /// <summary>Makes this device's context current on the calling thread (every public member does this itself).</summary>
    public void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        nint current = 0;
        _cu.Check(_cu.cuCtxGetCurrent(&current));
        if (current != _context.Context)
            _cu.Check(_cu.cuCtxSetCurrent(_context.Context));
    }

    /// <summary>Waits for everything queued on this device's stream.</summary>
    public void Synchronize()
    {
        MakeCurrent();
        _cu.Check(_cu.cuStreamSynchronize(_stream));
    }

    // ---------------------------------------------------------------- memory

    /// <summary>Allocates <paramref name="bytes"/> of device memory (uninitialised; 0 bytes gives an empty buffer).</summary>
    public CudaBuffer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        MakeCurrent();
        if (bytes == 0)
            return new CudaBuffer(_cu, _context, 0, 0, owns: false);
        ulong pointer = 0;
        _cu.Check(_cu.cuMemAlloc(&pointer, (nuint)bytes));
        try
        {
            return new CudaBuffer(_cu, _context, pointer, bytes, owns: true);
        }
        catch
        {
            _cu.cuMemFree(pointer);
            throw;
        }
    }

    /// <summary>Allocates room for <paramref name="count"/> elements of <typeparamref name="T"/>.</summary>
    public CudaBuffer Allocate<T>(long count) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return Allocate(checked(count * sizeof(T)));
    }

    /// <summary>Wraps an engine's device pointer of <paramref name="bytes"/> without taking ownership (never freed here).</summary>
    public CudaBuffer WrapMemory(ulong devicePointer, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new CudaBuffer(_cu, _context, devicePointer, bytes, owns: false);
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="destination"/> at <paramref name="elementOffset"/>; returns when the copy is done.</summary>
    public void Write<T>(CudaBuffer destination, ReadOnlySpan<T> source, long elementOffset = 0) where T : unmanaged
    {
        CheckRange<T>(destination, elementOffset, source.Length);
        Write(destination.Region(elementOffset), source);
        GC.KeepAlive(destination);
    }

    /// <summary>Copies <paramref name="source"/> to the region (element offset in <typeparamref name="T"/>; not bounds-checked); returns when done.</summary>
    public void Write<T>(DeviceRegion destination, ReadOnlySpan<T> source) where T : unmanaged
    {
        MakeCurrent();
        if (source.IsEmpty)
            return;
        fixed (T* host = source)
        {
            _cu.Check(_cu.cuMemcpyHtoDAsync(Address<T>(destination), host, (nuint)((long)source.Length * sizeof(T)), _stream));
            // The host span is pinned only for this call: wait before unpinning.
            _cu.Check(_cu.cuStreamSynchronize(_stream));
        }
    }

    /// <summary>Copies from <paramref name="source"/> at <paramref name="elementOffset"/> into <paramref name="destination"/>, after all queued work.</summary>
    public void Read<T>(CudaBuffer source, Span<T> destination, long elementOffset = 0) where T : unmanaged
    {
        CheckRange<T>(source, elementOffset, destination.Length);
        Read(source.Region(elementOffset), destination);
        GC.KeepAlive(source);
    }

    /// <summary>Copies from the region (element offset in <typeparamref name="T"/>; not bounds-checked) after all queued work; returns when done.</summary>
    public void Read<T>(DeviceRegion source, Span<T> destination) where T : unmanaged
    {
        MakeCurrent();
        if (destination.IsEmpty)
            return;
        fixed (T* host = destination)
        {
            _cu.Check(_cu.cuMemcpyDtoHAsync(host, Address<T>(source), (nuint)((long)destination.Length * sizeof(T)), _stream));
            _cu.Check(_cu.cuStreamSynchronize(_stream));
        }
    }

    /// <summary>Queues a device-to-device copy of <paramref name="count"/> elements between buffers (bounds-checked).</summary>
    public void Copy<T>(CudaBuffer source, long sourceOffset, CudaBuffer destination, long destinationOffset, long count) where T : unmanaged
    {
        CheckRange<T>(source, sourceOffset, count);
        CheckRange<T>(destination, destinationOffset, count);
        Copy<T>(source.Region(sourceOffset), destination.Region(destinationOffset), count);
        GC.KeepAlive(source);
        GC.KeepAlive(destination);
    }

    /// <summary>Queues a device-to-device copy of <paramref name="count"/> elements between regions (not bounds-checked).</summary>
    public void Copy<T>(DeviceRegion source, DeviceRegion destination, long count) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        MakeCurrent();
        if (count == 0)
            return;
        _cu.Check(_cu.cuMemcpyDtoDAsync(Address<T>(destination), Address<T>(source), (nuint)(count * sizeof(T)), _stream));
    }

    /// <summary>Queues filling <paramref name="count"/> 32-bit elements of the region with <paramref name="value"/>'s bits.</summary>
    public void Fill(DeviceRegion destination, long count, float value) => Fill32(destination, count, BitConverter.SingleToUInt32Bits(value));

    /// <summary>Queues filling <paramref name="count"/> 32-bit elements of the region (element offset in 4-byte units) with <paramref name="bits"/>.</summary>
    public void Fill32(DeviceRegion destination, long count, uint bits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        MakeCurrent();
        if (count == 0)
            return;
        _cu.Check(_cu.cuMemsetD32Async(Address<uint>(destination), bits, (nuint)count, _stream));
    }

    private static ulong Address<T>(DeviceRegion region) where T : unmanaged =>
        (ulong)region.Handle + (ulong)(region.ElementOffset * sizeof(T));

    private static void CheckRange<T>(CudaBuffer buffer, long offset, long count) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (offset + count > buffer.Length<T>())
            throw new ArgumentOutOfRangeException(nameof(count), $"{count} elements at {offset} do not fit in {buffer.Length<T>()}");
    }

    // ---------------------------------------------------------------- modules and launches

    /// <summary>
    /// The module of <paramref name="family"/> for <paramref name="activation"/> (null for the families without one):
    /// <see cref="KernelFamily.Compose"/> compiled once per (family, activation name and body) on this device; thread-safe.
    /// </summary>
    public CudaModule FamilyModule(KernelFamily family, DeviceActivation? activation, ProgramStorage storage = default)
    {
        ArgumentNullException.ThrowIfNull(family);
        if (family.TakesActivation != activation is not null)
            throw new ArgumentException(family.TakesActivation ? $"the {family} kernels need an activation" : $"the {family} kernels take no activation", nameof(activation));
        CudaModule?[] slots = activation is null ? _plainModules : _activationModules.GetValue(activation, static _ => new CudaModule?[ModuleSlots]);
        int slot = family.Index * StorageVariants + (int)storage.In * 3 + (int)storage.Out;
        CudaModule? module = Volatile.Read(ref slots[slot]);
        if (module is null)
        {
            string key = (activation is null ? family.Name : $"{family.Name}/{activation.Name}\n{activation.Body}") + storage.Label;
            module = GetModule(key, () => family.Compose(GroupSize, activation, storage: storage),
                family.Label(activation, storage).Replace('/', '_').Replace('@', '_').Replace('>', '_') + ".cu");
            Volatile.Write(ref slots[slot], module);
        }

        return module;
    }

    /// <summary>
    /// The module cached under <paramref name="key"/>, compiling <paramref name="source"/>'s text the first time (one
    /// compilation however many threads ask at once; a failure is not cached). For the families and for test kernels.
    /// </summary>
    public CudaModule GetModule(string key, Func<string> source, string? programName = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(source);
        ObjectDisposedException.ThrowIf(_disposed, this);
        programName ??= key.Replace('/', '_') + ".cu";
        Lazy<CudaModule> lazy = _modules.GetOrAdd(key, k => new Lazy<CudaModule>(() => BuildModule(k, programName, source()), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            _modules.TryRemove(new KeyValuePair<string, Lazy<CudaModule>>(key, lazy));
            throw;
        }
    }

    /// <summary>Loads an already compiled image (cubin or NUL-terminated PTX) as a module owned by this device.</summary>
    public CudaModule LoadModule(string name, CudaImage image)
    {
        MakeCurrent();
        nint module = 0;
        fixed (byte* bytes = image.Bytes)
        {
            int result = _cu.cuModuleLoadData(&module, bytes);
            if (result != CudaResult.Success)
            {
                throw new CudaException($"cuModuleLoadData('{name}', {image.Kind} for {image.Architecture}, {image.Bytes.Length} bytes)",
                    result, _cu.ErrorName(result), _cu.ErrorDescription(result));
            }
        }

        return new CudaModule(this, module, name, image);
    }

    private CudaModule BuildModule(string key, string programName, string source)
    {
        CudaImage image = _compiler.Compile(source, programName, Info.ComputeMajor, Info.ComputeMinor);
        return LoadModule(programName, image);
    }

    /// <summary>Queues <paramref name="kernel"/> on this device's stream with <paramref name="arguments"/> in declaration order.</summary>
    public void Launch(CudaKernel kernel, LaunchShape shape, params ReadOnlySpan<KernelArgument> arguments)
    {
        if (kernel.Function == 0)
            throw new ArgumentException("no kernel", nameof(kernel));
        if (shape.GridX == 0 || shape.GridY == 0 || shape.GridY > 65535 || shape.ThreadsPerBlock == 0 || shape.ThreadsPerBlock > (ulong)Info.MaxThreadsPerBlock)
            throw new ArgumentOutOfRangeException(nameof(shape), shape, $"grid and block must be non-empty, the grid's y at most 65535 and a block at most {Info.MaxThreadsPerBlock} threads");
        MakeCurrent();

        int count = arguments.Length;
        ulong* values = stackalloc ulong[Math.Max(count, 1)];
        void** pointers = stackalloc void*[Math.Max(count, 1)];
        for (int i = 0; i < count; i++)
        {
            values[i] = arguments[i].Bits;
            pointers[i] = values + i;
        }

        int result = _cu.cuLaunchKernel(kernel.Function, shape.GridX, shape.GridY, 1, shape.BlockX, shape.BlockY, 1,
            shape.SharedBytes, _stream, count == 0 ? null : pointers, null);
        if (result != CudaResult.Success)
            throw _cu.Failure(result, $"cuLaunchKernel({kernel.Name}, grid {shape.GridX}x{shape.GridY}, block {shape.BlockX}x{shape.BlockY}, {count} arguments)");
    }

    // ---------------------------------------------------------------- launch shapes

    /// <summary>
    /// A 1-D grid-stride launch over <paramref name="work"/> items: <see cref="GroupSize"/> threads per block and enough
    /// blocks to cover the work once, capped at <see cref="BlocksPerMultiprocessor"/> per SM. At least one block.
    /// </summary>
    public LaunchShape GridStride(long work) =>
        new(Blocks(work, GroupSize, (long)Info.MultiprocessorCount * BlocksPerMultiprocessor), GroupSize);

    /// <summary>
    /// The 2-D GLU launch over <paramref name="rows"/> rows of <paramref name="columns"/> items (floats or float4s):
    /// x walks a row with min(256, the power of two at or above columns) threads, y takes the rest of the block's 256 threads
    /// as rows, so short rows still fill blocks; the grid is capped like <see cref="GridStride"/> (both loops stride).
    /// </summary>
    public LaunchShape GluShape(long rows, long columns)
    {
        int localX = (int)Math.Min(GroupSize, BitOperations.RoundUpToPowerOf2((ulong)Math.Max(columns, 1)));
        int localY = GroupSize / localX;
        long cap = (long)Info.MultiprocessorCount * BlocksPerMultiprocessor;
        uint groupsX = Blocks(columns, localX, cap);
        uint groupsY = Blocks(rows, localY, Math.Min(65535, Math.Max(1, cap / groupsX)));
        return new LaunchShape(groupsX, (uint)localX, 0, groupsY, (uint)localY);
    }

    /// <summary>
    /// A launch of blocks of <paramref name="blockSize"/> threads taking <paramref name="rowsPerBlock"/> rows each, rows
    /// strided by the grid, at most one wave of resident blocks (SMs x threads per SM / block size).
    /// </summary>
    public LaunchShape RowBlocks(long rows, int rowsPerBlock, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rowsPerBlock, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        int threadsPerSm = Info.MaxThreadsPerMultiprocessor > 0 ? Info.MaxThreadsPerMultiprocessor : 2048;
        long resident = (long)Info.MultiprocessorCount * Math.Max(1, threadsPerSm / blockSize);
        return new LaunchShape(Blocks(rows, rowsPerBlock, resident), (uint)blockSize);
    }

    private static uint Blocks(long work, long perBlock, long cap)
    {
        long needed = work <= 0 ? 1 : work / perBlock + (work % perBlock != 0 ? 1 : 0);
        return (uint)Math.Clamp(Math.Min(needed, Math.Max(cap, 1)), 1, int.MaxValue);
    }

    /// <summary>Whether the region's address is a multiple of 16 bytes (float4 loads and stores need it).</summary>
    // The module slots per activation: one per (family, input storage, output storage).
    private const int StorageVariants = 9;
    private static readonly int ModuleSlots = KernelFamily.All.Count * StorageVariants;

    // float4 paths need float32 storage on a 16-byte boundary.
    private static bool Aligned16(DeviceRegion region) => region.IsFloat && (region.Address & 15) == 0;

    // ---------------------------------------------------------------- IDeviceKernels

    /// <inheritdoc />
    /// <remarks><c>ga_unary_vec4</c> (float4 loads and stores) when x and y both sit on 16 bytes and n &gt;= 4, else <c>ga_unary</c>; grid-stride.</remarks>
    public void Unary(DeviceActivation activation, DeviceRegion x, DeviceRegion y, long n, ActivationParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(activation);
        if (n <= 0)
            return;
        CudaModule module = FamilyModule(KernelFamily.Unary, activation, ProgramStorage.Of(x, y));
        bool vector = n >= 4 && Aligned16(x) && Aligned16(y);
        Launch(module.Function(vector ? ElementwiseKernels.UnaryVec4 : ElementwiseKernels.Unary), GridStride(vector ? n / 4 : n),
            KernelArgument.Pointer(x.Handle), KernelArgument.Int64(x.ElementOffset),
            KernelArgument.Pointer(y.Handle), KernelArgument.Int64(y.ElementOffset),
            KernelArgument.Int64(n),
            KernelArgument.Float32(parameters.Alpha), KernelArgument.Float32(parameters.Beta), KernelArgument.Float32(parameters.Threshold));
    }

    /// <inheritdoc />
    public void PRelu(DeviceRegion x, DeviceRegion alpha, int channels, DeviceRegion y, long n)
    {
        if (n <= 0)
            return;
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        CudaModule module = FamilyModule(KernelFamily.PRelu, null, ProgramStorage.Of(x, y));
        Launch(module.Function(ElementwiseKernels.PRelu), GridStride(n),
            KernelArgument.Pointer(x.Handle), KernelArgument.Int64(x.ElementOffset),
            KernelArgument.Pointer(alpha.Handle), KernelArgument.Int64(alpha.ElementOffset),
            KernelArgument.Int32(channels),
            KernelArgument.Pointer(y.Handle), KernelArgument.Int64(y.ElementOffset),
            KernelArgument.Int64(n));
    }

    /// <inheritdoc />
    /// <remarks>Grid-stride (<c>ga_unary_backward</c> or <c>ga_unary_backward_out</c>).</remarks>
    public void UnaryBackward(DeviceActivation activation, bool fromOutput, DeviceRegion input, DeviceRegion dy, DeviceRegion dx, long n,
        ActivationParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(activation);
        if (n <= 0)
            return;
        CudaModule module = FamilyModule(KernelFamily.UnaryBackward, activation, ProgramStorage.Of(input, dx));
        Launch(module.Function(fromOutput ? BackwardKernels.UnaryFromOutput : BackwardKernels.Unary), GridStride(n),
            KernelArgument.Pointer(input.Handle), KernelArgument.Int64(input.ElementOffset),
            KernelArgument.Pointer(dy.Handle), KernelArgument.Int64(dy.ElementOffset),
            KernelArgument.Pointer(dx.Handle), KernelArgument.Int64(dx.ElementOffset),
            KernelArgument.Int64(n),
            KernelArgument.Float32(parameters.Alpha), KernelArgument.Float32(parameters.Beta), KernelArgument.Float32(parameters.Threshold));
    }

    /// <inheritdoc />
    /// <remarks>dAlpha first (one thread per channel, all channels covered), then dx grid-stride; the stream keeps the order.</remarks>
    public void PReluBackward(DeviceRegion x, DeviceRegion alpha, DeviceRegion dy, DeviceRegion dx, DeviceRegion dAlpha, int channels, long n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        CudaModule module = FamilyModule(KernelFamily.PReluBackward, null, ProgramStorage.Of(x, dx));
        Launch(module.Function(BackwardKernels.PReluAlpha), new LaunchShape(Blocks(channels, GroupSize, uint.MaxValue / 2), GroupSize),
            KernelArgument.Pointer(x.Handle), KernelArgument.Int64(x.ElementOffset),
            KernelArgument.Pointer(dy.Handle), KernelArgument.Int64(dy.ElementOffset),
            KernelArgument.Int64(n / channels), KernelArgument.Int32(channels),
            KernelArgument.Pointer(dAlpha.Handle), KernelArgument.Int64(dAlpha.ElementOffset));
        if (n <= 0)
            return;
        Launch(module.Function(BackwardKernels.PRelu), GridStride(n),
            KernelArgument.Pointer(x.Handle), KernelArgument.Int64(x.ElementOffset),
            KernelArgument.Pointer(alpha.Handle), KernelArgument.Int64(alpha.ElementOffset),
            KernelArgument.Int32(channels),
            KernelArgument.Pointer(dy.Handle), KernelArgument.Int64(dy.ElementOffset),
            KernelArgument.Pointer(dx.Handle), KernelArgument.Int64(dx.ElementOffset),
            KernelArgument.Int64(n));
    }

    /// <summary>The gated unit with default (zero) activation parameters and no clamp.</summary>
    /// <remarks>
    /// Separate buffers are one row of rows * d; packed halves [rows, 2d] pass the buffer twice (up at column d), interleaved
    /// with up at element 1 and an element step of 2, both with row stride 2d. <c>ga_glu_vec4</c> when the step is 1 and
    /// every row of gate, up and y starts on 16 bytes, else <c>ga_glu</c>.
    /// </remarks>
    public void Glu(DeviceActivation gateActivation, GluLayout layout, DeviceRegion gate, DeviceRegion up, DeviceRegion y, long rows, long d)
        => Glu(gateActivation, layout, gate, up, y, rows, d, default);

    /// <inheritdoc />
    public void Glu(DeviceActivation gateActivation, GluLayout layout, DeviceRegion gate, DeviceRegion up, DeviceRegion y, long rows, long d,
        ActivationParameters parameters, float limit = 0f)
    {
        ArgumentNullException.ThrowIfNull(gateActivation);
        if (rows <= 0 || d <= 0)
            return;
        var at = GluRows.Of(layout, gate, up, rows, d);
        bool vector = at.Step == 1 && at.D >= 4 && Aligned16(at.Gate) && Aligned16(at.Up) && Aligned16(y)
            && (at.Rows == 1 || (at.D % 4 == 0 && at.RowStride % 4 == 0));
        CudaModule module = FamilyModule(KernelFamily.Glu, gateActivation, ProgramStorage.Of(gate, y));
        Launch(module.Function(vector ? GluKernels.GluVec4 : GluKernels.Glu), GluShape(at.Rows, vector ? at.D / 4 : at.D),
            KernelArgument.Pointer(at.Gate.Handle), KernelArgument.Int64(at.Gate.ElementOffset),
            KernelArgument.Pointer(at.Up.Handle), KernelArgument.Int64(at.Up.ElementOffset),
            KernelArgument.Int64(at.RowStride), KernelArgument.Int64(at.Step),
            KernelArgument.Pointer(y.Handle), KernelArgument.Int64(y.ElementOffset),
            KernelArgument.Int64(at.Rows), KernelArgument.Int64(at.D),
            KernelArgument.Float32(parameters.Alpha), KernelArgument.Float32(parameters.Beta), KernelArgument.Float32(parameters.Threshold),
            KernelArgument.Float32(limit));
    }

    /// <inheritdoc />
    /// <remarks><c>ga_glu_backward</c> over the layout's walk (<see cref="GluRows"/>), the 2-D launch of <see cref="GluShape"/>.</remarks>
    public void GluBackward(DeviceActivation gateActivation, GluLayout layout, DeviceRegion gate, DeviceRegion up, DeviceRegion dy,
        DeviceRegion dGate, DeviceRegion dUp, long rows, long d, ActivationParameters parameters, float limit)
    {
        ArgumentNullException.ThrowIfNull(gateActivation);
        if (rows <= 0 || d <= 0)
            return;
        var at = GluRows.Of(layout, gate, up, rows, d);
        var gradients = GluRows.Of(layout, dGate, dUp, rows, d);
        CudaModule module = FamilyModule(KernelFamily.GluBackward, gateActivation, ProgramStorage.Of(gate, dGate));
        Launch(module.Function(GluKernels.Backward), GluShape(at.Rows, at.D),
            KernelArgument.Pointer(at.Gate.Handle), KernelArgument.Int64(at.Gate.ElementOffset),
            KernelArgument.Pointer(at.Up.Handle), KernelArgument.Int64(at.Up.ElementOffset),
            KernelArgument.Int64(at.RowStride), KernelArgument.Int64(at.Step),
            KernelArgument.Pointer(dy.Handle), KernelArgument.Int64(dy.ElementOffset),
            KernelArgument.Pointer(gradients.Gate.Handle), KernelArgument.Int64(gradients.Gate.ElementOffset),
            KernelArgument.Pointer(gradients.Up.Handle), KernelArgument.Int64(gradients.Up.ElementOffset),
            KernelArgument.Int64(at.Rows), KernelArgument.Int64(at.D),
            KernelArgument.Float32(parameters.Alpha), KernelArgument.Float32(parameters.Beta), KernelArgument.Float32(parameters.Threshold),
            KernelArgument.Float32(limit));
    }

    /// <summary>Plain softmax (no scale, mask or safe rows).</summary>
    public void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log)
        => Softmax(x, y, rows, cols, log, DeviceSoftmaxInput.Plain);

    /// <inheritdoc />
    public void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log, in DeviceSoftmaxInput input)
    {
        if (rows <= 0 || cols <= 0)
            return;
        Softmax(x, y, rows, cols, log, SoftmaxPlanner.Plan(rows, cols), input);
    }

    /// <summary>Plain softmax with an explicit <paramref name="plan"/>.</summary>
    public void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log, SoftmaxPlan plan)
        => Softmax(x, y, rows, cols, log, plan, DeviceSoftmaxInput.Plain);

    /// <summary>
    /// Softmax with an explicit <paramref name="plan"/> (tests force each shape with it):
    /// register rows in blocks of <see cref="SoftmaxPlan.GroupSize"/> (several rows per block when a row has at most 32
    /// lanes, else one); streaming rows in blocks of 256; or, split, <c>ga_softmax_partial</c> then <c>ga_softmax_finish</c>
    /// over a scratch buffer of this device, the two launches queued together under a lock so that concurrent callers
    /// never share the scratch between them. Every kernel takes the options after its shape arguments.
    /// </summary>
    public void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log, SoftmaxPlan plan, in DeviceSoftmaxInput input)
    {
        if (rows <= 0 || cols <= 0)
            return;
        plan.Validate(cols, GroupSize, cudaBlocks: true);
        CudaModule module = FamilyModule(KernelFamily.Softmax, null, ProgramStorage.Of(x, y));
        ReadOnlySpan<KernelArgument> options =
        [
            KernelArgument.Float32(input.Scale), KernelArgument.Pointer(input.MaskHandle(x.Handle)), KernelArgument.Int64(input.Mask.ElementOffset),
            KernelArgument.Int64(input.MaskStride), KernelArgument.Int32(input.Flags(log)),
        ];
        if (!plan.IsSplit)
        {
            int block = plan.Shape == SoftmaxShape.Registers ? plan.GroupSize : GroupSize;
            Launch(module.Function(plan.Kernel), RowBlocks(rows, Math.Max(1, block / plan.Lanes), block),
                [
                    KernelArgument.Pointer(x.Handle), KernelArgument.Int64(x.ElementOffset),
                    KernelArgument.Pointer(y.Handle), KernelArgument.Int64(y.ElementOffset),
                    KernelArgument.Int64(rows), KernelArgument.Int64(cols), KernelArgument.Int32(plan.Lanes), .. options,
                ]);
            return;
        }

        long pieces = checked(rows * plan.Chunks);
        LaunchShape shape = PieceBlocks(pieces);
        lock (_splitLock)
        {
            ulong scratch = Scratch(checked(pieces * 2 * sizeof(float)));
            Launch(module.Function(SoftmaxKernels.Partial), shape,
                [
                    KernelArgument.Pointer(x.Handle), KernelArgument.Int64(x.ElementOffset),
                    KernelArgument.Int64(rows), KernelArgument.Int64(cols), KernelArgument.Int64(plan.Chunks), KernelArgument.Int64(plan.ChunkLength),
                    KernelArgument.Pointer(scratch), .. options,
                ]);
            Launch(module.Function(SoftmaxKernels.Finish), shape,
                [
                    KernelArgument.Pointer(x.Handle), KernelArgument.Int64(x.ElementOffset),
                    KernelArgument.Pointer(y.Handle), KernelArgument.Int64(y.ElementOffset),
                    KernelArgument.Int64(rows), KernelArgument.Int64(cols), KernelArgument.Int64(plan.Chunks), KernelArgument.Int64(plan.ChunkLength),
                    KernelArgument.Pointer(scratch), .. options,
                ]);
        }
    }

    /// <summary>The backward and cross-entropy shapes: the planner's streaming ones (rows, split), register rows off.</summary>
    public SoftmaxPlan PlanStreaming(long rows, long cols) => (SoftmaxPlanner with { RegisterRows = false }).Plan(rows, cols);

    /// <inheritdoc />
    public void SoftmaxBackward(DeviceRegion y, DeviceRegion dy, DeviceRegion dx, long rows, long cols, bool log)
    {
        if (rows <= 0 || cols <= 0)
            return;
        SoftmaxPlan plan = PlanStreaming(rows, cols);
        plan.Validate(cols, GroupSize, cudaBlocks: true);
        CudaModule module = FamilyModule(KernelFamily.SoftmaxGrad, null, ProgramStorage.Of(y, dx));
        KernelArgument logMode = KernelArgument.Int32(log ? 1 : 0);
        if (!plan.IsSplit)
        {
            Launch(module.Function(SoftmaxGradKernels.BackwardRows), RowBlocks(rows, GroupSize / plan.Lanes, GroupSize),
                KernelArgument.Pointer(y.Handle), KernelArgument.Int64(y.ElementOffset), KernelArgument.Pointer(dy.Handle), KernelArgument.Int64(dy.ElementOffset),
                KernelArgument.Pointer(dx.Handle), KernelArgument.Int64(dx.ElementOffset),
                KernelArgument.Int64(rows), KernelArgument.Int64(cols), KernelArgument.Int32(plan.Lanes), logMode);
            return;
        }

        long pieces = checked(rows * plan.Chunks);
        LaunchShape shape = PieceBlocks(pieces);
        lock (_splitLock)
        {
            ulong scratch = Scratch(checked(pieces * sizeof(float)));
            Launch(module.Function(SoftmaxGradKernels.BackwardPartial), shape,
                KernelArgument.Pointer(y.Handle), KernelArgument.Int64(y.ElementOffset), KernelArgument.Pointer(dy.Handle), KernelArgument.Int64(dy.ElementOffset),
                KernelArgument.Int64(rows), KernelArgument.Int64(cols), KernelArgument.Int64(plan.Chunks), KernelArgument.Int64(plan.ChunkLength),
                KernelArgument.Pointer(scratch), logMode);
            Launch(module.Function(SoftmaxGradKernels.BackwardFinish), shape,
                KernelArgument.Pointer(y.Handle), KernelArgument.Int64(y.ElementOffset), KernelArgument.Pointer(dy.Handle), KernelArgument.Int64(dy.ElementOffset),
                KernelArgument.Pointer(dx.Handle), KernelArgument.Int64(dx.ElementOffset),
                KernelArgument.Int64(rows), KernelArgument.Int64(cols), KernelArgument.Int64(plan.Chunks), KernelArgument.Int64(plan.ChunkLength),
                KernelArgument.Pointer(scratch), logMode);
        }
    }

    /// <inheritdoc />
    public void CrossEntropy(DeviceRegion logits, DeviceRegion targets, DeviceRegion losses, DeviceRegion? grad, long rows, long cols, CrossEntropyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (rows <= 0 || cols <= 0)
            return;
        SoftmaxPlan plan = PlanStreaming(rows, cols);
        plan.Validate(cols, GroupSize, cudaBlocks: true);
        CudaModule module = FamilyModule(KernelFamily.SoftmaxGrad, null, ProgramStorage.Of(logits, grad ?? logits));
        DeviceRegion gr = grad ?? logits;
        ReadOnlySpan<KernelArgument> head =
        [
            KernelArgument.Pointer(logits.Handle), KernelArgument.Int64(logits.ElementOffset),
            KernelArgument.Pointer(targets.Handle), KernelArgument.Int64(targets.ElementOffset),
        ];
        ReadOnlySpan<KernelArgument> outputs =
        [
            KernelArgument.Pointer(losses.Handle), KernelArgument.Int64(losses.ElementOffset),
            KernelArgument.Pointer(gr.Handle), KernelArgument.Int64(gr.ElementOffset),
            KernelArgument.Int64(rows), KernelArgument.Int64(cols),
        ];
        ReadOnlySpan<KernelArgument> settings =
        [
            KernelArgument.Int32(options.IgnoreIndex), KernelArgument.Float32(options.LabelSmoothing),
            KernelArgument.Float32(options.GradientScale), KernelArgument.Int32(grad is null ? 0 : 1),
        ];
        if (!plan.IsSplit)
        {
            Launch(module.Function(SoftmaxGradKernels.CrossEntropyRows), RowBlocks(rows, GroupSize / plan.Lanes, GroupSize),
                [.. head, .. outputs, KernelArgument.Int32(plan.Lanes), .. settings]);
            return;
        }

        long pieces = checked(rows * plan.Chunks);
        LaunchShape shape = PieceBlocks(pieces);
        KernelArgument chunks = KernelArgument.Int64(plan.Chunks), chunkLength = KernelArgument.Int64(plan.ChunkLength);
        lock (_splitLock)
        {
            KernelArgument scratch = KernelArgument.Pointer(Scratch(checked(pieces * SoftmaxGradKernels.CrossEntropyScratch * sizeof(float))));
            Launch(module.Function(SoftmaxGradKernels.CrossEntropyPartial), shape,
                [.. head, KernelArgument.Int64(rows), KernelArgument.Int64(cols), chunks, chunkLength, scratch]);
            Launch(module.Function(SoftmaxGradKernels.CrossEntropyFinish), shape, [.. head, .. outputs, chunks, chunkLength, scratch, .. settings]);
        }
    }

    /// <summary>A split launch: one block of <see cref="GroupSize"/> per piece, up to the larger of a resident wave and 1024 blocks.</summary>
    private LaunchShape PieceBlocks(long pieces) => new(Blocks(pieces, 1, Math.Max(RowBlocks(pieces, 1, GroupSize).GridX, 1024L)), GroupSize);

    /// <summary>
    /// The split softmax's scratch, grown to at least <paramref name="bytes"/>; call under <see cref="_splitLock"/>. An
    /// outgrown buffer is freed only after the stream has finished the kernels that may still read it.
    /// </summary>
    private ulong Scratch(long bytes)
    {
        if (_scratch is null || _scratch.Bytes < bytes)
        {
            if (_scratch is not null)
            {
                MakeCurrent();
                _cu.Check(_cu.cuStreamSynchronize(_stream));
                _scratch.Dispose();
                _scratch = null;
            }

            _scratch = Allocate(Math.Max(bytes, 4096));
        }

        return _scratch.Pointer;
    }

    // ---------------------------------------------------------------- timing

    /// <summary>
    /// Milliseconds of device time between two events recorded on this device's stream around what
    /// <paramref name="enqueue"/> queues (waits for it to finish).
    /// </summary>
    public float TimeMilliseconds(Action enqueue)
    {
        ArgumentNullException.ThrowIfNull(enqueue);
        MakeCurrent();
        nint start = 0, end = 0;
        try
        {
            _cu.Check(_cu.cuEventCreate(&start, CudaNative.EventDefault));
            _cu.Check(_cu.cuEventCreate(&end, CudaNative.EventDefault));
            _cu.Check(_cu.cuEventRecord(start, _stream));
            enqueue();
            MakeCurrent();
            _cu.Check(_cu.cuEventRecord(end, _stream));
            _cu.Check(_cu.cuEventSynchronize(end));
            float milliseconds = 0;
            _cu.Check(_cu.cuEventElapsedTime(&milliseconds, start, end));
            return milliseconds;
        }
        finally
        {
            if (start != 0)
                _cu.cuEventDestroy(start);
            if (end != 0)
                _cu.cuEventDestroy(end);
        }
    }

    // ---------------------------------------------------------------- lifetime

    /// <summary>
    /// Unloads the modules, destroys the stream (if owned) and gives up the context retain (if owned) — the primary
    /// context is released once the last buffer allocated here is freed too.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (_context.IsClosed)
            return;

        if (_cu.cuCtxSetCurrent(_context.Context) == CudaResult.Success)
        {
            // Queued kernels may still use the modules and the scratch: wait for them (a borrowed stream too).
            _cu.cuStreamSynchronize(_stream);
            lock (_splitLock)
            {
                _scratch?.Dispose();
                _scratch = null;
            }

            foreach (Lazy<CudaModule> lazy in _modules.Values)
            {
                if (lazy.IsValueCreated)
                    _cu.cuModuleUnload(lazy.Value.Handle);
            }

            _modules.Clear();
            if (_ownsStream && _stream != 0)
                _cu.cuStreamDestroy(_stream);
        }

        _context.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => Info.ToString();
}

/// <summary>A loaded CUDA module; its functions are looked up once and cached. Unloaded when its device is disposed.</summary>
internal sealed unsafe class CudaModule
{
    private readonly CudaDevice _device;
    private readonly ConcurrentDictionary<string, CudaKernel> _functions = new(StringComparer.Ordinal);

    internal CudaModule(CudaDevice device, nint handle, string name, CudaImage image)
    {
        _device = device;
        Handle = handle;
        Name = name;
        Image = image;
    }

    /// <summary>The <c>CUmodule</c>.</summary>
    public nint Handle { get; }

    /// <summary>The cache key or name it was loaded under.</summary>
    public string Name { get; }

    /// <summary>The image it was loaded from (its NVRTC log included).</summary>
    public CudaImage Image { get; }

    /// <summary>The kernel named <paramref name="entry"/> (an <c>extern "C"</c> name).</summary>
    public CudaKernel Function(string entry)
    {
        if (_functions.TryGetValue(entry, out CudaKernel kernel))
            return kernel;

        _device.MakeCurrent();
        CudaNative cu = _device.Driver;
        nint function = 0;
        nint utf8 = Marshal.StringToCoTaskMemUTF8(entry);
        try
        {
            int result = cu.cuModuleGetFunction(&function, Handle, (byte*)utf8);
            if (result != CudaResult.Success)
                throw cu.Failure(result, $"cuModuleGetFunction('{Name}', \"{entry}\")");
        }
        finally
        {
            Marshal.FreeCoTaskMem(utf8);
        }

        return _functions.GetOrAdd(entry, new CudaKernel(function, entry));
    }
}
